//! Sync into PostgreSQL: the embedded store's semantics (add, change, delete, rename with
//! vectors reused, unchanged files untouched), several writers at once, rows as documents.

use crate::{Docs, embedder, pg_sources, sync};
use anyhow::Result;
use ragtune_core::SearchMode;
use ragtune_index::testing::PlainTextSource;
use ragtune_index::{NoProgress, SyncOptions, SyncTarget, sync_into, sync_records_into};
use ragtune_ingest::ChunkOptions;
use ragtune_pg::PgKb;
use ragtune_pg::testing::TestServer;

#[test]
fn add_change_delete_rename_as_the_embedded_store_does() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    let mut kb = PgKb::open(&server.url("notes"), &embedder())?;
    let roots = [docs.root()];
    docs.write(
        "animals.txt",
        "zebras graze on the savanna\n\nlions sleep all day",
    )?;
    docs.write(
        "tools/rust.md",
        "# Rust\n\nthe borrow checker rejects dangling references",
    )?;
    docs.write("tools/cooking.txt", "simmer the tomato sauce slowly")?;

    let s = sync(&mut kb, &roots)?;
    assert_eq!(
        (
            s.added.len(),
            s.updated.len(),
            s.deleted.len(),
            s.failed.len()
        ),
        (3, 0, 0, 0)
    );
    assert_eq!(s.embedded_chunks, 4);
    assert_eq!(kb.counts()?, (4, 0));
    let rust = kb.document(&docs.source("tools/rust.md"))?.unwrap();
    assert_eq!(rust.metadata["title"], "rust");
    assert_eq!(rust.version, 1);
    assert_eq!(
        pg_sources(&kb, "borrow checker", SearchMode::Bm25, 5),
        vec![docs.source("tools/rust.md")]
    );

    let s = sync(&mut kb, &roots)?;
    assert_eq!(
        (s.added.len(), s.updated.len(), s.deleted.len(), s.unchanged),
        (0, 0, 0, 3)
    );

    docs.write(
        "tools/cooking.txt",
        "knead the bread dough\n\nbake it in a hot oven",
    )?;
    let s = sync(&mut kb, &roots)?;
    assert_eq!(s.updated, vec![docs.source("tools/cooking.txt")]);
    assert!(pg_sources(&kb, "tomato", SearchMode::Bm25, 5).is_empty());
    assert_eq!(
        pg_sources(&kb, "dough", SearchMode::Bm25, 5),
        vec![docs.source("tools/cooking.txt")]
    );
    assert_eq!(
        kb.document(&docs.source("tools/cooking.txt"))?
            .unwrap()
            .version,
        2
    );
    assert_eq!(kb.counts()?, (5, 0));

    std::fs::remove_file(docs.path("animals.txt"))?;
    let s = sync(&mut kb, &roots)?;
    assert_eq!(s.deleted, vec![docs.source("animals.txt")]);
    assert!(pg_sources(&kb, "zebras", SearchMode::Bm25, 5).is_empty());
    assert!(
        !pg_sources(&kb, "zebras graze", SearchMode::Dense, 10)
            .contains(&docs.source("animals.txt"))
    );
    assert_eq!(kb.counts()?, (3, 0));

    // A rename is a delete and an add whose vectors come from the store, not the embedder.
    std::fs::create_dir_all(docs.path("lang"))?;
    std::fs::rename(docs.path("tools/rust.md"), docs.path("lang/rust-notes.md"))?;
    let s = sync(&mut kb, &roots)?;
    assert_eq!(s.added, vec![docs.source("lang/rust-notes.md")]);
    assert_eq!(s.deleted, vec![docs.source("tools/rust.md")]);
    assert_eq!((s.embedded_chunks, s.reused_chunks), (0, 1), "{s:?}");
    assert_eq!(kb.documents()?.len(), 2);
    // Through adds, a change, a delete and a rename, BM25's postings followed the chunks.
    crate::assert_postings_match_chunks(&mut crate::db(&server)?, "notes")?;

    // Reopened from its URL alone, the knowledge base is all there.
    drop(kb);
    let kb = PgKb::open_existing(&server.url("notes"))?;
    assert_eq!(kb.counts()?, (3, 0));
    assert_eq!(kb.embedder_info().dimension, crate::DIM);
    Ok(())
}

#[test]
fn writers_on_several_connections_store_each_document_once() -> Result<()> {
    let server = TestServer::start();
    let docs = Docs::new()?;
    for i in 0..30 {
        docs.write(
            &format!("d{i:02}.txt"),
            &format!("document {i} about topic{i}\n\nsecond paragraph of {i}"),
        )?;
    }
    let url = server.url("shared");
    let roots = [docs.root()];
    // Four writers sync the same folder at once: each embeds, all write in turn.
    let summaries: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                let roots = roots.clone();
                scope.spawn(move || -> Result<_> {
                    let mut kb = PgKb::open(&url, &embedder())?;
                    sync(&mut kb, &roots)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut added = 0;
    for s in &summaries {
        let s = s.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        assert!(s.failed.is_empty(), "{s:?}");
        // A file another writer stored first counts as unchanged, not added twice.
        assert_eq!(s.added.len() + s.unchanged, 30, "{s:?}");
        added += s.added.len();
    }
    assert_eq!(added, 30);
    let kb = PgKb::open_existing(&url)?;
    assert_eq!(kb.documents()?.len(), 30);
    assert_eq!(kb.counts()?, (60, 0));
    assert!(kb.documents()?.iter().all(|d| d.chunk_count == 2));
    crate::assert_postings_match_chunks(&mut crate::db(&server)?, "shared")?;
    let mut kb = kb;
    let s = sync(&mut kb, &roots)?;
    assert_eq!(
        (s.added.len(), s.updated.len(), s.unchanged),
        (0, 0, 30),
        "{s:?}"
    );
    Ok(())
}

#[test]
fn rows_sync_by_hash_under_their_prefix() -> Result<()> {
    let server = TestServer::start();
    let mut kb = PgKb::open(&server.url("rows"), &embedder())?;
    let row = |id: u32, text: &str| {
        let document = ragtune_core::ExtractedDocument {
            source: format!("postgres:crm#{id}"),
            format: ragtune_core::Format::Text,
            text: text.to_owned(),
            blocks: Vec::new(),
            metadata: Default::default(),
        };
        let chunks = vec![ragtune_core::Chunk {
            source: document.source.clone(),
            ordinal: 0,
            text: text.to_owned(),
            start: 0,
            end: text.len(),
            page: None,
            heading_path: vec![],
            tokens: 3,
        }];
        ragtune_index::LoadedDocument { document, chunks }
    };
    let e = embedder();
    let first = [
        row(1, "refund within thirty days"),
        row(2, "shipping takes a week"),
    ];
    let chunking = ChunkOptions::default();
    let s = sync_records_into(
        &mut kb,
        "postgres:crm#",
        &first,
        &chunking,
        &e,
        &mut NoProgress,
    )?;
    assert_eq!(s.added.len(), 2);
    assert_eq!(kb.chunking()?, Some(chunking.clone()));
    let second = [row(1, "refund within sixty days")];
    // Rows cut with other settings are refused before anything is written.
    let other = ChunkOptions {
        max_tokens: 64,
        ..chunking.clone()
    };
    let err = sync_records_into(
        &mut kb,
        "postgres:crm#",
        &second,
        &other,
        &e,
        &mut NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at most 64 tokens"), "{err}");
    assert_eq!(kb.document("postgres:crm#1")?.unwrap().version, 1);
    let s = sync_records_into(
        &mut kb,
        "postgres:crm#",
        &second,
        &chunking,
        &e,
        &mut NoProgress,
    )?;
    assert_eq!(
        (s.updated.len(), s.deleted.len(), s.unchanged),
        (1, 1, 0),
        "{s:?}"
    );
    assert_eq!(kb.document("postgres:crm#1")?.unwrap().version, 2);
    assert!(kb.document("postgres:crm#2")?.is_none());
    Ok(())
}

#[test]
fn a_missing_kb_is_not_created_by_reads_and_another_embedder_is_refused() -> Result<()> {
    let server = TestServer::start();
    let url = server.url("strict");
    let e = PgKb::open_existing(&url)
        .err()
        .expect("no knowledge base yet")
        .to_string();
    assert!(e.contains("ragtune ingest --kb"), "{e}");
    let docs = Docs::new()?;
    docs.write("a.txt", "alpha")?;
    let mut kb = PgKb::open(&url, &embedder())?;
    sync(&mut kb, &[docs.root()])?;
    let other = ragtune_index::testing::HashEmbedder::new(32);
    let e = PgKb::open(&url, &other)
        .err()
        .expect("another embedder")
        .to_string();
    assert!(
        e.contains("built with embedder") && e.contains("?kb=NEW_NAME"),
        "{e}"
    );
    let e = sync_into(
        &mut kb,
        &[docs.root()],
        &PlainTextSource,
        &other,
        &SyncOptions::default(),
        &mut NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("32"), "{e}");
    // A server that is not there is named, with what to check.
    let e = PgKb::open_existing("postgres://ragtune@127.0.0.1:1/postgres?kb=x")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("127.0.0.1:1"),
        "{e}"
    );
    Ok(())
}

/// A test process that aborts (or is killed) never drops its server, and PostgreSQL, detached
/// from it, would run on: the next test server stops it and removes its folder.
#[test]
fn a_server_whose_test_process_died_is_stopped_by_the_next_one() -> Result<()> {
    let abandoned = TestServer::start();
    let (port, dir) = (abandoned.port(), abandoned.dir().to_owned());
    // Its owner is a process that has exited, and nothing drops it.
    let mut gone = std::process::Command::new("true").spawn()?;
    let pid = gone.id();
    gone.wait()?;
    std::fs::write(dir.join("owner.pid"), pid.to_string())?;
    std::mem::forget(abandoned);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let _next = TestServer::start();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the abandoned server still listens on {port}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    Ok(())
}

/// Two ingests into one new knowledge base with different chunk settings: one of them cuts its
/// files, the other stops before writing any, and the record stays the settings of what is
/// stored.
#[test]
fn an_ingest_whose_chunk_settings_were_replaced_stops_before_it_writes() -> Result<()> {
    use ragtune_core::{Chunk, Embedder, Format};
    use ragtune_index::{FileRecord, NewDocument};
    let server = TestServer::start();
    let e = embedder();
    let url = server.url("race");
    let mut a = PgKb::open(&url, &e)?;
    let mut b = PgKb::open(&url, &e)?;
    let ours = ChunkOptions::default();
    let theirs = ChunkOptions {
        max_tokens: 64,
        ..ours.clone()
    };
    let text = "refunds take five days";
    let chunks = [Chunk {
        source: "faq.txt".into(),
        ordinal: 0,
        text: text.into(),
        start: 0,
        end: text.len(),
        page: None,
        heading_path: vec![],
        tokens: 4,
    }];
    let vectors = e.embed(&[text])?;
    let metadata = Default::default();
    let doc = NewDocument {
        source: "faq.txt",
        format: Format::Text,
        metadata: &metadata,
        chunks: &chunks,
        vectors: &vectors,
    };
    let file = FileRecord {
        path: "faq.txt".into(),
        hash: "h1".into(),
        size: text.len() as u64,
        mtime_ns: 0,
    };

    // a records its settings; b, finding no documents yet, records its own over them.
    assert_eq!(a.chunking()?, None);
    a.record_chunking(&ours)?;
    assert_eq!(b.chunking()?, Some(ours.clone()));
    b.record_chunking(&theirs)?;
    // a's next write sees the record changed and writes nothing.
    let err = a.put_file(&file, &[doc]).unwrap_err().to_string();
    assert!(
        err.contains("another ingest recorded other chunk settings")
            && err.contains("max_tokens=64")
            && err.contains("faq.txt was not written"),
        "{err}"
    );
    assert_eq!(a.sizes()?.0, 0);
    // b writes under its settings; a cannot take the record back once documents are stored.
    assert!(b.put_file(&file, &[doc])?);
    let err = a.record_chunking(&ours).unwrap_err().to_string();
    assert!(err.contains("at most 64 tokens"), "{err}");
    assert_eq!(a.chunking()?, Some(theirs));
    Ok(())
}
