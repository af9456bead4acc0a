//! `ragtune ask`: retrieve, augment, generate, and check the citations (the RAFT way when
//! `--adapter` was trained on RAFT data, see `crate::raft`).

use crate::args::{AnswerArgs, ModelArgs};
use crate::kb::{KbArgs, OpenedKb, filter_of, open_embedder};
use crate::term;
use anyhow::{Result, bail};
use clap::Args;
use ragtune_answer::{Answer, Answerer, CitationStatus, ExamplePool, Mode, load_examples};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// rag (retrieve, then answer), closed-book (no retrieval) or few-shot (examples, no
    /// retrieval).
    #[arg(long, default_value = "rag")]
    pub mode: Mode,
    /// Question/answer examples for few-shot (JSONL with question and answer, or SQuAD JSON).
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Only sources matching this glob.
    #[arg(long)]
    pub path: Option<String>,
    #[command(flatten)]
    pub answer: AnswerArgs,
    /// Print the answer, citations, passages and timings as JSON.
    #[arg(long)]
    pub json: bool,
    /// With a RAFT adapter: print the model's chain of thought before the answer.
    #[arg(long)]
    pub show_reasoning: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub kb: KbArgs,
}

pub fn ask(mut args: AskArgs) -> Result<()> {
    // An adapter trained on `ragtune raft build` data answers with the RAFT prompt.
    if let Some(run) = crate::raft::trained_run(args.model.adapter.as_deref())? {
        return crate::raft::ask(args, run);
    }
    args.model
        .model
        .get_or_insert_with(crate::args::default_answer_model);
    // Each `ask` is a new process: the cells of the prompt's shared opening (system text, worked
    // exchanges) come from the last run's file instead of being computed again.
    args.model.prompt_cache = ragtune_catalog::default_home()
        .ok()
        .map(|home| home.join("prompt-cache"));
    let mut options = args.answer.options(args.mode)?;
    options.filter = filter_of(args.path.clone(), &[], &[])?;
    // Loading the model (about a second for Qwen: llama.cpp repacks its weights for the CPU's
    // matrix kernels) overlaps opening the embedder and the knowledge base.
    let (generator, embedder, kb) = std::thread::scope(|s| -> Result<_> {
        let model = s.spawn(|| crate::generate::load(&args.model));
        let opened = open_embedder(&args.kb.embedder).and_then(|embedder| {
            let kb = match args.mode {
                Mode::Rag => Some(OpenedKb::open(&args.kb, &embedder)?),
                _ => None,
            };
            Ok((embedder, kb))
        });
        let generator = model
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let (embedder, kb) = opened?;
        Ok((generator, embedder, kb))
    })?;
    let retriever = kb.as_ref().map(|kb| kb.retriever(&embedder)).transpose()?;
    let pool = match (args.mode, &args.examples) {
        (Mode::FewShot, Some(file)) => Some(ExamplePool::new(load_examples(file)?, &embedder)?),
        (Mode::FewShot, None) => bail!("few-shot mode needs --examples FILE (JSONL or SQuAD JSON)"),
        _ => None,
    };
    let mut answerer = Answerer::new(&generator, options);
    if let Some(r) = &retriever {
        answerer = answerer.with_retriever(r.as_ref());
    }
    if let Some(p) = &pool {
        answerer = answerer.with_examples(p);
    }
    let answer = if args.json {
        answerer.ask(&args.question)?
    } else {
        let mut out = std::io::stdout().lock();
        let a = answerer.ask_streaming(&args.question, &mut |t| match out
            .write_all(term::safe(t).as_bytes())
            .and_then(|()| out.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        })?;
        writeln!(out)?;
        a
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_sources(&answer);
    }
    Ok(())
}

fn print_sources(answer: &Answer) {
    if answer.abstention.abstained {
        println!("=> {}", term::safe(&answer.answer));
    }
    for c in &answer.citations {
        // `ok` only when the passage supports the claim; `unsupported` when it is merely a
        // passage of the prompt.
        let status = match c.status {
            CitationStatus::Ok | CitationStatus::Unsupported => c.status.to_string(),
            failed => format!("FAILED: {failed}"),
        };
        match &c.chunk {
            Some(chunk) => {
                let page = chunk.page.map(|p| format!(" p.{p}")).unwrap_or_default();
                let heading = if chunk.heading_path.is_empty() {
                    String::new()
                } else {
                    format!(" > {}", chunk.heading_path.join(" > "))
                };
                let line = format!(
                    "[{}] {}{page}{heading} (chars {}..{}) [{status}]",
                    c.number, chunk.source, chunk.start, chunk.end
                );
                println!("{}", term::safe(&line));
            }
            None => println!("[{}] not a passage of the prompt [{status}]", c.number),
        }
    }
    let confidence = answer
        .abstention
        .confidence
        .map(|c| format!(" | confidence {c:.2}"))
        .unwrap_or_default();
    eprintln!(
        "retrieval {:.0} ms | prompt {} tokens (budget {}) | completion {} tokens | total {:.0} ms{confidence}",
        answer.timings.retrieval_ms,
        answer.tokens.prompt,
        answer.tokens.prompt_budget,
        answer.tokens.completion,
        answer.timings.total_ms
    );
}
