//! `ragtune train sft` and `ragtune train cpt`: LoRA fine-tuning with ragtune-train, tokenized
//! by the same llama.cpp tokenizer and chat template that generation uses.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ragtune_core::ChatMessage;
use ragtune_model::llama::Tokenizer;
use ragtune_train::batch::{Row, RowStats, cpt_rows, sft_rows};
use ragtune_train::tokenize::{ChatTokenizer, Tokenized, tokenize_example};
use ragtune_train::trainer::{Event, Outcome, Record, TrainOptions, Trainer};
use ragtune_train::{Llama, LoraConfig, TargetModule, data, gguf, out_dir, peft};
use serde_json::json;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The GGUF LoRA file in a training output folder (what `--adapter DIR` loads).
pub const ADAPTER_GGUF: &str = "adapter.gguf";

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Supervised fine-tuning on prompt/response pairs (JSONL: prompt/completion, OpenAI
    /// messages, or Alpaca instruction/input/output); the loss covers the answers only.
    Sft(SftArgs),
    /// Continued pretraining on raw domain text, packed to the sequence length.
    Cpt(CptArgs),
}

#[derive(Debug, Args)]
pub struct SftArgs {
    /// Training examples, one JSON object per line.
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out examples for the evaluation loss (same formats).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Put several short examples in one sequence (attention does not cross them).
    #[arg(long)]
    pub pack: bool,
    /// Skip malformed lines (each is reported) instead of refusing to start.
    #[arg(long)]
    pub skip_bad_lines: bool,
    #[command(flatten)]
    pub common: TrainArgs,
}

#[derive(Debug, Args)]
pub struct CptArgs {
    /// Text files or folders of them (.txt, .md, .rst, .text; read as UTF-8).
    #[arg(long, required = true, num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Held-out text for the evaluation loss.
    #[arg(long, num_args = 1..)]
    pub eval_text: Vec<PathBuf>,
    #[command(flatten)]
    pub common: TrainArgs,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The base model: a catalogue name or a .gguf file (llama architecture).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub base: String,
    /// Output folder: adapter (PEFT + GGUF), checkpoints, loss.csv, loss.png, training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub dropout: f32,
    /// Modules to adapt: q,k,v,o,gate,up,down (or their *_proj names), or "all".
    #[arg(long, default_value = "q,v")]
    pub targets: String,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Tokens per sequence; longer examples are cut (and counted).
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
    #[arg(long, default_value_t = 0.03)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Evaluation loss every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Checkpoint every N steps (0: at the end only).
    #[arg(long, default_value_t = 50)]
    pub save_every: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Refuse to start when the estimated peak memory exceeds this many MiB (default: the
    /// memory the system reports available).
    #[arg(long)]
    pub memory_limit_mib: Option<u64>,
    /// The Hugging Face id of the base (written to adapter_config.json so PEFT can find it).
    #[arg(long)]
    pub hf_base: Option<String>,
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Sft(args) => sft(args),
        TrainCommand::Cpt(args) => cpt(args),
    }
}

/// ragtune-model's tokenizer and template, as ragtune-train asks for them.
struct LlamaChat<'a>(&'a Tokenizer);

impl ChatTokenizer for LlamaChat<'_> {
    fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> ragtune_train::Result<String> {
        self.0
            .render_chat(messages, add_generation_prompt)
            .map_err(|e| ragtune_train::Error::Template(e.to_string()))
    }

    fn encode(&self, text: &str) -> ragtune_train::Result<Vec<u32>> {
        Ok(self
            .0
            .encode_rendered_chat(text)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect())
    }
}

pub fn sft(args: SftArgs) -> Result<()> {
    // Before any slow step: a folder that is not ours is refused at once.
    out_dir::prepare(&args.common.out, args.common.resume)?;
    let base = crate::models::resolve_generator(&args.common.base)?;
    let tokenizer = Tokenizer::load(&base)
        .with_context(|| format!("loading the tokenizer of {}", base.display()))?;
    if tokenizer.chat_template().is_none() {
        bail!(
            "{} has no chat template, so prompt/response pairs cannot be rendered as at inference; \
             use `ragtune train cpt` for raw text, or an instruction-tuned base",
            base.display()
        );
    }
    let chat = LlamaChat(&tokenizer);
    // The tokenized examples and the number of bad lines skipped.
    let load = |path: &Path| -> Result<(Vec<Tokenized>, usize)> {
        let (examples, skipped) = if args.skip_bad_lines {
            let (examples, bad) = data::read_sft_lenient(path)?;
            for e in &bad {
                eprintln!("skipped: {e}");
            }
            if !bad.is_empty() {
                eprintln!("{}: skipped {} bad line(s)", path.display(), bad.len());
            }
            (examples, bad.len())
        } else {
            (data::read_sft(path)?, 0)
        };
        let tokenized = examples
            .iter()
            .map(|ex| {
                tokenize_example(&chat, ex)
                    .with_context(|| format!("{}:{}", path.display(), ex.line))
            })
            .collect::<Result<_>>()?;
        Ok((tokenized, skipped))
    };
    let (train, skipped) = load(&args.data)?;
    let (rows, stats) = sft_rows(&train, args.common.max_len, args.pack);
    report_rows("train", &args.data, &stats);
    let eval = match &args.eval {
        Some(path) => {
            let (rows, stats) = sft_rows(&load(path)?.0, args.common.max_len, false);
            report_rows("eval", path, &stats);
            rows
        }
        None => Vec::new(),
    };
    let pad = tokenizer.encode(" ", false).first().copied().unwrap_or(0);
    let mut summary = json!({
        "kind": "sft", "data": args.data, "eval": args.eval, "pack": args.pack,
        "skipped_lines": skipped, "rows": stats_json(&stats),
    });
    // Data from `ragtune raft build` (its manifest.json beside it) makes a RAFT adapter, which
    // `ask` then prompts the RAFT way.
    if let Some(lineage) = ragtune_raft::lineage(&args.data)? {
        eprintln!(
            "RAFT data ({} from {}): the adapter will answer with the RAFT prompt",
            lineage.prompt_format,
            lineage.manifest.display()
        );
        summary[ragtune_raft::TRAINING_KEY] = serde_json::to_value(&lineage)?;
    }
    train_rows(&args.common, &base, rows, eval, pad, summary)
}

fn cpt(args: CptArgs) -> Result<()> {
    out_dir::prepare(&args.common.out, args.common.resume)?;
    let base = crate::models::resolve_generator(&args.common.base)?;
    let tokenizer = Tokenizer::load(&base)
        .with_context(|| format!("loading the tokenizer of {}", base.display()))?;
    let eos = (0..tokenizer.vocab_size() as u32).find(|&id| tokenizer.is_end_of_generation(id));
    let docs = |paths: &[PathBuf]| -> Result<Vec<Vec<u32>>> {
        let files = text_files(paths)?;
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {} (text must be UTF-8)", f.display()))?;
                Ok(tokenizer.encode(&text, true))
            })
            .collect()
    };
    let seq = args.common.max_len.saturating_sub(1).max(1);
    let (rows, stats) = cpt_rows(&docs(&args.text)?, eos, seq);
    eprintln!(
        "train: {} files, {} tokens in {} sequences of up to {} tokens",
        stats.examples, stats.tokens, stats.rows, args.common.max_len
    );
    let eval = if args.eval_text.is_empty() {
        Vec::new()
    } else {
        cpt_rows(&docs(&args.eval_text)?, eos, seq).0
    };
    let summary = json!({
        "kind": "cpt", "text": args.text, "eval_text": args.eval_text,
        "rows": stats_json(&stats),
    });
    train_rows(&args.common, &base, rows, eval, eos.unwrap_or(0), summary)
}

/// Files under `paths` (folders walked, sorted) with a plain-text extension.
fn text_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else if p.is_file() {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if paths.contains(&p) || matches!(ext, "txt" | "md" | "rst" | "text") {
                out.push(p);
            }
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no text files (.txt, .md, .rst, .text) under the given paths"
    );
    Ok(out)
}

fn report_rows(what: &str, path: &Path, s: &RowStats) {
    eprintln!(
        "{what}: {} examples from {} -> {} sequences, {} tokens{}{}",
        s.examples,
        path.display(),
        s.rows,
        s.tokens,
        if s.truncated > 0 {
            format!("; {} cut at --max-len", s.truncated)
        } else {
            String::new()
        },
        if s.dropped > 0 {
            format!(
                "; {} dropped (no answer token left after the cut)",
                s.dropped
            )
        } else {
            String::new()
        },
    );
}

fn stats_json(s: &RowStats) -> serde_json::Value {
    json!({"examples": s.examples, "truncated": s.truncated, "dropped": s.dropped, "sequences": s.rows, "tokens": s.tokens})
}

fn parse_targets(s: &str) -> Result<Vec<TargetModule>> {
    if s == "all" || s == "all-linear" {
        return Ok(TargetModule::ALL.to_vec());
    }
    s.split(',')
        .map(|t| {
            t.trim()
                .parse::<TargetModule>()
                .with_context(|| format!("target module {t:?}; use q,k,v,o,gate,up,down or all"))
        })
        .collect()
}

fn train_rows(
    args: &TrainArgs,
    base: &Path,
    rows: Vec<Row>,
    eval: Vec<Row>,
    pad_id: u32,
    mut summary: serde_json::Value,
) -> Result<()> {
    let lora = LoraConfig {
        rank: args.rank,
        alpha: args.alpha,
        dropout: args.dropout,
        targets: parse_targets(&args.targets)?,
    };
    let cfg = gguf::read_config(base)?;
    let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    let need = ragtune_train::memory::estimate(&cfg, &lora, args.batch_size, longest);
    let limit = match args.memory_limit_mib {
        Some(mib) => mib * 1024 * 1024,
        None => ragtune_train::memory::available().unwrap_or(u64::MAX),
    };
    if need > limit {
        bail!(
            "training {} needs about {} MiB (f32 base weights and activations for {} sequences of {} tokens), \
             but only {} MiB are available; lower --batch-size (use --grad-accum to keep the effective batch) \
             or --max-len, or use a smaller base model",
            base.display(),
            need >> 20,
            args.batch_size,
            longest,
            limit >> 20
        );
    }
    if args.threads > 0 {
        // candle's CPU kernels use rayon's global pool; set before its first use.
        rayon_threads(args.threads);
    }
    ragtune_train::alloc::tune_allocator()?;

    let started = Instant::now();
    let (cfg, weights) = gguf::load(base)?;
    let model = Llama::new(cfg, &weights, lora, args.seed)?;
    drop(weights);
    let opts = TrainOptions {
        lr: args.lr,
        epochs: args.epochs,
        max_steps: args.max_steps,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        warmup_ratio: args.warmup_ratio,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        eval_every: args.eval_every,
        save_every: args.save_every,
        seed: args.seed,
    };
    let mut trainer = Trainer::new(&model, rows, eval, pad_id, opts, &args.out)?;
    if args.resume {
        match trainer.resume()? {
            Some(step) => eprintln!("resumed at step {step} of {}", trainer.total_steps()),
            None => eprintln!("no checkpoint in {}; starting fresh", args.out.display()),
        }
    }
    // The evaluation loss before any update: the baseline the curve is read against.
    if trainer.steps_done() == 0
        && let Some(loss) = trainer.eval_loss()?
    {
        eprintln!("eval loss before training: {loss:.4}");
        summary["eval_loss_before"] = json!(loss);
    }
    let total = trainer.total_steps();
    let bar = progress_bar(total, trainer.steps_done());
    let out = args.out.clone();
    let outcome = trainer.run(&mut |event| {
        if let Event::Step(r) = event {
            bar.set_position(r.step as u64);
            bar.set_message(step_message(r));
            // Without a terminal (logs, CI) a line now and then instead of the bar.
            if bar.is_hidden() && (r.step == 1 || r.step.is_multiple_of(10) || r.step == total) {
                eprintln!("step {}/{total}: {}", r.step, step_message(r));
            }
        }
        ControlFlow::Continue(())
    });
    bar.finish_and_clear();
    if outcome? != Outcome::Finished {
        bail!("training stopped before its last step");
    }
    let history = trainer.history().to_vec();
    write_adapters(&model, base, args, &out)?;

    let tokens: usize = history.iter().map(|r| r.tokens).sum();
    let seconds: f64 = history.iter().map(|r| r.seconds).sum();
    let last = history.last();
    let eval_losses: Vec<f64> = history.iter().filter_map(|r| r.eval_loss).collect();
    summary["base"] = json!(base);
    summary["steps"] = json!(history.len());
    summary["final_loss"] = json!(last.map(|r| r.loss));
    summary["eval_loss"] = json!(eval_losses.last());
    summary["tokens"] = json!(tokens);
    summary["train_seconds"] = json!(seconds);
    summary["tokens_per_second"] = json!(tokens as f64 / seconds.max(1e-9));
    summary["wall_seconds"] = json!(started.elapsed().as_secs_f64());
    summary["peak_rss_mib"] = json!(ragtune_train::memory::peak_rss().map(|b| b >> 20));
    summary["lora"] = json!({"rank": args.rank, "alpha": args.alpha, "dropout": args.dropout, "targets": args.targets});
    summary["options"] = json!({"lr": args.lr, "epochs": args.epochs, "max_steps": args.max_steps,
        "batch_size": args.batch_size, "grad_accum": args.grad_accum, "max_len": args.max_len,
        "warmup_ratio": args.warmup_ratio, "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm, "seed": args.seed});
    ragtune_train::trainer::write_atomic(
        &out.join(out_dir::TRAINING_JSON),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    println!(
        "trained {} steps: loss {:.4}{}, {:.0} tokens/s; adapter in {} ({} and {})",
        history.len(),
        last.map_or(f64::NAN, |r| r.loss),
        eval_losses
            .last()
            .map(|l| format!(", eval loss {l:.4}"))
            .unwrap_or_default(),
        tokens as f64 / seconds.max(1e-9),
        out.display(),
        peft::WEIGHTS_FILE,
        ADAPTER_GGUF,
    );
    Ok(())
}

/// The adapter in PEFT's layout and as a GGUF LoRA (loss.csv and loss.png are written by the
/// trainer with every checkpoint, the last one included).
fn write_adapters(model: &Llama, base: &Path, args: &TrainArgs, out: &Path) -> Result<()> {
    peft::save(model, args.hf_base.as_deref(), out)?;
    let name = base.file_stem().and_then(|s| s.to_str());
    ragtune_train::gguf_lora::write(
        &out.join(ADAPTER_GGUF),
        &peft::adapter_tensors(model)?,
        model.lora_config(),
        model.config(),
        name,
    )?;
    Ok(())
}

fn step_message(r: &Record) -> String {
    let eval = r
        .eval_loss
        .map(|l| format!(" eval {l:.4}"))
        .unwrap_or_default();
    format!(
        "loss {:.4}{eval} lr {:.2e} {:.0} tok/s",
        r.loss,
        r.lr,
        r.tokens as f64 / r.seconds.max(1e-9)
    )
}

fn progress_bar(total: usize, done: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done as u64);
    bar
}

fn rayon_threads(n: usize) {
    // Fails only when the pool already started, in which case it keeps its size.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Write a model with the adapter merged into its weights (GGUF; adapted weights in F32 or
    /// F16, everything else copied), which then runs without --adapter.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The base model the adapter was trained on: a catalogue name or a .gguf file.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub base: String,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// The merged model to write (.gguf).
    #[arg(long)]
    pub out: PathBuf,
    /// Type of the merged weights: f32 (exact) or f16 (half the size). Quantized types are
    /// not offered: rounding W + BA to 4 bits erases most of a LoRA update.
    #[arg(long = "type", default_value = "f32", value_parser = ["f32", "f16"])]
    pub dtype: String,
    /// Strength of the merged update (1 = as trained; 0 writes the base with its adapted
    /// weights dequantized, the unquantized reference to compare against).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

pub fn adapter(cmd: AdapterCommand) -> Result<()> {
    match cmd {
        AdapterCommand::Merge(args) => merge(args),
    }
}

fn merge(args: MergeArgs) -> Result<()> {
    use ragtune_train::merge::{MergedType, merge};
    let base = crate::models::resolve_generator(&args.base)?;
    let (mut lora, tensors) = peft::read(&args.adapter)?;
    anyhow::ensure!(args.scale.is_finite(), "--scale must be a number");
    // The update is (alpha / r) B A; scaling alpha scales it.
    lora.alpha *= args.scale;
    let dtype = if args.dtype == "f16" {
        MergedType::F16
    } else {
        MergedType::F32
    };
    let changed = merge(&base, &tensors, &lora, &args.out, dtype)?;
    println!(
        "merged {} into {} weights of {} -> {}",
        args.adapter.display(),
        changed,
        base.display(),
        args.out.display()
    );
    Ok(())
}
