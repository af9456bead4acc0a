//! Writes a tiny random llama (HF-named base weights), a PEFT adapter with non-zero B for it,
//! and the logits ragtune-train computes with that adapter, so that
//! tests/fixtures/verify_peft_load.py can check that PEFT loads the adapter and agrees.
//!
//! Run: cargo run --release --example export_tiny_peft -- DIR

use candle_core::{Device, Tensor};
use ragtune_train::model::random_base_weights;
use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule, peft};
use std::collections::HashMap;
use std::path::PathBuf;

fn hf_name(gguf: &str) -> String {
    let map = [
        ("attn_norm", "input_layernorm"),
        ("ffn_norm", "post_attention_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ];
    match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let mut parts = gguf.splitn(3, '.');
            let (_, layer, rest) = (
                parts.next(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let module = rest.trim_end_matches(".weight");
            let hf = map
                .iter()
                .find(|(g, _)| *g == module)
                .map(|(_, h)| *h)
                .unwrap_or(module);
            format!("model.layers.{layer}.{hf}.weight")
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: export_tiny_peft DIR")?,
    );
    let cfg = ragtune_train::model::tiny_config();
    let base = random_base_weights(&cfg, 1)?;
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: TargetModule::ALL.to_vec(),
    };
    let model = Llama::new(cfg, &base, lora, 3)?;
    // A trained adapter has B != 0; make it so, or the check would not see B at all.
    let mut rng = SplitMix64::new(5);
    for (_, _, l) in model.adapters() {
        let n = l.b.elem_count();
        l.b.set(&Tensor::from_vec(
            rng.uniform(n, -0.3, 0.3),
            l.b.shape(),
            &Device::Cpu,
        )?)?;
    }
    peft::save(&model, None, &dir.join("adapter"))?;
    let hf: HashMap<String, Tensor> = base.iter().map(|(k, v)| (hf_name(k), v.clone())).collect();
    candle_core::safetensors::save(&hf, dir.join("base.safetensors"))?;
    let ids: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 64).collect();
    let logits = model.forward(
        &Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
        None,
    )?;
    let out = serde_json::json!({"ids": ids, "logits": logits.squeeze(0)?.to_vec2::<f32>()?});
    std::fs::write(dir.join("logits.json"), out.to_string())?;
    println!("wrote {}", dir.display());
    Ok(())
}
