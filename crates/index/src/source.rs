//! The seam between sync and the loaders: which files are under a root, and how one file
//! becomes an extracted document and its chunks. `ragtune-ingest` provides the real one;
//! the `testing` feature has a plain-text one.

use ragtune_core::{Chunk, ExtractedDocument};
use ragtune_ingest::ChunkOptions;
use std::path::{Path, PathBuf};

/// A document turned into text and chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDocument {
    pub document: ExtractedDocument,
    pub chunks: Vec<Chunk>,
}

/// Everything one file gave: usually one document, one per record for JSON arrays, JSONL
/// and the like (each with its own `source`, e.g. `notes.jsonl#L12`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadedFile {
    pub documents: Vec<LoadedDocument>,
    /// Problems that did not stop loading (no text layer, a skipped record...).
    pub warnings: Vec<String>,
    /// The part of the loading time spent cutting chunks (the rest is extraction).
    pub chunk_time: std::time::Duration,
}

/// Why a file or directory could not be listed or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct SourceError {
    pub path: PathBuf,
    pub reason: String,
    /// Not a failure: an entry that is no file to index (a FIFO, a socket, a link that
    /// leads nowhere or in a loop), listed so that sync can say it was skipped.
    pub skipped: bool,
}

impl SourceError {
    pub fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        SourceError {
            path: path.into(),
            reason: reason.into(),
            skipped: false,
        }
    }
}

/// Lists and loads files for [`KnowledgeBase::sync`](crate::KnowledgeBase::sync).
pub trait DocumentSource: Send + Sync {
    /// The files to index under `root` (an absolute file or directory path), as absolute
    /// paths. Entries that cannot be read come back as errors; sync reports them and keeps
    /// the documents it already has under them.
    fn list(&self, root: &Path) -> Vec<Result<PathBuf, SourceError>>;

    /// Loads and chunks one file.
    fn load(&self, path: &Path) -> Result<LoadedFile, SourceError>;

    /// The chunk settings `load` cuts with, which sync holds against the knowledge base's
    /// (`None`: a source whose chunks follow no settings, such as a test's).
    fn chunking(&self) -> Option<&ChunkOptions> {
        None
    }
}
