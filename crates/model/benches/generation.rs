//! Generation speed, side by side with llama.cpp (llama-cpp-python), in one run.
//!
//! `cargo bench -p ragtune-model --bench generation` (needs `pip install llama-cpp-python==0.3.36`
//! for the reference column, or `BENCH_REFERENCE=c` for llama.cpp's C API linked from the same
//! build ragtune uses, and the default models). Prints a table and writes
//! `bench/results/generation.json` (or `BENCH_OUT`, relative to the repository root).
//! Environment: `BENCH_THREADS` (default 2), `BENCH_REFERENCE` (python or c), `BENCH_MODELS`
//! (comma-separated catalogue names).

use ragtune_core::{Generation, GenerationRequest, Generator, Prompt};
use ragtune_model::llama::{LlamaGenerator, LoadOptions, QuantType};
use serde_json::{Value, json};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PROMPT_TOKENS: usize = 531;
const DECODE_TOKENS: u32 = 64;
const REPEATS: usize = 3;
const BATCH: usize = 16;

fn main() {
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let models = std::env::var("BENCH_MODELS").unwrap_or_else(|_| {
        "smollm2-135m-instruct,smollm2-135m-instruct-q8_0,qwen2.5-coder-0.5b-instruct".into()
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let squad = root.join("../shared/data/squad-v1.1-dev/dev-v1.1.json");
    let squad: Value = serde_json::from_str(
        &std::fs::read_to_string(&squad)
            .unwrap_or_else(|e| panic!("{}: {e} (the bench reads shared/data)", squad.display())),
    )
    .expect("SQuAD JSON");
    println!(
        "machine: {} cores available, {threads} threads used; decode {DECODE_TOKENS} tokens, best of {REPEATS}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let store = ragtune_catalog::ModelStore::from_env().expect("model store");
    let mut rows = Vec::new();
    for name in models.split(',') {
        let path = gguf(&store, name);
        let options = LoadOptions {
            threads,
            // Every repeat sends the same prompt: kept cells would make the prompt rate that of
            // a cache hit. llama.cpp's side computes it whole; `--bench prefix_reuse` measures
            // reuse.
            prefix_reuse: false,
            ..LoadOptions::default()
        };
        let model = LlamaGenerator::load(&path, &options).expect("load");
        let prompt = long_prompt(&model, &squad);
        let ours = single_stream(&model, &prompt);
        let reference = llama_cpp(&root, &path, &prompt, threads);
        let batch = batched(&model, &squad);
        let row = json!({
            "model": name,
            "threads": threads,
            "ragtune": ours,
            "llama_cpp": reference,
            "prompt_ratio": ratio(&ours, &reference, "prompt_tps"),
            "decode_ratio": ratio(&ours, &reference, "decode_tps"),
            "batch16": batch,
        });
        print_row(&row);
        rows.push(row);
    }
    let out = root.join(
        std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench/results/generation.json".into()),
    );
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({ "runs": rows })).unwrap(),
    )
    .expect("write results");
    println!("wrote {}", out.display());
}

/// A catalogue model, or `<catalogue model>-q8_0`: its Q8_0 re-quantization, made on first use
/// (as `ragtune models quantize` does).
fn gguf(store: &ragtune_catalog::ModelStore, name: &str) -> PathBuf {
    if let Ok(ragtune_catalog::ResolvedModel::Gguf(p)) = store.resolve(name) {
        return p;
    }
    let base = name.strip_suffix("-q8_0").unwrap_or(name);
    let source = match store.resolve(base) {
        Ok(ragtune_catalog::ResolvedModel::Gguf(p)) => p,
        other => panic!("{base}: {other:?} (run `ragtune models pull {base}`)"),
    };
    let dir = store.models_dir().join(name);
    std::fs::create_dir_all(&dir).expect("model dir");
    let out = dir.join("model.q8_0.gguf");
    ragtune_model::llama::quantize(&source, &out, QuantType::Q8_0, 0).expect("quantize");
    out
}

/// SQuAD paragraphs joined and cut to exactly PROMPT_TOKENS tokens.
fn long_prompt(model: &LlamaGenerator, squad: &Value) -> String {
    let mut text = String::new();
    for p in paragraphs(squad) {
        text.push_str(p);
        text.push_str("\n\n");
        if model.tokenizer().encode(&text, false).len() > PROMPT_TOKENS + 50 {
            break;
        }
    }
    let ids = model.tokenizer().encode(&text, false);
    model.tokenizer().decode(&ids[..PROMPT_TOKENS])
}

fn paragraphs(squad: &Value) -> impl Iterator<Item = &str> {
    squad["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["paragraphs"].as_array().into_iter().flatten())
        .filter_map(|p| p["context"].as_str())
}

fn fixed_length(prompt: Prompt, tokens: u32) -> GenerationRequest {
    let mut r = GenerationRequest::new(prompt).with_max_tokens(tokens);
    r.ignore_eos = true;
    r
}

fn single_stream(model: &LlamaGenerator, prompt: &str) -> Value {
    let request = fixed_length(Prompt::Text(prompt.to_string()), DECODE_TOKENS);
    let run = || -> Generation {
        model
            .generate(&request, &mut |_| ControlFlow::Continue(()))
            .expect("generate")
    };
    run(); // warm-up
    let runs: Vec<Generation> = (0..REPEATS).map(|_| run()).collect();
    let best = |f: fn(&Generation) -> f64| runs.iter().map(f).fold(0.0, f64::max);
    json!({
        "engine": "ragtune (llama-cpp-2 0.1.160)",
        "prompt_tokens": runs[0].usage.prompt_tokens,
        "prompt_tps": best(|g| g.prompt_tokens_per_second()),
        // Tokens after the first, over the time after the first, as the reference counts.
        "decode_tps": best(|g| (g.usage.completion_tokens - 1) as f64 / g.decode_time.as_secs_f64()),
    })
}

/// The reference: llama-cpp-python (`BENCH_REFERENCE=python`, the default: what a Python user
/// would pick) or llama.cpp's own C API linked from ragtune's build of it (`c`: the same
/// kernels with no binding at all; `bench/reference/llama_cpp_c.sh`).
fn llama_cpp(root: &Path, model: &Path, prompt: &str, threads: usize) -> Value {
    let file = std::env::temp_dir().join("ragtune-bench-prompt.txt");
    std::fs::write(&file, prompt).expect("write prompt");
    let (model, file) = (model.display().to_string(), file.display().to_string());
    let (threads, decode, repeats) = (
        threads.to_string(),
        DECODE_TOKENS.to_string(),
        REPEATS.to_string(),
    );
    let reference = std::env::var("BENCH_REFERENCE").unwrap_or_else(|_| "python".into());
    let out = match reference.as_str() {
        "python" => Command::new("python3")
            .arg(root.join("bench/reference/llama_cpp_reference.py"))
            .args(["bench", &model, &file, "--threads", &threads])
            .args(["--decode", &decode, "--repeats", &repeats])
            .output(),
        "c" => Command::new(root.join("bench/reference/llama_cpp_c.sh"))
            .args([&model, &file, &threads, &decode, &repeats])
            .output(),
        other => return json!({ "error": format!("BENCH_REFERENCE={other}: use python or c") }),
    };
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).expect("reference JSON"),
        Ok(o) => {
            json!({ "error": format!("{} ({})", String::from_utf8_lossy(&o.stderr).trim(), o.status) })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Throughput of BATCH chat requests generated together vs one after another.
fn batched(model: &LlamaGenerator, squad: &Value) -> Value {
    let questions: Vec<&str> = squad["data"][0]["paragraphs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["qas"].as_array().into_iter().flatten())
        .filter_map(|q| q["question"].as_str())
        .take(BATCH)
        .collect();
    let requests: Vec<GenerationRequest> = questions
        .iter()
        .map(|q| {
            fixed_length(
                Prompt::Chat(vec![ragtune_core::ChatMessage::user(*q)]),
                DECODE_TOKENS,
            )
        })
        .collect();
    let tokens = |gs: &[Generation]| -> u32 { gs.iter().map(|g| g.usage.total_tokens()).sum() };
    let start = Instant::now();
    let one_by_one: Vec<Generation> = requests
        .iter()
        .map(|r| {
            model
                .generate(r, &mut |_| ControlFlow::Continue(()))
                .expect("generate")
        })
        .collect();
    let sequential = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let together = model.generate_batch(&requests).expect("batch");
    let batch = start.elapsed().as_secs_f64();
    let seq_tps = tokens(&one_by_one) as f64 / sequential;
    let batch_tps = tokens(&together) as f64 / batch;
    json!({
        "requests": requests.len(),
        "tokens": tokens(&together),
        "sequential_s": sequential,
        "batched_s": batch,
        "sequential_tps": seq_tps,
        "batched_tps": batch_tps,
        "speedup": batch_tps / seq_tps,
    })
}

fn ratio(ours: &Value, reference: &Value, key: &str) -> Value {
    match (ours[key].as_f64(), reference[key].as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => json!(a / b),
        _ => Value::Null,
    }
}

fn print_row(row: &Value) {
    let f = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.1}"));
    let r = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.2}x"));
    println!(
        "\n{} ({} threads)",
        row["model"].as_str().unwrap_or(""),
        row["threads"]
    );
    println!(
        "  {:<34} {:>12} {:>12}",
        "engine", "prompt tok/s", "decode tok/s"
    );
    for key in ["ragtune", "llama_cpp"] {
        let e = &row[key];
        let name = e["engine"].as_str().unwrap_or(key);
        println!(
            "  {:<34} {:>12} {:>12}",
            name,
            f(&e["prompt_tps"]),
            f(&e["decode_tps"])
        );
        if let Some(err) = e["error"].as_str() {
            println!("    reference failed: {err}");
        }
    }
    println!(
        "  {:<34} {:>12} {:>12}",
        "ratio (ragtune / llama.cpp)",
        r(&row["prompt_ratio"]),
        r(&row["decode_ratio"])
    );
    let b = &row["batch16"];
    println!(
        "  batch of {}: {} tok/s together vs {} tok/s one by one = {}",
        b["requests"],
        f(&b["batched_tps"]),
        f(&b["sequential_tps"]),
        r(&b["speedup"])
    );
}
