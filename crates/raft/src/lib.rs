//! What does a model learn from to answer from our documents?
//!
//! RAFT (Retrieval-Augmented Fine-Tuning, Zhang et al. 2024) training data: each example is a
//! question, its oracle passage among distractors (hard negatives from the retriever, or
//! uniform draws), shuffled, with the oracle left out of a share 1 - P of the examples, and a
//! chain-of-thought target that quotes the oracle between `##begin_quote##` and
//! `##end_quote##` and ends with `<ANSWER>: ...` (or, for the ablation, `<ANSWER>: ...` alone:
//! [`AnswerFormat`]). [`build`] writes the data; [`lineage`] is
//! what training records about it; [`answer`] answers a question the RAFT way (top-k hybrid
//! hits, the same prompt, the reply's quotes checked against the passages). [`raft_prompt`]
//! is the one prompt, for training and inference.
//!
//! ```
//! use ragtune_raft::{AnswerFormat, RaftPassage, raft_prompt};
//! let messages = raft_prompt(
//!     "Who won?",
//!     &[RaftPassage { source: "nfl.md", page: None, text: "The Broncos won." }],
//!     AnswerFormat::Cot,
//! );
//! assert!(messages[1].content.contains("[1] (nfl.md) The Broncos won."));
//! ```

mod build;
mod error;
mod infer;
mod lineage;
pub mod oracle;
pub mod prompt;
pub mod teacher;

pub use build::{
    BuildReport, BuildSpec, DistractorSource, ExampleRecord, GORILLA_FILE, MANIFEST_FILE,
    MANIFEST_KIND, Skip, TRAIN_FILE, build, load_chunks, load_questions,
};
pub use error::{Error, Result};
pub use infer::{
    PROMPT_FORMAT, ParsedOutput, QuoteCitation, RaftAnswer, RaftOptions, ShownPassage, answer,
    check_quotes, parse_output, prompt_for_hits,
};
pub use lineage::{DocumentRef, Lineage, TRAINING_KEY, TrainedRun, lineage, trained_run};
pub use oracle::{KbChunk, Oracle, SkipReason, find_oracle};
pub use prompt::{
    AnswerFormat, RaftPassage, abstain_answer, bare_answer, cot_answer, quotes, raft_prompt,
    raft_template,
};
