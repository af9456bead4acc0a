//! Vectors for chunk texts: reused from the store when an identical text was embedded
//! before (renamed, copied or partly edited files), computed by the embedder otherwise.

use crate::store::Store;
use crate::sync::SyncSummary;
use crate::target::SyncTarget;
use crate::{Error, Result};
use ragtune_core::Embedder;
use std::collections::{HashMap, HashSet};

pub(crate) fn embed_counted(
    target: &dyn SyncTarget,
    embedder: &dyn Embedder,
    texts: &[&str],
    what: &str,
    summary: &mut SyncSummary,
) -> Result<Vec<Vec<f32>>> {
    let cached = |t: &[&str]| target.cached_vectors(t);
    let (vectors, embedded) = embed_with_cache(&cached, embedder, texts, what)?;
    summary.embedded_chunks += embedded;
    summary.reused_chunks += texts.len() - embedded;
    Ok(vectors)
}

/// Vectors for `texts`: stored ones for texts already in the knowledge base, the embedder
/// for the rest (each distinct text once).
pub(crate) fn embed_texts(
    store: &Store,
    embedder: &dyn Embedder,
    texts: &[&str],
    what: &str,
) -> Result<Vec<Vec<f32>>> {
    let cached = |t: &[&str]| store.cached_vectors(t);
    Ok(embed_with_cache(&cached, embedder, texts, what)?.0)
}

type Cached<'a> = dyn Fn(&[&str]) -> Result<HashMap<[u8; 32], Vec<f32>>> + 'a;

fn embed_with_cache(
    cached: &Cached<'_>,
    embedder: &dyn Embedder,
    texts: &[&str],
    what: &str,
) -> Result<(Vec<Vec<f32>>, usize)> {
    let mut known = cached(texts)?;
    let mut missing: Vec<&str> = Vec::new();
    let mut queued = HashSet::new();
    for t in texts {
        let h = crate::store::text_hash(t);
        if !known.contains_key(&h) && queued.insert(h) {
            missing.push(t);
        }
    }
    if !missing.is_empty() {
        let fresh = embedder.embed(&missing).map_err(|source| Error::Embed {
            what: what.to_owned(),
            source,
        })?;
        let bad = |reason: String| Error::Embed {
            what: what.to_owned(),
            source: ragtune_core::EmbedError::Permanent(reason),
        };
        if fresh.len() != missing.len() {
            return Err(bad(format!(
                "{} vectors for {} texts",
                fresh.len(),
                missing.len()
            )));
        }
        for (t, v) in missing.iter().zip(fresh) {
            if v.len() != embedder.dimension() {
                return Err(bad(format!(
                    "a vector of {} dimensions, expected {}",
                    v.len(),
                    embedder.dimension()
                )));
            }
            known.insert(crate::store::text_hash(t), v);
        }
    }
    let vectors = texts
        .iter()
        .map(|t| known[&crate::store::text_hash(t)].clone())
        .collect();
    Ok((vectors, missing.len()))
}
