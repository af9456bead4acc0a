//! One error type for the crate. Messages name the knowledge base or file and say what to do,
//! because they end up in front of users (`ragtune ingest`, `ragtune search`).

use ragtune_core::io::is_disk_full;
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

    #[error("knowledge base {}: SQLite error: {source}; if kb.sqlite is damaged, restore it from a backup or ingest into a new knowledge base (--kb NEW_DIR)", path.display())]
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

    /// A sync asked for other chunk settings than the stored documents were cut with.
    #[error(
        "knowledge base {location} holds {stored}; this sync asked for {requested}. Unchanged files would keep their old chunks and changed ones get new ones, mixed in one index. Sync with the knowledge base's settings (leave the options out), or ingest into a new knowledge base to use the new ones"
    )]
    ChunkingMismatch {
        location: String,
        stored: String,
        requested: String,
    },

    #[error(
        "knowledge base {location} records its chunk settings as `{stored}`, which this version of ragtune does not read; use the version that built it, or ingest into a new knowledge base"
    )]
    ChunkingRecord { location: String, stored: String },

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

    /// The files are there but cannot be written: a read-only mount, folder or file.
    #[error("knowledge base {} is read-only ({source}); nothing was changed. Run as a user who may write it, or copy the folder somewhere writable", path.display())]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The file system holding the knowledge base ran out of space. Each document is committed
    /// whole, so the ones indexed before are kept and the next run goes on from there.
    /// The cause is in the message and not also `source()`, so a front end that prints the
    /// whole chain shows it once.
    #[error("knowledge base {}: the disk is full ({cause}); the documents indexed before are kept. Free some space, then run the same command again: it goes on where it stopped", path.display())]
    DiskFull {
        path: PathBuf,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("no knowledge base at {}: build one with `ragtune ingest --kb {} PATH...`", path.display(), path.display())]
    NotFound { path: PathBuf },

    /// kb.sqlite lost its contents (or is not ragtune's); the derived indexes are kept, since
    /// rebuilding them from an empty database would wipe them too.
    #[error("knowledge base {} is damaged: {reason}; nothing was changed. Restore kb.sqlite from a backup, or ingest into a new knowledge base (--kb NEW_DIR)", path.display())]
    Damaged { path: PathBuf, reason: String },

    /// Another process holds the knowledge base's writer lock.
    #[error("knowledge base {} is busy: another ingest is running{}; wait for it to finish or stop it", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { path: PathBuf, pid: Option<u32> },

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
    /// A store on a database server failed (`ragtune-pg`); the message names the knowledge
    /// base and says what to do.
    #[error("{0}")]
    Server(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            return Error::DiskFull {
                path: path.to_owned(),
                cause: Box::new(source),
            };
        }
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
        self.map_err(|source| {
            let read_only = matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied)
            );
            if read_only {
                Error::ReadOnly {
                    path: path.to_owned(),
                    source,
                }
            } else if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
                Error::DiskFull {
                    path: path.to_owned(),
                    cause: Box::new(source),
                }
            } else {
                Error::Sqlite {
                    path: path.to_owned(),
                    source,
                }
            }
        })
    }
}

impl<T> Context<T> for std::result::Result<T, tantivy::TantivyError> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| match &source {
            tantivy::TantivyError::IoError(io) if is_disk_full(io) => Error::DiskFull {
                path: path.to_owned(),
                cause: Box::new(source),
            },
            _ => Error::Tantivy {
                path: path.to_owned(),
                source,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a full disk was answered with "if kb.sqlite is damaged, restore it from a
    /// backup", which sends the user after a healthy database.
    #[test]
    fn a_full_disk_says_so_and_that_the_saved_documents_are_kept() {
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let errors = [
            Err::<(), _>(sqlite).at(Path::new("/kb")).unwrap_err(),
            Error::io(Path::new("/kb/vectors.bin"), io),
        ];
        for err in errors {
            assert!(matches!(err, Error::DiskFull { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("disk is full") && msg.contains("are kept"),
                "{msg}"
            );
            assert!(!msg.contains("backup"), "{msg}");
        }
    }

    /// Regression: a read-only knowledge base was answered with "if the file is damaged,
    /// delete the directory", advice that destroys a healthy one.
    #[test]
    fn a_read_only_database_says_so_and_never_advises_deleting() {
        for code in [rusqlite::ffi::SQLITE_READONLY, rusqlite::ffi::SQLITE_PERM] {
            let failure = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            let err = Err::<(), _>(failure).at(Path::new("/kb")).unwrap_err();
            assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("is read-only") && !msg.contains("delete"),
                "{msg}"
            );
        }
        let other = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        let msg = Err::<(), _>(other)
            .at(Path::new("/kb"))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("delete"), "{msg}");
    }
}
