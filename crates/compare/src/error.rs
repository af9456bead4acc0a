//! One error type for the crate. Messages name the file, key, variant or question and say what
//! to do.

use std::path::PathBuf;

/// Everything that can stop a comparison report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No variant was given at all.
    #[error("no variants to compare; run at least one variant (e.g. `rag@MODEL`)")]
    NoVariants,

    /// Two variants share a name, so the report could not tell them apart.
    #[error("two variants are named {name:?}; give each variant a distinct name")]
    DuplicateVariant { name: String },

    /// A variant that did not fail has no per-question outcomes.
    #[error(
        "variant {variant:?} has no question outcomes; run it on the question set, \
         or mark it failed with the reason"
    )]
    NoOutcomes { variant: String },

    /// Variants were not run over the same questions in the same order.
    #[error(
        "variant {variant:?} was not run on the same questions as {reference:?}: {detail}; \
         run every variant over one question set, in one order"
    )]
    QuestionMismatch {
        variant: String,
        reference: String,
        detail: String,
    },

    /// A question outcome holds a value out of range (e.g. an F1 of 1.3 or a NaN latency).
    #[error(
        "variant {variant:?}, question {question:?}: {field} is {value}, expected {expected}; \
         fix the evaluation that produced it"
    )]
    BadOutcome {
        variant: String,
        question: String,
        field: &'static str,
        value: f64,
        expected: &'static str,
    },

    /// A variant-level number is out of range (negative seconds, NaN throughput).
    #[error("variant {variant:?}: {field} is {value}, expected {expected}")]
    BadVariant {
        variant: String,
        field: &'static str,
        value: f64,
        expected: &'static str,
    },

    /// A scenario result names a variant (or adapter) that is not among the runs.
    #[error(
        "the {scenario} result names variant {variant:?}, which is not among the compared \
         variants ({known}); name one of them"
    )]
    UnknownVariant {
        scenario: &'static str,
        variant: String,
        known: String,
    },

    /// A scenario result is inconsistent (e.g. more questions followed than were edited).
    #[error("the {scenario} result for {variant:?}: {reason}")]
    BadScenario {
        scenario: &'static str,
        variant: String,
        reason: String,
    },

    /// An option is out of range.
    #[error("{option} {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },

    /// A TOML file (prices or profile) does not parse or holds an invalid value.
    #[error("{}: {key}: {reason}", path.display())]
    Toml {
        path: PathBuf,
        /// The key (dotted path) at fault, or `(file)` for a syntax error.
        key: String,
        reason: String,
    },

    /// The report could not be written as JSON.
    #[error("writing the report as JSON failed: {0}")]
    Json(#[from] serde_json::Error),

    /// Reading a file failed (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
