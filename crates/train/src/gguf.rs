//! Base weights from a GGUF file, dequantized to f32, in the transformers (HF) layout.
//!
//! llama.cpp's `convert_hf_to_gguf.py` permutes the rows of `q_proj`/`k_proj` so that its rope
//! can rotate adjacent pairs; we undo that here and use the HF rope (rotate-half). The adapters
//! are then trained in the HF layout, which is what PEFT files need; a GGUF LoRA export has to
//! apply the permutation to `lora_B` of q/k again (llama.cpp's `convert_lora_to_gguf.py` does).
//! A qwen2 GGUF is not permuted (llama.cpp applies the NEOX rope, which is rotate-half), so its
//! q/k rows are read as they are.

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Tensors by GGUF name (`blk.0.attn_q.weight`, `blk.0.attn_q.bias`), all f32, q/k in the HF
/// layout.
pub type BaseWeights = HashMap<String, Tensor>;

/// Reads the hyper-parameters and every tensor the llama forward pass needs.
pub fn load(path: &Path) -> Result<(LlamaConfig, BaseWeights)> {
    let bad = |e: candle_core::Error| Error::Gguf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = fs_err::File::open(path).map_err(Error::File)?;
    let content = gguf_file::Content::read(&mut file).map_err(bad)?;
    let cfg = LlamaConfig::from_gguf(path, &content)?;
    let dev = Device::Cpu;
    let mut weights = BaseWeights::new();
    for name in tensor_names(&cfg) {
        if !content.tensor_infos.contains_key(&name) {
            return Err(Error::MissingTensor {
                path: path.to_path_buf(),
                name,
            });
        }
        let q = content.tensor(&mut file, &name, &dev).map_err(bad)?;
        let mut w = q.dequantize(&dev).map_err(bad)?;
        if cfg.architecture.permutes_qk() {
            if name.ends_with("attn_q.weight") {
                w = unpermute_qk(&w, cfg.num_heads)?;
            } else if name.ends_with("attn_k.weight") {
                w = unpermute_qk(&w, cfg.num_kv_heads)?;
            }
        }
        weights.insert(name, w);
    }
    Ok((cfg, weights))
}

/// Only the hyper-parameters (reads the header, not the tensors).
pub fn read_config(path: &Path) -> Result<LlamaConfig> {
    let mut file = fs_err::File::open(path).map_err(Error::File)?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| Error::Gguf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    LlamaConfig::from_gguf(path, &content)
}

/// The GGUF tensor names of a model with this configuration (q/k/v biases where it has them).
pub fn tensor_names(cfg: &LlamaConfig) -> Vec<String> {
    let mut names = vec![
        "token_embd.weight".to_string(),
        "output_norm.weight".to_string(),
    ];
    if !cfg.tie_embeddings {
        names.push("output.weight".into());
    }
    for i in 0..cfg.num_layers {
        for part in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            names.push(format!("blk.{i}.{part}.weight"));
        }
        if cfg.architecture.qkv_bias() {
            for part in ["attn_q", "attn_k", "attn_v"] {
                names.push(format!("blk.{i}.{part}.bias"));
            }
        }
    }
    names
}

/// Inverse of convert_hf_to_gguf's `permute`: GGUF rows are, per head, (d/2, 2) where HF has
/// (2, d/2).
pub fn unpermute_qk(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    w.reshape((n_head, out / n_head / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// The forward direction (HF -> GGUF), for exporting q/k adapters to llama.cpp.
pub fn permute_qk(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    w.reshape((n_head, 2, out / n_head / 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_llama_cpp_and_round_trips() -> candle_core::Result<()> {
        // 2 heads of dim 4, 1 input column: HF rows 0..8.
        let hf = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((8, 1))?;
        let gguf = permute_qk(&hf, 2)?;
        // convert_hf_to_gguf interleaves the two halves of each head: [0,2,1,3, 4,6,5,7].
        assert_eq!(
            gguf.flatten_all()?.to_vec1::<f32>()?,
            vec![0., 2., 1., 3., 4., 6., 5., 7.]
        );
        assert_eq!(
            unpermute_qk(&gguf, 2)?.flatten_all()?.to_vec1::<f32>()?,
            hf.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }
}
