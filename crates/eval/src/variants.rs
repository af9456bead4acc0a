//! `ragtune compare`'s workflow: every variant (an approach on a model, perhaps with an
//! adapter) answers the same questions, and each answer becomes the outcome that
//! `ragtune-compare`'s report reads. A variant that cannot run (a missing adapter, a model
//! that does not load) is reported as failed with its reason; the others still run.

use crate::{Error, Result, evaluate_mode, evaluate_raft};
use ragtune_answer::citation::match_form;
use ragtune_answer::eval::{Evaluation, QuestionResult};
use ragtune_answer::{AskOptions, ExamplePool, Mode};
use ragtune_compare::{Approach, QuestionOutcome, TrainingCost, VariantRun};
use ragtune_core::{Generator, Retriever};
use ragtune_datasets::QaItem;
use ragtune_raft::RaftOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The training summary a run folder holds (written by `ragtune train`).
pub const TRAINING_JSON: &str = "training.json";
/// The loss history a run folder holds.
pub const LOSS_CSV: &str = "loss.csv";

/// A variant as the user names it: `APPROACH[:ADAPTER][@MODEL][,top_k=N]`, where APPROACH is
/// `closed-book`, `few-shot`, `rag`, `sft`, `sft+rag`, `raft` or `cpt+rag`; the fine-tuned
/// ones name their adapter (a `ragtune train` output folder or its adapter.gguf) and the others
/// must not. MODEL is a catalogue name or a .gguf file; without it an adapter's variant runs on
/// the base it was trained on and the others on the default model. `top_k` sets how many
/// passages this variant's prompts show (an SFT+RAG adapter trained on one passage is best
/// asked with one), over `--top-k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSpec {
    /// Unique in a comparison; defaults to the spec with the model filled in.
    pub name: Option<String>,
    pub spec: String,
    pub approach: Approach,
    pub adapter: Option<PathBuf>,
    pub model: Option<String>,
    pub top_k: Option<usize>,
}

impl VariantSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Config(format!(
                "variant {spec:?}: {why}; write APPROACH[:ADAPTER][@MODEL][,top_k=N], e.g. `rag`, \
                 `rag@smollm2-135m-instruct,top_k=1` or `raft:runs/raft`"
            ))
        };
        let (head, settings) = spec.split_once(',').unwrap_or((spec, ""));
        let mut top_k = None;
        for setting in settings.split(',').filter(|s| !s.trim().is_empty()) {
            match setting.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("top_k", v)) => match v.parse::<usize>() {
                    Ok(k) if k > 0 => top_k = Some(k),
                    _ => {
                        return Err(bad(&format!(
                            "top_k must be a whole number above 0, not {v:?}"
                        )));
                    }
                },
                _ => return Err(bad(&format!("unknown setting {setting:?} (only top_k=N)"))),
            }
        }
        let (rest, model) = match head.rsplit_once('@') {
            Some((rest, model)) if !model.is_empty() => (rest, Some(model.to_owned())),
            Some(_) => return Err(bad("nothing after @")),
            None => (head, None),
        };
        let (approach, adapter) = match rest.split_once(':') {
            Some((a, adapter)) if !adapter.is_empty() => (a, Some(PathBuf::from(adapter))),
            Some(_) => return Err(bad("nothing after :")),
            None => (rest, None),
        };
        let approach = match approach.trim() {
            "closed-book" | "closed_book" => Approach::ClosedBook,
            "few-shot" | "few_shot" => Approach::FewShot,
            "rag" => Approach::Rag,
            "sft" => Approach::Sft,
            "sft+rag" | "sft_rag" => Approach::SftRag,
            "raft" => Approach::Raft,
            "cpt+rag" | "cpt_rag" => Approach::CptRag,
            other => {
                return Err(bad(&format!(
                    "unknown approach {other:?} (closed-book, few-shot, rag, sft, sft+rag, raft, cpt+rag)"
                )));
            }
        };
        if !approach.is_fine_tuned() && adapter.is_some() {
            return Err(bad(&format!(
                "{approach} takes no adapter (use sft, sft+rag, raft or cpt+rag)"
            )));
        }
        Ok(Self {
            name: None,
            spec: spec.to_owned(),
            approach,
            adapter,
            model,
            top_k,
        })
    }

    /// A fine-tuned approach names its adapter, unless `--train` builds one.
    pub fn check_adapter(&self) -> Result<()> {
        if self.approach.is_fine_tuned() && self.adapter.is_none() {
            return Err(Error::Config(format!(
                "variant {:?}: {} needs an adapter after : (a `ragtune train` output folder), \
                 or --train QUESTIONS to build and train one",
                self.spec, self.approach
            )));
        }
        Ok(())
    }

    /// The answerer mode the approach prompts with (RAFT has its own prompt: `None`).
    pub fn mode(&self) -> Option<Mode> {
        match self.approach {
            Approach::ClosedBook | Approach::Sft => Some(Mode::ClosedBook),
            Approach::FewShot => Some(Mode::FewShot),
            Approach::Rag | Approach::SftRag | Approach::CptRag => Some(Mode::Rag),
            Approach::Raft => None,
        }
    }

    /// The run folder behind the adapter: the folder named, or the one holding the .gguf file
    /// named.
    pub fn run_dir(&self) -> Option<PathBuf> {
        let adapter = self.adapter.as_ref()?;
        let is_file = adapter.is_file()
            || adapter
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        Some(if is_file {
            adapter.parent().unwrap_or(Path::new(".")).to_owned()
        } else {
            adapter.clone()
        })
    }
}

/// Where variants get their models: the binary loads llama.cpp models; tests hand in fakes.
pub trait Models {
    /// A generator for `model` (a catalogue name or a .gguf path) applying `adapter` to every
    /// request when given. The error says what went wrong.
    fn generator(
        &self,
        model: &str,
        adapter: Option<&Path>,
    ) -> std::result::Result<Box<dyn Generator + '_>, String>;
    /// How reports name the model file at `path` (its catalogue name when it is one).
    fn name_of(&self, path: &Path) -> String;
    /// Perplexity of `model` (with `adapter`) on `text`, in windows of `window` tokens.
    fn perplexity(
        &self,
        model: &str,
        adapter: Option<&Path>,
        text: &str,
        window: u32,
    ) -> std::result::Result<f64, String>;
}

/// What every variant shares: the questions, where passages and examples come from, and how
/// answers are built.
pub struct Context<'a> {
    pub items: &'a [QaItem],
    pub retriever: Option<&'a dyn Retriever>,
    pub pool: Option<&'a ExamplePool<'a>>,
    /// Options for the answerer's modes (the mode is set per variant).
    pub options: &'a AskOptions,
    /// `--top-k` as the user gave it: RAFT adapters otherwise show as many passages as they
    /// were trained on.
    pub top_k: Option<usize>,
    /// The model of variants that name none and have no adapter.
    pub default_model: &'a str,
    /// One question at a time (the latency a user waits); else one batch (throughput).
    pub sequential: bool,
    /// A pattern every answer must match (format adherence), when the user gave one.
    pub format: Option<&'a crate::FormatCheck>,
}

/// Runs one variant over the context's questions; never fails: a variant that cannot run is
/// returned with `failed` set.
pub fn run_variant(spec: &VariantSpec, models: &dyn Models, ctx: &Context<'_>) -> VariantRun {
    let started = Instant::now();
    let cpu = ragtune_core::process::cpu_seconds();
    let model = model_of(spec, models, ctx);
    let mut run = VariantRun {
        name: name_of(spec, &model),
        spec: spec.spec.clone(),
        approach: spec.approach,
        model: model.clone(),
        adapter: spec.adapter.as_ref().map(|a| a.display().to_string()),
        outcomes: Vec::new(),
        wall_seconds: 0.0,
        cpu_seconds: 0.0,
        batch_throughput_qps: None,
        training: spec.run_dir().and_then(|dir| training_cost(&dir)),
        failed: None,
        abstention_curve: Vec::new(),
    };
    match evaluate_variant(spec, &model, models, ctx) {
        Ok(evaluation) => {
            let grounded = spec.approach.is_grounded();
            run.outcomes = evaluation
                .results
                .iter()
                .map(|r| outcome_of(r, grounded, spec.approach, ctx.format))
                .collect();
            run.abstention_curve = evaluation
                .report
                .curve
                .iter()
                .filter_map(|p| {
                    Some((
                        p.false_abstention_rate_answerable?,
                        p.abstention_rate_unanswerable?,
                    ))
                })
                .collect();
            if evaluation.report.batched {
                run.batch_throughput_qps =
                    Some(ctx.items.len() as f64 / (evaluation.report.wall_ms / 1000.0).max(1e-9));
            }
        }
        Err(e) => run.failed = Some(e),
    }
    run.wall_seconds = started.elapsed().as_secs_f64();
    run.cpu_seconds = (ragtune_core::process::cpu_seconds() - cpu).max(0.0);
    run
}

pub(crate) fn evaluate_variant(
    spec: &VariantSpec,
    model: &str,
    models: &dyn Models,
    ctx: &Context<'_>,
) -> std::result::Result<Evaluation, String> {
    if let Some(adapter) = &spec.adapter
        && !adapter.exists()
    {
        return Err(format!("the adapter {} does not exist", adapter.display()));
    }
    let raft_run = match (spec.approach, spec.run_dir()) {
        (Approach::Raft, Some(dir)) => Some(
            ragtune_raft::trained_run(&dir.join(TRAINING_JSON))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "{} was not trained on `ragtune raft build` data (its training.json has no RAFT record); use sft or sft+rag",
                        dir.display()
                    )
                })?,
        ),
        _ => None,
    };
    let generator = models.generator(model, spec.adapter.as_deref())?;
    let needs_passages = spec.approach.is_grounded();
    let retriever = match (needs_passages, ctx.retriever) {
        (true, None) => {
            return Err(
                "this approach retrieves passages, but no knowledge base or corpus was given"
                    .into(),
            );
        }
        (true, r) => r,
        (false, _) => None,
    };
    let evaluation = match (&raft_run, retriever) {
        (Some(run), Some(retriever)) => {
            let top_k = spec
                .top_k
                .or(ctx.top_k)
                .or(run.lineage.passages)
                .unwrap_or(ctx.options.top_k);
            let options = RaftOptions {
                search: ctx.options.search,
                ..RaftOptions::for_format(run.lineage.answer_format, top_k, ctx.options.max_tokens)
            };
            evaluate_raft(generator.as_ref(), retriever, &options, ctx.items)
        }
        _ => {
            let mode = spec.mode().unwrap_or(Mode::Rag);
            let pool = if mode == Mode::FewShot {
                Some(
                    ctx.pool
                        .ok_or("few-shot needs examples, but none were given")?,
                )
            } else {
                None
            };
            let options = AskOptions {
                mode,
                top_k: spec.top_k.unwrap_or(ctx.options.top_k),
                ..ctx.options.clone()
            };
            evaluate_mode(
                generator.as_ref(),
                retriever,
                pool,
                options,
                ctx.items,
                ctx.sequential,
            )
        }
    };
    evaluation.map_err(|e| e.to_string())
}

/// The model a variant runs on: as named, else its adapter's training base, else the default.
fn model_of(spec: &VariantSpec, models: &dyn Models, ctx: &Context<'_>) -> String {
    if let Some(model) = &spec.model {
        return model.clone();
    }
    let base = spec.run_dir().and_then(|dir| {
        let text = std::fs::read_to_string(dir.join(TRAINING_JSON)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.get("base")?.as_str().map(PathBuf::from)
    });
    match base {
        Some(path) => models.name_of(&path),
        None => ctx.default_model.to_owned(),
    }
}

fn name_of(spec: &VariantSpec, model: &str) -> String {
    if let Some(name) = &spec.name {
        return name.clone();
    }
    let approach = spec.spec.split(['@', ':', ',']).next().unwrap_or_default();
    let adapter = spec
        .run_dir()
        .and_then(|d| d.file_name().map(|n| format!(":{}", n.to_string_lossy())))
        .unwrap_or_default();
    let top_k = spec
        .top_k
        .map(|k| format!(",top_k={k}"))
        .unwrap_or_default();
    format!("{approach}{adapter}@{model}{top_k}")
}

/// One question's result as the report reads it. `unsupported`: answered and wrong for
/// approaches without passages and for yes/no/maybe questions; for grounded approaches, an
/// answer that occurs in no passage of its prompt (what grounding was meant to prevent).
pub fn outcome_of(
    r: &QuestionResult,
    grounded: bool,
    approach: Approach,
    format: Option<&crate::FormatCheck>,
) -> QuestionOutcome {
    let labelled = r.gold_decision.is_some();
    let correct = if labelled {
        r.predicted_decision == r.gold_decision
    } else {
        r.exact_match >= 1.0
    };
    let a = &r.answer;
    let abstained = a.abstention.abstained;
    let unsupported = !abstained
        && if grounded && !labelled {
            let said = match_form(&a.answer_text);
            !said.is_empty()
                && !a
                    .passages
                    .iter()
                    .filter(|p| p.number.is_some())
                    .any(|p| match_form(&p.hit.text).contains(&said))
        } else {
            !correct
        };
    let format_ok = match (format, approach) {
        (Some(check), _) => Some(check.check(&a.answer)),
        // A RAFT model was trained to end with `<ANSWER>:`; whether it does is its format.
        (None, Approach::Raft) => {
            (!a.model_output.is_empty()).then(|| a.model_output.contains("<ANSWER>:"))
        }
        (None, _) => None,
    };
    QuestionOutcome {
        id: r.id.clone(),
        answerable: r.answerable,
        exact_match: r.exact_match,
        f1: r.f1,
        correct,
        labelled,
        gold_label: r.gold_decision.map(|d| d.as_str().to_owned()),
        said_label: r.predicted_decision.map(|d| d.as_str().to_owned()),
        abstained,
        unsupported,
        citations: a.citations.len() as u32,
        valid_citations: a.citations.iter().filter(|c| c.valid).count() as u32,
        latency_ms: a.timings.total_ms,
        prompt_tokens: u64::from(a.tokens.prompt),
        completion_tokens: u64::from(a.tokens.completion),
        format_ok,
    }
}

/// What training the run in `dir` cost, from its training.json and loss.csv (`None` when it
/// has no training.json).
pub fn training_cost(dir: &Path) -> Option<TrainingCost> {
    let text = std::fs::read_to_string(dir.join(TRAINING_JSON)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let number = |key: &str| v.get(key).and_then(serde_json::Value::as_f64);
    let loss_curve = std::fs::read_to_string(dir.join(LOSS_CSV))
        .map(|csv| {
            csv.lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split(',').collect();
                    Some((cols.first()?.parse().ok()?, cols.get(3)?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(TrainingCost {
        wall_seconds: number("wall_seconds")?,
        cpu_seconds: number("cpu_seconds"),
        tokens: number("tokens").unwrap_or(0.0) as u64,
        peak_rss_mib: number("peak_rss_mib").unwrap_or(0.0),
        loss_curve,
    })
}
