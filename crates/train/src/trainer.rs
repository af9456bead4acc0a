//! The training loop: micro-batches with gradient accumulation, AdamW under warm-up + cosine,
//! gradient clipping, evaluation loss, atomic checkpoints and resume.
//!
//! Everything a run depends on is a function of the seed and the step number (the row order of
//! each epoch, which micro-batches make a step) or is saved in the checkpoint (adapter weights,
//! AdamW moments, the dropout RNG, the loss history), so a run resumed after a kill continues
//! with the same numbers an uninterrupted run would have produced.

use crate::batch::{Batch, Row, collate};
use crate::error::{Error, Result};
use crate::model::Llama;
use crate::optim::{AdamW, clip_grads, warmup_cosine};
use candle_core::{Device, Tensor, Var};
use ragtune_core::rng::SplitMix64;
use serde_json::json;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub lr: f64,
    pub epochs: usize,
    /// Stop after this many optimizer steps instead of after `epochs`.
    pub max_steps: Option<usize>,
    /// Rows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Fraction of the steps spent warming the learning rate up.
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    /// Evaluation loss every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_every: usize,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            epochs: 1,
            max_steps: None,
            batch_size: 4,
            grad_accum: 1,
            warmup_ratio: 0.03,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            eval_every: 0,
            save_every: 0,
            seed: 0,
        }
    }
}

/// One optimizer step, as the progress display, `loss.csv` and the plot see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Steps done, counting this one (1-based).
    pub step: usize,
    pub epoch: f64,
    pub lr: f64,
    /// Mean loss over this step's trained tokens.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Input tokens of this step (padding not counted).
    pub tokens: usize,
    /// Seconds this step's training took (evaluation and checkpointing not included).
    pub seconds: f64,
    pub eval_loss: Option<f64>,
}

pub enum Event<'a> {
    Step(&'a Record),
    Checkpoint(&'a Path),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// The event callback asked to stop after this step (what a kill looks like to a test).
    Stopped(usize),
}

pub const CHECKPOINTS: &str = "checkpoints";
const LATEST: &str = "latest";
pub const LOSS_CSV: &str = "loss.csv";
pub const LOSS_PNG: &str = "loss.png";
const STATE_JSON: &str = "state.json";
const STATE_TENSORS: &str = "state.safetensors";

pub struct Trainer<'m> {
    model: &'m Llama,
    vars: Vec<Var>,
    opt: AdamW,
    rng: SplitMix64,
    opts: TrainOptions,
    train: Vec<Row>,
    eval: Vec<Row>,
    pad_id: u32,
    out: PathBuf,
    history: Vec<Record>,
    fingerprint: String,
}

impl<'m> Trainer<'m> {
    /// A trainer for the adapters of `model` over `train` rows (`eval` may be empty), writing
    /// checkpoints under `out/checkpoints`.
    pub fn new(
        model: &'m Llama,
        train: Vec<Row>,
        eval: Vec<Row>,
        pad_id: u32,
        opts: TrainOptions,
        out: &Path,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(Error::Options(
                "no training rows (every example was empty or dropped)".into(),
            ));
        }
        if opts.batch_size == 0 || opts.grad_accum == 0 {
            return Err(Error::Options(
                "batch size and gradient accumulation must be at least 1".into(),
            ));
        }
        if !(opts.lr > 0.0 && opts.lr.is_finite()) {
            return Err(Error::Options(format!(
                "learning rate {} must be a positive number",
                opts.lr
            )));
        }
        let vars = model.trainable_vars();
        let fingerprint = fingerprint(model, &train, &opts);
        Ok(Self {
            model,
            opt: AdamW::new(&vars, opts.weight_decay)?,
            vars,
            rng: SplitMix64::new(opts.seed ^ 0xD809_0000),
            opts,
            train,
            eval,
            pad_id,
            out: out.to_path_buf(),
            history: Vec::new(),
            fingerprint,
        })
    }

    fn micro_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.opts.batch_size)
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.micro_per_epoch().div_ceil(self.opts.grad_accum)
    }

    pub fn total_steps(&self) -> usize {
        self.opts
            .max_steps
            .unwrap_or(self.opts.epochs * self.steps_per_epoch())
    }

    pub fn steps_done(&self) -> usize {
        self.history.len()
    }

    pub fn history(&self) -> &[Record] {
        &self.history
    }

    /// Row indices of epoch `epoch` in training order: a seeded shuffle per epoch.
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        let mut rng = SplitMix64::new(self.opts.seed.wrapping_add(0x5EED ^ epoch as u64));
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        order
    }

    /// The micro-batches of optimizer step `step` (0-based).
    fn step_batches(&self, step: usize) -> Result<Vec<Batch>> {
        let spe = self.steps_per_epoch();
        let order = self.epoch_order(step / spe);
        let first = (step % spe) * self.opts.grad_accum;
        let last = (first + self.opts.grad_accum).min(self.micro_per_epoch());
        (first..last)
            .map(|k| {
                let end = ((k + 1) * self.opts.batch_size).min(order.len());
                let rows: Vec<&Row> = order[k * self.opts.batch_size..end]
                    .iter()
                    .map(|&i| &self.train[i])
                    .collect();
                collate(&rows, self.pad_id, &Device::Cpu)
            })
            .collect()
    }

    /// Trains until the last step, or until `on_event` breaks (after the step it was shown).
    pub fn run(
        &mut self,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Outcome> {
        let total = self.total_steps();
        let warmup = (self.opts.warmup_ratio * total as f64).ceil() as usize;
        while self.history.len() < total {
            let step = self.history.len();
            let started = Instant::now();
            let lr = warmup_cosine(step, warmup, total, self.opts.lr);
            let batches = self.step_batches(step)?;
            let trained: usize = batches.iter().map(|b| b.trained).sum();
            if trained == 0 {
                return Err(Error::NoTrainableTokens);
            }
            let mut grads: Vec<Option<Tensor>> = vec![None; self.vars.len()];
            let mut loss_sum = 0f64;
            for batch in batches.iter().filter(|b| b.trained > 0) {
                let share = batch.trained as f64 / trained as f64;
                let loss = self.model.loss(
                    &batch.inputs,
                    &batch.targets,
                    &batch.weights,
                    batch.segments.as_ref(),
                    Some(&mut self.rng),
                )?;
                loss_sum += loss.to_scalar::<f32>()? as f64 * share;
                let store = (loss * share)?.backward()?;
                for (acc, var) in grads.iter_mut().zip(&self.vars) {
                    if let Some(g) = store.get(var.as_tensor()) {
                        *acc = Some(match acc.take() {
                            Some(a) => (a + g)?,
                            None => g.clone(),
                        });
                    }
                }
            }
            let mut grads: Vec<Tensor> = grads
                .into_iter()
                .zip(&self.vars)
                .map(|(g, v)| g.map_or_else(|| v.as_tensor().zeros_like(), Ok))
                .collect::<candle_core::Result<_>>()?;
            let grad_norm = clip_grads(&mut grads, self.opts.max_grad_norm)?;
            if !loss_sum.is_finite() || !grad_norm.is_finite() {
                return Err(Error::Diverged {
                    step: step + 1,
                    loss: loss_sum,
                });
            }
            self.opt.step(&self.vars, &grads, lr)?;
            let seconds = started.elapsed().as_secs_f64();

            let done = step + 1;
            let is_last = done == total;
            let due = |every: usize| is_last || (every > 0 && done.is_multiple_of(every));
            let eval_loss = if due(self.opts.eval_every) {
                self.eval_loss()?
            } else {
                None
            };
            self.history.push(Record {
                step: done,
                epoch: done as f64 / self.steps_per_epoch() as f64,
                lr,
                loss: loss_sum,
                grad_norm,
                tokens: batches.iter().map(|b| b.tokens).sum(),
                seconds,
                eval_loss,
            });
            if due(self.opts.save_every) {
                let dir = self.save_checkpoint()?;
                if on_event(Event::Checkpoint(&dir)).is_break() {
                    return Ok(Outcome::Stopped(done));
                }
            }
            let record = self.history.last().expect("just pushed");
            if on_event(Event::Step(record)).is_break() {
                return Ok(Outcome::Stopped(done));
            }
        }
        Ok(Outcome::Finished)
    }

    /// Mean loss over every trained token of the evaluation rows (no dropout); None without
    /// evaluation rows.
    pub fn eval_loss(&self) -> Result<Option<f64>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut count) = (0f64, 0usize);
        for rows in self.eval.chunks(self.opts.batch_size) {
            let rows: Vec<&Row> = rows.iter().collect();
            let batch = collate(&rows, self.pad_id, &Device::Cpu)?;
            if batch.trained == 0 {
                continue;
            }
            let loss = self.model.loss(
                &batch.inputs,
                &batch.targets,
                &batch.weights,
                batch.segments.as_ref(),
                None,
            )?;
            sum += loss.to_scalar::<f32>()? as f64 * batch.trained as f64;
            count += batch.trained;
        }
        Ok((count > 0).then(|| sum / count as f64))
    }

    /// The files of one checkpoint, written and synced into `partial`.
    fn write_checkpoint_files(&self, partial: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (i, var) in self.vars.iter().enumerate() {
            tensors.insert(format!("var.{i}"), var.as_tensor().contiguous()?);
            tensors.insert(format!("m.{i}"), self.opt.m[i].contiguous()?);
            tensors.insert(format!("v.{i}"), self.opt.v[i].contiguous()?);
        }
        let path = partial.join(STATE_TENSORS);
        safetensors::serialize_to_file(tensors.iter(), None, &path).map_err(|e| {
            let full = matches!(&e, safetensors::SafeTensorError::IoError(io)
                if ragtune_core::io::is_disk_full(io));
            write_failed(path.clone(), e.to_string(), full)
        })?;
        let state = json!({
            "fingerprint": self.fingerprint,
            "step": self.history.len(),
            "adam_t": self.opt.t,
            "rng": self.rng.state().to_string(),
            "history": self.history.iter().map(record_json).collect::<Vec<_>>(),
        });
        let path = partial.join(STATE_JSON);
        std::fs::write(&path, state.to_string()).map_err(io_failed(&path))?;
        sync_dir_files(partial).map_err(io_failed(partial))
    }

    /// Writes the adapters, AdamW moments, RNG and history into `checkpoints/step-N` (via a
    /// `.partial` directory renamed into place), then points `checkpoints/latest` at it and
    /// removes older checkpoints. A kill at any moment leaves `latest` naming a whole one.
    /// `loss.csv` and `loss.png` in `out` are rewritten with the history so far.
    fn save_checkpoint(&self) -> Result<PathBuf> {
        let root = self.out.join(CHECKPOINTS);
        let name = format!("step-{:06}", self.history.len());
        let dir = root.join(&name);
        let partial = root.join(format!("{name}.partial"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io_failed(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(io_failed(&partial))?;
        let written = self.write_checkpoint_files(&partial);
        if written.is_err() {
            // Give the space back; the last whole checkpoint is untouched. A `checkpoints/`
            // left empty goes too, so the folder is as a run that never saved.
            let _ = std::fs::remove_dir_all(&partial);
            let _ = std::fs::remove_dir(&root);
        }
        written?;

        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_failed(&dir))?;
        }
        std::fs::rename(&partial, &dir).map_err(io_failed(&dir))?;

        write_atomic(&root.join(LATEST), name.as_bytes())?;
        write_atomic(
            &self.out.join(LOSS_CSV),
            history_csv(&self.history).as_bytes(),
        )?;
        crate::plot::write_loss_png(&self.history, &self.out.join(LOSS_PNG))?;
        // Keep the newest and the one before it; anything else is from earlier in this run.
        if let Ok(entries) = std::fs::read_dir(&root) {
            let mut old: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("step-") && *n < *name.as_str())
                })
                .collect();
            old.sort();
            old.pop();
            for p in old {
                let _ = std::fs::remove_dir_all(p);
            }
        }
        Ok(dir)
    }

    /// Restores the newest checkpoint under `out/checkpoints`; returns its step, or None when
    /// there is none. Refuses a checkpoint written for other data, adapters or options.
    pub fn resume(&mut self) -> Result<Option<usize>> {
        let root = self.out.join(CHECKPOINTS);
        let latest = root.join(LATEST);
        let name = match fs_err::read_to_string(&latest) {
            Ok(name) => name.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::File(e)),
        };
        let dir = root.join(&name);
        let bad = |reason: String| Error::Checkpoint {
            path: dir.clone(),
            reason,
        };
        let text = std::fs::read_to_string(dir.join(STATE_JSON)).map_err(|e| bad(e.to_string()))?;
        let state: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if state["fingerprint"] != self.fingerprint.as_str() {
            return Err(bad("it was written for other training data, adapter settings or options; resume with the same command, or train into a new --out directory".into()));
        }
        let tensors = candle_core::safetensors::load(dir.join(STATE_TENSORS), &Device::Cpu)
            .map_err(|e| bad(e.to_string()))?;
        let get = |key: String| {
            tensors
                .get(&key)
                .cloned()
                .ok_or_else(|| bad(format!("tensor {key} is missing")))
        };
        for (i, var) in self.vars.iter().enumerate() {
            var.set(&get(format!("var.{i}"))?)?;
            self.opt.m[i] = get(format!("m.{i}"))?;
            self.opt.v[i] = get(format!("v.{i}"))?;
        }
        self.opt.t = state["adam_t"]
            .as_u64()
            .ok_or_else(|| bad("no adam_t".into()))? as usize;
        let rng = state["rng"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("no rng state".into()))?;
        self.rng = SplitMix64::new(rng);
        self.history = state["history"]
            .as_array()
            .ok_or_else(|| bad("no history".into()))?
            .iter()
            .map(record_from_json)
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a history entry is malformed".into()))?;
        Ok(Some(self.history.len()))
    }
}

fn record_json(r: &Record) -> serde_json::Value {
    json!({
        "step": r.step, "epoch": r.epoch, "lr": r.lr, "loss": r.loss, "grad_norm": r.grad_norm,
        "tokens": r.tokens, "seconds": r.seconds, "eval_loss": r.eval_loss,
    })
}

fn record_from_json(v: &serde_json::Value) -> Option<Record> {
    Some(Record {
        step: v["step"].as_u64()? as usize,
        epoch: v["epoch"].as_f64()?,
        lr: v["lr"].as_f64()?,
        loss: v["loss"].as_f64()?,
        grad_norm: v["grad_norm"].as_f64()?,
        tokens: v["tokens"].as_u64()? as usize,
        seconds: v["seconds"].as_f64()?,
        eval_loss: v["eval_loss"].as_f64(),
    })
}

/// The loss history as CSV (one row per step; `eval_loss` empty where not measured).
pub fn history_csv(history: &[Record]) -> String {
    let mut out = String::from("step,epoch,lr,loss,eval_loss,grad_norm,tokens,seconds\n");
    for r in history {
        let eval = r.eval_loss.map(|l| format!("{l:.6}")).unwrap_or_default();
        out.push_str(&format!(
            "{},{:.4},{:.6e},{:.6},{eval},{:.4},{},{:.3}\n",
            r.step, r.epoch, r.lr, r.loss, r.grad_norm, r.tokens, r.seconds
        ));
    }
    out
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

fn sync_dir_files(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    Ok(())
}

/// Identifies what a checkpoint belongs to: the rows, the adapter shapes and the options that
/// decide the numbers (FNV-1a; stable across builds, unlike std's hasher).
fn fingerprint(model: &Llama, rows: &[Row], opts: &TrainOptions) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for row in rows {
        for (&id, (&t, &s)) in row.ids.iter().zip(row.trainable.iter().zip(&row.segments)) {
            eat(&id.to_le_bytes());
            eat(&[t as u8]);
            eat(&s.to_le_bytes());
        }
        eat(b"|");
    }
    // Not the evaluation/checkpoint cadence: changing those does not change the numbers.
    let o = opts;
    eat(format!(
        "{:?} {} {} {:?} {} {} {} {} {} {}",
        model.lora_config(),
        o.lr,
        o.epochs,
        o.max_steps,
        o.batch_size,
        o.grad_accum,
        o.warmup_ratio,
        o.weight_decay,
        o.max_grad_norm,
        o.seed
    )
    .as_bytes());
    format!("{h:016x}")
}

/// Maps an I/O error writing `path` of a checkpoint.
fn io_failed(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |e| {
        let full = ragtune_core::io::is_disk_full(&e);
        write_failed(path, e.to_string(), full)
    }
}

/// A file of a checkpoint that could not be written; on a full disk the message says that the
/// last whole checkpoint is kept and how to go on.
fn write_failed(path: PathBuf, reason: String, disk_full: bool) -> Error {
    let reason = if disk_full {
        format!(
            "{reason}; the disk is full. The last complete checkpoint is kept: free some \
             space, then run the same command with --resume"
        )
    } else {
        reason
    };
    Error::Write { path, reason }
}
