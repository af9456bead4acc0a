//! `ragtune`: customize a language model with your own documents, and measure which way works.

mod adapters;
mod args;
mod ask;
mod compare;
mod eval;
mod generate;
mod kb;
mod kb_check;
mod keys;
mod models;
mod progress;
mod raft;
mod serve;
mod term;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "ragtune", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch, list and remove models (pinned, hash-checked).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Continue a prompt with a local model.
    Generate(generate::GenerateArgs),
    /// Talk with a local model (reads standard input when it is not a terminal).
    Chat(generate::ChatArgs),
    /// Index files and folders into a knowledge base; run again to sync changes.
    Ingest(kb::IngestArgs),
    /// Look after a knowledge base (`kb check [--repair]`).
    #[command(subcommand)]
    Kb(kb_check::KbCommand),
    /// Search a knowledge base (hybrid, BM25 or dense).
    Search(kb::SearchArgs),
    /// Answer a question from the knowledge base, with checked citations.
    Ask(ask::AskArgs),
    /// Measure retrieval and answer quality.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Fine-tune a LoRA adapter: on prompt/response pairs (sft) or raw text (cpt).
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Work with trained adapters: list them (and which are stale), merge one into its base.
    #[command(subcommand, alias = "adapters")]
    Adapter(train::AdapterCommand),
    /// Retrieval-augmented fine-tuning (RAFT): build training data from your documents, train
    /// on it (`ask --adapter` then answers the RAFT way).
    #[command(subcommand)]
    Raft(raft::RaftCommand),
    /// The same questions through every approach (closed-book, few-shot, RAG, fine-tuned,
    /// RAFT): one report with confidence intervals, costs, scenarios and a recommendation.
    Compare(Box<compare::CompareArgs>),
    /// Serve the models and knowledge bases over an OpenAI-compatible HTTP API (chat and text
    /// completions, streaming, embeddings, models; RAG answers with checked citations).
    Serve(Box<serve::ServeArgs>),
    /// API keys for `serve` (create, list, revoke): with keys, every request needs one.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// The PDF parser panics on some malformed files; ragtune-ingest catches those panics and
/// reports the page as a warning, so the default hook's message and backtrace are noise.
/// Every other panic is printed as usual.
fn quiet_pdf_parser_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_pdf_parser = info.location().is_some_and(|l| {
            let file = l.file();
            [
                "pdf-extract",
                "lopdf",
                "adobe-cmap-parser",
                "type1-encoding-parser",
            ]
            .iter()
            .any(|c| file.contains(c))
        });
        if !in_pdf_parser {
            default(info);
        }
    }));
}

/// How long llama.cpp's threads spin at OpenMP's barriers before they sleep, unless the user
/// chose (`GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` set). libgomp's own default spins 300,000
/// times, which is fastest on an idle machine and, when another process wants the cores,
/// makes generation up to 19x slower (two `ragtune generate` at once: 93 s against 4.9 s
/// alone); at 1,000 the same took 10.5 s, for 5% more time idle (`bench/contention/run.py`).
const SPIN_COUNT: &str = "1000";

/// Re-runs this binary with [`SPIN_COUNT`] (same process, same arguments): libgomp reads its
/// environment when it is loaded, before `main`, so setting it here would be too late. On any
/// failure it carries on as it is.
fn spin_politely() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // Only returns when the exec failed (the binary was replaced, say).
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("GOMP_SPINCOUNT", SPIN_COUNT)
        .exec();
}

fn main() -> ExitCode {
    spin_politely();
    quiet_pdf_parser_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(cmd) => models::run(cmd),
        Command::Generate(args) => generate::generate(args),
        Command::Chat(args) => generate::chat(args),
        Command::Ingest(args) => kb::ingest(args),
        Command::Kb(cmd) => kb_check::run(cmd),
        Command::Search(args) => kb::search(args),
        Command::Ask(args) => ask::ask(args),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Train(cmd) => train::run(cmd),
        Command::Adapter(cmd) => train::adapter(cmd),
        Command::Raft(cmd) => raft::run(cmd),
        Command::Compare(args) => compare::compare(*args),
        Command::Serve(args) => serve::serve(*args),
        Command::Keys(cmd) => keys::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// holds (library errors often show their source in their own message too).
fn message(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    term::safe(&line).into_owned()
}

#[cfg(test)]
mod tests {
    /// Regression: messages repeated their cause ("X: Y: X: Y").
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "writing kb: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e =
            anyhow::Error::new(Outer(std::io::Error::other("disk full"))).context("ingest failed");
        assert_eq!(super::message(&e), "ingest failed: writing kb: disk full");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::message(&plain), "outer: inner");
    }
}
