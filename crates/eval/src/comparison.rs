//! The whole comparison: every variant over the same questions, then the scenarios, in the
//! form `ragtune_compare::build` turns into a report.

use crate::scenarios::{
    Edit, apply_edits, edit_copy, forgetting, freshness, kb_text_files, plan_edits, stale_adapter,
};
use crate::training::{Sources, TrainPlan, Trainer, prepare_adapters};
use crate::variants::{Context, Models, VariantSpec, run_variant};
use crate::{Error, QuestionSet, Result};
use ragtune_answer::{AskOptions, ExamplePool};
use ragtune_compare::{Scenarios, VariantRun};
use ragtune_core::{Embedder, Retriever, TokenCounter};
use ragtune_datasets::{Corpus, QaItem};
use ragtune_index::{DocumentSource, KnowledgeBase};
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
    /// The user's knowledge base: read, never written. Freshness edits copies of its text files
    /// and syncs them, through `source`, into a copy of it under `scratch` (removed afterwards).
    Kb {
        kb: &'a KnowledgeBase,
        source: &'a dyn DocumentSource,
        scratch: std::path::PathBuf,
    },
    /// A knowledge base searched through another store's retriever (one on PostgreSQL): the
    /// variants answer from it; freshness and stale adapters, which need the knowledge base's
    /// folder, are noted as not measured.
    Retriever {
        retriever: &'a dyn Retriever,
        /// Where it is, for the notes (no password).
        location: String,
    },
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
    pub format: Option<&'a crate::FormatCheck>,
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
    if plan.freshness > 0 && matches!(inputs.passages, Passages::None) {
        return Err(Error::Config(
            "--freshness edits documents and asks again, so it needs passages: a knowledge base \
             (--kb) or a corpus; or leave out --freshness"
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
    // What every asking shares; the retriever is set where passages are.
    let base = Context {
        items: &questions.items,
        retriever: None,
        pool,
        options,
        top_k,
        default_model,
        sequential,
        format,
    };
    let mut out = Comparison::default();
    let mut variants = plan.variants.clone();
    let total = variants.len();
    let mut models_of = Vec::with_capacity(total);
    {
        let kb: Option<&KnowledgeBase> = match &passages {
            Passages::None | Passages::Retriever { .. } => None,
            Passages::Kb { kb, .. } => Some(kb),
            Passages::Corpus { kb, .. } => Some(&**kb),
        };
        let own = kb.map(|kb| KbRetriever::new(kb, embedder)).transpose()?;
        let retriever: Option<&dyn Retriever> = match &passages {
            Passages::Retriever { retriever, .. } => Some(*retriever),
            _ => own.as_ref().map(|r| r as &dyn Retriever),
        };
        if let (Some(train), Some(trainer)) = (&plan.train, trainer) {
            let corpus = match &passages {
                Passages::Corpus { corpus, .. } => Some(&**corpus),
                _ => None,
            };
            let sources = Sources {
                kb,
                retriever,
                embedder,
                corpus,
                options,
            };
            prepare_adapters(train, &mut variants, &sources, models, trainer, progress)?;
        }
        for spec in &variants {
            spec.check_adapter()?;
        }
        let ctx = Context { retriever, ..base };
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
        match &passages {
            Passages::Kb { kb, .. } => {
                let mut checked = std::collections::HashSet::new();
                for spec in variants.iter().filter(|s| s.adapter.is_some()) {
                    if !checked.insert(spec.run_dir()) {
                        continue;
                    }
                    if let Some(stale) = stale_adapter(spec, kb)? {
                        out.scenarios.stale_adapters.push(stale);
                    }
                }
            }
            Passages::Retriever { location, .. }
                if variants.iter().any(|s| s.adapter.is_some()) =>
            {
                out.notes.push(format!(
                    "stale adapters: not checked against {location} (adapters record the documents they learned from in a knowledge-base folder's store)"
                ));
            }
            _ => {}
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
    if plan.freshness > 0 {
        let runs = Asked {
            variants: &variants,
            runs: &out.runs,
            models_of: &models_of,
        };
        let not_possible = |planned: usize, r#where: &str| {
            format!(
                "freshness: {planned} of the {} edits asked for were possible (an answer must occur once in {where}, with another answer of its kind to put there)",
                plan.freshness
            )
        };
        match &mut passages {
            Passages::Corpus {
                kb,
                corpus,
                counter,
                max_chunk_tokens,
            } => {
                let edits = plan_edits(&questions.all, corpus, plan.freshness, plan.seed);
                if edits.len() < plan.freshness {
                    out.notes.push(not_possible(edits.len(), "its passage"));
                }
                if !edits.is_empty() {
                    progress(&format!("freshness: editing {} documents", edits.len()));
                    let sync =
                        apply_edits(kb, &edits, true, embedder, *counter, *max_chunk_tokens)?;
                    let asked =
                        ask_edited(kb, embedder, &base, &runs, models, &edits, sync, progress);
                    // The originals go back whatever happened, so the corpus is as it was.
                    apply_edits(kb, &edits, false, embedder, *counter, *max_chunk_tokens)?;
                    let (found, notes) = asked?;
                    out.scenarios.freshness.extend(found);
                    out.notes.extend(notes);
                }
            }
            Passages::Kb {
                kb,
                source,
                scratch,
            } => {
                let files = kb_text_files(kb, &questions.all)?;
                let edits = plan_edits(&questions.all, &files, plan.freshness, plan.seed);
                if edits.len() < plan.freshness {
                    out.notes.push(not_possible(
                        edits.len(),
                        "a text file (Markdown, text, HTML) of the knowledge base holding the question's passage",
                    ));
                }
                let kb_dir = kb.dir().map(std::path::Path::to_owned);
                if let (false, Some(kb_dir)) = (edits.is_empty(), kb_dir) {
                    progress(&format!(
                        "freshness: editing copies of {} files in a copy of the knowledge base",
                        edits.len()
                    ));
                    // A copy left by an interrupted run is only scratch.
                    if scratch.exists() {
                        fs_err::remove_dir_all(&*scratch)?;
                    }
                    let asked = edit_copy(&kb_dir, scratch, &edits, *source, embedder).and_then(
                        |(copy, sync)| {
                            ask_edited(
                                &copy, embedder, &base, &runs, models, &edits, sync, progress,
                            )
                        },
                    );
                    fs_err::remove_dir_all(&*scratch)?;
                    let (found, notes) = asked?;
                    out.scenarios.freshness.extend(found);
                    out.notes.extend(notes);
                }
            }
            Passages::Retriever { location, .. } => out.notes.push(format!(
                "freshness: not measured on {location}: the scenario edits copies of a knowledge base's files in a copy of its folder, and a knowledge base on PostgreSQL has neither (compare a folder ingested from the same files to measure it)"
            )),
            Passages::None => {}
        }
    }
    Ok(out)
}

/// The variants that ran, for asking them again.
struct Asked<'a> {
    variants: &'a [VariantSpec],
    runs: &'a [VariantRun],
    models_of: &'a [String],
}

/// Asks every variant that ran the edited questions over `kb` (already edited, in
/// `sync` seconds): the freshness results, and notes on variants that could not be asked.
#[allow(clippy::too_many_arguments)]
fn ask_edited(
    kb: &KnowledgeBase,
    embedder: &dyn Embedder,
    base: &Context<'_>,
    asked: &Asked<'_>,
    models: &dyn Models,
    edits: &[Edit],
    sync: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<ragtune_compare::Freshness>, Vec<String>)> {
    let retriever = KbRetriever::new(kb, embedder)?;
    let ctx = Context {
        retriever: Some(&retriever),
        ..*base
    };
    let (mut found, mut notes) = (Vec::new(), Vec::new());
    for ((spec, run), model) in asked.variants.iter().zip(asked.runs).zip(asked.models_of) {
        if run.failed.is_some() {
            continue;
        }
        progress(&format!("freshness: {}", run.name));
        match freshness(spec, model, models, &ctx, edits, sync) {
            Ok(Some(mut f)) => {
                f.variant = run.name.clone();
                found.push(f);
            }
            Ok(None) => {}
            Err(why) => notes.push(format!("freshness of {}: {why}", run.name)),
        }
    }
    Ok((found, notes))
}
