//! Which adapters exist, what they were trained from, and which of them the documents have
//! moved away from since (`ragtune adapter list`; the comparison's stale-adapter section).
//!
//! A run folder is one `ragtune train` wrote: its training.json says what was trained; a RAFT
//! run's also names the knowledge base and the document versions its examples came from.

use crate::Result;
use crate::variants::TRAINING_JSON;
use ragtune_index::Store;
use ragtune_raft::{ExampleRecord, Lineage};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A trained adapter as its run folder describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainedAdapter {
    pub dir: PathBuf,
    /// `sft`, `cpt` or `raft` (SFT on RAFT data).
    pub kind: String,
    /// The base model file it was trained on.
    pub base: Option<String>,
    pub steps: Option<u64>,
    pub tokens: Option<u64>,
    pub wall_seconds: Option<f64>,
    pub final_loss: Option<f64>,
    /// The files it can be loaded from: `gguf` (adapter.gguf), `peft` (adapter_model.safetensors).
    pub formats: Vec<&'static str>,
    /// What RAFT data it learned from; `None` for other data (no lineage recorded).
    pub lineage: Option<Lineage>,
    /// What could not be read, in words.
    pub notes: Vec<String>,
}

/// How far a knowledge base has moved from the documents an adapter learned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staleness {
    /// Documents the adapter's examples came from.
    pub documents: u32,
    /// Of those, changed since (another content hash) or gone.
    pub changed: u32,
    pub deleted: u32,
    /// Training examples whose oracle document changed or is gone (`None` when the RAFT
    /// manifest listing the examples is gone).
    pub affected_examples: Option<u32>,
}

impl Staleness {
    pub fn is_stale(&self) -> bool {
        self.changed + self.deleted > 0
    }
}

/// Every run folder at or below `roots` (three levels deep; checkpoints are not runs), sorted
/// by path. A root that does not exist is an error naming it.
pub fn find(roots: &[PathBuf]) -> Result<Vec<TrainedAdapter>> {
    let mut dirs = Vec::new();
    for root in roots {
        fs_err::metadata(root)?;
        collect_runs(root, 3, &mut dirs);
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs.iter().map(|d| read(d)).collect())
}

fn collect_runs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join(TRAINING_JSON).is_file() {
        out.push(dir.to_owned());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && entry.file_name() != "checkpoints" {
            collect_runs(&path, depth - 1, out);
        }
    }
}

/// The adapter in run folder `dir`; what cannot be read goes into its notes.
pub fn read(dir: &Path) -> TrainedAdapter {
    let mut adapter = TrainedAdapter {
        dir: dir.to_owned(),
        kind: "unknown".into(),
        base: None,
        steps: None,
        tokens: None,
        wall_seconds: None,
        final_loss: None,
        formats: Vec::new(),
        lineage: None,
        notes: Vec::new(),
    };
    if dir.join("adapter.gguf").is_file() {
        adapter.formats.push("gguf");
    }
    if dir.join("adapter_model.safetensors").is_file() {
        adapter.formats.push("peft");
    }
    let path = dir.join(TRAINING_JSON);
    let record = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
    let record = match record {
        Ok(r) => r,
        Err(why) => {
            adapter
                .notes
                .push(format!("{} does not read: {why}", path.display()));
            return adapter;
        }
    };
    let text = |key: &str| record.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    adapter.kind = text("kind").unwrap_or_else(|| "unknown".into());
    adapter.base = text("base");
    adapter.steps = record.get("steps").and_then(|v| v.as_u64());
    adapter.tokens = record.get("tokens").and_then(|v| v.as_u64());
    adapter.wall_seconds = record.get("wall_seconds").and_then(|v| v.as_f64());
    adapter.final_loss = record.get("final_loss").and_then(|v| v.as_f64());
    match ragtune_raft::trained_run(&path) {
        Ok(Some(run)) => {
            adapter.kind = "raft".into();
            adapter.lineage = Some(run.lineage);
            adapter.notes.extend(run.notes);
        }
        Ok(None) => {}
        Err(e) => adapter.notes.push(e.to_string()),
    }
    adapter
}

/// Compares the document versions `lineage` records with those `store` holds now. Per
/// example when the RAFT manifest is still there, else per document.
pub fn staleness(lineage: &Lineage, store: &Store) -> Result<Staleness> {
    let mut current: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for doc in &lineage.documents {
        current.insert(&doc.source, store.document(&doc.source)?.map(|d| d.hash));
    }
    let (mut changed, mut deleted) = (0, 0);
    for doc in &lineage.documents {
        match &current[doc.source.as_str()] {
            None => deleted += 1,
            Some(hash) if *hash != doc.hash => changed += 1,
            Some(_) => {}
        }
    }
    let affected_examples = manifest_examples(&lineage.manifest).map(|examples| {
        examples
            .iter()
            .filter(|e| match current.get(e.source.as_str()) {
                Some(hash) => hash.as_deref() != Some(e.content_hash.as_str()),
                // Not among the lineage's documents (an older record): look it up.
                None => store
                    .document(&e.source)
                    .ok()
                    .flatten()
                    .is_none_or(|d| d.hash != e.content_hash),
            })
            .count() as u32
    });
    Ok(Staleness {
        documents: lineage.documents.len() as u32,
        changed,
        deleted,
        affected_examples,
    })
}

fn manifest_examples(path: &Path) -> Option<Vec<ExampleRecord>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        examples: Vec<ExampleRecord>,
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Manifest>(&text)
        .ok()
        .map(|m| m.examples)
}
