//! Generation on SmolLM2: greedy output equals llama.cpp's, sampling knobs, stops, batching.

use crate::{SMOLLM2, data, model_path, smollm2};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use ragtune_core::{
    ChatMessage, FinishReason, GenerationRequest, Generator, Prompt, SamplingParams,
};
use std::num::NonZeroU32;
use std::ops::ControlFlow;

fn greedy(prompt: Prompt, max_tokens: u32) -> GenerationRequest {
    GenerationRequest::new(prompt).with_max_tokens(max_tokens)
}

fn run(request: &GenerationRequest) -> ragtune_core::Generation {
    smollm2()
        .generate(request, &mut |_| ControlFlow::Continue(()))
        .unwrap()
}

/// Greedy decoding the plainest way llama.cpp's API allows, on this machine: the prompt in one
/// batch, then one token at a time, the argmax of the logits, in a context of the shape the
/// generator makes for this request (256 cells, batches of 512, one thread, f16 cache).
/// Returns the prompt's token count and the text.
fn llama_cpp_greedy(prompt: &str, max_tokens: usize) -> (usize, String) {
    let backend = ragtune_model::llama::backend().unwrap();
    let model =
        LlamaModel::load_from_file(backend, model_path(SMOLLM2), &LlamaModelParams::default())
            .unwrap();
    let vocab = model.vocab();
    let prompt = vocab.tokenize(prompt.as_bytes(), true, true);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(256))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(1)
        .with_n_threads_batch(1);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut batch = LlamaBatch::new(512, 1);
    for (i, &token) in prompt.iter().enumerate() {
        batch
            .add(token, i as i32, &[0], i + 1 == prompt.len())
            .unwrap();
    }
    let mut bytes = Vec::new();
    for position in prompt.len()..prompt.len() + max_tokens {
        ctx.decode(&mut batch).unwrap();
        let logits = ctx.get_logits_ith(batch.n_tokens() - 1);
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        let token = LlamaToken(best as i32);
        if vocab.is_eog(token) {
            break;
        }
        bytes.extend(vocab.token_to_piece(token, false, None));
        batch.clear();
        batch.add(token, position as i32, &[0], true).unwrap();
    }
    (prompt.len(), String::from_utf8(bytes).unwrap())
}

/// The engine (continuous batching, prompt chunks, streaming, stop handling) writes what a
/// plain llama.cpp loop writes. The reference is computed here, not recorded: llama.cpp's CPU
/// kernels differ by instruction set, and the text llama-cpp-python 0.3.36 wrote on an AMD
/// Zen 4 (`greedy_smollm2.json`, from `python3 bench/reference/llama_cpp_reference.py greedy
/// MODEL PROMPT`) parts in its second sentence from what the same file gives on an Intel Xeon
/// with AMX. Its prompt token count does not depend on the CPU and is checked as recorded.
#[test]
fn greedy_text_equals_llama_cpp() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("greedy_smollm2.json")).unwrap())
            .unwrap();
    let prompt = expected["prompt"].as_str().unwrap().to_string();
    let g = run(&greedy(Prompt::Text(prompt.clone()), 48));
    let (prompt_tokens, text) = llama_cpp_greedy(&prompt, 48);
    assert_eq!(g.text, text);
    assert_eq!(g.usage.prompt_tokens as usize, prompt_tokens);
    assert_eq!(
        g.usage.prompt_tokens as u64,
        expected["prompt_tokens"].as_u64().unwrap()
    );
}

#[test]
fn streamed_text_is_the_final_text() {
    let request = greedy(
        Prompt::Chat(vec![ChatMessage::user("Name three colours.")]),
        40,
    );
    let mut streamed = String::new();
    let g = smollm2()
        .generate(&request, &mut |t| {
            streamed.push_str(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(!g.text.is_empty());
    assert_eq!(streamed, g.text);
}

#[test]
fn max_tokens_ends_with_length() {
    let g = run(&greedy(Prompt::Text("Once upon a time".into()), 5));
    assert_eq!(g.usage.completion_tokens, 5);
    assert_eq!(g.finish_reason, FinishReason::Length);
}

#[test]
fn chat_reply_ends_at_end_of_turn() {
    let g = run(&greedy(
        Prompt::Chat(vec![ChatMessage::user("Say just: hello")]),
        64,
    ));
    assert_eq!(g.finish_reason, FinishReason::Stop, "{g:?}");
    assert!(!g.text.contains("<|im_end|>"));
}

#[test]
fn stop_string_cuts_the_text() {
    let free = run(&greedy(Prompt::Text("1, 2, 3, 4,".into()), 16));
    // Stop at a piece of text the free run produced after its first few characters.
    let stop = free.text.trim_start()[2..5].to_string();
    let cut = run(&greedy(Prompt::Text("1, 2, 3, 4,".into()), 16).with_stop([stop.clone()]));
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert!(!cut.text.contains(&stop), "{cut:?} contains {stop:?}");
    assert!(free.text.starts_with(&cut.text), "{free:?} vs {cut:?}");
}

#[test]
fn cancelling_the_sink_stops_generation() {
    let request = greedy(Prompt::Text("Once upon a time".into()), 50);
    let mut pieces = 0;
    let g = smollm2()
        .generate(&request, &mut |_| {
            pieces += 1;
            if pieces == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(g.usage.completion_tokens <= 4);
}

fn sampled(seed: u32) -> String {
    let params = SamplingParams {
        temperature: 1.0,
        top_k: 50,
        top_p: 0.95,
        repeat_penalty: 1.1,
        repeat_last_n: 64,
        seed,
    };
    run(&greedy(Prompt::Text("My favourite food is".into()), 24).with_sampling(params)).text
}

#[test]
fn a_seed_makes_sampling_repeatable() {
    assert_eq!(sampled(7), sampled(7));
    let distinct: std::collections::HashSet<String> = (1..=4).map(sampled).collect();
    assert!(distinct.len() > 1, "four seeds gave one text: {distinct:?}");
}

/// What a server's `/metrics` reports of a model's contexts. SmolLM2 keeps 23,040 bytes
/// a KV cell (30 layers, keys and values of 3 heads of 64, f16). A context is created when
/// no kept one fits; the largest single-sequence and batched ones stay kept, others are freed.
#[test]
fn kv_cache_counters_follow_the_contexts_kept() {
    use ragtune_model::llama::{LlamaGenerator, LoadOptions};
    const CELL: u64 = 30 * 2 * 3 * 64 * 2;
    let options = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let g = LlamaGenerator::load(model_path(SMOLLM2), &options).unwrap();
    let kv = g.kv_cache().expect("a local model reports its KV cache");
    assert_eq!((kv.contexts_created(), kv.bytes()), (0, 0));
    let short = greedy(Prompt::Text("The capital of France is".into()), 4);
    let one = |r: &GenerationRequest| g.generate(r, &mut |_| ControlFlow::Continue(())).unwrap();
    one(&short);
    // One sequence gets room for a long prompt: the context length, at most 4,096 cells.
    let single = u64::from(g.context_length().min(4096)) * CELL;
    assert_eq!((kv.contexts_created(), kv.bytes()), (1, single));
    one(&short);
    assert_eq!((kv.contexts_created(), kv.bytes()), (1, single));
    // A batch of three: three slots of 256 cells (prompt and answer, rounded up).
    g.generate_batch(&vec![short.clone(); 3]).unwrap();
    let batched = 3 * 256 * CELL;
    assert_eq!((kv.contexts_created(), kv.bytes()), (2, single + batched));
    // A smaller batch fits the kept one; a larger one replaces it.
    g.generate_batch(&vec![short.clone(); 2]).unwrap();
    assert_eq!((kv.contexts_created(), kv.bytes()), (2, single + batched));
    g.generate_batch(&vec![short.clone(); 4]).unwrap();
    assert_eq!(
        (kv.contexts_created(), kv.bytes()),
        (3, single + 4 * 256 * CELL)
    );
}

#[test]
fn batched_generation_equals_one_by_one() {
    let prompts = [
        "The capital of France is",
        "def add(a, b):",
        "Water boils at",
        "The three primary colours are",
        "Once upon a time, in a small village,",
    ];
    let requests: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| greedy(Prompt::Text(p.to_string()), 8 + 4 * i as u32))
        .collect();
    let batched = smollm2().generate_batch(&requests).unwrap();
    assert_eq!(batched.len(), requests.len());
    for (request, b) in requests.iter().zip(&batched) {
        let single = run(request);
        assert_eq!(b.text, single.text, "{:?}", request.prompt);
        assert_eq!(b.usage, single.usage);
    }
}

#[test]
fn a_streamed_batch_hands_each_request_its_own_text_and_stops_one_alone() {
    let requests: Vec<_> = [
        "The capital of France is",
        "def add(a, b):",
        "Water boils at",
    ]
    .iter()
    .map(|p| greedy(Prompt::Text(p.to_string()), 12))
    .collect();
    let mut streamed = vec![String::new(); requests.len()];
    // Request 1 is stopped after its first piece; the others run to the end.
    let batched = smollm2()
        .generate_batch_streaming(&requests, &mut |i, text| {
            streamed[i].push_str(text);
            if i == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    for (i, (request, b)) in requests.iter().zip(&batched).enumerate() {
        assert_eq!(streamed[i], b.text, "request {i}");
        if i == 1 {
            assert_eq!(b.finish_reason, FinishReason::Cancelled);
            assert_eq!(b.usage.completion_tokens, 1);
        } else {
            assert_eq!(b.text, run(request).text, "request {i}");
        }
    }
}

#[test]
fn ignore_eos_decodes_exactly_max_tokens() {
    let mut request = greedy(Prompt::Chat(vec![ChatMessage::user("Say: hi")]), 40);
    request.ignore_eos = true;
    let g = run(&request);
    assert_eq!(g.usage.completion_tokens, 40);
    assert_eq!(g.finish_reason, FinishReason::Length);
}

/// Each token with its log-probability and the most likely tokens at its position: the tokens
/// spell the text, greedy picks the first alternative, and a stop string cuts the tokens where
/// it cuts the text.
#[test]
fn logprobs_spell_the_text_and_greedy_takes_the_top_token() {
    let mut request = greedy(Prompt::Text("Once upon a time".into()), 12);
    request.logprobs = true;
    request.top_logprobs = 3;
    let g = run(&request);
    assert_eq!(g.logprobs.len(), g.usage.completion_tokens as usize);
    let spelled: Vec<u8> = g.logprobs.iter().flat_map(|t| t.bytes.clone()).collect();
    assert_eq!(String::from_utf8_lossy(&spelled), g.text);
    for t in &g.logprobs {
        assert!(t.logprob <= 0.0 && t.logprob.is_finite(), "{t:?}");
        assert_eq!(t.top.len(), 3, "{t:?}");
        assert!(t.top.windows(2).all(|w| w[0].1 >= w[1].1), "{t:?}");
        assert_eq!(
            t.top[0].0, t.bytes,
            "greedy decoding takes the most likely token"
        );
        assert!((t.top[0].1 - t.logprob).abs() < 1e-4, "{t:?}");
    }
    // Without logprobs none are computed.
    assert!(
        run(&greedy(Prompt::Text("Once upon a time".into()), 4))
            .logprobs
            .is_empty()
    );

    let whole = g.text.clone();
    let cut = whole
        .char_indices()
        .nth(whole.len() / 2)
        .map_or(0, |(i, _)| i);
    let stop = whole[cut..].chars().take(3).collect::<String>();
    let mut stopped = request.clone().with_stop([stop.clone()]);
    stopped.max_tokens = 12;
    let s = run(&stopped);
    assert!(
        !s.text.contains(&stop) && whole.starts_with(&s.text),
        "{:?}",
        s.text
    );
    let bytes: Vec<usize> = s.logprobs.iter().map(|t| t.bytes.len()).collect();
    let total: usize = bytes.iter().sum();
    assert!(
        total >= s.text.len() && total - bytes.last().copied().unwrap_or(0) < s.text.len().max(1),
        "{bytes:?} for {:?}",
        s.text
    );
}

/// RAG-shaped chats: one system text and worked exchange, then a passage and a question that
/// differ from prompt to prompt (the shape `ask` and `eval qa` send).
fn rag_shaped(facts: &[(&str, &str)]) -> Vec<GenerationRequest> {
    let system = "You answer questions from the numbered passages you are given. Quote the \
        passage that holds the answer, cite it as [n], and answer in as few words as the \
        question allows. When no passage holds the answer, say that the documents do not \
        contain it. Do not use what you know beyond the passages.";
    facts
        .iter()
        .map(|(passage, question)| {
            let chat = vec![
                ChatMessage::system(system),
                ChatMessage::user(
                    "Passages:\n[1] The Loire is the longest river in France, at 1,006 \
                     kilometres.\n\nQuestion: How long is the Loire?",
                ),
                ChatMessage::assistant("1,006 kilometres [1]"),
                ChatMessage::user(format!("Passages:\n[1] {passage}\n\nQuestion: {question}")),
            ];
            let mut request = greedy(Prompt::Chat(chat), 24);
            // Log-probabilities show a difference in the last bits that greedy text hides.
            request.logprobs = true;
            request.top_logprobs = 3;
            request
        })
        .collect()
}

/// A prompt cache folder carries a request's KV cells to a generator loaded later (as a new
/// `ask` process is): it starts from the shared prefix, with the answer a fresh generator
/// gives bit for bit; a damaged file only costs the reuse.
#[test]
fn a_prompt_cache_on_disk_carries_the_shared_prefix_to_the_next_process() {
    use ragtune_model::llama::{LlamaGenerator, LoadOptions};
    let requests = rag_shaped(&[
        (
            "The Danube flows through ten countries.",
            "How many countries does the Danube flow through?",
        ),
        (
            "Copper melts at 1,085 degrees Celsius.",
            "At what temperature does copper melt?",
        ),
    ]);
    for name in [crate::SMOLLM2, crate::QWEN] {
        let cache = tempfile::tempdir().unwrap();
        let load = |prompt_cache: Option<&std::path::Path>| {
            let options = LoadOptions {
                threads: 1,
                batch_size: 64,
                prompt_cache: prompt_cache.map(std::path::Path::to_path_buf),
                ..LoadOptions::default()
            };
            LlamaGenerator::load(crate::model_path(name), &options).unwrap()
        };
        let one = |g: &LlamaGenerator, r: &GenerationRequest| {
            g.generate(r, &mut |_| ControlFlow::Continue(())).unwrap()
        };
        let expected = one(&load(None), &requests[1]);
        let first = load(Some(cache.path()));
        one(&first, &requests[0]);
        drop(first);
        let files: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{name}: {files:?}");
        assert!(files[0].extension().is_some_and(|e| e == "kv"), "{files:?}");

        let next = load(Some(cache.path()));
        let got = one(&next, &requests[1]);
        assert_eq!(got.text, expected.text, "{name}");
        assert_eq!(got.logprobs, expected.logprobs, "{name}");
        assert_eq!(got.usage, expected.usage, "{name}");
        let prefix = next
            .tokenizer()
            .encode_prompt(&requests[1].prompt)
            .unwrap()
            .len()
            / 2;
        assert!(
            next.reused_prompt_tokens() >= prefix as u64,
            "{name}: {} tokens reused, prefix ~{prefix}",
            next.reused_prompt_tokens()
        );
        drop(next);

        // A damaged file: nothing reused, the same answer.
        let file = &files[0];
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..bytes.len() / 3]).unwrap();
        let damaged = load(Some(cache.path()));
        let got = one(&damaged, &requests[1]);
        assert_eq!(got.text, expected.text, "{name}");
        assert_eq!(got.logprobs, expected.logprobs, "{name}");
        assert_eq!(damaged.reused_prompt_tokens(), 0, "{name}");
    }
}

/// Each slot keeps its KV cells between requests, and a prompt that starts as the slot's last
/// one did computes only the rest. The answers must be the ones computed from scratch, one by
/// one, on both default models (a llama and a qwen2 file), down to the last bit of every
/// log-probability. Reused prefixes cut anywhere, or a prompt's rest computed in batches other
/// than a whole prompt's, changed answers (on SmolLM2, 2 of 40 RAG prompts in `--bench
/// prefix_reuse`).
#[test]
fn reusing_a_shared_prompt_prefix_changes_no_greedy_output() {
    use ragtune_model::llama::{LlamaGenerator, LoadOptions};
    let requests = rag_shaped(&[
        (
            "Mount Kosciuszko is the highest mountain in Australia.",
            "What is Australia's highest mountain?",
        ),
        (
            "The Danube flows through ten countries.",
            "How many countries does the Danube flow through?",
        ),
        (
            "Ada Lovelace published the first algorithm in 1843.",
            "When was the first algorithm published?",
        ),
        (
            "Copper melts at 1,085 degrees Celsius.",
            "At what temperature does copper melt?",
        ),
        (
            "The okapi lives in the rainforests of Congo.",
            "Where does the okapi live?",
        ),
    ]);
    for name in [crate::SMOLLM2, crate::QWEN] {
        let load = |prefix_reuse| {
            let options = LoadOptions {
                threads: 1,
                prefix_reuse,
                // Small batches, so these prompts cross batch boundaries as long ones do.
                batch_size: 64,
                ..LoadOptions::default()
            };
            LlamaGenerator::load(crate::model_path(name), &options).unwrap()
        };
        let (reusing, fresh) = (load(true), load(false));
        let one = |g: &LlamaGenerator, r: &GenerationRequest| {
            g.generate(r, &mut |_| ControlFlow::Continue(())).unwrap()
        };
        let expected: Vec<_> = requests.iter().map(|r| one(&fresh, r)).collect();
        let prefix = fresh
            .tokenizer()
            .encode_prompt(&requests[0].prompt)
            .unwrap()
            .len()
            / 2;
        // One by one, forwards then backwards: from the second request on, the system text and
        // worked exchange come from the request before.
        let order: Vec<usize> = (0..requests.len())
            .chain((0..requests.len()).rev())
            .collect();
        for &i in &order {
            let got = one(&reusing, &requests[i]);
            assert_eq!(got.text, expected[i].text, "{name}, request {i}");
            assert_eq!(got.logprobs, expected[i].logprobs, "{name}, request {i}");
            assert_eq!(got.usage, expected[i].usage, "{name}, request {i}");
        }
        let reused = reusing.reused_prompt_tokens();
        assert!(
            reused >= (prefix * (order.len() - 1)) as u64,
            "{name}: {reused} tokens reused one by one, prefix ~{prefix}"
        );
        assert_eq!(fresh.reused_prompt_tokens(), 0, "{name}");
        // Batched twice: the second time each slot starts from what it held. (A batch packs
        // its sequences' tokens into shared decode calls, so its answers are not bit for bit
        // those of one by one, with or without reuse; that is continuous batching's, not
        // reuse's, and `batched_generation_equals_one_by_one` checks it at the default size.)
        reusing.generate_batch(&requests).unwrap();
        let before = reusing.reused_prompt_tokens();
        reusing.generate_batch(&requests).unwrap();
        let reused = reusing.reused_prompt_tokens() - before;
        assert!(
            reused >= (prefix * requests.len()) as u64,
            "{name}: {reused} tokens reused batched"
        );
    }
}
