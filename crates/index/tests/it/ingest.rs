//! Sync through the real loaders of `ragtune-ingest`.

use crate::support::{Docs, assert_consistent, bm25_sources, embedder};
use anyhow::Result;
use ragtune_index::{IngestSource, KnowledgeBase, NoProgress, SyncOptions, SyncTarget};
use std::path::PathBuf;

#[test]
fn ingest_source_indexes_formats_and_jsonl_records_as_documents() -> Result<()> {
    let docs = Docs::new()?;
    docs.write(
        "guide.md",
        "# Install\n\nRun the installer twice.\n\n## Verify\n\nCheck the checksum.\n",
    )?;
    docs.write("notes.txt", "Plain notes about the quarterly budget.\n")?;
    docs.write("page.html", "<html><head><title>Faq</title></head><body><h1>FAQ</h1><p>Refunds take five days.</p></body></html>")?;
    docs.write("records.jsonl", "{\"text\": \"first record about apples\"}\n{\"text\": \"second record about pears\"}\n{\"text\": \"third record about plums\"}\n")?;
    let e = embedder();
    let source = IngestSource::new(&e);
    let mut kb = KnowledgeBase::in_memory(&e)?;
    let roots = [docs.root()];
    let s = kb.sync(
        &roots,
        &source,
        &e,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    assert_eq!(s.added.len(), 4, "{s:?}");
    assert!(s.failed.is_empty(), "{s:?}");
    assert_consistent(&kb);
    let jsonl = docs.source("records.jsonl");
    let records: Vec<_> = kb
        .documents()?
        .into_iter()
        .filter(|d| d.file == jsonl)
        .collect();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|d| d.source.starts_with(&format!("{jsonl}#"))),
        "{records:?}"
    );
    let pears = bm25_sources(&kb, "pears");
    assert_eq!(pears.len(), 1);
    assert!(pears[0].starts_with(&jsonl), "{pears:?}");
    assert_eq!(bm25_sources(&kb, "refunds"), vec![docs.source("page.html")]);
    let hit = kb.bm25_search("checksum", 1, None)?[0].0;
    assert_eq!(
        kb.chunks(&[hit])?[0].heading_path,
        vec!["Install", "Verify"]
    );

    // One record fewer: the file is updated and its removed record is gone everywhere.
    docs.write(
        "records.jsonl",
        "{\"text\": \"first record about apples\"}\n{\"text\": \"third record about plums\"}\n",
    )?;
    let s = kb.sync(
        &roots,
        &source,
        &e,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    assert_eq!(s.updated, vec![jsonl.clone()]);
    assert!(bm25_sources(&kb, "pears").is_empty());
    assert_eq!(
        kb.documents()?.iter().filter(|d| d.file == jsonl).count(),
        2
    );
    assert_consistent(&kb);

    std::fs::remove_file(docs.path("records.jsonl"))?;
    let s = kb.sync(
        &roots,
        &source,
        &e,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    assert_eq!(s.deleted, vec![jsonl.clone()]);
    assert!(kb.documents()?.iter().all(|d| d.file != jsonl));
    assert_consistent(&kb);
    Ok(())
}

#[test]
fn real_document_corpus_syncs_and_reports_failures_per_file() -> Result<()> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/docs-corpus/docling-testdata");
    let e = embedder();
    let kb_dir = tempfile::tempdir()?;
    let mut kb = KnowledgeBase::open(kb_dir.path(), &e)?;
    let start = std::time::Instant::now();
    let s = kb.sync(
        std::slice::from_ref(&corpus),
        &IngestSource::new(&e),
        &e,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    eprintln!(
        "docling-testdata: {} added, {} failed, {} warnings, {} chunks in {:.1} s",
        s.added.len(),
        s.failed.len(),
        s.warnings.len(),
        kb.health()?.chunks,
        start.elapsed().as_secs_f64()
    );
    for f in &s.failed {
        eprintln!("  failed {}: {}", f.path.display(), f.reason);
    }
    assert!(s.added.len() >= 10, "{s:?}");
    assert_consistent(&kb);
    let again = kb.sync(
        &[corpus],
        &IngestSource::new(&e),
        &e,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    assert_eq!(again.unchanged, s.added.len());
    assert!(again.added.is_empty() && again.updated.is_empty() && again.deleted.is_empty());
    Ok(())
}

#[test]
fn a_sync_with_other_chunk_settings_is_refused_before_it_writes() -> Result<()> {
    let docs = Docs::new()?;
    let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
    docs.write("long.txt", &words.join(" "))?;
    let e = embedder();
    let dir = tempfile::tempdir()?;
    let mut kb = KnowledgeBase::open(dir.path(), &e)?;
    let roots = [docs.root()];
    let sync = |kb: &mut KnowledgeBase, max_tokens: usize| {
        let mut source = IngestSource::new(&e);
        source.chunk.max_tokens = max_tokens;
        kb.sync(
            &roots,
            &source,
            &e,
            &SyncOptions::default(),
            &mut NoProgress,
        )
    };
    sync(&mut kb, 64)?;
    let recorded = SyncTarget::chunking(&kb)?.expect("the first sync records its settings");
    assert_eq!(recorded.max_tokens, 64);
    let chunks = kb.health()?.chunks;
    assert!(chunks > 1, "{chunks}");

    // Other settings: refused, naming both, and nothing is touched (a reopened knowledge
    // base holds the same chunks and the same record).
    docs.write("new.txt", "a file the refused sync must not add")?;
    let err = sync(&mut kb, 128).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(
        err.contains("at most 64 tokens") && err.contains("at most 128 tokens"),
        "{err}"
    );
    drop(kb);
    let mut kb = KnowledgeBase::open(dir.path(), &e)?;
    assert_eq!(kb.health()?.chunks, chunks);
    assert_eq!(kb.documents()?.len(), 1);
    assert_eq!(SyncTarget::chunking(&kb)?, Some(recorded.clone()));

    // The recorded settings sync as before.
    let s = sync(&mut kb, 64)?;
    assert_eq!((s.added.len(), s.unchanged), (1, 1), "{s:?}");

    // Once every document is gone, nothing was cut the old way: new settings are taken.
    std::fs::remove_file(docs.root().join("long.txt"))?;
    std::fs::remove_file(docs.root().join("new.txt"))?;
    sync(&mut kb, 64)?;
    docs.write("long.txt", &words.join(" "))?;
    sync(&mut kb, 128)?;
    assert_eq!(SyncTarget::chunking(&kb)?.map(|c| c.max_tokens), Some(128));
    assert!(kb.health()?.chunks < chunks);
    Ok(())
}
