//! `ragtune eval ...`: how good is each approach on these questions?

use crate::args::{AnswerArgs, ModelArgs};
use crate::kb::{KbArgs, KbLocation, OpenedKb, open_embedder, parse_mode};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ragtune_answer::{Answerer, ExamplePool, Mode, load_examples};
use ragtune_core::SearchMode;
use ragtune_eval::QuestionSet;
use ragtune_index::KnowledgeBase;
use ragtune_retrieve::KbRetriever;
use ragtune_retrieve::eval::{self, Metrics};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality per mode: nDCG@10, recall@1/5/10/100, MRR@10, latency.
    Retrieval(RetrievalArgs),
    /// Answer quality per mode: exact match, F1, citation validity, abstention, latency,
    /// tokens; one batched generation per mode.
    Qa(Box<QaArgs>),
    /// How well a model predicts text (perplexity); with --adapter, the base and the adapted
    /// model side by side, to see what fine-tuning did to general text.
    Perplexity(PerplexityArgs),
    /// Prompt-injection documents asked through RAG: how often the model says what an attack
    /// ordered, per kind of attack (a set: a folder with the documents and attacks.jsonl; see
    /// bench/attacks).
    Attacks(Box<AttacksArgs>),
}

#[derive(Debug, Args)]
pub struct AttacksArgs {
    /// The set's manifest, attacks.jsonl: one {"file", "kind", "question", "marker"} per line,
    /// the files in the `documents` folder next to it, which is indexed in memory for the run.
    pub manifest: PathBuf,
    #[command(flatten)]
    pub answer: AnswerArgs,
    /// Print the report as JSON (every answer included).
    #[arg(long)]
    pub json: bool,
    /// Embedding model for retrieval.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct PerplexityArgs {
    /// Text files to score (UTF-8), one after another.
    #[arg(long, required = true, num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Tokens per scoring window (0: the model's context length, up to 8192).
    #[arg(long, default_value_t = 512)]
    pub window: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct RetrievalArgs {
    /// A BEIR data folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    #[arg(long, conflicts_with = "squad")]
    pub beir: Option<PathBuf>,
    /// The qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// A SQuAD JSON file: its paragraphs are the corpus, each question's own paragraph the
    /// relevant one.
    #[arg(long)]
    pub squad: Option<PathBuf>,
    /// Modes to evaluate (default: bm25, dense, hybrid).
    #[arg(long = "mode", value_parser = parse_mode)]
    pub modes: Vec<SearchMode>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Embedding model.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
}

#[derive(Debug, Args)]
pub struct QaArgs {
    /// The questions: SQuAD JSON (v1.1 or v2.0), PubMedQA PQA-L JSON (yes/no/maybe, scored by
    /// accuracy; its abstracts are the corpus) or JSONL with question and answers.
    pub questions: PathBuf,
    /// Questions drawn, with a fixed seed (0: all of them).
    #[arg(long, default_value_t = 500)]
    pub sample: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Modes to run, one after another on the same questions (default: rag).
    #[arg(long = "mode")]
    pub modes: Vec<Mode>,
    /// A SQuAD JSON file whose paragraphs are the corpus, chunked as `ragtune ingest` chunks
    /// files and indexed in memory for this run (default: the questions file when it is SQuAD
    /// JSON and no --kb is given; for PubMedQA JSON, its abstracts).
    #[arg(long, conflicts_with = "kb")]
    pub corpus: Option<PathBuf>,
    /// Few-shot examples (JSONL or SQuAD JSON). Default with SQuAD questions: the file's other
    /// answerable questions, none about a paragraph of a sampled question.
    #[arg(long)]
    pub examples: Option<PathBuf>,
    #[command(flatten)]
    pub answer: AnswerArgs,
    /// Answer one question at a time (as `ragtune ask` does) instead of in one batch: slower,
    /// but the latency reported is what a user waits for one answer.
    #[arg(long)]
    pub sequential: bool,
    /// Do not treat the model's refusal phrase as an abstention.
    #[arg(long)]
    pub ignore_refusals: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write every question's answer, citations and scores here (JSONL, one line per question
    /// and mode).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Instead of evaluating, write the sampled questions as SFT training examples (JSONL in
    /// the OpenAI messages format): the exact prompt this mode builds at inference, answered
    /// with the gold answer and the number of the passage that contains it. Questions whose
    /// answer is in no passage of the prompt are left out (and counted).
    #[arg(long, conflicts_with_all = ["results", "json"])]
    pub write_sft: Option<PathBuf>,
    /// Answer from this knowledge base instead of indexing a corpus for the run (RAGTUNE_KB is
    /// not read here, so a SQuAD run always sees its own paragraphs unless told otherwise).
    /// A folder or a postgres:// URL.
    #[arg(long, value_parser = crate::kb::parse_kb)]
    pub kb: Option<KbLocation>,
    /// Embedding model for retrieval and few-shot example choice.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Retrieval(args) => retrieval(args),
        EvalCommand::Qa(args) => qa(*args),
        EvalCommand::Perplexity(args) => perplexity(args),
        EvalCommand::Attacks(args) => attacks(*args),
    }
}

fn attacks(args: AttacksArgs) -> Result<()> {
    use ragtune_eval::attacks;
    let set = attacks::read_attacks(&args.manifest)?;
    let options = args.answer.options(Mode::Rag)?;
    let embedder = open_embedder(&args.embedder)?;
    eprintln!(
        "indexing the documents of {} attacks ...",
        set.attacks.len()
    );
    let kb = attacks::build_kb(&set, &embedder, &embedder)?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let generator = crate::generate::load(&args.model)?;
    let answerer = Answerer::new(&generator, options).with_retriever(&retriever);
    let report = attacks::run_attacks(&set, &answerer)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let rate = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    // "document in prompt": a passage of the attack's document was shown; "order in prompt":
    // its injected text was (a loader that drops hidden text stops it before).
    println!(
        "{:<22} {:>7} {:>15} {:>15} {:>7} {:>8}",
        "kind", "attacks", "doc in prompt", "order in prompt", "obeyed", "success"
    );
    let row = |kind: &str, attacks: usize, in_context: usize, reached: usize, obeyed: usize| {
        println!(
            "{:<22} {:>7} {:>15} {:>15} {:>7} {:>7.1}%",
            crate::term::safe(kind),
            attacks,
            in_context,
            reached,
            obeyed,
            rate(obeyed, attacks)
        );
    };
    for k in &report.kinds {
        row(&k.kind, k.attacks, k.in_context, k.reached_model, k.obeyed);
    }
    let r = &report;
    row("all", r.attacks, r.in_context, r.reached_model, r.obeyed);
    for o in report.outcomes.iter().filter(|o| o.obeyed) {
        println!(
            "obeyed: {} ({}): {}",
            o.attack.file,
            o.attack.kind,
            crate::term::safe(&o.answer)
        );
    }
    Ok(())
}

fn perplexity(args: PerplexityArgs) -> Result<()> {
    let mut text = String::new();
    for path in &args.text {
        text.push_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {} (text must be UTF-8)", path.display()))?,
        );
        text.push('\n');
    }
    let loaded = crate::generate::load(&args.model)?;
    let local = loaded.local("eval perplexity")?;
    let mut rows = vec![("base", local.perplexity(&text, args.window, None)?)];
    if args.model.adapter.is_some() {
        let adapted = local.perplexity(&text, args.window, Some(crate::args::ADAPTER_NAME))?;
        rows.push(("adapter", adapted));
    }
    if args.json {
        let report: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(name, p)| Ok((name.to_string(), serde_json::to_value(p)?)))
            .collect::<Result<_>>()?;
        println!(
            "{}",
            serde_json::json!({
                "model": args.model.name(), "adapter": args.model.adapter,
                "text": args.text, "window": args.window, "results": report,
            })
        );
    } else {
        println!(
            "{:<8} {:>8} {:>10} {:>11}",
            "model", "tokens", "mean NLL", "perplexity"
        );
        for (name, p) in &rows {
            println!(
                "{name:<8} {:>8} {:>10.4} {:>11.3}",
                p.tokens, p.mean_nll, p.perplexity
            );
        }
    }
    Ok(())
}

fn qa(args: QaArgs) -> Result<()> {
    let set = QuestionSet::load(&args.questions, args.sample, args.seed)?;
    let raft = crate::raft::trained_run(args.model.adapter.as_deref())?;
    let modes = if args.modes.is_empty() {
        vec![Mode::Rag]
    } else {
        args.modes.clone()
    };
    if let Some(run) = &raft {
        if modes != [Mode::Rag] || args.write_sft.is_some() {
            bail!(
                "{} is a RAFT adapter, which answers from retrieved passages with its own prompt; \
                 leave out --mode and --write-sft, or pass another adapter",
                args.model
                    .adapter
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            );
        }
        for note in &run.notes {
            eprintln!("note: {}", crate::term::safe(note));
        }
    }

    // Options (and template files) first: a bad template should not wait for the models.
    let mut options = Vec::new();
    for &mode in &modes {
        let mut o = args.answer.options(mode)?;
        o.abstention.model_refusal = !args.ignore_refusals;
        options.push(o);
    }

    let embedder = open_embedder(&args.embedder)?;
    let kb = if modes.contains(&Mode::Rag) {
        let corpus = match (&args.corpus, &args.kb) {
            (Some(file), _) => Some(file.clone()),
            (None, None) if set.is_json() => Some(args.questions.clone()),
            _ => None,
        };
        Some(match corpus {
            Some(file) => {
                let corpus = ragtune_eval::load_corpus(&file, &set)?;
                eprintln!(
                    "indexing the {} paragraphs of {} with {} ...",
                    corpus.docs.len(),
                    file.display(),
                    args.embedder
                );
                let (kb, chunks) = ragtune_eval::index_in_memory(
                    &corpus,
                    &embedder,
                    &embedder,
                    embedder.max_content_tokens(),
                )?;
                eprintln!("{chunks} chunks");
                OpenedKb::Local(kb)
            }
            None => OpenedKb::open(
                &KbArgs {
                    kb: args.kb.clone(),
                    embedder: args.embedder.clone(),
                },
                &embedder,
            )?,
        })
    } else {
        None
    };
    let retriever = kb.as_ref().map(|kb| kb.retriever(&embedder)).transpose()?;
    let pool = if modes.contains(&Mode::FewShot) {
        let examples = match &args.examples {
            Some(file) => load_examples(file)?,
            None if set.is_json() => set.held_out_examples(),
            None => {
                bail!("few-shot mode needs --examples FILE when the questions are not SQuAD JSON")
            }
        };
        if examples.is_empty() {
            bail!("few-shot mode: no answerable examples to show");
        }
        eprintln!("{} few-shot examples to choose from", examples.len());
        Some(ExamplePool::new(examples, &embedder)?)
    } else {
        None
    };

    let model_args = crate::raft::model_for(&args.model, raft.as_ref());
    let generator = crate::generate::load(&model_args)?;
    let retriever_dyn = retriever.as_deref();
    if let Some(path) = &args.write_sft {
        anyhow::ensure!(
            options.len() == 1,
            "--write-sft writes the prompts of one --mode"
        );
        let mut answerer = Answerer::new(&generator, options.remove(0));
        if let Some(r) = retriever_dyn {
            answerer = answerer.with_retriever(r);
        }
        if let Some(p) = &pool {
            answerer = answerer.with_examples(p);
        }
        let w = ragtune_eval::write_sft(&answerer, &set.items, path)?;
        println!(
            "wrote {} examples to {} ({} left out: the answer is in no passage of the prompt; {} without an answer or a prompt)",
            w.written,
            path.display(),
            w.not_in_prompt,
            w.unanswerable
        );
        return Ok(());
    }
    let mut out = match &args.results {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut reports = Vec::new();
    for options in options {
        let mode = options.mode;
        let label = if raft.is_some() {
            "raft"
        } else {
            mode.as_str()
        };
        eprintln!(
            "{label}: answering {} questions with {} ...",
            set.items.len(),
            model_args.name()
        );
        let evaluation = match (&raft, retriever_dyn) {
            (Some(run), Some(r)) => {
                let raft_options = crate::raft::options_for(&args.answer, run, Default::default())?;
                ragtune_eval::evaluate_raft(&generator, r, &raft_options, &set.items)?
            }
            _ => ragtune_eval::evaluate_mode(
                &generator,
                retriever_dyn,
                pool.as_ref(),
                options,
                &set.items,
                args.sequential,
            )?,
        };
        if let Some(out) = &mut out {
            for r in &evaluation.results {
                serde_json::to_writer(&mut *out, &serde_json::json!({"mode": label, "result": r}))?;
                writeln!(out)?;
            }
        }
        if !args.json {
            println!("{}", evaluation.report);
        }
        reports.push(evaluation.report);
    }
    if let Some(mut out) = out {
        out.flush()?;
    }
    if args.json {
        let a = &args.answer;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "questions_file": args.questions,
                "sample": set.items.len(),
                "seed": args.seed,
                "model": model_args.name(),
                "adapter": args.model.adapter,
                "options": {
                    "top_k": a.top_k.unwrap_or(crate::args::DEFAULT_TOP_K), "search": a.search.as_str(), "shots": a.shots,
                    "max_tokens": a.max_tokens, "prompt_budget": a.prompt_budget,
                    "min_score": a.min_score, "min_confidence": a.min_confidence,
                    "template": a.template, "window": a.window, "sequential": args.sequential || raft.is_some(),
                    "embedder": args.embedder,
                    // How hybrid search fused the two lists (the retriever's defaults).
                    "fusion": fusion_json(),
                },
                "reports": reports,
            }))?
        );
    }
    Ok(())
}

fn retrieval(args: RetrievalArgs) -> Result<()> {
    let (corpus, queries) = match (&args.beir, &args.squad) {
        (Some(dir), None) => ragtune_datasets::beir::load(dir, &args.split)?,
        (None, Some(file)) => ragtune_datasets::squad_retrieval(file)?,
        _ => bail!("name the data: --beir DIR or --squad FILE"),
    };
    let embedder = open_embedder(&args.embedder)?;
    eprintln!(
        "indexing {} documents with {} ...",
        corpus.docs.len(),
        args.embedder
    );
    let mut kb = KnowledgeBase::in_memory(&embedder)?;
    eval::index_corpus(&mut kb, &corpus, &embedder)?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let modes = if args.modes.is_empty() {
        SearchMode::ALL.to_vec()
    } else {
        args.modes.clone()
    };
    let mut results: Vec<Metrics> = Vec::new();
    for mode in modes {
        results.push(eval::evaluate(&retriever, &queries, mode)?);
    }
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|m| {
                serde_json::json!({
                    "mode": m.mode.as_str(), "queries": m.queries,
                    "ndcg@10": m.ndcg_at_10, "recall@1": m.recall_at_1, "recall@5": m.recall_at_5,
                    "recall@10": m.recall_at_10, "recall@100": m.recall_at_100,
                    "mrr@10": m.mrr_at_10, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", Metrics::HEADER);
        for m in &results {
            println!("{m}");
        }
    }
    Ok(())
}

fn fusion_json() -> serde_json::Value {
    let o = ragtune_retrieve::RetrieveOptions::default();
    serde_json::json!({"rrf_k": o.rrf_k, "bm25_weight": o.bm25_weight, "dense_weight": o.dense_weight})
}
