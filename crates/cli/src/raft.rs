//! `ragtune raft build`: RAFT training data from a knowledge base and question/answer pairs
//! (the work is `ragtune_raft::build`).

use crate::kb::{KbArgs, open_embedder, open_existing};
use crate::term;
use anyhow::Result;
use clap::{Args, Subcommand};
use ragtune_raft::{BuildSpec, DistractorSource};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// Build RAFT training data: each question with its oracle passage among distractors and a
    /// chain-of-thought answer quoting the oracle (train.jsonl for `ragtune train sft`,
    /// gorilla.jsonl, manifest.json).
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub kb: KbArgs,
    /// Question/answer pairs: SQuAD JSON (.json) or JSONL with question, answer(s), context.
    #[arg(long)]
    pub questions: PathBuf,
    /// Output folder (new, empty, or a previous `raft build`).
    #[arg(long)]
    pub out: PathBuf,
    /// Distractor passages per example.
    #[arg(long, default_value_t = 4)]
    pub distractors: usize,
    /// Share of examples that show the oracle passage (0 to 1).
    #[arg(long, default_value_t = 0.8)]
    pub p: f64,
    /// Seed of every random choice (the same seed gives the same files).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N questions of the file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Where distractors come from: `retriever` (hard negatives, hybrid search) or `random`.
    #[arg(long, default_value = "retriever", value_parser = parse_source)]
    pub distractors_from: DistractorSource,
    /// Teach the refusal ("the documents do not contain the answer") when the oracle is absent.
    #[arg(long)]
    pub abstain: bool,
}

fn parse_source(s: &str) -> Result<DistractorSource, String> {
    match s {
        "retriever" => Ok(DistractorSource::Retriever),
        "random" => Ok(DistractorSource::Random),
        _ => Err(format!("{s:?} is not `retriever` or `random`")),
    }
}

pub fn run(cmd: RaftCommand) -> Result<()> {
    match cmd {
        RaftCommand::Build(args) => build(args),
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let embedder = open_embedder(&args.kb.embedder)?;
    let kb = open_existing(&args.kb, &embedder)?;
    let spec = BuildSpec {
        questions: args.questions,
        out: args.out,
        distractors: args.distractors,
        p: args.p,
        seed: args.seed,
        limit: args.limit,
        distractors_from: args.distractors_from,
        abstain: args.abstain,
    };
    let report = ragtune_raft::build(&spec, &kb, &embedder)?;
    println!(
        "{} examples from {} questions ({} with the oracle, {} without)",
        report.examples, report.questions, report.with_oracle, report.without_oracle
    );
    for (reason, n) in &report.skipped {
        println!("  skipped {n}: {}", reason.describe());
    }
    if report.short_of_distractors > 0 {
        println!(
            "  {} examples have fewer than {} distractors (the knowledge base is small)",
            report.short_of_distractors, spec.distractors
        );
    }
    for file in &report.files {
        println!("wrote {}", term::safe(&file.display().to_string()));
    }
    Ok(())
}
