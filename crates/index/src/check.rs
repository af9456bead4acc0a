//! `ragtune kb check`: an fsck for knowledge bases. [`check`] looks at every part of a
//! knowledge base without writing anything (SQLite opened read-only, the derived indexes read,
//! never caught up); [`repair`] takes the writer lock, lets opening catch up or rebuild the
//! derived indexes, removes SQLite rows that reference missing rows, and checks again.

use crate::bm25::Bm25Index;
use crate::error::Context;
use crate::kb::{BM25_DIR, DB_FILE, VECTOR_FILE};
use crate::store::{EmbedderInfo, Store, TABLES};
use crate::vector::LocalVectorIndex;
use crate::{Error, KbOptions, KnowledgeBase, Result};
use std::path::{Path, PathBuf};

/// What a check found. `problems` is empty for a sound knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    pub dir: PathBuf,
    pub embedder: Option<String>,
    pub dimension: Option<usize>,
    pub documents: usize,
    pub chunks: usize,
    pub sqlite_vectors: usize,
    /// Chunks with a document and a vector: what each derived index should hold.
    pub indexable_chunks: usize,
    /// `None` when the BM25 index is missing or unreadable.
    pub bm25_docs: Option<usize>,
    pub index_vectors: Option<usize>,
    pub chunks_without_document: usize,
    pub vectors_without_chunk: usize,
    pub chunks_without_vector: usize,
    pub documents_with_wrong_chunk_count: usize,
    /// The change sequence of SQLite and the one each derived index recorded.
    pub seq: u64,
    pub bm25_seq: Option<u64>,
    pub vector_seq: Option<u64>,
    pub problems: Vec<Problem>,
}

/// One thing wrong, and what `--repair` does about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub what: String,
    pub repair: String,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`repair`] did, and the check after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    pub actions: Vec<String>,
    pub after: CheckReport,
}

const REBUILD: &str = "rebuild it from SQLite";
const REINGEST: &str = "none (the rows are the only copy): run `ragtune ingest` on the files again";

/// Checks the knowledge base in `dir` without writing anything. A missing one is
/// [`Error::NotFound`], a `kb.sqlite` without ragtune's tables [`Error::Damaged`]. With
/// `expected`, a knowledge base built with another embedder is reported as a problem.
pub fn check(dir: &Path, expected: Option<&EmbedderInfo>) -> Result<CheckReport> {
    let db = dir.join(DB_FILE);
    // Like `Store::inspect`, which would leave `-wal` and `-shm` files behind.
    let damaged = |reason: String| Error::Damaged {
        path: dir.to_owned(),
        reason,
    };
    match std::fs::metadata(&db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                path: dir.to_owned(),
            });
        }
        Err(e) => return Err(Error::io(&db, e)),
        Ok(m) if m.len() == 0 => return Err(damaged("kb.sqlite is empty (0 bytes)".into())),
        Ok(_) => {}
    }
    let store = Store::open_read_only(&db)?;
    let tables = match store.table_count() {
        // A file SQLite does not recognise at all (overwritten, zero-filled) is damage too.
        Err(Error::Sqlite { source, .. })
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) =>
        {
            return Err(damaged(format!("kb.sqlite is not a database ({source})")));
        }
        other => other?,
    };
    if tables != TABLES.len() {
        return Err(damaged(format!(
            "kb.sqlite has {tables} of ragtune's {} tables",
            TABLES.len()
        )));
    }
    let count = |sql: &str| -> Result<usize> {
        let n: i64 = store.conn().query_row(sql, [], |r| r.get(0)).at(&db)?;
        Ok(n as usize)
    };
    let recorded = store.embedder()?;
    let mut r = CheckReport {
        dir: dir.to_owned(),
        embedder: recorded.as_ref().map(|e| e.name.clone()),
        dimension: recorded.as_ref().map(|e| e.dimension),
        documents: store.document_count()?,
        chunks: store.chunk_count()?,
        sqlite_vectors: store.vector_count()?,
        indexable_chunks: count(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
             JOIN vectors v ON v.chunk_id = c.id",
        )?,
        bm25_docs: None,
        index_vectors: None,
        chunks_without_document: count(
            "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)",
        )?,
        vectors_without_chunk: count(
            "SELECT count(*) FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)",
        )?,
        chunks_without_vector: count(
            "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM vectors)",
        )?,
        documents_with_wrong_chunk_count: count(
            "SELECT count(*) FROM documents d
             WHERE chunk_count != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)",
        )?,
        seq: store.seq()?,
        bm25_seq: None,
        vector_seq: None,
        problems: Vec::new(),
    };
    let mut problem = |what: String, repair: &str| {
        r.problems.push(Problem {
            what,
            repair: repair.to_owned(),
        })
    };
    if let (Some(rec), Some(want)) = (&recorded, expected)
        && rec != want
    {
        problem(
            format!(
                "built with embedder `{}` ({} dimensions), not `{}` ({})",
                rec.name, rec.dimension, want.name, want.dimension
            ),
            "none: use the same embedder, or ingest into a new knowledge base",
        );
    }
    if recorded.is_none() && r.chunks > 0 {
        problem("no embedder is recorded".into(), REINGEST);
    }
    let orphans = [
        (
            r.chunks_without_document,
            "chunks without a document",
            "delete them",
        ),
        (
            r.vectors_without_chunk,
            "vectors without a chunk",
            "delete them",
        ),
        (r.chunks_without_vector, "chunks without a vector", REINGEST),
        (
            r.documents_with_wrong_chunk_count,
            "documents whose chunk count is wrong",
            REINGEST,
        ),
    ];
    for (n, what, repair) in orphans {
        if n > 0 {
            problem(format!("{n} {what}"), repair);
        }
    }
    let pruned = store.pruned_through()?;
    let (seq, indexable) = (r.seq, r.indexable_chunks);
    let mut derived = |name: &str, found: Result<Option<(u64, usize)>>| -> Option<(u64, usize)> {
        match found {
            // An ingest killed before its first commit: there is nothing to derive yet.
            Ok(None) if seq == 0 && indexable == 0 => Some((0, 0)),
            Ok(None) => {
                problem(format!("{name} is missing"), REBUILD);
                None
            }
            Err(e) => {
                problem(format!("{name} is unreadable: {e}"), REBUILD);
                None
            }
            Ok(Some((s, n))) => {
                if s > seq {
                    problem(
                        format!("{name} is at change {s}, ahead of the database ({seq}): corrupt"),
                        REBUILD,
                    );
                } else if s < seq {
                    let how = if s < pruned {
                        REBUILD
                    } else {
                        "replay the changes it missed"
                    };
                    problem(
                        format!("{name} is at change {s}, behind the database ({seq}): stale"),
                        how,
                    );
                } else if n != indexable {
                    problem(
                        format!("{name} holds {n} chunks, the database {indexable}"),
                        REBUILD,
                    );
                }
                Some((s, n))
            }
        }
    };
    let bm25 = derived(
        "BM25 index (bm25/)",
        Bm25Index::inspect(&dir.join(BM25_DIR)),
    );
    let vectors_path = dir.join(VECTOR_FILE);
    let vectors = match LocalVectorIndex::inspect(&vectors_path) {
        Ok(Some((s, dim, n))) => match r.dimension {
            Some(d) if d != dim => Err(Error::Corrupt {
                path: vectors_path.clone(),
                what: "vector file",
                reason: format!("{dim} dimensions, the database records {d}"),
            }),
            _ => Ok(Some((s, n))),
        },
        other => other.map(|o| o.map(|(s, _, n)| (s, n))),
    };
    let vectors = derived("vector index (vectors.bin)", vectors);
    (r.bm25_seq, r.bm25_docs) = (bm25.map(|b| b.0), bm25.map(|b| b.1));
    (r.vector_seq, r.index_vectors) = (vectors.map(|v| v.0), vectors.map(|v| v.1));
    Ok(r)
}

/// Repairs what can be repaired without the original files: takes the writer lock (so it
/// fails with [`Error::Busy`] during an ingest), opens the knowledge base for writing with the
/// embedder it records (which catches up or rebuilds the derived indexes from SQLite), removes
/// chunks without a document and vectors without a chunk in one transaction, then checks
/// again. A document is never deleted.
pub fn repair(dir: &Path) -> Result<RepairReport> {
    let before = check(dir, None)?;
    let _lock = KnowledgeBase::lock_writer(dir)?;
    let info = match (before.embedder.clone(), before.dimension) {
        (Some(name), Some(dimension)) => EmbedderInfo { name, dimension },
        _ => {
            return Err(Error::Damaged {
                path: dir.to_owned(),
                reason: "no embedder is recorded in kb.sqlite".into(),
            });
        }
    };
    let mut kb = KnowledgeBase::open_store(dir, info, KbOptions::default())?;
    let mut actions: Vec<String> = kb.repairs().to_vec();
    let (chunks, vectors) = kb.remove_orphans()?;
    if chunks > 0 {
        actions.push(format!("deleted {chunks} chunks without a document"));
    }
    if vectors > 0 {
        actions.push(format!("deleted {vectors} vectors without a chunk"));
    }
    drop(kb);
    Ok(RepairReport {
        actions,
        after: check(dir, None)?,
    })
}
