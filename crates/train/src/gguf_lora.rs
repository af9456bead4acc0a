//! Adapters as a GGUF LoRA file that llama.cpp loads with `--lora FILE`.
//!
//! The layout is what llama.cpp's `convert_lora_to_gguf.py` writes (its default `--outtype f32`):
//! metadata `general.architecture` (the base's: llama.cpp refuses an adapter of another),
//! `general.type = "adapter"`, `adapter.type = "lora"`, `adapter.lora.alpha` (f32),
//! `general.quantization_version`; tensors
//! `blk.{i}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_{a|b}`, f32,
//! `lora_a` [r, in] and `lora_b` [out, r] (row-major; GGUF's `ne` is the reverse, which is what
//! llama-adapter.cpp checks against the base tensor). llama.cpp scales by `alpha / r` with r
//! read from `lora_a`, as PEFT does.
//!
//! The converter pushes the adapter through the base converter's `permute` of q/k rows, which
//! touches only `lora_B` (rows are outputs); we do the same with `gguf::permute_qk`, because the
//! adapters are trained in the HF layout (see `gguf`). A qwen2 base is not permuted, nor are its
//! adapters.

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::gguf::permute_qk;
use crate::lora::{LoraConfig, TargetModule};
use crate::peft;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// `GGML_QUANT_VERSION`, which the converter stores in every file.
const QUANT_VERSION: u32 = 2;

/// llama.cpp's name for a projection: `blk.{i}.{this}.weight`.
pub fn gguf_module(target: TargetModule) -> &'static str {
    match target {
        TargetModule::Q => "attn_q",
        TargetModule::K => "attn_k",
        TargetModule::V => "attn_v",
        TargetModule::O => "attn_output",
        TargetModule::Gate => "ffn_gate",
        TargetModule::Up => "ffn_up",
        TargetModule::Down => "ffn_down",
    }
}

/// The base tensor an adapter applies to, e.g. `blk.3.attn_q.weight`.
pub fn base_tensor_name(layer: usize, target: TargetModule) -> String {
    format!("blk.{layer}.{}.weight", gguf_module(target))
}

/// One adapted weight in llama.cpp's layout: `W + scale * b a` with `b` already permuted for q/k
/// where the base is.
#[derive(Debug, Clone)]
pub struct GgufLoraPair {
    pub layer: usize,
    pub target: TargetModule,
    /// [r, in], f32
    pub a: Tensor,
    /// [out, r], f32, rows in the GGUF order
    pub b: Tensor,
}

impl GgufLoraPair {
    pub fn base_name(&self) -> String {
        base_tensor_name(self.layer, self.target)
    }
}

/// [out, in] of a projection in the base (the HF `nn.Linear` weight shape).
fn weight_shape(cfg: &LlamaConfig, target: TargetModule) -> (usize, usize) {
    let (h, kv, ff) = (cfg.hidden_size, cfg.kv_dim(), cfg.intermediate_size);
    match target {
        TargetModule::Q | TargetModule::O => (h, h),
        TargetModule::K | TargetModule::V => (kv, h),
        TargetModule::Gate | TargetModule::Up => (ff, h),
        TargetModule::Down => (h, ff),
    }
}

/// Checks PEFT-named tensors against the LoRA settings and the base, and turns them into
/// llama.cpp's layout, layer-major in `TargetModule::ALL` order. Every layer must carry every
/// target of `lora` and nothing else: a missing, extra or misshapen tensor is an error here
/// rather than a file llama.cpp refuses (or worse, loads) later.
pub fn to_gguf_layout(
    tensors: &HashMap<String, Tensor>,
    lora: &LoraConfig,
    cfg: &LlamaConfig,
) -> Result<Vec<GgufLoraPair>> {
    lora.validate()?;
    let bad = |reason: String| Error::LoraConfig(reason);
    let mut pairs = Vec::new();
    for layer in 0..cfg.num_layers {
        for target in TargetModule::ALL {
            if !lora.targets.contains(&target) {
                continue;
            }
            let get = |b: bool| {
                let name = peft::tensor_name(layer, target, b);
                tensors
                    .get(&name)
                    .ok_or_else(|| bad(format!("the adapter has no {name}")))
            };
            let (a, b) = (get(false)?, get(true)?);
            let (out, inp) = weight_shape(cfg, target);
            if a.dims() != [lora.rank, inp] || b.dims() != [out, lora.rank] {
                return Err(bad(format!(
                    "layer {layer} {}: lora_A {:?} and lora_B {:?} do not fit rank {} on a [{out}, {inp}] weight; was the adapter trained on another base model?",
                    target.hf_name(),
                    a.dims(),
                    b.dims(),
                    lora.rank
                )));
            }
            let b = b.to_dtype(DType::F32)?;
            let b = match target {
                TargetModule::Q if cfg.architecture.permutes_qk() => permute_qk(&b, cfg.num_heads)?,
                TargetModule::K if cfg.architecture.permutes_qk() => {
                    permute_qk(&b, cfg.num_kv_heads)?
                }
                _ => b.contiguous()?,
            };
            pairs.push(GgufLoraPair {
                layer,
                target,
                a: a.to_dtype(DType::F32)?.contiguous()?,
                b,
            });
        }
    }
    if tensors.len() != 2 * pairs.len() {
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|k| {
                !pairs.iter().any(|p| {
                    **k == peft::tensor_name(p.layer, p.target, false)
                        || **k == peft::tensor_name(p.layer, p.target, true)
                })
            })
            .collect();
        extra.sort();
        return Err(bad(format!(
            "the adapter holds {} tensor(s) outside its target modules {:?} and the base's {} layers, e.g. {:?}",
            extra.len(),
            lora.targets,
            cfg.num_layers,
            extra.first()
        )));
    }
    Ok(pairs)
}

/// Writes PEFT-named adapter tensors (from `peft::adapter_tensors` or `peft::read`) as a GGUF
/// LoRA for a base with configuration `cfg`. `name` goes to `general.name` (the converter puts
/// the adapter directory's name there). Written to a temporary name and renamed.
pub fn write(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    lora: &LoraConfig,
    cfg: &LlamaConfig,
    name: Option<&str>,
) -> Result<()> {
    let pairs = to_gguf_layout(tensors, lora, cfg)?;
    let mut named = Vec::with_capacity(2 * pairs.len());
    for p in &pairs {
        let base = p.base_name();
        named.push((
            format!("{base}.lora_a"),
            QTensor::quantize(&p.a, GgmlDType::F32)?,
        ));
        named.push((
            format!("{base}.lora_b"),
            QTensor::quantize(&p.b, GgmlDType::F32)?,
        ));
    }
    let s = |v: &str| gguf_file::Value::String(v.to_string());
    let mut metadata = vec![
        (
            "general.architecture".to_string(),
            s(cfg.architecture.gguf_name()),
        ),
        ("general.type".to_string(), s("adapter")),
    ];
    if let Some(name) = name {
        metadata.push(("general.name".to_string(), s(name)));
    }
    metadata.extend([
        ("adapter.type".to_string(), s("lora")),
        (
            "adapter.lora.alpha".to_string(),
            gguf_file::Value::F32(lora.alpha as f32),
        ),
        (
            "general.quantization_version".to_string(),
            gguf_file::Value::U32(QUANT_VERSION),
        ),
    ]);
    write_atomic(path, &metadata, &named)
}

/// Converts a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, as PEFT,
/// Axolotl and Unsloth save it for the Hugging Face version of `base`) into a GGUF LoRA at `out`
/// that llama.cpp applies over the GGUF `base`: what llama.cpp's `convert_lora_to_gguf.py` does,
/// without Python. Shapes are checked against `base` first, so an adapter for another model is
/// refused here, by name.
pub fn from_peft(peft_dir: &Path, base: &Path, out: &Path) -> Result<()> {
    let (lora, tensors) = crate::peft::read(peft_dir)?;
    let mut file = fs_err::File::open(base).map_err(Error::File)?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| Error::Gguf {
        path: base.to_path_buf(),
        reason: e.to_string(),
    })?;
    let cfg = LlamaConfig::from_gguf(base, &content)?;
    let name = peft_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    write(out, &tensors, &lora, &cfg, name.as_deref())
}

/// `gguf_file::write` to `.{name}.tmp` beside `path`, then a rename, so that an interrupted
/// export never leaves a truncated file under the final name.
pub(crate) fn write_atomic(
    path: &Path,
    metadata: &[(String, gguf_file::Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let err = |p: &Path, reason: String| Error::Write {
        path: p.to_path_buf(),
        reason,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| err(path, "not a file path".into()))?
        .to_string_lossy();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    }
    let tmp = dir
        .unwrap_or(Path::new("."))
        .join(format!(".{file_name}.tmp"));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e.to_string()))?;
        let mut w = std::io::BufWriter::new(file);
        let md: Vec<(&str, &gguf_file::Value)> =
            metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut w, &md, &ts).map_err(|e| err(&tmp, e.to_string()))?;
        let file = w.into_inner().map_err(|e| err(&tmp, e.to_string()))?;
        file.sync_all().map_err(|e| err(&tmp, e.to_string()))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| err(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tiny_config as tiny;
    use crate::model::{Llama, random_base_weights};
    use candle_core::Device;
    use ragtune_core::rng::SplitMix64;

    /// A tiny model with all 7 targets and non-zero B, as PEFT tensors.
    fn tiny_adapter(lora: &LoraConfig) -> Result<HashMap<String, Tensor>> {
        tiny_adapter_of(&tiny(), lora)
    }

    fn tiny_adapter_of(cfg: &LlamaConfig, lora: &LoraConfig) -> Result<HashMap<String, Tensor>> {
        let cfg = cfg.clone();
        let model = Llama::new(cfg.clone(), &random_base_weights(&cfg, 1)?, lora.clone(), 2)?;
        let mut rng = SplitMix64::new(3);
        for (_, _, l) in model.adapters() {
            let n = l.b.elem_count();
            l.b.set(&Tensor::from_vec(
                rng.uniform(n, -1., 1.),
                l.b.shape(),
                &Device::Cpu,
            )?)?;
        }
        peft::adapter_tensors(&model)
    }

    fn all_targets() -> LoraConfig {
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: TargetModule::ALL.to_vec(),
        }
    }

    #[test]
    fn tiny_adapter_has_llama_cpp_names_shapes_metadata_and_permuted_qk_b() -> Result<()> {
        let (cfg, lora) = (tiny(), all_targets());
        let tensors = tiny_adapter(&lora)?;
        let dir = tempfile::tempdir().map_err(|e| Error::Write {
            path: "tempdir".into(),
            reason: e.to_string(),
        })?;
        let path = dir.path().join("adapter.gguf");
        write(&path, &tensors, &lora, &cfg, Some("tiny"))?;
        assert!(!dir.path().join(".adapter.gguf.tmp").exists());

        let mut f = fs_err::File::open(&path).map_err(Error::File)?;
        let content = gguf_file::Content::read(&mut f)?;
        let md = |k: &str| content.metadata.get(k).unwrap_or_else(|| panic!("no {k}"));
        assert_eq!(md("general.architecture").to_string()?, "llama");
        assert_eq!(md("general.type").to_string()?, "adapter");
        assert_eq!(md("general.name").to_string()?, "tiny");
        assert_eq!(md("adapter.type").to_string()?, "lora");
        assert_eq!(md("adapter.lora.alpha").to_f32()?, 8.0);
        assert!(matches!(md("adapter.lora.alpha"), gguf_file::Value::F32(_)));
        assert_eq!(md("general.quantization_version").to_u32()?, 2);
        assert_eq!(content.metadata.len(), 6);

        assert_eq!(content.tensor_infos.len(), 2 * 7 * 2);
        let expect = [
            ("attn_q", 32, 32),
            ("attn_k", 16, 32),
            ("attn_v", 16, 32),
            ("attn_output", 32, 32),
            ("ffn_gate", 64, 32),
            ("ffn_up", 64, 32),
            ("ffn_down", 32, 64),
        ];
        for layer in 0..2 {
            for (m, out, inp) in expect {
                let info = |s: &str| {
                    let name = format!("blk.{layer}.{m}.weight.{s}");
                    content
                        .tensor_infos
                        .get(&name)
                        .unwrap_or_else(|| panic!("no {name}"))
                };
                assert_eq!(info("lora_a").shape.dims(), &[4, inp], "{m}");
                assert_eq!(info("lora_b").shape.dims(), &[out, 4], "{m}");
                assert_eq!(info("lora_a").ggml_dtype, GgmlDType::F32);
                assert_eq!(info("lora_b").ggml_dtype, GgmlDType::F32);
            }
        }

        let mut read = |name: &str| -> Result<Vec<Vec<f32>>> {
            Ok(content
                .tensor(&mut f, name, &Device::Cpu)?
                .dequantize(&Device::Cpu)?
                .to_vec2()?)
        };
        let trained = |l: usize, t: TargetModule, b: bool| -> Result<Tensor> {
            Ok(tensors[&peft::tensor_name(l, t, b)].clone())
        };
        // lora_A as trained; lora_B of q (4 heads) and k (2 kv heads) with rows permuted.
        assert_eq!(
            read("blk.1.attn_q.weight.lora_a")?,
            trained(1, TargetModule::Q, false)?.to_vec2::<f32>()?
        );
        assert_eq!(
            read("blk.1.attn_q.weight.lora_b")?,
            permute_qk(&trained(1, TargetModule::Q, true)?, 4)?.to_vec2::<f32>()?
        );
        assert_eq!(
            read("blk.0.attn_k.weight.lora_b")?,
            permute_qk(&trained(0, TargetModule::K, true)?, 2)?.to_vec2::<f32>()?
        );
        assert_ne!(
            read("blk.0.attn_k.weight.lora_b")?,
            trained(0, TargetModule::K, true)?.to_vec2::<f32>()?
        );
        assert_eq!(
            read("blk.0.ffn_down.weight.lora_b")?,
            trained(0, TargetModule::Down, true)?.to_vec2::<f32>()?
        );
        Ok(())
    }

    /// A qwen2 base keeps q/k rows in the HF order, so its adapter's `lora_B` is written as
    /// trained, under the base's architecture (llama.cpp refuses an adapter of another).
    #[test]
    fn a_qwen2_adapter_is_written_unpermuted_under_its_architecture() -> Result<()> {
        let cfg = LlamaConfig {
            architecture: crate::config::Architecture::Qwen2,
            ..tiny()
        };
        let lora = all_targets();
        let tensors = tiny_adapter_of(&cfg, &lora)?;
        for p in to_gguf_layout(&tensors, &lora, &cfg)? {
            let trained = &tensors[&peft::tensor_name(p.layer, p.target, true)];
            assert_eq!(
                p.b.to_vec2::<f32>()?,
                trained.to_vec2::<f32>()?,
                "{}",
                p.base_name()
            );
        }
        let dir = tempfile::tempdir().map_err(|e| Error::Write {
            path: "tempdir".into(),
            reason: e.to_string(),
        })?;
        let path = dir.path().join("adapter.gguf");
        write(&path, &tensors, &lora, &cfg, None)?;
        let mut f = fs_err::File::open(&path).map_err(Error::File)?;
        let content = gguf_file::Content::read(&mut f)?;
        assert_eq!(
            content.metadata["general.architecture"].to_string()?,
            "qwen2"
        );
        Ok(())
    }

    #[test]
    fn missing_extra_or_misshapen_tensors_are_refused() -> Result<()> {
        let (cfg, lora) = (tiny(), all_targets());
        let tensors = tiny_adapter(&lora)?;

        let mut missing = tensors.clone();
        missing.remove(&peft::tensor_name(1, TargetModule::Up, true));
        let err = to_gguf_layout(&missing, &lora, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers.1.mlp.up_proj.lora_B"), "{err}");

        let only_q = LoraConfig {
            targets: vec![TargetModule::Q],
            ..lora.clone()
        };
        let err = to_gguf_layout(&tensors, &only_q, &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("24 tensor(s) outside"), "{err}");

        let mut other_base = cfg.clone();
        other_base.intermediate_size = 96;
        let err = to_gguf_layout(&tensors, &lora, &other_base)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gate_proj") && err.contains("another base"),
            "{err}"
        );
        Ok(())
    }
}
