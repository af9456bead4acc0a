//! Errors of ragtune-train. Each message says which file or line is at fault and what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from `fs-err`, whose message names the path and the cause. Not `#[from]`:
    /// a `std::fs` error without its path cannot slip in by `?`.
    #[error(transparent)]
    File(std::io::Error),

    #[error("{path} is not a usable adapter: {reason}")]
    Adapter { path: PathBuf, reason: String },

    #[error("{path} is not a usable GGUF model: {reason}")]
    Gguf { path: PathBuf, reason: String },

    #[error(
        "{path}: the GGUF has no tensor {name}; only llama-architecture models are supported for training"
    )]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}:{line}: {reason}")]
    Data {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error(
        "{path}: no training examples; add JSON lines in the prompt/completion, messages or Alpaca format"
    )]
    EmptyData { path: PathBuf },

    #[error("{path} does not exist; pass text files (.txt, .md, .rst, .text) or folders of them")]
    MissingText { path: PathBuf },

    #[error(
        "no text files (.txt, .md, .rst, .text) under {paths}; pass such files or folders that hold them"
    )]
    NoTextFiles { paths: String },

    #[error("{path} is not UTF-8 text; save it as UTF-8 or leave it out")]
    NotUtf8 { path: PathBuf },

    #[error(
        "{base} has no chat template, so prompt/response pairs cannot be rendered as at inference; use `ragtune train cpt` for raw text, or an instruction-tuned base"
    )]
    NoChatTemplate { base: PathBuf },

    #[error(
        "training {base} needs about {need_mib} MiB (f32 base weights and activations for {batch_size} sequences of {longest} tokens), but only {limit_mib} MiB are available; lower --batch-size (use --grad-accum to keep the effective batch) or --max-len, or use a smaller base model"
    )]
    Memory {
        base: PathBuf,
        need_mib: u64,
        batch_size: usize,
        longest: usize,
        limit_mib: u64,
    },

    #[error(
        "training was stopped after step {step}, before its last step, so no adapter was written; {out} keeps the checkpoints written so far, which --resume continues"
    )]
    Stopped { step: usize, out: PathBuf },

    #[error("chat template problem: {0}")]
    Template(String),

    #[error("the base weights lack {0}; they must hold every tensor of the llama configuration")]
    MissingWeight(String),

    #[error(
        "a batch has no trainable token (every answer was cut off or empty); raise the sequence length or drop the example"
    )]
    NoTrainableTokens,

    #[error("invalid LoRA settings: {0}")]
    LoraConfig(String),

    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    #[error("invalid training options: {0}")]
    Options(String),

    #[error(
        "training diverged at step {step} (loss {loss}); lower the learning rate or check the data"
    )]
    Diverged { step: usize, loss: f64 },

    #[error("cannot train into {path}: {reason}")]
    OutDir { path: PathBuf, reason: String },

    #[error("cannot resume from checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    #[error("invalid training batch: {0}")]
    Batch(String),

    #[error("cannot tune the allocator: {0}")]
    Allocator(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message with every cause after it, as `anyhow`'s `{:#}` prints an error.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }

    #[test]
    fn io_error_names_the_path_and_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let err = Error::File(fs_err::read(&path).unwrap_err());
        let text = chain(&err);
        assert!(text.contains(&path.display().to_string()), "{text}");
        let cause = std::fs::read(&path).unwrap_err().to_string();
        assert_eq!(text.matches(&cause).count(), 1, "{text}");
    }
}
