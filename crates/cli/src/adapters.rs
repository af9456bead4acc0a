//! `ragtune adapter list`: the trained adapters under some folders, what they were trained
//! from, and which of them changed or deleted documents made stale
//! (`ragtune_eval::adapters`).

use crate::term;
use anyhow::Result;
use clap::Args;
use ragtune_eval::adapters::{Staleness, TrainedAdapter, find, staleness};
use ragtune_index::KnowledgeBase;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Run folders, or folders holding them (searched three levels deep).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Check lineage against this knowledge base (default: the one each adapter was built
    /// from).
    #[arg(long, value_parser = crate::kb::parse_kb_dir)]
    pub kb: Option<PathBuf>,
    /// Print JSON (one object per adapter, with its staleness).
    #[arg(long)]
    pub json: bool,
}

/// An adapter and, when it records lineage, how far its knowledge base has moved.
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    adapter: TrainedAdapter,
    kb: Option<String>,
    staleness: Option<Staleness>,
    stale: Option<bool>,
    /// Why staleness could not be checked.
    unchecked: Option<String>,
}

pub fn list(args: ListArgs) -> Result<()> {
    let adapters = find(&args.paths)?;
    let listed: Vec<Listed> = adapters
        .into_iter()
        .map(|a| check(a, args.kb.as_deref()))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if listed.is_empty() {
        println!(
            "no adapters (no training.json) under {}",
            shown(&args.paths)
        );
        return Ok(());
    }
    for l in &listed {
        let a = &l.adapter;
        let base = a
            .base
            .as_deref()
            .and_then(|b| Path::new(b).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "?".into());
        let loss = a.final_loss.map_or("-".into(), |l| format!("{l:.3}"));
        let steps = a.steps.map_or("-".into(), |s| s.to_string());
        let files = if a.formats.is_empty() {
            "no adapter file".to_owned()
        } else {
            a.formats.join("+")
        };
        let flag = match l.stale {
            Some(true) => "  STALE",
            _ => "",
        };
        println!(
            "{}  {}  base {}  {} steps  loss {}  {}{flag}",
            term::safe(&a.dir.to_string_lossy()),
            a.kind,
            term::safe(&base),
            steps,
            loss,
            files
        );
        match (&l.staleness, &l.unchecked) {
            (Some(s), _) => {
                let examples = s
                    .affected_examples
                    .map(|n| format!("; {n} training examples affected"))
                    .unwrap_or_default();
                println!(
                    "    lineage: {} documents of {}: {} changed, {} deleted since training{examples}",
                    s.documents,
                    term::safe(l.kb.as_deref().unwrap_or("?")),
                    s.changed,
                    s.deleted
                );
            }
            (None, Some(why)) => println!("    lineage: {}", term::safe(why)),
            (None, None) => {}
        }
        for note in &a.notes {
            println!("    note: {}", term::safe(note));
        }
    }
    let stale = listed.iter().filter(|l| l.stale == Some(true)).count();
    println!(
        "{} adapter(s), {stale} stale{}",
        listed.len(),
        if stale > 0 {
            ": rebuild their data (`ragtune raft build`) and retrain"
        } else {
            ""
        }
    );
    Ok(())
}

fn check(adapter: TrainedAdapter, kb: Option<&Path>) -> Listed {
    let mut listed = Listed {
        kb: None,
        staleness: None,
        stale: None,
        unchecked: None,
        adapter,
    };
    let Some(lineage) = &listed.adapter.lineage else {
        listed.unchecked = Some(
            "not recorded (only adapters trained on `ragtune raft build` data record the document versions they learned from)"
                .into(),
        );
        return listed;
    };
    let dir = kb.map_or_else(|| PathBuf::from(&lineage.kb), Path::to_owned);
    listed.kb = Some(dir.display().to_string());
    match KnowledgeBase::read_store(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|store| Ok(staleness(lineage, &store)?))
    {
        Ok(s) => {
            listed.stale = Some(s.is_stale());
            listed.staleness = Some(s);
        }
        Err(e) => {
            listed.unchecked = Some(format!(
                "not checked: {} (pass --kb to check against another knowledge base)",
                crate::message(&e)
            ))
        }
    }
    listed
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
