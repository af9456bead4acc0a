//! Retrieval evaluation: index a corpus (one chunk per document, title + text as BEIR does),
//! run every query in each mode, and report nDCG@10, recall@1/5/10/100, MRR@10 and latency.
//! [`index_corpus_chunked`] cuts the documents into chunks as `ragtune ingest` does instead,
//! for answering questions from them (a whole article does not fit a prompt).
//!
//! Data comes from `ragtune-datasets` (BEIR folders, SQuAD as a corpus of paragraphs where
//! each question's gold paragraph is its one relevant document).

pub mod metrics;

pub use ragtune_datasets::{Corpus, CorpusDoc, EvalQuery};

use crate::Result;
use ragtune_core::{
    Chunk, Embedder, ExtractedDocument, Format, Query, Retriever, SearchMode, TokenCounter,
};
use ragtune_index::{FileRecord, NewDocument, SyncTarget};
use ragtune_ingest::ChunkOptions;
use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

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
    kb: &mut dyn SyncTarget,
    corpus: &Corpus,
    embedder: &dyn Embedder,
) -> Result<()> {
    index_with(kb, corpus, embedder, |doc| {
        let text = doc_text(doc);
        let chunk = Chunk {
            source: doc.id.clone(),
            ordinal: 0,
            end: text.len(),
            text: text.clone(),
            start: 0,
            page: None,
            heading_path: Vec::new(),
            tokens: 0,
        };
        (text, vec![chunk])
    })?;
    Ok(())
}

/// Writes each document (source: its id; title: its `title` metadata, which BM25 searches as
/// a title) cut into chunks with [`ragtune_ingest::chunk`], as `ragtune ingest` cuts a plain
/// text file: paragraphs at blank lines, `options.max_tokens` counted by `counter` (the
/// embedder's tokenizer). Returns the number of chunks.
pub fn index_corpus_chunked(
    kb: &mut dyn SyncTarget,
    corpus: &Corpus,
    embedder: &dyn Embedder,
    counter: &dyn TokenCounter,
    options: &ChunkOptions,
) -> Result<usize> {
    index_with(kb, corpus, embedder, |doc| {
        let extracted = ExtractedDocument {
            source: doc.id.clone(),
            format: Format::Text,
            text: doc.text.clone(),
            // No blocks: the chunker makes paragraphs of text no block covers.
            blocks: Vec::new(),
            metadata: Default::default(),
        };
        let chunks = ragtune_ingest::chunk(&extracted, counter, options);
        (extracted.text, chunks)
    })
}

/// Writes each document with the chunks `cut` makes of it (and the text its hash is taken
/// of), embedding in batches. Returns the number of chunks.
fn index_with(
    kb: &mut dyn SyncTarget,
    corpus: &Corpus,
    embedder: &dyn Embedder,
    cut: impl Fn(&CorpusDoc) -> (String, Vec<Chunk>),
) -> Result<usize> {
    let mut written = 0;
    for batch in corpus.docs.chunks(128) {
        let cut: Vec<(String, Vec<Chunk>)> = batch.iter().map(&cut).collect();
        let refs: Vec<&str> = cut
            .iter()
            .flat_map(|(_, chunks)| chunks.iter().map(|c| c.text.as_str()))
            .collect();
        let mut vectors = embedder
            .embed(&refs)
            .map_err(|source| ragtune_index::Error::Embed {
                what: format!("corpus documents {}..", batch[0].id),
                source,
            })?
            .into_iter();
        for (doc, (text, chunks)) in batch.iter().zip(cut) {
            let file = FileRecord {
                path: doc.id.clone(),
                hash: text_hash(&text),
                size: text.len() as u64,
                mtime_ns: 0,
            };
            let metadata = [("title".to_owned(), doc.title.clone())].into();
            let vectors: Vec<Vec<f32>> = vectors.by_ref().take(chunks.len()).collect();
            let new = NewDocument {
                source: &doc.id,
                format: Format::Text,
                metadata: &metadata,
                chunks: &chunks,
                vectors: &vectors,
            };
            kb.put_file(&file, &[new])?;
            written += chunks.len();
        }
    }
    kb.checkpoint()?;
    kb.sync_finished()?;
    Ok(written)
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
    retriever: &dyn Retriever,
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
