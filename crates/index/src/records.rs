//! Sync for documents that are not files: rows of a SQL query. The knowledge base ends up
//! holding exactly the given documents among those whose source starts with a prefix (e.g.
//! `sqlite:/data/crm.db#`): new and changed rows (by text hash) are written, vanished rows are
//! removed, unchanged rows cost nothing.

use crate::embedding::embed_counted;
use crate::kb::KnowledgeBase;
use crate::source::{LoadedDocument, SourceError};
use crate::store::{FileRecord, NewDocument};
use crate::sync::{FileOutcome, SyncEvent, SyncProgress, SyncSummary, check_same_embedder};
use crate::target::SyncTarget;
use crate::{Error, Result};
use ragtune_core::{Embedder, TokenCounter};
use ragtune_ingest::ChunkOptions;
use std::collections::HashSet;
use std::path::Path;

/// Loads the rows of `query` in the SQLite database `db` as chunked documents, one per row.
pub fn load_sql_rows(
    db: &Path,
    query: &str,
    text_columns: &[&str],
    counter: &dyn TokenCounter,
    options: &ChunkOptions,
) -> Result<Vec<LoadedDocument>> {
    let documents = ragtune_ingest::load_sql(db, query, text_columns)
        .map_err(|e| Error::Source(SourceError::new(db, e.to_string())))?;
    Ok(documents
        .into_iter()
        .map(|document| {
            let chunks = ragtune_ingest::chunk(&document, counter, options);
            LoadedDocument { document, chunks }
        })
        .collect())
}

impl KnowledgeBase {
    /// Makes the documents under `prefix` equal `docs` (one transaction per document), which
    /// were cut with `chunking`.
    pub fn sync_records(
        &mut self,
        prefix: &str,
        docs: &[LoadedDocument],
        chunking: &ChunkOptions,
        embedder: &dyn Embedder,
        progress: &mut dyn SyncProgress,
    ) -> Result<SyncSummary> {
        sync_records_into(self, prefix, docs, chunking, embedder, progress)
    }
}

/// Makes the documents of `target` under `prefix` equal `docs`, one transaction per
/// document: what [`KnowledgeBase::sync_records`] does, for any store. `chunking` is what
/// `docs` were cut with; it must be the knowledge base's (see [`crate::chunking`]).
pub fn sync_records_into(
    target: &mut dyn SyncTarget,
    prefix: &str,
    docs: &[LoadedDocument],
    chunking: &ChunkOptions,
    embedder: &dyn Embedder,
    progress: &mut dyn SyncProgress,
) -> Result<SyncSummary> {
    check_same_embedder(target, embedder)?;
    crate::chunking::agree(target, chunking)?;
    let mut summary = SyncSummary::default();
    progress.event(&SyncEvent::Scanned { files: docs.len() });
    let mut seen = HashSet::new();
    for loaded in docs {
        let doc = &loaded.document;
        seen.insert(doc.source.clone());
        let hash = blake3::hash(doc.text.as_bytes()).to_hex().to_string();
        let stored = target.document_hash(&doc.source)?;
        let outcome = if stored.as_deref() == Some(hash.as_str()) {
            summary.unchanged += 1;
            FileOutcome::Unchanged
        } else {
            let texts: Vec<&str> = loaded.chunks.iter().map(|c| c.text.as_str()).collect();
            let vectors = embed_counted(&*target, embedder, &texts, &doc.source, &mut summary)?;
            let file = FileRecord {
                path: doc.source.clone(),
                hash,
                size: doc.text.len() as u64,
                mtime_ns: 0,
            };
            let new = NewDocument {
                source: &doc.source,
                format: doc.format,
                metadata: &doc.metadata,
                chunks: &loaded.chunks,
                vectors: &vectors,
            };
            if !target.put_file(&file, &[new])? {
                summary.unchanged += 1;
                FileOutcome::Unchanged
            } else if stored.is_some() {
                summary.updated.push(doc.source.clone());
                FileOutcome::Updated
            } else {
                summary.added.push(doc.source.clone());
                FileOutcome::Added
            }
        };
        progress.event(&SyncEvent::File {
            path: Path::new(&doc.source),
            outcome,
        });
    }
    let gone: Vec<String> = target
        .sources()?
        .into_iter()
        .filter(|s| s.starts_with(prefix) && !seen.contains(s))
        .collect();
    for source in gone {
        target.delete_document(&source)?;
        progress.event(&SyncEvent::Deleted { source: &source });
        summary.deleted.push(source);
    }
    target.checkpoint()?;
    target.sync_finished()?;
    progress.event(&SyncEvent::Finished { summary: &summary });
    Ok(summary)
}
