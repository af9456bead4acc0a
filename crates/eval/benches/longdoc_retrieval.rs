//! Retrieval settings on long documents, measured by what the reader would see:
//! `cargo bench -p ragtune-eval --bench longdoc_retrieval`.
//!
//! Opens a knowledge base that `ragtune ingest` built from whole articles (bench/longdoc:
//! default `/tmp/ragtune-longdoc/kb-128`, or `LONGDOC_KB`), draws the questions as `ragtune
//! eval qa` does (`LONGDOC_QUESTIONS`, default SQuAD v1.1 dev; `LONGDOC_SAMPLE` [2000], seed 0),
//! and for each setting of the sweep retrieves the passages a RAG prompt would hold (no
//! window, no generation) and prints:
//!
//! - **gold paragraph**: the share of answerable questions whose gold paragraph is in a
//!   passage, by `eval qa`'s own test ([`ragtune_answer::eval::gold_in_passages`]);
//! - **words**: the passages' mean length in words (what the reader has to read).
//!
//! The sweep: top-k 1 to 4 at the default settings, and with fusion alone (the sentence-match
//! stage off); that stage over 5 and 20 candidates; BM25 and dense alone; a grid of top-k (2, 3),
//! RRF's k and BM25's weight (the literature's k 60 with equal weights among them); dense
//! weighted over BM25; the title field's BM25 boost. The query embedding is computed once per
//! question and reused.

use ragtune_answer::eval::gold_in_passages;
use ragtune_answer::sanitize::sanitize_passage;
use ragtune_core::{EmbedError, Embedder, Query, Retriever, SearchMode};
use ragtune_eval::QuestionSet;
use ragtune_index::{Bm25Options, KbOptions, KnowledgeBase};
use ragtune_retrieve::{KbRetriever, RetrieveOptions};
use std::collections::HashMap;
use std::sync::Mutex;

mod longdoc;
use longdoc::BoxError;

/// The embedder with its query vectors remembered: every setting asks the same questions.
struct QueryCache {
    inner: ragtune_embed::SentenceEmbedder,
    seen: Mutex<HashMap<String, Vec<f32>>>,
}

impl Embedder for QueryCache {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        if let Some(v) = self.seen.lock().expect("cache lock").get(text) {
            return Ok(v.clone());
        }
        let v = self.inner.embed_query(text)?;
        self.seen
            .lock()
            .expect("cache lock")
            .insert(text.to_owned(), v.clone());
        Ok(v)
    }
}

struct Setting {
    label: String,
    mode: SearchMode,
    k: usize,
    retrieve: RetrieveOptions,
    title_boost: f32,
}

/// A hybrid setting's label, saying which values are today's defaults.
fn hybrid_label(k: usize, o: &RetrieveOptions, title_boost: f32) -> String {
    let d = RetrieveOptions::default();
    let mark = |same: bool| if same { " (default)" } else { "" };
    let mut label = format!(
        "hybrid, top {k}{}, RRF k {}{}, BM25 weight {}{}",
        mark(k == 2),
        o.rrf_k,
        mark(o.rrf_k == d.rrf_k),
        o.bm25_weight,
        mark(o.bm25_weight == d.bm25_weight)
    );
    if o.dense_weight != d.dense_weight {
        label += &format!(", dense weight {}", o.dense_weight);
    }
    if o.sentence_depth != d.sentence_depth {
        label += &match o.sentence_depth {
            0 => ", fusion alone (no sentence stage)".to_owned(),
            n => format!(", sentence stage over the top {n}"),
        };
    }
    if title_boost != Bm25Options::default().title_boost {
        label += &format!(", title boost {title_boost}");
    }
    label
}

fn sweep() -> Vec<Setting> {
    let hybrid = |k: usize, retrieve: RetrieveOptions, title_boost: f32| Setting {
        label: hybrid_label(k, &retrieve, title_boost),
        mode: SearchMode::Hybrid,
        k,
        retrieve,
        title_boost,
    };
    let boost = Bm25Options::default().title_boost;
    let mut out: Vec<Setting> = (1..=4)
        .map(|k| hybrid(k, RetrieveOptions::default(), boost))
        .collect();
    // The sentence-match stage: off, and over fewer or more fused candidates.
    for k in 1..=4 {
        let off = RetrieveOptions {
            sentence_depth: 0,
            ..Default::default()
        };
        out.push(hybrid(k, off, boost));
    }
    for sentence_depth in [5, 20] {
        let o = RetrieveOptions {
            sentence_depth,
            ..Default::default()
        };
        out.push(hybrid(2, o, boost));
    }
    for (mode, name) in [(SearchMode::Bm25, "BM25"), (SearchMode::Dense, "dense")] {
        out.push(Setting {
            label: format!("{name} alone, top 2"),
            mode,
            k: 2,
            retrieve: RetrieveOptions::default(),
            title_boost: boost,
        });
    }
    // The fusion grid: how far BM25 should lead, and how much top ranks should count.
    for k in [2, 3] {
        for rrf_k in [2.0, 5.0, 10.0, 20.0, 60.0] {
            for bm25_weight in [1.0, 1.5, 2.0, 3.0] {
                let o = RetrieveOptions {
                    rrf_k,
                    bm25_weight,
                    ..Default::default()
                };
                out.push(hybrid(k, o, boost));
            }
        }
    }
    let dense_first = RetrieveOptions {
        dense_weight: 2.0,
        ..Default::default()
    };
    out.push(hybrid(2, dense_first, boost));
    for title_boost in [0.0, 1.0] {
        out.push(hybrid(2, RetrieveOptions::default(), title_boost));
    }
    out
}

fn main() -> Result<(), BoxError> {
    let longdoc::Inputs {
        kb: kb_dir,
        questions,
        sample,
        embedder: model,
        ..
    } = longdoc::inputs(2000)?;
    let embedder = QueryCache {
        inner: ragtune_embed::SentenceEmbedder::load(&model)?,
        seen: Mutex::new(HashMap::new()),
    };
    let set = QuestionSet::load(&questions, sample, 0)?;
    println!(
        "{}: {} questions drawn (seed 0) from {}",
        kb_dir.display(),
        set.items.len(),
        questions.display()
    );
    println!("| setting | gold paragraph in the passages | words in the passages |");
    println!("|---|---|---|");
    let mut open: Option<(f32, KnowledgeBase)> = None;
    for s in sweep() {
        // One handle at a time: the title boost is set when the knowledge base is opened.
        if open
            .as_ref()
            .is_none_or(|(boost, _)| *boost != s.title_boost)
        {
            drop(open.take());
            let options = KbOptions {
                bm25: Bm25Options {
                    title_boost: s.title_boost,
                },
                ..Default::default()
            };
            let kb = KnowledgeBase::open_existing_with(&kb_dir, &embedder, options)?;
            open = Some((s.title_boost, kb));
        }
        let (_, kb) = open.as_ref().expect("opened above");
        let retriever = KbRetriever::new(kb, &embedder)?.with_options(s.retrieve.clone());
        let (mut found, mut asked, mut words) = (0usize, 0usize, 0usize);
        for item in &set.items {
            let hits = retriever.retrieve(&Query::new(&item.question, s.k, s.mode))?;
            let texts: Vec<String> = hits.iter().map(|h| sanitize_passage(&h.text)).collect();
            words += texts
                .iter()
                .map(|t| t.split_whitespace().count())
                .sum::<usize>();
            if let Some(hit) = gold_in_passages(item, &texts) {
                asked += 1;
                found += usize::from(hit);
            }
        }
        println!(
            "| {} | {:.1}% ({found} of {asked}) | {:.0} |",
            s.label,
            100.0 * found as f64 / asked.max(1) as f64,
            words as f64 / set.items.len().max(1) as f64
        );
    }
    Ok(())
}
