//! Time and peak memory of LoRA training steps on a real GGUF model.
//!
//! Run: RAYON_NUM_THREADS=2 cargo run --release --example step_bench -- MODEL.gguf [STEPS] [BATCH] [SEQ]
//! (rank 8 on q and v, as the baseline). Prints each step's loss, wall and CPU seconds
//! (user + system of the whole process: steadier than wall time on a shared machine), minor page
//! faults, and the process's peak RSS (VmHWM).
//!
//! Env: `STEP_BENCH_LOSS=forward` times `forward` + `masked_cross_entropy` (full logits) instead
//! of `Llama::loss`; `RAGTUNE_DEFAULT_MALLOC=1` skips `alloc::tune_allocator`.

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ragtune_train::loss::masked_cross_entropy;
use ragtune_train::{Llama, LoraConfig, SplitMix64, TargetModule, gguf};
use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    ragtune_core::process::peak_resident_bytes().map(|b| b as f64 / (1 << 20) as f64)
}

/// (user + system CPU seconds, minor page faults) of this process so far.
fn cpu_and_faults() -> (f64, i64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (f64::NAN, -1);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(u.ru_utime) + secs(u.ru_stime), u.ru_minflt)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: step_bench MODEL.gguf [STEPS] [BATCH] [SEQ]")?;
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let seq: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);

    // RAGTUNE_DEFAULT_MALLOC=1 keeps glibc's defaults, to measure what the tuning buys.
    if std::env::var_os("RAGTUNE_DEFAULT_MALLOC").is_none() {
        ragtune_train::alloc::tune_allocator()?;
    }
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
    let mut rng = SplitMix64::new(1);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq + 1), &Device::Cpu)?;
    let inputs = ids.narrow(1, 0, seq)?;
    let targets = ids.narrow(1, 1, seq)?.contiguous()?;
    let weights = Tensor::ones((batch, seq), candle_core::DType::F32, &Device::Cpu)?;
    let full_logits = std::env::var("STEP_BENCH_LOSS").is_ok_and(|v| v == "forward");
    println!(
        "loss path: {}",
        if full_logits {
            "forward + masked_cross_entropy"
        } else {
            "Llama::loss"
        }
    );
    for step in 0..steps {
        let t = Instant::now();
        let (cpu0, faults0) = cpu_and_faults();
        let loss = if full_logits {
            let logits = model.forward(&inputs, Some(&mut rng))?;
            masked_cross_entropy(&logits, &targets, &weights)?
        } else {
            model.loss(&inputs, &targets, &weights, None, Some(&mut rng))?
        };
        let forward_s = t.elapsed().as_secs_f64();
        let grads = loss.backward()?;
        opt.step(&grads)?;
        let (cpu1, faults1) = cpu_and_faults();
        println!(
            "step {step}: loss {:.4}, {:.2}s wall ({forward_s:.2}s forward), {:.2}s cpu, {} minor faults, peak RSS {:.0} MiB",
            loss.to_scalar::<f32>()?,
            t.elapsed().as_secs_f64(),
            cpu1 - cpu0,
            faults1 - faults0,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
