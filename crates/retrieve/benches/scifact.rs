//! Retrieval quality and hybrid-search latency on BEIR SciFact (and SQuAD v1.1 dev paragraphs):
//! `cargo bench -p ragtune-retrieve --bench scifact`. Prints nDCG@10, recall@1/5/10/100,
//! MRR@10 and p50/p99 query latency per mode (latency includes query embedding).
//!
//! Dense search uses all-MiniLM-L6-v2 with `--features minilm` (model folder from
//! `RAGTUNE_EMBED_MODEL`, default `~/.cache/ragtune/models/all-minilm-l6-v2`, as `ragtune
//! models pull` leaves it); without the feature, a deterministic hashed bag-of-words embedder,
//! so only the BM25 numbers are meaningful. Knobs (environment): `RAGTUNE_TITLE_BOOST` (BM25
//! title-field weight, default as in `Bm25Options`), `RAGTUNE_RRF_K` (default as in
//! `RetrieveOptions`), `RAGTUNE_BENCH_SQUAD=0` skips SQuAD, `RAGTUNE_BENCH_SCIFACT=0` skips
//! SciFact, `RAGTUNE_FUSIONS="5:1.5 60:1:0"` adds a hybrid row per
//! `RRF_K:BM25_WEIGHT[:SENTENCE_DEPTH]` on the same index (the long-document sweep's
//! candidates; a sentence depth of 0 turns the sentence stage off).

use ragtune_core::{Embedder, SearchMode};
use ragtune_datasets::{beir, squad_retrieval};
use ragtune_index::{Bm25Options, KbOptions, KnowledgeBase};
use ragtune_retrieve::eval::{self, Corpus, EvalQuery, Metrics};
use ragtune_retrieve::{KbRetriever, RetrieveOptions};
use std::path::PathBuf;
use std::time::Instant;

fn env_f32(name: &str, default: f32) -> f32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type BoxError = Box<dyn std::error::Error>;

#[cfg(feature = "minilm")]
fn embedder() -> Result<Box<dyn Embedder>, BoxError> {
    let dir = match std::env::var_os("RAGTUNE_EMBED_MODEL") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?)
            .join(".cache/ragtune/models/all-minilm-l6-v2"),
    };
    Ok(Box::new(ragtune_embed::SentenceEmbedder::load(&dir)?))
}

#[cfg(not(feature = "minilm"))]
fn embedder() -> Result<Box<dyn Embedder>, BoxError> {
    Ok(Box::new(ragtune_index::testing::HashEmbedder::new(384)))
}

fn run(
    name: &str,
    corpus: &Corpus,
    queries: &[EvalQuery],
    fusions: &[RetrieveOptions],
) -> Result<(), BoxError> {
    let embedder = embedder()?;
    let embedder = embedder.as_ref();
    let default_boost = Bm25Options::default().title_boost;
    let options = KbOptions {
        bm25: Bm25Options {
            title_boost: env_f32("RAGTUNE_TITLE_BOOST", default_boost),
        },
        ..Default::default()
    };
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let mut kb = KnowledgeBase::open_with(dir.path(), embedder, options)?;
    eval::index_corpus(&mut kb, corpus, embedder)?;
    println!(
        "\n{name}: {} docs indexed on disk in {:.2} s, {} queries; embedder {}; BM25 title boost {}",
        corpus.docs.len(),
        start.elapsed().as_secs_f64(),
        queries.len(),
        kb.embedder_info().name,
        options.bm25.title_boost
    );
    let retrieve = RetrieveOptions {
        rrf_k: env_f32("RAGTUNE_RRF_K", RetrieveOptions::default().rrf_k),
        ..Default::default()
    };
    let r = KbRetriever::new(&kb, embedder)?.with_options(retrieve);
    // Warm caches (page cache, tantivy readers) so latency reflects steady state.
    eval::evaluate(&r, &queries[..queries.len().min(50)], SearchMode::Hybrid)?;
    println!("{}", Metrics::HEADER);
    for mode in SearchMode::ALL {
        println!("{}", eval::evaluate(&r, queries, mode)?);
    }
    for options in fusions {
        let r = KbRetriever::new(&kb, embedder)?.with_options(options.clone());
        let m = eval::evaluate(&r, queries, SearchMode::Hybrid)?;
        println!(
            "{m}   (RRF k {}, BM25 weight {}, sentence depth {})",
            options.rrf_k, options.bm25_weight, options.sentence_depth
        );
    }
    Ok(())
}

/// `RAGTUNE_FUSIONS`: space-separated `RRF_K:BM25_WEIGHT[:SENTENCE_DEPTH]` settings.
fn fusions() -> Result<Vec<RetrieveOptions>, BoxError> {
    let spec = std::env::var("RAGTUNE_FUSIONS").unwrap_or_default();
    spec.split_whitespace()
        .map(|setting| {
            let parts: Vec<&str> = setting.split(':').collect();
            let bad = || {
                format!("RAGTUNE_FUSIONS: {setting:?} is not RRF_K:BM25_WEIGHT[:SENTENCE_DEPTH]")
            };
            let (k, w, depth) = match parts[..] {
                [k, w] => (k, w, None),
                [k, w, d] => (k, w, Some(d)),
                _ => return Err(bad().into()),
            };
            let mut o = RetrieveOptions {
                rrf_k: k.parse().map_err(|_| bad())?,
                bm25_weight: w.parse().map_err(|_| bad())?,
                ..Default::default()
            };
            if let Some(d) = depth {
                o.sentence_depth = d.parse().map_err(|_| bad())?;
            }
            Ok(o)
        })
        .collect()
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    // Read before minutes of indexing, so that a mistyped pair fails at once.
    let fusions = fusions()?;
    println!(
        "machine: {} threads available; queries run one at a time",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if std::env::var("RAGTUNE_BENCH_SCIFACT").as_deref() != Ok("0") {
        let (corpus, queries) = beir::load(&data.join("beir-scifact"), "test")?;
        run("BEIR SciFact (test)", &corpus, &queries, &fusions)?;
    }
    if std::env::var("RAGTUNE_BENCH_SQUAD").as_deref() != Ok("0") {
        let (corpus, queries) = squad_retrieval(&data.join("squad-v1.1-dev/dev-v1.1.json"))?;
        run("SQuAD v1.1 dev paragraphs", &corpus, &queries, &fusions)?;
    }
    Ok(())
}
