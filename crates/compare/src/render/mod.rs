//! The report as text for a terminal, as JSON, and as one self-contained HTML page with
//! inline SVG plots (no scripts, no external resources).

mod html;
pub mod svg;
mod table;

use crate::error::Result;
use crate::report::Report;

pub use html::html;
pub(crate) use table::pct;

/// Aligned tables with confidence intervals (`41.2 [36.8, 45.6]`), a significance mark on
/// differences from the best variant, and the recommendation when the report has one.
pub fn terminal(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&table::summary_line(report));
    out.push('\n');
    for t in table::tables(report) {
        out.push('\n');
        out.push_str(&t.title);
        out.push('\n');
        out.push_str(&t.to_text());
    }
    out.push('\n');
    out.push_str(&wrap(&table::legend(report), 100));
    out.push('\n');
    for line in table::scenario_lines(report) {
        out.push_str(&wrap(&line, 100));
        out.push('\n');
    }
    if let Some(r) = &report.recommendation {
        out.push('\n');
        out.push_str("Recommendation\n");
        out.push_str(&wrap(&r.text(), 100));
        out.push('\n');
    }
    out
}

/// The report as pretty-printed JSON (see SCHEMA.md).
pub fn json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)?)
}

fn wrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}
