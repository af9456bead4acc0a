//! `ragtune eval ...`: how good is each approach on these questions?

use crate::kb::{open_embedder, parse_mode};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use ragtune_core::SearchMode;
use ragtune_index::KnowledgeBase;
use ragtune_retrieve::KbRetriever;
use ragtune_retrieve::eval::{self, Metrics};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality per mode: nDCG@10, recall@1/5/10/100, MRR@10, latency.
    Retrieval(RetrievalArgs),
}

#[derive(Debug, Args)]
pub struct RetrievalArgs {
    /// A BEIR data folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    #[arg(long, conflicts_with = "squad")]
    pub beir: Option<PathBuf>,
    /// The qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// A SQuAD JSON file: its paragraphs are the corpus, each question's own paragraph the
    /// relevant one.
    #[arg(long)]
    pub squad: Option<PathBuf>,
    /// Modes to evaluate (default: bm25, dense, hybrid).
    #[arg(long = "mode", value_parser = parse_mode)]
    pub modes: Vec<SearchMode>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Embedding model.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
}

pub fn run(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Retrieval(args) => retrieval(args),
    }
}

fn retrieval(args: RetrievalArgs) -> Result<()> {
    let (corpus, queries) = match (&args.beir, &args.squad) {
        (Some(dir), None) => eval::beir::load(dir, &args.split)?,
        (None, Some(file)) => eval::squad::load(file)?,
        _ => bail!("name the data: --beir DIR or --squad FILE"),
    };
    let embedder = open_embedder(&args.embedder)?;
    eprintln!(
        "indexing {} documents with {} ...",
        corpus.docs.len(),
        args.embedder
    );
    let mut kb = KnowledgeBase::in_memory(&embedder)?;
    eval::index_corpus(&mut kb, &corpus, &embedder)?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let modes = if args.modes.is_empty() {
        SearchMode::ALL.to_vec()
    } else {
        args.modes.clone()
    };
    let mut results: Vec<Metrics> = Vec::new();
    for mode in modes {
        results.push(eval::evaluate(&retriever, &queries, mode)?);
    }
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|m| {
                serde_json::json!({
                    "mode": m.mode.as_str(), "queries": m.queries,
                    "ndcg@10": m.ndcg_at_10, "recall@1": m.recall_at_1, "recall@5": m.recall_at_5,
                    "recall@10": m.recall_at_10, "recall@100": m.recall_at_100,
                    "mrr@10": m.mrr_at_10, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", Metrics::HEADER);
        for m in &results {
            println!("{m}");
        }
    }
    Ok(())
}
