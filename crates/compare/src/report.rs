//! `build`: per-question outcomes of every variant in, one [`Report`] out: quality with
//! confidence intervals, grounding, latency, tokens, cost, training cost, break-even points,
//! and each variant's difference from the best with a paired interval and McNemar's test.
//!
//! Rates are proportions in 0..=1 (the renderers print percentages). The JSON form of
//! [`Report`] is described in `SCHEMA.md`.

use crate::error::{Error, Result};
use crate::input::{
    Approach, Forgetting, Freshness, QuestionOutcome, Scenarios, StaleAdapter, TrainingCost,
    VariantRun,
};
use crate::price::PriceTable;
use crate::recommend::Recommendation;
use crate::stats::{self, Interval, McNemar};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a field of the JSON changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// How the statistics are computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Seed of every bootstrap (the same seed for every metric and variant).
    pub seed: u64,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// Confidence level of the intervals, e.g. 0.95.
    pub confidence: f64,
    /// A difference is significant when McNemar's p-value is below this.
    pub alpha: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: stats::DEFAULT_SEED,
            resamples: stats::DEFAULT_RESAMPLES,
            confidence: 0.95,
            alpha: 0.05,
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// Questions every compared variant answered.
    pub questions: usize,
    pub answerable: usize,
    pub unanswerable: usize,
    /// Questions with a yes/no/maybe label.
    pub labelled: usize,
    /// The most common gold label and its share of the labelled questions: the accuracy of
    /// always saying it, which a variant must beat to have read anything. None when the runs
    /// do not record labels (runs from before they did).
    #[serde(default)]
    pub majority_label: Option<MajorityLabel>,
    pub options: Options,
    /// The variant with the highest share correct (ties: higher F1, then input order); None
    /// when every variant failed.
    pub best: Option<String>,
    /// In input order.
    pub variants: Vec<VariantReport>,
    /// Every pair of compared (not failed) variants, `variant` before `against` in input
    /// order.
    pub comparisons: Vec<Comparison>,
    pub scenarios: ScenarioReport,
    /// Filled by the caller from [`crate::recommend`] with the user's profile.
    pub recommendation: Option<Recommendation>,
}

/// The label a constant answer would give, and what it would score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MajorityLabel {
    pub label: String,
    pub share: f64,
}

/// How a variant answered the labelled questions of one gold label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRow {
    pub gold: String,
    pub questions: usize,
    /// How often it said each label; [`NO_LABEL`] counts answers that gave none.
    pub said: BTreeMap<String, usize>,
}

impl LabelRow {
    pub fn right(&self) -> usize {
        self.said.get(&self.gold).copied().unwrap_or(0)
    }
}

/// The key of [`LabelRow::said`] for an answer with no label in it.
pub const NO_LABEL: &str = "none";

/// One variant's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    pub name: String,
    pub spec: String,
    pub approach: Approach,
    pub model: String,
    pub adapter: Option<String>,
    pub grounded: bool,
    pub fine_tuned: bool,
    /// Why it failed; then `metrics` is None.
    pub failed: Option<String>,
    pub metrics: Option<Metrics>,
    pub training: Option<TrainingCost>,
    /// For fine-tuned variants: after how many questions training pays for itself against
    /// the RAG variant of the same base model.
    pub break_even: Option<BreakEven>,
    /// This variant minus the best one (None for the best itself and for failed variants).
    pub vs_best: Option<Comparison>,
    pub abstention_curve: Vec<(f64, f64)>,
}

/// What a variant scored and cost over the questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share correct (exact match, or the label for labelled questions): the quality measure
    /// the comparisons and the recommendation use.
    pub correct: Interval,
    pub exact_match: Interval,
    pub f1: Interval,
    /// Share correct over labelled questions; None without labelled questions.
    pub accuracy: Option<Interval>,
    /// Per gold label (most common first), what it said; empty when the runs do not record
    /// labels.
    #[serde(default)]
    pub labels: Vec<LabelRow>,
    pub citations: u64,
    pub valid_citations: u64,
    /// valid / all citations; None when it cited nothing.
    pub citation_validity: Option<f64>,
    /// Share of unanswerable questions it abstained on (higher is better).
    pub abstention_unanswerable: Option<f64>,
    /// Share of answerable questions it abstained on (lower is better).
    pub false_abstention_answerable: Option<f64>,
    /// Questions it answered (did not abstain on).
    pub answered: usize,
    /// Share of answered questions whose answer was unsupported.
    pub unsupported_rate: Option<f64>,
    /// Share of answers in the required format; None when no answer had a format to follow.
    pub format_adherence: Option<f64>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// One question at a time: 1000 / mean latency.
    pub sequential_qps: Option<f64>,
    pub batch_throughput_qps: Option<f64>,
    pub mean_prompt_tokens: f64,
    pub mean_completion_tokens: f64,
    pub cpu_seconds_per_1000: f64,
    /// From the price table's per-token prices; None when the model has none.
    pub hosted_usd_per_1000: Option<f64>,
    /// CPU time at the table's `cpu_usd_per_hour`; None without it.
    pub local_usd_per_1000: Option<f64>,
}

impl Metrics {
    /// The dollar cost per 1,000 questions: hosted when priced, else local CPU.
    pub fn usd_per_1000(&self) -> Option<f64> {
        self.hosted_usd_per_1000.or(self.local_usd_per_1000)
    }
}

/// `variant` minus `against` on the same questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub variant: String,
    pub against: String,
    /// Paired-bootstrap interval of the difference in share correct.
    pub difference: Interval,
    /// `b`: questions `variant` got right and `against` wrong; `c` the reverse.
    pub mcnemar: McNemar,
    /// McNemar's p-value below the options' alpha.
    pub significant: bool,
}

/// What a cost is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostBasis {
    Usd,
    CpuSeconds,
}

impl CostBasis {
    pub fn unit(self) -> &'static str {
        match self {
            CostBasis::Usd => "USD",
            CostBasis::CpuSeconds => "CPU-s",
        }
    }
}

/// When training pays for itself: training cost / (per-question cost of the RAG variant of
/// the same base model - per-question cost of the fine-tuned variant), in questions. In USD
/// when the price table prices both variants and local CPU time (for training), else in
/// CPU-seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakEven {
    /// The RAG variant compared against.
    pub against: Option<String>,
    pub basis: Option<CostBasis>,
    pub training_cost: Option<f64>,
    pub cost_per_question: Option<f64>,
    pub against_cost_per_question: Option<f64>,
    /// Questions after which training has paid for itself (rounded up).
    pub questions: Option<u64>,
    /// Why `questions` is None.
    pub reason: Option<String>,
}

/// The scenario results with the derived rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub freshness: Vec<FreshnessReport>,
    pub forgetting: Vec<ForgettingReport>,
    pub stale_adapters: Vec<StaleAdapterReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshnessReport {
    #[serde(flatten)]
    pub result: Freshness,
    /// followed_new_fact / edited_questions.
    pub followed_rate: Option<f64>,
    /// kept_old_fact / edited_questions.
    pub kept_old_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgettingReport {
    #[serde(flatten)]
    pub result: Forgetting,
    /// (after - before) / before, e.g. 0.12 for 12% higher perplexity.
    pub perplexity_change: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleAdapterReport {
    #[serde(flatten)]
    pub result: StaleAdapter,
    /// The compared variants that use this adapter.
    pub variants: Vec<String>,
}

impl Report {
    /// The report of a variant by name.
    pub fn variant(&self, name: &str) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// `a` minus `b` (from `comparisons`, flipped when stored the other way round).
    pub fn comparison(&self, a: &str, b: &str) -> Option<Comparison> {
        self.comparisons.iter().find_map(|c| {
            if c.variant == a && c.against == b {
                Some(c.clone())
            } else if c.variant == b && c.against == a {
                Some(flip(c))
            } else {
                None
            }
        })
    }
}

fn flip(c: &Comparison) -> Comparison {
    Comparison {
        variant: c.against.clone(),
        against: c.variant.clone(),
        difference: Interval {
            estimate: -c.difference.estimate,
            lo: -c.difference.hi,
            hi: -c.difference.lo,
        },
        mcnemar: McNemar {
            b: c.mcnemar.c,
            c: c.mcnemar.b,
            ..c.mcnemar
        },
        significant: c.significant,
    }
}

/// Builds the report. Errors when the runs cannot be compared (no variants, duplicate names,
/// different question sets, values out of range, scenario results naming unknown variants).
pub fn build(
    runs: &[VariantRun],
    scenarios: &Scenarios,
    prices: &PriceTable,
    options: &Options,
) -> Result<Report> {
    check_options(options)?;
    if runs.is_empty() {
        return Err(Error::NoVariants);
    }
    for (i, run) in runs.iter().enumerate() {
        if runs[..i].iter().any(|r| r.name == run.name) {
            return Err(Error::DuplicateVariant {
                name: run.name.clone(),
            });
        }
        check_run(run)?;
    }
    let compared: Vec<&VariantRun> = runs.iter().filter(|r| r.failed.is_none()).collect();
    if let Some(reference) = compared.first() {
        for run in &compared[1..] {
            check_same_questions(reference, run)?;
        }
    }
    let questions = compared.first().map_or(&[][..], |r| &r.outcomes[..]);

    let mut variants: Vec<VariantReport> = runs
        .iter()
        .map(|run| VariantReport {
            name: run.name.clone(),
            spec: run.spec.clone(),
            approach: run.approach,
            model: run.model.clone(),
            adapter: run.adapter.clone(),
            grounded: run.approach.is_grounded(),
            fine_tuned: run.approach.is_fine_tuned(),
            failed: run.failed.clone(),
            metrics: run.failed.is_none().then(|| metrics(run, prices, options)),
            training: run.training.clone(),
            break_even: None,
            vs_best: None,
            abstention_curve: run.abstention_curve.clone(),
        })
        .collect();

    let best = variants
        .iter()
        .filter_map(|v| v.metrics.as_ref().map(|m| (v, m)))
        .fold(
            None::<(&VariantReport, &Metrics)>,
            |best, (v, m)| match best {
                Some((_, bm))
                    if (bm.correct.estimate, bm.f1.estimate)
                        >= (m.correct.estimate, m.f1.estimate) =>
                {
                    best
                }
                _ => Some((v, m)),
            },
        )
        .map(|(v, _)| v.name.clone());

    let mut comparisons = Vec::new();
    for (i, a) in compared.iter().enumerate() {
        for b in &compared[i + 1..] {
            comparisons.push(compare(a, b, options));
        }
    }
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        questions: questions.len(),
        answerable: questions.iter().filter(|q| q.answerable).count(),
        unanswerable: questions.iter().filter(|q| !q.answerable).count(),
        labelled: questions.iter().filter(|q| q.labelled).count(),
        majority_label: compared
            .iter()
            .find(|r| r.outcomes.iter().any(|q| q.gold_label.is_some()))
            .and_then(|r| majority_label(&r.outcomes)),
        options: options.clone(),
        best: best.clone(),
        variants: Vec::new(),
        comparisons,
        scenarios: scenario_report(scenarios, runs)?,
        recommendation: None,
    };
    for v in &mut variants {
        if let Some(best) = &best
            && v.metrics.is_some()
            && &v.name != best
        {
            v.vs_best = report.comparison(&v.name, best);
        }
    }
    let break_evens: Vec<Option<BreakEven>> = runs
        .iter()
        .zip(&variants)
        .map(|(run, v)| break_even(run, v, runs, &variants, prices))
        .collect();
    for (v, b) in variants.iter_mut().zip(break_evens) {
        v.break_even = b;
    }
    report.variants = variants;
    Ok(report)
}

/// Gold labels with their counts, most common first (ties: by name, so the order is stable).
fn gold_counts(qs: &[QuestionOutcome]) -> Vec<(&str, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for gold in qs.iter().filter_map(|q| q.gold_label.as_deref()) {
        *counts.entry(gold).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
}

fn majority_label(qs: &[QuestionOutcome]) -> Option<MajorityLabel> {
    let counts = gold_counts(qs);
    let total: usize = counts.iter().map(|c| c.1).sum();
    counts.first().map(|&(label, n)| MajorityLabel {
        label: label.to_owned(),
        share: n as f64 / total as f64,
    })
}

fn label_rows(qs: &[QuestionOutcome]) -> Vec<LabelRow> {
    gold_counts(qs)
        .into_iter()
        .map(|(gold, questions)| {
            let mut said = BTreeMap::new();
            for q in qs.iter().filter(|q| q.gold_label.as_deref() == Some(gold)) {
                let label = q.said_label.as_deref().unwrap_or(NO_LABEL);
                *said.entry(label.to_owned()).or_default() += 1;
            }
            LabelRow {
                gold: gold.to_owned(),
                questions,
                said,
            }
        })
        .collect()
}

fn check_options(o: &Options) -> Result<()> {
    if o.resamples == 0 {
        return Err(Error::Option {
            option: "resamples",
            reason: "must be at least 1 (2000 is usual)".into(),
        });
    }
    if !(o.confidence > 0.0 && o.confidence < 1.0) {
        return Err(Error::Option {
            option: "confidence",
            reason: format!(
                "is {}; expected a level between 0 and 1, e.g. 0.95",
                o.confidence
            ),
        });
    }
    if !(o.alpha > 0.0 && o.alpha < 1.0) {
        return Err(Error::Option {
            option: "alpha",
            reason: format!(
                "is {}; expected a level between 0 and 1, e.g. 0.05",
                o.alpha
            ),
        });
    }
    Ok(())
}

fn check_run(run: &VariantRun) -> Result<()> {
    let bad_variant = |field: &'static str, value: f64, expected: &'static str| Error::BadVariant {
        variant: run.name.clone(),
        field,
        value,
        expected,
    };
    let nonneg = |field: &'static str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(bad_variant(field, v, "a finite number >= 0"))
        }
    };
    nonneg("wall_seconds", run.wall_seconds)?;
    nonneg("cpu_seconds", run.cpu_seconds)?;
    if let Some(q) = run.batch_throughput_qps {
        nonneg("batch_throughput_qps", q)?;
    }
    if let Some(t) = &run.training {
        nonneg("training.wall_seconds", t.wall_seconds)?;
        nonneg("training.peak_rss_mib", t.peak_rss_mib)?;
        if let Some(c) = t.cpu_seconds {
            nonneg("training.cpu_seconds", c)?;
        }
        if let Some((_, loss)) = t.loss_curve.iter().find(|(_, l)| !l.is_finite()) {
            return Err(bad_variant("training.loss_curve", *loss, "finite losses"));
        }
    }
    for &(x, y) in &run.abstention_curve {
        for v in [x, y] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad_variant("abstention_curve", v, "rates in 0..=1"));
            }
        }
    }
    if run.failed.is_some() {
        return Ok(());
    }
    if run.outcomes.is_empty() {
        return Err(Error::NoOutcomes {
            variant: run.name.clone(),
        });
    }
    for q in &run.outcomes {
        let bad = |field: &'static str, value: f64, expected: &'static str| Error::BadOutcome {
            variant: run.name.clone(),
            question: q.id.clone(),
            field,
            value,
            expected,
        };
        if q.exact_match != 0.0 && q.exact_match != 1.0 {
            return Err(bad("exact_match", q.exact_match, "0 or 1"));
        }
        if !(0.0..=1.0).contains(&q.f1) {
            return Err(bad("f1", q.f1, "a number in 0..=1"));
        }
        if !(q.latency_ms.is_finite() && q.latency_ms >= 0.0) {
            return Err(bad("latency_ms", q.latency_ms, "a finite number >= 0"));
        }
        if q.valid_citations > q.citations {
            return Err(bad(
                "valid_citations",
                f64::from(q.valid_citations),
                "at most `citations`",
            ));
        }
    }
    Ok(())
}

fn check_same_questions(reference: &VariantRun, run: &VariantRun) -> Result<()> {
    let mismatch = |detail: String| Error::QuestionMismatch {
        variant: run.name.clone(),
        reference: reference.name.clone(),
        detail,
    };
    if run.outcomes.len() != reference.outcomes.len() {
        return Err(mismatch(format!(
            "{} questions against {}",
            run.outcomes.len(),
            reference.outcomes.len()
        )));
    }
    for (i, (a, b)) in run.outcomes.iter().zip(&reference.outcomes).enumerate() {
        if a.id != b.id {
            return Err(mismatch(format!(
                "question {} is {:?} where {:?} has {:?}",
                i + 1,
                a.id,
                reference.name,
                b.id
            )));
        }
        if let (Some(x), Some(y)) = (&a.gold_label, &b.gold_label)
            && x != y
        {
            return Err(mismatch(format!(
                "question {:?} has the gold label {x:?} here and {y:?} there",
                a.id
            )));
        }
        if a.answerable != b.answerable || a.labelled != b.labelled {
            return Err(mismatch(format!(
                "question {:?} is marked answerable={} labelled={} here and answerable={} \
                 labelled={} there",
                a.id, a.answerable, a.labelled, b.answerable, b.labelled
            )));
        }
    }
    Ok(())
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

fn rate<'a>(
    items: impl Iterator<Item = &'a QuestionOutcome>,
    f: impl Fn(&QuestionOutcome) -> bool,
) -> Option<f64> {
    let v: Vec<f64> = items.map(|q| flag(f(q))).collect();
    stats::mean(&v)
}

fn ci(values: &[f64], o: &Options) -> Option<Interval> {
    stats::bootstrap_mean_ci(values, o.resamples, o.confidence, o.seed)
}

fn metrics(run: &VariantRun, prices: &PriceTable, o: &Options) -> Metrics {
    let qs = &run.outcomes;
    let n = qs.len() as f64;
    let column = |f: &dyn Fn(&QuestionOutcome) -> f64| -> Vec<f64> { qs.iter().map(f).collect() };
    let zero = Interval {
        estimate: 0.0,
        lo: 0.0,
        hi: 0.0,
    };
    let correct = ci(&column(&|q| flag(q.correct)), o).unwrap_or(zero);
    let exact_match = ci(&column(&|q| q.exact_match), o).unwrap_or(zero);
    let f1 = ci(&column(&|q| q.f1), o).unwrap_or(zero);
    let labelled: Vec<f64> = qs
        .iter()
        .filter(|q| q.labelled)
        .map(|q| flag(q.correct))
        .collect();
    let citations: u64 = qs.iter().map(|q| u64::from(q.citations)).sum();
    let valid_citations: u64 = qs.iter().map(|q| u64::from(q.valid_citations)).sum();
    let answered = qs.iter().filter(|q| !q.abstained).count();
    let formats: Vec<f64> = qs.iter().filter_map(|q| q.format_ok.map(flag)).collect();
    let latencies = column(&|q| q.latency_ms);
    let mean_latency = stats::mean(&latencies).unwrap_or(0.0);
    let mean_prompt_tokens = qs.iter().map(|q| q.prompt_tokens as f64).sum::<f64>() / n;
    let mean_completion_tokens = qs.iter().map(|q| q.completion_tokens as f64).sum::<f64>() / n;
    let cpu_seconds_per_1000 = run.cpu_seconds / n * 1000.0;
    Metrics {
        correct,
        exact_match,
        f1,
        accuracy: ci(&labelled, o),
        labels: label_rows(qs),
        citations,
        valid_citations,
        citation_validity: (citations > 0).then(|| valid_citations as f64 / citations as f64),
        abstention_unanswerable: rate(qs.iter().filter(|q| !q.answerable), |q| q.abstained),
        false_abstention_answerable: rate(qs.iter().filter(|q| q.answerable), |q| q.abstained),
        answered,
        unsupported_rate: rate(qs.iter().filter(|q| !q.abstained), |q| q.unsupported),
        format_adherence: stats::mean(&formats),
        latency_p50_ms: stats::percentile(&latencies, 50.0),
        latency_p95_ms: stats::percentile(&latencies, 95.0),
        sequential_qps: (mean_latency > 0.0).then(|| 1000.0 / mean_latency),
        batch_throughput_qps: run.batch_throughput_qps,
        mean_prompt_tokens,
        mean_completion_tokens,
        cpu_seconds_per_1000,
        hosted_usd_per_1000: prices
            .model_price(&run.name, &run.model)
            .map(|p| p.per_question(mean_prompt_tokens, mean_completion_tokens) * 1000.0),
        local_usd_per_1000: prices
            .cpu_usd_per_hour
            .map(|usd| cpu_seconds_per_1000 / 3600.0 * usd),
    }
}

fn compare(a: &VariantRun, b: &VariantRun, o: &Options) -> Comparison {
    let xs: Vec<f64> = a.outcomes.iter().map(|q| flag(q.correct)).collect();
    let ys: Vec<f64> = b.outcomes.iter().map(|q| flag(q.correct)).collect();
    let ca: Vec<bool> = a.outcomes.iter().map(|q| q.correct).collect();
    let cb: Vec<bool> = b.outcomes.iter().map(|q| q.correct).collect();
    // Same lengths (checked), at least one question: both are Some.
    let difference = stats::paired_bootstrap_diff_ci(&xs, &ys, o.resamples, o.confidence, o.seed)
        .unwrap_or(Interval {
            estimate: 0.0,
            lo: 0.0,
            hi: 0.0,
        });
    let mcnemar = stats::mcnemar(&ca, &cb).unwrap_or(stats::mcnemar_counts(0, 0));
    Comparison {
        variant: a.name.clone(),
        against: b.name.clone(),
        difference,
        significant: mcnemar.p_value < o.alpha,
        mcnemar,
    }
}

/// Per-question cost of a variant in a basis, if known.
fn per_question(v: &VariantReport, basis: CostBasis) -> Option<f64> {
    let m = v.metrics.as_ref()?;
    match basis {
        CostBasis::Usd => m.usd_per_1000().map(|c| c / 1000.0),
        CostBasis::CpuSeconds => Some(m.cpu_seconds_per_1000 / 1000.0),
    }
}

fn training_cost(t: &TrainingCost, basis: CostBasis, prices: &PriceTable) -> Option<f64> {
    let cpu = t.cpu_seconds?;
    match basis {
        CostBasis::CpuSeconds => Some(cpu),
        CostBasis::Usd => prices.cpu_usd_per_hour.map(|usd| cpu / 3600.0 * usd),
    }
}

fn break_even(
    run: &VariantRun,
    v: &VariantReport,
    runs: &[VariantRun],
    variants: &[VariantReport],
    prices: &PriceTable,
) -> Option<BreakEven> {
    if !run.approach.is_fine_tuned() {
        return None;
    }
    let mut out = BreakEven {
        against: None,
        basis: None,
        training_cost: None,
        cost_per_question: None,
        against_cost_per_question: None,
        questions: None,
        reason: None,
    };
    if v.failed.is_some() {
        out.reason = Some("the variant failed".into());
        return Some(out);
    }
    let Some((_, rag)) = runs.iter().zip(variants).find(|(r, rv)| {
        r.approach == Approach::Rag && r.model == run.model && rv.metrics.is_some()
    }) else {
        out.reason = Some(format!(
            "no RAG variant of {} ran to compare against; add rag@{}",
            run.model, run.model
        ));
        return Some(out);
    };
    out.against = Some(rag.name.clone());
    let Some(training) = &run.training else {
        out.reason = Some("no training cost was recorded for this variant".into());
        return Some(out);
    };
    let basis = [CostBasis::Usd, CostBasis::CpuSeconds]
        .into_iter()
        .find(|&b| {
            training_cost(training, b, prices).is_some()
                && per_question(v, b).is_some()
                && per_question(rag, b).is_some()
        });
    let Some(basis) = basis else {
        out.reason = Some(
            "the training run recorded no CPU time (training.cpu_seconds), so its cost is unknown"
                .into(),
        );
        return Some(out);
    };
    let cost = training_cost(training, basis, prices)?;
    let mine = per_question(v, basis)?;
    let theirs = per_question(rag, basis)?;
    out.basis = Some(basis);
    out.training_cost = Some(cost);
    out.cost_per_question = Some(mine);
    out.against_cost_per_question = Some(theirs);
    let saving = theirs - mine;
    if saving > 0.0 {
        out.questions = Some((cost / saving).ceil() as u64);
    } else {
        out.reason = Some(format!(
            "it is not cheaper per question than {} ({} vs {} {})",
            rag.name,
            short(mine),
            short(theirs),
            basis.unit()
        ));
    }
    Some(out)
}

/// A number with at most four significant digits and no trailing zeros, for messages.
pub(crate) fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A p-value: three decimals, or scientific notation below 0.001.
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

fn scenario_report(s: &Scenarios, runs: &[VariantRun]) -> Result<ScenarioReport> {
    let known = || {
        runs.iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let exists = |scenario: &'static str, name: &str| {
        if runs.iter().any(|r| r.name == name) {
            Ok(())
        } else {
            Err(Error::UnknownVariant {
                scenario,
                variant: name.to_owned(),
                known: known(),
            })
        }
    };
    let mut out = ScenarioReport::default();
    for f in &s.freshness {
        exists("freshness", &f.variant)?;
        if u64::from(f.followed_new_fact) + u64::from(f.kept_old_fact)
            > u64::from(f.edited_questions)
        {
            return Err(Error::BadScenario {
                scenario: "freshness",
                variant: f.variant.clone(),
                reason: format!(
                    "followed_new_fact ({}) + kept_old_fact ({}) exceed edited_questions ({})",
                    f.followed_new_fact, f.kept_old_fact, f.edited_questions
                ),
            });
        }
        if !(f.update_seconds.is_finite() && f.update_seconds >= 0.0) {
            return Err(Error::BadScenario {
                scenario: "freshness",
                variant: f.variant.clone(),
                reason: format!("update_seconds is {}, expected >= 0", f.update_seconds),
            });
        }
        let of =
            |k: u32| (f.edited_questions > 0).then(|| f64::from(k) / f64::from(f.edited_questions));
        out.freshness.push(FreshnessReport {
            result: f.clone(),
            followed_rate: of(f.followed_new_fact),
            kept_old_rate: of(f.kept_old_fact),
        });
    }
    for f in &s.forgetting {
        exists("forgetting", &f.variant)?;
        for (field, v) in [
            ("perplexity_before", f.perplexity_before),
            ("perplexity_after", f.perplexity_after),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::BadScenario {
                    scenario: "forgetting",
                    variant: f.variant.clone(),
                    reason: format!("{field} is {v}, expected a perplexity > 0"),
                });
            }
        }
        out.forgetting.push(ForgettingReport {
            result: f.clone(),
            perplexity_change: (f.perplexity_after - f.perplexity_before) / f.perplexity_before,
        });
    }
    // An adapter is stale once something it learned from changed; each is reported once, with
    // every variant that uses it (runs saved before this held one entry per variant, and
    // entries for adapters with nothing changed).
    for a in &s.stale_adapters {
        let stale = a.changed_documents > 0 || a.affected_examples > 0;
        if !stale
            || out
                .stale_adapters
                .iter()
                .any(|r| r.result.adapter == a.adapter)
        {
            continue;
        }
        out.stale_adapters.push(StaleAdapterReport {
            result: a.clone(),
            variants: runs
                .iter()
                .filter(|r| r.adapter.as_deref() == Some(a.adapter.as_str()))
                .map(|r| r.name.clone())
                .collect(),
        });
    }
    Ok(out)
}
