//! Errors of filters and evaluation data. Messages name the file and line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid path glob {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}, line {line}: {reason}; the file does not follow the {format} format", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        format: &'static str,
        reason: String,
    },

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
