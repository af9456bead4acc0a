//! A few hand-written SVG charts for the HTML report: scatter with error bars, horizontal
//! bars, stacked shares and line charts. Every string that reaches the markup goes through
//! [`escape`]. Charts have fixed pixel sizes (`width`/`height` attributes), so they render
//! without scripts or CSS.

use std::fmt::Write;

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A label cut to `max` characters (with an ellipsis); the full text goes in a `<title>`.
fn clip(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// The width of a column of row labels at 12px (about 7px a character), within bounds.
fn label_width(labels: impl Iterator<Item = usize>) -> f64 {
    (labels.max().unwrap_or(0).min(LABEL_CHARS) as f64 * 7.0 + 16.0).clamp(80.0, 320.0)
}

const LABEL_CHARS: usize = 44;

/// Colours for series, in order (colour-blind friendly: Okabe-Ito).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A linear map from data to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    fn map(&self, v: f64) -> f64 {
        if self.d1 == self.d0 {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// "Nice" ticks covering `lo..=hi` (about `n` of them); the domain widens to the outer ticks.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (lo, hi) = if hi - lo < 1e-12 {
        (
            lo - 0.5_f64.max(lo.abs() * 0.1),
            hi + 0.5_f64.max(hi.abs() * 0.1),
        )
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    // From the tick at or below `lo` to the tick at or above `hi`.
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last)
        .map(|k| {
            let t = k as f64 * step;
            if t.abs() < step * 1e-9 { 0.0 } else { t }
        })
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v == v.round() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

fn finite(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A chart under construction: a plot area with axes.
struct Chart {
    width: f64,
    height: f64,
    body: String,
    x: Scale,
    y: Scale,
}

const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 48.0;

impl Chart {
    /// A chart whose axes cover the data ranges, with gridlines and labels.
    fn new(
        title: &str,
        (width, height): (f64, f64),
        (xlo, xhi): (f64, f64),
        (ylo, yhi): (f64, f64),
        (xlabel, ylabel): (&str, &str),
        legend: f64,
    ) -> Chart {
        // The plot area and x axis sit above a legend of `legend` pixels.
        let height_all = height;
        let height = height - legend;
        let xt = ticks(xlo, xhi, 6);
        let yt = ticks(ylo, yhi, 5);
        let x = Scale {
            d0: xt[0],
            d1: *xt.last().unwrap_or(&xt[0]),
            r0: LEFT,
            r1: width - RIGHT,
        };
        let y = Scale {
            d0: yt[0],
            d1: *yt.last().unwrap_or(&yt[0]),
            r0: height - BOTTOM,
            r1: TOP,
        };
        let mut c = Chart {
            width,
            height: height_all,
            body: String::new(),
            x,
            y,
        };
        let b = &mut c.body;
        let _ = write!(
            b,
            r##"<text x="{}" y="18" class="title">{}</text>"##,
            LEFT,
            escape(title)
        );
        for t in &xt {
            let px = x.map(*t);
            let _ = write!(
                b,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" class="grid"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP,
                height - BOTTOM,
                height - BOTTOM + 16.0,
                fmt_tick(*t)
            );
        }
        for t in &yt {
            let py = y.map(*t);
            let _ = write!(
                b,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" class="grid"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                width - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                fmt_tick(*t)
            );
        }
        let _ = write!(
            b,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" class="frame"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            width - LEFT - RIGHT,
            height - TOP - BOTTOM,
            (LEFT + width - RIGHT) / 2.0,
            height - 8.0,
            escape(xlabel),
            (TOP + height - BOTTOM) / 2.0,
            escape(ylabel)
        );
        c
    }

    fn finish(self, label: &str) -> String {
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">{}</svg>"##,
            escape(label),
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

/// A point with a vertical error bar and a label.
pub struct ErrorPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub y_lo: f64,
    pub y_hi: f64,
}

/// Scatter plot with vertical error bars, each point labelled.
pub fn scatter(title: &str, points: &[ErrorPoint], xlabel: &str, ylabel: &str) -> String {
    let xr = finite(points.iter().map(|p| p.x)).unwrap_or((0.0, 1.0));
    let yr = finite(points.iter().flat_map(|p| [p.y_lo, p.y_hi, p.y])).unwrap_or((0.0, 1.0));
    // From zero, with a little room right of the slowest point.
    let xr = (xr.0.min(0.0), xr.1 * 1.05);
    let mut c = Chart::new(title, (600.0, 380.0), xr, yr, (xlabel, ylabel), 0.0);
    // Labels go right of their point (left of it in the right half) and move down until they
    // clear the labels already placed.
    let mut placed: Vec<(f64, f64, f64)> = Vec::new();
    let mid = (c.x.r0 + c.x.r1) / 2.0;
    for (i, p) in points.iter().enumerate() {
        let (px, py) = (c.x.map(p.x), c.y.map(p.y));
        let (lo, hi) = (c.y.map(p.y_lo), c.y.map(p.y_hi));
        let col = color(i);
        let text = clip(&p.label, LABEL_CHARS);
        let text_w = text.chars().count() as f64 * 6.5;
        let (lx, anchor, x0, x1) = if px > mid {
            (px - 9.0, "end", px - 9.0 - text_w, px - 9.0)
        } else {
            (px + 9.0, "start", px + 9.0, px + 9.0 + text_w)
        };
        let mut ly = py - 6.0;
        while placed
            .iter()
            .any(|(a0, a1, y)| (ly - y).abs() < 13.0 && x0 < *a1 && *a0 < x1)
        {
            ly += 13.0;
        }
        placed.push((x0, x1, ly));
        let _ = write!(
            c.body,
            r##"<g><title>{label}</title><line x1="{px:.1}" y1="{lo:.1}" x2="{px:.1}" y2="{hi:.1}" stroke="{col}" stroke-width="2"/><line x1="{:.1}" y1="{lo:.1}" x2="{:.1}" y2="{lo:.1}" stroke="{col}" stroke-width="2"/><line x1="{:.1}" y1="{hi:.1}" x2="{:.1}" y2="{hi:.1}" stroke="{col}" stroke-width="2"/><circle cx="{px:.1}" cy="{py:.1}" r="5" fill="{col}"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" class="point-label" fill="{col}">{text}</text></g>"##,
            px - 5.0,
            px + 5.0,
            px - 5.0,
            px + 5.0,
            label = escape(&p.label),
            text = escape(&text),
        );
    }
    c.finish(title)
}

/// Horizontal bars, one per (label, value); `None` values are drawn as "n/a".
pub fn bars(title: &str, items: &[(String, Option<f64>)], unit: &str) -> String {
    let label_w = label_width(items.iter().map(|(l, _)| l.chars().count()));
    let row = 26.0;
    let width = 600.0;
    let height = TOP + row * items.len() as f64 + 34.0;
    let max = finite(items.iter().filter_map(|(_, v)| *v))
        .map_or(1.0, |(_, hi)| hi)
        .max(f64::MIN_POSITIVE);
    let xt = ticks(0.0, max, 5);
    let x = Scale {
        d0: 0.0,
        d1: *xt.last().unwrap_or(&1.0),
        r0: label_w,
        r1: width - 70.0,
    };
    let mut b = String::new();
    let _ = write!(
        b,
        r##"<text x="8" y="18" class="title">{}</text>"##,
        escape(title)
    );
    let axis_y = TOP + row * items.len() as f64;
    for t in &xt {
        let px = x.map(*t);
        let _ = write!(
            b,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{axis_y:.1}" class="grid"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y + 16.0,
            fmt_tick(*t)
        );
    }
    for (i, (label, value)) in items.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            b,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end"><title>{}</title>{}</text>"##,
            label_w - 8.0,
            y + row * 0.65,
            escape(label),
            escape(&clip(label, LABEL_CHARS))
        );
        match value {
            Some(v) if v.is_finite() => {
                let w = (x.map(*v) - label_w).max(1.0);
                let _ = write!(
                    b,
                    r##"<rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}">{}</text>"##,
                    y + 4.0,
                    row - 8.0,
                    color(i),
                    escape(label),
                    fmt_value(*v),
                    escape(unit),
                    label_w + w + 4.0,
                    y + row * 0.65,
                    fmt_value(*v)
                );
            }
            _ => {
                let _ = write!(
                    b,
                    r##"<text x="{:.1}" y="{:.1}" class="muted">n/a</text>"##,
                    label_w + 4.0,
                    y + row * 0.65
                );
            }
        }
    }
    let _ = write!(
        b,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        (label_w + width - 70.0) / 2.0,
        height - 2.0,
        escape(unit)
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">{b}</svg>"##,
        escape(title)
    )
}

fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Stacked horizontal bars of shares (each row's parts sum to at most 1), with a legend.
pub fn shares(title: &str, rows: &[(String, Vec<f64>)], parts: &[(&str, &str)]) -> String {
    let label_w = label_width(rows.iter().map(|(l, _)| l.chars().count()));
    let row = 26.0;
    let width = 600.0;
    let plot_w = width - label_w - 20.0;
    let height = TOP + row * rows.len() as f64 + 40.0;
    let mut b = String::new();
    let _ = write!(
        b,
        r##"<text x="8" y="18" class="title">{}</text>"##,
        escape(title)
    );
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            b,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end"><title>{}</title>{}</text><rect x="{label_w}" y="{:.1}" width="{plot_w:.1}" height="{:.1}" class="track"/>"##,
            label_w - 8.0,
            y + row * 0.65,
            escape(label),
            escape(&clip(label, LABEL_CHARS)),
            y + 4.0,
            row - 8.0
        );
        let mut at = label_w;
        for (v, (name, col)) in values.iter().zip(parts) {
            let w = v.clamp(0.0, 1.0) * plot_w;
            if w > 0.0 {
                let _ = write!(
                    b,
                    r##"<rect x="{at:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{col}"><title>{}: {} {:.0}%</title></rect>"##,
                    y + 4.0,
                    row - 8.0,
                    escape(label),
                    escape(name),
                    v * 100.0
                );
            }
            at += w;
        }
    }
    let ly = TOP + row * rows.len() as f64 + 20.0;
    let mut lx = label_w;
    for (name, col) in parts {
        let _ = write!(
            b,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{col}"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            ly - 10.0,
            lx + 16.0,
            escape(name)
        );
        lx += 24.0 + 7.0 * name.len() as f64;
    }
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">{b}</svg>"##,
        escape(title)
    )
}

/// One line per series, with markers and a legend.
pub fn lines(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    xlabel: &str,
    ylabel: &str,
    fixed: Option<((f64, f64), (f64, f64))>,
) -> String {
    let all = || series.iter().flat_map(|(_, pts)| pts.iter().copied());
    let (xr, yr) = fixed.unwrap_or_else(|| {
        (
            finite(all().map(|p| p.0)).unwrap_or((0.0, 1.0)),
            finite(all().map(|p| p.1)).unwrap_or((0.0, 1.0)),
        )
    });
    let legend_h = 18.0 * series.len() as f64 + 6.0;
    let mut c = Chart::new(
        title,
        (600.0, 360.0 + legend_h),
        xr,
        yr,
        (xlabel, ylabel),
        legend_h,
    );
    for (i, (label, pts)) in series.iter().enumerate() {
        let col = color(i);
        let path: Vec<String> = pts
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", c.x.map(*x), c.y.map(*y)))
            .collect();
        let _ = write!(
            c.body,
            r##"<g><title>{label}</title><polyline points="{}" fill="none" stroke="{col}" stroke-width="2"/>"##,
            path.join(" "),
            label = escape(label)
        );
        if pts.len() <= 40 {
            for p in &path {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    c.body,
                    r##"<circle cx="{x}" cy="{y}" r="3" fill="{col}"/>"##
                );
            }
        }
        let ly = c.height - legend_h + 18.0 * i as f64 + 14.0;
        let _ = write!(
            c.body,
            r##"</g><rect x="{LEFT}" y="{:.1}" width="12" height="12" fill="{col}"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            ly - 10.0,
            LEFT + 16.0,
            escape(label)
        );
    }
    c.finish(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        assert_eq!(
            ticks(0.0, 1044.0, 6),
            [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0]
        );
        assert_eq!(ticks(21.0, 70.0, 5), [20.0, 30.0, 40.0, 50.0, 60.0, 70.0]);
        let t = ticks(0.4, 2.9, 5);
        assert!(
            t[0] <= 0.4 && *t.last().unwrap() >= 2.9 && t.len() <= 8,
            "{t:?}"
        );
        // A single value still gets an axis around it.
        let t = ticks(5.0, 5.0, 5);
        assert!(t[0] < 5.0 && *t.last().unwrap() > 5.0, "{t:?}");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href='x'>&"#),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(escape("\"q\""), "&quot;q&quot;");
    }

    #[test]
    fn long_labels_are_clipped_with_the_full_text_in_a_title() {
        let name = "x".repeat(60);
        let svg = bars("t", &[(name.clone(), Some(1.0))], "u");
        assert!(svg.contains(&format!("<title>{name}</title>")));
        assert!(svg.contains(&format!("{}…", "x".repeat(LABEL_CHARS - 1))));
    }
}
