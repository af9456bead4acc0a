//! Why evaluation data could not be read. Messages name the file and line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading failed; the message names the path (fs-err).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// A data file does not follow its format.
    #[error("{}, line {line}: {reason}; the file does not follow the {format} format", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        format: &'static str,
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
