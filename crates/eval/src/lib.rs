//! The evaluation workflows behind `ragtune eval qa` (and the comparison built on them):
//!
//! - [`QuestionSet`]: questions from one file, a seeded sample of them, and few-shot examples
//!   held out so no example gives a drawn question's answer away;
//! - [`load_corpus`] and [`index_in_memory`]: the corpus a run answers from when no knowledge
//!   base is given (SQuAD paragraphs, PubMedQA abstracts), chunked as `ragtune ingest` chunks
//!   files;
//! - [`evaluate_mode`]: one answerer mode (rag, closed-book, few-shot) over the set, batched or
//!   one question at a time; [`evaluate_raft`]: a RAFT adapter, prompted as it was trained and
//!   scored with the same metrics;
//! - [`FormatCheck`]: the format every answer must have (a regex or a JSON Schema);
//! - [`write_sft`]: the prompts a mode builds, answered with the gold answer, as SFT data;
//! - [`attacks`]: prompt-injection documents asked through RAG, and how often the model said
//!   what an attack ordered;
//! - [`adapters`]: the trained adapters under a folder, and which of them changed documents
//!   made stale;
//! - [`compare`]: every variant ([`VariantSpec`]: an approach on a model, perhaps with an
//!   adapter) over the same questions, then the scenarios (freshness, forgetting, stale
//!   adapters), as the runs `ragtune_compare::build` turns into a report.
//!
//! Models are the caller's: everything here takes a [`ragtune_core::Generator`] and an
//! [`ragtune_core::Embedder`], so the workflows run on fakes in tests and on llama.cpp in the
//! binary.

pub mod adapters;
pub mod attacks;
mod comparison;
mod corpus;
mod error;
mod format;
mod qa;
mod questions;
pub mod scenarios;
mod sft;
pub mod training;
pub mod variants;

pub use comparison::{Comparison, Inputs, Passages, Plan, compare};
pub use corpus::{index_in_memory, load_corpus};
pub use error::{Error, Result};
pub use format::FormatCheck;
pub use qa::{evaluate_mode, evaluate_raft};
pub use questions::QuestionSet;
pub use sft::{SftWritten, write_sft};
pub use training::{Budget, TrainPlan, Trainer};
pub use variants::{Models, VariantSpec};
