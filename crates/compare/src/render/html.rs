//! One self-contained HTML page: inline CSS and SVG, no scripts, no external resources, every
//! user-supplied string escaped.

use super::svg::{self, ErrorPoint, escape};
use super::table::{self, Table};
use crate::report::Report;
use std::fmt::Write;

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1320px; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.summary, .legend, .muted { color: #555; }
#recommendation { background: #eef6ee; border-left: 4px solid #2e7d32; padding: .6rem 1rem; }
#recommendation.none { background: #fbeeee; border-left-color: #b71c1c; }
#recommendation p { font-size: 1.05rem; line-height: 1.5; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e5e5; white-space: nowrap; }
th { text-align: left; background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.failed { color: #b71c1c; }
tr.best td:first-child { font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
svg.plot { background: #fff; border: 1px solid #e5e5e5; }
svg.plot text { font-size: 12px; fill: #333; }
svg.plot text.title { font-size: 13px; font-weight: bold; }
svg.plot text.point-label { font-size: 11px; }
svg.plot text.muted { fill: #999; }
svg.plot .grid { stroke: #eee; }
svg.plot .frame { fill: none; stroke: #999; }
svg.plot .track { fill: #f1f1f1; }
";

fn table_html(t: &Table, best: Option<&str>) -> String {
    let mut s = format!(
        "<h3>{}</h3><div class=\"scroll\"><table><thead><tr>",
        escape(&t.title)
    );
    for h in &t.headers {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        let is_best = best.is_some_and(|b| row.first().map(String::as_str) == Some(b));
        s.push_str(if is_best {
            "<tr class=\"best\">"
        } else {
            "<tr>"
        });
        for (i, cell) in row.iter().enumerate() {
            let class = if cell.starts_with("FAILED:") {
                " class=\"failed\""
            } else if i >= t.numeric_from {
                " class=\"num\""
            } else {
                ""
            };
            let span = if cell.starts_with("FAILED:") {
                format!(" colspan=\"{}\"", t.headers.len() - i)
            } else {
                String::new()
            };
            let _ = write!(s, "<td{class}{span}>{}</td>", escape(cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

/// The plots the report has data for.
fn plots(r: &Report) -> Vec<String> {
    let compared: Vec<_> = r.variants.iter().filter(|v| v.metrics.is_some()).collect();
    let mut out = Vec::new();
    if !compared.is_empty() {
        let points: Vec<ErrorPoint> = compared
            .iter()
            .map(|v| {
                let m = v.metrics.as_ref().expect("filtered");
                ErrorPoint {
                    label: v.name.clone(),
                    x: m.latency_p50_ms,
                    y: m.correct.estimate * 100.0,
                    y_lo: m.correct.lo * 100.0,
                    y_hi: m.correct.hi * 100.0,
                }
            })
            .collect();
        out.push(svg::scatter(
            &format!(
                "Correct vs latency ({:.0}% intervals)",
                r.options.confidence * 100.0
            ),
            &points,
            "median latency (ms, one question at a time)",
            "correct (%)",
        ));
        let priced = compared
            .iter()
            .any(|v| v.metrics.as_ref().and_then(|m| m.usd_per_1000()).is_some());
        let items: Vec<(String, Option<f64>)> = compared
            .iter()
            .map(|v| {
                let m = v.metrics.as_ref().expect("filtered");
                (
                    v.name.clone(),
                    if priced {
                        m.usd_per_1000()
                    } else {
                        Some(m.cpu_seconds_per_1000)
                    },
                )
            })
            .collect();
        out.push(if priced {
            svg::bars(
                "Cost per 1,000 questions",
                &items,
                "USD per 1,000 questions",
            )
        } else {
            svg::bars(
                "CPU time per 1,000 questions",
                &items,
                "CPU-seconds per 1,000 questions",
            )
        });
    }
    let curves: Vec<(String, Vec<(f64, f64)>)> = r
        .variants
        .iter()
        .filter(|v| !v.abstention_curve.is_empty())
        .map(|v| {
            (
                v.name.clone(),
                v.abstention_curve
                    .iter()
                    .map(|(x, y)| (x * 100.0, y * 100.0))
                    .collect(),
            )
        })
        .collect();
    if !curves.is_empty() {
        out.push(svg::lines(
            "Abstention trade-off",
            &curves,
            "abstained on answerable questions (%)",
            "abstained on unanswerable questions (%)",
            Some(((0.0, 100.0), (0.0, 100.0))),
        ));
    }
    let losses: Vec<(String, Vec<(f64, f64)>)> = r
        .variants
        .iter()
        .filter_map(|v| {
            let t = v.training.as_ref()?;
            (!t.loss_curve.is_empty()).then(|| {
                (
                    v.name.clone(),
                    t.loss_curve.iter().map(|(s, l)| (*s as f64, *l)).collect(),
                )
            })
        })
        .collect();
    if !losses.is_empty() {
        out.push(svg::lines("Training loss", &losses, "step", "loss", None));
    }
    if !r.scenarios.freshness.is_empty() {
        let rows: Vec<(String, Vec<f64>)> = r
            .scenarios
            .freshness
            .iter()
            .map(|f| {
                (
                    format!("{} ({})", f.result.variant, f.result.update_kind.as_str()),
                    vec![
                        f.followed_rate.unwrap_or(0.0),
                        f.kept_old_rate.unwrap_or(0.0),
                    ],
                )
            })
            .collect();
        out.push(svg::shares(
            "After a document edit",
            &rows,
            &[
                ("gave the new fact", "#009E73"),
                ("kept the old fact", "#D55E00"),
            ],
        ));
    }
    out
}

/// The report as one HTML page.
pub fn html(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ragtune compare</title><style>{STYLE}</style></head><body>\
         <h1>ragtune compare</h1><p class=\"summary\">{}</p>",
        escape(&table::summary_line(r))
    );
    match &r.recommendation {
        Some(rec) => {
            let class = if rec.variant.is_some() {
                ""
            } else {
                " class=\"none\""
            };
            let _ = write!(
                s,
                "<section id=\"recommendation\"{class}><h2>Recommendation</h2><p>{}</p>",
                escape(&rec.text())
            );
            if !rec.ruled_out.is_empty() {
                s.push_str("<details><summary>Ruled out</summary><ul>");
                for o in &rec.ruled_out {
                    let _ = write!(
                        s,
                        "<li><b>{}</b>: {}</li>",
                        escape(&o.variant),
                        escape(&o.reason)
                    );
                }
                s.push_str("</ul></details>");
            }
            s.push_str("</section>");
        }
        None => s.push_str(
            "<section id=\"recommendation\" class=\"none\"><h2>Recommendation</h2>\
             <p>No profile was given, so no recommendation was made.</p></section>",
        ),
    }
    let plots = plots(r);
    if !plots.is_empty() {
        s.push_str("<h2>Plots</h2><div class=\"plots\">");
        for p in plots {
            s.push_str(&p);
        }
        s.push_str("</div>");
    }
    s.push_str("<h2>Results</h2>");
    for t in table::tables(r) {
        s.push_str(&table_html(&t, r.best.as_deref()));
    }
    let _ = write!(s, "<p class=\"legend\">{}</p>", escape(&table::legend(r)));
    let lines = table::scenario_lines(r);
    if !lines.is_empty() {
        s.push_str("<h2>Scenarios</h2><ul>");
        for l in lines {
            let _ = write!(s, "<li>{}</li>", escape(&l));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}
