//! Derived indexes that are stale, missing or damaged are caught up or rebuilt on open.

use crate::support::{
    Docs, assert_consistent, bm25_sources, disk_kb_with_docs, embedder, file_bytes,
};
use anyhow::Result;
use ragtune_index::{Error, KnowledgeBase};
use std::path::Path;

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
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
    std::fs::remove_dir_all(tmp.path().join("bm25"))?;
    reopen_and_check(tmp.path(), &docs, "rebuilt BM25 index")
}

#[test]
fn corrupted_bm25_directory_is_rebuilt_from_sqlite() -> Result<()> {
    let (tmp, docs) = (tempfile::tempdir()?, Docs::new()?);
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
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
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
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
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
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
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
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

/// Every file under `dir` but kb.sqlite (and its journal) and the writer lock, with its bytes.
fn derived_files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = file_bytes(dir);
    files.retain(|p, _| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        !name.starts_with("kb.sqlite") && name != "writer.lock"
    });
    files
}

/// Regression: `truncate -s 0 K/kb.sqlite; ragtune search --kb K x` printed "no results"
/// and re-initialised the database, emptying `bm25/` and `vectors.bin`.
#[test]
fn a_zeroed_database_is_damage_and_wipes_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let docs = Docs::new()?;
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
    let before = derived_files(tmp.path());
    assert!(!before.is_empty());
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("kb.sqlite"))?
        .set_len(0)?;

    // Reading refuses, and so does opening for writing (it would initialise and rebuild).
    for result in [
        KnowledgeBase::open_existing(tmp.path(), &embedder()),
        KnowledgeBase::open(tmp.path(), &embedder()),
    ] {
        let err = result.err().expect("a zeroed database must not open");
        assert!(matches!(err, Error::Damaged { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("0 bytes") && msg.contains("nothing was changed"),
            "{msg}"
        );
        assert!(!msg.contains("delete"), "advice that destroys data: {msg}");
    }
    assert_eq!(derived_files(tmp.path()), before);
    assert_eq!(std::fs::metadata(tmp.path().join("kb.sqlite"))?.len(), 0);
    Ok(())
}

#[test]
fn reading_a_missing_knowledge_base_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nowhere");
    let err = KnowledgeBase::open_existing(&dir, &embedder())
        .err()
        .expect("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("ragtune ingest"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn a_healthy_knowledge_base_opens_for_reading() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let docs = Docs::new()?;
    disk_kb_with_docs(tmp.path(), &docs, 6)?;
    let kb = KnowledgeBase::open_existing(tmp.path(), &embedder())?;
    assert_consistent(&kb);
    assert_eq!(bm25_sources(&kb, "topic3"), vec![docs.source("d3.txt")]);
    Ok(())
}

/// Regression: of two concurrent ingests, the loser printed tantivy's raw `LockBusy` after
/// committing part of its files. The writer lock refuses it up front, naming the holder.
#[test]
fn a_second_writer_is_refused_with_the_holders_pid() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let first = KnowledgeBase::lock_writer(tmp.path())?;
    let err = KnowledgeBase::lock_writer(tmp.path()).expect_err("second writer");
    match &err {
        Error::Busy { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains(&format!(
            "another ingest is running (pid {})",
            std::process::id()
        )),
        "{err}"
    );
    drop(first);
    KnowledgeBase::lock_writer(tmp.path())?;
    Ok(())
}
