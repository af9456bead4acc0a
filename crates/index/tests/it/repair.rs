//! Derived indexes that are stale, missing or damaged are caught up or rebuilt on open.

use crate::support::{Docs, assert_consistent, bm25_sources, embedder, sync};
use anyhow::Result;
use ragtune_index::KnowledgeBase;
use std::path::Path;

fn kb_with_docs(dir: &Path, docs: &Docs) -> Result<()> {
    for i in 0..6 {
        docs.write(
            &format!("d{i}.txt"),
            &format!("paragraph about topic{i}\n\nsecond part {i}"),
        )?;
    }
    let mut kb = KnowledgeBase::open(dir, &embedder())?;
    sync(&mut kb, &[docs.root()])?;
    Ok(())
}

fn reopen_and_check(dir: &Path, docs: &Docs, expect_repair: &str) -> Result<()> {
    let kb = KnowledgeBase::open(dir, &embedder())?;
    let repairs = kb.repairs().join("\n");
    assert!(
        repairs.contains(expect_repair),
        "expected {expect_repair:?} in {repairs:?}"
    );
    assert_consistent(&kb);
    assert_eq!(kb.health()?.chunks, 12);
    assert_eq!(bm25_sources(&kb, "topic3"), vec![docs.source("d3.txt")]);
    // The repair was committed: the next open has nothing to do.
    drop(kb);
    let kb = KnowledgeBase::open(dir, &embedder())?;
    assert!(kb.repairs().is_empty(), "{:?}", kb.repairs());
    Ok(())
}

#[test]
fn missing_bm25_directory_is_rebuilt_from_sqlite() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    kb_with_docs(tmp.path(), &docs)?;
    std::fs::remove_dir_all(tmp.path().join("bm25"))?;
    reopen_and_check(tmp.path(), &docs, "rebuilt BM25 index")
}

#[test]
fn corrupted_bm25_directory_is_rebuilt_from_sqlite() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    kb_with_docs(tmp.path(), &docs)?;
    std::fs::write(tmp.path().join("bm25/meta.json"), b"{ not json")?;
    reopen_and_check(tmp.path(), &docs, "rebuilt BM25 index")?;
    // Segment files gone while meta.json still names them.
    for entry in std::fs::read_dir(tmp.path().join("bm25"))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "idx" || e == "term") {
            std::fs::remove_file(p)?;
        }
    }
    reopen_and_check(tmp.path(), &docs, "rebuilt BM25 index")
}

#[test]
fn damaged_or_missing_vector_file_is_rebuilt_from_sqlite() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    kb_with_docs(tmp.path(), &docs)?;
    let file = tmp.path().join("vectors.bin");
    let mut bytes = std::fs::read(&file)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes)?;
    reopen_and_check(tmp.path(), &docs, "checksum mismatch")?;
    std::fs::remove_file(&file)?;
    reopen_and_check(tmp.path(), &docs, "rebuilt vector index")
}

#[test]
fn writes_after_the_last_checkpoint_are_replayed_on_open() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    kb_with_docs(tmp.path(), &docs)?;
    {
        // Written to SQLite, never checkpointed: as if the process died here.
        let mut kb = KnowledgeBase::open(tmp.path(), &embedder())?;
        kb.delete_document(&docs.source("d0.txt"))?;
        kb.delete_document(&docs.source("d1.txt"))?;
    }
    let kb = KnowledgeBase::open(tmp.path(), &embedder())?;
    assert!(
        kb.repairs().iter().any(|r| r.contains("replayed")),
        "{:?}",
        kb.repairs()
    );
    assert_consistent(&kb);
    assert_eq!(kb.health()?.chunks, 8);
    assert!(bm25_sources(&kb, "topic0").is_empty());
    Ok(())
}

#[test]
fn a_reader_opens_while_a_writer_holds_the_index() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    kb_with_docs(tmp.path(), &docs)?;
    let mut writer = KnowledgeBase::open(tmp.path(), &embedder())?;
    writer.delete_document(&docs.source("d0.txt"))?; // takes the BM25 writer, not checkpointed
    let reader = KnowledgeBase::open(tmp.path(), &embedder())?;
    assert!(
        reader
            .repairs()
            .iter()
            .any(|r| r.contains("another process")),
        "{:?}",
        reader.repairs()
    );
    // The reader searches the last checkpoint; the deleted chunk no longer hydrates.
    assert_eq!(bm25_sources(&reader, "topic3"), vec![docs.source("d3.txt")]);
    assert!(bm25_sources(&reader, "topic0").is_empty());
    drop(reader);
    writer.checkpoint()?;
    drop(writer);
    let kb = KnowledgeBase::open(tmp.path(), &embedder())?;
    assert!(kb.repairs().is_empty(), "{:?}", kb.repairs());
    assert_consistent(&kb);
    Ok(())
}
