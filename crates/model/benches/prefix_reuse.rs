//! Prefix reuse ([`LoadOptions::prefix_reuse`]): RAG prompts answered one at a time, as `eval
//! qa` and `ask` send them, with each slot's KV cells kept between requests, against the same
//! prompts computed whole, in one run.
//!
//! `cargo bench -p ragtune-model --bench prefix_reuse`. The prompts are chats as `ragtune eval
//! qa --write-sft FILE` writes them (each line's `messages` without the last, the gold
//! answer): `PREFIX_PROMPTS` (required). `PREFIX_MODEL`: a catalogue name or a GGUF path
//! (default qwen2.5-coder-0.5b-instruct); `PREFIX_N` prompts (100); `PREFIX_MAX_TOKENS` (64,
//! greedy); `BENCH_THREADS` (2). The two generators take turns prompt by prompt (which goes
//! first alternates), so a busy moment of the machine falls on both. Prints each side's total
//! and median time, their ratio, the share of prompt tokens reused and how many answers are
//! identical.

use ragtune_core::{ChatMessage, GenerationRequest, Generator, Prompt, stats::percentile};
use ragtune_model::llama::{LlamaGenerator, LoadOptions};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let prompts = std::env::var_os("PREFIX_PROMPTS")
        .map(PathBuf::from)
        .expect("PREFIX_PROMPTS: a JSONL file from `ragtune eval qa --write-sft`");
    let n: usize = env("PREFIX_N", 100);
    let max_tokens: u32 = env("PREFIX_MAX_TOKENS", 64);
    let threads: usize = env("BENCH_THREADS", 2);
    let model =
        std::env::var("PREFIX_MODEL").unwrap_or_else(|_| "qwen2.5-coder-0.5b-instruct".into());
    let path = if std::path::Path::new(&model).is_file() {
        PathBuf::from(&model)
    } else {
        let store = ragtune_catalog::ModelStore::from_env().expect("model store");
        match store.resolve(&model) {
            Ok(ragtune_catalog::ResolvedModel::Gguf(p)) => p,
            other => panic!("{model}: {other:?} (run `ragtune models pull {model}`)"),
        }
    };
    let text =
        std::fs::read_to_string(&prompts).unwrap_or_else(|e| panic!("{}: {e}", prompts.display()));
    let requests: Vec<GenerationRequest> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", prompts.display(), i + 1));
            let mut chat: Vec<ChatMessage> = serde_json::from_value(v["messages"].clone())
                .unwrap_or_else(|e| panic!("{} line {}: messages: {e}", prompts.display(), i + 1));
            if chat
                .last()
                .is_some_and(|m| m.role == ragtune_core::Role::Assistant)
            {
                chat.pop();
            }
            GenerationRequest::new(Prompt::Chat(chat)).with_max_tokens(max_tokens)
        })
        .collect();
    let load = |prefix_reuse| {
        let options = LoadOptions {
            threads,
            prefix_reuse,
            ..LoadOptions::default()
        };
        LlamaGenerator::load(&path, &options).expect("load")
    };
    let (whole, reusing) = (load(false), load(true));
    println!(
        "{}: {} prompts, greedy, up to {max_tokens} tokens, {threads} threads ({} cores available)",
        path.display(),
        requests.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let run = |g: &LlamaGenerator, r: &GenerationRequest| {
        let started = Instant::now();
        let out = g
            .generate(r, &mut |_| ControlFlow::Continue(()))
            .expect("generate");
        (started.elapsed().as_secs_f64(), out)
    };
    let (mut t_whole, mut t_reuse) = (Vec::new(), Vec::new());
    let (mut same, mut prompt_tokens) = (0usize, 0u64);
    for (i, r) in requests.iter().enumerate() {
        let (a, b) = if i % 2 == 0 {
            let a = run(&whole, r);
            (a, run(&reusing, r))
        } else {
            let b = run(&reusing, r);
            (run(&whole, r), b)
        };
        if a.1.text == b.1.text {
            same += 1;
        } else {
            println!(
                "prompt {}: whole {:?}, reuse {:?}",
                i + 1,
                a.1.text,
                b.1.text
            );
        }
        prompt_tokens += u64::from(a.1.usage.prompt_tokens);
        t_whole.push(a.0);
        t_reuse.push(b.0);
    }
    let total = |t: &[f64]| t.iter().sum::<f64>();
    let median = |t: &[f64]| percentile(t, 50.0);
    println!("| | total s | p50 s |");
    println!("|---|---|---|");
    println!(
        "| every prompt computed whole | {:.1} | {:.2} |",
        total(&t_whole),
        median(&t_whole)
    );
    println!(
        "| prefix reuse | {:.1} | {:.2} |",
        total(&t_reuse),
        median(&t_reuse)
    );
    println!(
        "reuse / whole: total {:.2}x, p50 {:.2}x; prompt tokens reused {} of {} ({:.1}%); identical answers {same} of {}",
        total(&t_reuse) / total(&t_whole),
        median(&t_reuse) / median(&t_whole),
        reusing.reused_prompt_tokens(),
        prompt_tokens,
        100.0 * reusing.reused_prompt_tokens() as f64 / prompt_tokens.max(1) as f64,
        requests.len()
    );
}
