//! [`build`]: questions and a knowledge base in, RAFT training files out.

use crate::error::{Error, Result};
use crate::oracle::{KbChunk, Oracle, SkipReason, find_oracle, find_passage};
use crate::prompt::{
    AnswerFormat, RaftPassage, abstain_answer, bare_answer, cot_answer, cot_answer_unshown,
    raft_prompt,
};
use ragtune_answer::eval::{Decision, QaItem, SplitMix64};
use ragtune_answer::sanitize::sanitize;
use ragtune_core::{ChatMessage, Embedder, Query, Retriever, SearchMode};
use ragtune_index::KnowledgeBase;
use ragtune_retrieve::KbRetriever;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The training file, in the OpenAI messages format `ragtune train sft --data` reads.
pub const TRAIN_FILE: &str = "train.jsonl";
/// The same examples with the columns of gorilla's `raft.py`.
pub const GORILLA_FILE: &str = "gorilla.jsonl";
/// What was built from what.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The `kind` of our manifest, which marks a folder as a previous build.
pub const MANIFEST_KIND: &str = "ragtune-raft-build";

/// Where distractors come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistractorSource {
    /// Hard negatives: the top hybrid-retrieval hits for the question that are not the oracle.
    #[default]
    Retriever,
    /// Uniform draws among the other chunks (the RAFT paper's choice, for comparison).
    Random,
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// SQuAD or PubMedQA PQA-L JSON (`.json`), or question/answers JSONL (`.jsonl`).
    pub questions: PathBuf,
    /// The output folder (created; a previous build there is replaced).
    pub out: PathBuf,
    /// Distractors per example (k); examples without the oracle show k + 1.
    pub distractors: usize,
    /// Share of examples that show the oracle (0 to 1).
    pub p: f64,
    pub seed: u64,
    /// Only the first `limit` questions of the file.
    pub limit: Option<usize>,
    pub distractors_from: DistractorSource,
    /// Examples without the oracle are taught to refuse instead of answering, and so are
    /// unanswerable questions (SQuAD v2.0's `is_impossible`, or no answers) shown their own
    /// passage among the distractors; without it those questions are skipped.
    pub abstain: bool,
    /// Chain-of-thought targets (the default) or the answer alone.
    pub answer_format: AnswerFormat,
}

impl BuildSpec {
    pub fn new(questions: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        BuildSpec {
            questions: questions.into(),
            out: out.into(),
            distractors: 4,
            p: 0.8,
            seed: 0,
            limit: None,
            distractors_from: DistractorSource::Retriever,
            abstain: false,
            answer_format: AnswerFormat::Cot,
        }
    }
}

/// One example as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRecord {
    pub id: String,
    pub question_id: String,
    /// The oracle is among the passages shown. For an unanswerable question the "oracle" is
    /// its own passage, which is always shown and lacks the answer.
    pub oracle_present: bool,
    /// False for an unanswerable question taught the refusal (`abstain`).
    #[serde(default = "answerable_by_default")]
    pub answerable: bool,
    /// The oracle's document and its content hash in the knowledge base.
    pub source: String,
    pub content_hash: String,
    pub oracle_chunk: i64,
    /// Chunk ids in the order shown.
    pub passages: Vec<i64>,
}

fn answerable_by_default() -> bool {
    true
}

/// A question that gave no example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub question_id: String,
    pub reason: SkipReason,
}

/// What [`build`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub questions: usize,
    pub examples: usize,
    pub with_oracle: usize,
    pub without_oracle: usize,
    /// Examples of unanswerable questions (`abstain`), counted in neither of the two above.
    pub unanswerable: usize,
    /// Examples with fewer distractors than asked (the knowledge base is too small).
    pub short_of_distractors: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
    pub skips: Vec<Skip>,
    pub records: Vec<ExampleRecord>,
    pub files: Vec<PathBuf>,
}

/// Builds RAFT examples from `spec.questions` over `kb` (searched with `embedder`, the one that
/// built it) and writes `train.jsonl`, `gorilla.jsonl` and `manifest.json` into `spec.out`.
pub fn build(spec: &BuildSpec, kb: &KnowledgeBase, embedder: &dyn Embedder) -> Result<BuildReport> {
    check_options(spec)?;
    let kb_name = kb
        .dir()
        .map_or_else(|| "(in memory)".to_string(), |d| d.display().to_string());
    let chunks = load_chunks(kb)?;
    if chunks.is_empty() {
        return Err(Error::EmptyKnowledgeBase { kb: kb_name });
    }
    check_out(&spec.out)?;
    let mut items = load_questions(&spec.questions)?;
    if let Some(limit) = spec.limit {
        items.truncate(limit);
    }
    if spec.answer_format == AnswerFormat::Cot && items.iter().any(|i| i.decision.is_some()) {
        return Err(Error::Option {
            option: "--answer-format",
            reason: format!(
                "{} holds yes/no/maybe questions (PubMedQA), whose answer is a label, not a \
                 span a chain of thought could quote: build them with --answer-format answer",
                spec.questions.display()
            ),
        });
    }
    let hashes: HashMap<i64, (String, String)> = kb
        .documents()?
        .into_iter()
        .map(|d| (d.id, (d.source, d.hash)))
        .collect();
    let retriever =
        match spec.distractors_from {
            DistractorSource::Retriever => Some(KbRetriever::new(kb, embedder).map_err(
                |source| Error::Retriever {
                    kb: kb_name.clone(),
                    source,
                },
            )?),
            DistractorSource::Random => None,
        };
    let by_id: HashMap<i64, usize> = chunks.iter().enumerate().map(|(i, c)| (c.id, i)).collect();

    let mut rng = SplitMix64::new(spec.seed);
    let mut report = BuildReport {
        questions: items.len(),
        examples: 0,
        with_oracle: 0,
        without_oracle: 0,
        unanswerable: 0,
        short_of_distractors: 0,
        skipped: BTreeMap::new(),
        skips: Vec::new(),
        records: Vec::new(),
        files: Vec::new(),
    };
    let mut train = String::new();
    let mut gorilla = String::new();
    for item in &items {
        let found = if let Some(label) = item.decision {
            find_passage(item, &chunks).map(|chunk| Evidence::Label { chunk, label })
        } else if item.answerable() || !spec.abstain {
            find_oracle(item, &chunks).map(Evidence::Answer)
        } else {
            find_passage(item, &chunks).map(Evidence::Unanswerable)
        };
        let evidence = match found {
            Ok(e) => e,
            Err(reason) => {
                *report.skipped.entry(reason).or_default() += 1;
                report.skips.push(Skip {
                    question_id: item.id.clone(),
                    reason,
                });
                continue;
            }
        };
        let answerable = !matches!(evidence, Evidence::Unanswerable(_));
        // An unanswerable question's passage is always shown: retrieval finds it at answer time.
        let (oracle_index, present) = match &evidence {
            Evidence::Answer(Oracle { chunk, .. }) | Evidence::Label { chunk, .. } => {
                (*chunk, rng.next_f64() < spec.p)
            }
            Evidence::Unanswerable(chunk) => (*chunk, true),
        };
        let need = spec.distractors + usize::from(!present);
        let excluded = |c: &KbChunk| {
            let o = &chunks[oracle_index];
            c.id == o.id
                || c.text == o.text
                || match &evidence {
                    Evidence::Answer(a) => c.text.contains(&a.quote),
                    // A label is drawn from the whole abstract: its other chunks are evidence too.
                    Evidence::Label { .. } => c.doc_id == o.doc_id,
                    Evidence::Unanswerable(_) => false,
                }
        };
        let mut shown: Vec<usize> = match &retriever {
            Some(r) => hard_negatives(r, item, need, &chunks, &by_id, &excluded)?,
            None => random_negatives(&mut rng, need, &chunks, &excluded),
        };
        if shown.len() < need {
            report.short_of_distractors += 1;
        }
        if present {
            shown.push(oracle_index);
        }
        rng.shuffle(&mut shown);

        let n = report.examples;
        let id = format!("raft-{n}");
        let passages: Vec<RaftPassage<'_>> = shown
            .iter()
            .map(|&i| RaftPassage {
                source: &chunks[i].source,
                page: chunks[i].page,
                text: &chunks[i].text,
            })
            .collect();
        let mut messages = raft_prompt(&item.question, &passages, spec.answer_format);
        let target = match &evidence {
            Evidence::Answer(oracle) => target(spec, present, &shown, oracle),
            Evidence::Label { .. } if !present && spec.abstain => {
                abstain_answer(spec.answer_format)
            }
            Evidence::Label { label, .. } => bare_answer(label.as_str()),
            Evidence::Unanswerable(_) => abstain_answer(spec.answer_format),
        };
        let instruction = messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        messages.push(ChatMessage::assistant(target.clone()));
        push_line(&mut train, &json!({ "messages": messages }));
        push_line(
            &mut gorilla,
            &json!({
                "id": id,
                "type": "general",
                "question": sanitize(&item.question),
                "context": {
                    "title": [passages.iter().map(|p| p.source).collect::<Vec<_>>()],
                    "sentences": [passages.iter().map(|p| p.text).collect::<Vec<_>>()],
                },
                "oracle_context": chunks[oracle_index].text,
                "cot_answer": target,
                "instruction": instruction,
            }),
        );
        let oracle_chunk = &chunks[oracle_index];
        let (source, content_hash) = hashes
            .get(&oracle_chunk.doc_id)
            .cloned()
            .unwrap_or_else(|| (oracle_chunk.source.clone(), String::new()));
        report.records.push(ExampleRecord {
            id,
            question_id: item.id.clone(),
            oracle_present: present,
            answerable,
            source,
            content_hash,
            oracle_chunk: oracle_chunk.id,
            passages: shown.iter().map(|&i| chunks[i].id).collect(),
        });
        report.examples += 1;
        if !answerable {
            report.unanswerable += 1;
        } else if present {
            report.with_oracle += 1;
        } else {
            report.without_oracle += 1;
        }
    }

    let manifest = json!({
        "kind": MANIFEST_KIND,
        "kb": kb_name,
        "embedder": kb.embedder_info().name,
        "questions_file": spec.questions,
        "options": {
            "distractors": spec.distractors,
            "p": spec.p,
            "limit": spec.limit,
            "distractors_from": spec.distractors_from,
            "abstain": spec.abstain,
            "answer_format": spec.answer_format,
        },
        "seed": spec.seed,
        "counts": {
            "questions": report.questions,
            "examples": report.examples,
            "with_oracle": report.with_oracle,
            "without_oracle": report.without_oracle,
            "unanswerable": report.unanswerable,
            "short_of_distractors": report.short_of_distractors,
            "skipped": report.skipped.iter().map(|(r, n)| (serde_json::to_value(r).expect("a unit enum").as_str().unwrap_or_default().to_string(), *n)).collect::<BTreeMap<_, _>>(),
        },
        "skipped": report.skips.iter().map(|s| json!({
            "question_id": s.question_id,
            "reason": s.reason,
            "why": s.reason.describe(),
        })).collect::<Vec<_>>(),
        "examples": report.records,
    });
    let mut manifest_text = serde_json::to_string_pretty(&manifest).expect("JSON values serialize");
    manifest_text.push('\n');
    report.files = publish(
        &spec.out,
        &[
            (TRAIN_FILE, &train),
            (GORILLA_FILE, &gorilla),
            (MANIFEST_FILE, &manifest_text),
        ],
    )?;
    Ok(report)
}

/// Marks a folder as a build's output from before its first file is written, so that a
/// build killed before its manifest exists is still recognised (and replaced) as ours.
const MARKER_FILE: &str = ".ragtune-raft-build";

/// Writes `files` (the manifest last) so that a kill at any point leaves a folder the next
/// build takes over, and never a manifest beside data it does not describe: every file is
/// written beside its final name first, then the old manifest goes, the data files are renamed
/// into place, and the new manifest comes last.
fn publish(out: &Path, files: &[(&str, &String)]) -> Result<Vec<PathBuf>> {
    fs_err::create_dir_all(out).map_err(Error::Io)?;
    fs_err::write(out.join(MARKER_FILE), MANIFEST_KIND).map_err(Error::Io)?;
    let mut staged = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        let tmp = path.with_extension("partial");
        fs_err::write(&tmp, text).map_err(Error::Io)?;
        staged.push((tmp, path));
    }
    match fs_err::remove_file(out.join(MANIFEST_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::Io(e)),
        _ => {}
    }
    let mut published = Vec::new();
    for (tmp, path) in staged {
        fs_err::rename(&tmp, &path).map_err(Error::Io)?;
        published.push(path);
    }
    Ok(published)
}

fn check_options(spec: &BuildSpec) -> Result<()> {
    if !(0.0..=1.0).contains(&spec.p) {
        return Err(Error::Option {
            option: "--p",
            reason: format!(
                "must be between 0 and 1 (the share of examples that show the oracle), got {}",
                spec.p
            ),
        });
    }
    if spec.distractors == 0 {
        return Err(Error::Option {
            option: "--distractors",
            reason: "must be at least 1: RAFT examples mix the oracle with distractors".into(),
        });
    }
    if spec.limit == Some(0) {
        return Err(Error::Option {
            option: "--limit",
            reason: "must be at least 1 (leave it out to use every question)".into(),
        });
    }
    Ok(())
}

/// An output folder must be new, empty, or a previous build (its manifest or marker says so,
/// the marker also when the build was killed before its manifest was written).
fn check_out(out: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return if out.exists() {
            Err(Error::OutNotEmpty {
                path: out.to_owned(),
            })
        } else {
            Ok(())
        };
    };
    if entries.next().is_none() {
        return Ok(());
    }
    let marked = std::fs::read(out.join(MARKER_FILE)).is_ok_and(|b| b == MANIFEST_KIND.as_bytes());
    let ours = marked
        || std::fs::read(out.join(MANIFEST_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(MANIFEST_KIND));
    if ours {
        Ok(())
    } else {
        Err(Error::OutNotEmpty {
            path: out.to_owned(),
        })
    }
}

/// Questions from SQuAD or PubMedQA PQA-L JSON, or question/answers JSONL, by extension, in
/// file order.
pub fn load_questions(path: &Path) -> Result<Vec<QaItem>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("json" | "jsonl")) {
        return Err(Error::QuestionsFormat {
            path: path.to_owned(),
        });
    }
    let items = ragtune_datasets::load_questions(path)?;
    if items.is_empty() {
        return Err(Error::NoQuestions {
            path: path.to_owned(),
        });
    }
    Ok(items)
}

/// Every chunk of the knowledge base, by id, with its text as the prompt shows it.
pub fn load_chunks(kb: &KnowledgeBase) -> Result<Vec<KbChunk>> {
    let mut ids: Vec<i64> = kb
        .store()
        .chunk_documents()?
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    ids.sort_unstable();
    Ok(kb
        .chunks(&ids)?
        .into_iter()
        .map(|c| KbChunk {
            id: c.id,
            doc_id: c.doc_id,
            source: c.source,
            page: c.page,
            text: sanitize(&c.text),
        })
        .filter(|c| !c.text.is_empty())
        .collect())
}

/// The top hybrid hits for the question that are not excluded, best first.
fn hard_negatives(
    retriever: &KbRetriever<'_>,
    item: &QaItem,
    need: usize,
    chunks: &[KbChunk],
    by_id: &HashMap<i64, usize>,
    excluded: &dyn Fn(&KbChunk) -> bool,
) -> Result<Vec<usize>> {
    let depth = (need + 1) * 4;
    let hits = retriever
        .retrieve(&Query::new(
            item.question.clone(),
            depth,
            SearchMode::Hybrid,
        ))
        .map_err(|source| Error::Retrieve {
            question: item.question.clone(),
            source,
        })?;
    let mut out = Vec::with_capacity(need);
    let mut seen = HashSet::new();
    for hit in hits {
        let Some(&i) = by_id.get(&hit.chunk_id) else {
            continue;
        };
        if excluded(&chunks[i]) || !seen.insert(chunks[i].text.as_str()) {
            continue;
        }
        out.push(i);
        if out.len() == need {
            break;
        }
    }
    Ok(out)
}

/// `need` distinct chunks drawn uniformly among those not excluded.
fn random_negatives(
    rng: &mut SplitMix64,
    need: usize,
    chunks: &[KbChunk],
    excluded: &dyn Fn(&KbChunk) -> bool,
) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..chunks.len())
        .filter(|&i| !excluded(&chunks[i]))
        .collect();
    let n = need.min(pool.len());
    for i in 0..n {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool
}

/// What an example is built around.
enum Evidence {
    /// The chunk that holds the gold answer.
    Answer(Oracle),
    /// A yes/no/maybe question's own passage (the chunk holding most of its abstract) and its
    /// label, the target (answer-only: a label has no span to quote).
    Label { chunk: usize, label: Decision },
    /// An unanswerable question's own passage (index into the chunks), taught the refusal.
    Unanswerable(usize),
}

fn target(spec: &BuildSpec, present: bool, shown: &[usize], oracle: &Oracle) -> String {
    if !present && spec.abstain {
        return abstain_answer(spec.answer_format);
    }
    if spec.answer_format == AnswerFormat::Answer {
        return bare_answer(&oracle.answer);
    }
    // Without the oracle (and without --abstain) the model still learns the oracle's answer,
    // as in RAFT; the document number then points at no shown passage, so it is left out.
    match shown.iter().position(|&i| i == oracle.chunk) {
        Some(pos) => cot_answer(pos + 1, &oracle.quote, &oracle.answer),
        None => cot_answer_unshown(&oracle.quote, &oracle.answer),
    }
}

fn push_line(out: &mut String, value: &serde_json::Value) {
    out.push_str(&serde_json::to_string(value).expect("JSON values serialize"));
    out.push('\n');
}
