//! What a served knowledge base is fed: files uploaded into its own folder wait in a queue
//! that the engine thread syncs one file at a time between requests, so answers keep flowing
//! during a long ingest. The queue and the progress (`GET /v1/kb/NAME/status`) are shared
//! with the HTTP layer; the knowledge base itself stays on the engine thread.

use crate::error::ApiError;
use ragtune_core::{Embedder, RetrieveError, Retriever};
use ragtune_index::{
    IngestSource, KnowledgeBase, NoProgress, StoredDocument, SyncOptions, WriterLock,
};
use ragtune_pg::PgKb;
use ragtune_retrieve::KbRetriever;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The folder inside a knowledge base that uploads are written to.
pub const UPLOADS_DIR: &str = "uploads";

/// How the hidden files that uploads are written into before being renamed into place begin.
pub(crate) const UPLOAD_TMP_PREFIX: &str = ".upload-";

/// Failures kept for `status` (the oldest are dropped first).
const KEPT_FAILURES: usize = 100;

/// Where a served knowledge base lives.
pub enum KbStore {
    /// A folder on this machine.
    Local(KnowledgeBase),
    /// A schema on PostgreSQL that other servers and `ragtune ingest` processes share: this
    /// server reads it, ingest writes it.
    Postgres(PgKb),
}

impl KbStore {
    pub(crate) fn retriever<'a>(
        &'a self,
        embedder: &'a dyn Embedder,
    ) -> Result<Box<dyn Retriever + 'a>, RetrieveError> {
        Ok(match self {
            KbStore::Local(kb) => Box::new(KbRetriever::new(kb, embedder)?),
            KbStore::Postgres(kb) => Box::new(ragtune_pg::PgRetriever::new(kb, embedder)?),
        })
    }

    pub(crate) fn documents(&self) -> Result<Vec<StoredDocument>, String> {
        match self {
            KbStore::Local(kb) => kb.documents().map_err(|e| e.to_string()),
            KbStore::Postgres(kb) => kb.documents().map_err(|e| e.to_string()),
        }
    }

    /// Documents and chunks (0 and 0 when the store cannot say).
    fn counts(&self) -> (usize, usize) {
        match self {
            KbStore::Local(kb) => {
                let store = kb.store();
                (
                    store.document_count().unwrap_or(0),
                    store.chunk_count().unwrap_or(0),
                )
            }
            KbStore::Postgres(kb) => kb.sizes().unwrap_or((0, 0)),
        }
    }
}

/// A knowledge base served under a name (`rag/NAME`).
pub struct ServedKb {
    pub name: String,
    pub kb: KbStore,
    /// Where uploads go, when the server writes into this knowledge base.
    pub(crate) uploads: Option<PathBuf>,
    _writer: Option<WriterLock>,
    /// A second connection to a PostgreSQL knowledge base, which the HTTP layer's status
    /// route counts through (others write into it while this server runs).
    counter: Option<PgKb>,
}

impl ServedKb {
    /// A knowledge base that is only read: uploads to it are refused.
    pub fn read_only(name: impl Into<String>, kb: KnowledgeBase) -> Self {
        Self {
            name: name.into(),
            kb: KbStore::Local(kb),
            uploads: None,
            _writer: None,
            counter: None,
        }
    }

    /// A knowledge base on PostgreSQL: searched and answered from, never written by this
    /// server (uploads are refused with the `ragtune ingest` command that adds files).
    pub fn postgres(name: impl Into<String>, kb: PgKb) -> Result<Self, ragtune_pg::Error> {
        Ok(Self {
            name: name.into(),
            counter: Some(kb.reopen()?),
            kb: KbStore::Postgres(kb),
            uploads: None,
            _writer: None,
        })
    }

    /// Why uploads to this knowledge base are refused (`None`: they are taken).
    pub(crate) fn read_only_reason(&self) -> Option<String> {
        if self.uploads.is_some() {
            return None;
        }
        Some(match &self.kb {
            KbStore::Postgres(kb) => format!(
                "knowledge base {:?} lives on PostgreSQL ({}), which this server only reads; \
                 add files with `ragtune ingest --kb URL FILES...`",
                self.name,
                kb.location().shown()
            ),
            KbStore::Local(_) => format!(
                "knowledge base {:?} is served read-only (another process holds its writer \
                 lock, or the server was started with it read-only)",
                self.name
            ),
        })
    }

    /// A knowledge base that takes uploads into `dir/uploads`. Holds its writer lock while
    /// served, so a `ragtune ingest` into it is refused instead of racing the server.
    pub fn writable(
        name: impl Into<String>,
        kb: KnowledgeBase,
        dir: &Path,
    ) -> Result<Self, ragtune_index::Error> {
        let writer = KnowledgeBase::lock_writer(dir)?;
        let uploads = dir.join(UPLOADS_DIR);
        fs_err::create_dir_all(&uploads).map_err(|e| ragtune_index::Error::io(&uploads, e))?;
        let uploads =
            fs_err::canonicalize(&uploads).map_err(|e| ragtune_index::Error::io(&uploads, e))?;
        // Half-written uploads of a server that was killed: never renamed into place, so never
        // acknowledged whole.
        if let Ok(entries) = std::fs::read_dir(&uploads) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(UPLOAD_TMP_PREFIX)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self {
            name: name.into(),
            kb: KbStore::Local(kb),
            uploads: Some(uploads),
            _writer: Some(writer),
            counter: None,
        })
    }

    pub fn uploads(&self) -> Option<&Path> {
        self.uploads.as_deref()
    }
}

/// A file that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub file: String,
    pub reason: String,
}

/// Ingestion progress of one knowledge base since the server started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStatus {
    /// Files waiting to be synced.
    pub queued: usize,
    /// The file being synced now.
    pub running: Option<String>,
    /// Files synced (added, changed, or already up to date).
    pub done: usize,
    pub failed: usize,
    /// Documents and chunks in the knowledge base after the last step.
    pub documents: usize,
    pub chunks: usize,
    /// The latest failures, with reasons.
    pub failures: Vec<Failure>,
}

struct FeedState {
    /// Files (or the uploads folder) waiting to be synced: the knowledge base is made to
    /// reflect each one as it is then (added, changed or gone).
    tasks: VecDeque<PathBuf>,
    status: IngestStatus,
}

/// The queue and progress of one served knowledge base, shared by the HTTP layer and the
/// engine thread.
pub struct KbFeed {
    pub name: String,
    /// Where uploads are written; `None` when the knowledge base is read-only.
    pub uploads: Option<PathBuf>,
    /// Why uploads are refused, when they are.
    pub read_only: Option<String>,
    state: Mutex<FeedState>,
    /// Counts a PostgreSQL knowledge base at each status (other processes write into it).
    counter: Option<PgKb>,
}

/// The HTTP layer may drop the last handle on an async worker thread, where closing a
/// (blocking) PostgreSQL connection would panic: it is closed on a thread of its own.
impl Drop for KbFeed {
    fn drop(&mut self) {
        if let Some(counter) = self.counter.take() {
            let _ = std::thread::Builder::new()
                .name("ragtune-pg-close".into())
                .spawn(move || drop(counter));
        }
    }
}

impl KbFeed {
    pub(crate) fn new(kb: &mut ServedKb) -> Self {
        let (documents, chunks) = kb.kb.counts();
        let mut tasks = VecDeque::new();
        // Files uploaded before a crash or restart, and not yet synced, are caught up.
        if let Some(dir) = kb.uploads() {
            tasks.push_back(dir.to_owned());
        }
        Self {
            name: kb.name.clone(),
            uploads: kb.uploads.clone(),
            read_only: kb.read_only_reason(),
            counter: kb.counter.take(),
            state: Mutex::new(FeedState {
                status: IngestStatus {
                    queued: tasks.len(),
                    documents,
                    chunks,
                    ..IngestStatus::default()
                },
                tasks,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The progress, with the counts last known (see [`KbFeed::counted_status`]).
    pub fn status(&self) -> IngestStatus {
        self.lock().status.clone()
    }

    /// The progress; a knowledge base on PostgreSQL, which other processes write into, is
    /// counted now, over the network: a blocking call, to make off the async runtime. If
    /// counting fails, the counts are the last ones known.
    pub fn counted_status(&self) -> IngestStatus {
        if let Some(Ok((documents, chunks))) = self.counter.as_ref().map(PgKb::sizes) {
            let mut state = self.lock();
            state.status.documents = documents;
            state.status.chunks = chunks;
        }
        self.status()
    }

    /// Queues a sync of `path` (once: a path already waiting is synced with its newest
    /// content anyway).
    pub(crate) fn push(&self, path: PathBuf) {
        let mut state = self.lock();
        if !state.tasks.contains(&path) {
            state.tasks.push_back(path);
            state.status.queued = state.tasks.len();
        }
    }

    /// Drops a queued sync of `path` (the file was deleted meanwhile).
    pub(crate) fn cancel(&self, path: &Path) {
        let mut state = self.lock();
        state.tasks.retain(|p| p != path);
        state.status.queued = state.tasks.len();
    }

    fn pop(&self) -> Option<PathBuf> {
        let mut state = self.lock();
        let path = state.tasks.pop_front()?;
        state.status.queued = state.tasks.len();
        state.status.running = Some(path.display().to_string());
        Some(path)
    }

    fn finish(&self, done: usize, failures: Vec<Failure>, kb: &KbStore) {
        let (documents, chunks) = kb.counts();
        let mut state = self.lock();
        let status = &mut state.status;
        status.running = None;
        status.done += done;
        status.failed += failures.len();
        status.failures.extend(failures);
        let excess = status.failures.len().saturating_sub(KEPT_FAILURES);
        status.failures.drain(..excess);
        status.documents = documents;
        status.chunks = chunks;
    }

    /// Records the counts after a change made outside the queue (a deletion).
    pub(crate) fn refresh(&self, kb: &KbStore) {
        let (documents, chunks) = kb.counts();
        let mut state = self.lock();
        state.status.documents = documents;
        state.status.chunks = chunks;
    }

    pub(crate) fn has_work(&self) -> bool {
        self.queued() > 0
    }

    /// Files waiting for a sync.
    pub(crate) fn queued(&self) -> usize {
        self.lock().tasks.len()
    }
}

/// Runs the next queued task of `feed` on `store`; `false` when there was none.
pub(crate) fn step(
    feed: &KbFeed,
    store: &mut KbStore,
    embedder: &dyn crate::TextEmbedder,
    chunk_max_tokens: usize,
) -> bool {
    // Only local knowledge bases take uploads, so only they have a queue.
    let KbStore::Local(kb) = store else {
        return false;
    };
    let Some(path) = feed.pop() else {
        return false;
    };
    let mut source = IngestSource::new(embedder);
    // A failure to read the settings surfaces as the sync's own error below.
    match ragtune_index::SyncTarget::chunking(&*kb) {
        Ok(Some(recorded)) => source.chunk = recorded,
        _ => source.chunk.max_tokens = chunk_max_tokens,
    }
    let outcome = kb.sync(
        std::slice::from_ref(&path),
        &source,
        embedder,
        &SyncOptions::default(),
        &mut NoProgress,
    );
    let (done, failures) = match outcome {
        Ok(summary) => (
            summary.added.len() + summary.updated.len() + summary.unchanged,
            summary
                .failed
                .iter()
                .map(|f| Failure {
                    file: f.path.display().to_string(),
                    reason: f.reason.clone(),
                })
                .collect(),
        ),
        Err(e) => (
            0,
            vec![Failure {
                file: path.display().to_string(),
                reason: e.to_string(),
            }],
        ),
    };
    feed.finish(done, failures, store);
    true
}

/// Checks an upload's file name: a plain name that stays inside the uploads folder, of a
/// type the knowledge base can read.
pub fn check_upload_name(name: &str) -> Result<&str, ApiError> {
    let refuse = |why: &str| {
        Err(ApiError::bad_request(
            format!("the upload name {name:?} {why}"),
            Some("file"),
        ))
    };
    if name.is_empty() || name.len() > 255 {
        return refuse("must have 1 to 255 bytes");
    }
    if name.contains(['/', '\\']) || Path::new(name).is_absolute() {
        return refuse("must be a plain file name, without folders");
    }
    if name.starts_with('.') {
        return refuse("must not start with '.' (hidden files are not indexed)");
    }
    if name.chars().any(char::is_control) {
        return refuse("must not hold control characters");
    }
    if ragtune_ingest::format_for_path(Path::new(name)).is_none() {
        return refuse(
            "is not a type the knowledge base reads (pdf, docx, xlsx, pptx, odt, epub, html, md, txt, csv, json, jsonl...)",
        );
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_that_could_leave_the_folder_are_refused() {
        for bad in [
            "../x.txt",
            "a/../../x.txt",
            "/etc/passwd.txt",
            "..\\x.txt",
            "sub/x.txt",
            ".hidden.txt",
            "",
            "x\u{0}.txt",
            "run.exe",
        ] {
            assert!(check_upload_name(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["notes.md", "Report 2024.pdf", "données.txt", "a..b.txt"] {
            assert_eq!(check_upload_name(good).unwrap(), good);
        }
    }
}
