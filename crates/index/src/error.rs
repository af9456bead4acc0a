//! One error type for the crate. Messages name the knowledge base or file and say what to do,
//! because they end up in front of users (`ragtune ingest`, `ragtune search`).

use std::path::{Path, PathBuf};

/// Everything that can go wrong while opening, writing or searching a knowledge base.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("knowledge base {}: SQLite error: {source}; if the file is damaged, delete the directory and ingest again", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("knowledge base {}: BM25 index error: {source}", path.display())]
    Tantivy {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },

    /// The KB was built with other vectors; mixing them would make dense search meaningless.
    #[error(
        "knowledge base {} was built with embedder `{stored}` ({stored_dim} dimensions), not `{requested}` ({requested_dim}); use the same embedder, or ingest into a new knowledge base",
        path.display()
    )]
    EmbedderMismatch {
        path: PathBuf,
        stored: String,
        stored_dim: usize,
        requested: String,
        requested_dim: usize,
    },

    #[error("knowledge base {}: {what} has {actual} dimensions, expected {expected}", path.display())]
    Dimension {
        path: PathBuf,
        what: String,
        expected: usize,
        actual: usize,
    },

    #[error("knowledge base {}: schema version {found} is newer than this ragtune understands ({supported}); upgrade ragtune", path.display())]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("cannot sync {}: the path does not exist; nothing was deleted from the knowledge base", path.display())]
    MissingRoot { path: PathBuf },

    #[error("knowledge base {}: corrupt {what}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },

    #[error("cannot embed {what}: {source}")]
    Embed {
        what: String,
        #[source]
        source: ragtune_core::EmbedError,
    },

    #[error("cannot watch {}: {reason}", path.display())]
    Watch { path: PathBuf, reason: String },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Attaches the knowledge base path to errors of the storage libraries.
pub(crate) trait Context<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Sqlite {
            path: path.to_owned(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, tantivy::TantivyError> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Tantivy {
            path: path.to_owned(),
            source,
        })
    }
}
