//! Text generation on llama.cpp (through the `llama-cpp-2` crate).
//!
//! llama.cpp was chosen over candle's quantized path after measuring both on the target CPU
//! (candle was 2-4x slower); see ARCHITECTURE.md.

mod context_cache;
mod generator;
mod prompt_cache;
mod quantize;
mod sampling;
mod tokenizer;

pub use generator::{AdapterSpec, LlamaGenerator, LoadOptions, Perplexity};
pub use quantize::{QuantType, quantize};
pub use tokenizer::Tokenizer;

use crate::gguf::{GgufError, GgufHeader};
use crate::template::TemplateError;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a model could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("llama.cpp could not load {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error(
        "{path}: architecture {arch:?} is not supported by this build of llama.cpp \
         (supported here: llama, qwen2, gemma3 and the others llama.cpp knows)"
    )]
    Architecture { path: PathBuf, arch: String },
    #[error("cannot use adapter {path}: {reason}")]
    Adapter { path: PathBuf, reason: String },
    #[error("llama.cpp backend failed to start: {0}")]
    Backend(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// llama.cpp keeps process-wide backend state; it is started once and never torn down. Public
/// for callers that drive `llama-cpp-2` directly beside a generator (llama.cpp allows one
/// backend per process): the tests' plain reference loop.
pub fn backend() -> Result<&'static LlamaBackend, ModelError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every load to stderr; ragtune reports what matters itself.
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(false),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ModelError::Backend(e.clone()))
}

/// Checks the file's header, then loads it with llama.cpp.
fn load_model(
    path: &Path,
    params: &LlamaModelParams,
) -> Result<(LlamaModel, GgufHeader), ModelError> {
    let header = GgufHeader::read(path)?;
    let backend = backend()?;
    let model = LlamaModel::load_from_file(backend, path, params).map_err(|e| {
        match header.architecture() {
            Some(arch) if !is_known_architecture(arch) => ModelError::Architecture {
                path: path.to_path_buf(),
                arch: arch.to_string(),
            },
            _ => ModelError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        }
    })?;
    Ok((model, header))
}

/// Architectures we build and test for. Others may load; if they fail, we say why.
fn is_known_architecture(arch: &str) -> bool {
    matches!(
        arch,
        "llama" | "qwen2" | "qwen3" | "gemma" | "gemma2" | "gemma3" | "phi3" | "mistral"
    )
}
