//! `check` reports a damaged knowledge base without touching it; `repair` fixes what SQLite
//! still holds, and a check afterwards is clean.

use crate::support::{Docs, disk_kb_with_docs, embedder, file_bytes, sync};
use anyhow::Result;
use ragtune_core::Embedder;
use ragtune_index::{Error, KnowledgeBase, check, repair};
use std::path::Path;

fn kb_with_docs(dir: &Path) -> Result<Docs> {
    let docs = Docs::new()?;
    disk_kb_with_docs(dir, &docs, 4)?;
    Ok(docs)
}

fn problems(dir: &Path) -> Result<String> {
    let report = check(dir, None)?;
    Ok(report
        .problems
        .iter()
        .map(|p| format!("{} -> {}", p.what, p.repair))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Checks without changing a byte, expects `expect` among the problems, repairs, re-checks.
fn reported_then_repaired(dir: &Path, expect: &str) -> Result<()> {
    let before = file_bytes(dir);
    let found = problems(dir)?;
    assert!(found.contains(expect), "expected {expect:?} in {found:?}");
    assert!(file_bytes(dir) == before, "check changed files");
    let fixed = repair(dir)?;
    assert!(!fixed.actions.is_empty());
    assert!(fixed.after.is_clean(), "{:?}", fixed.after.problems);
    assert!(check(dir, None)?.is_clean());
    Ok(())
}

#[test]
fn a_clean_knowledge_base_checks_clean() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    kb_with_docs(tmp.path())?;
    let report = check(tmp.path(), None)?;
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.documents, 4);
    assert_eq!(report.chunks, 8);
    assert_eq!(report.bm25_docs, Some(8));
    assert_eq!(report.index_vectors, Some(8));
    assert_eq!(report.embedder.as_deref(), Some(embedder().name()));
    Ok(())
}

/// Found by scripts/kill-matrix: an ingest killed before its first commit leaves a database
/// with no chunks and no vector file; check called that "missing" and repair had nothing to do,
/// so the knowledge base could never check clean.
#[test]
fn a_knowledge_base_killed_before_its_first_commit_checks_clean() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    drop(KnowledgeBase::open(tmp.path(), &embedder())?);
    for derived in ["vectors.bin", "bm25"] {
        let path = tmp.path().join(derived);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else if path.exists() {
            std::fs::remove_file(&path)?;
        }
        let report = check(tmp.path(), None)?;
        assert!(
            report.is_clean(),
            "without {derived}: {:?}",
            report.problems
        );
        assert_eq!(report.index_vectors, Some(0));
    }
    assert!(repair(tmp.path())?.after.is_clean());
    Ok(())
}

#[test]
fn a_deleted_bm25_index_is_reported_untouched_then_repaired() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    kb_with_docs(tmp.path())?;
    std::fs::remove_dir_all(tmp.path().join("bm25"))?;
    reported_then_repaired(tmp.path(), "BM25 index (bm25/) is missing")
}

#[test]
fn a_truncated_vector_file_is_reported_untouched_then_repaired() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    kb_with_docs(tmp.path())?;
    let file = tmp.path().join("vectors.bin");
    let bytes = std::fs::read(&file)?;
    std::fs::write(&file, &bytes[..bytes.len() / 2])?;
    reported_then_repaired(tmp.path(), "vector index (vectors.bin) is unreadable")
}

#[test]
fn orphan_rows_are_found_and_removed_without_losing_documents() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    kb_with_docs(tmp.path())?;
    {
        let db = rusqlite::Connection::open(tmp.path().join("kb.sqlite"))?;
        db.execute_batch("PRAGMA foreign_keys = OFF;")?;
        db.execute(
            "INSERT INTO chunks (doc_id, ordinal, text, text_hash, heading_path, start, end, tokens)
             VALUES (9999, 0, 'orphan', x'00', '[]', 0, 6, 1)",
            [],
        )?;
        db.execute(
            "INSERT INTO vectors (chunk_id, embedding) VALUES (99999, x'0000803f')",
            [],
        )?;
    }
    reported_then_repaired(tmp.path(), "1 chunks without a document -> delete them")?;
    let report = check(tmp.path(), None)?;
    assert_eq!((report.documents, report.chunks), (4, 8));
    Ok(())
}

#[test]
fn a_zeroed_database_is_damaged_and_a_missing_one_not_found() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    kb_with_docs(tmp.path())?;
    let db = tmp.path().join("kb.sqlite");
    let len = std::fs::metadata(&db)?.len() as usize;
    std::fs::write(&db, vec![0u8; len])?;
    let err = check(tmp.path(), None).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    assert!(matches!(repair(tmp.path()), Err(Error::Damaged { .. })));
    std::fs::write(&db, b"")?;
    let err = check(tmp.path(), None).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err}");
    let err = check(&tmp.path().join("nothing"), None).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    Ok(())
}

#[test]
fn an_index_behind_the_database_is_stale_and_one_ahead_corrupt() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let docs = kb_with_docs(tmp.path())?;
    let file = tmp.path().join("vectors.bin");
    let old = std::fs::read(&file)?;
    docs.write("d9.txt", "a later document")?;
    let mut kb = KnowledgeBase::open(tmp.path(), &embedder())?;
    sync(&mut kb, &[docs.root()])?;
    drop(kb);
    let new = std::fs::read(&file)?;
    std::fs::write(&file, &old)?;
    reported_then_repaired(tmp.path(), "behind the database (9): stale")?;

    let small = tempfile::tempdir()?;
    let one = Docs::new()?;
    one.write("x.txt", "just one")?;
    let mut kb = KnowledgeBase::open(small.path(), &embedder())?;
    sync(&mut kb, &[one.root()])?;
    drop(kb);
    std::fs::write(small.path().join("vectors.bin"), &new)?;
    reported_then_repaired(small.path(), "ahead of the database (1): corrupt")
}
