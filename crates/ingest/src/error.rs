//! Errors and warnings. Every message names the file (or query) and says what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a file, a record or a query could not be turned into documents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}; check that the file exists and is readable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: unsupported file type {ext:?}; supported extensions are {}",
        path.display(),
        crate::format::SUPPORTED.join(", ")
    )]
    Unsupported { path: PathBuf, ext: String },
    #[error(
        "{}: named as {} but {reason}; the file is damaged or misnamed: rename it to its real type or re-export it",
        path.display(),
        format.as_str()
    )]
    FormatMismatch {
        path: PathBuf,
        format: ragtune_core::Format,
        reason: String,
    },
    #[error("{}: {size} bytes is over the {limit}-byte limit for {format} files loaded whole; split the file or raise LoadOptions::max_file_bytes", path.display())]
    TooLarge {
        path: PathBuf,
        format: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{}: refused as a possible zip bomb: {reason}; if the file is trusted, raise the matching ZipLimits field", path.display())]
    ZipBomb { path: PathBuf, reason: String },
    #[error("{}: {reason}; open and re-save the file, or convert it to another format", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}, line {line}: {reason}; fix or remove that line (the other lines were loaded)", path.display())]
    Line {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    #[error("sqlite {}: query `{query}` failed: {reason}; check the table and column names (the database is opened read-only)", db.display())]
    Sql {
        db: PathBuf,
        query: String,
        reason: String,
    },
    #[error("cannot walk {}: {reason}", path.display())]
    Walk { path: PathBuf, reason: String },
    /// Found while walking, but not a file that can be read to the end: skipped.
    #[error("{}: skipped, {what}", path.display())]
    NotAFile { path: PathBuf, what: String },
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

    pub(crate) fn malformed(path: &Path, reason: impl fmt::Display) -> Self {
        Error::Malformed {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The file (or database) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::Unsupported { path, .. }
            | Error::FormatMismatch { path, .. }
            | Error::TooLarge { path, .. }
            | Error::ZipBomb { path, .. }
            | Error::Malformed { path, .. }
            | Error::Line { path, .. }
            | Error::Json { path, .. }
            | Error::Walk { path, .. }
            | Error::NotAFile { path, .. } => path,
            Error::Sql { db, .. } => db,
        }
    }
}

/// Something a user should know about a file that was still loaded: no text layer, bytes
/// that were not UTF-8, a sheet that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        Warning {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}
