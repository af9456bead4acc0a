//! Sync: add, modify, delete, rename, failures, unchanged files; every index checked.

use crate::support::{
    BACKENDS, Docs, assert_consistent, bm25_sources, dense_sources, embedder, open, sync,
};
use anyhow::Result;
use ragtune_index::testing::PlainTextSource;
use ragtune_index::{DocumentSource, LoadedFile, SourceError, SyncEvent, SyncOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn add_modify_delete_rename_keep_every_index_in_step() -> Result<()> {
    for backend in BACKENDS {
        let docs = Docs::new()?;
        let kb_dir = tempfile::tempdir()?;
        let mut kb = open(backend, kb_dir.path())?;
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
        docs.write("ignored.bin", "not a text file the source lists")?;

        let s = sync(&mut kb, &roots)?;
        assert_eq!(s.added.len(), 3, "{backend:?}: {s:?}");
        assert_eq!(
            (
                s.updated.len(),
                s.deleted.len(),
                s.unchanged,
                s.failed.len()
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(s.embedded_chunks, 4);
        assert_consistent(&kb);
        assert_eq!(kb.health()?.chunks, 4);
        assert_eq!(
            bm25_sources(&kb, "borrow checker"),
            vec![docs.source("tools/rust.md")]
        );
        let rust = kb.document(&docs.source("tools/rust.md"))?.unwrap();
        assert_eq!(rust.metadata["title"], "rust");

        // Nothing changed: nothing is reloaded.
        let s = sync(&mut kb, &roots)?;
        assert_eq!(
            (s.added.len(), s.updated.len(), s.deleted.len(), s.unchanged),
            (0, 0, 0, 3)
        );

        // Modify: the old words are gone from BM25 and dense, the new ones are found.
        docs.write(
            "tools/cooking.txt",
            "knead the bread dough\n\nbake it in a hot oven",
        )?;
        let s = sync(&mut kb, &roots)?;
        assert_eq!(
            s.updated,
            vec![docs.source("tools/cooking.txt")],
            "{backend:?}"
        );
        assert_eq!(s.unchanged, 2);
        assert_consistent(&kb);
        assert!(bm25_sources(&kb, "tomato").is_empty());
        assert_eq!(
            bm25_sources(&kb, "dough"),
            vec![docs.source("tools/cooking.txt")]
        );
        assert_eq!(
            kb.document(&docs.source("tools/cooking.txt"))?
                .unwrap()
                .version,
            2
        );
        assert_eq!(kb.health()?.chunks, 5);

        // Delete.
        std::fs::remove_file(docs.path("animals.txt"))?;
        let s = sync(&mut kb, &roots)?;
        assert_eq!(s.deleted, vec![docs.source("animals.txt")]);
        assert_consistent(&kb);
        assert!(bm25_sources(&kb, "zebras").is_empty());
        assert!(!dense_sources(&kb, "zebras graze", 10).contains(&docs.source("animals.txt")));
        assert_eq!(kb.health()?.chunks, 3);

        // Rename: delete + add, and the stored vectors are reused instead of re-embedded.
        std::fs::create_dir_all(docs.path("lang"))?;
        std::fs::rename(docs.path("tools/rust.md"), docs.path("lang/rust-notes.md"))?;
        let s = sync(&mut kb, &roots)?;
        assert_eq!(s.added, vec![docs.source("lang/rust-notes.md")]);
        assert_eq!(s.deleted, vec![docs.source("tools/rust.md")]);
        assert_eq!(
            (s.embedded_chunks, s.reused_chunks),
            (0, 1),
            "{backend:?}: {s:?}"
        );
        assert_consistent(&kb);
        assert_eq!(
            bm25_sources(&kb, "borrow"),
            vec![docs.source("lang/rust-notes.md")]
        );
        assert_eq!(kb.health()?.documents, 2);
    }
    Ok(())
}

#[test]
fn a_file_that_fails_is_reported_and_the_others_are_indexed() -> Result<()> {
    let docs = Docs::new()?;
    let mut kb = open(crate::support::Backend::Ram, docs.root().as_path())?;
    docs.write("good.txt", "healthy content")?;
    let bad = docs.path("bad.txt");
    std::fs::write(&bad, [0xff, 0xfe, 0x00, 0x80])?;
    docs.write("also-good.md", "more healthy content")?;
    let s = sync(&mut kb, &[docs.root()])?;
    assert_eq!(s.added.len(), 2);
    assert_eq!(s.failed.len(), 1);
    assert_eq!(s.failed[0].path, bad);
    assert!(
        s.failed[0].reason.contains("UTF-8"),
        "{}",
        s.failed[0].reason
    );
    assert_consistent(&kb);
    Ok(())
}

/// Counts loads, to prove unchanged files are not reloaded.
struct Counting(AtomicUsize);

impl DocumentSource for Counting {
    fn list(&self, root: &Path) -> Vec<Result<PathBuf, SourceError>> {
        PlainTextSource.list(root)
    }
    fn load(&self, path: &Path) -> Result<LoadedFile, SourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        PlainTextSource.load(path)
    }
}

#[test]
fn unchanged_files_are_neither_loaded_nor_embedded_again() -> Result<()> {
    let docs = Docs::new()?;
    let mut kb = open(crate::support::Backend::Ram, docs.root().as_path())?;
    for i in 0..5 {
        docs.write(&format!("f{i}.txt"), &format!("document number {i}"))?;
    }
    let source = Counting(AtomicUsize::new(0));
    let mut events = Vec::new();
    let mut progress = |e: &SyncEvent<'_>| events.push(format!("{e:?}"));
    let opts = SyncOptions::default();
    kb.sync(&[docs.root()], &source, &embedder(), &opts, &mut progress)?;
    assert_eq!(source.0.load(Ordering::SeqCst), 5);
    assert!(events[0].starts_with("Scanned { files: 5 }"), "{events:?}");
    assert!(events.last().unwrap().starts_with("Finished"));
    let s = kb.sync(
        &[docs.root()],
        &source,
        &embedder(),
        &opts,
        &mut ragtune_index::NoProgress,
    )?;
    assert_eq!(s.unchanged, 5);
    assert_eq!(
        source.0.load(Ordering::SeqCst),
        5,
        "no reload of unchanged files"
    );
    // Touching a file (same content, new mtime) hashes it but does not reload it.
    docs.write("f0.txt", "document number 0")?;
    let s = kb.sync(
        &[docs.root()],
        &source,
        &embedder(),
        &opts,
        &mut ragtune_index::NoProgress,
    )?;
    assert_eq!(s.unchanged, 5);
    assert_eq!(source.0.load(Ordering::SeqCst), 5);
    Ok(())
}

#[test]
fn sync_only_deletes_under_its_roots_and_reports_missing_roots() -> Result<()> {
    let docs = Docs::new()?;
    let mut kb = open(crate::support::Backend::Ram, docs.root().as_path())?;
    docs.write("a/one.txt", "first folder")?;
    docs.write("b/two.txt", "second folder")?;
    sync(&mut kb, &[docs.path("a"), docs.path("b")])?;
    // Syncing only `a` must not delete what came from `b`.
    let s = sync(&mut kb, &[docs.path("a")])?;
    assert!(s.deleted.is_empty(), "{s:?}");
    assert_eq!(kb.health()?.documents, 2);
    let s = sync(&mut kb, &[docs.path("gone")])?;
    assert_eq!(s.failed.len(), 1, "{s:?}");
    assert_eq!(s.failed[0].path, docs.path("gone"));
    assert!(s.failed[0].reason.contains("does not exist"), "{s:?}");
    assert!(s.deleted.is_empty(), "{s:?}");
    assert_eq!(kb.health()?.documents, 2);
    Ok(())
}

/// Regression: `ingest missing good.txt` ingested nothing; the missing path is one failure
/// and the other paths are still synced.
#[test]
fn one_missing_path_does_not_stop_the_others() -> Result<()> {
    let docs = Docs::new()?;
    let mut kb = open(crate::support::Backend::Ram, docs.root().as_path())?;
    docs.write("good.txt", "still indexed")?;
    let s = sync(&mut kb, &[docs.path("missing.txt"), docs.path("good.txt")])?;
    assert_eq!(s.added.len(), 1, "{s:?}");
    assert_eq!(s.failed.len(), 1, "{s:?}");
    assert_eq!(s.failed[0].path, docs.path("missing.txt"));
    assert_eq!(kb.health()?.documents, 1);
    assert_consistent(&kb);
    Ok(())
}

#[test]
fn identical_chunks_in_a_new_file_reuse_stored_vectors() -> Result<()> {
    let docs = Docs::new()?;
    let mut kb = open(crate::support::Backend::Ram, docs.root().as_path())?;
    docs.write("a.txt", "shared paragraph\n\nonly in a")?;
    sync(&mut kb, &[docs.root()])?;
    docs.write("b.txt", "shared paragraph\n\nonly in b")?;
    let s = sync(&mut kb, &[docs.root()])?;
    assert_eq!((s.embedded_chunks, s.reused_chunks), (1, 1));
    assert_consistent(&kb);
    Ok(())
}

#[test]
fn a_sync_says_where_its_time_went_and_how_many_bytes_it_loaded() -> Result<()> {
    let docs = Docs::new()?;
    let kb_dir = tempfile::tempdir()?;
    let mut kb = open(BACKENDS[0], kb_dir.path())?;
    let roots = [docs.root()];
    let texts = ["zebras graze on the savanna", "lions sleep all day long"];
    for (i, text) in texts.iter().enumerate() {
        docs.write(&format!("{i}.txt"), text)?;
    }
    let s = sync(&mut kb, &roots)?;
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    assert_eq!(s.loaded_bytes, bytes as u64);
    let t = s.timings;
    assert!(t.embed > std::time::Duration::ZERO, "{t:?}");
    assert!(t.extract > std::time::Duration::ZERO, "{t:?}");
    assert!(t.write > std::time::Duration::ZERO, "{t:?}");

    // Nothing changed: nothing loaded, nothing embedded.
    let s = sync(&mut kb, &roots)?;
    assert_eq!((s.unchanged, s.loaded_bytes), (2, 0));
    assert_eq!(s.timings.embed, std::time::Duration::ZERO);
    assert_eq!(s.timings.extract, std::time::Duration::ZERO);
    Ok(())
}

/// More files than the loading thread reads ahead, with a failure among them: every file is
/// reported once and every good one stored.
#[test]
fn files_loaded_ahead_of_the_writer_are_all_stored_in_order() -> Result<()> {
    let docs = Docs::new()?;
    let kb_dir = tempfile::tempdir()?;
    let mut kb = open(BACKENDS[0], kb_dir.path())?;
    for i in 0..40 {
        docs.write(
            &format!("{i:02}.txt"),
            &format!("document number {i} says hello"),
        )?;
    }
    docs.write("13.md", "# broken\n\n\u{0}")?;
    let mut order = Vec::new();
    let s = kb.sync(
        &[docs.root()],
        &FailingSource("13.md"),
        &embedder(),
        &SyncOptions {
            batch_chunks: 3,
            ..SyncOptions::default()
        },
        &mut |e: &SyncEvent<'_>| {
            if let SyncEvent::File { path, .. } = e {
                order.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        },
    )?;
    assert_eq!((s.added.len(), s.failed.len()), (40, 1), "{s:?}");
    order.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("{i:02}.txt")).collect();
    want.push("13.md".into());
    want.sort();
    assert_eq!(order, want);
    assert_eq!(kb.health()?.chunks, 40);
    assert_consistent(&kb);
    Ok(())
}

/// The plain-text source, failing on one file name.
struct FailingSource(&'static str);

impl DocumentSource for FailingSource {
    fn list(&self, root: &Path) -> Vec<Result<PathBuf, SourceError>> {
        PlainTextSource.list(root)
    }

    fn load(&self, path: &Path) -> Result<LoadedFile, SourceError> {
        if path.ends_with(self.0) {
            return Err(SourceError::new(path, "cannot be read (test)"));
        }
        PlainTextSource.load(path)
    }
}

/// A knowledge base whose writes fail after `ok` files, as a full disk would.
struct FailingWrites<'a> {
    kb: &'a mut ragtune_index::KnowledgeBase,
    ok: usize,
}

impl ragtune_index::SyncTarget for FailingWrites<'_> {
    fn location(&self) -> String {
        ragtune_index::SyncTarget::location(&*self.kb)
    }
    fn embedder_info(&self) -> &ragtune_index::EmbedderInfo {
        ragtune_index::SyncTarget::embedder_info(&*self.kb)
    }
    fn chunking(&self) -> ragtune_index::Result<Option<ragtune_ingest::ChunkOptions>> {
        ragtune_index::SyncTarget::chunking(&*self.kb)
    }
    fn record_chunking(&mut self, c: &ragtune_ingest::ChunkOptions) -> ragtune_index::Result<()> {
        ragtune_index::SyncTarget::record_chunking(&mut *self.kb, c)
    }
    fn files(&self) -> ragtune_index::Result<Vec<ragtune_index::FileState>> {
        ragtune_index::SyncTarget::files(&*self.kb)
    }
    fn document_hash(&self, source: &str) -> ragtune_index::Result<Option<String>> {
        ragtune_index::SyncTarget::document_hash(&*self.kb, source)
    }
    fn sources(&self) -> ragtune_index::Result<Vec<String>> {
        ragtune_index::SyncTarget::sources(&*self.kb)
    }
    fn touch_file(&mut self, file: &str, mtime_ns: i64) -> ragtune_index::Result<()> {
        ragtune_index::SyncTarget::touch_file(&mut *self.kb, file, mtime_ns)
    }
    fn cached_vectors(
        &self,
        texts: &[&str],
    ) -> ragtune_index::Result<std::collections::HashMap<[u8; 32], Vec<f32>>> {
        ragtune_index::SyncTarget::cached_vectors(&*self.kb, texts)
    }
    fn put_file(
        &mut self,
        file: &ragtune_index::FileRecord,
        docs: &[ragtune_index::NewDocument<'_>],
    ) -> ragtune_index::Result<bool> {
        if self.ok == 0 {
            return Err(ragtune_index::Error::Server("disk full (test)".into()));
        }
        self.ok -= 1;
        ragtune_index::SyncTarget::put_file(&mut *self.kb, file, docs)
    }
    fn delete_file(&mut self, file: &str) -> ragtune_index::Result<usize> {
        ragtune_index::SyncTarget::delete_file(&mut *self.kb, file)
    }
    fn delete_document(&mut self, source: &str) -> ragtune_index::Result<bool> {
        ragtune_index::SyncTarget::delete_document(&mut *self.kb, source)
    }
    fn checkpoint(&mut self) -> ragtune_index::Result<Option<u64>> {
        ragtune_index::SyncTarget::checkpoint(&mut *self.kb)
    }
}

/// The writer fails while the loading thread waits for room: the sync returns the error
/// (it does not hang on the loader), keeps what it wrote, and the next sync completes.
#[test]
fn a_failed_write_stops_the_loading_thread_and_keeps_what_was_written() -> Result<()> {
    let docs = Docs::new()?;
    let kb_dir = tempfile::tempdir()?;
    let mut kb = open(crate::support::Backend::Disk, kb_dir.path())?;
    for i in 0..30 {
        docs.write(
            &format!("{i:02}.txt"),
            &format!("document number {i} says hello"),
        )?;
    }
    let options = SyncOptions {
        batch_chunks: 1,
        ..SyncOptions::default()
    };
    let mut failing = FailingWrites { kb: &mut kb, ok: 5 };
    let err = ragtune_index::sync_into(
        &mut failing,
        &[docs.root()],
        &PlainTextSource,
        &embedder(),
        &options,
        &mut ragtune_index::NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    drop(kb);
    let mut kb = open(crate::support::Backend::Disk, kb_dir.path())?;
    assert_eq!(kb.health()?.documents, 5);
    let s = sync(&mut kb, &[docs.root()])?;
    assert_eq!((s.added.len(), s.unchanged), (25, 5));
    assert_consistent(&kb);
    Ok(())
}
