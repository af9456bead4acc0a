//! Which approach works best for this data, by how much, and is the difference real?
//!
//! `ragtune compare` runs the same questions through every approach (closed-book, few-shot,
//! RAG, SFT, SFT + RAG, RAFT, CPT + RAG); this crate turns the per-question outcomes into the
//! report: quality with bootstrap confidence intervals, paired differences and McNemar's test
//! against the best variant, grounding, latency, tokens, cost from the user's price table,
//! training cost and break-even points ([`report::build`]); a recommendation by documented
//! rules from what the user states ([`recommend::recommend`]); and the report for a terminal,
//! as JSON or as a self-contained HTML page ([`render`]). It knows nothing of models or
//! knowledge bases: the orchestration runs the variants and hands in [`VariantRun`]s.
//!
//! ```
//! use ragtune_compare::{
//!     Approach, Options, PriceTable, Profile, QuestionOutcome, Scenarios, VariantRun, build,
//!     recommend, render,
//! };
//!
//! let outcome = |id: usize, correct: bool| QuestionOutcome {
//!     id: format!("q{id}"),
//!     answerable: true,
//!     exact_match: f64::from(u8::from(correct)),
//!     f1: f64::from(u8::from(correct)),
//!     correct,
//!     labelled: false,
//!     gold_label: None,
//!     said_label: None,
//!     abstained: false,
//!     unsupported: !correct,
//!     citations: 1,
//!     valid_citations: 1,
//!     latency_ms: 400.0,
//!     prompt_tokens: 600,
//!     completion_tokens: 12,
//!     format_ok: None,
//! };
//! let run = |name: &str, approach, right: usize| VariantRun {
//!     name: name.into(),
//!     spec: name.into(),
//!     approach,
//!     model: "qwen2.5-0.5b".into(),
//!     adapter: None,
//!     outcomes: (0..40).map(|i| outcome(i, i < right)).collect(),
//!     wall_seconds: 20.0,
//!     cpu_seconds: 30.0,
//!     batch_throughput_qps: None,
//!     training: None,
//!     failed: None,
//!     abstention_curve: Vec::new(),
//! };
//! let runs = [
//!     run("rag@qwen2.5-0.5b", Approach::Rag, 30),
//!     run("closed_book@qwen2.5-0.5b", Approach::ClosedBook, 8),
//! ];
//! let mut report =
//!     build(&runs, &Scenarios::default(), &PriceTable::default(), &Options::default())?;
//! assert_eq!(report.best.as_deref(), Some("rag@qwen2.5-0.5b"));
//! let vs = report.variants[1].vs_best.as_ref().unwrap();
//! assert!(vs.significant && vs.difference.estimate < 0.0);
//!
//! let profile = Profile { changes_per_month: 4.0, ..Profile::default() };
//! report.recommendation = Some(recommend(&report, &profile));
//! assert!(render::terminal(&report).contains("75.0 ["));
//! assert!(render::html(&report).contains("<svg"));
//! # Ok::<(), ragtune_compare::Error>(())
//! ```

mod error;
mod input;
mod price;
pub mod recommend;
pub mod render;
pub mod report;
pub mod stats;

pub use error::{Error, Result};
pub use input::{
    Approach, Forgetting, Freshness, QuestionOutcome, Scenarios, StaleAdapter, TrainingCost,
    UpdateKind, VariantRun,
};
pub use price::{ModelPrice, PriceTable};
pub use recommend::{Profile, Recommendation, RuledOut, recommend};
pub use report::{
    BreakEven, Comparison, CostBasis, LabelRow, MajorityLabel, Metrics, NO_LABEL, Options, Report,
    SCHEMA_VERSION, VariantReport, build,
};
