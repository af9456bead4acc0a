//! ragtune's own vector index: exact below a size threshold, HNSW above it, persisted in one
//! file (or only in memory, for tests and throw-away knowledge bases).

use super::file::{self, Stored};
use super::{ExactIndex, HnswIndex, HnswParams, IdFilter, ScoredId, VectorIndex};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// When to switch from exact search to HNSW, and how to build the graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorIndexOptions {
    /// Collections with at least this many vectors are searched with HNSW; below half of it
    /// they go back to exact search (the gap avoids rebuilding back and forth).
    pub hnsw_threshold: usize,
    pub hnsw: HnswParams,
}

impl Default for VectorIndexOptions {
    fn default() -> Self {
        VectorIndexOptions {
            hnsw_threshold: 20_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// Exact or HNSW vectors, optionally backed by a file.
pub struct LocalVectorIndex {
    path: Option<PathBuf>,
    inner: Stored,
    seq: u64,
    /// Changed since the last commit.
    dirty: bool,
    options: VectorIndexOptions,
}

impl LocalVectorIndex {
    pub fn in_memory(dim: usize, options: VectorIndexOptions) -> Self {
        LocalVectorIndex {
            path: None,
            inner: Stored::Exact(ExactIndex::new(dim)),
            seq: 0,
            dirty: false,
            options,
        }
    }

    /// Opens the vector file. A missing, damaged or mismatched file gives an empty index at
    /// sequence 0, which the knowledge base then rebuilds from SQLite; the reason is returned.
    pub fn open(path: &Path, dim: usize, options: VectorIndexOptions) -> (Self, Option<String>) {
        let mut ix = LocalVectorIndex::in_memory(dim, options);
        ix.path = Some(path.to_owned());
        let problem = match file::read(path) {
            Ok(None) => None,
            Ok(Some((seq, stored))) => {
                let stored_dim = match &stored {
                    Stored::Exact(e) => e.dimension(),
                    Stored::Hnsw(h) => h.dimension(),
                };
                if stored_dim == dim {
                    ix.inner = stored;
                    ix.seq = seq;
                    if let Stored::Hnsw(h) = &mut ix.inner {
                        // Search breadth is a runtime choice, not part of the file.
                        h.set_ef_search(options.hnsw.ef_search);
                    }
                    None
                } else {
                    Some(format!(
                        "{}: {stored_dim} dimensions, expected {dim}",
                        path.display()
                    ))
                }
            }
            Err(e) => Some(e.to_string()),
        };
        (ix, problem)
    }

    /// Reads the vector file without changing it: `Ok(None)` when there is none, else its
    /// sequence, dimension and number of vectors; an error when it is damaged.
    pub(crate) fn inspect(path: &Path) -> Result<Option<(u64, usize, usize)>> {
        Ok(file::read(path)?.map(|(seq, stored)| match stored {
            Stored::Exact(e) => (seq, e.dimension(), e.len()),
            Stored::Hnsw(h) => (seq, h.dimension(), h.len()),
        }))
    }

    /// `true` while the graph index is in use.
    pub fn is_hnsw(&self) -> bool {
        matches!(self.inner, Stored::Hnsw(_))
    }

    /// Switches between exact and HNSW when the size crossed the thresholds.
    fn rebalance(&mut self) {
        let dim = self.dimension();
        let threshold = self.options.hnsw_threshold;
        match &self.inner {
            Stored::Exact(e) if e.len() >= threshold => {
                let mut h = HnswIndex::new(dim, self.options.hnsw);
                for (id, v) in e.iter() {
                    h.add(id, v);
                }
                self.inner = Stored::Hnsw(h);
            }
            Stored::Hnsw(h) if h.len() < threshold / 2 => {
                let mut e = ExactIndex::new(dim);
                for (id, v) in h.iter() {
                    e.add(id, v);
                }
                self.inner = Stored::Exact(e);
            }
            _ => {}
        }
    }
}

impl VectorIndex for LocalVectorIndex {
    fn dimension(&self) -> usize {
        match &self.inner {
            Stored::Exact(e) => e.dimension(),
            Stored::Hnsw(h) => h.dimension(),
        }
    }

    fn len(&self) -> usize {
        match &self.inner {
            Stored::Exact(e) => e.len(),
            Stored::Hnsw(h) => h.len(),
        }
    }

    fn add(&mut self, id: i64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dimension() {
            return Err(Error::Dimension {
                path: self.path.clone().unwrap_or_default(),
                what: format!("vector of chunk {id}"),
                expected: self.dimension(),
                actual: vector.len(),
            });
        }
        self.dirty = true;
        match &mut self.inner {
            Stored::Exact(e) => e.add(id, vector),
            Stored::Hnsw(h) => h.add(id, vector),
        }
        if matches!(&self.inner, Stored::Exact(e) if e.len() >= self.options.hnsw_threshold) {
            self.rebalance();
        }
        Ok(())
    }

    fn remove(&mut self, id: i64) -> Result<bool> {
        let removed = match &mut self.inner {
            Stored::Exact(e) => e.remove(id),
            Stored::Hnsw(h) => h.remove(id),
        };
        self.dirty |= removed;
        Ok(removed)
    }

    fn search(&self, query: &[f32], k: usize, filter: Option<IdFilter>) -> Result<Vec<ScoredId>> {
        if query.len() != self.dimension() {
            return Err(Error::Dimension {
                path: self.path.clone().unwrap_or_default(),
                what: "query vector".into(),
                expected: self.dimension(),
                actual: query.len(),
            });
        }
        Ok(match &self.inner {
            Stored::Exact(e) => e.search(query, k, filter),
            Stored::Hnsw(h) => h.search(query, k, filter),
        })
    }

    fn commit(&mut self, seq: u64) -> Result<()> {
        self.rebalance();
        if let Some(path) = &self.path
            && (self.dirty || seq != self.seq)
        {
            file::write(path, seq, &self.inner)?;
        }
        self.seq = seq;
        self.dirty = false;
        Ok(())
    }

    fn committed_seq(&self) -> u64 {
        self.seq
    }

    fn clear(&mut self) -> Result<()> {
        self.dirty = true;
        match &mut self.inner {
            Stored::Exact(e) => e.clear(),
            Stored::Hnsw(h) => h.clear(),
        }
        Ok(())
    }
}
