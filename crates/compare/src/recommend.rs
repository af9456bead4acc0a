//! Which variant to use, by rules written here (no language model), from the report and what
//! the user states about their situation ([`Profile`]).
//!
//! The rules, in order:
//!
//! 1. A failed variant is never recommended.
//! 2. Hard constraints rule variants out:
//!    - documents that change ([`Profile::changes_per_month`] at least
//!      [`CHANGING_PER_MONTH`]) rule out every approach that answers without retrieving
//!      passages (closed-book, few-shot, SFT): an edit reaches them only by retraining, if at
//!      all;
//!    - required citations rule out the same approaches: they have no passages to cite;
//!    - a latency budget rules out variants whose p95 latency exceeds it;
//!    - a training budget rules out fine-tuned variants whose training took longer;
//!    - a cost budget rules out variants whose known cost per 1,000 questions exceeds it.
//! 3. Among the rest, the most accurate (share correct, then F1) is the reference. A variant
//!    is *equivalent* to it when McNemar's test finds no significant difference and it is at
//!    most [`EQUIVALENCE_MARGIN`] lower. So a variant significantly worse than the best is
//!    recommended only when a hard constraint ruled the best out.
//! 4. Among the equivalent ones: with changing documents, one that needs no retraining (not
//!    fine-tuned) first; then the cheapest per question (USD when every candidate is priced,
//!    else CPU-seconds); then the lowest p95 latency.
//!
//! The recommendation says why in 2 to 5 sentences built from the report's numbers.

use crate::error::{Error, Result};
use crate::input::Approach;
use crate::report::{Report, VariantReport, p_value, short};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Documents that change at least this often a month count as changing.
pub const CHANGING_PER_MONTH: f64 = 1.0;
/// An equivalent variant is at most this much (share correct) below the reference.
pub const EQUIVALENCE_MARGIN: f64 = 0.02;

/// What the user states about their situation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// How often the documents change, in changes per month (0: stable).
    #[serde(default)]
    pub changes_per_month: f64,
    /// The p95 latency an answer must meet, in milliseconds.
    #[serde(default)]
    pub latency_budget_ms: Option<f64>,
    /// Must answers cite their sources?
    #[serde(default)]
    pub citations_required: bool,
    /// The longest acceptable training run, in wall-clock hours.
    #[serde(default)]
    pub training_budget_hours: Option<f64>,
    /// The most acceptable cost per 1,000 questions, in USD (needs a price table).
    #[serde(default)]
    pub cost_budget_usd_per_1000: Option<f64>,
}

impl Profile {
    /// Reads a profile from TOML, e.g. `changes_per_month = 4` and `citations_required = true`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)?;
        Self::parse(&text, path)
    }

    /// Parses profile TOML; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let profile: Profile = toml::from_str(text).map_err(|e| Error::Toml {
            path: path.to_owned(),
            key: "(file)".into(),
            reason: crate::price::toml_message(text, &e),
        })?;
        let bad = |key: &str, v: f64| Error::Toml {
            path: path.to_owned(),
            key: key.into(),
            reason: format!("{v} is out of range; expected a number >= 0"),
        };
        let check = |key: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v >= 0.0) => Err(bad(key, v)),
            _ => Ok(()),
        };
        check("changes_per_month", Some(profile.changes_per_month))?;
        check("latency_budget_ms", profile.latency_budget_ms)?;
        check("training_budget_hours", profile.training_budget_hours)?;
        check("cost_budget_usd_per_1000", profile.cost_budget_usd_per_1000)?;
        Ok(profile)
    }

    /// Do the documents change often enough to rule out approaches without retrieval?
    pub fn documents_change(&self) -> bool {
        self.changes_per_month >= CHANGING_PER_MONTH
    }
}

/// A variant that could not be recommended, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuledOut {
    pub variant: String,
    pub reason: String,
}

/// The recommended variant (None when none qualifies) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub variant: Option<String>,
    pub approach: Option<Approach>,
    /// 2 to 5 sentences built from the numbers.
    pub sentences: Vec<String>,
    /// Variants excluded by a failure or a hard constraint.
    pub ruled_out: Vec<RuledOut>,
    pub profile: Profile,
}

impl Recommendation {
    /// The sentences as one paragraph.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

fn pct(x: f64) -> String {
    crate::render::pct(x)
}

fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One variant's hard-constraint failures, each a short reason.
fn violations(v: &VariantReport, p: &Profile) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let Some(m) = &v.metrics else {
        return out;
    };
    if p.documents_change() && !v.grounded {
        out.push((
            Kind::Changing,
            "it answers without retrieval, so document edits reach it only by retraining".into(),
        ));
    }
    if p.citations_required && !v.grounded {
        out.push((
            Kind::Citations,
            "it retrieves no passages, so it cannot cite sources".into(),
        ));
    }
    if let Some(budget) = p.latency_budget_ms
        && m.latency_p95_ms > budget
    {
        out.push((
            Kind::Latency,
            format!(
                "its p95 latency of {} ms exceeds the {} ms budget",
                m.latency_p95_ms.round(),
                budget
            ),
        ));
    }
    if let (Some(budget), Some(t)) = (p.training_budget_hours, &v.training)
        && v.fine_tuned
        && t.wall_seconds / 3600.0 > budget
    {
        out.push((
            Kind::Training,
            format!(
                "training took {} h, over the {} h budget",
                short(t.wall_seconds / 3600.0),
                budget
            ),
        ));
    }
    if let (Some(budget), Some(cost)) = (p.cost_budget_usd_per_1000, m.usd_per_1000())
        && cost > budget
    {
        out.push((
            Kind::Cost,
            format!(
                "it costs ${} per 1,000 questions, over the ${} budget",
                short(cost),
                budget
            ),
        ));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Changing,
    Citations,
    Latency,
    Training,
    Cost,
}

impl Kind {
    fn sentence(self, p: &Profile, names: &str) -> String {
        match self {
            Kind::Changing => format!(
                "Your documents change {} times a month, which rules out {names}: without \
                 retrieval an edit reaches a model only by retraining.",
                p.changes_per_month
            ),
            Kind::Citations => format!(
                "Answers must cite their sources, which rules out {names}: they retrieve no \
                 passages to cite."
            ),
            Kind::Latency => format!(
                "The {} ms p95 latency budget rules out {names}.",
                p.latency_budget_ms.unwrap_or_default()
            ),
            Kind::Training => format!(
                "The {} h training budget rules out {names}.",
                p.training_budget_hours.unwrap_or_default()
            ),
            Kind::Cost => format!(
                "The ${} per 1,000 questions budget rules out {names}.",
                p.cost_budget_usd_per_1000.unwrap_or_default()
            ),
        }
    }
}

fn cost_phrase(v: &VariantReport) -> String {
    let Some(m) = &v.metrics else {
        return String::new();
    };
    match m.usd_per_1000() {
        Some(usd) => format!("${} per 1,000 questions", short(usd)),
        None => format!(
            "{} CPU-seconds per 1,000 questions",
            short(m.cpu_seconds_per_1000)
        ),
    }
}

/// Applies the rules (see the module docs) to a report.
pub fn recommend(report: &Report, profile: &Profile) -> Recommendation {
    let mut ruled_out = Vec::new();
    let mut by_kind: Vec<(Kind, Vec<&str>)> = Vec::new();
    let mut candidates: Vec<&VariantReport> = Vec::new();
    for v in &report.variants {
        if let Some(reason) = &v.failed {
            ruled_out.push(RuledOut {
                variant: v.name.clone(),
                reason: format!("it failed: {reason}"),
            });
            continue;
        }
        if v.metrics.is_none() {
            continue;
        }
        let found = violations(v, profile);
        if found.is_empty() {
            candidates.push(v);
            continue;
        }
        for (kind, _) in &found {
            match by_kind.iter_mut().find(|(k, _)| k == kind) {
                Some((_, names)) => names.push(&v.name),
                None => by_kind.push((*kind, vec![&v.name])),
            }
        }
        ruled_out.push(RuledOut {
            variant: v.name.clone(),
            reason: found
                .into_iter()
                .map(|(_, r)| r)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let failed: Vec<&str> = report
        .variants
        .iter()
        .filter(|v| v.failed.is_some())
        .map(|v| v.name.as_str())
        .collect();
    let failed_sentence = (!failed.is_empty()).then(|| {
        format!(
            "{} failed and {} not considered.",
            and_list(&failed),
            if failed.len() == 1 { "was" } else { "were" }
        )
    });
    let constraint_sentences: Vec<String> = by_kind
        .iter()
        .map(|(kind, names)| kind.sentence(profile, &and_list(names)))
        .collect();

    let Some(pick) = choose(report, &candidates, profile) else {
        let mut sentences = vec![if report.best.is_none() {
            "No variant can be recommended: none ran to completion.".to_owned()
        } else {
            "No variant can be recommended: every variant that ran breaks a constraint.".to_owned()
        }];
        sentences.extend(constraint_sentences);
        sentences.extend(failed_sentence);
        if sentences.len() < 2 {
            sentences.push(
                "Fix the failures (or relax the profile) and run the comparison again.".into(),
            );
        }
        sentences.truncate(5);
        return Recommendation {
            variant: None,
            approach: None,
            sentences,
            ruled_out,
            profile: profile.clone(),
        };
    };

    let m = pick.metrics.as_ref().expect("candidates have metrics");
    let mut sentences = vec![format!(
        "Use {} ({}): {}% correct [{}, {}] on {} questions, p95 latency {} ms, {}.",
        pick.name,
        pick.approach,
        pct(m.correct.estimate),
        pct(m.correct.lo),
        pct(m.correct.hi),
        report.questions,
        m.latency_p95_ms.round(),
        cost_phrase(pick)
    )];
    let versus = versus_sentence(report, pick, &candidates, profile);
    if !versus.is_empty() {
        sentences.push(versus);
    }
    sentences.extend(constraint_sentences);
    if let Some(f) = report
        .scenarios
        .freshness
        .iter()
        .find(|f| f.result.variant == pick.name)
    {
        sentences.push(format!(
            "After a document edit it gave the new fact on {} of {} edited questions ({} took {} s).",
            f.result.followed_new_fact,
            f.result.edited_questions,
            f.result.update_kind.as_str(),
            short(f.result.update_seconds)
        ));
    }
    if let Some(b) = &pick.break_even
        && let (Some(q), Some(against), Some(basis)) = (b.questions, &b.against, b.basis)
    {
        sentences.push(format!(
            "Its training ({} {}) pays for itself against {} after {} questions.",
            short(b.training_cost.unwrap_or_default()),
            basis.unit(),
            against,
            q
        ));
    }
    sentences.extend(failed_sentence);
    sentences.truncate(5);
    Recommendation {
        variant: Some(pick.name.clone()),
        approach: Some(pick.approach),
        sentences,
        ruled_out,
        profile: profile.clone(),
    }
}

fn by_accuracy<'a>(vs: &[&'a VariantReport]) -> Option<&'a VariantReport> {
    let key = |v: &VariantReport| {
        v.metrics
            .as_ref()
            .map_or((f64::NEG_INFINITY, f64::NEG_INFINITY), |m| {
                (m.correct.estimate, m.f1.estimate)
            })
    };
    vs.iter()
        .copied()
        .fold(None, |best: Option<&VariantReport>, v| match best {
            Some(b) if key(b) >= key(v) => Some(b),
            _ => Some(v),
        })
}

fn choose<'a>(
    report: &Report,
    candidates: &[&'a VariantReport],
    profile: &Profile,
) -> Option<&'a VariantReport> {
    let top = by_accuracy(candidates)?;
    let equivalent: Vec<&VariantReport> = candidates
        .iter()
        .copied()
        .filter(|v| v.name == top.name || is_equivalent(report, v, top))
        .collect();
    let all_priced = equivalent
        .iter()
        .all(|v| v.metrics.as_ref().and_then(|m| m.usd_per_1000()).is_some());
    let cost = |v: &VariantReport| {
        let m = v.metrics.as_ref().expect("candidates have metrics");
        if all_priced {
            m.usd_per_1000().unwrap_or(f64::INFINITY)
        } else {
            m.cpu_seconds_per_1000
        }
    };
    let changing = profile.documents_change();
    equivalent.into_iter().min_by(|a, b| {
        let retrain = |v: &VariantReport| changing && v.fine_tuned;
        retrain(a)
            .cmp(&retrain(b))
            .then(cost(a).total_cmp(&cost(b)))
            .then(
                a.metrics
                    .as_ref()
                    .map(|m| m.latency_p95_ms)
                    .unwrap_or_default()
                    .total_cmp(
                        &b.metrics
                            .as_ref()
                            .map(|m| m.latency_p95_ms)
                            .unwrap_or_default(),
                    ),
            )
    })
}

fn is_equivalent(report: &Report, v: &VariantReport, top: &VariantReport) -> bool {
    report
        .comparison(&v.name, &top.name)
        .is_some_and(|c| !c.significant && c.difference.estimate >= -EQUIVALENCE_MARGIN)
}

/// How the pick stands against the most accurate variant (or the runner-up, when it is the
/// most accurate).
fn versus_sentence(
    report: &Report,
    pick: &VariantReport,
    candidates: &[&VariantReport],
    profile: &Profile,
) -> String {
    let best = report.best.as_deref().and_then(|b| report.variant(b));
    // The size of the gap, with its interval oriented the same way (positive).
    let describe = |c: &crate::report::Comparison| {
        let d = c.difference;
        let (lo, hi) = if d.estimate < 0.0 {
            (-d.hi, -d.lo)
        } else {
            (d.lo, d.hi)
        };
        format!(
            "{} points [{}, {}], McNemar p = {}",
            pct(d.estimate.abs()),
            pct(lo),
            pct(hi),
            p_value(c.mcnemar.p_value)
        )
    };
    match best {
        Some(best) if best.name == pick.name => {
            let others: Vec<&VariantReport> = report
                .variants
                .iter()
                .filter(|v| v.metrics.is_some() && v.name != pick.name)
                .collect();
            match by_accuracy(&others).and_then(|r| report.comparison(&r.name, &pick.name)) {
                Some(c) => format!(
                    "It is the most accurate; the runner-up, {}, is lower by {} ({}).",
                    c.variant,
                    describe(&c),
                    if c.significant {
                        "a significant difference"
                    } else {
                        "not a significant difference"
                    }
                ),
                None => "It is the only variant that ran, so there is nothing to compare it \
                         against."
                    .into(),
            }
        }
        Some(best) => {
            let Some(c) = report.comparison(&best.name, &pick.name) else {
                return String::new();
            };
            let why = if !candidates.iter().any(|v| v.name == best.name) {
                "but it breaks a constraint".to_owned()
            } else if profile.documents_change() && best.fine_tuned && !pick.fine_tuned {
                format!(
                    "not a significant difference, and {} needs no retraining when documents change",
                    pick.name
                )
            } else {
                format!(
                    "not a significant difference, and {} costs less per question",
                    pick.name
                )
            };
            format!(
                "The most accurate variant, {} ({}% correct), is higher by {}, {}.",
                best.name,
                pct(best.metrics.as_ref().map_or(0.0, |m| m.correct.estimate)),
                describe(&c),
                why
            )
        }
        None => String::new(),
    }
}
