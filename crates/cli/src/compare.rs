//! `ragtune compare`: the same questions through every approach, one report (terminal table,
//! JSON, HTML) with confidence intervals and a recommendation. The workflow is
//! `ragtune_eval::compare`; the statistics and the report are `ragtune_compare`.

use crate::args::{AnswerArgs, ModelArgs};
use crate::kb::{KbLocation, OpenedKb, open_embedder};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use ragtune_answer::{ExamplePool, Mode, load_examples};
use ragtune_catalog::{ModelStore, ResolvedModel};
use ragtune_core::Generator;
use ragtune_eval::{Inputs, Models, Passages, Plan, QuestionSet, VariantSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The questions: SQuAD JSON, PubMedQA PQA-L JSON (yes/no/maybe) or question/answers JSONL.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// A variant: APPROACH[:ADAPTER][@MODEL][,top_k=N], APPROACH one of closed-book, few-shot,
    /// rag, sft, sft+rag, raft, cpt+rag (the last four name a `ragtune train` output folder);
    /// top_k sets the passages of its prompts over --top-k. Repeat it.
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// A TOML file naming the variants and options (command-line options win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the report goes: report.json, report.html, runs.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Rebuild the report from the runs.json of an earlier comparison (with other --prices or
    /// --profile, say) instead of running anything: no model loads.
    #[arg(long)]
    pub from_runs: Option<PathBuf>,
    /// Answer from this knowledge base: a folder or a postgres:// URL (default: the passages
    /// of the questions file, indexed for the run).
    #[arg(long, conflicts_with = "corpus", value_parser = crate::kb::parse_kb)]
    pub kb: Option<KbLocation>,
    /// A SQuAD JSON file whose paragraphs are the corpus (default: the questions file).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Questions drawn with a fixed seed (0: all).
    #[arg(long)]
    pub sample: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Answer all questions of a variant in one batch (throughput; latency under load)
    /// instead of one at a time (the latency a user waits).
    #[arg(long)]
    pub batched: bool,
    /// Build and train the fine-tuned variants that name no adapter (`sft`, `sft+rag`, `raft`,
    /// `cpt+rag`) from these training questions and the passages, each with the same budget;
    /// adapters are cached by content under OUT/adapters, so a rerun only evaluates.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Training questions drawn for --train.
    #[arg(long, default_value_t = 240)]
    pub train_sample: usize,
    /// Optimizer steps per adapter (4 examples each) for --train.
    #[arg(long, default_value_t = 60)]
    pub train_steps: usize,
    /// Base model of the trained variants that name none.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub train_base: String,
    /// Few-shot examples (default with SQuAD: held-out questions of the same file).
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Freshness: edit this many documents so an answer changes, re-sync, and ask again. With
    /// --kb, copies of its text files are edited and synced into a copy of it (OUT/
    /// freshness-scratch, removed afterwards): your files and knowledge base are not written.
    #[arg(long)]
    pub freshness: Option<usize>,
    /// Forgetting: general text whose perplexity is measured with and without each adapter.
    #[arg(long)]
    pub general_text: Option<PathBuf>,
    /// Forgetting: out-of-domain questions answered closed-book with and without each adapter.
    #[arg(long, requires = "general_text")]
    pub ood_questions: Option<PathBuf>,
    /// Out-of-domain questions drawn.
    #[arg(long, default_value_t = 50)]
    pub ood_sample: usize,
    /// Prices per million tokens per model (TOML; no built-in vendor prices).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// What you know about your situation (TOML: changes_per_month, latency_budget_ms,
    /// citations_required, training_budget_hours, cost_budget_usd_per_1000).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// A regular expression every answer must match (format adherence).
    #[arg(long, conflicts_with = "format_schema")]
    pub format_regex: Option<String>,
    /// A JSON Schema every answer must satisfy (format adherence): the answer is one JSON
    /// value, perhaps in a code fence, followed by nothing but citation markers.
    #[arg(long)]
    pub format_schema: Option<PathBuf>,
    #[command(flatten)]
    pub answer: AnswerArgs,
    /// Embedding model for retrieval and few-shot example choice.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// `--config FILE`: the same options as the command line, and the variants.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    questions: Option<PathBuf>,
    kb: Option<PathBuf>,
    corpus: Option<PathBuf>,
    sample: Option<usize>,
    seed: Option<u64>,
    freshness: Option<usize>,
    general_text: Option<PathBuf>,
    ood_questions: Option<PathBuf>,
    train: Option<PathBuf>,
    prices: Option<PathBuf>,
    profile: Option<PathBuf>,
    format_regex: Option<String>,
    format_schema: Option<PathBuf>,
    #[serde(default, rename = "variant")]
    variants: Vec<ConfigVariant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigVariant {
    spec: String,
    name: Option<String>,
    /// Passages this variant's prompts show (over --top-k).
    top_k: Option<usize>,
}

/// The llama.cpp models of the binary, as `ragtune_eval` asks for them.
struct LlamaModels<'a> {
    args: &'a ModelArgs,
    store: ModelStore,
}

impl Models for LlamaModels<'_> {
    fn generator(
        &self,
        model: &str,
        adapter: Option<&Path>,
    ) -> Result<Box<dyn Generator + '_>, String> {
        let mut args = self.args.clone();
        args.model = Some(model.to_owned());
        args.adapter = adapter.map(Path::to_owned);
        crate::generate::load(&args)
            .map(|l| Box::new(l) as Box<dyn Generator>)
            .map_err(|e| format!("{e:#}"))
    }

    fn name_of(&self, path: &Path) -> String {
        self.store
            .catalog()
            .entries()
            .iter()
            .find(
                |e| matches!(self.store.resolve(&e.name), Ok(ResolvedModel::Gguf(p)) if p == path),
            )
            .map(|e| e.name.clone())
            .unwrap_or_else(|| path.display().to_string())
    }

    fn perplexity(
        &self,
        model: &str,
        adapter: Option<&Path>,
        text: &str,
        window: u32,
    ) -> Result<f64, String> {
        let mut args = self.args.clone();
        args.model = Some(model.to_owned());
        args.adapter = adapter.map(Path::to_owned);
        let loaded = crate::generate::load(&args).map_err(|e| format!("{e:#}"))?;
        let name = adapter.map(|_| crate::args::ADAPTER_NAME);
        loaded
            .local("the forgetting check")
            .map_err(|e| format!("{e:#}"))?
            .perplexity(text, window, name)
            .map(|p| p.perplexity)
            .map_err(|e| e.to_string())
    }
}

pub fn compare(mut args: CompareArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
            toml::from_str::<ConfigFile>(&text)
                .with_context(|| format!("{}: not a compare config", path.display()))?
        }
        None => ConfigFile::default(),
    };
    if let Some(path) = args.from_runs.take() {
        let prices = args.prices.take().or(config.prices);
        let profile = args.profile.take().or(config.profile);
        return from_runs(&path, &args.out, prices.as_deref(), profile.as_deref());
    }
    // The command line wins over the file.
    let questions = args
        .questions
        .take()
        .or(config.questions)
        .context("name the questions: --questions FILE (or `questions` in --config)")?;
    let kb = match args.kb.take() {
        Some(kb) => Some(kb),
        None => config
            .kb
            .map(|p| crate::kb::parse_kb(&p.to_string_lossy()).map_err(anyhow::Error::msg))
            .transpose()
            .context("`kb` in --config")?,
    };
    let corpus = args.corpus.take().or(config.corpus);
    let sample = args.sample.or(config.sample).unwrap_or(500);
    let seed = args.seed.or(config.seed).unwrap_or(0);
    let freshness = args.freshness.or(config.freshness).unwrap_or(0);
    let general_text = args.general_text.take().or(config.general_text);
    let ood_questions = args.ood_questions.take().or(config.ood_questions);
    let train = args.train.take().or(config.train);
    let prices = args.prices.take().or(config.prices);
    let profile = args.profile.take().or(config.profile);
    let format = match (
        args.format_regex.take().or(config.format_regex),
        args.format_schema.take().or(config.format_schema),
    ) {
        (Some(_), Some(_)) => {
            bail!("give one format check: --format-regex or --format-schema, not both")
        }
        (Some(re), None) => Some(ragtune_eval::FormatCheck::regex(&re)?),
        (None, Some(path)) => Some(ragtune_eval::FormatCheck::json_schema(&path)?),
        (None, None) => None,
    };
    let mut variants = Vec::new();
    for v in &config.variants {
        let mut spec = VariantSpec::parse(&v.spec)?;
        spec.name = v.name.clone();
        if let Some(k) = v.top_k {
            anyhow::ensure!(k > 0, "variant {:?}: top_k must be at least 1", v.spec);
            spec.top_k = Some(k);
        }
        variants.push(spec);
    }
    for v in &args.variants {
        variants.push(VariantSpec::parse(v)?);
    }
    if train.is_none() {
        for v in &variants {
            v.check_adapter()?;
        }
    }
    if variants.is_empty() {
        bail!(
            "no variants to compare: pass --variant SPEC, e.g. --variant closed-book --variant rag \
             --variant raft:runs/raft (or [[variant]] entries in --config)"
        );
    }
    // Everything that can be wrong with the files is found before any model loads.
    let (prices, profile) = load_prices_profile(prices.as_deref(), profile.as_deref())?;
    let general_text = general_text
        .map(|p| {
            fs_err::read_to_string(&p)
                .with_context(|| format!("{} must be UTF-8 text", p.display()))
        })
        .transpose()?;
    let ood = match &ood_questions {
        Some(path) => QuestionSet::load(path, args.ood_sample, seed)?.items,
        None => Vec::new(),
    };
    let set = QuestionSet::load(&questions, sample, seed)?;
    fs_err::create_dir_all(&args.out)?;

    let options = args.answer.options(Mode::Rag)?;
    let embedder = open_embedder(&args.embedder)?;
    let needs_passages = variants.iter().any(|v| v.approach.is_grounded());
    let mut memory_kb = None;
    let mut corpus_docs = None;
    let opened = match (&kb, needs_passages) {
        (Some(location), true) => Some(OpenedKb::at(location, &embedder)?),
        _ => None,
    };
    // A knowledge base on PostgreSQL is reached through its retriever (which checks the embedder).
    let pg_retriever = match &opened {
        Some(kb @ OpenedKb::Postgres(_)) => Some(kb.retriever(&embedder)?),
        _ => None,
    };
    if opened.is_none() && needs_passages {
        let file = corpus.clone().unwrap_or_else(|| questions.clone());
        if !set.is_json() && corpus.is_none() {
            bail!(
                "{} has no passages; name a knowledge base (--kb) or a SQuAD corpus (--corpus) for the variants that retrieve",
                questions.display()
            );
        }
        let docs = ragtune_eval::load_corpus(&file, &set)?;
        eprintln!(
            "indexing the {} passages of {} ...",
            docs.docs.len(),
            file.display()
        );
        let (kb, chunks) = ragtune_eval::index_in_memory(
            &docs,
            &embedder,
            &embedder,
            embedder.max_content_tokens(),
        )?;
        eprintln!("{chunks} chunks");
        memory_kb = Some(kb);
        corpus_docs = Some(docs);
    }
    let examples = if variants.iter().any(|v| v.mode() == Some(Mode::FewShot)) {
        let examples = match &args.examples {
            Some(file) => load_examples(file)?,
            None => set.held_out_examples(),
        };
        if examples.is_empty() {
            bail!("few-shot: no examples to show; pass --examples FILE");
        }
        Some(examples)
    } else {
        None
    };
    let pool = examples
        .map(|e| ExamplePool::new(e, &embedder))
        .transpose()?;
    // Freshness on a knowledge base syncs edited copies of its files as `ragtune ingest` would,
    // with the chunk settings it was built with, into a copy of it.
    let mut ingest_source = ragtune_index::IngestSource::new(&embedder);
    let recorded = match &opened {
        Some(OpenedKb::Local(kb)) => ragtune_index::SyncTarget::chunking(kb)?,
        _ => None,
    };
    ingest_source.chunk =
        ragtune_index::chunking::recorded_or_default(recorded, embedder.max_content_tokens());
    let passages = match (&opened, memory_kb.as_mut(), corpus_docs.as_ref()) {
        (Some(OpenedKb::Local(kb)), _, _) => Passages::Kb {
            kb,
            source: &ingest_source,
            scratch: args.out.join("freshness-scratch"),
        },
        (None, Some(kb), Some(corpus)) => Passages::Corpus {
            kb,
            corpus,
            counter: &embedder,
            max_chunk_tokens: embedder.max_content_tokens(),
        },
        (Some(OpenedKb::Postgres(pg)), _, _) => Passages::Retriever {
            retriever: pg_retriever
                .as_deref()
                .context("a PostgreSQL knowledge base without its retriever")?,
            location: pg.location().shown().to_owned(),
        },
        _ => Passages::None,
    };
    let plan = Plan {
        variants,
        freshness,
        general_text,
        perplexity_window: 512,
        ood,
        seed,
        train: train.map(|questions| ragtune_eval::TrainPlan {
            questions,
            sample: args.train_sample,
            seed,
            cache: args.out.join("adapters"),
            base: args.train_base.clone(),
            budget: ragtune_eval::Budget {
                steps: args.train_steps,
                seed,
                ..Default::default()
            },
            distractors: 2,
            p: 0.8,
        }),
    };
    let models = LlamaModels {
        args: &args.model,
        store: ModelStore::from_env()?,
    };
    let inputs = Inputs {
        questions: &set,
        passages,
        embedder: &embedder,
        pool: pool.as_ref(),
        options: &options,
        top_k: args.answer.top_k,
        default_model: crate::args::DEFAULT_ANSWER_MODEL,
        sequential: !args.batched,
        format: format.as_ref(),
    };
    let trainer = crate::train::CompareTrainer;
    let comparison = ragtune_eval::compare(&plan, inputs, &models, Some(&trainer), &mut |line| {
        eprintln!("{}", crate::term::safe(line))
    })?;
    for note in &comparison.notes {
        eprintln!("note: {}", crate::term::safe(note));
    }
    let saved = Saved {
        questions_file: questions,
        sample: set.items.len(),
        seed,
        runs: comparison.runs,
        scenarios: comparison.scenarios,
        notes: comparison.notes,
    };
    write_report(&saved, &prices, &profile, &args.out)
}

/// What runs.json holds: every variant's outcomes and the scenarios, enough to rebuild the
/// report (`--from-runs`).
#[derive(serde::Serialize, Deserialize)]
struct Saved {
    questions_file: PathBuf,
    sample: usize,
    seed: u64,
    runs: Vec<ragtune_compare::VariantRun>,
    scenarios: ragtune_compare::Scenarios,
    #[serde(default)]
    notes: Vec<String>,
}

fn load_prices_profile(
    prices: Option<&Path>,
    profile: Option<&Path>,
) -> Result<(ragtune_compare::PriceTable, ragtune_compare::Profile)> {
    let prices = match prices {
        Some(path) => ragtune_compare::PriceTable::load(path)?,
        None => ragtune_compare::PriceTable::default(),
    };
    let profile = match profile {
        Some(path) => ragtune_compare::Profile::load(path)?,
        None => ragtune_compare::Profile::default(),
    };
    Ok((prices, profile))
}

fn from_runs(path: &Path, out: &Path, prices: Option<&Path>, profile: Option<&Path>) -> Result<()> {
    let (prices, profile) = load_prices_profile(prices, profile)?;
    let text = fs_err::read_to_string(path)?;
    let saved: Saved = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not the runs.json of a `ragtune compare` report",
            path.display()
        )
    })?;
    fs_err::create_dir_all(out)?;
    for note in &saved.notes {
        eprintln!("note: {}", crate::term::safe(note));
    }
    write_report(&saved, &prices, &profile, out)
}

/// Builds the report from `saved` and writes runs.json, report.json and report.html into
/// `out`; prints the terminal tables.
fn write_report(
    saved: &Saved,
    prices: &ragtune_compare::PriceTable,
    profile: &ragtune_compare::Profile,
    out: &Path,
) -> Result<()> {
    let mut report = ragtune_compare::build(
        &saved.runs,
        &saved.scenarios,
        prices,
        &ragtune_compare::Options {
            seed: saved.seed,
            ..Default::default()
        },
    )?;
    report.recommendation = Some(ragtune_compare::recommend(&report, profile));
    fs_err::write(out.join("runs.json"), serde_json::to_string_pretty(saved)?)?;
    fs_err::write(
        out.join("report.json"),
        ragtune_compare::render::json(&report)?,
    )?;
    fs_err::write(
        out.join("report.html"),
        ragtune_compare::render::html(&report),
    )?;
    println!("{}", ragtune_compare::render::terminal(&report));
    println!(
        "report: {} (JSON: {})",
        out.join("report.html").display(),
        out.join("report.json").display()
    );
    Ok(())
}
