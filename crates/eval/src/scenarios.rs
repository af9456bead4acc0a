//! The comparison's scenarios: what happens when documents change (freshness), what an
//! adapter's documents have become since it was trained (lineage), and what fine-tuning did to
//! general ability (forgetting).

use crate::variants::{Context, Models, VariantSpec, evaluate_variant, training_cost};
use crate::{Result, evaluate_mode};
use ragtune_answer::eval::normalize_answer;
use ragtune_answer::{AskOptions, Mode};
use ragtune_compare::{Forgetting, Freshness, StaleAdapter, UpdateKind};
use ragtune_core::rng::SplitMix64;
use ragtune_core::{Embedder, TokenCounter};
use ragtune_datasets::{Corpus, CorpusDoc, QaItem};
use ragtune_index::KnowledgeBase;
use ragtune_ingest::ChunkOptions;
use ragtune_raft::ExampleRecord;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

/// One document edit that changes one question's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The question, its gold answer now the new value.
    pub question: QaItem,
    pub old: String,
    pub new: String,
    /// The document before and after.
    pub original: CorpusDoc,
    pub edited: CorpusDoc,
}

/// What kind of value an answer is, so a replacement is of the same kind: a number or date,
/// a name, or other words.
fn kind(answer: &str) -> u8 {
    if answer.chars().any(|c| c.is_ascii_digit()) {
        0
    } else if answer.chars().next().is_some_and(char::is_uppercase) {
        1
    } else {
        2
    }
}

/// Up to `n` edits, drawn with `seed`: an answerable question whose gold answer occurs exactly
/// once in its passage (a corpus document whose text is the question's context) gets that
/// occurrence replaced by another question's answer of the same kind that the passage does
/// not mention. One edit per document.
pub fn plan_edits(items: &[QaItem], corpus: &Corpus, n: usize, seed: u64) -> Vec<Edit> {
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut order);
    let values: Vec<&str> = items
        .iter()
        .flat_map(|i| i.answers.first())
        .map(String::as_str)
        .filter(|a| !a.trim().is_empty())
        .collect();
    let mut edited_docs = HashSet::new();
    let mut edits = Vec::new();
    for i in order {
        if edits.len() == n {
            break;
        }
        let item = &items[i];
        let Some(old) = item.answers.first().filter(|_| item.answerable()) else {
            continue;
        };
        let Some(doc) = corpus.docs.iter().find(|d| d.text == item.context) else {
            continue;
        };
        if old.trim().is_empty()
            || doc.text.matches(old.as_str()).count() != 1
            || !edited_docs.insert(doc.id.clone())
        {
            continue;
        }
        let candidates: Vec<&str> = values
            .iter()
            .copied()
            .filter(|v| {
                kind(v) == kind(old)
                    && normalize_answer(v) != normalize_answer(old)
                    && !doc.text.contains(v)
            })
            .collect();
        if candidates.is_empty() {
            edited_docs.remove(&doc.id);
            continue;
        }
        let new = candidates[rng.below(candidates.len() as u64) as usize].to_owned();
        let edited = CorpusDoc {
            text: doc.text.replacen(old.as_str(), &new, 1),
            ..doc.clone()
        };
        let mut question = item.clone();
        question.answers = vec![new.clone()];
        question.context = edited.text.clone();
        edits.push(Edit {
            question,
            old: old.clone(),
            new,
            original: doc.clone(),
            edited,
        });
    }
    edits
}

/// Writes the edited (`edited`) or original documents of `edits` into `kb`, re-chunked and
/// re-embedded as the corpus was; returns the seconds it took (the update a grounded approach
/// needs).
pub fn apply_edits(
    kb: &mut KnowledgeBase,
    edits: &[Edit],
    edited: bool,
    embedder: &dyn Embedder,
    counter: &dyn TokenCounter,
    max_chunk_tokens: usize,
) -> Result<f64> {
    let started = Instant::now();
    let docs = edits
        .iter()
        .map(|e| {
            if edited {
                e.edited.clone()
            } else {
                e.original.clone()
            }
        })
        .collect();
    let chunking = ChunkOptions {
        max_tokens: ChunkOptions::default().max_tokens.min(max_chunk_tokens),
        ..Default::default()
    };
    ragtune_retrieve::eval::index_corpus_chunked(
        kb,
        &Corpus { docs },
        embedder,
        counter,
        &chunking,
    )?;
    Ok(started.elapsed().as_secs_f64())
}

/// Asks the edited questions of `edits` through a variant (the knowledge base behind
/// `ctx.retriever` already edited, in `sync_seconds`) and counts answers that state the new
/// value and answers that still state the old one (normalised containment, so a verbose answer
/// that states the fact counts). Approaches without passages take an edit only by retraining:
/// their update time is their training time; closed-book and few-shot on the base model cannot
/// take it at all and are not asked (`None`).
pub fn freshness(
    spec: &VariantSpec,
    model: &str,
    models: &dyn Models,
    ctx: &Context<'_>,
    edits: &[Edit],
    sync_seconds: f64,
) -> std::result::Result<Option<Freshness>, String> {
    let (update_kind, update_seconds) = if spec.approach.is_grounded() {
        (UpdateKind::Resync, sync_seconds)
    } else if spec.approach.is_fine_tuned() {
        let cost = spec.run_dir().and_then(|d| training_cost(&d));
        (
            UpdateKind::Retrain,
            cost.map_or(f64::NAN, |c| c.wall_seconds),
        )
    } else {
        return Ok(None);
    };
    let items: Vec<QaItem> = edits.iter().map(|e| e.question.clone()).collect();
    let ctx = Context {
        items: &items,
        ..*ctx
    };
    let evaluation = evaluate_variant(spec, model, models, &ctx)?;
    let (mut followed, mut kept) = (0, 0);
    for (edit, result) in edits.iter().zip(&evaluation.results) {
        let said = normalize_answer(&result.answer.answer_text);
        if said.is_empty() {
            continue;
        }
        if said.contains(&normalize_answer(&edit.new)) {
            followed += 1;
        } else if said.contains(&normalize_answer(&edit.old)) {
            kept += 1;
        }
    }
    Ok(Some(Freshness {
        variant: String::new(),
        edited_questions: edits.len() as u32,
        followed_new_fact: followed,
        kept_old_fact: kept,
        update_seconds,
        update_kind,
    }))
}

/// Adapters whose RAFT training examples came from documents of `kb` that have changed (another
/// content hash) or are gone since; `None` for an adapter without a RAFT manifest to check.
pub fn stale_adapter(spec: &VariantSpec, kb: &KnowledgeBase) -> Result<Option<StaleAdapter>> {
    let Some(dir) = spec.run_dir() else {
        return Ok(None);
    };
    let Some(run) = ragtune_raft::trained_run(&dir.join(crate::variants::TRAINING_JSON))? else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(&run.lineage.manifest) else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        examples: Vec<ExampleRecord>,
    }
    let Ok(manifest) = serde_json::from_str::<Manifest>(&text) else {
        return Ok(None);
    };
    let mut current: BTreeMap<String, Option<String>> = BTreeMap::new();
    let (mut changed, mut affected) = (BTreeSet::new(), 0);
    for example in &manifest.examples {
        if !current.contains_key(&example.source) {
            let hash = kb.document(&example.source)?.map(|d| d.hash);
            current.insert(example.source.clone(), hash);
        }
        if current[&example.source].as_deref() != Some(example.content_hash.as_str()) {
            changed.insert(example.source.clone());
            affected += 1;
        }
    }
    Ok(Some(StaleAdapter {
        adapter: dir.display().to_string(),
        changed_documents: changed.len() as u32,
        affected_examples: affected,
    }))
}

/// What fine-tuning did to general ability: perplexity on `general_text` with and without the
/// adapter and, given out-of-domain questions, closed-book exact match with and without it.
pub fn forgetting(
    spec: &VariantSpec,
    model: &str,
    models: &dyn Models,
    general_text: &str,
    window: u32,
    ood: &[QaItem],
    options: &AskOptions,
) -> std::result::Result<Forgetting, String> {
    let adapter = spec
        .adapter
        .as_deref()
        .ok_or("forgetting is measured for fine-tuned variants only")?;
    let before = models.perplexity(model, None, general_text, window)?;
    let after = models.perplexity(model, Some(adapter), general_text, window)?;
    let ood_em = |adapter| -> std::result::Result<Option<f64>, String> {
        if ood.is_empty() {
            return Ok(None);
        }
        let generator = models.generator(model, adapter)?;
        let options = AskOptions {
            mode: Mode::ClosedBook,
            ..options.clone()
        };
        let e = evaluate_mode(generator.as_ref(), None, None, options, ood, false)
            .map_err(|e| e.to_string())?;
        Ok(Some(e.report.summary.exact_match))
    };
    Ok(Forgetting {
        variant: String::new(),
        perplexity_before: before,
        perplexity_after: after,
        ood_exact_match_before: ood_em(None)?,
        ood_exact_match_after: ood_em(Some(adapter))?,
    })
}
