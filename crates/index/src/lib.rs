//! Where do chunks, BM25 postings and vectors live on disk, and how do they stay in sync?
//!
//! A [`KnowledgeBase`] is one directory:
//!
//! ```text
//! kb/
//!   kb.sqlite      source of truth (WAL): documents, chunks, vectors, change log, embedder
//!   bm25/          tantivy index, derived; its commit payload is the change sequence it reflects
//!   vectors.bin    vector index (exact or HNSW), derived; header carries the same sequence
//! ```
//!
//! Each file (its documents: one, or one per record for JSONL and the like) is written in one
//! SQLite transaction; the derived indexes replay SQLite's change log and are committed at
//! checkpoints. On open, a stale, missing or damaged derived
//! index is caught up or rebuilt from SQLite, so a process killed at any moment leaves a
//! knowledge base that opens, answers queries and is completed by the next sync.
//!
//! ```
//! use ragtune_core::{Chunk, Format};
//! use ragtune_index::{DocumentRecord, KnowledgeBase, testing::HashEmbedder};
//!
//! # fn main() -> ragtune_index::Result<()> {
//! let embedder = HashEmbedder::new(64);
//! let mut kb = KnowledgeBase::in_memory(&embedder)?;
//! let chunk = Chunk {
//!     source: "notes.txt".into(), ordinal: 0, text: "tantivy computes BM25".into(),
//!     start: 0, end: 21, page: None, heading_path: vec![], tokens: 3,
//! };
//! let doc = DocumentRecord {
//!     source: "notes.txt".into(), format: Format::Text, hash: "h".into(), size: 21,
//!     mtime_ns: 0, metadata: Default::default(),
//! };
//! kb.put_document(&doc, &[chunk], &embedder)?;
//! kb.checkpoint()?;
//! let hits = kb.bm25_search("bm25", 5, None)?;
//! assert_eq!(hits.len(), 1);
//! assert!(kb.health()?.is_consistent());
//! # Ok(()) }
//! ```
//!
//! [`KnowledgeBase::sync`] with an [`IngestSource`] indexes folders; [`KnowledgeBase::watch`]
//! keeps doing it as files change. The example uses the `testing` feature's fakes.

mod bm25;
mod check;
pub mod chunking;
mod embedding;
mod error;
mod ingest_source;
mod kb;
mod records;
mod source;
mod store;
mod sync;
mod target;
pub mod vector;
mod watch;

#[cfg(feature = "testing")]
pub mod testing;

pub use bm25::{Bm25Options, SharedFilter};
pub use check::{CheckReport, Problem, RepairReport, check, repair};
pub use error::{Error, Result};
pub use ingest_source::IngestSource;
pub use kb::{Health, KbOptions, KnowledgeBase, WriterLock};
pub use records::{load_sql_rows, sync_records_into};
pub use source::{DocumentSource, LoadedDocument, LoadedFile, SourceError};
pub use store::{
    DbState, DocumentRecord, EmbedderInfo, FileRecord, FileState, IndexedChunk, NewDocument, Store,
    StoredChunk, StoredDocument, text_hash,
};
pub use sync::{
    FileOutcome, NoProgress, SyncEvent, SyncFailure, SyncOptions, SyncProgress, SyncSummary,
    SyncTimings, sync_into,
};
pub use target::SyncTarget;
pub use vector::{HnswParams, VectorIndex, VectorIndexOptions};
pub use watch::WatchOptions;
