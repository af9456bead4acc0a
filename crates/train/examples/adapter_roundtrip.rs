//! Writes one adapter for a real GGUF base three ways, plus our logits with it, so that
//! tests/fixtures/verify_gguf_lora.py can check them in llama.cpp:
//!
//! - `DIR/peft/`: the PEFT directory (`peft::save`);
//! - `DIR/adapter.gguf`: the GGUF LoRA, written from the PEFT directory read back (`peft::read`);
//! - `DIR/merged-f32.gguf`: the base with the adapter merged in, adapted weights F32;
//! - `DIR/base-f32.gguf`: the base "merged" with a zero adapter on all 7 projections, i.e. every
//!   projection as F32 (llama.cpp then computes them without quantizing activations);
//! - `DIR/logits.json` + `DIR/logits.f32`: token ids and our logits ([seq, vocab], little-endian
//!   f32) with the adapter and with the base alone.
//!
//! The adapter covers TARGETS (comma-separated, default all 7 projections); A keeps its PEFT
//! init and B is seeded uniform in ±B_SCALE (default 0.05), large enough to change the outputs
//! (a fresh B is zero). `q,k` alone isolates the q/k row permutation.
//!
//! Run: cargo run --release --example adapter_roundtrip -- MODEL.gguf DIR [B_SCALE [TARGETS]]

use candle_core::{Device, Tensor};
use ragtune_train::merge::{MergedType, merge};
use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule, gguf, gguf_lora, peft};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: adapter_roundtrip MODEL.gguf DIR [B_SCALE [TARGETS]]";
    let mut args = std::env::args().skip(1);
    let model_path = PathBuf::from(args.next().ok_or(usage)?);
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let b_scale: f32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.05);
    let targets = match args.next() {
        Some(list) => list
            .split(',')
            .map(str::parse)
            .collect::<ragtune_train::Result<Vec<TargetModule>>>()?,
        None => TargetModule::ALL.to_vec(),
    };

    let (cfg, weights) = gguf::load(&model_path)?;
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets,
    };
    let model = Llama::new(cfg.clone(), &weights, lora.clone(), 7)?;
    let mut rng = SplitMix64::new(42);
    for (_, _, l) in model.adapters() {
        let n = l.b.elem_count();
        l.b.set(&Tensor::from_vec(
            rng.uniform(n, -b_scale, b_scale),
            l.b.shape(),
            &Device::Cpu,
        )?)?;
    }

    let peft_dir = dir.join("peft");
    peft::save(
        &model,
        Some("HuggingFaceTB/SmolLM2-135M-Instruct"),
        &peft_dir,
    )?;
    let (read_cfg, tensors) = peft::read(&peft_dir)?;
    if read_cfg != lora {
        return Err(
            format!("adapter_config.json read back as {read_cfg:?}, wrote {lora:?}").into(),
        );
    }
    let original = peft::adapter_tensors(&model)?;
    for (name, t) in &original {
        let back = tensors.get(name).ok_or(format!("{name} not read back"))?;
        if (t - back)?.abs()?.max_all()?.to_scalar::<f32>()? != 0.0 {
            return Err(format!("{name} changed in the PEFT round trip").into());
        }
    }
    gguf_lora::write(
        &dir.join("adapter.gguf"),
        &tensors,
        &read_cfg,
        &cfg,
        Some("adapter_roundtrip"),
    )?;
    merge(
        &model_path,
        &tensors,
        &read_cfg,
        &dir.join("merged-f32.gguf"),
        MergedType::F32,
    )?;
    let all = LoraConfig {
        targets: TargetModule::ALL.to_vec(),
        ..read_cfg.clone()
    };
    let zero = peft::adapter_tensors(&Llama::new(cfg.clone(), &weights, all.clone(), 7)?)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.zeros_like()?)))
        .collect::<candle_core::Result<_>>()?;
    merge(
        &model_path,
        &zero,
        &all,
        &dir.join("base-f32.gguf"),
        MergedType::F32,
    )?;

    // Arbitrary ids spread over the vocabulary; 1 is SmolLM2's <|im_start|>.
    let ids: Vec<u32> = std::iter::once(1)
        .chain((1..24).map(|i| (i * 2011 + 17) % cfg.vocab_size as u32))
        .collect();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let with = model.forward(&input, None)?.squeeze(0)?;
    let base = Llama::new(cfg.clone(), &weights, lora, 7)?
        .forward(&input, None)?
        .squeeze(0)?;
    let mut bytes = Vec::new();
    for t in [&with, &base] {
        for v in t.flatten_all()?.to_vec1::<f32>()? {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(dir.join("logits.f32"), bytes)?;
    let meta = serde_json::json!({
        "ids": ids,
        "vocab": cfg.vocab_size,
        "layout": "logits.f32 = [with adapter; base alone], each [len(ids), vocab] f32 LE",
        "b_scale": b_scale,
        "targets": read_cfg.targets.iter().map(|t| t.hf_name()).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("logits.json"), meta.to_string())?;
    println!("wrote {}", dir.display());
    Ok(())
}
