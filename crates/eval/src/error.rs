//! Why an evaluation could not run. Messages name the file or option and say what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: no questions", path.display())]
    NoQuestions { path: PathBuf },

    /// An option that cannot be honoured with these inputs.
    #[error("{0}")]
    Config(String),

    #[error(transparent)]
    Dataset(#[from] ragtune_datasets::Error),

    #[error(transparent)]
    Answer(#[from] ragtune_answer::Error),

    #[error(transparent)]
    Raft(#[from] ragtune_raft::Error),

    #[error(transparent)]
    Retrieve(#[from] ragtune_retrieve::Error),

    /// A search could not be set up (the knowledge base's embedder is not this one).
    #[error(transparent)]
    Search(#[from] ragtune_core::RetrieveError),

    #[error(transparent)]
    Index(#[from] ragtune_index::Error),

    /// Writing results failed; the message names the path (fs-err).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
