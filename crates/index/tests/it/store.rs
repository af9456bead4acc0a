//! Writing and reading documents, on both backends.

use crate::support::{
    BACKENDS, DIM, assert_consistent, bm25_sources, dense_sources, embedder, open,
};
use anyhow::Result;
use ragtune_core::{Chunk, Format};
use ragtune_index::testing::HashEmbedder;
use ragtune_index::{DocumentRecord, Error, KnowledgeBase};

fn record(source: &str) -> DocumentRecord {
    DocumentRecord {
        source: source.into(),
        format: Format::Markdown,
        hash: format!("hash-of-{source}"),
        size: 1,
        mtime_ns: 1,
        metadata: [("team".to_owned(), "search".to_owned())].into(),
    }
}

fn chunks(source: &str, texts: &[&str]) -> Vec<Chunk> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Chunk {
            source: source.into(),
            ordinal: i as u32,
            text: t.to_string(),
            start: i * 100,
            end: i * 100 + t.len(),
            page: Some(i as u32 + 1),
            heading_path: vec!["Guide".into(), format!("Part {i}")],
            tokens: 3,
        })
        .collect()
}

#[test]
fn documents_round_trip_and_are_searchable() -> Result<()> {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir()?;
        let mut kb = open(backend, tmp.path())?;
        let e = embedder();
        kb.put_document(
            &record("a.md"),
            &chunks("a.md", &["zebras graze slowly", "lions hunt at night"]),
            &e,
        )?;
        kb.put_document(
            &record("b.md"),
            &chunks("b.md", &["compilers parse tokens"]),
            &e,
        )?;
        kb.checkpoint()?;
        assert_consistent(&kb);
        assert_eq!(
            bm25_sources(&kb, "zebra"),
            vec!["a.md"],
            "{backend:?}: stemming finds zebras"
        );
        assert_eq!(
            dense_sources(&kb, "compilers parse tokens", 1),
            vec!["b.md"],
            "{backend:?}"
        );
        let hit = kb.bm25_search("lions", 1, None)?[0].0;
        let c = &kb.chunks(&[hit])?[0];
        assert_eq!(
            (c.ordinal, c.page, c.start),
            (1, Some(2), 100),
            "{backend:?}"
        );
        assert_eq!(c.heading_path, vec!["Guide", "Part 1"]);
        let d = kb.document("a.md")?.unwrap();
        assert_eq!(
            (d.version, d.chunk_count, d.format),
            (1, 2, Format::Markdown)
        );
        assert_eq!(d.metadata["team"], "search");

        // Replacing a document bumps its version and drops the old chunks everywhere.
        kb.put_document(
            &record("a.md"),
            &chunks("a.md", &["giraffes eat leaves"]),
            &e,
        )?;
        kb.checkpoint()?;
        assert_consistent(&kb);
        assert!(bm25_sources(&kb, "zebras").is_empty(), "{backend:?}");
        assert_eq!(kb.document("a.md")?.unwrap().version, 2);
        assert!(kb.delete_document("b.md")?);
        assert!(!kb.delete_document("b.md")?);
        kb.checkpoint()?;
        assert_consistent(&kb);
        assert_eq!(kb.health()?.chunks, 1);
    }
    Ok(())
}

#[test]
fn disk_knowledge_base_survives_reopen() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let e = embedder();
    {
        let mut kb = KnowledgeBase::open(tmp.path(), &e)?;
        kb.put_document(
            &record("a.md"),
            &chunks("a.md", &["persistent knowledge"]),
            &e,
        )?;
        kb.checkpoint()?;
    }
    let kb = KnowledgeBase::open(tmp.path(), &e)?;
    assert!(kb.repairs().is_empty(), "{:?}", kb.repairs());
    assert_consistent(&kb);
    assert_eq!(bm25_sources(&kb, "knowledge"), vec!["a.md"]);
    Ok(())
}

#[test]
fn opening_with_another_embedder_is_a_clear_error() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    KnowledgeBase::open(tmp.path(), &embedder())?;
    for other in [
        HashEmbedder::named(DIM, "other-model"),
        HashEmbedder::new(DIM * 2),
    ] {
        let err = KnowledgeBase::open(tmp.path(), &other)
            .err()
            .expect("mismatch must fail");
        assert!(matches!(err, Error::EmbedderMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("test-hash-bow-64") && msg.contains("same embedder"),
            "{msg}"
        );
    }
    // Sync with a different embedder than the one the KB was opened with fails too.
    let mut kb = KnowledgeBase::open(tmp.path(), &embedder())?;
    let other = HashEmbedder::named(DIM, "other-model");
    let root = tmp.path().to_owned();
    let err = kb
        .sync(
            &[root],
            &ragtune_index::testing::PlainTextSource,
            &other,
            &Default::default(),
            &mut ragtune_index::NoProgress,
        )
        .unwrap_err();
    assert!(matches!(err, Error::EmbedderMismatch { .. }));
    Ok(())
}

#[test]
fn neighbours_are_the_documents_chunks_in_order_and_never_another_documents() -> Result<()> {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir()?;
        let mut kb = open(backend, tmp.path())?;
        let e = embedder();
        let a = chunks("a.md", &["a zero", "a one", "a two", "a three", "a four"]);
        let a_ids = kb.put_document(&record("a.md"), &a, &e)?;
        let b_ids = kb.put_document(&record("b.md"), &chunks("b.md", &["b zero", "b one"]), &e)?;
        kb.checkpoint()?;
        let texts = |v: Vec<ragtune_index::StoredChunk>| -> Vec<String> {
            v.into_iter().map(|c| c.text).collect()
        };
        let two = a_ids[2];
        assert_eq!(
            texts(kb.neighbours(two, 1, 2)?),
            ["a one", "a two", "a three", "a four"],
            "{backend:?}"
        );
        // The window stops at the document's ends and never reaches b.md.
        let zero = a_ids[0];
        assert_eq!(texts(kb.neighbours(zero, 3, 0)?), ["a zero"], "{backend:?}");
        let b_one = b_ids[1];
        assert_eq!(
            texts(kb.neighbours(b_one, 100, 100)?),
            ["b zero", "b one"],
            "{backend:?}"
        );
        assert_eq!(
            texts(kb.neighbours(b_one, usize::MAX, usize::MAX)?),
            ["b zero", "b one"],
            "{backend:?}"
        );
        // A deleted document has no neighbours, and that is no error.
        kb.delete_document("a.md")?;
        assert!(kb.neighbours(two, 1, 1)?.is_empty(), "{backend:?}");
    }
    Ok(())
}
