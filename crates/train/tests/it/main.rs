//! Integration tests of ragtune-train.

mod gguf_lora;
mod gradcheck;
mod packing;
mod peft_export;
mod qwen2;
mod resume;
mod run;
mod smollm2;
mod tiny_train;

use std::path::PathBuf;

/// The installed SmolLM2-135M-Instruct GGUF, found where ragtune's model store keeps it
/// (`$RAGTUNE_HOME`, else `$XDG_CACHE_HOME/ragtune`, else `~/.cache/ragtune`). Fails (does not
/// skip) when it is missing: these tests check the real model.
pub fn smollm2_gguf() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let root = var("RAGTUNE_HOME")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("ragtune")))
        .or_else(|| var("HOME").map(|p| p.join(".cache/ragtune")))
        .expect("set RAGTUNE_HOME or HOME");
    let dir = root.join("models/smollm2-135m-instruct");
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
    });
    found.unwrap_or_else(|| {
        panic!(
            "no .gguf in {} (run `ragtune models pull smollm2-135m-instruct`)",
            dir.display()
        )
    })
}

pub use ragtune_train::model::tiny_config;

/// The tiny model in f64 with LoRA (rank 2) on every module and non-zero B drawn from `seed`
/// (with B = 0, dL/dA would be zero and a gradient check would prove nothing).
pub fn tiny_f64_model(seed: u64) -> ragtune_train::Llama {
    tiny_f64_model_of(tiny_config(), seed)
}

/// [`tiny_f64_model`] of another configuration (e.g. the qwen2 architecture).
pub fn tiny_f64_model_of(cfg: ragtune_train::LlamaConfig, seed: u64) -> ragtune_train::Llama {
    use candle_core::{DType, Device, Tensor};
    use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule, model::random_base_weights};
    let base: std::collections::HashMap<String, Tensor> = random_base_weights(&cfg, seed)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F64).unwrap()))
        .collect();
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: TargetModule::ALL.to_vec(),
    };
    let model = Llama::new(cfg, &base, lora, seed + 2).unwrap();
    let mut rng = SplitMix64::new(seed + 10);
    for (_, _, l) in model.adapters() {
        let (o, r) = l.b.dims2().unwrap();
        let v: Vec<f64> = rng
            .uniform(o * r, -0.3, 0.3)
            .into_iter()
            .map(f64::from)
            .collect();
        l.b.set(&Tensor::from_vec(v, (o, r), &Device::Cpu).unwrap())
            .unwrap();
    }
    model
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
