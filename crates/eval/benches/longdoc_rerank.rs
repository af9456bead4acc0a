//! Does a generator reading each candidate put the gold paragraph into the reader's two
//! passages more often than retrieval's own order? `cargo bench -p ragtune-eval --bench
//! longdoc_rerank` (minutes: one short prompt per candidate).
//!
//! The knowledge base and questions are `longdoc_retrieval`'s (`LONGDOC_KB`,
//! `LONGDOC_QUESTIONS`; `LONGDOC_SAMPLE` [200], seed 0). For each question the default
//! hybrid retrieval's first `RERANK_DEPTH` [6] passages are shown one by one to the generator
//! `RERANK_MODEL` (a GGUF path; default the catalogue's Qwen 0.5B) with the question, asking
//! whether the passage states the answer; the score of a passage is log P(yes) - log P(no) of
//! the reply's first token. It prints the share of answerable questions whose gold paragraph
//! (by `eval qa`'s test) is in the first two passages of: retrieval's order; the generator's
//! order; and the two fused by reciprocal rank; with the prompt tokens and time spent.
//!
//! A trained judge: `RERANK_WRITE_DATA=FILE` writes, instead of scoring, the same yes/no
//! prompts as chat examples for `ragtune train sft` (messages JSONL): for each question each
//! passage holding the gold paragraph's answer (target "Yes") and the `RERANK_NEGATIVES` [1]
//! best-ranked passages that do not ("No"); `RERANK_ADAPTER=adapter.gguf` then scores with that
//! LoRA adapter on `RERANK_MODEL`. Questions for the two come from disjoint articles
//! (`bench/sft_squad/split.py`), the knowledge base holds them all.

use ragtune_answer::eval::gold_in_passages;
use ragtune_answer::sanitize::sanitize_passage;
use ragtune_core::{
    ChatMessage, GenerationRequest, Generator, Prompt, Query, Retriever, SearchMode,
};
use ragtune_eval::QuestionSet;
use ragtune_index::KnowledgeBase;
use ragtune_model::llama::{AdapterSpec, LlamaGenerator, LoadOptions};
use ragtune_retrieve::KbRetriever;
use std::io::Write;
use std::time::Instant;

mod longdoc;
use longdoc::{BoxError, env_path, env_usize};

const SYSTEM: &str = "You check whether a passage answers a question. Reply with Yes or No.";

/// The judge's prompt: the same messages at inference and in the training data.
fn messages(question: &str, passage: &str) -> Vec<ChatMessage> {
    let user = format!(
        "Question: {question}\n\nPassage:\n{passage}\n\nDoes the passage state the answer to \
         the question? Reply Yes or No."
    );
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user)]
}

fn request(question: &str, passage: &str, adapter: Option<&str>) -> GenerationRequest {
    let mut r =
        GenerationRequest::new(Prompt::Chat(messages(question, passage))).with_max_tokens(1);
    r.adapter = adapter.map(str::to_owned);
    r.logprobs = true;
    r.top_logprobs = 20;
    r
}

/// log P(yes) - log P(no) over the first token's most likely alternatives (any case, any
/// leading space); a word missing from them counts as the least likely one listed.
fn yes_minus_no(reply: &ragtune_core::Generation) -> f64 {
    let Some(first) = reply.logprobs.first() else {
        return 0.0;
    };
    let floor = first
        .top
        .iter()
        .map(|(_, lp)| f64::from(*lp))
        .fold(0.0, f64::min);
    let mass = |word: &str| {
        let p: f64 = first
            .top
            .iter()
            .filter(|(b, _)| String::from_utf8_lossy(b).trim().eq_ignore_ascii_case(word))
            .map(|(_, lp)| f64::from(*lp).exp())
            .sum();
        if p > 0.0 { p.ln() } else { floor }
    };
    mass("yes") - mass("no")
}

/// Positions (0-based, into the candidates) by `score`, highest first; ties keep retrieval's
/// order.
fn order_by(score: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    order
}

fn main() -> Result<(), BoxError> {
    let longdoc::Inputs {
        kb: kb_dir,
        questions,
        sample,
        embedder,
        models,
    } = longdoc::inputs(200)?;
    let model = env_path(
        "RERANK_MODEL",
        models
            .join("qwen2.5-coder-0.5b-instruct-q8_0/qwen2.5-coder-0.5b-instruct-q4_k_m.q8_0.gguf"),
    );
    let depth = env_usize("RERANK_DEPTH", 6);
    let embedder = ragtune_embed::SentenceEmbedder::load(&embedder)?;
    let kb = KnowledgeBase::open_existing(&kb_dir, &embedder)?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let set = QuestionSet::load(&questions, sample, 0)?;
    if let Some(out) = std::env::var_os("RERANK_WRITE_DATA") {
        return write_data(&retriever, &set, depth, out.as_ref());
    }
    let adapter = std::env::var_os("RERANK_ADAPTER").map(std::path::PathBuf::from);
    let generator = LlamaGenerator::load(
        &model,
        &LoadOptions {
            threads: 2,
            context_length: 2048,
            adapters: adapter
                .iter()
                .map(|path| AdapterSpec {
                    name: "judge".into(),
                    path: path.clone(),
                    scale: 1.0,
                })
                .collect(),
            ..Default::default()
        },
    )?;
    let adapter_name = adapter.as_ref().map(|_| "judge");
    println!(
        "{}: {} questions (seed 0), the first {depth} passages scored by {}{}",
        kb_dir.display(),
        set.items.len(),
        model.display(),
        adapter
            .as_ref()
            .map_or(String::new(), |a| format!(" with {}", a.display()))
    );
    // Gold-in-top-two counts: retrieval's order, the generator's, and RRF fusions of the two.
    let fusions = [(2.0, 1.0), (5.0, 1.0), (2.0, 2.0), (5.0, 2.0)];
    let (mut asked, mut base, mut judged, mut in_depth) = (0usize, 0usize, 0usize, 0usize);
    let mut fused = vec![0usize; fusions.len()];
    let (mut prompt_tokens, start) = (0u64, Instant::now());
    for item in &set.items {
        let texts = passages(&retriever, &item.question, depth)?;
        let Some(any) = gold_in_passages(item, &texts) else {
            continue;
        };
        asked += 1;
        in_depth += usize::from(any);
        let requests: Vec<GenerationRequest> = texts
            .iter()
            .map(|t| request(&item.question, t, adapter_name))
            .collect();
        let replies = generator.generate_batch(&requests)?;
        prompt_tokens += replies
            .iter()
            .map(|r| u64::from(r.usage.prompt_tokens))
            .sum::<u64>();
        let score: Vec<f64> = replies.iter().map(yes_minus_no).collect();
        let holds = |picked: &[usize]| {
            gold_in_passages(item, picked.iter().map(|&i| &texts[i])) == Some(true)
        };
        base += usize::from(holds(&[0, 1][..texts.len().min(2)]));
        let judged_order = order_by(&score);
        judged += usize::from(holds(&judged_order[..2.min(score.len())]));
        let mut judge_rank = vec![0usize; score.len()];
        for (r, &i) in judged_order.iter().enumerate() {
            judge_rank[i] = r;
        }
        for (n, &(k, w)) in fusions.iter().enumerate() {
            let f: Vec<f64> = (0..score.len())
                .map(|i| 1.0 / (k + 1.0 + i as f64) + w / (k + 1.0 + judge_rank[i] as f64))
                .collect();
            fused[n] += usize::from(holds(&order_by(&f)[..2.min(f.len())]));
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / asked.max(1) as f64;
    let secs = start.elapsed().as_secs_f64();
    println!("| order | gold paragraph in the first two |");
    println!("|---|---|");
    println!(
        "| retrieval (default) | {:.1}% ({base} of {asked}) |",
        pct(base)
    );
    println!("| generator yes/no | {:.1}% ({judged}) |", pct(judged));
    for (n, (k, w)) in fusions.iter().enumerate() {
        println!(
            "| RRF k {k}, generator weight {w} | {:.1}% ({}) |",
            pct(fused[n]),
            fused[n]
        );
    }
    println!(
        "| (any of the first {depth}) | {:.1}% ({in_depth}) |",
        pct(in_depth)
    );
    println!(
        "{prompt_tokens} prompt tokens, {secs:.0} s: {:.2} s a question",
        secs / set.items.len().max(1) as f64
    );
    Ok(())
}

/// The default hybrid retrieval's first `depth` passages for `question`, as the reader sees them.
fn passages(
    retriever: &KbRetriever<'_>,
    question: &str,
    depth: usize,
) -> Result<Vec<String>, BoxError> {
    let hits = retriever.retrieve(&Query::new(question, depth, SearchMode::Hybrid))?;
    Ok(hits.iter().map(|h| sanitize_passage(&h.text)).collect())
}

/// Writes the judge's training examples (see the top of this file) and counts them.
fn write_data(
    retriever: &KbRetriever<'_>,
    set: &QuestionSet,
    depth: usize,
    out: &std::path::Path,
) -> Result<(), BoxError> {
    let negatives = env_usize("RERANK_NEGATIVES", 1);
    let mut file = std::io::BufWriter::new(fs_err::File::create(out)?);
    let (mut yes, mut no, mut without_gold) = (0usize, 0usize, 0usize);
    for item in &set.items {
        let texts = passages(retriever, &item.question, depth)?;
        let labels: Vec<Option<bool>> = texts.iter().map(|t| gold_in_passages(item, [t])).collect();
        if labels.iter().all(|l| l.is_none()) {
            continue; // unanswerable or no gold paragraph: nothing to learn from
        }
        without_gold += usize::from(!labels.contains(&Some(true)));
        let mut shown_no = 0;
        for (text, label) in texts.iter().zip(&labels) {
            let target = match label {
                Some(true) => {
                    yes += 1;
                    "Yes"
                }
                Some(false) if shown_no < negatives => {
                    shown_no += 1;
                    "No"
                }
                _ => continue,
            };
            let mut turns = messages(&item.question, text);
            turns.push(ChatMessage::assistant(target));
            serde_json::to_writer(&mut file, &serde_json::json!({ "messages": turns }))?;
            file.write_all(b"\n")?;
        }
        no += shown_no;
    }
    file.flush()?;
    println!(
        "{}: {yes} Yes and {no} No examples from {} questions ({without_gold} without the gold \
         paragraph in the first {depth})",
        out.display(),
        set.items.len()
    );
    Ok(())
}
