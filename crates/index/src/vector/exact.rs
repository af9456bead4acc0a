//! Brute-force cosine over one contiguous row-major f32 matrix: exact, and fast enough
//! (a few milliseconds per query) up to tens of thousands of vectors.

use super::{ScoredId, TopK, dot, normalize};
use std::collections::HashMap;

/// Exact nearest neighbours. Vectors are stored normalised.
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    dim: usize,
    ids: Vec<i64>,
    data: Vec<f32>,
    rows: HashMap<i64, usize>,
}

impl ExactIndex {
    pub fn new(dim: usize) -> Self {
        ExactIndex {
            dim,
            ..Default::default()
        }
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds (or replaces) a vector; the caller has checked its dimension.
    pub fn add(&mut self, id: i64, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dim);
        let mut v = vector.to_vec();
        normalize(&mut v);
        if let Some(&row) = self.rows.get(&id) {
            self.data[row * self.dim..(row + 1) * self.dim].copy_from_slice(&v);
            return;
        }
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        self.data.extend_from_slice(&v);
    }

    /// Removes by moving the last row into the hole, so the matrix stays dense.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(row) = self.rows.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.data
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.data.truncate(last * self.dim);
        true
    }

    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&(dyn Fn(i64) -> bool + Sync)>,
    ) -> Vec<ScoredId> {
        let mut q = query.to_vec();
        normalize(&mut q);
        let mut top = TopK::new(k);
        for (row, v) in self.data.chunks_exact(self.dim.max(1)).enumerate() {
            let id = self.ids[row];
            if filter.is_some_and(|f| !f(id)) {
                continue;
            }
            top.push(id, dot(&q, v));
        }
        top.into_sorted()
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.data.clear();
        self.rows.clear();
    }

    /// Ids and rows in storage order, for persistence and for building an HNSW graph.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[f32])> {
        self.ids
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.dim.max(1)))
    }

    /// Rebuilds from stored (already normalised) rows.
    pub(crate) fn from_parts(dim: usize, ids: Vec<i64>, data: Vec<f32>) -> Self {
        let rows = ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        ExactIndex {
            dim,
            ids,
            data,
            rows,
        }
    }

    pub(crate) fn parts(&self) -> (&[i64], &[f32]) {
        (&self.ids, &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_moves_last_row_and_keeps_lookups_right() {
        let mut ix = ExactIndex::new(2);
        ix.add(1, &[1.0, 0.0]);
        ix.add(2, &[0.0, 1.0]);
        ix.add(3, &[1.0, 1.0]);
        assert!(ix.remove(1));
        assert!(!ix.remove(1));
        assert_eq!(ix.len(), 2);
        let hits = ix.search(&[1.0, 1.0], 1, None);
        assert_eq!(hits[0].0, 3);
        let hits = ix.search(&[0.0, 1.0], 1, None);
        assert_eq!(hits[0].0, 2);
        ix.add(3, &[-1.0, 0.0]); // replace in place
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.search(&[-1.0, 0.0], 1, None)[0].0, 3);
    }

    #[test]
    fn filter_applies_before_cut_off() {
        let mut ix = ExactIndex::new(1);
        for id in 0..10 {
            ix.add(id, &[1.0]);
        }
        let even = |id: i64| id % 2 == 0;
        let hits = ix.search(&[1.0], 3, Some(&even));
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|(id, _)| id % 2 == 0));
    }
}
