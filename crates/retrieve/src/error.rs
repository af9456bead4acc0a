//! Errors of filters and evaluation data. Messages name the file and line.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid path glob {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },

    /// Evaluation data could not be read.
    #[error(transparent)]
    Dataset(#[from] ragtune_datasets::Error),

    #[error(transparent)]
    Index(#[from] ragtune_index::Error),

    #[error(transparent)]
    Retrieve(#[from] ragtune_core::RetrieveError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
