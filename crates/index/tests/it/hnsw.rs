//! The vector indexes: HNSW recall against exact search, switching at the threshold, and the
//! vector file codec.

use anyhow::Result;
use proptest::prelude::*;
use ragtune_core::{Chunk, Format};
use ragtune_index::vector::{ExactIndex, HnswIndex, LocalVectorIndex};
use ragtune_index::{
    DocumentRecord, HnswParams, KbOptions, KnowledgeBase, VectorIndex, VectorIndexOptions,
};
use std::collections::HashSet;

/// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0
            - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
}

/// Vectors around `clusters` centres (like embeddings of topics), plus noise.
fn clustered(n: usize, dim: usize, clusters: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(dim)).collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter().map(|x| x + 0.6 * rng.next()).collect()
        })
        .collect()
}

fn recall_at_10(data: &[Vec<f32>], queries: &[Vec<f32>], params: HnswParams) -> f64 {
    let dim = data[0].len();
    let mut exact = ExactIndex::new(dim);
    let mut hnsw = HnswIndex::new(dim, params);
    for (i, v) in data.iter().enumerate() {
        exact.add(i as i64, v);
        hnsw.add(i as i64, v);
    }
    let mut found = 0;
    for q in queries {
        let truth: HashSet<i64> = exact.search(q, 10, None).into_iter().map(|h| h.0).collect();
        found += hnsw
            .search(q, 10, None)
            .iter()
            .filter(|h| truth.contains(&h.0))
            .count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn hnsw_recall_at_10_is_at_least_095_against_exact() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let params = HnswParams::default();
    // Uniform random vectors are the hard case (no structure to exploit).
    let data: Vec<Vec<f32>> = (0..3000).map(|_| rng.vector(48)).collect();
    let queries: Vec<Vec<f32>> = (0..200).map(|_| rng.vector(48)).collect();
    let uniform = recall_at_10(&data, &queries, params);
    let data = clustered(4000, 96, 40, &mut rng);
    let queries = clustered(200, 96, 40, &mut rng);
    let topical = recall_at_10(&data, &queries, params);
    eprintln!("HNSW recall@10: uniform 3000x48 {uniform:.4}, clustered 4000x96 {topical:.4}");
    assert!(uniform >= 0.95, "uniform recall@10 {uniform}");
    assert!(topical >= 0.95, "clustered recall@10 {topical}");
}

#[test]
fn hnsw_filtered_search_still_returns_k() {
    let mut rng = Rng(7);
    let mut hnsw = HnswIndex::new(16, HnswParams::default());
    for i in 0..2000 {
        hnsw.add(i, &rng.vector(16));
    }
    for modulus in [2, 50, 1000] {
        let f = move |id: i64| id % modulus == 0;
        let hits = hnsw.search(&rng.vector(16), 10, Some(&f));
        assert_eq!(
            hits.len(),
            10.min(2000 / modulus as usize),
            "modulus {modulus}"
        );
        assert!(hits.iter().all(|h| h.0 % modulus == 0));
    }
}

fn put(kb: &mut KnowledgeBase, i: usize, v: Vec<f32>) -> Result<()> {
    let source = format!("doc{i}");
    let doc = DocumentRecord {
        source: source.clone(),
        format: Format::Text,
        hash: source.clone(),
        size: 0,
        mtime_ns: 0,
        metadata: Default::default(),
    };
    let chunk = Chunk {
        source,
        ordinal: 0,
        text: format!("text {i}"),
        start: 0,
        end: 1,
        page: None,
        heading_path: vec![],
        tokens: 1,
    };
    kb.put_embedded(&doc, &[chunk], &[v])?;
    Ok(())
}

#[test]
fn knowledge_base_switches_to_hnsw_at_the_threshold_and_persists_the_graph() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let options = KbOptions {
        vectors: VectorIndexOptions {
            hnsw_threshold: 300,
            hnsw: HnswParams::default(),
        },
        ..Default::default()
    };
    let e = crate::support::embedder();
    let mut rng = Rng(11);
    let data: Vec<Vec<f32>> = (0..400).map(|_| rng.vector(crate::support::DIM)).collect();
    {
        let mut kb = KnowledgeBase::open_with(tmp.path(), &e, options)?;
        for (i, v) in data.iter().enumerate() {
            put(&mut kb, i, v.clone())?;
        }
        kb.checkpoint()?;
        crate::support::assert_consistent(&kb);
    }
    let (ix, problem) = LocalVectorIndex::open(
        &tmp.path().join("vectors.bin"),
        crate::support::DIM,
        options.vectors,
    );
    assert!(problem.is_none(), "{problem:?}");
    assert!(ix.is_hnsw());
    assert_eq!(ix.len(), 400);
    let kb = KnowledgeBase::open_with(tmp.path(), &e, options)?;
    assert!(kb.repairs().is_empty(), "{:?}", kb.repairs());
    let hit = kb.dense_search(&data[123], 1, None)?[0].0;
    assert_eq!(kb.chunks(&[hit])?[0].source, "doc123");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever is written reads back with the same search results, for both kinds.
    #[test]
    fn vector_file_round_trips(
        vectors in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, 8), 1..80),
        removed in prop::collection::vec(0usize..80, 0..20),
        threshold in 1usize..100,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("v.bin");
        let opts = VectorIndexOptions { hnsw_threshold: threshold, hnsw: HnswParams::default() };
        let (mut ix, _) = LocalVectorIndex::open(&path, 8, opts);
        for (i, v) in vectors.iter().enumerate() {
            ix.add(i as i64 * 3, v).unwrap();
        }
        for r in &removed {
            ix.remove(*r as i64 * 3).unwrap();
        }
        ix.commit(42).unwrap();
        let (back, problem) = LocalVectorIndex::open(&path, 8, opts);
        prop_assert!(problem.is_none());
        prop_assert_eq!(back.committed_seq(), 42);
        prop_assert_eq!(back.len(), ix.len());
        prop_assert_eq!(back.is_hnsw(), ix.is_hnsw());
        for q in vectors.iter().take(5) {
            prop_assert_eq!(back.search(q, 5, None).unwrap(), ix.search(q, 5, None).unwrap());
        }
    }
}
