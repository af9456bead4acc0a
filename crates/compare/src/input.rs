//! What the orchestration hands in: per-question outcomes of each variant, what running and
//! training it cost, and the results of the optional scenarios (document edits, forgetting,
//! stale adapters). Everything is serde, so a run can be saved and the report rebuilt from it.

use serde::{Deserialize, Serialize};

/// How a variant customizes the model with the team's documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approach {
    /// The base model alone: no passages, no training.
    ClosedBook,
    /// Worked examples in the prompt, no passages.
    FewShot,
    /// Retrieved passages in the prompt, answers cite them.
    Rag,
    /// LoRA supervised fine-tuning on question/answer pairs, no passages at inference.
    Sft,
    /// The fine-tuned model, prompted with retrieved passages.
    SftRag,
    /// Retrieval-augmented fine-tuning: trained on passages with distractors, retrieves at
    /// inference.
    Raft,
    /// Continued pre-training on the documents, then RAG.
    CptRag,
}

impl Approach {
    pub const ALL: [Approach; 7] = [
        Approach::ClosedBook,
        Approach::FewShot,
        Approach::Rag,
        Approach::Sft,
        Approach::SftRag,
        Approach::Raft,
        Approach::CptRag,
    ];

    /// Does it retrieve passages at inference (so a document edit reaches it by re-syncing the
    /// knowledge base, and it can cite)?
    pub fn is_grounded(self) -> bool {
        matches!(
            self,
            Approach::Rag | Approach::SftRag | Approach::Raft | Approach::CptRag
        )
    }

    /// Were weights trained (so it has a training cost, and its adapter can go stale)?
    pub fn is_fine_tuned(self) -> bool {
        matches!(
            self,
            Approach::Sft | Approach::SftRag | Approach::Raft | Approach::CptRag
        )
    }

    /// The snake_case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Approach::ClosedBook => "closed_book",
            Approach::FewShot => "few_shot",
            Approach::Rag => "rag",
            Approach::Sft => "sft",
            Approach::SftRag => "sft_rag",
            Approach::Raft => "raft",
            Approach::CptRag => "cpt_rag",
        }
    }
}

impl std::fmt::Display for Approach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One question, answered by one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionOutcome {
    /// The question's id; the same ids, in the same order, in every variant.
    pub id: String,
    /// Does the knowledge base hold the answer? (False for SQuAD 2.0 "impossible" questions.)
    pub answerable: bool,
    /// 0 or 1 (SQuAD exact match after normalisation).
    pub exact_match: f64,
    /// Token F1 in 0..=1.
    pub f1: f64,
    /// Did it get the question right: the exact match, or for labelled questions
    /// (yes/no/maybe) whether the predicted label equals the gold one. Accuracy, the paired
    /// differences and McNemar's test use this flag.
    pub correct: bool,
    /// Is this a labelled question (yes/no/maybe), so `correct` is a label match?
    #[serde(default)]
    pub labelled: bool,
    /// For a labelled question: its gold label, and the label the answer gave (None when it
    /// gave none), so the report can show which labels a variant gets right and which it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub said_label: Option<String>,
    /// Did it withhold an answer?
    pub abstained: bool,
    /// Answered and wrong; for grounded modes also: the answer occurs in no passage of its
    /// prompt. The caller decides and fills it.
    pub unsupported: bool,
    /// Citations in the answer, and how many of them point at a passage that was shown.
    #[serde(default)]
    pub citations: u32,
    #[serde(default)]
    pub valid_citations: u32,
    /// Latency answering this question alone (one at a time), in milliseconds.
    pub latency_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Did the answer follow the required format (e.g. RAFT's `<ANSWER>:` marker)? None when
    /// the variant has no format to follow.
    #[serde(default)]
    pub format_ok: Option<bool>,
}

/// What training a fine-tuned variant cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingCost {
    pub wall_seconds: f64,
    /// Process CPU time of the training run; the break-even point in CPU-seconds needs it.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// Tokens trained on (all epochs).
    pub tokens: u64,
    pub peak_rss_mib: f64,
    /// (step, training loss).
    #[serde(default)]
    pub loss_curve: Vec<(usize, f64)>,
}

/// One variant (an approach on a model, perhaps with an adapter) run over the question set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRun {
    /// Unique display name, e.g. `rag@qwen2.5-0.5b`.
    pub name: String,
    /// The spec the user wrote for it (how to run it again).
    pub spec: String,
    pub approach: Approach,
    /// The base model's name; the price table and the break-even pairing use it.
    pub model: String,
    #[serde(default)]
    pub adapter: Option<String>,
    /// One per question, same ids and order in every variant. May be empty or partial for a
    /// failed variant.
    #[serde(default)]
    pub outcomes: Vec<QuestionOutcome>,
    /// Wall time of the whole variant run.
    pub wall_seconds: f64,
    /// Process CPU time of the variant run (answering only, not training).
    pub cpu_seconds: f64,
    /// Questions per second when the questions were answered in batches, if measured.
    #[serde(default)]
    pub batch_throughput_qps: Option<f64>,
    #[serde(default)]
    pub training: Option<TrainingCost>,
    /// Why the variant failed; a failed variant is reported with its reason and never
    /// recommended, the others are still compared.
    #[serde(default)]
    pub failed: Option<String>,
    /// Abstention trade-off: (false abstention rate on answerable, abstention rate on
    /// unanswerable) points over a threshold sweep, for the plot.
    #[serde(default)]
    pub abstention_curve: Vec<(f64, f64)>,
}

/// After editing documents: does the variant follow the new fact?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    pub variant: String,
    /// Questions whose answer the edit changed.
    pub edited_questions: u32,
    /// Of those, answered with the new fact.
    pub followed_new_fact: u32,
    /// Of those, still answered with the old fact.
    pub kept_old_fact: u32,
    /// Time to take the edit in (re-sync the knowledge base, or retrain).
    pub update_seconds: f64,
    pub update_kind: UpdateKind,
}

/// How a variant takes in a document edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    #[serde(rename = "re-sync")]
    Resync,
    #[serde(rename = "retrain")]
    Retrain,
}

impl UpdateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Resync => "re-sync",
            UpdateKind::Retrain => "retrain",
        }
    }
}

/// Catastrophic forgetting: what fine-tuning did to general ability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forgetting {
    pub variant: String,
    /// Perplexity on general (out-of-domain) text before and after fine-tuning.
    pub perplexity_before: f64,
    pub perplexity_after: f64,
    #[serde(default)]
    pub ood_exact_match_before: Option<f64>,
    #[serde(default)]
    pub ood_exact_match_after: Option<f64>,
}

/// An adapter trained on documents that have since changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleAdapter {
    pub adapter: String,
    /// Documents changed since training.
    pub changed_documents: u32,
    /// Training examples drawn from those documents.
    pub affected_examples: u32,
}

/// The optional scenario results; empty lists when not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scenarios {
    #[serde(default)]
    pub freshness: Vec<Freshness>,
    #[serde(default)]
    pub forgetting: Vec<Forgetting>,
    #[serde(default)]
    pub stale_adapters: Vec<StaleAdapter>,
}
