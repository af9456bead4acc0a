//! Adapters in PEFT's on-disk layout: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Tensor names follow PEFT for a transformers `LlamaForCausalLM` wrapped in a
//! `PeftModelForCausalLM`: `base_model.model.model.layers.{i}.{self_attn|mlp}.{m}.lora_{A|B}.weight`,
//! with `lora_A` [r, in] and `lora_B` [out, r], f32, safetensors metadata `format: pt`.

use crate::error::{Error, Result};
use crate::lora::{LoraConfig, TargetModule};
use crate::model::Llama;
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// PEFT's key for one adapter matrix; `b` selects `lora_B`.
pub fn tensor_name(layer: usize, target: TargetModule, b: bool) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{}.weight",
        target.hf_parent(),
        target.hf_name(),
        if b { "B" } else { "A" }
    )
}

/// The `adapter_config.json` PEFT would write for these settings. `base_model` is the HF id of
/// the base (e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`), which PEFT loads the adapter onto.
pub fn adapter_config(cfg: &LoraConfig, base_model: Option<&str>) -> serde_json::Value {
    let mut targets: Vec<&str> = cfg.targets.iter().map(|t| t.hf_name()).collect();
    targets.sort_unstable();
    targets.dedup();
    // PEFT writes an integral alpha as an integer, and f32 0.05 should read 0.05, not
    // 0.05000000074505806.
    let alpha = if cfg.alpha.fract() == 0.0 {
        json!(cfg.alpha as i64)
    } else {
        json!(cfg.alpha)
    };
    let dropout: f64 = cfg
        .dropout
        .to_string()
        .parse()
        .unwrap_or(cfg.dropout as f64);
    json!({
        "alpha_pattern": {},
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": cfg.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false,
    })
}

/// The adapter tensors under their PEFT names.
pub fn adapter_tensors(model: &Llama) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (layer, target, lora) in model.adapters() {
        out.insert(
            tensor_name(layer, target, false),
            lora.a.as_tensor().detach().contiguous()?,
        );
        out.insert(
            tensor_name(layer, target, true),
            lora.b.as_tensor().detach().contiguous()?,
        );
    }
    Ok(out)
}

/// Writes both files into `dir` (created if needed). Each file is written to a temporary name
/// and renamed, so an interrupted save never leaves a half-written adapter behind.
pub fn save(model: &Llama, base_model: Option<&str>, dir: &Path) -> Result<()> {
    let err = |path: &Path, reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;

    let tensors = adapter_tensors(model)?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(WEIGHTS_FILE);
    let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp"));
    safetensors::serialize_to_file(tensors.iter(), Some(metadata), &tmp)
        .map_err(|e| err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, &weights).map_err(|e| err(&weights, e.to_string()))?;

    let config = dir.join(CONFIG_FILE);
    let tmp = dir.join(format!(".{CONFIG_FILE}.tmp"));
    let text = serde_json::to_string_pretty(&adapter_config(model.lora_config(), base_model))
        .map_err(|e| err(&config, e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| err(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, &config).map_err(|e| err(&config, e.to_string()))?;
    Ok(())
}

/// Reads an adapter directory back: the settings from `adapter_config.json` and the tensors
/// under their PEFT names, as f32. Accepts what `save` writes and PEFT files of the same form;
/// PEFT options `LoraConfig` cannot express (rsLoRA, DoRA, per-module rank or alpha) are
/// refused rather than silently dropped, since they change the scale or the update itself.
pub fn read(dir: &Path) -> Result<(LoraConfig, HashMap<String, Tensor>)> {
    let config_path = dir.join(CONFIG_FILE);
    let invalid = |reason: String| Error::Adapter {
        path: config_path.clone(),
        reason,
    };
    let text = fs_err::read_to_string(&config_path).map_err(Error::File)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let field = |key: &str| json.get(key).filter(|v| !v.is_null());
    for flag in ["use_rslora", "use_dora"] {
        if field(flag).and_then(|v| v.as_bool()) == Some(true) {
            return Err(invalid(format!(
                "{flag} is set; only plain LoRA is supported"
            )));
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern)
            .and_then(|v| v.as_object())
            .is_some_and(|m| !m.is_empty())
        {
            return Err(invalid(format!(
                "{pattern} is not empty; per-module rank/alpha is not supported"
            )));
        }
    }
    let rank = field("r")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| invalid("no integer \"r\"".into()))? as usize;
    let alpha = field("lora_alpha")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| invalid("no number \"lora_alpha\"".into()))?;
    let dropout = field("lora_dropout")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as f32;
    let targets = field("target_modules")
        .and_then(|v| v.as_array())
        .ok_or_else(|| {
            invalid(
                "\"target_modules\" must be a list of module names (a regex is not supported)"
                    .into(),
            )
        })?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| invalid(format!("target module {v} is not a string")))?
                .parse::<TargetModule>()
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    // PEFT stores the names sorted alphabetically; the order means nothing, so use ours.
    let mut targets = targets;
    targets.sort_unstable();
    targets.dedup();
    let cfg = LoraConfig {
        rank,
        alpha,
        dropout,
        targets,
    };
    cfg.validate().map_err(|e| invalid(e.to_string()))?;

    let weights = dir.join(WEIGHTS_FILE);
    let tensors =
        candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| Error::Adapter {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
    let tensors = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    Ok((cfg, tensors))
}
