//! Writes: one transaction per file. The file's old documents, chunks and vectors go, the new
//! ones come in, the change log records both, and document rows are completed last.

use super::{Store, vector_to_blob};
use crate::Result;
use crate::error::Context;
use ragtune_core::{Chunk, Format, Metadata};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file a set of documents came from, as sync saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Absolute path (or any key, for documents that have no file).
    pub path: String,
    /// Content hash of the file's bytes (blake3, hex).
    pub hash: String,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (0 when unknown).
    pub mtime_ns: i64,
}

/// One document of a file, with its chunks and their vectors.
#[derive(Debug, Clone, Copy)]
pub struct NewDocument<'a> {
    pub source: &'a str,
    pub format: Format,
    pub metadata: &'a Metadata,
    pub chunks: &'a [Chunk],
    pub vectors: &'a [Vec<f32>],
}

/// A document that is its own file (the simple case, and evaluation corpora).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    pub source: String,
    pub format: Format,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub metadata: Metadata,
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The key under which a chunk text's vector is reused (blake3 of its bytes).
pub fn text_hash(text: &str) -> [u8; 32] {
    *blake3::hash(text.as_bytes()).as_bytes()
}

impl Store {
    /// Replaces everything stored for `file` with `docs`, atomically. Returns the new chunk
    /// ids of each document, in order.
    pub fn put_file(&self, file: &FileRecord, docs: &[NewDocument<'_>]) -> Result<Vec<Vec<i64>>> {
        let path = self.path.clone();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        // Versions survive replacement: a document is "updated", not "new", when its source
        // was there before (under this file or, after a rename, another one).
        let mut versions: HashMap<String, i64> = HashMap::new();
        for doc in docs {
            let v: Option<i64> = tx
                .query_row(
                    "SELECT version FROM documents WHERE source = ?1",
                    [doc.source],
                    |r| r.get(0),
                )
                .optional()
                .at(&path)?;
            versions.insert(doc.source.to_owned(), v.unwrap_or(0));
        }
        remove_file(&tx, &file.path).at(&path)?;
        for doc in docs {
            remove_source(&tx, doc.source).at(&path)?;
        }
        let mut all_ids = Vec::with_capacity(docs.len());
        for doc in docs {
            let version = versions[doc.source] + 1;
            all_ids.push(insert_document(&tx, file, doc, version).at(&path)?);
        }
        tx.commit().at(&path)?;
        Ok(all_ids)
    }

    /// Replaces (or inserts) a single-document file.
    pub fn put_document(
        &self,
        doc: &DocumentRecord,
        chunks: &[Chunk],
        vectors: &[Vec<f32>],
    ) -> Result<Vec<i64>> {
        let file = FileRecord {
            path: doc.source.clone(),
            hash: doc.hash.clone(),
            size: doc.size,
            mtime_ns: doc.mtime_ns,
        };
        let new = NewDocument {
            source: &doc.source,
            format: doc.format,
            metadata: &doc.metadata,
            chunks,
            vectors,
        };
        Ok(self.put_file(&file, &[new])?.pop().unwrap_or_default())
    }

    /// Removes every document loaded from `file`. Returns how many there were.
    pub fn delete_file(&self, file: &str) -> Result<usize> {
        let path = self.path.clone();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        let n = remove_file(&tx, file).at(&path)?;
        tx.commit().at(&path)?;
        Ok(n)
    }

    /// Removes one document. `false` if it was not there.
    pub fn delete_document(&self, source: &str) -> Result<bool> {
        let path = self.path.clone();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        let removed = remove_source(&tx, source).at(&path)?;
        tx.commit().at(&path)?;
        Ok(removed)
    }

    /// Records a new modification time for a file whose content did not change, so the next
    /// sync can skip hashing it.
    pub fn touch_file(&self, file: &str, mtime_ns: i64) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE documents SET mtime_ns = ?2, indexed_at_ns = ?3 WHERE file = ?1",
                params![file, mtime_ns, now_ns()],
            )
            .at(&self.path)?;
        Ok(())
    }
}

impl Store {
    /// Deletes chunks whose document is gone (logging their removal for the derived indexes)
    /// and vectors whose chunk is gone, in one transaction. Returns (chunks, vectors) removed.
    pub fn remove_orphans(&self) -> Result<(usize, usize)> {
        let mut conn = self.conn();
        let tx = conn.transaction().at(&self.path)?;
        let orphan = "SELECT id FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)";
        tx.execute(
            "INSERT INTO changes (chunk_id, op) SELECT id, 0 FROM chunks
             WHERE doc_id NOT IN (SELECT id FROM documents) ORDER BY id",
            [],
        )
        .at(&self.path)?;
        tx.execute(
            &format!("DELETE FROM vectors WHERE chunk_id IN ({orphan})"),
            [],
        )
        .at(&self.path)?;
        let chunks = tx
            .execute(&format!("DELETE FROM chunks WHERE id IN ({orphan})"), [])
            .at(&self.path)?;
        let vectors = tx
            .execute(
                "DELETE FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)",
                [],
            )
            .at(&self.path)?;
        tx.commit().at(&self.path)?;
        Ok((chunks, vectors))
    }
}

fn insert_document(
    tx: &Transaction,
    file: &FileRecord,
    doc: &NewDocument<'_>,
    version: i64,
) -> rusqlite::Result<Vec<i64>> {
    assert_eq!(doc.chunks.len(), doc.vectors.len(), "one vector per chunk");
    // Placeholder hash (''): the row is completed last, below, and a row with an empty
    // hash can never be seen outside this transaction.
    tx.execute(
        "INSERT INTO documents (source, file, format, hash, size, mtime_ns, metadata, version,
                                chunk_count, indexed_at_ns)
         VALUES (?1, ?2, ?3, '', 0, 0, '{}', ?4, 0, 0)",
        params![doc.source, file.path, doc.format.as_str(), version],
    )?;
    let doc_id = tx.last_insert_rowid();
    let mut chunk_stmt = tx.prepare_cached(
        "INSERT INTO chunks (doc_id, ordinal, text, text_hash, page, heading_path, start, end, tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut vec_stmt =
        tx.prepare_cached("INSERT INTO vectors (chunk_id, embedding) VALUES (?1, ?2)")?;
    let mut log = tx.prepare_cached("INSERT INTO changes (chunk_id, op) VALUES (?1, 1)")?;
    let mut ids = Vec::with_capacity(doc.chunks.len());
    for (chunk, vector) in doc.chunks.iter().zip(doc.vectors) {
        chunk_stmt.execute(params![
            doc_id,
            chunk.ordinal,
            chunk.text,
            text_hash(&chunk.text),
            chunk.page,
            serde_json::to_string(&chunk.heading_path).expect("strings serialise"),
            chunk.start as i64,
            chunk.end as i64,
            chunk.tokens,
        ])?;
        let id = tx.last_insert_rowid();
        vec_stmt.execute(params![id, vector_to_blob(vector)])?;
        log.execute([id])?;
        ids.push(id);
    }
    let metadata = serde_json::to_string(doc.metadata).expect("string map serialises");
    tx.execute(
        "UPDATE documents SET hash = ?2, size = ?3, mtime_ns = ?4, metadata = ?5, chunk_count = ?6,
                indexed_at_ns = ?7
         WHERE id = ?1",
        params![
            doc_id,
            file.hash,
            file.size as i64,
            file.mtime_ns,
            metadata,
            doc.chunks.len() as i64,
            now_ns()
        ],
    )?;
    Ok(ids)
}

/// Logs and deletes the chunks and vectors of the matching documents, then the documents.
fn remove_where(tx: &Transaction, condition: &str, key: &str) -> rusqlite::Result<usize> {
    tx.execute(
        &format!(
            "INSERT INTO changes (chunk_id, op)
             SELECT c.id, 0 FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.{condition}
             ORDER BY c.id"
        ),
        [key],
    )?;
    tx.execute(
        &format!(
            "DELETE FROM vectors WHERE chunk_id IN
             (SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.{condition})"
        ),
        [key],
    )?;
    tx.execute(
        &format!("DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE {condition})"),
        [key],
    )?;
    tx.execute(&format!("DELETE FROM documents WHERE {condition}"), [key])
}

fn remove_file(tx: &Transaction, file: &str) -> rusqlite::Result<usize> {
    remove_where(tx, "file = ?1", file)
}

fn remove_source(tx: &Transaction, source: &str) -> rusqlite::Result<bool> {
    Ok(remove_where(tx, "source = ?1", source)? > 0)
}
