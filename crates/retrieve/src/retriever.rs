//! [`KbRetriever`]: the [`Retriever`] over a knowledge base. Dense and BM25 rank chunks on
//! their own; hybrid asks both for a deeper candidate list, fuses the ranks and reorders the
//! head of the fused list by its chunks' best sentences.

use crate::filter;
use crate::fusion::{Fused, RankedList, reciprocal_rank_fusion};
use crate::sentence_match::{QUESTION_WORDS, SentenceMatch, is_question, rerank};
use ragtune_core::{Embedder, Hit, Query, RetrieveError, Retriever, SearchMode};
use ragtune_index::{KnowledgeBase, SharedFilter, StoredChunk};
use std::collections::BTreeMap;

/// How hybrid search fuses, and how deep each mode looks.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrieveOptions {
    /// The `k` of reciprocal rank fusion; larger flattens the advantage of top ranks.
    pub rrf_k: f32,
    pub bm25_weight: f32,
    pub dense_weight: f32,
    /// Each mode fetches `max(k * depth_factor, min_depth)` candidates for fusion.
    pub depth_factor: usize,
    pub min_depth: usize,
    /// How many of the fused candidates the sentence-match stage reorders
    /// ([`crate::sentence_match`]); 0 or 1 turns it off. Hybrid search of questions only.
    pub sentence_depth: usize,
}

/// Measured, not the literature's k = 60 with equal weights: a small k lets each list's top
/// hits lead, and BM25 (the stronger list with MiniLM) counts 1.5 times. On long documents
/// (bench `longdoc_retrieval`) the gold paragraph is in the top 2 for 85.3% of 2,000 SQuAD
/// v1.1 questions against 81.4% (v2.0: 85.7% against 83.2%); SciFact nDCG@10 0.7292 against
/// 0.7187, SQuAD paragraphs 0.8826 against 0.8601 (BENCHMARKS.md, "Long documents"). The
/// sentence stage over the first 10 then lifts the long-document share to 87.4% (a depth of 5
/// or 20 gave 87.1% and 87.2%).
impl Default for RetrieveOptions {
    fn default() -> Self {
        RetrieveOptions {
            rrf_k: 5.0,
            bm25_weight: 1.5,
            dense_weight: 1.0,
            depth_factor: 4,
            min_depth: 100,
            sentence_depth: 10,
        }
    }
}

impl RetrieveOptions {
    /// How many of `query`'s first fused hits the sentence stage reorders: `sentence_depth`
    /// for a hybrid search of a question, else 0 (no stage).
    pub fn sentence_head(&self, query: &Query) -> usize {
        let applies = query.mode == SearchMode::Hybrid && is_question(&query.text);
        if applies && self.sentence_depth > 1 {
            self.sentence_depth
        } else {
            0
        }
    }

    /// `hits` (hydrated, in fused order, the stage's whole head when it applies) with their
    /// head reordered by `stage` when the sentence stage applies to `query`, then cut to
    /// `query.k`: what every store's retriever returns.
    pub fn finish_hits(
        &self,
        query: &Query,
        mut hits: Vec<Hit>,
        stage: impl FnOnce(&mut [Hit]) -> Result<(), RetrieveError>,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let head = self.sentence_head(query).min(hits.len());
        if head > 1 {
            stage(&mut hits[..head])?;
        }
        hits.truncate(query.k);
        Ok(hits)
    }
}

/// Answers queries from a knowledge base with the embedder that built it.
pub struct KbRetriever<'a> {
    kb: &'a KnowledgeBase,
    embedder: &'a dyn Embedder,
    options: RetrieveOptions,
}

fn index_err(e: ragtune_index::Error) -> RetrieveError {
    RetrieveError::Index(e.to_string())
}

impl<'a> KbRetriever<'a> {
    /// Fails when `embedder` is not the one the knowledge base was built with.
    pub fn new(kb: &'a KnowledgeBase, embedder: &'a dyn Embedder) -> Result<Self, RetrieveError> {
        let info = kb.embedder_info();
        if info.name != embedder.name() || info.dimension != embedder.dimension() {
            return Err(RetrieveError::InvalidQuery(format!(
                "the knowledge base was built with embedder `{}` ({} dimensions), not `{}` ({}); search with the same embedder",
                info.name,
                info.dimension,
                embedder.name(),
                embedder.dimension()
            )));
        }
        Ok(KbRetriever {
            kb,
            embedder,
            options: RetrieveOptions::default(),
        })
    }

    pub fn with_options(mut self, options: RetrieveOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> &RetrieveOptions {
        &self.options
    }

    fn dense(
        &self,
        text: &str,
        depth: usize,
        filter: Option<SharedFilter>,
    ) -> Result<Vec<(i64, f32)>, RetrieveError> {
        let q = self.embedder.embed_query(text)?;
        self.kb.dense_search(&q, depth, filter).map_err(index_err)
    }

    fn bm25(
        &self,
        text: &str,
        depth: usize,
        filter: Option<SharedFilter>,
    ) -> Result<Vec<(i64, f32)>, RetrieveError> {
        self.kb.bm25_search(text, depth, filter).map_err(index_err)
    }

    /// Reorders `head` by its chunks' best sentences ([`crate::sentence_match`]).
    fn sentence_stage(&self, question: &str, head: &mut [Hit]) -> Result<(), RetrieveError> {
        let skip = self.kb.bm25_terms(QUESTION_WORDS);
        let mut terms = self.kb.bm25_terms(question);
        terms.retain(|t| !skip.contains(t));
        if terms.is_empty() {
            return Ok(());
        }
        let (docs, dfs) = self.kb.bm25_doc_freqs(&terms).map_err(index_err)?;
        let matcher = SentenceMatch::new(&terms, docs, &dfs);
        let scores: Vec<f32> = head
            .iter()
            .map(|h| matcher.chunk_score(&h.text, |s| self.kb.bm25_terms(s)))
            .collect();
        rerank(head, &scores, |h| &mut h.score);
        Ok(())
    }

    /// Ranked chunk ids with their score and per-mode ranks, before hydration and before the
    /// sentence stage: the first `query.k`, or the stage's whole head when it is longer.
    fn rank(&self, query: &Query) -> Result<Vec<Fused>, RetrieveError> {
        let filter = filter::resolve(self.kb, &query.filter)
            .map_err(|e| RetrieveError::InvalidQuery(e.to_string()))?;
        let k = query.k.max(self.options.sentence_head(query));
        let single = |list: Vec<(i64, f32)>, mode| {
            list.into_iter()
                .enumerate()
                .map(|(i, (id, score))| Fused {
                    id,
                    score,
                    ranks: vec![(mode, i as u32 + 1)],
                })
                .collect()
        };
        Ok(match query.mode {
            SearchMode::Bm25 => single(self.bm25(&query.text, k, filter)?, SearchMode::Bm25),
            SearchMode::Dense => single(self.dense(&query.text, k, filter)?, SearchMode::Dense),
            SearchMode::Hybrid => {
                let o = &self.options;
                let depth = (k * o.depth_factor).max(o.min_depth).max(k);
                let bm25: Vec<i64> = self
                    .bm25(&query.text, depth, filter.clone())?
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                let dense: Vec<i64> = self
                    .dense(&query.text, depth, filter)?
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                let lists = [
                    RankedList {
                        mode: SearchMode::Bm25,
                        weight: o.bm25_weight,
                        ids: &bm25,
                    },
                    RankedList {
                        mode: SearchMode::Dense,
                        weight: o.dense_weight,
                        ids: &dense,
                    },
                ];
                let mut fused = reciprocal_rank_fusion(&lists, o.rrf_k);
                fused.truncate(k);
                fused
            }
        })
    }
}

impl Retriever for KbRetriever<'_> {
    fn retrieve(&self, query: &Query) -> Result<Vec<Hit>, RetrieveError> {
        if query.text.trim().is_empty() {
            return Err(RetrieveError::InvalidQuery(
                "the query is empty; type a question".into(),
            ));
        }
        let ranked = self.rank(query)?;
        let ids: Vec<i64> = ranked.iter().map(|r| r.id).collect();
        let mut chunks: BTreeMap<i64, _> = self
            .kb
            .chunks(&ids)
            .map_err(index_err)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        // A chunk deleted by a concurrent writer since the search is simply left out.
        let hits: Vec<Hit> = ranked
            .into_iter()
            .filter_map(|Fused { id, score, ranks }| {
                let c = chunks.remove(&id)?;
                let ranks = ranks
                    .into_iter()
                    .map(|(m, r)| (m.as_str().to_owned(), r))
                    .collect();
                Some(to_hit(c, score, ranks))
            })
            .collect();
        self.options
            .finish_hits(query, hits, |head| self.sentence_stage(&query.text, head))
    }

    /// The hit's document's chunks around it, from SQLite: one indexed lookup on
    /// (document, ordinal). Empty when the chunk was deleted since the search.
    fn neighbours(
        &self,
        hit: &Hit,
        before: usize,
        after: usize,
    ) -> Result<Vec<Hit>, RetrieveError> {
        Ok(self
            .kb
            .neighbours(hit.chunk_id, before, after)
            .map_err(index_err)?
            .into_iter()
            .map(|c| to_hit(c, hit.score, BTreeMap::new()))
            .collect())
    }
}

/// A stored chunk as a search hit.
pub fn to_hit(c: StoredChunk, score: f32, ranks: BTreeMap<String, u32>) -> Hit {
    Hit {
        chunk_id: c.id,
        source: c.source,
        format: c.format,
        page: c.page,
        heading_path: c.heading_path,
        start: c.start,
        end: c.end,
        text: c.text,
        score,
        ranks,
    }
}
