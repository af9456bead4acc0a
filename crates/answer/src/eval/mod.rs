//! Question-answering evaluation: exact match and F1 (SQuAD's normalisation), citation
//! validity and support, abstention on unanswerable and false abstention on answerable questions (and their
//! trade-off over a sweep of the score threshold), latency and tokens per question.
//!
//! [`evaluate`] runs the three steps of [`Answerer`] over all questions: preparation, **one**
//! batched generation, then checks and scores. Questions come from `ragtune-datasets` (SQuAD,
//! PubMedQA, JSONL); [`sample`] draws a reproducible subset.
//!
//! Yes/no/maybe questions (PubMedQA) are also scored by accuracy on the label the answer
//! gives ([`extract_decision`]); an answer without one counts as wrong.
//!
//! Scoring follows SQuAD v2.0: an abstention is an empty prediction, right for an unanswerable
//! question and wrong for an answerable one.

mod metrics;
mod recall;
mod sample;

pub use metrics::{exact_match, extract_decision, f1_score, normalize_answer, score_answer};
pub use ragtune_datasets::{Decision, QaItem};
pub use recall::{MIN_SHARED_WORDS, gold_in_context, gold_in_passages};
pub use sample::{SplitMix64, sample, sample_indices};

use crate::answer::{Answer, Answerer, Mode};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;

/// One question's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub answerable: bool,
    pub gold: Vec<String>,
    /// Scores of the answer as given (an abstention counts as an empty prediction).
    pub exact_match: f64,
    pub f1: f64,
    /// Scores the model's reply would get if the score threshold did not withhold it.
    pub reply_exact_match: f64,
    pub reply_f1: f64,
    /// Whether the answer is withheld whatever the threshold: no passages, or a model refusal
    /// the policy honours.
    pub abstains_at_any_threshold: bool,
    /// Yes/no/maybe questions: the gold label and the one the answer as given states (`None`:
    /// unanswered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_decision: Option<Decision>,
    /// Whether the gold paragraph was in the prompt ([`gold_in_context`]); `None` when the
    /// question has none or is unanswerable, or the mode is not RAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_in_context: Option<bool>,
    pub answer: Answer,
}

/// What an abstention threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The best retrieval score among the passages in the prompt.
    RetrievalScore,
    /// The model's confidence in its reply (geometric mean of its token probabilities).
    Confidence,
}

impl Signal {
    pub fn of(self, a: &crate::Abstention) -> Option<f32> {
        match self {
            Signal::RetrievalScore => a.score,
            Signal::Confidence => a.confidence,
        }
    }
}

impl QuestionResult {
    /// Whether the answer is withheld when `signal` must reach `t` (`None`: no threshold).
    /// A missing signal never withholds.
    pub fn abstains_at(&self, signal: Signal, t: Option<f32>) -> bool {
        self.abstains_at_any_threshold
            || matches!((signal.of(&self.answer.abstention), t), (Some(s), Some(t)) if s < t)
    }

    /// Exact match and F1 at threshold `t` on `signal`.
    pub fn scores_at(&self, signal: Signal, t: Option<f32>) -> (f64, f64) {
        if self.abstains_at(signal, t) {
            score_answer("", &self.gold)
        } else {
            (self.reply_exact_match, self.reply_f1)
        }
    }
}

/// Scores an answer against a question's gold answers. `model_refusal` is whether the policy
/// that produced it honours the model's refusal.
pub fn score_question(item: &QaItem, answer: Answer, model_refusal: bool) -> QuestionResult {
    let reply = crate::answer::answer_text(&answer.model_output);
    score_reply(item, answer, &reply, model_refusal)
}

/// [`score_question`] where the reply to score is not the whole model output (a RAFT reply's
/// final answer after its reasoning).
pub fn score_reply(
    item: &QaItem,
    answer: Answer,
    reply: &str,
    model_refusal: bool,
) -> QuestionResult {
    let gold = if item.is_impossible {
        Vec::new()
    } else {
        item.answers.clone()
    };
    let (reply_exact_match, reply_f1) = score_answer(reply, &gold);
    let (exact_match, f1) = score_answer(&answer.answer_text, &gold);
    let a = &answer.abstention;
    let no_passages = answer.mode == Mode::Rag && a.score.is_none();
    QuestionResult {
        id: item.id.clone(),
        answerable: item.answerable(),
        gold,
        exact_match,
        f1,
        reply_exact_match,
        reply_f1,
        abstains_at_any_threshold: no_passages || (model_refusal && a.model_refused),
        gold_decision: item.decision,
        predicted_decision: item
            .decision
            .and_then(|_| extract_decision(&answer.answer_text)),
        gold_in_context: gold_in_context(item, &answer),
        answer,
    }
}

/// Averages over the questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub questions: usize,
    pub answerable: usize,
    pub unanswerable: usize,
    /// Yes/no/maybe questions, and the share whose answer states the gold label (`None`
    /// without such questions).
    #[serde(default)]
    pub labelled: usize,
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Over all questions (fractions, 0 to 1).
    pub exact_match: f64,
    pub f1: f64,
    /// Over answerable questions.
    pub has_answer_exact_match: Option<f64>,
    pub has_answer_f1: Option<f64>,
    /// Share of unanswerable questions answered with an abstention.
    pub abstention_rate_unanswerable: Option<f64>,
    /// Share of answerable questions answered with an abstention.
    pub false_abstention_rate_answerable: Option<f64>,
    /// Citation numbers in the model's replies, and how many are valid: they name a passage of
    /// the prompt and every quote next to them is in it.
    pub citations: usize,
    pub valid_citations: usize,
    pub citation_validity_rate: Option<f64>,
    /// How many are also supported: the passage holds what the answer says next to them
    /// (status `ok`).
    pub supported_citations: usize,
    pub citation_support_rate: Option<f64>,
    /// Share of given (not withheld) answers with at least one citation (RAG).
    pub cited_answer_rate: Option<f64>,
    /// Per-question latency (retrieval, prompt, generation as the generator reports it).
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub mean_prompt_tokens: f64,
    pub mean_completion_tokens: f64,
    pub mean_context_tokens: f64,
    /// Share of the answerable questions with a gold paragraph whose paragraph was in the
    /// prompt ([`gold_in_context`]); `None` without such questions.
    #[serde(default)]
    pub context_recall: Option<f64>,
}

/// The trade-off at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// `None`: no threshold (only the model's refusal and missing passages abstain).
    pub threshold: Option<f32>,
    pub abstention_rate_unanswerable: Option<f64>,
    pub false_abstention_rate_answerable: Option<f64>,
    pub exact_match: f64,
    pub f1: f64,
    pub has_answer_f1: Option<f64>,
}

/// What [`evaluate`] reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub mode: Mode,
    /// What answered when it was not one of the answerer's modes (`raft`: a RAFT adapter with
    /// its own prompt, scored as a grounded mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approach: Option<String>,
    pub summary: EvalSummary,
    /// The abstention trade-off over a threshold on the retrieval score (RAG).
    pub curve: Vec<CurvePoint>,
    /// The same over a threshold on the model's confidence in its reply.
    pub confidence_curve: Vec<CurvePoint>,
    /// Whether the questions were answered in one batch (latency under load) or one at a time.
    pub batched: bool,
    /// Wall-clock time of the whole run.
    pub wall_ms: f64,
}

/// The report and every question's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub report: EvalReport,
    pub results: Vec<QuestionResult>,
}

/// Answers `items` with one batched generation and scores them. Per-question latency is then
/// latency under load: a request's time from entering the batch to its last token.
pub fn evaluate(answerer: &Answerer<'_>, items: &[QaItem]) -> Result<Evaluation> {
    let start = Instant::now();
    let questions: Vec<&str> = items.iter().map(|i| i.question.as_str()).collect();
    let prepared = answerer.prepare_batch(&questions)?;
    let generations = answerer.generate_batch(&prepared)?;
    let answers = prepared
        .into_iter()
        .zip(generations)
        .map(|(p, g)| answerer.finish(p, g));
    Ok(report(answerer, items, answers, true, start))
}

/// Answers `items` one at a time, as `ragtune ask` does, so per-question latency is what a user
/// waits for one answer. Slower overall than [`evaluate`].
pub fn evaluate_sequential(answerer: &Answerer<'_>, items: &[QaItem]) -> Result<Evaluation> {
    let start = Instant::now();
    let answers = items
        .iter()
        .map(|item| answerer.ask(&item.question))
        .collect::<Result<Vec<_>>>()?;
    Ok(report(answerer, items, answers, false, start))
}

fn report(
    answerer: &Answerer<'_>,
    items: &[QaItem],
    answers: impl IntoIterator<Item = Answer>,
    batched: bool,
    start: Instant,
) -> Evaluation {
    let model_refusal = answerer.options().abstention.model_refusal;
    let results: Vec<QuestionResult> = items
        .iter()
        .zip(answers)
        .map(|(item, answer)| score_question(item, answer, model_refusal))
        .collect();
    assemble(answerer.options().mode, results, batched, start)
}

/// The evaluation of scored `results` (summary and abstention curves), timed from `start`.
pub fn assemble(
    mode: Mode,
    results: Vec<QuestionResult>,
    batched: bool,
    start: Instant,
) -> Evaluation {
    let sweep = |signal| curve(&results, signal, &default_thresholds(&results, signal));
    Evaluation {
        report: EvalReport {
            mode,
            approach: None,
            summary: summarize(&results),
            curve: sweep(Signal::RetrievalScore),
            confidence_curve: sweep(Signal::Confidence),
            batched,
            wall_ms: start.elapsed().as_secs_f64() * 1000.0,
        },
        results,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn rate(flags: impl Iterator<Item = bool>) -> Option<f64> {
    mean(flags.map(|f| f64::from(u8::from(f))))
}

/// The `q`-th percentile (0 to 100), numpy's linear interpolation; shared with the comparison
/// report through `ragtune-core`.
pub use ragtune_core::stats::percentile;

/// Aggregates per-question results.
pub fn summarize(results: &[QuestionResult]) -> EvalSummary {
    let answerable = || results.iter().filter(|r| r.answerable);
    let unanswerable = || results.iter().filter(|r| !r.answerable);
    let citations: usize = results.iter().map(|r| r.answer.citations.len()).sum();
    let failed: usize = results.iter().map(|r| r.answer.failed_citations).sum();
    let supported = results
        .iter()
        .flat_map(|r| &r.answer.citations)
        .filter(|c| c.status == crate::CitationStatus::Ok)
        .count();
    let latencies: Vec<f64> = results.iter().map(|r| r.answer.timings.total_ms).collect();
    let labelled = || results.iter().filter(|r| r.gold_decision.is_some());
    EvalSummary {
        questions: results.len(),
        answerable: answerable().count(),
        unanswerable: unanswerable().count(),
        labelled: labelled().count(),
        accuracy: rate(labelled().map(|r| r.predicted_decision == r.gold_decision)),
        exact_match: mean(results.iter().map(|r| r.exact_match)).unwrap_or(0.0),
        f1: mean(results.iter().map(|r| r.f1)).unwrap_or(0.0),
        has_answer_exact_match: mean(answerable().map(|r| r.exact_match)),
        has_answer_f1: mean(answerable().map(|r| r.f1)),
        abstention_rate_unanswerable: rate(unanswerable().map(|r| r.answer.abstention.abstained)),
        false_abstention_rate_answerable: rate(answerable().map(|r| r.answer.abstention.abstained)),
        citations,
        valid_citations: citations - failed,
        citation_validity_rate: (citations > 0)
            .then(|| (citations - failed) as f64 / citations as f64),
        supported_citations: supported,
        citation_support_rate: (citations > 0).then(|| supported as f64 / citations as f64),
        cited_answer_rate: rate(
            results
                .iter()
                .filter(|r| r.answer.mode == Mode::Rag && !r.answer.abstention.abstained)
                .map(|r| !r.answer.citations.is_empty()),
        ),
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        mean_prompt_tokens: mean(results.iter().map(|r| f64::from(r.answer.tokens.prompt)))
            .unwrap_or(0.0),
        mean_completion_tokens: mean(
            results
                .iter()
                .map(|r| f64::from(r.answer.tokens.completion)),
        )
        .unwrap_or(0.0),
        mean_context_tokens: mean(
            results
                .iter()
                .map(|r| f64::from(r.answer.tokens.context_used)),
        )
        .unwrap_or(0.0),
        context_recall: rate(results.iter().filter_map(|r| r.gold_in_context)),
    }
}

/// Thresholds worth sweeping: the 0th, 5th, ..., 100th percentiles of the observed values of
/// `signal` (nearest rank), and one just above the highest, where every answer is withheld.
pub fn default_thresholds(results: &[QuestionResult], signal: Signal) -> Vec<f32> {
    let mut scores: Vec<f32> = results
        .iter()
        .filter_map(|r| signal.of(&r.answer.abstention))
        .filter(|s| s.is_finite())
        .collect();
    if scores.is_empty() {
        return Vec::new();
    }
    scores.sort_by(f32::total_cmp);
    let last = scores.len() - 1;
    let mut out: Vec<f32> = (0..=20)
        .map(|k| scores[((k as f64 / 20.0) * last as f64).round() as usize])
        .collect();
    out.push(scores[last].next_up());
    out.dedup();
    out
}

/// The abstention trade-off with no threshold, then at each threshold on `signal`. Only that
/// signal's threshold applies (with the model's refusal and missing passages), whatever the
/// run's policy set.
pub fn curve(results: &[QuestionResult], signal: Signal, thresholds: &[f32]) -> Vec<CurvePoint> {
    std::iter::once(None)
        .chain(thresholds.iter().copied().map(Some))
        .map(|t| {
            let scores: Vec<(f64, f64)> = results.iter().map(|r| r.scores_at(signal, t)).collect();
            CurvePoint {
                threshold: t,
                abstention_rate_unanswerable: rate(
                    results
                        .iter()
                        .filter(|r| !r.answerable)
                        .map(|r| r.abstains_at(signal, t)),
                ),
                false_abstention_rate_answerable: rate(
                    results
                        .iter()
                        .filter(|r| r.answerable)
                        .map(|r| r.abstains_at(signal, t)),
                ),
                exact_match: mean(scores.iter().map(|s| s.0)).unwrap_or(0.0),
                f1: mean(scores.iter().map(|s| s.1)).unwrap_or(0.0),
                has_answer_f1: mean(
                    results
                        .iter()
                        .zip(&scores)
                        .filter(|(r, _)| r.answerable)
                        .map(|(_, s)| s.1),
                ),
            }
        })
        .collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "mode {}: {} questions ({} answerable, {} unanswerable) in {:.1} s ({:.2} questions/s, {})",
            self.approach.as_deref().unwrap_or(self.mode.as_str()),
            s.questions,
            s.answerable,
            s.unanswerable,
            self.wall_ms / 1000.0,
            s.questions as f64 / (self.wall_ms / 1000.0).max(1e-9),
            if self.batched {
                "batched"
            } else {
                "one at a time"
            },
        )?;
        let accuracy = s.accuracy.map(|_| {
            (
                "accuracy (yes/no/maybe)",
                format!("{} (of {})", pct(s.accuracy), s.labelled),
            )
        });
        let rows: [(&str, String); 12] = [
            ("exact match", pct(Some(s.exact_match))),
            ("F1", pct(Some(s.f1))),
            ("exact match, answerable", pct(s.has_answer_exact_match)),
            ("F1, answerable", pct(s.has_answer_f1)),
            (
                "abstention, unanswerable",
                pct(s.abstention_rate_unanswerable),
            ),
            (
                "false abstention, answerable",
                pct(s.false_abstention_rate_answerable),
            ),
            (
                "valid citations",
                format!(
                    "{} ({} of {})",
                    pct(s.citation_validity_rate),
                    s.valid_citations,
                    s.citations
                ),
            ),
            (
                "supported citations",
                format!(
                    "{} ({} of {})",
                    pct(s.citation_support_rate),
                    s.supported_citations,
                    s.citations
                ),
            ),
            ("answers with a citation", pct(s.cited_answer_rate)),
            (
                if self.batched {
                    "latency p50 / p95 (in a batch)"
                } else {
                    "latency p50 / p95"
                },
                format!("{:.1} / {:.1} ms", s.latency_p50_ms, s.latency_p95_ms),
            ),
            (
                "prompt / completion tokens",
                format!(
                    "{:.1} / {:.1}",
                    s.mean_prompt_tokens, s.mean_completion_tokens
                ),
            ),
            ("context tokens", format!("{:.1}", s.mean_context_tokens)),
        ];
        let recall = s
            .context_recall
            .map(|_| ("gold paragraph in prompt", pct(s.context_recall)));
        for (name, value) in accuracy.into_iter().chain(rows).chain(recall) {
            writeln!(f, "  {name:<30} {value}")?;
        }
        for (name, points) in [
            ("retrieval score", &self.curve),
            ("model confidence", &self.confidence_curve),
        ] {
            if points.len() <= 1 {
                continue;
            }
            writeln!(
                f,
                "\n  {:>12}  {:>13}  {:>14}  {:>7}  {:>7}   (threshold on the {name})",
                "threshold", "abstain unans", "false abstain", "EM", "F1"
            )?;
            for p in points {
                let t = p
                    .threshold
                    .map_or_else(|| "none".to_string(), |t| format!("{t:.4}"));
                writeln!(
                    f,
                    "  {:>12}  {:>13}  {:>14}  {:>7}  {:>7}",
                    t,
                    pct(p.abstention_rate_unanswerable),
                    pct(p.false_abstention_rate_answerable),
                    pct(Some(p.exact_match)),
                    pct(Some(p.f1))
                )?;
            }
        }
        Ok(())
    }
}
