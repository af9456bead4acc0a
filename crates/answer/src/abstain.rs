//! Abstention: answering "the documents do not contain the answer" instead of guessing.
//!
//! Two signals, each can be turned off: the retrieval score (the best score among the passages
//! that were in the prompt, compared with [`AbstentionPolicy::min_score`]) and the model's own
//! refusal (it was told to reply with a fixed phrase, which
//! [`PromptTemplate::is_refusal`](crate::PromptTemplate::is_refusal) detects). In RAG mode a
//! prompt without any passage abstains without asking the model. The score is reported in every
//! answer, so an evaluation can sweep the threshold afterwards without generating again
//! ([`crate::eval::curve`]).

use serde::{Deserialize, Serialize};

/// When to abstain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbstentionPolicy {
    /// Abstain when the best retrieval score in the prompt is below this (RAG only). The scale is
    /// the retriever's: cosine for dense, BM25 for lexical, RRF for hybrid. `None`: never.
    pub min_score: Option<f32>,
    /// Abstain when the model's confidence in its reply (the geometric mean of its tokens'
    /// probabilities, 0 to 1) is below this. `None`: never.
    #[serde(default)]
    pub min_confidence: Option<f32>,
    /// Abstain when the model replies with the refusal phrase.
    pub model_refusal: bool,
}

impl Default for AbstentionPolicy {
    fn default() -> Self {
        Self {
            min_score: None,
            min_confidence: None,
            model_refusal: true,
        }
    }
}

/// Why an answer was withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbstainReason {
    /// RAG found no passage (or none fitted the budget); the model was not asked.
    NoPassages,
    /// The best retrieval score was below the threshold.
    LowScore,
    /// The model's confidence in its reply was below the threshold.
    LowConfidence,
    /// The model said the documents do not contain the answer.
    ModelRefused,
}

/// The abstention decision and the signals behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abstention {
    pub abstained: bool,
    pub reason: Option<AbstainReason>,
    /// The score the threshold is compared with: the best retrieval score among the passages
    /// in the prompt (`None` without passages, and in closed-book and few-shot modes).
    pub score: Option<f32>,
    /// The threshold that applied.
    pub min_score: Option<f32>,
    /// The model's confidence in its reply (geometric mean of token probabilities), when the
    /// generator reports token probabilities and the model was asked.
    pub confidence: Option<f32>,
    pub min_confidence: Option<f32>,
    /// Whether the model's reply was the refusal (reported even when the policy ignores it).
    pub model_refused: bool,
}

impl AbstentionPolicy {
    /// Decides. `needs_passages` is true in RAG mode, where an empty prompt means no evidence.
    /// The model's refusal is honoured before a low confidence is (a refusal phrase may itself
    /// be said with low confidence).
    pub fn decide(
        &self,
        needs_passages: bool,
        score: Option<f32>,
        confidence: Option<f32>,
        model_refused: bool,
    ) -> Abstention {
        let reason = if needs_passages && score.is_none() {
            Some(AbstainReason::NoPassages)
        } else if let (Some(s), Some(t)) = (score, self.min_score)
            && s < t
        {
            Some(AbstainReason::LowScore)
        } else if self.model_refusal && model_refused {
            Some(AbstainReason::ModelRefused)
        } else if let (Some(c), Some(t)) = (confidence, self.min_confidence)
            && c < t
        {
            Some(AbstainReason::LowConfidence)
        } else {
            None
        };
        Abstention {
            abstained: reason.is_some(),
            reason,
            score,
            min_score: self.min_score,
            confidence,
            min_confidence: self.min_confidence,
            model_refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_threshold_both_ways() {
        let p = AbstentionPolicy {
            min_score: Some(0.5),
            ..AbstentionPolicy::default()
        };
        let low = p.decide(true, Some(0.4), None, false);
        assert!(low.abstained);
        assert_eq!(low.reason, Some(AbstainReason::LowScore));
        let high = p.decide(true, Some(0.6), None, false);
        assert!(!high.abstained);
        assert_eq!(high.score, Some(0.6));
        // At the threshold the answer stands.
        assert!(!p.decide(true, Some(0.5), None, false).abstained);
    }

    #[test]
    fn confidence_threshold_both_ways_and_after_a_refusal() {
        let p = AbstentionPolicy {
            min_confidence: Some(0.5),
            ..AbstentionPolicy::default()
        };
        let unsure = p.decide(true, Some(1.0), Some(0.3), false);
        assert_eq!(unsure.reason, Some(AbstainReason::LowConfidence));
        assert_eq!(unsure.confidence, Some(0.3));
        assert!(!p.decide(true, Some(1.0), Some(0.5), false).abstained);
        // No signal, no decision on it.
        assert!(!p.decide(false, None, None, false).abstained);
        assert_eq!(
            p.decide(true, Some(1.0), Some(0.1), true).reason,
            Some(AbstainReason::ModelRefused)
        );
    }

    #[test]
    fn model_refusal_can_be_ignored() {
        let mut p = AbstentionPolicy::default();
        assert_eq!(
            p.decide(true, Some(1.0), None, true).reason,
            Some(AbstainReason::ModelRefused)
        );
        p.model_refusal = false;
        let a = p.decide(true, Some(1.0), None, true);
        assert!(!a.abstained);
        assert!(a.model_refused);
    }

    #[test]
    fn no_passages_abstains_only_when_passages_are_needed() {
        let p = AbstentionPolicy::default();
        assert_eq!(
            p.decide(true, None, None, false).reason,
            Some(AbstainReason::NoPassages)
        );
        assert!(!p.decide(false, None, None, false).abstained);
    }
}
