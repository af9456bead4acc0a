//! The candle model over the real SmolLM2 GGUF against transformers on the same GGUF
//! (tests/fixtures/smollm2_reference.json, made by make_reference.py).

use candle_core::{Device, Tensor};
use ragtune_train::loss::masked_cross_entropy;
use ragtune_train::{Llama, LoraConfig, TargetModule, gguf};

#[test]
fn logits_match_transformers() {
    let reference = crate::fixture("smollm2_reference.json");
    let path = crate::smollm2_gguf();
    let (cfg, weights) = gguf::load(&path).expect("load GGUF");
    assert_eq!(
        (
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads
        ),
        (30, 576, 9, 3)
    );
    assert_eq!(
        (cfg.intermediate_size, cfg.vocab_size, cfg.tie_embeddings),
        (1536, 49152, true)
    );
    assert_eq!(cfg.rope_theta, 100_000.0);

    // Fresh adapters (B = 0) must leave the base model's output untouched.
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: vec![TargetModule::Q, TargetModule::V],
    };
    let model = Llama::new(cfg, &weights, lora, 0).expect("build model");
    let ids: Vec<u32> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let n = ids.len();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&input, None).unwrap();
    let rows = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();

    let stride = reference["stride"].as_u64().unwrap() as usize;
    let mut max_diff = 0f32;
    for (pos, expected) in reference["logits"].as_array().unwrap().iter().enumerate() {
        for (j, e) in expected.as_array().unwrap().iter().enumerate() {
            max_diff = max_diff.max((rows[pos][j * stride] - e.as_f64().unwrap() as f32).abs());
        }
    }
    let argmax: Vec<u64> = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u64
        })
        .collect();
    let expected_argmax: Vec<u64> = reference["argmax"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();

    // transformers' loss: mean next-token NLL over all positions.
    let targets = Tensor::new(&ids[1..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let weights = Tensor::ones((1, n - 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let loss = masked_cross_entropy(&logits.narrow(1, 0, n - 1).unwrap(), &targets, &weights)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let expected_loss = reference["loss"].as_f64().unwrap() as f32;
    println!("max |logit diff| {max_diff:e}, loss {loss} vs {expected_loss}");
    assert!(max_diff < 1e-3, "max |logit diff| {max_diff}");
    assert_eq!(argmax, expected_argmax);
    assert!(
        (loss - expected_loss).abs() < 1e-4,
        "loss {loss} vs {expected_loss}"
    );

    // The training loss path (weighted rows only, chunked head) in f32 on the real model.
    let inputs = input.narrow(1, 0, n - 1).unwrap();
    let fused = model
        .loss(&inputs, &targets, &weights, None, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        (fused - expected_loss).abs() < 1e-4,
        "Llama::loss {fused} vs {expected_loss}"
    );
}
