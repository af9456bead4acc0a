//! Command-line options shared by several commands.

use crate::kb::parse_mode;
use anyhow::{Context, Result, bail};
use clap::Args;
use ragtune_answer::{AskOptions, Mode};
use ragtune_core::{SamplingParams, SearchMode};
use ragtune_model::llama::{AdapterSpec, LoadOptions};
use std::path::{Path, PathBuf};

/// The name `--adapter` is loaded under.
pub const ADAPTER_NAME: &str = "adapter";

/// The GGUF LoRA file llama.cpp loads for `--adapter PATH` over the GGUF `base`: a `ragtune
/// train` run folder (its adapter.gguf), a GGUF LoRA file, or a PEFT adapter folder
/// (adapter_config.json + adapter_model.safetensors, from PEFT, Axolotl or Unsloth), converted
/// once into `$RAGTUNE_HOME/adapters/peft/` under a hash of its files and the base.
pub fn adapter_file(path: &Path, base: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let file = path.join(ragtune_train::out_dir::ADAPTER_GGUF);
        if file.is_file() {
            return Ok(file);
        }
        if path.join(ragtune_train::peft::CONFIG_FILE).is_file() {
            return converted_peft(path, base);
        }
        bail!(
            "{} has neither {} (the GGUF LoRA `ragtune train` writes) nor {} (a PEFT adapter); \
             pass the folder of a finished training run, a PEFT adapter folder or a GGUF LoRA \
             file",
            path.display(),
            ragtune_train::out_dir::ADAPTER_GGUF,
            ragtune_train::peft::CONFIG_FILE
        );
    }
    anyhow::ensure!(path.is_file(), "adapter {} does not exist", path.display());
    Ok(path.to_path_buf())
}

/// A PEFT adapter as a GGUF LoRA for `base`, converted on first use and reused while neither
/// the adapter's files nor the base change.
fn converted_peft(dir: &Path, base: &Path) -> Result<PathBuf> {
    let mut hash = blake3::Hasher::new();
    for name in [
        ragtune_train::peft::CONFIG_FILE,
        ragtune_train::peft::WEIGHTS_FILE,
    ] {
        let file = dir.join(name);
        let bytes = fs_err::read(&file)?;
        hash.update(&(bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    // The base by where it is and its size and time: hashing gigabytes on every run would
    // cost more than the conversion.
    let base_abs = fs_err::canonicalize(base)?;
    let meta = fs_err::metadata(&base_abs)?;
    hash.update(base_abs.as_os_str().as_encoded_bytes());
    hash.update(&meta.len().to_le_bytes());
    if let Ok(modified) = meta.modified()
        && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
    {
        hash.update(&since.as_nanos().to_le_bytes());
    }
    let out_dir = ragtune_catalog::default_home()?
        .join("adapters")
        .join("peft");
    let out = out_dir.join(format!("{}.gguf", &hash.finalize().to_hex()[..32]));
    if out.is_file() {
        return Ok(out);
    }
    fs_err::create_dir_all(&out_dir)?;
    ragtune_train::gguf_lora::from_peft(dir, base, &out).with_context(|| {
        format!(
            "converting the PEFT adapter {} for {}",
            dir.display(),
            base.display()
        )
    })?;
    eprintln!(
        "note: converted the PEFT adapter {} for llama.cpp: {}",
        dir.display(),
        out.display()
    );
    Ok(out)
}

/// Which model to run and how.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A catalogue name (see `ragtune models list`), a .gguf file, a model folder, or a model
    /// on an OpenAI-compatible server, `openai:NAME@URL` with URL the API's base (e.g.
    /// openai:qwen@http://10.0.0.5:8000/v1) (default: smollm2-135m-instruct; for `ask`,
    /// qwen2.5-coder-0.5b-instruct-q8_0 when installed, else qwen2.5-coder-0.5b-instruct).
    #[arg(long, short, env = "RAGTUNE_MODEL")]
    pub model: Option<String>,
    /// The environment variable holding the API key of an `openai:` model (sent as a bearer
    /// token, never printed).
    #[arg(long, default_value = ragtune_remote::DEFAULT_KEY_VAR)]
    pub api_key_env: String,
    /// CPU threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (default: the model's, up to 8192).
    #[arg(long = "ctx", default_value_t = 0)]
    pub context_length: u32,
    /// Layers to offload to the GPU (builds with the `cuda` feature).
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
    /// A LoRA adapter to apply: the output folder of `ragtune train` (its adapter.gguf), a
    /// GGUF LoRA file, or a PEFT adapter folder (PEFT, Axolotl, Unsloth; converted once).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// How strongly the adapter applies (1 = as trained).
    #[arg(long, default_value_t = 1.0, requires = "adapter")]
    pub adapter_scale: f32,
    /// Keep the KV cache in f32 (default f16): exact keys and values, twice the cache memory.
    #[arg(long)]
    pub f32_kv_cache: bool,
    /// Where a one-shot command keeps the model's KV cells for the next run (not a flag: `ask`
    /// sets it; see `LoadOptions::prompt_cache`).
    #[arg(skip)]
    pub prompt_cache: Option<PathBuf>,
}

/// The default model of `generate`, `chat` and the evaluations: small and fast.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";
/// The default model of `ask`: the best answerer `models pull` installs (RAG exact match on
/// SQuAD 27% against SmolLM2's 1%, BENCHMARKS.md).
pub const DEFAULT_ANSWER_MODEL: &str = "qwen2.5-coder-0.5b-instruct";
/// What `ask` loads by default when it is installed (`scripts/setup` makes it with `models
/// quantize`): [`DEFAULT_ANSWER_MODEL`] re-quantized to Q8_0, which ggml multiplies with tiled
/// kernels where the shipped Q5_0/Q4_K tensors have none: prompts 3.7x and decoding 1.25x as
/// fast on an Intel Xeon, perplexity +0.08% (BENCHMARKS.md, "Generation").
pub const FAST_ANSWER_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q8_0";

/// `ask`'s model when none is named: [`FAST_ANSWER_MODEL`] if the store has it, else
/// [`DEFAULT_ANSWER_MODEL`].
pub fn default_answer_model() -> String {
    let installed = ragtune_catalog::ModelStore::from_env()
        .and_then(|store| store.resolve(FAST_ANSWER_MODEL))
        .is_ok();
    if installed {
        FAST_ANSWER_MODEL
    } else {
        DEFAULT_ANSWER_MODEL
    }
    .to_owned()
}

impl ModelArgs {
    /// The model to load: the one asked for, else the command's default.
    pub fn name(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }

    /// How an `openai:` model is reached: the key from `--api-key-env`, `--ctx` if given.
    pub fn remote_options(&self) -> ragtune_remote::Options {
        ragtune_remote::Options {
            api_key: ragtune_remote::ApiKey::from_env(&self.api_key_env),
            api_key_var: self.api_key_env.clone(),
            context_length: self.context_length,
            ..ragtune_remote::Options::default()
        }
    }

    /// How the GGUF model at `path` loads: threads, context, and the adapter for it.
    pub fn load_options(&self, path: &Path) -> Result<LoadOptions> {
        let adapters = match &self.adapter {
            Some(adapter) => vec![AdapterSpec {
                name: ADAPTER_NAME.into(),
                path: adapter_file(adapter, path)?,
                scale: self.adapter_scale,
            }],
            None => Vec::new(),
        };
        Ok(LoadOptions {
            context_length: self.context_length,
            threads: self.threads,
            gpu_layers: self.gpu_layers,
            adapters,
            f32_kv_cache: self.f32_kv_cache,
            prompt_cache: self.prompt_cache.clone(),
            ..LoadOptions::default()
        })
    }
}

/// How tokens are picked and when generation ends.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, short = 'n', default_value_t = 256)]
    pub max_tokens: u32,
    /// 0 picks the most likely token (greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: u32,
    /// Sample among the most likely tokens up to this total probability (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Penalise tokens seen in the last 64 (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Seed of the sampler, for repeatable runs.
    #[arg(long, default_value_t = 42)]
    pub seed: u32,
    /// Stop before this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: 64,
            seed: self.seed,
        }
    }
}

/// Passages a RAG prompt shows by default: two measured best with the worked demonstrations
/// (ARCHITECTURE.md, "RAG prompts show two worked exchanges and two passages").
pub const DEFAULT_TOP_K: usize = 2;

/// How an answer is built: what `ask` and `eval qa` share.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// Examples shown in few-shot mode, chosen by similarity to the question.
    #[arg(short = 'k', default_value_t = 4)]
    pub shots: usize,
    /// Passages retrieved (rag; at least 1; default 2, or as many as a RAFT adapter was
    /// trained on).
    #[arg(long, value_parser = crate::kb::at_least::<1>)]
    pub top_k: Option<usize>,
    /// Retrieval mode: hybrid, bm25 or dense.
    #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
    pub search: SearchMode,
    /// Most tokens of the answer.
    #[arg(long, short = 'n', default_value_t = 64)]
    pub max_tokens: u32,
    /// Most tokens of the prompt (default: the context less the answer).
    #[arg(long)]
    pub prompt_budget: Option<u32>,
    /// Abstain when the best retrieval score is below this (on the retriever's scale; hybrid:
    /// 0.42 for a chunk first in both lists, 0.25 first in BM25 only, 0.17 first in dense only).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Abstain when the model's confidence in its reply (geometric mean of its token
    /// probabilities, 0 to 1) is below this.
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// Context expansion (rag): widen each retrieved chunk by its document's neighbouring
    /// chunks, up to this many tokens per passage and within the prompt budget; adjacent hits
    /// merge (0 = off: the chunks alone).
    #[arg(long, default_value_t = 0)]
    pub window: u32,
    /// A JSON file of prompt texts put over the mode's built-in template (fields: system, user,
    /// passage, example_user, example_assistant, demonstrations, refusal, refusal_markers).
    #[arg(long)]
    pub template: Option<PathBuf>,
}

impl AnswerArgs {
    /// The options for `mode`; reads the template file, so a bad one fails before any model
    /// loads.
    pub fn options(&self, mode: Mode) -> Result<AskOptions> {
        let mut o = AskOptions::default().with_mode(mode);
        o.top_k = self.top_k.unwrap_or(DEFAULT_TOP_K);
        o.search = self.search;
        o.examples = self.shots;
        o.max_tokens = self.max_tokens;
        o.prompt_budget = self.prompt_budget;
        o.abstention.min_score = self.min_score;
        o.abstention.min_confidence = self.min_confidence;
        o.window = self.window;
        if let Some(file) = &self.template {
            o.template = Some(mode.template().overridden_by(file)?);
        }
        Ok(o)
    }
}
