//! `ragtune train sft` and `ragtune train cpt`: arguments into a `ragtune_train::RunSpec`, the
//! run's events onto the terminal (progress bar included). The work is `ragtune_train::run`,
//! tokenized by the same llama.cpp tokenizer and chat template that generation uses.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ragtune_core::ChatMessage;
use ragtune_model::llama::Tokenizer;
use ragtune_train::batch::RowStats;
use ragtune_train::out_dir::ADAPTER_GGUF;
use ragtune_train::tokenize::ChatTokenizer;
use ragtune_train::trainer::{Record, TrainOptions};
use ragtune_train::{LoraConfig, RunData, RunEvent, RunSpec, Split, TargetModule, peft};
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

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
    /// The base model: a catalogue name or a .gguf file (llama or qwen2 architecture).
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
    /// The frozen base weights' products: `auto` multiplies them in bf16 (f32 accumulation) on
    /// CPUs with Intel AMX, f32 elsewhere; `f32` keeps f32 everywhere.
    #[arg(long, value_enum, default_value_t = TrainPrecision::Auto)]
    pub precision: TrainPrecision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainPrecision {
    Auto,
    F32,
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
    fn has_chat_template(&self) -> bool {
        self.0.chat_template().is_some()
    }

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

    fn encode_text(&self, text: &str) -> ragtune_train::Result<Vec<u32>> {
        Ok(self.0.encode(text, true))
    }

    fn end_of_generation(&self) -> Option<u32> {
        (0..self.0.vocab_size() as u32).find(|&id| self.0.is_end_of_generation(id))
    }

    fn pad_id(&self) -> u32 {
        self.0.encode(" ", false).first().copied().unwrap_or(0)
    }
}

pub fn sft(args: SftArgs) -> Result<()> {
    let extra = raft_extra(&args.data)?;
    let data = RunData::Sft {
        data: args.data,
        eval: args.eval,
        pack: args.pack,
        skip_bad_lines: args.skip_bad_lines,
    };
    train(&args.common, data, extra)
}

fn cpt(args: CptArgs) -> Result<()> {
    let data = RunData::Cpt {
        text: args.text,
        eval_text: args.eval_text,
    };
    train(&args.common, data, serde_json::Map::new())
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

/// The run the arguments describe.
fn spec(
    args: &TrainArgs,
    data: RunData,
    base: PathBuf,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<RunSpec> {
    Ok(RunSpec {
        data,
        base,
        out: args.out.clone(),
        resume: args.resume,
        lora: LoraConfig {
            rank: args.rank,
            alpha: args.alpha,
            dropout: args.dropout,
            targets: parse_targets(&args.targets)?,
        },
        options: TrainOptions {
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
        },
        max_len: args.max_len,
        threads: args.threads,
        memory_limit_mib: args.memory_limit_mib,
        // This process exists to train.
        tune_allocator: true,
        hf_base: args.hf_base.clone(),
        precision: match args.precision {
            TrainPrecision::Auto => ragtune_train::Precision::Auto,
            TrainPrecision::F32 => ragtune_train::Precision::F32,
        },
        extra,
    })
}

fn train(
    args: &TrainArgs,
    data: RunData,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let base = crate::models::resolve_generator(&args.base)?;
    let tokenizer = load_tokenizer(&base)?;
    let spec = spec(args, data, base, extra)?;
    let report = run_shown(&spec, &tokenizer)?;
    println!(
        "trained {} steps: loss {:.4}{}, {:.0} tokens/s; adapter in {} ({} and {})",
        report.steps,
        report.final_loss.unwrap_or(f64::NAN),
        report
            .eval_loss
            .map(|l| format!(", eval loss {l:.4}"))
            .unwrap_or_default(),
        report.tokens_per_second,
        spec.out.display(),
        peft::WEIGHTS_FILE,
        ADAPTER_GGUF,
    );
    Ok(())
}

fn load_tokenizer(base: &Path) -> Result<Tokenizer> {
    Tokenizer::load(base).with_context(|| format!("loading the tokenizer of {}", base.display()))
}

/// Runs `spec`, showing its events (and a progress bar while it trains).
fn run_shown(spec: &RunSpec, tokenizer: &Tokenizer) -> Result<ragtune_train::RunReport> {
    let mut bar = None;
    let result = ragtune_train::run(spec, &LlamaChat(tokenizer), &mut |event| {
        show(event, spec, &mut bar);
        ControlFlow::Continue(())
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(result?)
}

/// training.json's RAFT record when `data` is the output of `ragtune raft build` (its
/// manifest.json beside it): such data makes a RAFT adapter, which `ask` then prompts the RAFT
/// way.
fn raft_extra(data: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut extra = serde_json::Map::new();
    if let Some(lineage) = ragtune_raft::lineage(data)? {
        eprintln!(
            "RAFT data ({} from {}, {} targets): the adapter will answer with the RAFT prompt",
            lineage.prompt_format,
            lineage.manifest.display(),
            lineage.answer_format.as_str()
        );
        extra.insert(
            ragtune_raft::TRAINING_KEY.to_owned(),
            serde_json::to_value(&lineage)?,
        );
    }
    Ok(extra)
}

/// Prints what the run reports; the progress bar is made when training begins.
fn show(event: &RunEvent<'_>, spec: &RunSpec, bar: &mut Option<ProgressBar>) {
    match event {
        RunEvent::SkippedLines { path, errors } => {
            for e in *errors {
                eprintln!("skipped: {e}");
            }
            eprintln!("{}: skipped {} bad line(s)", path.display(), errors.len());
        }
        RunEvent::Rows { split, path, stats } => {
            let what = match split {
                Split::Train => "train",
                Split::Eval => "eval",
            };
            match path {
                Some(path) => report_rows(what, path, stats),
                None => eprintln!(
                    "{what}: {} files, {} tokens in {} sequences of up to {} tokens",
                    stats.examples, stats.tokens, stats.rows, spec.max_len
                ),
            }
        }
        RunEvent::Resumed { step, total } => eprintln!("resumed at step {step} of {total}"),
        RunEvent::NoCheckpoint { out } => {
            eprintln!("no checkpoint in {}; starting fresh", out.display())
        }
        RunEvent::EvalLossBefore(loss) => eprintln!("eval loss before training: {loss:.4}"),
        RunEvent::Training { total, done } => *bar = Some(progress_bar(*total, *done)),
        RunEvent::Step(r) => {
            let Some(bar) = bar else { return };
            bar.set_position(r.step as u64);
            bar.set_message(step_message(r));
            // Without a terminal (logs, CI) a line now and then instead of the bar.
            let total = bar.length().unwrap_or(0) as usize;
            if bar.is_hidden() && (r.step == 1 || r.step.is_multiple_of(10) || r.step == total) {
                eprintln!("step {}/{total}: {}", r.step, step_message(r));
            }
        }
        RunEvent::Checkpoint(_) => {}
    }
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

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// List trained adapters (run folders) with what they were trained on, and flag those
    /// whose documents changed since (lineage recorded by RAFT data).
    List(crate::adapters::ListArgs),
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
        AdapterCommand::List(args) => crate::adapters::list(args),
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

/// Trains the adapters `compare --train` asks for: `ragtune train sft|cpt` with the
/// comparison's budget (LoRA on q and v, micro-batches of one), progress on standard error.
pub struct CompareTrainer;

impl ragtune_eval::Trainer for CompareTrainer {
    fn train(
        &self,
        base: &str,
        data: &Path,
        cpt: bool,
        budget: &ragtune_eval::Budget,
        out: &Path,
    ) -> std::result::Result<(), String> {
        let run = || -> Result<()> {
            let extra = raft_extra(data)?;
            let data = if cpt {
                RunData::Cpt {
                    text: vec![data.to_owned()],
                    eval_text: Vec::new(),
                }
            } else {
                RunData::Sft {
                    data: data.to_owned(),
                    eval: None,
                    pack: false,
                    skip_bad_lines: false,
                }
            };
            let path = crate::models::resolve_generator(base)?;
            let tokenizer = load_tokenizer(&path)?;
            let mut spec = RunSpec::new(data, path, out);
            spec.lora = LoraConfig {
                rank: budget.rank,
                alpha: 2.0 * budget.rank as f64,
                ..LoraConfig::default()
            };
            spec.options = TrainOptions {
                lr: budget.lr,
                max_steps: Some(budget.steps),
                batch_size: 1,
                grad_accum: budget.examples_per_step,
                warmup_ratio: 0.05,
                save_every: 0,
                seed: budget.seed,
                ..TrainOptions::default()
            };
            spec.max_len = budget.max_len;
            spec.tune_allocator = true;
            spec.extra = extra;
            run_shown(&spec, &tokenizer)?;
            Ok(())
        };
        run().map_err(|e| format!("{e:#}"))
    }
}
