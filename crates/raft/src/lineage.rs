//! What a training run records about the RAFT data it learned from ([`lineage`], written into
//! training.json by `ragtune train sft`), and how inference recognises a RAFT adapter by that
//! record ([`trained_run`]).

use crate::build::{MANIFEST_FILE, MANIFEST_KIND};
use crate::error::{Error, Result};
use crate::infer::PROMPT_FORMAT;
use crate::prompt::AnswerFormat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The key of the RAFT record in a run's training.json.
pub const TRAINING_KEY: &str = "raft";

/// A document the training examples' oracles came from, by its content hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocumentRef {
    pub source: String,
    pub hash: String,
}

/// The RAFT data behind an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// [`PROMPT_FORMAT`] when the data was trained on.
    pub prompt_format: String,
    /// The build's manifest.json.
    pub manifest: PathBuf,
    /// The knowledge base the data was built from.
    pub kb: String,
    pub embedder: Option<String>,
    /// Passages per example (distractors + 1).
    pub passages: Option<usize>,
    pub abstain: Option<bool>,
    /// What the targets held (records from before the option are chain of thought).
    #[serde(default)]
    pub answer_format: AnswerFormat,
    /// The oracles' documents, sorted, each once.
    pub documents: Vec<DocumentRef>,
}

/// The RAFT record of training data: `Some` when `data` sits next to the manifest.json of a
/// `ragtune raft build`, `None` for any other data (no manifest, or someone else's).
pub fn lineage(data: &Path) -> Result<Option<Lineage>> {
    let dir = data.parent().unwrap_or(Path::new("."));
    let path = dir.join(MANIFEST_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None);
    };
    if m.get("kind").and_then(|k| k.as_str()) != Some(MANIFEST_KIND) {
        return Ok(None);
    }
    let bad = |reason: &str| Error::TrainingRecord {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let examples = m
        .get("examples")
        .and_then(|e| e.as_array())
        .ok_or_else(|| bad("the manifest has no examples list"))?;
    let documents: BTreeSet<DocumentRef> = examples
        .iter()
        .filter_map(|e| {
            Some(DocumentRef {
                source: e.get("source")?.as_str()?.to_string(),
                hash: e.get("content_hash")?.as_str()?.to_string(),
            })
        })
        .collect();
    let options = m.get("options");
    Ok(Some(Lineage {
        prompt_format: PROMPT_FORMAT.to_string(),
        manifest: std::path::absolute(&path).unwrap_or(path.clone()),
        kb: m
            .get("kb")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string(),
        embedder: m
            .get("embedder")
            .and_then(|e| e.as_str())
            .map(str::to_string),
        passages: options
            .and_then(|o| o.get("distractors"))
            .and_then(|d| d.as_u64())
            .map(|d| d as usize + 1),
        abstain: options
            .and_then(|o| o.get("abstain"))
            .and_then(|a| a.as_bool()),
        answer_format: match options.and_then(|o| o.get("answer_format")) {
            None => AnswerFormat::Cot,
            Some(f) => serde_json::from_value(f.clone())
                .map_err(|e| bad(&format!("its answer_format does not read ({e})")))?,
        },
        documents: documents.into_iter().collect(),
    }))
}

/// A training run whose adapter learned from RAFT data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedRun {
    pub lineage: Lineage,
    /// The base model it was trained on, as training.json names it.
    pub base: Option<PathBuf>,
    /// Things worth telling the user (e.g. the manifest is gone).
    pub notes: Vec<String>,
}

/// Reads a run's training.json: `None` when there is none or it records no RAFT data; an error
/// when it cannot be read or was trained on another [`PROMPT_FORMAT`].
pub fn trained_run(training_json: &Path) -> Result<Option<TrainedRun>> {
    let bytes = match fs_err::read(training_json) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    };
    let bad = |reason: String| Error::TrainingRecord {
        path: training_json.to_owned(),
        reason,
    };
    let record: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(raft) = record.get(TRAINING_KEY) else {
        return Ok(None);
    };
    let lineage: Lineage = serde_json::from_value(raft.clone())
        .map_err(|e| bad(format!("its \"{TRAINING_KEY}\" record does not read ({e})")))?;
    if lineage.prompt_format != PROMPT_FORMAT {
        return Err(Error::PromptFormat {
            path: training_json.to_owned(),
            trained: lineage.prompt_format,
            current: PROMPT_FORMAT,
        });
    }
    let mut notes = Vec::new();
    if !lineage.manifest.is_file() {
        notes.push(format!(
            "the RAFT manifest {} is gone; the adapter's lineage is only what {} records",
            lineage.manifest.display(),
            training_json.display()
        ));
    }
    let base = record
        .get("base")
        .and_then(|b| b.as_str())
        .map(PathBuf::from);
    Ok(Some(TrainedRun {
        lineage,
        base,
        notes,
    }))
}
