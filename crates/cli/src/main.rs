//! `ragtune`: customize a language model with your own documents, and measure which way works.

mod args;
mod ask;
mod eval;
mod generate;
mod kb;
mod models;
mod progress;
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
    /// Work with trained adapters (merge into the base).
    #[command(subcommand)]
    Adapter(train::AdapterCommand),
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

fn main() -> ExitCode {
    quiet_pdf_parser_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(cmd) => models::run(cmd),
        Command::Generate(args) => generate::generate(args),
        Command::Chat(args) => generate::chat(args),
        Command::Ingest(args) => kb::ingest(args),
        Command::Search(args) => kb::search(args),
        Command::Ask(args) => ask::ask(args),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Train(cmd) => train::run(cmd),
        Command::Adapter(cmd) => train::adapter(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
