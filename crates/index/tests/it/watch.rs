//! Watch mode: a change on disk triggers a sync.

use crate::support::{Docs, embedder};
use anyhow::Result;
use ragtune_index::testing::PlainTextSource;
use ragtune_index::{KnowledgeBase, SyncEvent, WatchOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn watch_syncs_when_a_file_appears_and_stops_when_asked() -> Result<()> {
    let docs = Docs::new()?;
    docs.write("first.txt", "already there")?;
    let kb_dir = tempfile::tempdir()?;
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let root = docs.root();
    let kb = std::thread::scope(|s| -> Result<KnowledgeBase> {
        let watcher = s.spawn(|| -> Result<KnowledgeBase> {
            let mut kb = KnowledgeBase::open(kb_dir.path(), &embedder())?;
            let options = WatchOptions {
                debounce: Duration::from_millis(100),
                ..Default::default()
            };
            let mut progress = |e: &SyncEvent<'_>| {
                if let SyncEvent::Finished { summary } = e {
                    let _ = tx.send((summary.added.len(), summary.deleted.len()));
                }
            };
            kb.watch(
                std::slice::from_ref(&root),
                &PlainTextSource,
                &embedder(),
                &options,
                &mut progress,
                &stop,
            )?;
            Ok(kb)
        });
        let wait = || {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("a sync within 20 s")
        };
        assert_eq!(wait(), (1, 0), "initial sync");
        docs.write("second.txt", "arrived later").unwrap();
        // Events may arrive in more than one debounced batch; wait for the one that adds.
        let mut added = 0;
        while added == 0 {
            added = wait().0;
        }
        std::fs::remove_file(docs.path("first.txt")).unwrap();
        let mut deleted = 0;
        while deleted == 0 {
            deleted = wait().1;
        }
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    })?;
    let sources: Vec<String> = kb.documents()?.into_iter().map(|d| d.source).collect();
    assert_eq!(sources, vec![docs.source("second.txt")]);
    Ok(())
}
