//! LoRA training throughput and peak memory, side by side with PyTorch + PEFT on CPU, in one run:
//! ragtune with the frozen base in f32 and in bf16 on AMX (where the CPU has it), PyTorch in
//! f32 and under its own bf16 autocast; the ratios compare each side's faster run.
//!
//! `cargo bench -p ragtune-train --bench lora_step` (needs `ragtune models pull
//! smollm2-135m-instruct` and the Python packages named in `bench/reference/peft_lora_step.py`).
//! Same model (SmolLM2-135M, the same GGUF, dequantized to f32 on both sides), same batch of
//! random token ids (4 x 256), rank 8, alpha 16, dropout 0.05, AdamW, the same threads; for q,v
//! and for all linear layers. Each engine runs in its own process (so peak RSS is its own):
//! ragtune through this binary re-invoked as a child, PyTorch through python3. Tokens/s counts
//! the steps after the first. Writes `bench/results/lora_step.json`.
//!
//! Environment: `BENCH_THREADS` (default 2), `BENCH_STEPS` (default 4), `BENCH_BATCH` (4),
//! `BENCH_SEQ` (256), `BENCH_PYTHON` (python3).

use candle_core::{DType, Device, Tensor};
use ragtune_train::optim::{AdamW, clip_grads};
use ragtune_train::{Llama, LoraConfig, Precision, SplitMix64, TargetModule, gguf};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn smollm2() -> PathBuf {
    let store = std::env::var_os("RAGTUNE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ragtune")))
        .expect("HOME or RAGTUNE_HOME");
    store.join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn peak_rss_mib() -> f64 {
    ragtune_core::process::peak_resident_bytes().map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64)
}

/// One engine's run of ragtune-train, in this process (the child).
fn ragtune_child(
    model: &Path,
    targets: &str,
    precision: Precision,
    (steps, batch, seq): (usize, usize, usize),
) -> Value {
    ragtune_train::alloc::tune_allocator().expect("mallopt");
    let t0 = Instant::now();
    let (cfg, weights) = gguf::load(model).expect("load GGUF");
    let targets = if targets == "all-linear" {
        TargetModule::ALL.to_vec()
    } else {
        vec![TargetModule::Q, TargetModule::V]
    };
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.05,
        targets,
    };
    let model = Llama::with_precision(cfg.clone(), &weights, lora, 0, precision).expect("model");
    let engine = if model.base_in_bf16() {
        "ragtune-train (candle 0.11, base in bf16 on AMX)"
    } else {
        "ragtune-train (candle 0.11, f32)"
    };
    drop(weights);
    let load_s = t0.elapsed().as_secs_f64();
    let vars = model.trainable_vars();
    let mut opt = AdamW::new(&vars, 0.0).expect("adamw");
    let mut rng = SplitMix64::new(1);
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq + 1), &Device::Cpu).expect("ids");
    let inputs = ids.narrow(1, 0, seq).expect("inputs");
    let targets = ids
        .narrow(1, 1, seq)
        .and_then(|t| t.contiguous())
        .expect("targets");
    let weights = Tensor::ones((batch, seq), DType::F32, &Device::Cpu).expect("weights");
    let (mut step_s, mut losses) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let t = Instant::now();
        let loss = model
            .loss(&inputs, &targets, &weights, None, Some(&mut rng))
            .expect("loss");
        let store = loss.backward().expect("backward");
        let mut grads: Vec<Tensor> = vars
            .iter()
            .map(|v| store.get(v.as_tensor()).cloned().expect("grad"))
            .collect();
        drop(store);
        clip_grads(&mut grads, 1.0).expect("clip");
        opt.step(&vars, &grads, 1e-4).expect("step");
        step_s.push(t.elapsed().as_secs_f64());
        losses.push(loss.to_scalar::<f32>().expect("scalar") as f64);
    }
    let timed = if step_s.len() > 1 {
        &step_s[1..]
    } else {
        &step_s[..]
    };
    let mean = timed.iter().sum::<f64>() / timed.len() as f64;
    json!({
        "engine": engine,
        "load_s": load_s,
        "step_s": step_s,
        "loss": losses,
        "tokens_per_s": (batch * seq) as f64 / mean,
        "peak_rss_mib": peak_rss_mib(),
    })
}

fn last_json_line(output: &[u8]) -> Value {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON result in:\n{text}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (steps, batch, seq) = (
        env_or("BENCH_STEPS", 4),
        env_or("BENCH_BATCH", 4),
        env_or("BENCH_SEQ", 256),
    );
    let model = smollm2();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let precision = match args.get(i + 2).map(String::as_str) {
            Some("bf16") => Precision::Auto,
            _ => Precision::F32,
        };
        let result = ragtune_child(&model, &args[i + 1], precision, (steps, batch, seq));
        println!("{result}");
        return;
    }
    let threads = env_or("BENCH_THREADS", 2);
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("bench/reference/peft_lora_step.py");
    println!(
        "SmolLM2-135M LoRA r=8, batch {batch} x {seq} tokens, {steps} steps (first not timed), {threads} threads"
    );
    let run = |cmd: &mut Command, what: &str| -> Value {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_json_line(&out.stdout)
    };
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut rows = Vec::new();
    for (targets, peft_targets) in [("q,v", "q_proj,v_proj"), ("all-linear", "all-linear")] {
        // ragtune in f32 and with the base in bf16 (f32 again where the CPU has no AMX);
        // PyTorch in f32 and under its own bf16 autocast.
        let ours: Vec<Value> = ["f32", "bf16"]
            .iter()
            .map(|precision| {
                run(
                    Command::new(std::env::current_exe().expect("own path"))
                        .args(["--child", targets, precision])
                        .env("RAYON_NUM_THREADS", threads.to_string()),
                    "the ragtune child",
                )
            })
            .collect();
        let theirs: Vec<Value> = ["f32", "bf16-autocast"]
            .iter()
            .map(|precision| {
                run(
                    Command::new(&python)
                        .arg(&script)
                        .arg(model.parent().expect("model dir"))
                        .arg(model.file_name().expect("model file"))
                        .args([steps, batch, seq].map(|n| n.to_string()))
                        .args([peft_targets, &threads.to_string(), precision]),
                    "python3 (set BENCH_PYTHON)",
                )
            })
            .collect();
        for v in ours.iter().chain(&theirs) {
            println!(
                "{targets:>10}: {:<60} {:>5.0} tok/s, peak {:>5.0} MiB",
                v["engine"].as_str().unwrap_or("?"),
                f(v, "tokens_per_s"),
                f(v, "peak_rss_mib"),
            );
        }
        // The user's best of each side.
        let best = |vs: &[Value]| -> Value {
            vs.iter()
                .max_by(|a, b| f(a, "tokens_per_s").total_cmp(&f(b, "tokens_per_s")))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (ours_best, theirs_best) = (best(&ours), best(&theirs));
        let speed = f(&ours_best, "tokens_per_s") / f(&theirs_best, "tokens_per_s");
        let speed_vs_f32 = f(&ours_best, "tokens_per_s") / f(&theirs[0], "tokens_per_s");
        let memory = f(&ours_best, "peak_rss_mib") / f(&theirs_best, "peak_rss_mib");
        println!(
            "{targets:>10}: ragtune's faster against PyTorch's faster {speed:.2}x, against PyTorch f32 {speed_vs_f32:.2}x (target >= 1.5); memory {memory:.2}x (target <= 0.5)"
        );
        rows.push(
            json!({"targets": targets, "ragtune": ours, "pytorch_peft": theirs,
            "speed_ratio_best_vs_best": speed, "speed_ratio_vs_pytorch_f32": speed_vs_f32,
            "memory_ratio_best_vs_best": memory}),
        );
    }
    let out = root.join("bench/results/lora_step.json");
    let result = json!({"model": "SmolLM2-135M-Instruct Q4_1, dequantized to f32", "threads": threads,
        "batch": batch, "seq": seq, "steps": steps, "rows": rows});
    std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    println!("written to {}", out.display());
}
