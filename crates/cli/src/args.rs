//! Command-line options shared by several commands.

use clap::Args;
use ragtune_core::SamplingParams;
use ragtune_model::llama::LoadOptions;

/// Which model to run and how.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A catalogue name (see `ragtune models list`), a .gguf file, or a model folder.
    #[arg(
        long,
        short,
        env = "RAGTUNE_MODEL",
        default_value = "smollm2-135m-instruct"
    )]
    pub model: String,
    /// CPU threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (default: the model's, up to 8192).
    #[arg(long = "ctx", default_value_t = 0)]
    pub context_length: u32,
    /// Layers to offload to the GPU (builds with the `cuda` feature).
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
}

impl ModelArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            context_length: self.context_length,
            threads: self.threads,
            gpu_layers: self.gpu_layers,
            ..LoadOptions::default()
        }
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
