//! Errors name the knowledge base (its URL without the password) and say what to do.

/// Why a PostgreSQL knowledge base could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "knowledge base {kb}: cannot connect ({reason}); check that the server runs and the URL's host, port, user and password"
    )]
    Connect { kb: String, reason: String },
    #[error("knowledge base {kb}: {what} failed: {reason}")]
    Db {
        kb: String,
        what: String,
        reason: String,
    },
    #[error("no knowledge base at {kb}: build one with `ragtune ingest --kb {kb} PATH...`")]
    NotFound { kb: String },
    #[error(
        "knowledge base {kb}: schema version {found} is newer than this ragtune understands ({supported}); upgrade ragtune"
    )]
    SchemaVersion {
        kb: String,
        found: i32,
        supported: i32,
    },
    #[error(
        "knowledge base {kb}: the pgvector extension is not available ({reason}); install pgvector on the server (CREATE EXTENSION vector needs it)"
    )]
    NoVector { kb: String, reason: String },
    #[error("knowledge base {kb}: {reason}")]
    Damaged { kb: String, reason: String },
    #[error(
        "knowledge base {kb}: another ingest recorded other chunk settings (`{now}`) while this one cut its files as `{ours}`, so {file} was not written; run the same command again (without --max-tokens/--overlap it takes the recorded settings)"
    )]
    ChunkingChanged {
        kb: String,
        file: String,
        ours: String,
        now: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A PostgreSQL error as one line: the server's message and SQLSTATE when it sent one, the
/// client's cause otherwise (the client's own Display says only "db error").
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

impl From<Error> for ragtune_index::Error {
    fn from(e: Error) -> Self {
        ragtune_index::Error::Server(e.to_string())
    }
}

impl From<Error> for ragtune_core::RetrieveError {
    fn from(e: Error) -> Self {
        ragtune_core::RetrieveError::Index(e.to_string())
    }
}
