//! A base GGUF with a LoRA adapter merged in, as one GGUF that llama.cpp runs without `--lora`.
//!
//! Every tensor and every metadata entry of the base is copied; each adapted weight becomes
//! `W + (alpha / r) B A` in the GGUF layout (q/k rows permuted as llama.cpp expects, see
//! `gguf_lora`), stored as F32 or F16. Untouched tensors keep their raw blocks, quantized or not.
//!
//! There is deliberately no option to requantize merged weights to the base's 4-bit type: a
//! trained delta is typically far smaller than a 4-bit block's step (Q4_1 has 16 levels between
//! a block's min and max), so rounding `W + delta` back to that grid mostly returns `W` and
//! erases the adapter. Keep the merged weights in F32/F16, or keep the base and use `--lora`.

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf_lora::{GgufLoraPair, to_gguf_layout, write_atomic};
use crate::lora::LoraConfig;
use candle_core::quantized::{GgmlDType, gguf_file};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// How the merged weights are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MergedType {
    /// Exact: `W` dequantized plus the delta, no rounding beyond f32 arithmetic.
    #[default]
    F32,
    /// Half the size; rounds `W + delta` to f16 (about 3 significant digits).
    F16,
}

impl MergedType {
    fn ggml(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
        }
    }
}

/// Metadata of the base not copied: candle's writer always aligns to 32 bytes (the GGUF
/// default), and `general.file_type` would claim the base's quantization for a file whose
/// adapted weights are now F32/F16; without it llama.cpp guesses the type from the tensors.
const DROPPED_KEYS: [&str; 2] = ["general.alignment", "general.file_type"];

/// Writes `base` with the adapter (PEFT-named `tensors` and their `lora` settings, from
/// `peft::adapter_tensors` or `peft::read`) merged in to `out`, via a temporary name and a rename.
/// Returns how many weights were changed.
///
/// The whole output is held in memory before writing (candle's GGUF writer takes every tensor
/// at once): about the base's size plus 4 (F32) or 2 (F16) bytes per adapted weight element.
pub fn merge(
    base: &Path,
    tensors: &HashMap<String, Tensor>,
    lora: &LoraConfig,
    out: &Path,
    out_type: MergedType,
) -> Result<usize> {
    let bad = |e: candle_core::Error| Error::Gguf {
        path: base.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = fs_err::File::open(base).map_err(Error::File)?;
    let content = gguf_file::Content::read(&mut file).map_err(bad)?;
    let cfg = LlamaConfig::from_gguf(base, &content)?;
    let mut pairs: HashMap<String, GgufLoraPair> = to_gguf_layout(tensors, lora, &cfg)?
        .into_iter()
        .map(|p| (p.base_name(), p))
        .collect();
    if let Some(name) = pairs
        .keys()
        .find(|n| !content.tensor_infos.contains_key(*n))
    {
        return Err(Error::MissingTensor {
            path: base.to_path_buf(),
            name: name.clone(),
        });
    }

    // The base's order (by data offset), so the merged file lists tensors as the base does.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let dev = Device::Cpu;
    let scale = lora.scale();
    let merged_count = pairs.len();
    let mut out_tensors = Vec::with_capacity(names.len());
    for name in names {
        let q = content.tensor(&mut file, name, &dev).map_err(bad)?;
        let q = match pairs.remove(name) {
            Some(p) => {
                let w = q.dequantize(&dev).map_err(bad)?;
                let delta = (p.b.matmul(&p.a)? * scale)?;
                candle_core::quantized::QTensor::quantize(&(w + delta)?, out_type.ggml())?
            }
            None => q,
        };
        out_tensors.push((name.clone(), q));
    }

    let mut metadata: Vec<(String, gguf_file::Value)> = content
        .metadata
        .into_iter()
        .filter(|(k, _)| !DROPPED_KEYS.contains(&k.as_str()))
        .collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    write_atomic(out, &metadata, &out_tensors)?;
    Ok(merged_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::permute_qk;
    use crate::lora::TargetModule;
    use crate::model::tiny_config as tiny;
    use crate::model::{Llama, random_base_weights};
    use crate::peft;
    use candle_core::quantized::QTensor;
    use gguf_file::Value;

    /// A tiny llama GGUF shaped like a real quantized one: projections Q4_1 with q/k rows in
    /// llama.cpp's order, embedding Q8_0, norms F32, the llama.* keys, a string array.
    fn write_tiny_base(path: &Path, cfg: &LlamaConfig) -> Result<()> {
        let w = random_base_weights(cfg, 11)?;
        let mut tensors = Vec::new();
        let mut names: Vec<&String> = w.keys().collect();
        names.sort();
        for name in names {
            let t = &w[name];
            let (t, dtype) = if name.ends_with("attn_q.weight") {
                (permute_qk(t, cfg.num_heads)?, GgmlDType::Q4_1)
            } else if name.ends_with("attn_k.weight") {
                (permute_qk(t, cfg.num_kv_heads)?, GgmlDType::Q4_1)
            } else if name.contains("norm") {
                (t.clone(), GgmlDType::F32)
            } else if name == "token_embd.weight" {
                (t.clone(), GgmlDType::Q8_0)
            } else {
                (t.clone(), GgmlDType::Q4_1)
            };
            tensors.push((name.clone(), QTensor::quantize(&t, dtype)?));
        }
        let u = |v: usize| Value::U32(v as u32);
        let metadata = vec![
            ("general.architecture".into(), Value::String("llama".into())),
            ("general.alignment".into(), Value::U32(32)),
            ("general.file_type".into(), Value::U32(3)),
            ("llama.block_count".into(), u(cfg.num_layers)),
            ("llama.embedding_length".into(), u(cfg.hidden_size)),
            ("llama.feed_forward_length".into(), u(cfg.intermediate_size)),
            ("llama.attention.head_count".into(), u(cfg.num_heads)),
            ("llama.attention.head_count_kv".into(), u(cfg.num_kv_heads)),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                Value::F32(cfg.rms_norm_eps as f32),
            ),
            (
                "llama.rope.freq_base".into(),
                Value::F32(cfg.rope_theta as f32),
            ),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(
                    (0..cfg.vocab_size)
                        .map(|i| Value::String(format!("t{i}")))
                        .collect(),
                ),
            ),
        ];
        write_atomic(path, &metadata, &tensors)
    }

    fn read(path: &Path) -> Result<(fs_err::File, gguf_file::Content)> {
        let mut f = fs_err::File::open(path).map_err(Error::File)?;
        let c = gguf_file::Content::read(&mut f)?;
        Ok((f, c))
    }

    fn tempdir() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(|e| Error::Write {
            path: "tempdir".into(),
            reason: e.to_string(),
        })
    }

    fn all_targets(rank: usize, alpha: f64) -> LoraConfig {
        LoraConfig {
            rank,
            alpha,
            dropout: 0.0,
            targets: TargetModule::ALL.to_vec(),
        }
    }

    #[test]
    fn zero_adapter_reproduces_the_base_exactly() -> Result<()> {
        let cfg = tiny();
        let dir = tempdir()?;
        let (base, out) = (dir.path().join("base.gguf"), dir.path().join("merged.gguf"));
        write_tiny_base(&base, &cfg)?;
        // A fresh adapter: A random, B zero.
        let lora = all_targets(4, 8.0);
        let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1)?, lora.clone(), 2)?;
        let n = merge(
            &base,
            &peft::adapter_tensors(&model)?,
            &lora,
            &out,
            MergedType::F32,
        )?;
        assert_eq!(n, 14);

        let (mut fb, cb) = read(&base)?;
        let (mut fm, cm) = read(&out)?;
        assert_eq!(cb.tensor_infos.len(), cm.tensor_infos.len());
        let dev = Device::Cpu;
        for (name, info) in &cb.tensor_infos {
            let b = cb.tensor(&mut fb, name, &dev)?;
            let m = cm.tensor(&mut fm, name, &dev)?;
            let adapted = TargetModule::ALL
                .iter()
                .any(|t| name.ends_with(&format!(".{}.weight", crate::gguf_lora::gguf_module(*t))));
            if adapted {
                assert_eq!(m.dtype(), GgmlDType::F32, "{name}");
                let (b, m) = (b.dequantize(&dev)?, m.dequantize(&dev)?);
                assert_eq!(b.to_vec2::<f32>()?, m.to_vec2::<f32>()?, "{name}");
            } else {
                assert_eq!(m.dtype(), info.ggml_dtype, "{name}");
                assert_eq!(b.data()?, m.data()?, "{name} raw blocks");
            }
        }
        for (k, v) in &cb.metadata {
            match cm.metadata.get(k) {
                Some(m) => assert_eq!(format!("{v:?}"), format!("{m:?}"), "{k}"),
                None => assert!(DROPPED_KEYS.contains(&k.as_str()), "{k} lost"),
            }
        }
        assert_eq!(cm.metadata.len(), cb.metadata.len() - 2);
        Ok(())
    }

    #[test]
    fn rank_one_delta_lands_on_the_permuted_q_k_rows() -> Result<()> {
        let cfg = tiny();
        let dir = tempdir()?;
        let (base, out) = (dir.path().join("base.gguf"), dir.path().join("merged.gguf"));
        write_tiny_base(&base, &cfg)?;
        // scale = alpha / r = 2. In layer 1, HF row `row` of q/k/v gets +2*v at column `col`.
        let lora = all_targets(1, 2.0);
        let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1)?, lora.clone(), 2)?;
        let mut tensors = peft::adapter_tensors(&model)?;
        for t in tensors.values_mut() {
            *t = t.zeros_like()?;
        }
        let col = 7;
        let cases = [
            (TargetModule::Q, 13, 0.5f32),
            (TargetModule::K, 2, -0.25),
            (TargetModule::V, 9, 0.125),
        ];
        for (target, row, v) in cases {
            let (out_dim, in_dim) = (
                tensors[&peft::tensor_name(1, target, true)].dims2()?.0,
                cfg.hidden_size,
            );
            let mut a = vec![0f32; in_dim];
            a[col] = 1.0;
            let mut b = vec![0f32; out_dim];
            b[row] = v;
            tensors.insert(
                peft::tensor_name(1, target, false),
                Tensor::from_vec(a, (1, in_dim), &Device::Cpu)?,
            );
            tensors.insert(
                peft::tensor_name(1, target, true),
                Tensor::from_vec(b, (out_dim, 1), &Device::Cpu)?,
            );
        }
        merge(&base, &tensors, &lora, &out, MergedType::F32)?;

        let (mut fb, cb) = read(&base)?;
        let (mut fm, cm) = read(&out)?;
        let dev = Device::Cpu;
        // HF row h*d + s*d/2 + t is GGUF row h*d + 2t + s (convert_hf_to_gguf's permute), d = 8.
        let gguf_row = |row: usize| {
            let (h, r) = (row / 8, row % 8);
            h * 8 + 2 * (r % 4) + r / 4
        };
        for (target, row, v) in cases {
            let name = format!("blk.1.{}.weight", crate::gguf_lora::gguf_module(target));
            let b = cb
                .tensor(&mut fb, &name, &dev)?
                .dequantize(&dev)?
                .to_vec2::<f32>()?;
            let m = cm
                .tensor(&mut fm, &name, &dev)?
                .dequantize(&dev)?
                .to_vec2::<f32>()?;
            let r = if target == TargetModule::V {
                row
            } else {
                gguf_row(row)
            };
            assert_eq!(m[r][col], b[r][col] + 2.0 * v, "{name}[{r}][{col}]");
            let changed = (0..b.len())
                .flat_map(|i| (0..b[0].len()).map(move |j| (i, j)))
                .filter(|&(i, j)| m[i][j] != b[i][j])
                .count();
            assert_eq!(changed, 1, "{name}");
        }
        assert_eq!((gguf_row(13), gguf_row(2)), (11, 4));
        Ok(())
    }

    #[test]
    fn f16_output_keeps_untouched_types_and_a_missing_base_names_its_path() -> Result<()> {
        let cfg = tiny();
        let dir = tempdir()?;
        let (base, out) = (dir.path().join("base.gguf"), dir.path().join("merged.gguf"));
        write_tiny_base(&base, &cfg)?;
        let lora = all_targets(2, 4.0);
        let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1)?, lora.clone(), 2)?;
        let tensors = peft::adapter_tensors(&model)?;
        merge(&base, &tensors, &lora, &out, MergedType::F16)?;
        let (_, cm) = read(&out)?;
        assert_eq!(
            cm.tensor_infos["blk.0.ffn_up.weight"].ggml_dtype,
            GgmlDType::F16
        );
        assert_eq!(
            cm.tensor_infos["token_embd.weight"].ggml_dtype,
            GgmlDType::Q8_0
        );

        let missing = dir.path().join("nope.gguf");
        let err = merge(&missing, &tensors, &lora, &out, MergedType::F32).unwrap_err();
        assert!(err.to_string().contains("nope.gguf"), "{err}");
        Ok(())
    }
}
