//! `ragtune raft build`: RAFT training data from a knowledge base and question/answer pairs
//! (the work is `ragtune_raft::build`); `ragtune raft train`: `train sft` on such data; and
//! `ask` with a RAFT adapter (the work is `ragtune_raft::answer`).

use crate::args::{AnswerArgs, ModelArgs};
use crate::ask::AskArgs;
use crate::kb::{KbArgs, filter_of, open_embedder, open_existing};
use crate::term;
use crate::train::{SftArgs, TrainArgs};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use ragtune_answer::Mode;
use ragtune_raft::{
    AnswerFormat, BuildSpec, DistractorSource, RaftAnswer, RaftOptions, TRAIN_FILE, TrainedRun,
};
use ragtune_retrieve::KbRetriever;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// Questions for `raft build` when there are no question/answer pairs: a teacher model
    /// (--model, local or openai:NAME@URL) reads a seeded sample of the knowledge base's chunks
    /// and proposes questions, each with a short answer and the sentence supporting it; only
    /// those whose quote is in the chunk and whose answer is in the quote are kept.
    Questions(QuestionsArgs),
    /// Build RAFT training data: each question with its oracle passage among distractors and a
    /// chain-of-thought answer quoting the oracle (train.jsonl for `ragtune train sft`,
    /// gorilla.jsonl, manifest.json).
    Build(BuildArgs),
    /// Fine-tune a LoRA adapter on the output of `raft build` (`train sft` on its train.jsonl);
    /// `ask --adapter OUT` then answers with the RAFT prompt.
    Train(TrainRaftArgs),
}

#[derive(Debug, Args)]
pub struct TrainRaftArgs {
    /// The output folder of `ragtune raft build`.
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out examples for the evaluation loss (JSONL, e.g. another build's train.jsonl).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Put several short examples in one sequence (attention does not cross them).
    #[arg(long)]
    pub pack: bool,
    #[command(flatten)]
    pub common: TrainArgs,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub kb: KbArgs,
    /// Question/answer pairs: SQuAD JSON (.json), PubMedQA PQA-L JSON (yes/no/maybe: needs
    /// --answer-format answer) or JSONL with question, answer(s), context.
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
    /// Teach the refusal ("the documents do not contain the answer") when the oracle is absent,
    /// and for unanswerable questions (no answers, or SQuAD v2.0's `is_impossible`) shown their
    /// own passage (found by their context) among the distractors.
    #[arg(long)]
    pub abstain: bool,
    /// Targets: `cot` (reason, quote the oracle, then `<ANSWER>:`) or `answer` (`<ANSWER>:`
    /// alone, the ablation without chain of thought; its answers carry no quotes to cite).
    #[arg(long, default_value = "cot")]
    pub answer_format: AnswerFormat,
}

fn parse_source(s: &str) -> Result<DistractorSource, String> {
    match s {
        "retriever" => Ok(DistractorSource::Retriever),
        "random" => Ok(DistractorSource::Random),
        _ => Err(format!("{s:?} is not `retriever` or `random`")),
    }
}

#[derive(Debug, Args)]
pub struct QuestionsArgs {
    #[command(flatten)]
    pub kb: KbArgs,
    /// Where the questions go (question/answers JSONL, read by `raft build --questions` and
    /// `eval qa`); must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
    /// Chunks to ask about (a seeded sample).
    #[arg(long, default_value_t = 50)]
    pub chunks: usize,
    /// Questions asked per chunk.
    #[arg(long, default_value_t = 3)]
    pub per_chunk: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The teacher.
    #[command(flatten)]
    pub model: ModelArgs,
}

fn questions(mut args: QuestionsArgs) -> Result<()> {
    use ragtune_raft::teacher::{TeacherSpec, to_jsonl, write_questions};
    if args.out.exists() {
        bail!(
            "{} exists; remove it or pick another --out (questions are never appended)",
            args.out.display()
        );
    }
    args.model
        .model
        .get_or_insert_with(|| crate::args::DEFAULT_ANSWER_MODEL.to_owned());
    let embedder = open_embedder(&args.kb.embedder)?;
    let kb = open_existing(&args.kb, &embedder)?;
    let chunks = ragtune_raft::load_chunks(&kb)?;
    let teacher = crate::generate::load(&args.model)?;
    let spec = TeacherSpec {
        chunks: args.chunks,
        per_chunk: args.per_chunk,
        seed: args.seed,
        ..TeacherSpec::default()
    };
    eprintln!(
        "asking {} for {} questions on each of {} chunks ...",
        args.model.name(),
        spec.per_chunk,
        spec.chunks
    );
    let (kept, report) = write_questions(&spec, &chunks, &teacher)?;
    let tmp = args.out.with_extension("partial");
    fs_err::write(&tmp, to_jsonl(&kept))?;
    fs_err::rename(&tmp, &args.out)?;
    println!(
        "{} questions kept of {} proposed on {} chunks ({:.1} per minute of teacher time, {:.0} s) -> {}",
        report.kept,
        report.proposed,
        report.chunks,
        report.kept_per_minute(),
        report.teacher_seconds,
        args.out.display()
    );
    println!(
        "  the teacher read {} prompt tokens and wrote {}",
        report.prompt_tokens, report.completion_tokens
    );
    for (reason, n) in &report.dropped {
        println!("  dropped {n}: {}", reason.describe());
    }
    Ok(())
}

pub fn run(cmd: RaftCommand) -> Result<()> {
    match cmd {
        RaftCommand::Questions(args) => questions(args),
        RaftCommand::Build(args) => build(args),
        RaftCommand::Train(args) => train(args),
    }
}

fn train(args: TrainRaftArgs) -> Result<()> {
    let data = args.data.join(TRAIN_FILE);
    if ragtune_raft::lineage(&data)?.is_none() || !data.is_file() {
        bail!(
            "{} is not the output of `ragtune raft build` (no {TRAIN_FILE} beside its manifest.json); \
             build the data first, or use `ragtune train sft --data FILE` for other data",
            args.data.display()
        );
    }
    crate::train::sft(SftArgs {
        data,
        eval: args.eval,
        pack: args.pack,
        skip_bad_lines: false,
        common: args.common,
    })
}

/// The RAFT record of the training run behind `--adapter` (a run folder, or the adapter.gguf in
/// one), when it was trained on RAFT data.
pub fn trained_run(adapter: Option<&Path>) -> Result<Option<TrainedRun>> {
    let Some(path) = adapter else {
        return Ok(None);
    };
    let dir = if path.is_dir() {
        path
    } else if path.file_name() == Some(ragtune_train::out_dir::ADAPTER_GGUF.as_ref()) {
        path.parent().unwrap_or(Path::new("."))
    } else {
        return Ok(None);
    };
    Ok(ragtune_raft::trained_run(
        &dir.join(ragtune_train::out_dir::TRAINING_JSON),
    )?)
}

/// `ragtune ask --adapter RUN` where RUN was trained on RAFT data.
pub fn ask(args: AskArgs, run: TrainedRun) -> Result<()> {
    let adapter = args.model.adapter.clone().unwrap_or_default();
    if args.mode != Mode::Rag || args.examples.is_some() {
        bail!(
            "{} is a RAFT adapter, which answers from retrieved passages; leave out --mode and \
             --examples, or pass another adapter",
            adapter.display()
        );
    }
    if args.answer.template.is_some() {
        bail!(
            "{} is a RAFT adapter: it is prompted exactly as it was trained, so --template does \
             not apply",
            adapter.display()
        );
    }
    for note in &run.notes {
        eprintln!("note: {}", term::safe(note));
    }
    let options = options_for(&args.answer, &run, filter_of(args.path.clone(), &[], &[])?)?;
    let model = model_for(&args.model, Some(&run));
    let generator = crate::generate::load(&model)?;
    let embedder = open_embedder(&args.kb.embedder)?;
    let kb = open_existing(&args.kb, &embedder)?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let answer = ragtune_raft::answer(&args.question, &retriever, &generator, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&answer, args.show_reasoning);
    }
    Ok(())
}

/// The model options for a RAFT adapter: its training base unless a model was named (the
/// adapter only fits the base it was trained on).
pub fn model_for(model: &ModelArgs, run: Option<&TrainedRun>) -> ModelArgs {
    let mut model = model.clone();
    if let (None, Some(run)) = (&model.model, run) {
        model.model = Some(match &run.base {
            Some(base) => base.display().to_string(),
            None => crate::args::DEFAULT_MODEL.to_owned(),
        });
    }
    model
}

/// How a RAFT adapter answers: as many passages as training showed unless `--top-k` says
/// otherwise, and room for its reasoning.
pub fn options_for(
    answer: &AnswerArgs,
    run: &TrainedRun,
    filter: ragtune_core::Filter,
) -> Result<RaftOptions> {
    let top_k = match (answer.top_k, run.lineage.passages) {
        (Some(k), Some(trained)) if k != trained => {
            eprintln!(
                "note: the adapter was trained on {trained} passages per question; this prompt \
                 shows up to {k} (--top-k {trained} matches training)"
            );
            k
        }
        (Some(k), _) => k,
        (None, trained) => trained.unwrap_or(crate::args::DEFAULT_TOP_K),
    };
    Ok(RaftOptions {
        search: answer.search,
        filter,
        ..RaftOptions::for_format(run.lineage.answer_format, top_k, answer.max_tokens)
    })
}

fn print_answer(a: &RaftAnswer, show_reasoning: bool) {
    if show_reasoning && !a.reasoning.is_empty() {
        println!("reasoning: {}", term::safe(&a.reasoning));
    }
    println!("{}", term::safe(&a.answer));
    if !a.answer_marker && !a.abstained && a.finish_reason.is_some() {
        eprintln!("note: the reply has no <ANSWER>: marker; the answer is all of it");
    }
    for c in &a.citations {
        let line = match (c.passage, &c.source) {
            (Some(n), Some(source)) => {
                let page = c.page.map(|p| format!(" p.{p}")).unwrap_or_default();
                format!(
                    "[{n}] {source}{page} (chars {}..{}) quote found: \"{}\"",
                    c.start.unwrap_or_default(),
                    c.end.unwrap_or_default(),
                    c.quote
                )
            }
            _ => format!("quote not found in any passage [FAILED]: \"{}\"", c.quote),
        };
        println!("{}", term::safe(&line));
    }
    let dropped = if a.dropped_passages > 0 {
        format!(" ({} dropped to fit the context)", a.dropped_passages)
    } else {
        String::new()
    };
    eprintln!(
        "RAFT prompt {} ({} targets) | {} passages{dropped} | prompt {} tokens | completion {} \
         tokens",
        a.prompt_format,
        a.answer_format.as_str(),
        a.passages.len(),
        a.usage.prompt_tokens,
        a.usage.completion_tokens
    );
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
        answer_format: args.answer_format,
    };
    let report = ragtune_raft::build(&spec, &kb, &embedder)?;
    let unanswerable = if report.unanswerable > 0 {
        format!(", {} unanswerable, taught the refusal", report.unanswerable)
    } else {
        String::new()
    };
    println!(
        "{} examples from {} questions ({} with the oracle, {} without{unanswerable})",
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
