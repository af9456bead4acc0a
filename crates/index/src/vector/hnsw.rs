//! Hierarchical navigable small world graph (Malkov & Yashunin 2016), following hnswlib:
//! heuristic neighbour selection, degree 2M on the base layer, tombstones for removal, and
//! filtered search that keeps traversing rejected nodes. When a filter (or tombstones) leaves
//! fewer than `k` results, search falls back to an exact scan, so `k` still come back.

use super::{Candidate, ScoredId, TopK, dot, normalize};
use std::collections::{BinaryHeap, HashMap};

/// Graph construction and search parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Links per node on upper layers (2M on the base layer).
    pub m: usize,
    /// Candidate list size while inserting; higher builds slower and better graphs.
    pub ef_construction: usize,
    /// Candidate list size while searching (at least `k` is used).
    pub ef_search: usize,
    /// Seed of the level generator, so builds are reproducible.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
            seed: 0x5eed_1234,
        }
    }
}

/// An HNSW index. Vectors are stored normalised, node-major, in one matrix.
#[derive(Debug, Clone)]
pub struct HnswIndex {
    pub(crate) params: HnswParams,
    pub(crate) dim: usize,
    pub(crate) ids: Vec<i64>,
    pub(crate) data: Vec<f32>,
    /// `links[node][layer]`: neighbour node numbers.
    pub(crate) links: Vec<Vec<Vec<u32>>>,
    pub(crate) deleted: Vec<bool>,
    pub(crate) entry: Option<u32>,
    pub(crate) rng: u64,
    nodes: HashMap<i64, u32>,
}

type Found = Vec<(f32, u32)>;

impl HnswIndex {
    pub fn new(dim: usize, params: HnswParams) -> Self {
        HnswIndex {
            params,
            dim,
            ids: Vec::new(),
            data: Vec::new(),
            links: Vec::new(),
            deleted: Vec::new(),
            entry: None,
            rng: params.seed,
            nodes: HashMap::new(),
        }
    }

    /// Restores a persisted graph; `nodes` is derived from ids and tombstones.
    pub(crate) fn from_parts(mut ix: HnswIndex) -> Self {
        ix.nodes = ix
            .ids
            .iter()
            .enumerate()
            .filter(|(n, _)| !ix.deleted[*n])
            .map(|(n, &id)| (id, n as u32))
            .collect();
        ix
    }

    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// Live (not removed) vectors.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef;
    }

    /// Live ids and vectors, in node order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[f32])> {
        (0..self.ids.len())
            .filter(|&n| !self.deleted[n])
            .map(|n| (self.ids[n], self.vector(n as u32)))
    }

    fn vector(&self, node: u32) -> &[f32] {
        let n = node as usize;
        &self.data[n * self.dim..(n + 1) * self.dim]
    }

    fn level_of(&self, node: u32) -> usize {
        self.links[node as usize].len() - 1
    }

    fn random_level(&mut self) -> usize {
        // splitmix64: tiny, deterministic, good enough for level draws.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.params.m.max(2) as f64).ln();
        ((-u.ln() * ml) as usize).min(16)
    }

    pub fn add(&mut self, id: i64, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dim);
        self.remove(id);
        let mut v = vector.to_vec();
        normalize(&mut v);
        let node = self.ids.len() as u32;
        let level = self.random_level();
        self.ids.push(id);
        self.data.extend_from_slice(&v);
        self.links.push(vec![Vec::new(); level + 1]);
        self.deleted.push(false);
        self.nodes.insert(id, node);
        let Some(mut ep) = self.entry else {
            self.entry = Some(node);
            return;
        };
        let top = self.level_of(ep);
        for layer in (level + 1..=top).rev() {
            ep = self.greedy(&v, ep, layer);
        }
        for layer in (0..=level.min(top)).rev() {
            let mut found =
                self.search_layer(&v, ep, self.params.ef_construction, layer, &|_| true);
            // Links to tombstones waste degree; keep them only when nothing else is near.
            if found.iter().any(|&(_, n)| !self.deleted[n as usize]) {
                found.retain(|&(_, n)| !self.deleted[n as usize]);
            }
            ep = found[0].1;
            let chosen = self.select(&found, self.params.m);
            let cap = self.cap(layer);
            for &nb in &chosen {
                self.links[nb as usize][layer].push(node);
                if self.links[nb as usize][layer].len() > cap {
                    self.shrink(nb, layer, cap);
                }
            }
            self.links[node as usize][layer] = chosen;
        }
        if level > top {
            self.entry = Some(node);
        }
    }

    /// Tombstones the node; the graph keeps routing through it. Compacts when half is dead.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(node) = self.nodes.remove(&id) else {
            return false;
        };
        self.deleted[node as usize] = true;
        if self.ids.len() > 64 && self.nodes.len() < self.ids.len() / 2 {
            self.compact();
        }
        true
    }

    /// Rebuilds the graph from the live vectors.
    pub fn compact(&mut self) {
        let live: Vec<(i64, Vec<f32>)> = self.iter().map(|(id, v)| (id, v.to_vec())).collect();
        let mut fresh = HnswIndex::new(self.dim, self.params);
        fresh.rng = self.rng;
        for (id, v) in &live {
            fresh.add(*id, v);
        }
        *self = fresh;
    }

    pub fn clear(&mut self) {
        *self = HnswIndex::new(self.dim, self.params);
    }

    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&(dyn Fn(i64) -> bool + Sync)>,
    ) -> Vec<ScoredId> {
        let Some(mut ep) = self.entry else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let mut q = query.to_vec();
        normalize(&mut q);
        for layer in (1..=self.level_of(ep)).rev() {
            ep = self.greedy(&q, ep, layer);
        }
        let accept =
            |n: u32| !self.deleted[n as usize] && filter.is_none_or(|f| f(self.ids[n as usize]));
        let ef = self.params.ef_search.max(k);
        let found = self.search_layer(&q, ep, ef, 0, &accept);
        if found.len() < k.min(self.len()) {
            return self.scan(&q, k, filter);
        }
        found
            .into_iter()
            .take(k)
            .map(|(s, n)| (self.ids[n as usize], s))
            .collect()
    }

    /// Exact search over the live nodes.
    fn scan(
        &self,
        q: &[f32],
        k: usize,
        filter: Option<&(dyn Fn(i64) -> bool + Sync)>,
    ) -> Vec<ScoredId> {
        let mut top = TopK::new(k);
        for (id, v) in self.iter() {
            if filter.is_none_or(|f| f(id)) {
                top.push(id, dot(q, v));
            }
        }
        top.into_sorted()
    }

    fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            self.params.m * 2
        } else {
            self.params.m
        }
    }

    /// Follows the best neighbour until none is better (upper layers, ef = 1).
    fn greedy(&self, q: &[f32], mut ep: u32, layer: usize) -> u32 {
        let mut best = dot(q, self.vector(ep));
        loop {
            let mut moved = false;
            for &nb in &self.links[ep as usize][layer] {
                let s = dot(q, self.vector(nb));
                if s > best {
                    best = s;
                    ep = nb;
                    moved = true;
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// Best-first search of one layer. Every node is traversed, only accepted ones are
    /// returned (best first); the search stops once `ef` accepted results cannot improve.
    fn search_layer(
        &self,
        q: &[f32],
        ep: u32,
        ef: usize,
        layer: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Found {
        let mut visited = vec![0u64; self.ids.len().div_ceil(64)];
        let mut seen = |n: u32| {
            let (w, b) = (n as usize / 64, n as usize % 64);
            let was = visited[w] >> b & 1 == 1;
            visited[w] |= 1 << b;
            was
        };
        seen(ep);
        let s = dot(q, self.vector(ep));
        let mut candidates = BinaryHeap::new();
        let mut results: BinaryHeap<std::cmp::Reverse<Candidate>> = BinaryHeap::new();
        candidates.push(Candidate {
            score: s,
            id: ep as i64,
        });
        let mut lower = f32::NEG_INFINITY;
        if accept(ep) {
            results.push(std::cmp::Reverse(Candidate {
                score: s,
                id: ep as i64,
            }));
            lower = s;
        }
        while let Some(c) = candidates.pop() {
            if c.score < lower && results.len() >= ef {
                break;
            }
            for &nb in &self.links[c.id as usize][layer] {
                if seen(nb) {
                    continue;
                }
                let s = dot(q, self.vector(nb));
                if results.len() < ef || s > lower {
                    candidates.push(Candidate {
                        score: s,
                        id: nb as i64,
                    });
                    if accept(nb) {
                        results.push(std::cmp::Reverse(Candidate {
                            score: s,
                            id: nb as i64,
                        }));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                    if let Some(w) = results.peek() {
                        lower = w.0.score;
                    }
                }
            }
        }
        let mut out: Found = results
            .into_iter()
            .map(|r| (r.0.score, r.0.id as u32))
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out
    }

    /// hnswlib's heuristic: take candidates best first, skipping one that is closer to an
    /// already chosen neighbour than to the base, so links spread in all directions.
    fn select(&self, found: &Found, m: usize) -> Vec<u32> {
        if found.len() <= m {
            return found.iter().map(|&(_, n)| n).collect();
        }
        let mut chosen: Vec<u32> = Vec::with_capacity(m);
        for &(s, n) in found {
            if chosen.len() >= m {
                break;
            }
            let v = self.vector(n);
            if chosen.iter().all(|&c| dot(v, self.vector(c)) <= s) {
                chosen.push(n);
            }
        }
        chosen
    }

    fn shrink(&mut self, node: u32, layer: usize, cap: usize) {
        let base = self.vector(node);
        let mut found: Found = self.links[node as usize][layer]
            .iter()
            .map(|&nb| (dot(base, self.vector(nb)), nb))
            .collect();
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        let chosen = self.select(&found, cap);
        self.links[node as usize][layer] = chosen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exact_match_and_honours_removal_and_filters() {
        let mut ix = HnswIndex::new(3, HnswParams::default());
        for i in 0..300i64 {
            let f = i as f32;
            ix.add(i, &[f.sin(), f.cos(), (f * 0.3).sin()]);
        }
        let f = 42f32;
        let q = [f.sin(), f.cos(), (f * 0.3).sin()];
        assert_eq!(ix.search(&q, 1, None)[0].0, 42);
        assert!(ix.remove(42));
        assert_ne!(ix.search(&q, 1, None)[0].0, 42);
        let only_7 = |id: i64| id % 100 == 7;
        let hits = ix.search(&q, 5, Some(&only_7));
        assert_eq!(hits.len(), 3, "{hits:?}"); // 7, 107, 207
        assert_eq!(ix.len(), 299);
    }
}
