//! Watch mode (`ragtune ingest --watch`): sync once, then again whenever files under the
//! roots change. File-system events are debounced and only trigger a sync, which decides from
//! hashes what changed, so missed or duplicated events cannot make the index wrong.

use crate::kb::KnowledgeBase;
use crate::source::DocumentSource;
use crate::sync::{SyncOptions, SyncProgress};
use crate::{Error, Result};
use notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};
use ragtune_core::Embedder;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How watch mode waits and syncs.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchOptions {
    /// Quiet time after the last change before a sync starts.
    pub debounce: Duration,
    pub sync: SyncOptions,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(500),
            sync: SyncOptions::default(),
        }
    }
}

impl KnowledgeBase {
    /// Syncs `roots`, then keeps syncing on changes until `stop` is set (checked every
    /// 100 ms; the CLI sets it from its Ctrl-C handler). Each sync reports through `progress`,
    /// ending with [`SyncEvent::Finished`](crate::SyncEvent::Finished).
    pub fn watch(
        &mut self,
        roots: &[PathBuf],
        source: &dyn DocumentSource,
        embedder: &dyn Embedder,
        options: &WatchOptions,
        progress: &mut dyn SyncProgress,
        stop: &AtomicBool,
    ) -> Result<()> {
        let (tx, rx) = mpsc::channel::<DebounceEventResult>();
        let mut debouncer = new_debouncer(options.debounce, tx).map_err(|e| Error::Watch {
            path: roots.first().cloned().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        for root in roots {
            debouncer
                .watcher()
                .watch(root, RecursiveMode::Recursive)
                .map_err(|e| Error::Watch {
                    path: root.clone(),
                    reason: e.to_string(),
                })?;
        }
        // Our own writes must not wake us when the knowledge base lives under a root.
        let own = self.dir().and_then(|d| std::fs::canonicalize(d).ok());
        let is_own = |p: &Path| own.as_ref().is_some_and(|o| p.starts_with(o));
        self.sync(roots, source, embedder, &options.sync, progress)?;
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(events)) => {
                    if events.iter().any(|e| !is_own(&e.path)) {
                        self.sync(roots, source, embedder, &options.sync, progress)?;
                    }
                }
                // The watcher lost events (queue overflow...): a full sync is the remedy.
                Ok(Err(_)) => {
                    self.sync(roots, source, embedder, &options.sync, progress)?;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }
}
