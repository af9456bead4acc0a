//! Shared fixtures: a docs folder, both storage backends, and the invariants every
//! knowledge base must satisfy.

use anyhow::Result;
pub use ragtune_index::testing::Docs;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, SyncOptions, SyncSummary};
use std::path::{Path, PathBuf};

pub const DIM: usize = 64;

pub fn embedder() -> HashEmbedder {
    HashEmbedder::new(DIM)
}

/// Where a knowledge base lives; tests loop over both (ripgrep's SearcherTester style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Ram,
    Disk,
}

pub const BACKENDS: [Backend; 2] = [Backend::Ram, Backend::Disk];

pub fn open(backend: Backend, dir: &Path) -> Result<KnowledgeBase> {
    Ok(match backend {
        Backend::Ram => KnowledgeBase::in_memory(&embedder())?,
        Backend::Disk => KnowledgeBase::open(&dir.join("kb"), &embedder())?,
    })
}

pub fn sync(kb: &mut KnowledgeBase, roots: &[PathBuf]) -> Result<SyncSummary> {
    Ok(kb.sync(
        roots,
        &PlainTextSource,
        &embedder(),
        &SyncOptions::default(),
        &mut ragtune_index::NoProgress,
    )?)
}

/// Every document has all its chunks and vectors, every index agrees with SQLite.
pub fn assert_consistent(kb: &KnowledgeBase) {
    let h = kb.health().unwrap();
    assert!(h.is_consistent(), "inconsistent knowledge base: {h:?}");
    for d in kb.documents().unwrap() {
        assert!(!d.hash.is_empty(), "half-written document row {d:?}");
    }
}

/// Sources of the BM25 hits for a query, best first.
pub fn bm25_sources(kb: &KnowledgeBase, q: &str) -> Vec<String> {
    let ids: Vec<i64> = kb
        .bm25_search(q, 50, None)
        .unwrap()
        .into_iter()
        .map(|h| h.0)
        .collect();
    kb.chunks(&ids)
        .unwrap()
        .into_iter()
        .map(|c| c.source)
        .collect()
}

/// Sources of the dense hits for a query, best first.
pub fn dense_sources(kb: &KnowledgeBase, q: &str, k: usize) -> Vec<String> {
    let v = embedder().vector(q);
    let ids: Vec<i64> = kb
        .dense_search(&v, k, None)
        .unwrap()
        .into_iter()
        .map(|h| h.0)
        .collect();
    kb.chunks(&ids)
        .unwrap()
        .into_iter()
        .map(|c| c.source)
        .collect()
}

/// A comparable picture of a knowledge base's content (ids differ between runs).
pub fn snapshot(kb: &KnowledgeBase) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for d in kb.documents().unwrap() {
        let ids: Vec<i64> = kb
            .store()
            .chunk_documents()
            .unwrap()
            .into_iter()
            .filter(|(_, doc)| *doc == d.id)
            .map(|(c, _)| c)
            .collect();
        let mut texts: Vec<(u32, String)> = kb
            .chunks(&ids)
            .unwrap()
            .into_iter()
            .map(|c| (c.ordinal, c.text))
            .collect();
        texts.sort();
        out.push((d.source, d.hash, texts.into_iter().map(|t| t.1).collect()));
    }
    out
}

/// Writes `n` two-paragraph documents (`d0.txt` about `topic0`, ...) into `docs` and syncs them
/// into a disk knowledge base in `dir`.
pub fn disk_kb_with_docs(dir: &Path, docs: &Docs, n: usize) -> Result<()> {
    for i in 0..n {
        docs.write(
            &format!("d{i}.txt"),
            &format!("paragraph about topic{i}\n\nsecond part {i}"),
        )?;
    }
    let mut kb = KnowledgeBase::open(dir, &embedder())?;
    sync(&mut kb, &[docs.root()])?;
    Ok(())
}

/// Every file under `dir` with its bytes, to prove that something changed none of them.
pub fn file_bytes(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, bytes);
            }
        }
    }
    out
}
