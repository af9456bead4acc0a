//! Reads: documents, chunks for display and for the derived indexes, the change log, and the
//! integrity counts that `KnowledgeBase::check` reports.

use super::{Store, blob_to_vector, write::text_hash};
use crate::Result;
use crate::error::Context;
use ragtune_core::{Format, Metadata};
use rusqlite::{OptionalExtension, Row, params};
use std::collections::HashMap;

/// A document row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDocument {
    pub id: i64,
    pub source: String,
    /// The file it was loaded from (equal to `source` for one-document files).
    pub file: String,
    pub format: Format,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub metadata: Metadata,
    /// 1 for the first ingest, +1 for each change of content.
    pub version: i64,
    pub chunk_count: usize,
    pub indexed_at_ns: i64,
}

/// What the knowledge base last saw of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub path: String,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// When it was last written or confirmed unchanged (oldest of its documents).
    pub indexed_at_ns: i64,
    pub documents: usize,
}

/// A chunk with what a citation needs from its document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub id: i64,
    pub doc_id: i64,
    pub source: String,
    pub format: Format,
    pub ordinal: u32,
    pub text: String,
    pub page: Option<u32>,
    pub heading_path: Vec<String>,
    pub start: usize,
    pub end: usize,
    pub tokens: u32,
}

/// What the derived indexes need of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedChunk {
    pub id: i64,
    pub text: String,
    /// Document title and heading path, indexed as a separate BM25 field.
    pub title: String,
    pub vector: Vec<f32>,
}

pub(crate) fn parse_format(s: &str) -> Format {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Format::Text)
}

const DOC_COLUMNS: &str =
    "id, source, file, format, hash, size, mtime_ns, metadata, version, chunk_count, indexed_at_ns";

fn document_row(r: &Row) -> rusqlite::Result<StoredDocument> {
    Ok(StoredDocument {
        id: r.get(0)?,
        source: r.get(1)?,
        file: r.get(2)?,
        format: parse_format(&r.get::<_, String>(3)?),
        hash: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        mtime_ns: r.get(6)?,
        metadata: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        version: r.get(8)?,
        chunk_count: r.get::<_, i64>(9)? as usize,
        indexed_at_ns: r.get(10)?,
    })
}

const INDEXED_SQL: &str = "SELECT c.id, c.text, c.heading_path, d.metadata, v.embedding
     FROM chunks c JOIN documents d ON d.id = c.doc_id JOIN vectors v ON v.chunk_id = c.id";

fn indexed_row(r: &Row) -> rusqlite::Result<IndexedChunk> {
    let headings: Vec<String> = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default();
    let metadata: Metadata = serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default();
    let title = metadata
        .get("title")
        .into_iter()
        .chain(headings.iter())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" / ");
    Ok(IndexedChunk {
        id: r.get(0)?,
        text: r.get(1)?,
        title,
        vector: blob_to_vector(&r.get::<_, Vec<u8>>(4)?),
    })
}

const CHUNK_COLUMNS: &str = "c.id, c.doc_id, d.source, d.format, c.ordinal, c.text, c.page,
     c.heading_path, c.start, c.end, c.tokens";

/// The neighbours of chunk ?1: ?2 ordinals before it to ?3 after it, in its document.
fn neighbours_sql() -> String {
    format!(
        "SELECT {CHUNK_COLUMNS}
         FROM chunks h
         JOIN chunks c ON c.doc_id = h.doc_id
             AND c.ordinal BETWEEN h.ordinal - ?2 AND h.ordinal + ?3
         JOIN documents d ON d.id = c.doc_id
         WHERE h.id = ?1
         ORDER BY c.ordinal"
    )
}

fn stored_chunk_row(r: &Row) -> rusqlite::Result<StoredChunk> {
    Ok(StoredChunk {
        id: r.get(0)?,
        doc_id: r.get(1)?,
        source: r.get(2)?,
        format: parse_format(&r.get::<_, String>(3)?),
        ordinal: r.get(4)?,
        text: r.get(5)?,
        page: r.get(6)?,
        heading_path: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        start: r.get::<_, i64>(8)? as usize,
        end: r.get::<_, i64>(9)? as usize,
        tokens: r.get(10)?,
    })
}

impl Store {
    pub fn documents(&self) -> Result<Vec<StoredDocument>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {DOC_COLUMNS} FROM documents ORDER BY source"
            ))
            .at(&self.path)?;
        let rows = stmt.query_map([], document_row).at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    /// Every file with documents, with the state sync compares against.
    pub fn files(&self) -> Result<Vec<FileState>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT file, max(hash), max(size), max(mtime_ns), min(indexed_at_ns), count(*)
                 FROM documents GROUP BY file ORDER BY file",
            )
            .at(&self.path)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(FileState {
                    path: r.get(0)?,
                    hash: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime_ns: r.get(3)?,
                    indexed_at_ns: r.get(4)?,
                    documents: r.get::<_, i64>(5)? as usize,
                })
            })
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    pub fn document(&self, source: &str) -> Result<Option<StoredDocument>> {
        self.conn()
            .query_row(
                &format!("SELECT {DOC_COLUMNS} FROM documents WHERE source = ?1"),
                [source],
                document_row,
            )
            .optional()
            .at(&self.path)
    }

    fn count(&self, sql: &str) -> Result<usize> {
        let n: i64 = self
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .at(&self.path)?;
        Ok(n as usize)
    }

    pub fn document_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM documents")
    }

    pub fn chunk_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM chunks")
    }

    pub fn vector_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM vectors")
    }

    /// Chunks without a document, vectors without a chunk, chunks without a vector, and
    /// documents whose chunk count disagrees with their chunks: all zero in a sound store.
    pub fn orphan_count(&self) -> Result<usize> {
        self.count(
            "SELECT (SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents))
                  + (SELECT count(*) FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks))
                  + (SELECT count(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM vectors))
                  + (SELECT count(*) FROM documents d
                     WHERE chunk_count != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id))",
        )
    }

    /// Change-log rows after `seq`: (seq, chunk id, added).
    pub fn changes_since(&self, seq: u64) -> Result<Vec<(u64, i64, bool)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT seq, chunk_id, op FROM changes WHERE seq > ?1 ORDER BY seq")
            .at(&self.path)?;
        let rows = stmt
            .query_map([seq as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get(1)?,
                    r.get::<_, i64>(2)? == 1,
                ))
            })
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    /// A chunk as the derived indexes see it; `None` once it was deleted.
    pub fn indexed_chunk(&self, id: i64) -> Result<Option<IndexedChunk>> {
        self.conn()
            .query_row(&format!("{INDEXED_SQL} WHERE c.id = ?1"), [id], indexed_row)
            .optional()
            .at(&self.path)
    }

    /// Streams every chunk to `f`, for rebuilding a derived index.
    pub fn for_each_indexed_chunk(
        &self,
        mut f: impl FnMut(IndexedChunk) -> Result<()>,
    ) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("{INDEXED_SQL} ORDER BY c.id"))
            .at(&self.path)?;
        let mut rows = stmt.query([]).at(&self.path)?;
        while let Some(row) = rows.next().at(&self.path)? {
            f(indexed_row(row).at(&self.path)?)?;
        }
        Ok(())
    }

    /// Chunks by id, in the order asked; ids that no longer exist are skipped.
    pub fn chunks(&self, ids: &[i64]) -> Result<Vec<StoredChunk>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id
                 WHERE c.id = ?1"
            ))
            .at(&self.path)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let chunk = stmt
                .query_row([id], stored_chunk_row)
                .optional()
                .at(&self.path)?;
            out.extend(chunk);
        }
        Ok(out)
    }

    /// The chunks of chunk `id`'s document from `before` ordinals before it to `after` after
    /// it, in document order, the chunk itself included; empty when `id` no longer exists.
    /// Two indexed lookups (the chunk by id, then the range on `UNIQUE (doc_id, ordinal)`),
    /// never a scan.
    pub fn neighbour_chunks(
        &self,
        id: i64,
        before: usize,
        after: usize,
    ) -> Result<Vec<StoredChunk>> {
        let clamp = |n: usize| i64::try_from(n).unwrap_or(i64::MAX / 4).min(i64::MAX / 4);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&neighbours_sql()).at(&self.path)?;
        let rows = stmt
            .query_map(params![id, clamp(before), clamp(after)], stored_chunk_row)
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    /// (chunk id, document id) of every chunk, for turning document filters into chunk sets.
    pub fn chunk_documents(&self) -> Result<Vec<(i64, i64)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, doc_id FROM chunks")
            .at(&self.path)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    /// Vectors already computed for these chunk texts (from any document), so renamed,
    /// copied or partly edited files re-embed only what is new.
    pub fn cached_vectors(&self, texts: &[&str]) -> Result<HashMap<[u8; 32], Vec<f32>>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT v.embedding FROM chunks c JOIN vectors v ON v.chunk_id = c.id
                 WHERE c.text_hash = ?1 LIMIT 1",
            )
            .at(&self.path)?;
        let mut out = HashMap::new();
        for text in texts {
            let h = text_hash(text);
            if out.contains_key(&h) {
                continue;
            }
            let blob: Option<Vec<u8>> = stmt
                .query_row(params![h], |r| r.get(0))
                .optional()
                .at(&self.path)?;
            if let Some(b) = blob {
                out.insert(h, blob_to_vector(&b));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard for "never a full scan per question": the neighbour lookup finds the
    /// hit by its primary key and its neighbours through `UNIQUE (doc_id, ordinal)`.
    #[test]
    fn neighbour_lookup_uses_indexes_only() {
        let store = Store::open(None).unwrap();
        let conn = store.conn();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", neighbours_sql()))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(params![1, 2, 2], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "a step scans a table: {plan:?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.contains("c USING INDEX") && step.contains("doc_id=?")),
            "the neighbours are not found through (doc_id, ordinal): {plan:?}"
        );
    }
}
