//! One error type for the crate. Messages name the model folder or file and say what to do,
//! because they end up in front of users.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running an embedding model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file the model needs is not in its folder.
    #[error(
        "model folder {} has no {file}; an embedding model folder needs config.json, tokenizer.json and model.safetensors (run `ragtune models pull all-minilm-l6-v2`, or pass a sentence-transformers folder)",
        dir.display()
    )]
    MissingFile { dir: PathBuf, file: &'static str },

    /// The path is not a folder.
    #[error(
        "{} is not a model folder (expected a directory with config.json, tokenizer.json and model.safetensors)",
        dir.display()
    )]
    NotAFolder { dir: PathBuf },

    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// A JSON file is malformed or lacks a field.
    #[error("cannot read {}: {message}; the file is damaged or not from a sentence-transformers model, pull the model again", path.display())]
    BadJson { path: PathBuf, message: String },

    /// The config names an architecture this crate cannot run.
    #[error(
        "{}: model_type `{model_type}` is not supported; ragtune-embed runs BERT-family encoders (model_type `bert`), e.g. all-MiniLM-L6-v2",
        path.display()
    )]
    UnsupportedModel { path: PathBuf, model_type: String },

    /// The config asks for a variant this crate does not implement.
    #[error("{}: {what} is not supported ({detail})", path.display())]
    UnsupportedConfig {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },

    /// tokenizer.json could not be loaded.
    #[error("cannot load the tokenizer {}: {message}; pull the model again", path.display())]
    Tokenizer { path: PathBuf, message: String },

    /// Tokenizing a text failed.
    #[error("cannot tokenize a text: {0}")]
    Encode(String),

    /// The weights do not match the config (missing tensor, wrong shape, wrong dtype).
    #[error("{}: {message}; the weights do not match config.json, pull the model again", path.display())]
    Weights { path: PathBuf, message: String },

    /// The worker threads could not be started.
    #[error("cannot start {threads} embedding threads: {message}")]
    Threads { threads: usize, message: String },

    /// A tensor operation failed (a bug, or a shape the model cannot handle).
    #[error("embedding computation failed: {0}")]
    Compute(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for ragtune_core::EmbedError {
    fn from(e: Error) -> Self {
        // A local model fails the same way every time: retrying never helps.
        ragtune_core::EmbedError::Permanent(e.to_string())
    }
}
