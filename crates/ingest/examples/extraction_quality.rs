//! Extraction quality and speed on `shared/data/docs-corpus`.
//!
//! Quality: for every document with an expected Markdown rendering (Docling's, in
//! `docling-testdata/*/groundtruth/`), the token recall of our text against it: lowercased
//! word tokens, multiset recall (how many of the expected tokens we produced; link targets
//! and comments in the Markdown are not text and do not count). Speed:
//! files/s, PDF pages/s and MB/s of loading every document in the corpus.
//!
//! Run with `cargo run --release -p ragtune-ingest --example extraction_quality`.

use ragtune_ingest::{LoadOptions, load, walk};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tokens(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// Markdown markup that is not document text: link targets and HTML comments.
fn strip_markup(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut rest = md;
    loop {
        let link = rest.find("](");
        let comment = rest.find("<!--");
        match (link, comment) {
            (Some(l), c) if c.is_none_or(|c| l < c) => {
                out.push_str(&rest[..=l]);
                rest = rest[l..].find(')').map_or("", |e| &rest[l + e + 1..]);
            }
            (_, Some(c)) => {
                out.push_str(&rest[..c]);
                rest = rest[c..].find("-->").map_or("", |e| &rest[c + e + 3..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn recall(ours: &str, expected: &str) -> f64 {
    let (ours, expected) = (tokens(ours), tokens(&strip_markup(expected)));
    let total: usize = expected.values().sum();
    let hit: usize = expected
        .iter()
        .map(|(w, n)| (*n).min(ours.get(w).copied().unwrap_or(0)))
        .sum();
    hit as f64 / total.max(1) as f64
}

/// `groundtruth/<file name>.md`, `groundtruth/<stem>.md` or `groundtruth/<stem>.<variant>.md`.
fn expected_for(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?.join("groundtruth");
    let name = file.file_name()?.to_str()?;
    let stem = file.file_stem()?.to_str()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            n == format!("{name}.md")
                || n == format!("{stem}.md")
                || (n.starts_with(&format!("{stem}.")) && n.ends_with(".md"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/docs-corpus");
    let opts = LoadOptions::default();
    let files: Vec<PathBuf> = walk(&[&root])
        .into_iter()
        .filter_map(Result::ok)
        .filter(|p| {
            !p.components().any(|c| c.as_os_str() == "groundtruth") && !p.ends_with("SOURCE.md")
        })
        .collect();

    let (mut elapsed, mut bytes, mut pdf_pages, mut pdf_time, mut failures) =
        (Duration::ZERO, 0u64, 0u64, Duration::ZERO, 0);
    let mut by_format: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    println!("{:<58} {:>7} {:>9}", "file", "recall", "chars");
    for path in &files {
        let started = Instant::now();
        let result = load(path, &opts);
        let took = started.elapsed();
        elapsed += took;
        bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                println!("ERROR {e}");
                continue;
            }
        };
        let Some(doc) = loaded.documents.first() else {
            continue;
        };
        if let Some(pages) = doc
            .metadata
            .get("pages")
            .and_then(|p| p.parse::<u64>().ok())
        {
            pdf_pages += pages;
            pdf_time += took;
        }
        let Some(expected) = expected_for(path) else {
            continue;
        };
        let text: String = loaded
            .documents
            .iter()
            .map(|d| d.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let r = recall(
            &text,
            &std::fs::read_to_string(&expected).unwrap_or_default(),
        );
        by_format.entry(doc.format.as_str()).or_default().push(r);
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        // Say why a document scored low when the loader knows (no text layer...).
        let note = loaded
            .warnings
            .first()
            .filter(|_| r < 0.5)
            .map(|w| format!("  ({})", w.message))
            .unwrap_or_default();
        println!("{shown:<58} {r:>7.3} {:>9}{note}", text.len());
    }

    println!("\nmean token recall against Docling's Markdown, by format:");
    let mut all = Vec::new();
    for (format, rs) in &by_format {
        println!(
            "  {format:<6} {:.3}  ({} files)",
            rs.iter().sum::<f64>() / rs.len() as f64,
            rs.len()
        );
        all.extend(rs);
    }
    println!(
        "  {:<6} {:.3}  ({} files)",
        "all",
        all.iter().sum::<f64>() / all.len().max(1) as f64,
        all.len()
    );

    let secs = elapsed.as_secs_f64();
    println!(
        "\nthroughput over {} corpus files ({:.1} MB, {failures} failed): {:.1} files/s, {:.2} MB/s; PDF: {pdf_pages} pages at {:.1} pages/s",
        files.len(),
        bytes as f64 / 1e6,
        files.len() as f64 / secs,
        bytes as f64 / 1e6 / secs,
        pdf_pages as f64 / pdf_time.as_secs_f64().max(1e-9),
    );
}
