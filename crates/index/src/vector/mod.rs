//! Vector search behind a small trait, so an external engine can replace ours later.
//!
//! Ours ([`LocalVectorIndex`]) is exact brute-force cosine ([`ExactIndex`]) until the collection
//! reaches a threshold, then an HNSW graph ([`HnswIndex`]). Both are derived from the vectors in
//! SQLite and persisted in one file whose header records the SQLite change sequence they
//! reflect, so a stale file is caught up on open.

mod exact;
mod file;
mod hnsw;
mod local;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use local::{LocalVectorIndex, VectorIndexOptions};

use crate::Result;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A chunk id and its cosine similarity to the query.
pub type ScoredId = (i64, f32);

/// An id predicate for filtered search; ids it rejects are never returned, and `k` results
/// still come back when at least `k` ids pass.
pub type IdFilter<'a> = &'a (dyn Fn(i64) -> bool + Sync);

/// A collection of vectors keyed by chunk id, searched by cosine similarity.
pub trait VectorIndex: Send + Sync {
    fn dimension(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds a vector, replacing any vector with the same id.
    fn add(&mut self, id: i64, vector: &[f32]) -> Result<()>;
    /// Removes a vector; `false` when the id was not there.
    fn remove(&mut self, id: i64) -> Result<bool>;
    /// The `k` most similar vectors, best first.
    fn search(&self, query: &[f32], k: usize, filter: Option<IdFilter>) -> Result<Vec<ScoredId>>;
    /// Makes the changes so far durable, recording the SQLite change sequence they reflect.
    fn commit(&mut self, seq: u64) -> Result<()>;
    /// The sequence of the last commit; 0 for a new or unreadable index (rebuilt from SQLite).
    fn committed_seq(&self) -> u64;
    /// Drops every vector (before a rebuild).
    fn clear(&mut self) -> Result<()>;
}

/// Scales `v` to unit length so that the dot product is the cosine; zero vectors stay zero.
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product with eight independent accumulators, a shape LLVM turns into SIMD lanes
/// (`target-cpu=native` is set for the workspace).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Ordered by score, ties broken by id so results are deterministic.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub score: f32,
    pub id: i64,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the best `k` candidates seen so far.
pub(crate) struct TopK {
    k: usize,
    // Min-heap through Reverse: the root is the worst kept candidate.
    heap: BinaryHeap<std::cmp::Reverse<Candidate>>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    pub fn push(&mut self, id: i64, score: f32) {
        if self.k == 0 {
            return;
        }
        let c = Candidate { score, id };
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(c));
        } else if let Some(worst) = self.heap.peek()
            && c > worst.0
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(c));
        }
    }

    pub fn into_sorted(self) -> Vec<ScoredId> {
        let mut v: Vec<Candidate> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|c| (c.id, c.score)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn top_k_keeps_best_in_order() {
        let mut t = TopK::new(2);
        for (id, s) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7)] {
            t.push(id, s);
        }
        assert_eq!(t.into_sorted(), vec![(2, 0.9), (4, 0.7)]);
    }
}
