//! `ragtune kb check [--repair]`: prints what `ragtune_index::check` and `repair` report.

use crate::term;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use ragtune_index::CheckReport;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Check a knowledge base without changing it (exit 1 when problems remain); --repair
    /// rebuilds derived indexes and removes orphan rows.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Knowledge base directory (default: $RAGTUNE_HOME/kb/default).
    #[arg(long, env = "RAGTUNE_KB", value_parser = crate::kb::parse_kb_dir)]
    pub kb: Option<PathBuf>,
    /// Repair what can be repaired from kb.sqlite (takes the writer lock), then check again.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: KbCommand) -> Result<()> {
    match cmd {
        KbCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> Result<()> {
    let dir = match args.kb {
        Some(dir) => dir,
        None => ragtune_catalog::default_home()?.join("kb").join("default"),
    };
    let report = if args.repair {
        let repaired = ragtune_index::repair(&dir)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&repaired)?);
        } else {
            if repaired.actions.is_empty() {
                println!("repair: nothing to do");
            }
            for action in &repaired.actions {
                println!("repaired: {}", term::safe(action));
            }
            print_table(&repaired.after);
        }
        repaired.after
    } else {
        let report = ragtune_index::check(&dir, None)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(&report);
        }
        report
    };
    if !report.is_clean() {
        let n = report.problems.len();
        let hint = if args.repair {
            "see above for what is left to do"
        } else {
            "run `ragtune kb check --repair`"
        };
        bail!("{n} problem(s) in knowledge base {}; {hint}", dir.display());
    }
    Ok(())
}

fn print_table(r: &CheckReport) {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let count = |v: Option<usize>| v.map_or_else(|| "missing".to_owned(), |v| v.to_string());
    println!("knowledge base {}", term::safe(&r.dir.to_string_lossy()));
    match (&r.embedder, r.dimension) {
        (Some(name), Some(dim)) => println!("embedder  {} ({dim} dimensions)", term::safe(name)),
        _ => println!("embedder  (none recorded)"),
    }
    println!("{:<30} {:>10} {:>10}", "", "count", "change");
    println!("{:<30} {:>10}", "documents", r.documents);
    println!("{:<30} {:>10} {:>10}", "chunks", r.chunks, r.seq);
    println!("{:<30} {:>10}", "vectors (SQLite)", r.sqlite_vectors);
    let bm25 = count(r.bm25_docs);
    println!("{:<30} {bm25:>10} {:>10}", "BM25 index", opt(r.bm25_seq));
    let vectors = count(r.index_vectors);
    println!(
        "{:<30} {vectors:>10} {:>10}",
        "vector index",
        opt(r.vector_seq)
    );
    for (what, n) in [
        ("chunks without document", r.chunks_without_document),
        ("vectors without chunk", r.vectors_without_chunk),
        ("chunks without vector", r.chunks_without_vector),
        (
            "documents, wrong chunk count",
            r.documents_with_wrong_chunk_count,
        ),
    ] {
        println!("{what:<30} {n:>10}");
    }
    if r.is_clean() {
        println!("clean");
        return;
    }
    println!("problems:");
    for p in &r.problems {
        println!("  {}", term::safe(&p.what));
        println!("    repair: {}", term::safe(&p.repair));
    }
}
