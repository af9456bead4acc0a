//! SciFact through the PostgreSQL store beside the embedded store, in one run: the same
//! documents, vectors (all-MiniLM-L6-v2) and queries, nDCG@10 per mode and query latency
//! (query embedding included), with the ratio of PostgreSQL's to the embedded store's.
//!
//! `cargo bench -p ragtune-pg --bench scifact`. The server is a fresh local PostgreSQL 18 +
//! pgvector from `scripts/deps` (`ragtune_pg::testing`), or `RAGTUNE_PG_URL` (a database URL;
//! the bench writes the knowledge base `?kb=bench_scifact` there and drops it afterwards).
//! `RAGTUNE_EMBED_MODEL` points at the embedder's folder (default: the pulled one).

use ragtune_core::{EmbedError, Embedder, SearchMode};
use ragtune_datasets::beir;
use ragtune_index::KnowledgeBase;
use ragtune_pg::{PgKb, PgRetriever};
use ragtune_retrieve::KbRetriever;
use ragtune_retrieve::eval::{self, Metrics};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

/// Documents are embedded once and their vectors handed to both stores; queries are
/// embedded every time, so both stores pay the same query embedding.
struct DocCache<'a> {
    inner: &'a dyn Embedder,
    vectors: Mutex<HashMap<String, Vec<f32>>>,
}

impl Embedder for DocCache<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut cache = self.vectors.lock().unwrap();
        let missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !cache.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            for (t, v) in missing.iter().zip(self.inner.embed(&missing)?) {
                cache.insert((*t).to_owned(), v);
            }
        }
        Ok(texts.iter().map(|t| cache[*t].clone()).collect())
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.inner.embed_query(text)
    }
}

fn main() -> Result<(), BoxError> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let (corpus, queries) = beir::load(&data.join("beir-scifact"), "test")?;
    let model = match std::env::var_os("RAGTUNE_EMBED_MODEL") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?)
            .join(".cache/ragtune/models/all-minilm-l6-v2"),
    };
    let minilm = ragtune_embed::SentenceEmbedder::load(&model)?;
    let embedder = DocCache {
        inner: &minilm,
        vectors: Mutex::new(HashMap::new()),
    };
    let server = match std::env::var("RAGTUNE_PG_URL") {
        Ok(_) => None,
        Err(_) => Some(ragtune_pg::testing::TestServer::start()),
    };
    let url = match (&server, std::env::var("RAGTUNE_PG_URL")) {
        (Some(s), _) => s.url("bench_scifact"),
        (None, Ok(u)) => format!("{u}?kb=bench_scifact"),
        (None, Err(_)) => unreachable!(),
    };
    println!(
        "BEIR SciFact (test): {} documents, {} queries; {} threads; queries one at a time",
        corpus.docs.len(),
        queries.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let mut local = KnowledgeBase::open(dir.path(), &embedder)?;
    eval::index_corpus(&mut local, &corpus, &embedder)?;
    println!(
        "embedded store: embedded and indexed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut pg = PgKb::open(&url, &embedder)?;
    eval::index_corpus(&mut pg, &corpus, &embedder)?;
    println!(
        "postgres store: written in {:.1} s (vectors from the run above); {} chunks, HNSW {}",
        start.elapsed().as_secs_f64(),
        pg.counts()?.0,
        if pg.has_hnsw()? {
            "built"
        } else {
            "not built (exact search below hnsw_min_chunks)"
        }
    );

    let local_r = KbRetriever::new(&local, &minilm)?;
    let pg_r = PgRetriever::new(&pg, &minilm)?;
    let warm = &queries[..queries.len().min(50)];
    eval::evaluate(&local_r, warm, SearchMode::Hybrid)?;
    eval::evaluate(&pg_r, warm, SearchMode::Hybrid)?;
    let mut table = Vec::new();
    for mode in SearchMode::ALL {
        let a = eval::evaluate(&local_r, &queries, mode)?;
        let b = eval::evaluate(&pg_r, &queries, mode)?;
        table.push((mode, a, b));
    }
    pg.build_hnsw()?;
    let hnsw = {
        let pg = PgKb::open_existing(&url)?;
        let r = PgRetriever::new(&pg, &minilm)?;
        eval::evaluate(&r, warm, SearchMode::Dense)?;
        eval::evaluate(&r, &queries, SearchMode::Dense)?
    };
    println!("\n{}", Metrics::HEADER);
    for (_, a, b) in &table {
        println!("{a}   (embedded)\n{b}   (postgres)");
    }
    println!("{hnsw}   (postgres, HNSW m=16 ef_construction=64 ef_search=100)");
    println!(
        "\nmode      nDCG@10 embedded  postgres  diff     p50 ms embedded  postgres  ratio  p99 ms embedded  postgres"
    );
    let row = |label: &str, a: &Metrics, b: &Metrics| {
        println!(
            "{:<9} {:>16.4}  {:>8.4}  {:+.4}  {:>15.2}  {:>8.2}  {:>5.2}  {:>15.2}  {:>8.2}",
            label,
            a.ndcg_at_10,
            b.ndcg_at_10,
            b.ndcg_at_10 - a.ndcg_at_10,
            a.p50_ms,
            b.p50_ms,
            b.p50_ms / a.p50_ms,
            a.p99_ms,
            b.p99_ms
        )
    };
    for (mode, a, b) in &table {
        row(mode.as_str(), a, b);
    }
    let dense = &table
        .iter()
        .find(|(m, ..)| *m == SearchMode::Dense)
        .unwrap()
        .1;
    row("dense, postgres with HNSW", dense, &hnsw);
    PgKb::open_existing(&url)?.drop_kb()?;
    Ok(())
}
