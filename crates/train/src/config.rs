//! Llama hyper-parameters, read from GGUF metadata or given directly (tests, tiny models).

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// The output projection is the token embedding (no `output.weight` in the GGUF).
    pub tie_embeddings: bool,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    pub fn kv_dim(&self) -> usize {
        self.head_dim() * self.num_kv_heads
    }

    pub(crate) fn from_gguf(path: &Path, content: &gguf_file::Content) -> Result<Self> {
        let bad = |reason: String| Error::Gguf {
            path: path.to_path_buf(),
            reason,
        };
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| bad("no general.architecture".into()))?;
        if arch != "llama" {
            return Err(bad(format!(
                "architecture {arch} is not supported for training; use a llama-architecture model (Llama, SmolLM2, Mistral-like)"
            )));
        }
        let get = |key: &str| {
            content
                .metadata
                .get(&format!("llama.{key}"))
                .ok_or_else(|| bad(format!("metadata llama.{key} is missing")))
        };
        let usize_of = |key: &str| -> Result<usize> {
            Ok(get(key)?
                .to_u32()
                .map_err(|e| bad(format!("llama.{key}: {e}")))? as usize)
        };
        let f64_of = |key: &str| -> Result<f64> {
            Ok(get(key)?
                .to_f32()
                .map_err(|e| bad(format!("llama.{key}: {e}")))? as f64)
        };
        let embd = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| bad("no token_embd.weight".into()))?;
        let vocab_size = embd.shape.dims()[0];
        let num_heads = usize_of("attention.head_count")?;
        let cfg = Self {
            vocab_size,
            hidden_size: usize_of("embedding_length")?,
            intermediate_size: usize_of("feed_forward_length")?,
            num_layers: usize_of("block_count")?,
            num_heads,
            num_kv_heads: usize_of("attention.head_count_kv").unwrap_or(num_heads),
            rms_norm_eps: f64_of("attention.layer_norm_rms_epsilon")?,
            // llama.cpp's default when a converter left it out.
            rope_theta: f64_of("rope.freq_base").unwrap_or(10_000.0),
            tie_embeddings: !content.tensor_infos.contains_key("output.weight"),
        };
        if !cfg.hidden_size.is_multiple_of(cfg.num_heads)
            || !cfg.num_heads.is_multiple_of(cfg.num_kv_heads)
        {
            return Err(bad(format!("inconsistent head counts: {cfg:?}")));
        }
        Ok(cfg)
    }
}
