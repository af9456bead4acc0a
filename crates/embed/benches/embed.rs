//! Embedding throughput, side by side with sentence-transformers (PyTorch, CPU), in one run.
//!
//! `cargo bench -p ragtune-embed --bench embed` (needs the Python packages listed at the top
//! of `bench/reference/sentence_transformers_reference.py` and `ragtune models pull
//! all-minilm-l6-v2`). Embeds the same 1,000 sentences of SQuAD v1.1 dev contexts with both
//! engines on the same number of threads, alternating the two (each round: two timed runs of
//! each, the better counts), and prints sentences/s, the ratio and the cosine between the two
//! vectors of every sentence. Writes `bench/results/embed.json`.
//!
//! Environment: `BENCH_THREADS` (default 2), `BENCH_ROUNDS` (default 3; best round counts),
//! `BENCH_SENTENCES` (default 1000), `BENCH_LEVERS=1` also times ragtune's configurations
//! one lever at a time into `bench/results/embed_levers.json` (`BENCH_LEVERS=only`: just
//! that), `BENCH_PYTHON` (default python3).

use ragtune_core::Embedder;
use ragtune_embed::{EmbedOptions, Kernels, Parallelism, Precision, SentenceEmbedder};
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

fn main() {
    let threads = env_or("BENCH_THREADS", 2);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let count = env_or("BENCH_SENTENCES", 1000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sentences = squad_sentences(&root, count);
    let model_dir = minilm_dir();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();

    let options = EmbedOptions {
        threads,
        ..EmbedOptions::default()
    };
    let model = SentenceEmbedder::load_with(&model_dir, &options).expect("load all-MiniLM-L6-v2");
    let tokens: usize = texts
        .iter()
        .map(|t| model.tokenize(t).expect("tokenize").len())
        .sum();
    println!(
        "machine: {} cores available, {threads} threads used; {} sentences from SQuAD v1.1 dev, {:.1} tokens each on average (with [CLS], [SEP]); best of {rounds} rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        texts.len(),
        tokens as f64 / texts.len() as f64,
    );

    let levers_mode = std::env::var("BENCH_LEVERS").unwrap_or_default();
    if levers_mode == "1" || levers_mode == "only" {
        let rows = levers(&model_dir, &texts, threads);
        let path = root.join("bench/results/embed_levers.json");
        let result = json!({
            "model": "all-minilm-l6-v2",
            "threads": threads,
            "sentences": texts.len(),
            "mean_tokens": tokens as f64 / texts.len() as f64,
            "levers": rows,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap() + "\n")
            .expect("write lever results");
        println!("wrote {}", path.display());
        if levers_mode == "only" {
            return;
        }
    }

    let file = std::env::temp_dir().join("ragtune-embed-bench-sentences.json");
    std::fs::write(&file, serde_json::to_string(&sentences).unwrap()).expect("write sentences");
    let out = std::env::temp_dir().join("ragtune-embed-bench-st.f32");
    model.embed(&texts[..64.min(texts.len())]).expect("warm-up");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut vectors = Vec::new();
    let mut reference = Value::Null;
    for round in 0..rounds {
        let st = sentence_transformers(&root, &model_dir, &file, &out, threads);
        theirs.push(st["seconds"].as_f64().expect("seconds"));
        reference = st;
        // Two timed runs per round for ragtune as well.
        let mut seconds = f64::INFINITY;
        for _ in 0..2 {
            let start = Instant::now();
            vectors = model.embed(&texts).expect("embed");
            seconds = seconds.min(start.elapsed().as_secs_f64());
        }
        ours.push(seconds);
        println!(
            "round {}: ragtune {:.1}/s, sentence-transformers {:.1}/s",
            round + 1,
            texts.len() as f64 / ours[round],
            texts.len() as f64 / theirs[round]
        );
    }
    let st_vectors = read_f32(&out, model.dimension());
    assert_eq!(
        st_vectors.len(),
        vectors.len(),
        "one reference vector per sentence"
    );
    let cosines: Vec<f32> = vectors
        .iter()
        .zip(&st_vectors)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let min_cos = cosines.iter().copied().fold(f32::INFINITY, f32::min);
    let mean_cos = cosines.iter().sum::<f32>() / cosines.len() as f32;
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (ours_s, theirs_s) = (best(&ours), best(&theirs));
    let (ours_rate, theirs_rate) = (texts.len() as f64 / ours_s, texts.len() as f64 / theirs_s);
    println!(
        "ragtune {ours_rate:.1} sentences/s | sentence-transformers {theirs_rate:.1} sentences/s | ratio {:.2} | cosine min {min_cos:.6} mean {mean_cos:.6}",
        ours_rate / theirs_rate
    );
    let result = json!({
        "model": "all-minilm-l6-v2",
        "threads": threads,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "sentences": texts.len(),
        "mean_tokens": tokens as f64 / texts.len() as f64,
        "rounds": rounds,
        "ragtune": {
            "engine": "ragtune-embed (candle 0.11 weights, fused kernels, packed batches)",
            "options": format!("{:?}", model.options()),
            "seconds": ours_s,
            "all_seconds": ours,
            "sentences_per_s": ours_rate,
        },
        "sentence_transformers": {
            "engine": reference["engine"],
            "batch_size": reference["batch_size"],
            "seconds": theirs_s,
            "all_seconds": theirs,
            "sentences_per_s": theirs_rate,
        },
        "ratio": ours_rate / theirs_rate,
        "cosine_min": min_cos,
        "cosine_mean": mean_cos,
    });
    let path = root.join("bench/results/embed.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap() + "\n")
        .expect("write results");
    println!("wrote {}", path.display());
}

/// ragtune's configurations one lever at a time, each the best of 3 runs.
fn levers(dir: &Path, texts: &[&str], threads: usize) -> Vec<Value> {
    // f32 products, as every lever was measured before the bf16 one (the last row).
    let base = EmbedOptions {
        threads,
        precision: Precision::F32,
        ..EmbedOptions::default()
    };
    let configs: Vec<(&str, EmbedOptions)> = vec![
        (
            "candle stock ops, padded batches of ~2048 tokens, input order",
            EmbedOptions {
                kernels: Kernels::CandleOps,
                sort_by_length: false,
                batch_tokens: 2048,
                ..base.clone()
            },
        ),
        (
            "candle stock ops, padded, sorted by length",
            EmbedOptions {
                kernels: Kernels::CandleOps,
                batch_tokens: 2048,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 2048 tokens, threads inside ops",
            EmbedOptions {
                parallelism: Parallelism::WithinOps,
                batch_tokens: 2048,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 512 tokens, threads inside ops",
            EmbedOptions {
                parallelism: Parallelism::WithinOps,
                batch_tokens: 512,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 2048 tokens, one batch per thread",
            EmbedOptions {
                parallelism: Parallelism::Batches,
                batch_tokens: 2048,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 1024 tokens, one batch per thread",
            EmbedOptions {
                parallelism: Parallelism::Batches,
                batch_tokens: 1024,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 512 tokens, one batch per thread, f32",
            EmbedOptions {
                parallelism: Parallelism::Batches,
                batch_tokens: 512,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 256 tokens, one batch per thread",
            EmbedOptions {
                parallelism: Parallelism::Batches,
                batch_tokens: 256,
                ..base.clone()
            },
        ),
        (
            "fused kernels, packed 512 tokens, one batch per thread, input order",
            EmbedOptions {
                parallelism: Parallelism::Batches,
                sort_by_length: false,
                ..base.clone()
            },
        ),
        (
            if ragtune_embed::amx_available() {
                "fused kernels, packed 512 tokens, one batch per thread, bf16 products on AMX (default)"
            } else {
                "fused kernels, packed 512 tokens, one batch per thread, Precision::Auto (no AMX here: f32; default)"
            },
            EmbedOptions {
                parallelism: Parallelism::Batches,
                precision: Precision::Auto,
                ..base.clone()
            },
        ),
    ];
    // Three passes over all configurations, the best pass of each counting, so that a
    // burst of other work on the machine does not decide a comparison.
    let models: Vec<(&str, SentenceEmbedder)> = configs
        .into_iter()
        .map(|(what, options)| {
            let model = SentenceEmbedder::load_with(dir, &options).expect("load");
            model.embed(&texts[..64.min(texts.len())]).expect("warm-up");
            (what, model)
        })
        .collect();
    let mut best = vec![f64::INFINITY; models.len()];
    for _ in 0..3 {
        for ((_, model), best) in models.iter().zip(&mut best) {
            let start = Instant::now();
            model.embed(texts).expect("embed");
            *best = best.min(start.elapsed().as_secs_f64());
        }
    }
    models
        .iter()
        .zip(best)
        .map(|((what, _), seconds)| {
            let rate = texts.len() as f64 / seconds;
            println!("lever: {what}: {rate:.1} sentences/s");
            json!({ "what": what, "sentences_per_s": rate })
        })
        .collect()
}

fn minilm_dir() -> PathBuf {
    let store = ragtune_catalog::ModelStore::from_env().expect("model store");
    match store.resolve("all-minilm-l6-v2") {
        Ok(ragtune_catalog::ResolvedModel::HfFolder(path)) => path,
        other => panic!("all-minilm-l6-v2: {other:?} (run `ragtune models pull all-minilm-l6-v2`)"),
    }
}

/// The first `count` sentences of the SQuAD v1.1 dev contexts: each context split after
/// `.`, `!` or `?` followed by white space, sentences of more than 20 bytes kept.
fn squad_sentences(root: &Path, count: usize) -> Vec<String> {
    let path = root.join("../shared/data/squad-v1.1-dev/dev-v1.1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the bench reads shared/data)", path.display()));
    let squad: Value = serde_json::from_str(&text).expect("SQuAD JSON");
    let mut out = Vec::new();
    let contexts = squad["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["paragraphs"].as_array().into_iter().flatten())
        .filter_map(|p| p["context"].as_str());
    for context in contexts {
        let mut start = 0;
        let chars: Vec<(usize, char)> = context.char_indices().collect();
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(k + 1).is_some_and(|&(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                push_sentence(&mut out, &context[start..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        push_sentence(&mut out, &context[start..]);
        if out.len() >= count {
            break;
        }
    }
    out.truncate(count);
    out
}

fn push_sentence(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if s.len() > 20 {
        out.push(s.to_string());
    }
}

fn sentence_transformers(
    root: &Path,
    model: &Path,
    texts: &Path,
    out: &Path,
    threads: usize,
) -> Value {
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = root.join("bench/reference/sentence_transformers_reference.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg("bench")
        .arg(model)
        .arg(texts)
        // Two timed runs per process, the better one counts: PyTorch's first full pass is
        // sometimes slower (allocator growth), which should not count against it.
        .args(["--threads", &threads.to_string(), "--repeats", "2", "--out"])
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    if !output.status.success() {
        panic!(
            "{} failed (install the packages listed at its top):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).expect("reference JSON")
}

fn read_f32(path: &Path, dim: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).expect("read reference vectors");
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    floats.chunks_exact(dim).map(<[f32]>::to_vec).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
