//! Llama hyper-parameters, read from GGUF metadata or given directly (tests, tiny models).
//! Qwen2 is the llama block with biased q/k/v projections, so one configuration serves both.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use std::path::Path;

/// The model families the trainer runs. Both are the llama block (RMSNorm, rope, grouped-query
/// attention, SwiGLU). Qwen2 (Qwen2 and Qwen2.5) adds a bias to the q, k and v projections,
/// and its GGUF keeps their rows in the transformers order (llama.cpp rotates them with its
/// NEOX rope), where a llama GGUF permutes them for llama.cpp's pairwise rope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    /// The `general.architecture` value, also the prefix of the model's metadata keys.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    fn from_gguf_name(name: &str) -> Option<Self> {
        [Self::Llama, Self::Qwen2]
            .into_iter()
            .find(|a| a.gguf_name() == name)
    }

    /// Whether the q, k and v projections carry a bias (`blk.{i}.attn_q.bias`, ...).
    pub fn qkv_bias(self) -> bool {
        self == Self::Qwen2
    }

    /// Whether the GGUF's q/k rows are permuted (convert_hf_to_gguf's `permute`, llama only):
    /// undone when loading, applied again to an exported adapter's q/k `lora_B`.
    pub fn permutes_qk(self) -> bool {
        self == Self::Llama
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: Architecture,
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
        let architecture = Architecture::from_gguf_name(arch).ok_or_else(|| {
            bad(format!(
                "architecture {arch} is not supported for training; use a llama or qwen2 model (Llama, SmolLM2, Mistral-like, Qwen2, Qwen2.5)"
            ))
        })?;
        let get = |key: &str| {
            content
                .metadata
                .get(&format!("{arch}.{key}"))
                .ok_or_else(|| bad(format!("metadata {arch}.{key} is missing")))
        };
        let usize_of = |key: &str| -> Result<usize> {
            Ok(get(key)?
                .to_u32()
                .map_err(|e| bad(format!("{arch}.{key}: {e}")))? as usize)
        };
        let f64_of = |key: &str| -> Result<f64> {
            Ok(get(key)?
                .to_f32()
                .map_err(|e| bad(format!("{arch}.{key}: {e}")))? as f64)
        };
        let embd = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| bad("no token_embd.weight".into()))?;
        let vocab_size = embd.shape.dims()[0];
        let num_heads = usize_of("attention.head_count")?;
        let cfg = Self {
            architecture,
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
