//! The seam between sync and where a knowledge base is stored: the embedded
//! [`KnowledgeBase`](crate::KnowledgeBase) (SQLite + tantivy + vectors) or one on a database
//! server (`ragtune-pg`). Sync decides what changed; a target only reads and writes.

use crate::Result;
use crate::store::{EmbedderInfo, FileRecord, FileState, NewDocument};
use ragtune_ingest::ChunkOptions;
use std::collections::HashMap;

/// What [`sync`](crate::sync::sync_into) and [`sync_records`](crate::records::sync_records_into)
/// need of a store. Each `put_file`, `delete_file` and `delete_document` is one transaction.
pub trait SyncTarget {
    /// The knowledge base, for messages: its folder, or its URL without a password.
    fn location(&self) -> String;

    /// The embedder the knowledge base was built with.
    fn embedder_info(&self) -> &EmbedderInfo;

    /// The chunk settings the stored documents were cut with (`None`: none recorded yet, a
    /// new knowledge base or one from before they were recorded).
    fn chunking(&self) -> Result<Option<ChunkOptions>>;

    /// Records the chunk settings (see [`crate::chunking`]).
    fn record_chunking(&mut self, chunking: &ChunkOptions) -> Result<()>;

    /// Every file with documents, with the state sync compares against.
    fn files(&self) -> Result<Vec<FileState>>;

    /// The content hash stored for a document (`None`: not stored).
    fn document_hash(&self, source: &str) -> Result<Option<String>>;

    /// Every stored document's source.
    fn sources(&self) -> Result<Vec<String>>;

    /// Records a new modification time for a file whose content did not change.
    fn touch_file(&mut self, file: &str, mtime_ns: i64) -> Result<()>;

    /// Vectors already stored for these chunk texts, by [`text_hash`](crate::text_hash).
    fn cached_vectors(&self, texts: &[&str]) -> Result<HashMap<[u8; 32], Vec<f32>>>;

    /// Replaces everything stored for `file` with `docs`, atomically. `false` when nothing
    /// was written because another writer had just stored the same content (a shared store).
    fn put_file(&mut self, file: &FileRecord, docs: &[NewDocument<'_>]) -> Result<bool>;

    /// Removes every document of `file`. Returns how many there were.
    fn delete_file(&mut self, file: &str) -> Result<usize>;

    /// Removes one document. `false` if it was not there.
    fn delete_document(&mut self, source: &str) -> Result<bool>;

    /// Makes the writes so far durable for readers (derived indexes committed, indexes built
    /// after a bulk load). Returns the change sequence they reflect, where the store has one.
    fn checkpoint(&mut self) -> Result<Option<u64>>;

    /// Called once a sync has written everything: a store that builds an index only after
    /// bulk loads (PostgreSQL's HNSW) builds it here. Nothing to do for the embedded store,
    /// whose checkpoint already did it all.
    fn sync_finished(&mut self) -> Result<()> {
        Ok(())
    }
}
