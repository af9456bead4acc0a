//! The second stage of hybrid search: the top fused candidates reordered by their best
//! sentence.
//!
//! BM25 and the embedder score a chunk as a whole, so a chunk that mentions the question's
//! words in different sentences ranks like one that says them together. A factual question is
//! usually answered by one sentence that shares most of its rare words, often in the same order.
//! For a question ([`is_question`]), this stage scores each of the top `depth` fused
//! candidates by its best sentence (the IDF of each distinct question term the sentence holds,
//! plus half the mean IDF of each pair of consecutive question terms it holds consecutively) and
//! fuses that ranking with the fused one by reciprocal rank (k [`STAGE_K`], equal weights).
//! Terms are the BM25 index's (stemmed, stop words dropped), weighted by its document
//! frequencies, so no model and no extra index is needed: it costs the analysis of `depth`
//! chunks' text per query.
//!
//! Measured on long documents (`cargo bench -p ragtune-eval --bench longdoc_retrieval`;
//! BENCHMARKS.md, "Long documents"): the gold paragraph in the top 2 for 87.4% of 2,000 SQuAD
//! v1.1 questions against fusion's 85.3% (v2.0: 87.3% against 85.7%); SQuAD paragraphs
//! nDCG@10 0.893 against 0.883. A dense sentence score (MiniLM over each sentence) was tried
//! beside it in a prototype and added nothing (+0.1 point), at the cost of embedding every
//! sentence of the head.

use std::collections::HashSet;

/// The `k` of the fusion of the two orders: small, so either order's first places lead.
pub const STAGE_K: f32 = 2.0;

/// What a pair of consecutive question terms found together adds, as a share of their mean IDF.
const PAIR_WEIGHT: f32 = 0.5;

/// Words that say what kind of answer a question wants, not what its answer's sentence holds.
/// The index's stop words (Lucene's English list) keep them, and in prose they are rare, so
/// their IDF would be high; the stage leaves them out of the question (as the index analyzes
/// them).
pub const QUESTION_WORDS: &str =
    "what which who whom whose when where why how do does did many much";

/// Whether `text` is asked as a question (it ends with `?` or starts with a question word or
/// an auxiliary verb): the stage reorders only questions. A claim or a list of keywords is not
/// answered by one sentence, and measured so: on SciFact, whose queries are claims, the stage
/// cost 0.011 nDCG@10 (0.718 against 0.729), while on SQuAD's questions it gained 0.010.
pub fn is_question(text: &str) -> bool {
    const OPENERS: &[&str] = &[
        "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was",
        "were", "do", "does", "did", "can", "could", "should", "would", "will", "has", "have",
        "had", "name", "list",
    ];
    let text = text.trim();
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .to_lowercase();
    text.ends_with('?') || OPENERS.contains(&first.as_str())
}

/// BM25's inverse document frequency, as tantivy computes it.
pub fn idf(docs: u64, df: u64) -> f32 {
    let (n, df) = (docs as f32, df as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// A question's terms with their weights, ready to score sentences.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceMatch {
    terms: Vec<(String, f32)>,
    pairs: Vec<(String, String, f32)>,
}

impl SentenceMatch {
    /// `terms`: the question analyzed as the index analyzes text, in order, without
    /// [`QUESTION_WORDS`]; `doc_freqs`: each term's document frequency among `docs` chunks.
    pub fn new(terms: &[String], docs: u64, doc_freqs: &[u64]) -> Self {
        let weights: Vec<f32> = doc_freqs.iter().map(|&df| idf(docs, df)).collect();
        let mut seen = HashSet::new();
        let unique = terms
            .iter()
            .zip(&weights)
            .filter(|(t, _)| seen.insert(t.as_str()))
            .map(|(t, &w)| (t.clone(), w))
            .collect();
        let pairs = terms
            .windows(2)
            .zip(weights.windows(2))
            .filter(|(t, _)| t[0] != t[1])
            .map(|(t, w)| {
                (
                    t[0].clone(),
                    t[1].clone(),
                    PAIR_WEIGHT * (w[0] + w[1]) / 2.0,
                )
            })
            .collect();
        SentenceMatch {
            terms: unique,
            pairs,
        }
    }

    /// The score of one sentence, given its analyzed terms in order.
    pub fn sentence_score(&self, sentence: &[String]) -> f32 {
        let present: HashSet<&str> = sentence.iter().map(String::as_str).collect();
        let single: f32 = self
            .terms
            .iter()
            .filter(|(t, _)| present.contains(t.as_str()))
            .map(|(_, w)| w)
            .sum();
        let together: f32 = self
            .pairs
            .iter()
            .filter(|(a, b, _)| sentence.windows(2).any(|w| w[0] == *a && w[1] == *b))
            .map(|(_, _, w)| w)
            .sum();
        single + together
    }

    /// The score of a chunk, given its sentences' analyzed terms: its best sentence's.
    pub fn best_sentence(&self, sentences: &[Vec<String>]) -> f32 {
        sentences
            .iter()
            .map(|s| self.sentence_score(s))
            .fold(0.0, f32::max)
    }

    /// The score of a chunk's text. `analyze` turns a sentence into the index's terms.
    pub fn chunk_score(&self, text: &str, analyze: impl Fn(&str) -> Vec<String>) -> f32 {
        let sentences: Vec<Vec<String>> = sentences(text).map(analyze).collect();
        self.best_sentence(&sentences)
    }
}

/// A chunk's sentences, as the chunker cuts them.
pub fn sentences(text: &str) -> impl Iterator<Item = &str> {
    ragtune_ingest::sentence_spans(text)
        .into_iter()
        .map(move |(s, e)| &text[s..e])
}

/// Reorders `head` (best first, as fusion ranked it) by the fusion of that order with the
/// order of `scores`, each chunk's best-sentence score. Ties go to the fused order. Scores
/// (reached through `score`) stay on fusion's scale and descend: the chunk at each place takes
/// the fused score of that place, so the best score (what an abstention threshold reads) is
/// unchanged. Everything else, such as per-mode ranks, stays with its chunk.
pub fn rerank<T: Clone>(head: &mut [T], scores: &[f32], score: impl Fn(&mut T) -> &mut f32) {
    let n = scores.len().min(head.len());
    let mut by_sentence: Vec<usize> = (0..n).collect();
    by_sentence.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut sentence_rank = vec![0usize; n];
    for (rank, i) in by_sentence.into_iter().enumerate() {
        sentence_rank[i] = rank + 1;
    }
    let stage =
        |i: usize| 1.0 / (STAGE_K + (i + 1) as f32) + 1.0 / (STAGE_K + sentence_rank[i] as f32);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| stage(b).total_cmp(&stage(a)).then(a.cmp(&b)));
    let places: Vec<f32> = head[..n].iter_mut().map(|t| *score(t)).collect();
    let mut reordered: Vec<T> = order.iter().map(|&i| head[i].clone()).collect();
    for (t, s) in reordered.iter_mut().zip(places) {
        *score(t) = s;
    }
    head[..n].clone_from_slice(&reordered);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::Fused;
    use ragtune_core::SearchMode;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn fused(ids: &[i64]) -> Vec<Fused> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| Fused {
                id,
                score: 1.0 / (i as f32 + 1.0),
                ranks: vec![(SearchMode::Bm25, i as u32 + 1)],
            })
            .collect()
    }

    #[test]
    fn questions_are_told_from_claims_and_keywords() {
        for q in [
            "When was the mine closed?",
            "who built it",
            "  How many moons",
            "Is it red",
        ] {
            assert!(is_question(q), "{q}");
        }
        for q in [
            "0-dimensional biomaterials show inductive properties.",
            "copper mine closure",
            "Whatever happened next",
            "",
        ] {
            assert!(!is_question(q), "{q}");
        }
    }

    #[test]
    fn rare_terms_weigh_more_and_are_counted_once() {
        let m = SentenceMatch::new(&words("tower paris tower"), 100, &[2, 50, 2]);
        let rare = m.sentence_score(&words("tower"));
        let common = m.sentence_score(&words("paris"));
        assert!(rare > common, "{rare} vs {common}");
        assert_eq!(m.sentence_score(&words("tower tower")), rare);
        assert_eq!(m.sentence_score(&words("bridge")), 0.0);
    }

    #[test]
    fn terms_in_the_questions_order_score_more_than_the_same_terms_apart() {
        let m = SentenceMatch::new(&words("eiffel tower height"), 100, &[3, 5, 10]);
        let (a, b, c) = (idf(100, 3), idf(100, 5), idf(100, 10));
        let apart = m.sentence_score(&words("height eiffel metres tower"));
        assert_eq!(apart, a + b + c);
        let together = m.sentence_score(&words("eiffel tower height metres"));
        let pairs = PAIR_WEIGHT * (a + b) / 2.0 + PAIR_WEIGHT * (b + c) / 2.0;
        assert!(
            (together - apart - pairs).abs() < 1e-6,
            "{together} vs {apart}"
        );
    }

    #[test]
    fn a_chunk_scores_as_its_best_sentence_not_as_the_sum_of_its_sentences() {
        let m = SentenceMatch::new(&words("moons mars"), 100, &[4, 4]);
        let scattered = m.chunk_score("Mars is red. It has moons.", |s| {
            words(&s.to_lowercase().replace('.', ""))
        });
        let together = m.chunk_score("Mars has two moons. It is red.", |s| {
            words(&s.to_lowercase().replace('.', ""))
        });
        assert!(together > scattered, "{together} vs {scattered}");
        assert_eq!(scattered, m.sentence_score(&words("mars")));
    }

    #[test]
    fn the_head_is_reordered_with_scores_by_place_and_the_tail_is_kept() {
        let mut f = fused(&[10, 20, 30, 40, 50]);
        let before = f.clone();
        // The fourth of a head of four has the only matching sentence: 1/(2+4) + 1/(2+1) = 0.50
        // takes it past the second (1/4 + 1/5) and third, not past the first (1/3 + 1/4).
        rerank(&mut f[..], &[0.0, 0.0, 0.0, 9.0], |c| &mut c.score);
        let ids: Vec<i64> = f.iter().map(|c| c.id).collect();
        assert_eq!(ids, [10, 40, 20, 30, 50]);
        for (now, (was_here, c)) in f.iter().zip(before.iter().zip(&f)) {
            let was = before.iter().find(|b| b.id == c.id).expect("same ids");
            assert_eq!(now.score, was_here.score, "scores go by place");
            assert_eq!(c.ranks, was.ranks, "ranks go with the chunk");
        }
    }

    #[test]
    fn equal_sentence_scores_keep_the_fused_order() {
        let mut f = fused(&[1, 2, 3]);
        rerank(&mut f[..], &[1.0, 1.0, 1.0], |c| &mut c.score);
        assert_eq!(f.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2, 3]);
        let mut g = fused(&[1, 2, 3]);
        rerank(&mut g[..], &[], |c| &mut c.score);
        assert_eq!(g.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
