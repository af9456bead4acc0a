//! Retrieval evaluation: index a corpus (one chunk per document, title + text as BEIR does),
//! run every query in each mode, and report nDCG@10, recall@1/5/10/100, MRR@10 and latency.
//!
//! Data: [`beir::load`] reads BEIR folders (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/<split>.tsv`); [`squad::load`] turns SQuAD into a corpus of paragraphs where each
//! question's gold paragraph is its one relevant document.

pub mod beir;
pub mod metrics;
pub mod squad;

use crate::{KbRetriever, Result};
use ragtune_core::{Chunk, Embedder, Format, Query, Retriever, SearchMode};
use ragtune_index::{DocumentRecord, KnowledgeBase};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

/// A document of an evaluation corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusDoc {
    pub id: String,
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corpus {
    pub docs: Vec<CorpusDoc>,
}

/// A query and the graded relevance of documents to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalQuery {
    pub id: String,
    pub text: String,
    pub relevant: HashMap<String, u32>,
}

/// Averages over the queries of one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub mode: SearchMode,
    pub queries: usize,
    pub ndcg_at_10: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    /// Per-query latency (retrieval including query embedding), milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Metrics {
    pub const HEADER: &str =
        "mode      queries  nDCG@10  R@1     R@5     R@10    R@100   MRR@10  p50 ms   p99 ms";
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<9} {:>7}  {:.4}   {:.4}  {:.4}  {:.4}  {:.4}  {:.4}  {:>7.3}  {:>7.3}",
            self.mode.as_str(),
            self.queries,
            self.ndcg_at_10,
            self.recall_at_1,
            self.recall_at_5,
            self.recall_at_10,
            self.recall_at_100,
            self.mrr_at_10,
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// The text a corpus document is indexed as: title, a space, text (BEIR's convention).
pub fn doc_text(doc: &CorpusDoc) -> String {
    if doc.title.is_empty() {
        doc.text.clone()
    } else {
        format!("{} {}", doc.title, doc.text)
    }
}

/// Writes each document as one chunk whose source is the document id, embedding in batches.
pub fn index_corpus(
    kb: &mut KnowledgeBase,
    corpus: &Corpus,
    embedder: &dyn Embedder,
) -> Result<()> {
    for batch in corpus.docs.chunks(128) {
        let texts: Vec<String> = batch.iter().map(doc_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder
            .embed(&refs)
            .map_err(|source| ragtune_index::Error::Embed {
                what: format!("corpus documents {}..", batch[0].id),
                source,
            })?;
        for ((doc, text), vector) in batch.iter().zip(texts).zip(vectors) {
            let record = DocumentRecord {
                source: doc.id.clone(),
                format: Format::Text,
                hash: text_hash(&text),
                size: text.len() as u64,
                mtime_ns: 0,
                metadata: [("title".to_owned(), doc.title.clone())].into(),
            };
            let chunk = Chunk {
                source: doc.id.clone(),
                ordinal: 0,
                end: text.len(),
                text,
                start: 0,
                page: None,
                heading_path: Vec::new(),
                tokens: 0,
            };
            kb.put_embedded(&record, &[chunk], &[vector])?;
        }
    }
    kb.checkpoint()?;
    Ok(())
}

fn text_hash(text: &str) -> String {
    // Evaluation documents have no file; a hash of the text stands in for the file hash.
    format!("{:016x}", fnv(text))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs every query (top 100) in `mode` and averages the metrics.
pub fn evaluate(
    retriever: &KbRetriever<'_>,
    queries: &[EvalQuery],
    mode: SearchMode,
) -> Result<Metrics> {
    let mut sums = [0f64; 6];
    let mut latencies = Vec::with_capacity(queries.len());
    let mut n = 0;
    for q in queries {
        if q.relevant.values().all(|&r| r == 0) {
            continue;
        }
        let start = Instant::now();
        let hits = retriever.retrieve(&Query::new(q.text.clone(), 100, mode))?;
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
        let mut seen = HashSet::new();
        let ranking: Vec<String> = hits
            .into_iter()
            .map(|h| h.source)
            .filter(|s| seen.insert(s.clone()))
            .collect();
        let r = &q.relevant;
        sums[0] += metrics::ndcg_at(&ranking, r, 10);
        sums[1] += metrics::recall_at(&ranking, r, 1);
        sums[2] += metrics::recall_at(&ranking, r, 5);
        sums[3] += metrics::recall_at(&ranking, r, 10);
        sums[4] += metrics::recall_at(&ranking, r, 100);
        sums[5] += metrics::mrr_at(&ranking, r, 10);
        n += 1;
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize]
        }
    };
    let avg = |i: usize| if n == 0 { 0.0 } else { sums[i] / n as f64 };
    Ok(Metrics {
        mode,
        queries: n,
        ndcg_at_10: avg(0),
        recall_at_1: avg(1),
        recall_at_5: avg(2),
        recall_at_10: avg(3),
        recall_at_100: avg(4),
        mrr_at_10: avg(5),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}
