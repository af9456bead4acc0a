//! Retrieval from PostgreSQL beside the embedded store on the same files: dense search is
//! exact on both and agrees; full text and hybrid find the same documents for distinctive
//! words; filters, neighbours and the HNSW index.

use crate::{Docs, embedded, embedder, pg_sources, sources, sync};
use anyhow::Result;
use ragtune_core::{Filter, Format, Query, Retriever, SearchMode};
use ragtune_pg::testing::TestServer;
use ragtune_pg::{PgKb, PgRetriever};
use ragtune_retrieve::KbRetriever;

fn corpus(docs: &Docs) -> Result<()> {
    let topics = [
        (
            "astro/mars.md",
            "# Mars\n\nMars has two moons, Phobos and Deimos.\n\nIts surface is red with iron oxide dust.",
        ),
        (
            "astro/venus.txt",
            "Venus is the hottest planet.\n\nIts clouds are sulfuric acid.",
        ),
        (
            "kitchen/bread.txt",
            "Bread rises when yeast ferments sugar.\n\nKnead the dough for ten minutes.",
        ),
        (
            "kitchen/soup.md",
            "# Soup\n\nSimmer tomato soup with basil.\n\nBlend it smooth before serving.",
        ),
        (
            "code/rust.md",
            "# Rust\n\nThe borrow checker rejects dangling references.\n\nCargo builds crates.",
        ),
        (
            "code/sql.txt",
            "PostgreSQL plans queries with statistics.\n\nAn index scan reads few pages.",
        ),
    ];
    for (name, text) in topics {
        docs.write(name, text)?;
    }
    Ok(())
}

#[test]
fn dense_agrees_with_the_embedded_store_and_text_finds_the_same_documents() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    corpus(&docs)?;
    let dir = tempfile::tempdir()?;
    let mut local = embedded(dir.path())?;
    sync(&mut local, &[docs.root()])?;
    let mut pg = PgKb::open(&server.url("parity"), &embedder())?;
    sync(&mut pg, &[docs.root()])?;
    let e = embedder();
    let local_r = KbRetriever::new(&local, &e)?;
    let pg_r = PgRetriever::new(&pg, &e)?;
    for q in [
        "moons of Mars",
        "yeast and dough",
        "borrow checker",
        "index scan statistics",
    ] {
        // Chunks that share no hashed feature with the question tie at 0, in any order.
        let scored = |mut h: Vec<ragtune_core::Hit>| {
            h.retain(|h| h.score > 1e-4);
            h
        };
        let a = scored(local_r.retrieve(&Query::new(q, 5, SearchMode::Dense))?);
        let b = scored(pg_r.retrieve(&Query::new(q, 5, SearchMode::Dense))?);
        assert!(!a.is_empty(), "{q}: {a:?}");
        let key = |h: &ragtune_core::Hit| (h.source.clone(), h.start, h.end);
        let scores = |h: &[ragtune_core::Hit]| h.iter().map(|h| h.score).collect::<Vec<_>>();
        assert_eq!(
            a.iter().map(key).collect::<Vec<_>>(),
            b.iter().map(key).collect::<Vec<_>>(),
            "{q}: {:?} vs {:?}",
            scores(&a),
            scores(&b)
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.score - y.score).abs() < 1e-4,
                "{q}: {} vs {}",
                x.score,
                y.score
            );
        }
        assert_eq!(b[0].ranks["dense"], 1);
    }
    for (q, want) in [
        ("Phobos", "astro/mars.md"),
        ("sulfuric clouds", "astro/venus.txt"),
        ("knead", "kitchen/bread.txt"),
        ("dangling references", "code/rust.md"),
    ] {
        for mode in [SearchMode::Bm25, SearchMode::Hybrid] {
            let top = sources(&pg_r, q, mode, 3);
            assert_eq!(
                top.first(),
                Some(&docs.source(want)),
                "{q} {mode:?}: {top:?}"
            );
            assert_eq!(
                sources(&local_r, q, mode, 3).first(),
                top.first(),
                "{q} {mode:?}"
            );
        }
    }
    // Hybrid reports the rank each list gave, and spans point into the document's text.
    let hits = pg_r.retrieve(&Query::new("Phobos moons", 3, SearchMode::Hybrid))?;
    assert!(
        hits[0].ranks.contains_key("dense") && hits[0].ranks.contains_key("bm25"),
        "{:?}",
        hits[0]
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let empty = pg_r
        .retrieve(&Query::new("  ", 3, SearchMode::Hybrid))
        .unwrap_err();
    assert!(empty.to_string().contains("empty"));
    Ok(())
}

#[test]
fn filters_neighbours_and_the_hnsw_index() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    corpus(&docs)?;
    let mut pg = PgKb::open(&server.url("filters"), &embedder())?;
    sync(&mut pg, &[docs.root()])?;
    let e = embedder();
    let r = PgRetriever::new(&pg, &e)?;
    let mut q = Query::new("planet surface", 10, SearchMode::Hybrid);
    q.filter = Filter {
        path_glob: Some("astro/*".into()),
        ..Filter::default()
    };
    let hits = r.retrieve(&q)?;
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.source.contains("/astro/")),
        "{hits:?}"
    );
    q.filter = Filter {
        formats: vec![Format::Markdown],
        ..Filter::default()
    };
    q.mode = SearchMode::Dense;
    let hits = r.retrieve(&q)?;
    assert_eq!(
        hits.len(),
        6,
        "three markdown files, two chunks each: {hits:?}"
    );
    assert!(hits.iter().all(|h| h.format == Format::Markdown));

    let hit = r
        .retrieve(&Query::new("Knead the dough", 1, SearchMode::Bm25))?
        .remove(0);
    let around = r.neighbours(&hit, 1, 1)?;
    assert_eq!(around.len(), 2, "{around:?}");
    assert!(around[0].text.contains("yeast") && around[1].text.contains("Knead"));

    // Small knowledge bases search exactly; the index is built on request (and by sync past
    // hnsw_min_chunks) and answers the same on data this small.
    assert!(!pg.has_hnsw()?);
    let before = pg_sources(&pg, "red iron dust", SearchMode::Dense, 3);
    pg.build_hnsw()?;
    assert!(pg.has_hnsw()?);
    assert_eq!(
        pg_sources(&pg, "red iron dust", SearchMode::Dense, 3),
        before
    );

    // Vectors and tsvectors are kept in the row (MAIN), not fetched from TOAST by every scan.
    let mut db = crate::db(&server)?;
    let storage: Vec<(String, i8)> = db
        .query(
            "SELECT attname::text, attstorage FROM pg_attribute
             WHERE attrelid = 'kb_filters.chunks'::regclass AND attname IN ('embedding', 'tsv')
             ORDER BY attname",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        storage,
        [
            ("embedding".to_owned(), b'm' as i8),
            ("tsv".to_owned(), b'm' as i8)
        ]
    );
    Ok(())
}

#[test]
fn full_text_ranks_by_bm25_so_a_rare_word_outweighs_a_common_one() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    // "report" is in every document, "zeppelin" in one; the one saying "report" most is
    // not the answer to a question naming both.
    docs.write("a.txt", "The zeppelin flew over the harbour at dawn.")?;
    docs.write(
        "b.txt",
        "Report: the report on the report of the quarterly report.",
    )?;
    for i in 0..6 {
        docs.write(&format!("c{i}.txt"), &format!("A report about item {i}."))?;
    }
    let mut pg = PgKb::open(&server.url("idf"), &embedder())?;
    sync(&mut pg, &[docs.root()])?;
    let top = pg_sources(&pg, "zeppelin report", SearchMode::Bm25, 3);
    assert_eq!(top[..2], [docs.source("a.txt"), docs.source("b.txt")]);
    // Titles count, with their own statistics and the embedded store's boost: both stores
    // rank alike (their stemmers and stop words differ, not on these words).
    docs.write("zeppelin.md", "# Zeppelin history\n\nAn airship report.")?;
    sync(&mut pg, &[docs.root()])?;
    let dir = tempfile::tempdir()?;
    let mut local = embedded(dir.path())?;
    sync(&mut local, &[docs.root()])?;
    let e = embedder();
    let local_r = KbRetriever::new(&local, &e)?;
    for q in [
        "zeppelin",
        "zeppelin report",
        "airship history",
        "quarterly report item",
    ] {
        assert_eq!(
            pg_sources(&pg, q, SearchMode::Bm25, 4),
            sources(&local_r, q, SearchMode::Bm25, 4),
            "{q}"
        );
    }
    Ok(())
}

/// A knowledge base written by a ragtune of schema version 1 (ranked by `ts_rank`), made here
/// by undoing migration 2 on a new one.
fn downgrade_to_version_1(db: &mut postgres::Client, s: &str) -> Result<()> {
    db.batch_execute(&format!(
        "DROP TRIGGER chunks_index_terms ON {s}.chunks;
         DROP TRIGGER chunks_forget_terms ON {s}.chunks;
         DROP FUNCTION {s}.index_terms(); DROP FUNCTION {s}.forget_terms();
         DROP TABLE {s}.postings, {s}.text_stats;
         CREATE INDEX chunks_tsv ON {s}.chunks USING gin (tsv);
         DELETE FROM {s}.schema_migrations WHERE version = 2;"
    ))?;
    Ok(())
}

#[test]
fn a_version_1_knowledge_base_gets_its_postings_when_next_opened_for_writing() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    corpus(&docs)?;
    let url = server.url("old");
    let mut pg = PgKb::open(&url, &embedder())?;
    sync(&mut pg, &[docs.root()])?;
    let want = pg_sources(&pg, "yeast dough", SearchMode::Bm25, 3);
    drop(pg);
    let mut db = crate::db(&server)?;
    downgrade_to_version_1(&mut db, "kb_old")?;
    // Readers do not migrate: they say what will.
    let err = PgKb::open_existing(&url)
        .err()
        .expect("an old schema is refused");
    assert!(err.to_string().contains("run `ragtune ingest`"), "{err}");
    let pg = PgKb::open(&url, &embedder())?;
    crate::assert_postings_match_chunks(&mut db, "old")?;
    assert_eq!(pg_sources(&pg, "yeast dough", SearchMode::Bm25, 3), want);
    let gin: bool = db
        .query_one("SELECT to_regclass('kb_old.chunks_tsv') IS NOT NULL", &[])?
        .get(0);
    assert!(!gin, "the unused GIN index is dropped");
    Ok(())
}

#[test]
fn hybrid_reorders_its_head_by_sentence_as_the_embedded_store_does() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    // The question's words often but one to a sentence; all of them in one sentence; two.
    docs.write(
        "scattered.txt",
        "Copper prices fell. The mine hired workers. Copper is heavy. Roads closed. The mine is deep. Copper wire.",
    )?;
    docs.write(
        "together.txt",
        "Workers said the copper mine closed in 1931 after the flood, and the town around it emptied over the following decade as families left for the coast and the railway.",
    )?;
    docs.write(
        "opened.txt",
        "The copper mine opened in 1890 and the valley grew quickly around its shafts and sheds.",
    )?;
    docs.write(
        "other.txt",
        "A ferry crosses the lake twice a day in summer.",
    )?;
    let mut pg = PgKb::open(&server.url("sentences"), &embedder())?;
    sync(&mut pg, &[docs.root()])?;
    let dir = tempfile::tempdir()?;
    let mut local = embedded(dir.path())?;
    sync(&mut local, &[docs.root()])?;
    let e = embedder();
    let q = "When was the copper mine closed?";
    let off = ragtune_retrieve::RetrieveOptions {
        sentence_depth: 0,
        ..Default::default()
    };
    let pg_off = PgRetriever::new(&pg, &e)?.with_options(off.clone());
    let local_off = KbRetriever::new(&local, &e)?.with_options(off);
    assert_eq!(
        sources(&pg_off, q, SearchMode::Hybrid, 3)[0],
        docs.source("scattered.txt")
    );
    assert_eq!(
        sources(&local_off, q, SearchMode::Hybrid, 3)[0],
        docs.source("scattered.txt")
    );
    let pg_r = PgRetriever::new(&pg, &e)?;
    let hits = pg_r.retrieve(&Query::new(q, 2, SearchMode::Hybrid))?;
    assert_eq!(hits.len(), 2, "k is kept after the head is reordered");
    assert_eq!(hits[0].source, docs.source("together.txt"));
    assert!(hits[0].score >= hits[1].score);
    let local_r = KbRetriever::new(&local, &e)?;
    assert_eq!(
        sources(&local_r, q, SearchMode::Hybrid, 1),
        sources(&pg_r, q, SearchMode::Hybrid, 1)
    );
    Ok(())
}
