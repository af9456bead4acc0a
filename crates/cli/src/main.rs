//! `ragtune`: customize a language model with your own documents, and measure which way works.

mod args;
mod generate;
mod models;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(cmd) => models::run(cmd),
        Command::Generate(args) => generate::generate(args),
        Command::Chat(args) => generate::chat(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
