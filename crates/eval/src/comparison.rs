//! The whole comparison: every variant over the same questions, then the scenarios, in the
//! form `ragtune_compare::build` turns into a report.

use crate::scenarios::{apply_edits, forgetting, freshness, plan_edits, stale_adapter};
use crate::training::{Sources, TrainPlan, Trainer, prepare_adapters};
use crate::variants::{Context, Models, VariantSpec, run_variant};
use crate::{Error, QuestionSet, Result};
use ragtune_answer::{AskOptions, ExamplePool};
use ragtune_compare::{Scenarios, VariantRun};
use ragtune_core::{Embedder, Retriever, TokenCounter};
use ragtune_datasets::{Corpus, QaItem};
use ragtune_index::KnowledgeBase;
use ragtune_retrieve::KbRetriever;

/// What to compare and which scenarios to run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub variants: Vec<VariantSpec>,
    /// Documents to edit for the freshness scenario (0: not run).
    pub freshness: usize,
    /// General text for the forgetting scenario's perplexity (`None`: not run).
    pub general_text: Option<String>,
    pub perplexity_window: u32,
    /// Out-of-domain questions for the forgetting scenario's closed-book exact match.
    pub ood: Vec<QaItem>,
    pub seed: u64,
    /// Build and train the fine-tuned variants that name no adapter (`--train`).
    pub train: Option<TrainPlan>,
}

/// Where the questions are answered from.
pub enum Passages<'a> {
    /// No variant retrieves.
    None,
    /// The user's knowledge base: read, never edited (freshness does not run on it).
    Kb(&'a KnowledgeBase),
    /// A corpus indexed in memory for the run: freshness edits its documents and restores them.
    Corpus {
        kb: &'a mut KnowledgeBase,
        corpus: &'a Corpus,
        counter: &'a dyn TokenCounter,
        max_chunk_tokens: usize,
    },
}

/// What the variants share.
pub struct Inputs<'a> {
    pub questions: &'a QuestionSet,
    pub passages: Passages<'a>,
    pub embedder: &'a dyn Embedder,
    pub pool: Option<&'a ExamplePool<'a>>,
    pub options: &'a AskOptions,
    pub top_k: Option<usize>,
    pub default_model: &'a str,
    pub sequential: bool,
    pub format: Option<&'a regex::Regex>,
}

/// The runs and scenario results, plus notes on what could not be measured.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub runs: Vec<VariantRun>,
    pub scenarios: Scenarios,
    pub notes: Vec<String>,
}

/// Runs every variant of `plan` over the question set, then the scenarios it asks for.
/// `progress` hears a line before each step.
pub fn compare(
    plan: &Plan,
    inputs: Inputs<'_>,
    models: &dyn Models,
    trainer: Option<&dyn Trainer>,
    progress: &mut dyn FnMut(&str),
) -> Result<Comparison> {
    if plan.variants.is_empty() {
        return Err(Error::Config(
            "no variants to compare; pass --variant SPEC (e.g. rag, closed-book, raft:RUN)".into(),
        ));
    }
    if plan.freshness > 0 && !matches!(inputs.passages, Passages::Corpus { .. }) {
        return Err(Error::Config(
            "--freshness edits documents, so it runs on the corpus of the questions file indexed \
             for the run, never on a knowledge base of yours; leave out --kb (or --freshness)"
                .into(),
        ));
    }
    let Inputs {
        questions,
        mut passages,
        embedder,
        pool,
        options,
        top_k,
        default_model,
        sequential,
        format,
    } = inputs;
    let mut out = Comparison::default();
    let mut variants = plan.variants.clone();
    let total = variants.len();
    let mut models_of = Vec::with_capacity(total);
    {
        let kb: Option<&KnowledgeBase> = match &passages {
            Passages::None => None,
            Passages::Kb(kb) => Some(kb),
            Passages::Corpus { kb, .. } => Some(&**kb),
        };
        let retriever = kb.map(|kb| KbRetriever::new(kb, embedder)).transpose()?;
        if let (Some(train), Some(trainer)) = (&plan.train, trainer) {
            let corpus = match &passages {
                Passages::Corpus { corpus, .. } => Some(&**corpus),
                _ => None,
            };
            let sources = Sources {
                kb,
                retriever: retriever.as_ref().map(|r| r as &dyn Retriever),
                embedder,
                corpus,
                options,
            };
            prepare_adapters(train, &mut variants, &sources, models, trainer, progress)?;
        }
        for spec in &variants {
            spec.check_adapter()?;
        }
        let ctx = Context {
            items: &questions.items,
            retriever: retriever.as_ref().map(|r| r as &dyn Retriever),
            pool,
            options,
            top_k,
            default_model,
            sequential,
            format,
        };
        for (i, spec) in variants.iter().enumerate() {
            progress(&format!(
                "[{}/{total}] {}: {} questions",
                i + 1,
                spec.spec,
                questions.items.len()
            ));
            let run = run_variant(spec, models, &ctx);
            if let Some(why) = &run.failed {
                progress(&format!("  failed: {why}"));
            }
            models_of.push(run.model.clone());
            out.runs.push(run);
        }
        if let Passages::Kb(kb) = &passages {
            for spec in variants.iter().filter(|s| s.adapter.is_some()) {
                if let Some(stale) = stale_adapter(spec, kb)? {
                    out.scenarios.stale_adapters.push(stale);
                }
            }
        }
        if let Some(text) = &plan.general_text {
            for ((spec, run), model) in variants.iter().zip(&out.runs).zip(&models_of) {
                if spec.adapter.is_none() || run.failed.is_some() {
                    continue;
                }
                progress(&format!("forgetting: {}", run.name));
                match forgetting(
                    spec,
                    model,
                    models,
                    text,
                    plan.perplexity_window,
                    &plan.ood,
                    options,
                ) {
                    Ok(mut f) => {
                        f.variant = run.name.clone();
                        out.scenarios.forgetting.push(f);
                    }
                    Err(why) => out.notes.push(format!("forgetting of {}: {why}", run.name)),
                }
            }
        }
    }
    if let Passages::Corpus {
        kb,
        corpus,
        counter,
        max_chunk_tokens,
    } = &mut passages
        && plan.freshness > 0
    {
        let edits = plan_edits(&questions.all, corpus, plan.freshness, plan.seed);
        if edits.len() < plan.freshness {
            out.notes.push(format!(
                "freshness: {} of the {} edits asked for were possible (an answer must occur once in its passage, with another answer of its kind to put there)",
                edits.len(),
                plan.freshness
            ));
        }
        if !edits.is_empty() {
            progress(&format!("freshness: editing {} documents", edits.len()));
            let sync = apply_edits(kb, &edits, true, embedder, *counter, *max_chunk_tokens)?;
            let asked = (|| -> Result<()> {
                let retriever = KbRetriever::new(kb, embedder)?;
                let ctx = Context {
                    items: &questions.items,
                    retriever: Some(&retriever),
                    pool,
                    options,
                    top_k,
                    default_model,
                    sequential,
                    format,
                };
                for ((spec, run), model) in variants.iter().zip(&out.runs).zip(&models_of) {
                    if run.failed.is_some() {
                        continue;
                    }
                    progress(&format!("freshness: {}", run.name));
                    match freshness(spec, model, models, &ctx, &edits, sync) {
                        Ok(Some(mut f)) => {
                            f.variant = run.name.clone();
                            out.scenarios.freshness.push(f);
                        }
                        Ok(None) => {}
                        Err(why) => out.notes.push(format!("freshness of {}: {why}", run.name)),
                    }
                }
                Ok(())
            })();
            // The originals go back whatever happened, so the corpus is as it was.
            apply_edits(kb, &edits, false, embedder, *counter, *max_chunk_tokens)?;
            asked?;
        }
    }
    Ok(out)
}
