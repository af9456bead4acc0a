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
//! - [`write_sft`]: the prompts a mode builds, answered with the gold answer, as SFT data.
//!
//! Models are the caller's: everything here takes a [`ragtune_core::Generator`] and an
//! [`ragtune_core::Embedder`], so the workflows run on fakes in tests and on llama.cpp in the
//! binary.

mod corpus;
mod error;
mod qa;
mod questions;
mod sft;

pub use corpus::{index_in_memory, load_corpus};
pub use error::{Error, Result};
pub use qa::{evaluate_mode, evaluate_raft};
pub use questions::QuestionSet;
pub use sft::{SftWritten, write_sft};
