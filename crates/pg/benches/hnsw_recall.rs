//! HNSW recall@10 against exact search at 100,000 vectors in the PostgreSQL store:
//! `cargo bench -p ragtune-pg --bench hnsw_recall`. Synthetic clustered vectors (384
//! dimensions, 1,000 clusters, seeded), 200 queries near cluster members; the truth is exact
//! cosine search computed here; PostgreSQL answers once without an index (exact, sequential
//! scan) and then through HNSW (m=16, ef_construction=64) at several ef_search values, each
//! with its recall@10 and p50/p99 latency. `RAGTUNE_HNSW_N` changes the count.

use ragtune_core::rng::SplitMix64;
use ragtune_core::stats::percentile;
use ragtune_core::{Chunk, EmbedError, Embedder, Format, Query, Retriever, SearchMode};
use ragtune_index::{FileRecord, NewDocument, SyncTarget};
use ragtune_pg::{PgKb, PgRetriever};
use std::collections::HashSet;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

const DIM: usize = 384;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Queries are named `q<i>`; their vectors were drawn beforehand.
struct Lookup {
    queries: Vec<Vec<f32>>,
}

impl Embedder for Lookup {
    fn name(&self) -> &str {
        "synthetic-384"
    }
    fn dimension(&self) -> usize {
        DIM
    }
    fn embed(&self, _: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::Permanent(
            "documents come with their vectors".into(),
        ))
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let i: usize = text[1..]
            .parse()
            .map_err(|_| EmbedError::Permanent(text.into()))?;
        Ok(self.queries[i].clone())
    }
}

fn main() -> Result<(), BoxError> {
    let n: usize = std::env::var("RAGTUNE_HNSW_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = SplitMix64::new(7);
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| unit(rng.uniform(DIM, -1.0, 1.0)))
        .collect();
    let near = |rng: &mut SplitMix64, c: &[f32], spread: f32| -> Vec<f32> {
        unit(
            c.iter()
                .zip(rng.uniform(DIM, -spread, spread))
                .map(|(x, d)| x + d)
                .collect(),
        )
    };
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            let c = &centres[rng.below(centres.len() as u64) as usize];
            near(&mut rng, c, 0.08)
        })
        .collect();
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let v = &vectors[rng.below(n as u64) as usize];
            near(&mut rng, v, 0.05)
        })
        .collect();
    // The truth: exact cosine (dot product of unit vectors), top 10.
    let truth: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            let mut scored: Vec<(f32, usize)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i))
                .collect();
            scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
            scored[..10].iter().map(|&(_, i)| i).collect()
        })
        .collect();

    let server = ragtune_pg::testing::TestServer::start();
    let base = server.url("bench_hnsw");
    let embedder = Lookup { queries };
    let mut kb = PgKb::open(&format!("{base}&hnsw_min_chunks={}", n + 1), &embedder)?;
    let start = Instant::now();
    let metadata = Default::default();
    for (f, batch) in vectors.chunks(1000).enumerate() {
        let texts: Vec<(String, Vec<Chunk>)> = (0..batch.len())
            .map(|j| {
                let source = format!("v{}", f * 1000 + j);
                let chunk = Chunk {
                    source: source.clone(),
                    ordinal: 0,
                    text: source.clone(),
                    start: 0,
                    end: source.len(),
                    page: None,
                    heading_path: vec![],
                    tokens: 1,
                };
                (source, vec![chunk])
            })
            .collect();
        let docs: Vec<NewDocument<'_>> = texts
            .iter()
            .zip(batch.chunks(1))
            .map(|((source, chunks), v)| NewDocument {
                source,
                format: Format::Text,
                metadata: &metadata,
                chunks,
                vectors: v,
            })
            .collect();
        let file = FileRecord {
            path: format!("batch{f}"),
            hash: format!("{f}"),
            size: 0,
            mtime_ns: 0,
        };
        kb.put_file(&file, &docs)?;
    }
    println!(
        "{n} vectors of {DIM} dimensions written in {:.1} s; 200 queries, recall@10 against exact search",
        start.elapsed().as_secs_f64()
    );

    let run = |kb: &PgKb, label: &str| -> Result<(), BoxError> {
        let r = PgRetriever::new(kb, &embedder)?;
        let mut latencies = Vec::new();
        let mut found = 0;
        for (i, want) in truth.iter().enumerate() {
            let start = Instant::now();
            let hits = r.retrieve(&Query::new(format!("q{i}"), 10, SearchMode::Dense))?;
            latencies.push(start.elapsed().as_secs_f64() * 1e3);
            let got: HashSet<usize> = hits
                .iter()
                .map(|h| h.source[1..].parse().unwrap())
                .collect();
            found += want.iter().filter(|w| got.contains(w)).count();
        }
        println!(
            "{label:<34} recall@10 {:.4}   p50 {:>7.2} ms   p99 {:>7.2} ms",
            found as f64 / (10 * truth.len()) as f64,
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0)
        );
        Ok(())
    };
    run(&kb, "exact (no index)")?;
    let start = Instant::now();
    kb.build_hnsw()?;
    println!(
        "HNSW (m=16, ef_construction=64) built in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for ef in [20, 40, 64, 100, 200] {
        let kb = PgKb::open_existing(&format!("{base}&ef_search={ef}"))?;
        run(&kb, &format!("hnsw ef_search={ef}"))?;
    }
    Ok(())
}
