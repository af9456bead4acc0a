//! Time and peak memory of LoRA training steps on a real GGUF model.
//!
//! Run: RAYON_NUM_THREADS=2 cargo run --release --example step_bench -- MODEL.gguf [STEPS] [BATCH] [SEQ]
//! (rank 8 on q and v, as the baseline). Prints each step's loss and seconds, and the
//! process's peak RSS (VmHWM).

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ragtune_train::loss::masked_cross_entropy;
use ragtune_train::{Llama, LoraConfig, Rng, TargetModule, gguf};
use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: step_bench MODEL.gguf [STEPS] [BATCH] [SEQ]")?;
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let seq: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);

    let t0 = Instant::now();
    let (cfg, weights) = gguf::load(path.as_ref())?;
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.05,
        targets: vec![TargetModule::Q, TargetModule::V],
    };
    let model = Llama::new(cfg.clone(), &weights, lora, 0)?;
    drop(weights);
    println!(
        "load {:.2}s, peak RSS {:.0} MiB",
        t0.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );

    let vars = model.trainable_vars();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq + 1), &Device::Cpu)?;
    let inputs = ids.narrow(1, 0, seq)?;
    let targets = ids.narrow(1, 1, seq)?.contiguous()?;
    let weights = Tensor::ones((batch, seq), candle_core::DType::F32, &Device::Cpu)?;
    for step in 0..steps {
        let t = Instant::now();
        let logits = model.forward(&inputs, Some(&mut rng))?;
        let loss = masked_cross_entropy(&logits, &targets, &weights)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        println!(
            "step {step}: loss {:.4}, {:.2}s, peak RSS {:.0} MiB",
            loss.to_scalar::<f32>()?,
            t.elapsed().as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
