//! `compare --train`: the fine-tuned variants that name no adapter are built from the
//! knowledge base and a training question file, each with the same budget, and cached by
//! content: the adapter's folder is named by a hash of its training data, base model and
//! budget, so a rerun with the same inputs only evaluates.

use crate::variants::{Models, VariantSpec};
use crate::{Error, QuestionSet, Result, write_sft};
use ragtune_answer::{Answerer, AskOptions, Mode};
use ragtune_compare::Approach;
use ragtune_core::{Embedder, Retriever};
use ragtune_datasets::Corpus;
use ragtune_index::KnowledgeBase;
use ragtune_raft::{BuildSpec, TRAIN_FILE};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What every fine-tuned variant gets: the same examples, steps and LoRA settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per step (micro-batches of one, accumulated).
    pub examples_per_step: usize,
    pub rank: usize,
    pub lr: f64,
    /// Tokens per training sequence (RAFT examples, which carry several passages, get twice).
    pub max_len: usize,
    pub seed: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            steps: 60,
            examples_per_step: 4,
            rank: 8,
            lr: 5e-4,
            max_len: 512,
            seed: 0,
        }
    }
}

/// What `--train` was given.
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// Training questions (never the evaluated ones: another file, or another split).
    pub questions: PathBuf,
    /// Training questions drawn (seeded).
    pub sample: usize,
    pub seed: u64,
    /// Where adapters are cached (`<approach>-<hash>` folders).
    pub cache: PathBuf,
    /// The base model of variants that name none.
    pub base: String,
    pub budget: Budget,
    /// RAFT distractors per example and the share of examples that show the oracle.
    pub distractors: usize,
    pub p: f64,
}

/// Trains adapters; the binary runs `ragtune_train::run`, tests hand in fakes.
pub trait Trainer {
    /// A LoRA adapter on `base` from SFT data (OpenAI messages JSONL, RAFT data included) or,
    /// with `cpt`, from raw text, written into `out` as `ragtune train` writes it.
    fn train(
        &self,
        base: &str,
        data: &Path,
        cpt: bool,
        budget: &Budget,
        out: &Path,
    ) -> std::result::Result<(), String>;
}

/// What `--train` needs from the comparison.
pub struct Sources<'a> {
    pub kb: Option<&'a KnowledgeBase>,
    pub retriever: Option<&'a dyn Retriever>,
    pub embedder: &'a dyn Embedder,
    /// The corpus indexed for the run (continued pretraining reads its text).
    pub corpus: Option<&'a Corpus>,
    /// Options of the RAG prompts (SFT on RAG prompts learns from exactly these).
    pub options: &'a AskOptions,
}

/// Builds and trains (or finds in the cache) an adapter for every fine-tuned variant without
/// one (on its `@MODEL`, else `plan.base`), and names it in the spec. `progress` hears a line per step.
pub fn prepare_adapters(
    plan: &TrainPlan,
    variants: &mut [VariantSpec],
    sources: &Sources<'_>,
    models: &dyn Models,
    trainer: &dyn Trainer,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let wanted: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].approach.is_fine_tuned() && variants[i].adapter.is_none())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let set = QuestionSet::load(&plan.questions, plan.sample, plan.seed)?;
    let work = plan.cache.join("data");
    fs_err::create_dir_all(&work)?;
    for i in wanted {
        let spec = &variants[i];
        let base = spec.model.clone().unwrap_or_else(|| plan.base.clone());
        let approach = spec.approach;
        progress(&format!("--train: data for {approach} on {base}"));
        let (data, cpt) = build_data(approach, &set, plan, &base, sources, models, &work)?;
        let budget = Budget {
            max_len: if approach == Approach::Raft {
                plan.budget.max_len * 2
            } else {
                plan.budget.max_len
            },
            ..plan.budget.clone()
        };
        let key = cache_key(approach, &base, &budget, &data)?;
        let out = plan.cache.join(format!("{approach}-{key}"));
        if out.join(crate::variants::TRAINING_JSON).is_file() && out.join("adapter.gguf").is_file()
        {
            progress(&format!("--train: {approach} cached in {}", out.display()));
        } else {
            if out.exists() {
                // An interrupted run: its folder is ours (named by the hash) and restarted.
                fs_err::remove_dir_all(&out)?;
            }
            progress(&format!(
                "--train: training {approach} ({} steps) into {}",
                budget.steps,
                out.display()
            ));
            trainer
                .train(&base, &data, cpt, &budget, &out)
                .map_err(|why| Error::Config(format!("--train {approach}: {why}")))?;
        }
        variants[i].adapter = Some(out);
        variants[i].model.get_or_insert(base);
    }
    Ok(())
}

/// The training data of one approach, as a file in `work`; `true` when it is raw text (CPT).
fn build_data(
    approach: Approach,
    set: &QuestionSet,
    plan: &TrainPlan,
    base: &str,
    sources: &Sources<'_>,
    models: &dyn Models,
    work: &Path,
) -> Result<(PathBuf, bool)> {
    let needs = |what: &str| {
        Error::Config(format!(
            "--train {approach} needs {what}; give --kb or a questions file with passages"
        ))
    };
    let sft = |mode: Mode, name: &str| -> Result<(PathBuf, bool)> {
        let generator = models.generator(base, None).map_err(Error::Config)?;
        let options = AskOptions {
            mode,
            // One passage, the one holding the answer when retrieval finds it: the examples
            // teach reading a passage, not guessing among several.
            top_k: 1,
            ..sources.options.clone()
        };
        let mut answerer = Answerer::new(generator.as_ref(), options);
        if mode == Mode::Rag {
            answerer = answerer.with_retriever(sources.retriever.ok_or_else(|| needs("passages"))?);
        }
        let path = work.join(name);
        let written = write_sft(&answerer, &set.items, &path)?;
        if written.written == 0 {
            return Err(Error::Config(format!(
                "--train {approach}: no training example could be written from {} ({} without an answer in the prompt)",
                plan.questions.display(),
                written.not_in_prompt
            )));
        }
        Ok((path, false))
    };
    match approach {
        Approach::Sft => sft(Mode::ClosedBook, "sft.jsonl"),
        Approach::SftRag => sft(Mode::Rag, "sft_rag.jsonl"),
        Approach::Raft => {
            let kb = sources
                .kb
                .ok_or_else(|| needs("a knowledge-base folder (RAFT draws distractors from its stored chunks; one on PostgreSQL is not read that way)"))?;
            // The sampled questions, so RAFT learns from the same ones as the other variants.
            let questions = work.join("raft_questions.jsonl");
            let mut file = std::io::BufWriter::new(fs_err::File::create(&questions)?);
            for item in &set.items {
                serde_json::to_writer(&mut file, item)?;
                writeln!(file)?;
            }
            file.flush()?;
            let out = work.join("raft");
            let spec = BuildSpec {
                distractors: plan.distractors,
                p: plan.p,
                seed: plan.seed,
                ..BuildSpec::new(&questions, &out)
            };
            ragtune_raft::build(&spec, kb, sources.embedder)?;
            Ok((out.join(TRAIN_FILE), false))
        }
        Approach::CptRag => {
            let corpus = sources
                .corpus
                .ok_or_else(|| needs("the corpus indexed for the run"))?;
            let path = work.join("corpus.txt");
            let text: Vec<&str> = corpus.docs.iter().map(|d| d.text.as_str()).collect();
            fs_err::write(&path, text.join("\n\n"))?;
            Ok((path, true))
        }
        Approach::ClosedBook | Approach::FewShot | Approach::Rag => {
            Err(Error::Config(format!("{approach} is not trained")))
        }
    }
}

/// A hash of what decides the adapter: approach, base, budget and every byte of the data.
fn cache_key(approach: Approach, base: &str, budget: &Budget, data: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(approach.as_str().as_bytes());
    hasher.update(b"\0");
    hasher.update(base.as_bytes());
    hasher.update(b"\0");
    hasher.update(serde_json::to_string(budget)?.as_bytes());
    hasher.update(b"\0");
    hasher.update(&fs_err::read(data)?);
    Ok(hasher.finalize().to_hex()[..16].to_owned())
}
