//! SQLite, the source of truth: documents, chunks, vectors, and a change log that the derived
//! indexes (tantivy, vectors) replay. Every document is written in one transaction, so a
//! killed process leaves either the old version or the new one, never half of it.

mod read;
mod write;

pub use read::{FileState, IndexedChunk, StoredChunk, StoredDocument};
pub use write::text_hash;
pub use write::{DocumentRecord, FileRecord, NewDocument};

use crate::error::Context;
use crate::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL UNIQUE,
    -- The file the document was loaded from (a JSONL file gives one document per line).
    file TEXT NOT NULL,
    format TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    version INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    indexed_at_ns INTEGER NOT NULL
);
-- AUTOINCREMENT: a chunk id is never reused, so replaying the change log is unambiguous.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id),
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_hash BLOB NOT NULL,
    page INTEGER,
    heading_path TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    UNIQUE (doc_id, ordinal)
);
CREATE INDEX IF NOT EXISTS documents_file ON documents (file);
CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks (text_hash);
CREATE TABLE IF NOT EXISTS vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id),
    embedding BLOB NOT NULL
);
-- One row per chunk added (op 1) or removed (op 0); seq is the change sequence that the
-- derived indexes record. Rows up to the sequence both have committed are pruned.
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL,
    op INTEGER NOT NULL
);
";

/// The SQLite database of a knowledge base.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// Which embedder produced the stored vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderInfo {
    pub name: String,
    pub dimension: usize,
}

/// What is in a database file before it is opened for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbState {
    /// No file.
    Missing,
    /// A file without ragtune's tables (zeroed, emptied, or another program's), with a reason.
    Uninitialised(String),
    /// A ragtune database.
    Ready,
}

/// The tables every ragtune database has.
pub(crate) const TABLES: [&str; 5] = ["meta", "documents", "chunks", "vectors", "changes"];

impl Store {
    /// Looks at the database at `path` without writing anything to it.
    pub fn inspect(path: &Path) -> Result<DbState> {
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DbState::Missing),
            Err(e) => return Err(Error::io(path, e)),
        };
        if size == 0 {
            return Ok(DbState::Uninitialised(
                "kb.sqlite is empty (0 bytes)".into(),
            ));
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .at(path)?;
        let found: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                 ('meta', 'documents', 'chunks', 'vectors', 'changes')",
                [],
                |r| r.get(0),
            )
            .at(path)?;
        Ok(if found == TABLES.len() as i64 {
            DbState::Ready
        } else {
            DbState::Uninitialised(format!(
                "kb.sqlite ({size} bytes) has {found} of ragtune's {} tables",
                TABLES.len()
            ))
        })
    }

    /// Opens an existing database for reading only (`ragtune kb check`), writing nothing: no
    /// schema, no pragma that writes. While no `-wal` file exists no connection has it open,
    /// so it is read as immutable (a read-only connection would create `-wal` and `-shm`).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = if Path::new(&wal).exists() {
            Connection::open_with_flags(path, flags)
        } else {
            let mut uri = String::from("file:");
            for c in path.to_string_lossy().chars() {
                match c {
                    '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
                    c => uri.push(c),
                }
            }
            uri.push_str("?immutable=1");
            Connection::open_with_flags(uri, flags)
        }
        .at(path)?;
        conn.execute_batch("PRAGMA query_only = ON;").at(path)?;
        Ok(Store {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// How many of ragtune's tables the database has.
    pub(crate) fn table_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                 ('meta', 'documents', 'chunks', 'vectors', 'changes')",
                [],
                |r| r.get(0),
            )
            .at(&self.path)?;
        Ok(n as usize)
    }

    /// Opens (creating if needed) the database at `path`, or an in-memory one when `None`.
    pub fn open(path: Option<&Path>) -> Result<Store> {
        let shown = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_owned);
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .at(&shown)?;
        // WAL: readers do not block the writer. synchronous=NORMAL keeps every committed
        // transaction across a killed process (only an OS crash may lose the last ones).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .at(&shown)?;
        conn.execute_batch(SCHEMA).at(&shown)?;
        let store = Store {
            path: shown,
            conn: Mutex::new(conn),
        };
        match store.meta("schema_version")? {
            None => store.set_meta("schema_version", &SCHEMA_VERSION.to_string())?,
            Some(v) => {
                let found: i64 = v.parse().unwrap_or(i64::MAX);
                if found > SCHEMA_VERSION {
                    return Err(Error::SchemaVersion {
                        path: store.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .at(&self.path)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .at(&self.path)?;
        Ok(())
    }

    /// Records the embedder on first use; afterwards insists on the same one.
    pub fn check_embedder(&self, kb: &Path, wanted: &EmbedderInfo) -> Result<()> {
        let name = self.meta("embedder")?;
        let dim = self.meta("dimension")?;
        match (name, dim) {
            (Some(name), Some(dim)) => {
                let dim: usize = dim.parse().unwrap_or(0);
                if name != wanted.name || dim != wanted.dimension {
                    return Err(Error::EmbedderMismatch {
                        path: kb.to_owned(),
                        stored: name,
                        stored_dim: dim,
                        requested: wanted.name.clone(),
                        requested_dim: wanted.dimension,
                    });
                }
                Ok(())
            }
            _ => {
                self.set_meta("embedder", &wanted.name)?;
                self.set_meta("dimension", &wanted.dimension.to_string())
            }
        }
    }

    /// The embedder recorded in the database, if any.
    pub fn embedder(&self) -> Result<Option<EmbedderInfo>> {
        let name = self.meta("embedder")?;
        let dim = self.meta("dimension")?;
        Ok(name.zip(dim).map(|(name, d)| EmbedderInfo {
            name,
            dimension: d.parse().unwrap_or(0),
        }))
    }

    /// The latest change sequence (0 before any change).
    pub fn seq(&self) -> Result<u64> {
        let seq: Option<i64> = self
            .conn()
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
                [],
                |r| r.get(0),
            )
            .optional()
            .at(&self.path)?;
        Ok(seq.unwrap_or(0) as u64)
    }

    /// Change-log rows up to this sequence are gone: an index older than it must be rebuilt.
    pub fn pruned_through(&self) -> Result<u64> {
        Ok(self
            .meta("pruned_through")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Drops change-log rows every derived index has absorbed.
    pub fn prune_changes(&self, through: u64) -> Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM changes WHERE seq <= ?1", [through as i64])
            .at(&self.path)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('pruned_through', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            [through as i64],
        )
        .at(&self.path)?;
        Ok(())
    }
}

pub(crate) fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
