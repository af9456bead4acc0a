//! One error type for the crate. Messages name the file, line or option and say what to do.

use std::path::PathBuf;

/// Everything that can stop a RAFT build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The knowledge base holds no chunks, so there is nothing to find oracles in.
    #[error(
        "the knowledge base {kb} has no chunks; index your documents first \
         (`ragtune ingest --kb {kb} FILES...`)"
    )]
    EmptyKnowledgeBase { kb: String },

    /// An option is out of range.
    #[error("{option} {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },

    /// The questions file has an extension we cannot read.
    #[error(
        "{}: unknown questions format; pass SQuAD JSON (.json) or question/answers JSONL (.jsonl)",
        path.display()
    )]
    QuestionsFormat { path: PathBuf },

    /// The questions file does not parse (the message names the file and line).
    #[error(transparent)]
    Questions(#[from] ragtune_datasets::Error),

    /// The questions file holds no questions.
    #[error("{}: no questions; each line (JSONL) or SQuAD paragraph must hold at least one", path.display())]
    NoQuestions { path: PathBuf },

    /// The output folder holds other files.
    #[error(
        "{} is not empty and is not the output of a previous `ragtune raft build` (no manifest.json \
         of ours); pass a new or empty folder",
        path.display()
    )]
    OutNotEmpty { path: PathBuf },

    /// Reading or writing a file failed (an `fs-err` error: its message names the path).
    #[error(transparent)]
    Io(std::io::Error),

    /// The knowledge base could not be read.
    #[error(transparent)]
    Index(#[from] ragtune_index::Error),

    /// The retriever cannot search this knowledge base (e.g. another embedder built it).
    #[error("cannot search the knowledge base {kb} for distractors: {source}")]
    Retriever {
        kb: String,
        #[source]
        source: ragtune_core::RetrieveError,
    },

    /// The retriever failed for a question.
    #[error("retrieving distractors for the question {question:?} failed: {source}")]
    Retrieve {
        question: String,
        #[source]
        source: ragtune_core::RetrieveError,
    },

    /// The generator failed.
    #[error("generating the RAFT answer failed: {0}")]
    Generate(#[source] ragtune_core::GeneratorError),

    /// A training record's RAFT section cannot be read.
    #[error(
        "{}: {reason}; retrain on the output of `ragtune raft build`, or pass another adapter",
        path.display()
    )]
    TrainingRecord { path: PathBuf, reason: String },

    /// The adapter was trained on another version of the RAFT prompt.
    #[error(
        "{}: the adapter was trained on RAFT prompt format {trained:?}, but this ragtune writes          {current:?}; rebuild the data (`ragtune raft build`) and retrain, so the model is          prompted as it learned",
        path.display()
    )]
    PromptFormat {
        path: PathBuf,
        trained: String,
        current: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
