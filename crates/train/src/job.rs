//! One training run from start to finish, the entry point every front end calls (`ragtune train
//! sft|cpt`, `ragtune raft train`, and later `compare --train` and the server).
//!
//! [`run`] prepares the output folder, reads and tokenizes the data (SFT conversations or CPT
//! text), refuses a run that would not fit in memory before loading any weight, builds the model
//! and the [`Trainer`], resumes, measures the evaluation loss before training, trains, writes the
//! adapter (PEFT and GGUF LoRA) and `training.json`, and returns a [`RunReport`]. It prints
//! nothing: what a front end shows arrives as [`RunEvent`]s, and the event callback can stop the
//! run by returning `ControlFlow::Break`.

use crate::batch::{Row, RowStats, cpt_rows, sft_rows};
use crate::error::{Error, Result};
use crate::out_dir::{self, ADAPTER_GGUF, TRAINING_JSON};
use crate::tokenize::{ChatTokenizer, Tokenized, tokenize_example};
use crate::trainer::{self, LOSS_CSV, LOSS_PNG, Outcome, Record, TrainOptions, Trainer};
use crate::{Llama, LoraConfig, Precision, alloc, data, gguf, gguf_lora, memory, peft};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run learns from.
#[derive(Debug, Clone, PartialEq)]
pub enum RunData {
    /// Supervised fine-tuning on JSONL conversations (the formats of [`crate::data`]); the loss
    /// covers the assistant turns only.
    Sft {
        data: PathBuf,
        /// Held-out examples for the evaluation loss.
        eval: Option<PathBuf>,
        /// Put several short examples in one row (attention does not cross them).
        pack: bool,
        /// Set malformed lines aside (each reported in [`RunEvent::SkippedLines`]) instead of
        /// refusing to start.
        skip_bad_lines: bool,
    },
    /// Continued pretraining on text files or folders of them ([`data::text_files`]).
    Cpt {
        text: Vec<PathBuf>,
        /// Held-out text for the evaluation loss.
        eval_text: Vec<PathBuf>,
    },
}

impl RunData {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Sft { .. } => Kind::Sft,
            Self::Cpt { .. } => Kind::Cpt,
        }
    }
}

/// Everything a run needs, resolved (the base is a file path, not a catalogue name).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub data: RunData,
    /// The base model's GGUF file (llama or qwen2 architecture).
    pub base: PathBuf,
    /// The output folder: new, empty, or an earlier run's ([`out_dir::prepare`]).
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out`.
    pub resume: bool,
    pub lora: LoraConfig,
    pub options: TrainOptions,
    /// Tokens per row: longer SFT examples are cut (and counted); CPT text is cut into windows
    /// of this many tokens.
    pub max_len: usize,
    /// Threads of rayon's global pool, which candle's CPU kernels use (0: all cores). Applies
    /// only when the pool has not started yet in this process.
    pub threads: usize,
    /// Refuse to start when the estimated peak memory exceeds this many MiB (None: the memory
    /// the system reports available).
    pub memory_limit_mib: Option<u64>,
    /// Keep glibc from returning per-step buffers to the system ([`alloc::tune_allocator`]):
    /// for a process that exists to train; a long-lived server leaves it off.
    pub tune_allocator: bool,
    /// The Hugging Face id of the base, written to adapter_config.json so PEFT can find it.
    pub hf_base: Option<String>,
    /// The frozen base weights' products: bf16 on AMX tiles where the CPU has them (`Auto`),
    /// or f32 ([`Llama::with_precision`]).
    pub precision: Precision,
    /// More keys for training.json from the caller (the CLI records RAFT lineage here); a key
    /// that training.json already records is refused before the run starts.
    pub extra: Map<String, Value>,
}

impl RunSpec {
    /// A spec with the default LoRA settings and options, 512-token rows, all cores, the
    /// available memory as the limit and the allocator left alone.
    pub fn new(data: RunData, base: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            data,
            base: base.into(),
            out: out.into(),
            resume: false,
            lora: LoraConfig::default(),
            options: TrainOptions::default(),
            max_len: 512,
            threads: 0,
            memory_limit_mib: None,
            tune_allocator: false,
            hf_base: None,
            precision: Precision::Auto,
            extra: Map::new(),
        }
    }
}

/// Supervised fine-tuning or continued pretraining (training.json's `kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Sft,
    Cpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

/// What happens during a run, in order, for a front end to show.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// Malformed SFT lines set aside (`skip_bad_lines`), each error naming its `path:line`.
    SkippedLines { path: &'a Path, errors: &'a [Error] },
    /// One split's data as rows: `path` is the SFT file; for CPT it is None and
    /// `stats.examples` counts the text files.
    Rows {
        split: Split,
        path: Option<&'a Path>,
        stats: &'a RowStats,
    },
    /// The run continues from the checkpoint after `step` of `total` steps.
    Resumed { step: usize, total: usize },
    /// `resume` was asked but `out` holds no checkpoint: the run starts fresh.
    NoCheckpoint { out: &'a Path },
    /// The evaluation loss before any update: the baseline the curve is read against.
    EvalLossBefore(f64),
    /// Training begins: `total` optimizer steps, `done` of them restored by a resume.
    Training { total: usize, done: usize },
    /// An optimizer step finished.
    Step(&'a Record),
    /// A checkpoint was written (`loss.csv` and `loss.png` with it).
    Checkpoint(&'a Path),
}

/// One step of the loss curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLoss {
    pub step: usize,
    pub loss: f64,
    /// Measured at the `eval_every` cadence and at the last step.
    pub eval_loss: Option<f64>,
}

/// The files a finished run leaves in its output folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFiles {
    /// PEFT's `adapter_config.json`.
    pub peft_config: PathBuf,
    /// PEFT's `adapter_model.safetensors`.
    pub peft_weights: PathBuf,
    /// The GGUF LoRA llama.cpp applies (`--adapter`).
    pub adapter_gguf: PathBuf,
    pub training_json: PathBuf,
    pub loss_csv: PathBuf,
    pub loss_png: PathBuf,
}

impl RunFiles {
    fn in_dir(out: &Path) -> Self {
        Self {
            peft_config: out.join(peft::CONFIG_FILE),
            peft_weights: out.join(peft::WEIGHTS_FILE),
            adapter_gguf: out.join(ADAPTER_GGUF),
            training_json: out.join(TRAINING_JSON),
            loss_csv: out.join(LOSS_CSV),
            loss_png: out.join(LOSS_PNG),
        }
    }
}

/// What a finished run did. training.json holds these fields (under these names) plus the
/// inputs (`data`/`eval`/`pack` or `text`/`eval_text`), `lora`, `options` and the caller's
/// `extra` keys. Counts and times cover the whole run, steps restored by a resume included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub kind: Kind,
    pub base: PathBuf,
    /// Optimizer steps done.
    pub steps: usize,
    /// The training loss of the last step.
    pub final_loss: Option<f64>,
    /// The evaluation loss before any update (None without eval data, or after a resume).
    pub eval_loss_before: Option<f64>,
    /// The evaluation loss after the last step (None without eval data).
    pub eval_loss: Option<f64>,
    /// Input tokens trained on (padding not counted).
    pub tokens: usize,
    /// Seconds spent in training steps (evaluation and checkpoints not included).
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    /// Seconds of the whole call: data, weights, training, evaluation and writing.
    pub wall_seconds: f64,
    /// CPU time of the whole call (all threads), in seconds: what the run cost the machine.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The process's peak resident memory (None off Linux).
    pub peak_rss_mib: Option<u64>,
    /// Whether the frozen base weights were multiplied in bf16 on AMX tiles (else f32).
    #[serde(default)]
    pub bf16_base: bool,
    /// Malformed SFT training lines set aside (`skip_bad_lines`).
    pub skipped_lines: usize,
    /// The training data as rows.
    pub rows: RowStats,
    /// The evaluation data as rows, when there is any.
    pub eval_rows: Option<RowStats>,
    /// The step a resumed run continued from.
    pub resumed_at: Option<usize>,
    /// The loss curve, one entry per step.
    pub history: Vec<StepLoss>,
    pub files: RunFiles,
}

/// Trains the LoRA adapter `spec` describes, tokenizing with `tokenizer` (the same tokenizer
/// and chat template inference uses), and writes the adapter and training.json into
/// `spec.out`. `on_event` sees each [`RunEvent`]; returning `ControlFlow::Break` stops the run
/// with [`Error::Stopped`] (checkpoints written so far stay, the adapter is not written).
///
/// Checked before any slow step: the `extra` keys, the LoRA settings and the output folder;
/// then the data are read and tokenized, and the estimated peak memory is compared with the
/// limit before any weight is loaded.
pub fn run(
    spec: &RunSpec,
    tokenizer: &dyn ChatTokenizer,
    on_event: &mut dyn FnMut(&RunEvent<'_>) -> ControlFlow<()>,
) -> Result<RunReport> {
    let started = Instant::now();
    let cpu_at_start = ragtune_core::process::cpu_seconds();
    training_record(spec, &RunReport::default())?;
    spec.lora.validate()?;
    out_dir::prepare(&spec.out, spec.resume)?;

    let data = match &spec.data {
        RunData::Sft {
            data,
            eval,
            pack,
            skip_bad_lines,
        } => sft_data(
            spec,
            tokenizer,
            data,
            eval.as_deref(),
            *pack,
            *skip_bad_lines,
            on_event,
        )?,
        RunData::Cpt { text, eval_text } => cpt_data(spec, tokenizer, text, eval_text, on_event)?,
    };
    check_memory(spec, &data.train)?;
    if spec.threads > 0 {
        // Fails only when the pool already started, in which case it keeps its size.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(spec.threads)
            .build_global();
    }
    if spec.tune_allocator {
        alloc::tune_allocator()?;
    }

    let (cfg, weights) = gguf::load(&spec.base)?;
    let model = Llama::with_precision(
        cfg,
        &weights,
        spec.lora.clone(),
        spec.options.seed,
        spec.precision,
    )?;
    drop(weights);
    let mut trainer = Trainer::new(
        &model,
        data.train,
        data.eval,
        data.pad_id,
        spec.options.clone(),
        &spec.out,
    )?;
    let out = spec.out.as_path();
    let mut resumed_at = None;
    if spec.resume {
        let total = trainer.total_steps();
        match trainer.resume()? {
            Some(step) => {
                resumed_at = Some(step);
                emit(on_event, RunEvent::Resumed { step, total }, step, out)?;
            }
            None => emit(on_event, RunEvent::NoCheckpoint { out }, 0, out)?,
        }
    }
    let done = trainer.steps_done();
    let eval_loss_before = if done == 0 {
        trainer.eval_loss()?
    } else {
        None
    };
    if let Some(loss) = eval_loss_before {
        emit(on_event, RunEvent::EvalLossBefore(loss), done, out)?;
    }
    let total = trainer.total_steps();
    emit(on_event, RunEvent::Training { total, done }, done, out)?;
    let outcome = trainer.run(&mut |event| match event {
        trainer::Event::Step(r) => on_event(&RunEvent::Step(r)),
        trainer::Event::Checkpoint(dir) => on_event(&RunEvent::Checkpoint(dir)),
    })?;
    if let Outcome::Stopped(step) = outcome {
        return Err(Error::Stopped {
            step,
            out: spec.out.clone(),
        });
    }
    write_adapters(&model, spec)?;

    let history = trainer.history();
    let tokens: usize = history.iter().map(|r| r.tokens).sum();
    let seconds: f64 = history.iter().map(|r| r.seconds).sum();
    let mut report = RunReport {
        kind: spec.data.kind(),
        base: spec.base.clone(),
        steps: history.len(),
        final_loss: history.last().map(|r| r.loss),
        eval_loss_before,
        eval_loss: history.iter().rev().find_map(|r| r.eval_loss),
        tokens,
        train_seconds: seconds,
        tokens_per_second: tokens as f64 / seconds.max(1e-9),
        wall_seconds: 0.0,
        cpu_seconds: None,
        peak_rss_mib: ragtune_core::process::peak_resident_bytes().map(|b| b >> 20),
        bf16_base: model.base_in_bf16(),
        skipped_lines: data.skipped_lines,
        rows: data.stats,
        eval_rows: data.eval_stats,
        resumed_at,
        history: history
            .iter()
            .map(|r| StepLoss {
                step: r.step,
                loss: r.loss,
                eval_loss: r.eval_loss,
            })
            .collect(),
        files: RunFiles::in_dir(&spec.out),
    };
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.cpu_seconds = Some(ragtune_core::process::cpu_seconds() - cpu_at_start);
    let record = training_record(spec, &report)?;
    let path = &report.files.training_json;
    let text = serde_json::to_string_pretty(&record).map_err(|e| Error::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    trainer::write_atomic(path, text.as_bytes())?;
    Ok(report)
}

/// Shows `event`; a `Break` stops the run after `step`.
fn emit(
    on_event: &mut dyn FnMut(&RunEvent<'_>) -> ControlFlow<()>,
    event: RunEvent<'_>,
    step: usize,
    out: &Path,
) -> Result<()> {
    match on_event(&event) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Stopped {
            step,
            out: out.to_path_buf(),
        }),
    }
}

/// A run's data as rows.
struct RunRows {
    train: Vec<Row>,
    eval: Vec<Row>,
    pad_id: u32,
    stats: RowStats,
    eval_stats: Option<RowStats>,
    skipped_lines: usize,
}

fn sft_data(
    spec: &RunSpec,
    tok: &dyn ChatTokenizer,
    path: &Path,
    eval: Option<&Path>,
    pack: bool,
    skip_bad_lines: bool,
    on_event: &mut dyn FnMut(&RunEvent<'_>) -> ControlFlow<()>,
) -> Result<RunRows> {
    if !tok.has_chat_template() {
        return Err(Error::NoChatTemplate {
            base: spec.base.clone(),
        });
    }
    let (examples, skipped_lines) = load_sft(spec, tok, path, skip_bad_lines, on_event)?;
    let (train, stats) = sft_rows(&examples, spec.max_len, pack);
    let event = RunEvent::Rows {
        split: Split::Train,
        path: Some(path),
        stats: &stats,
    };
    emit(on_event, event, 0, &spec.out)?;
    let (eval, eval_stats) = match eval {
        Some(eval) => {
            let (examples, _) = load_sft(spec, tok, eval, skip_bad_lines, on_event)?;
            let (rows, stats) = sft_rows(&examples, spec.max_len, false);
            let event = RunEvent::Rows {
                split: Split::Eval,
                path: Some(eval),
                stats: &stats,
            };
            emit(on_event, event, 0, &spec.out)?;
            (rows, Some(stats))
        }
        None => (Vec::new(), None),
    };
    Ok(RunRows {
        train,
        eval,
        pad_id: tok.pad_id(),
        stats,
        eval_stats,
        skipped_lines,
    })
}

/// The tokenized examples of one SFT file and the number of bad lines set aside.
fn load_sft(
    spec: &RunSpec,
    tok: &dyn ChatTokenizer,
    path: &Path,
    skip_bad_lines: bool,
    on_event: &mut dyn FnMut(&RunEvent<'_>) -> ControlFlow<()>,
) -> Result<(Vec<Tokenized>, usize)> {
    let (examples, skipped) = if skip_bad_lines {
        let (examples, bad) = data::read_sft_lenient(path)?;
        if !bad.is_empty() {
            let event = RunEvent::SkippedLines { path, errors: &bad };
            emit(on_event, event, 0, &spec.out)?;
        }
        (examples, bad.len())
    } else {
        (data::read_sft(path)?, 0)
    };
    let tokenized = examples
        .iter()
        .map(|ex| {
            tokenize_example(tok, ex).map_err(|e| Error::Data {
                path: path.to_path_buf(),
                line: ex.line,
                reason: e.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    Ok((tokenized, skipped))
}

fn cpt_data(
    spec: &RunSpec,
    tok: &dyn ChatTokenizer,
    text: &[PathBuf],
    eval_text: &[PathBuf],
    on_event: &mut dyn FnMut(&RunEvent<'_>) -> ControlFlow<()>,
) -> Result<RunRows> {
    let eos = tok.end_of_generation();
    let documents = |paths: &[PathBuf]| -> Result<Vec<Vec<u32>>> {
        data::text_files(paths)?
            .iter()
            .map(|f| tok.encode_text(&data::read_text(f)?))
            .collect()
    };
    // A window of seq + 1 tokens: seq inputs, each predicting the next.
    let seq = spec.max_len.saturating_sub(1).max(1);
    let (train, stats) = cpt_rows(&documents(text)?, eos, seq);
    let event = RunEvent::Rows {
        split: Split::Train,
        path: None,
        stats: &stats,
    };
    emit(on_event, event, 0, &spec.out)?;
    let (eval, eval_stats) = if eval_text.is_empty() {
        (Vec::new(), None)
    } else {
        let (rows, stats) = cpt_rows(&documents(eval_text)?, eos, seq);
        let event = RunEvent::Rows {
            split: Split::Eval,
            path: None,
            stats: &stats,
        };
        emit(on_event, event, 0, &spec.out)?;
        (rows, Some(stats))
    };
    Ok(RunRows {
        train,
        eval,
        pad_id: eos.unwrap_or(0),
        stats,
        eval_stats,
        skipped_lines: 0,
    })
}

/// Refuses a run whose estimated peak memory exceeds the limit; reads only the GGUF header.
fn check_memory(spec: &RunSpec, rows: &[Row]) -> Result<()> {
    let cfg = gguf::read_config(&spec.base)?;
    let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    let batch_size = spec.options.batch_size;
    let mut need = memory::estimate(&cfg, &spec.lora, batch_size, longest);
    if cfg.tie_embeddings && spec.precision.uses_amx() {
        // A tied embedding stays f32 for the lookup while the head holds its two bf16
        // packings (`FrozenLinear::with_precision`): one more f32 copy of it.
        need += (cfg.vocab_size * cfg.hidden_size * 4) as u64;
    }
    let limit = match spec.memory_limit_mib {
        Some(mib) => mib.saturating_mul(1 << 20),
        None => ragtune_core::process::available_bytes().unwrap_or(u64::MAX),
    };
    if need > limit {
        return Err(Error::Memory {
            base: spec.base.clone(),
            need_mib: need >> 20,
            batch_size,
            longest,
            limit_mib: limit >> 20,
        });
    }
    Ok(())
}

/// The adapter in PEFT's layout and as a GGUF LoRA (loss.csv and loss.png are written by the
/// trainer with every checkpoint, the last one included).
fn write_adapters(model: &Llama, spec: &RunSpec) -> Result<()> {
    peft::save(model, spec.hf_base.as_deref(), &spec.out)?;
    let name = spec.base.file_stem().and_then(|s| s.to_str());
    gguf_lora::write(
        &spec.out.join(ADAPTER_GGUF),
        &peft::adapter_tensors(model)?,
        model.lora_config(),
        model.config(),
        name,
    )
}

/// training.json: the report's fields, the inputs, `lora`, `options`, then the caller's extra
/// keys, which may not replace any of these.
fn training_record(spec: &RunSpec, report: &RunReport) -> Result<Map<String, Value>> {
    let path = spec.out.join(TRAINING_JSON);
    let mut record: Map<String, Value> = serde_json::to_value(report)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let inputs = match &spec.data {
        RunData::Sft {
            data, eval, pack, ..
        } => json!({"data": data, "eval": eval, "pack": pack}),
        RunData::Cpt { text, eval_text } => json!({"text": text, "eval_text": eval_text}),
    };
    if let Value::Object(inputs) = inputs {
        record.extend(inputs);
    }
    let (lora, o) = (&spec.lora, &spec.options);
    let targets: Vec<&str> = lora
        .targets
        .iter()
        .map(|t| t.hf_name().trim_end_matches("_proj"))
        .collect();
    record.insert(
        "lora".into(),
        json!({"rank": lora.rank, "alpha": lora.alpha, "dropout": lora.dropout,
            "targets": targets.join(",")}),
    );
    record.insert(
        "options".into(),
        json!({"lr": o.lr, "epochs": o.epochs, "max_steps": o.max_steps,
            "batch_size": o.batch_size, "grad_accum": o.grad_accum, "max_len": spec.max_len,
            "warmup_ratio": o.warmup_ratio, "weight_decay": o.weight_decay,
            "max_grad_norm": o.max_grad_norm, "eval_every": o.eval_every,
            "save_every": o.save_every, "seed": o.seed}),
    );
    for (key, value) in &spec.extra {
        if record.contains_key(key) {
            return Err(Error::Options(format!(
                "the extra training.json key {key:?} is one the run records itself; give it another name"
            )));
        }
        record.insert(key.clone(), value.clone());
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_record_keeps_the_keys_readers_use_and_refuses_a_clashing_extra() {
        let data = RunData::Sft {
            data: "train.jsonl".into(),
            eval: None,
            pack: true,
            skip_bad_lines: false,
        };
        let mut spec = RunSpec::new(data, "base.gguf", "run");
        spec.extra
            .insert("raft".into(), json!({"prompt_format": "p/1"}));
        let record = training_record(&spec, &RunReport::default()).unwrap();
        for key in [
            "kind",
            "base",
            "data",
            "eval",
            "pack",
            "skipped_lines",
            "rows",
            "steps",
            "final_loss",
            "eval_loss",
            "eval_loss_before",
            "tokens",
            "train_seconds",
            "tokens_per_second",
            "wall_seconds",
            "cpu_seconds",
            "peak_rss_mib",
            "lora",
            "options",
            "raft",
        ] {
            assert!(record.contains_key(key), "{key} missing: {record:?}");
        }
        assert_eq!(record["kind"], "sft");
        assert_eq!(record["lora"]["targets"], "q,v");
        assert_eq!(record["rows"]["sequences"], 0);
        // The record reads back as the report.
        let back: RunReport = serde_json::from_value(Value::Object(record)).unwrap();
        assert_eq!(back, RunReport::default());

        spec.extra.insert("steps".into(), json!(3));
        let err = training_record(&spec, &RunReport::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"steps\"") && err.contains("another name"),
            "{err}"
        );
    }
}
