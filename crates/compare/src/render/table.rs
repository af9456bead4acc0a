//! The report's tables, built once and printed as text or HTML.

use crate::report::{NO_LABEL, Report, VariantReport};
use crate::stats::Interval;

pub(crate) struct Table {
    pub title: String,
    pub headers: Vec<String>,
    /// Columns from this index on are numbers (right-aligned).
    pub numeric_from: usize,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn to_text(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        // A short row's last cell (a failure message) spans the remaining columns.
        let spans = |row: &[String], i: usize| row.len() < cols && i + 1 == row.len();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                if !spans(row, i) {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if spans(cells, i) {
                    s.push_str("  ");
                    s.push_str(cell);
                    break;
                }
                let pad = w - cell.chars().count().min(*w);
                if i > 0 {
                    s.push_str("  ");
                }
                if i >= self.numeric_from {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = line(&self.headers);
        let total: usize = widths.iter().sum::<usize>() + 2 * (cols.saturating_sub(1));
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A share as a percentage with one decimal ("-0.0" printed as "0.0").
pub(crate) fn pct(x: f64) -> String {
    let s = format!("{:.1}", x * 100.0);
    if s == "-0.0" { "0.0".into() } else { s }
}

pub(crate) fn ci(i: &Interval) -> String {
    format!("{} [{}, {}]", pct(i.estimate), pct(i.lo), pct(i.hi))
}

fn opt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), pct)
}

pub(crate) fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn usd(x: f64) -> String {
    if x >= 1.0 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

pub(crate) fn summary_line(r: &Report) -> String {
    let mut s = format!(
        "ragtune compare: {} variants on {} questions ({} answerable, {} unanswerable",
        r.variants.len(),
        r.questions,
        r.answerable,
        r.unanswerable
    );
    if r.labelled > 0 {
        s.push_str(&format!(", {} labelled", r.labelled));
    }
    s.push_str(&format!(
        "); {:.0}% intervals from {} paired bootstrap resamples (seed {})",
        r.options.confidence * 100.0,
        r.options.resamples,
        r.options.seed
    ));
    s
}

pub(crate) fn legend(r: &Report) -> String {
    format!(
        "correct: exact match, or the label for labelled questions. vs best: difference in \
         points from {} with its paired {:.0}% interval; * McNemar p < {} (significant), p: \
         McNemar's p-value (exact binomial below 25 discordant pairs, else chi-squared with \
         continuity correction). q/s: questions per second one at a time (1000 / mean \
         latency); tok: mean tokens per question; 1k q: 1,000 questions; break-even: questions \
         after which training has paid for itself against the RAG variant of the same model.",
        r.best.as_deref().unwrap_or("the best variant"),
        r.options.confidence * 100.0,
        r.options.alpha
    )
}

fn vs_best(v: &VariantReport, r: &Report) -> (String, String) {
    if r.best.as_deref() == Some(v.name.as_str()) {
        return ("best".into(), String::new());
    }
    match &v.vs_best {
        Some(c) => {
            let d = c.difference;
            let sign = |x: f64| {
                if x > 0.0 {
                    format!("+{}", pct(x))
                } else {
                    pct(x)
                }
            };
            (
                format!(
                    "{} [{}, {}]{}",
                    sign(d.estimate),
                    sign(d.lo),
                    sign(d.hi),
                    if c.significant { " *" } else { "  " }
                ),
                crate::report::p_value(c.mcnemar.p_value),
            )
        }
        None => (String::new(), String::new()),
    }
}

pub(crate) fn tables(r: &Report) -> Vec<Table> {
    let labelled = r.labelled > 0;
    let mut quality = Table {
        title: "Quality (%)".into(),
        headers: ["variant", "approach", "correct", "exact match", "F1"]
            .map(String::from)
            .to_vec(),
        numeric_from: 2,
        rows: Vec::new(),
    };
    if labelled {
        quality.headers.push("accuracy (labelled)".into());
    }
    quality.headers.extend(["vs best".into(), "p".into()]);
    let compared = || r.variants.iter().filter(|v| v.metrics.is_some());
    for v in &r.variants {
        let mut row = vec![v.name.clone(), v.approach.to_string()];
        match (&v.metrics, &v.failed) {
            (Some(m), _) => {
                row.extend([ci(&m.correct), ci(&m.exact_match), ci(&m.f1)]);
                if labelled {
                    row.push(m.accuracy.as_ref().map_or_else(|| "-".into(), ci));
                }
                let (d, p) = vs_best(v, r);
                row.extend([d, p]);
            }
            (None, reason) => row.push(format!(
                "FAILED: {}",
                reason.as_deref().unwrap_or("no results")
            )),
        }
        quality.rows.push(row);
    }
    let mut grounding = Table {
        title: "Grounding (%)".into(),
        headers: [
            "variant",
            "valid citations",
            "abstained (unanswerable)",
            "abstained (answerable)",
            "unsupported answers",
            "format followed",
        ]
        .map(String::from)
        .to_vec(),
        numeric_from: 1,
        rows: Vec::new(),
    };
    for v in compared() {
        let m = v.metrics.as_ref().expect("filtered");
        grounding.rows.push(vec![
            v.name.clone(),
            opt_pct(m.citation_validity),
            opt_pct(m.abstention_unanswerable),
            opt_pct(m.false_abstention_answerable),
            opt_pct(m.unsupported_rate),
            opt_pct(m.format_adherence),
        ]);
    }
    let mut cost = Table {
        title: "Speed and cost".into(),
        headers: [
            "variant",
            "p50 ms",
            "p95 ms",
            "q/s",
            "q/s batched",
            "prompt tok",
            "compl. tok",
            "CPU-s/1k q",
            "USD/1k q",
            "training",
            "break-even",
        ]
        .map(String::from)
        .to_vec(),
        numeric_from: 1,
        rows: Vec::new(),
    };
    for v in compared() {
        let m = v.metrics.as_ref().expect("filtered");
        cost.rows.push(vec![
            v.name.clone(),
            num(m.latency_p50_ms),
            num(m.latency_p95_ms),
            m.sequential_qps.map_or_else(|| "-".into(), num),
            m.batch_throughput_qps.map_or_else(|| "-".into(), num),
            num(m.mean_prompt_tokens),
            num(m.mean_completion_tokens),
            num(m.cpu_seconds_per_1000),
            m.usd_per_1000().map_or_else(|| "-".into(), usd),
            v.training.as_ref().map_or_else(
                || "-".into(),
                |t| match t.cpu_seconds {
                    Some(c) => format!("{} s ({} CPU-s)", num(t.wall_seconds), num(c)),
                    None => format!("{} s", num(t.wall_seconds)),
                },
            ),
            break_even_cell(v),
        ]);
    }
    let mut out = vec![quality, grounding, cost];
    out.extend(labels(r));
    out
}

/// Per gold label, how many each variant got right, and which labels it said: a variant that
/// says one label whatever the passage scores the majority share without reading anything.
fn labels(r: &Report) -> Option<Table> {
    let majority = r.majority_label.as_ref()?;
    let golds: Vec<&str> = r
        .variants
        .iter()
        .find_map(|v| v.metrics.as_ref().filter(|m| !m.labels.is_empty()))?
        .labels
        .iter()
        .map(|row| row.gold.as_str())
        .collect();
    let mut headers = vec!["variant".to_owned()];
    headers.extend(golds.iter().map(|g| format!("right on {g}")));
    headers.extend(golds.iter().map(|g| format!("said {g} (%)")));
    headers.push("said none (%)".to_owned());
    let mut table = Table {
        title: format!(
            "Labels: always saying \"{}\" scores {}%",
            majority.label,
            pct(majority.share)
        ),
        headers,
        numeric_from: 1,
        rows: Vec::new(),
    };
    for v in r.variants.iter().filter(|v| v.metrics.is_some()) {
        let rows = &v.metrics.as_ref().expect("filtered").labels;
        let asked: usize = rows.iter().map(|row| row.questions).sum();
        let said = |label: &str| {
            let n: usize = rows.iter().filter_map(|row| row.said.get(label)).sum();
            pct(n as f64 / asked.max(1) as f64)
        };
        let mut cells = vec![v.name.clone()];
        if rows.is_empty() {
            // A run saved before outcomes recorded labels.
            cells.extend(std::iter::repeat_n("-".to_owned(), 2 * golds.len() + 1));
            table.rows.push(cells);
            continue;
        }
        cells.extend(golds.iter().map(|g| {
            rows.iter().find(|row| row.gold == *g).map_or_else(
                || "-".into(),
                |row| format!("{}/{}", row.right(), row.questions),
            )
        }));
        cells.extend(golds.iter().map(|g| said(g)));
        cells.push(said(NO_LABEL));
        table.rows.push(cells);
    }
    Some(table)
}

pub(crate) fn break_even_cell(v: &VariantReport) -> String {
    match &v.break_even {
        None => "-".into(),
        Some(b) => match (b.questions, &b.against, b.basis) {
            (Some(q), Some(_), _) => format!("{q} q"),
            // Both costs known, and the fine-tuned variant is not cheaper per question.
            (None, Some(_), Some(_)) => "never".into(),
            // A cost is missing (the notes say which): no claim either way.
            _ => "unknown".into(),
        },
    }
}

/// One line per scenario result, for the terminal.
pub(crate) fn scenario_lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for f in &r.scenarios.freshness {
        out.push(format!(
            "Freshness: {} gave the new fact on {} of {} edited questions, the old one on {} ({} took {} s).",
            f.result.variant,
            f.result.followed_new_fact,
            f.result.edited_questions,
            f.result.kept_old_fact,
            f.result.update_kind.as_str(),
            num(f.result.update_seconds)
        ));
    }
    for f in &r.scenarios.forgetting {
        let mut s = format!(
            "Forgetting: {} perplexity {} -> {} ({:+.1}%)",
            f.result.variant,
            num(f.result.perplexity_before),
            num(f.result.perplexity_after),
            f.perplexity_change * 100.0
        );
        if let (Some(a), Some(b)) = (
            f.result.ood_exact_match_before,
            f.result.ood_exact_match_after,
        ) {
            s.push_str(&format!(
                "; out-of-domain exact match {}% -> {}%",
                pct(a),
                pct(b)
            ));
        }
        s.push('.');
        out.push(s);
    }
    for a in &r.scenarios.stale_adapters {
        out.push(format!(
            "Stale adapter: {} ({}) was trained on {} documents that changed since, {} training examples.",
            a.result.adapter,
            if a.variants.is_empty() {
                "no compared variant uses it".to_owned()
            } else {
                format!("used by {}", a.variants.join(", "))
            },
            a.result.changed_documents,
            a.result.affected_examples
        ));
    }
    for v in r.variants.iter().filter(|v| v.break_even.is_some()) {
        if let Some(b) = &v.break_even
            && let Some(reason) = &b.reason
        {
            out.push(format!("Break-even of {}: none, {reason}.", v.name));
        }
    }
    out
}
