//! A small knowledge base of text files, built through sync on each storage backend.

use anyhow::Result;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions};
use std::path::PathBuf;

pub fn embedder() -> HashEmbedder {
    HashEmbedder::new(128)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Ram,
    Disk,
}

pub const BACKENDS: [Backend; 2] = [Backend::Ram, Backend::Disk];

pub const FILES: &[(&str, &str)] = &[
    (
        "guides/rust.md",
        "# Ownership\n\nThe borrow checker rejects dangling references at compile time.\n\n# Cargo\n\nCargo builds crates and resolves dependencies from the registry.",
    ),
    (
        "guides/python.md",
        "# Python\n\nThe garbage collector frees cycles; reference counting frees the rest.",
    ),
    (
        "notes/cooking.txt",
        "Simmer the tomato sauce slowly and season it with basil.",
    ),
    (
        "notes/garden.txt",
        "Water the tomato plants in the morning, never at noon.",
    ),
    (
        "notes/travel.txt",
        "The night train to Vienna leaves at nine.",
    ),
    (
        "archive/old-rust.md",
        "# Legacy\n\nOld compilers had no borrow checker at all.",
    ),
];

/// Files on disk plus a knowledge base synced from them.
pub struct Fixture {
    pub docs: tempfile::TempDir,
    _kb_dir: tempfile::TempDir,
    pub kb: KnowledgeBase,
}

impl Fixture {
    pub fn new(backend: Backend) -> Result<Self> {
        Self::with_files(backend, FILES)
    }

    /// A knowledge base of `files` (name, text).
    pub fn with_files(backend: Backend, files: &[(&str, &str)]) -> Result<Self> {
        let docs = tempfile::tempdir()?;
        for (name, text) in files {
            let p = docs.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap())?;
            std::fs::write(p, text)?;
        }
        let kb_dir = tempfile::tempdir()?;
        let mut kb = match backend {
            Backend::Ram => KnowledgeBase::in_memory(&embedder())?,
            Backend::Disk => KnowledgeBase::open(kb_dir.path(), &embedder())?,
        };
        let root: PathBuf = docs.path().canonicalize()?;
        let s = kb.sync(
            &[root],
            &PlainTextSource,
            &embedder(),
            &SyncOptions::default(),
            &mut NoProgress,
        )?;
        assert_eq!(s.added.len(), files.len());
        Ok(Fixture {
            docs,
            _kb_dir: kb_dir,
            kb,
        })
    }

    pub fn source(&self, name: &str) -> String {
        self.docs
            .path()
            .canonicalize()
            .unwrap()
            .join(name)
            .to_string_lossy()
            .into_owned()
    }
}
