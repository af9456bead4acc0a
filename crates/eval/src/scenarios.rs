//! The comparison's scenarios: what happens when documents change (freshness), what an
//! adapter's documents have become since it was trained (lineage), and what fine-tuning did to
//! general ability (forgetting).

use crate::corpus::sync_every_file;
use crate::variants::{Context, Models, VariantSpec, evaluate_variant, training_cost};
use crate::{Result, evaluate_mode};
use ragtune_answer::eval::normalize_answer;
use ragtune_answer::{AskOptions, Mode};
use ragtune_compare::{Forgetting, Freshness, StaleAdapter, UpdateKind};
use ragtune_core::rng::SplitMix64;
use ragtune_core::{Embedder, TokenCounter};
use ragtune_datasets::{Corpus, CorpusDoc, QaItem};
use ragtune_index::{DocumentSource, KnowledgeBase};
use ragtune_ingest::ChunkOptions;
use std::collections::{BTreeSet, HashSet};
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
/// once in its document (the first corpus document whose text holds the question's context)
/// gets that occurrence replaced by another question's answer of the same kind that the passage does
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
        let Some(doc) = corpus
            .docs
            .iter()
            .find(|d| !item.context.is_empty() && d.text.contains(item.context.as_str()))
        else {
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

/// File formats whose bytes are the text a question's passage is found in, so an edit of
/// the file is an edit of the passage.
const TEXT_FORMATS: &[&str] = &["md", "markdown", "txt", "text", "rst", "html", "htm"];

/// The text files of `kb`'s documents that hold the passage of one of `items`, as a corpus
/// whose ids are the files' paths (what [`plan_edits`] draws a knowledge base's edits from).
pub fn kb_text_files(kb: &KnowledgeBase, items: &[QaItem]) -> Result<Corpus> {
    let contexts: Vec<&str> = items
        .iter()
        .filter(|i| i.answerable() && !i.context.trim().is_empty())
        .map(|i| i.context.as_str())
        .collect();
    let mut files = BTreeSet::new();
    let mut docs = Vec::new();
    for doc in kb.documents()? {
        let path = std::path::Path::new(&doc.file);
        let is_text = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT_FORMATS.contains(&e.to_ascii_lowercase().as_str()));
        if contexts.is_empty() || !is_text || !files.insert(doc.file.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        if contexts.iter().any(|c| text.contains(c)) {
            docs.push(CorpusDoc {
                id: doc.file.clone(),
                title: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
            });
        }
    }
    Ok(Corpus { docs })
}

/// A scratch copy of the knowledge base in `kb_dir`, under `scratch` (which must not exist),
/// with edited copies of the files of `edits` synced in place of the originals, through
/// `source` as `ragtune ingest` loads files. Neither the knowledge base nor its files are
/// written. Returns the copy and the seconds the update took (removing the old versions and
/// syncing the new ones; not the copy).
pub fn edit_copy(
    kb_dir: &std::path::Path,
    scratch: &std::path::Path,
    edits: &[Edit],
    source: &dyn DocumentSource,
    embedder: &dyn Embedder,
) -> Result<(KnowledgeBase, f64)> {
    let copy_dir = scratch.join("kb");
    let docs_dir = scratch.join("documents");
    KnowledgeBase::copy(kb_dir, &copy_dir)?;
    for (i, edit) in edits.iter().enumerate() {
        let dir = docs_dir.join(i.to_string());
        fs_err::create_dir_all(&dir)?;
        fs_err::write(dir.join(&edit.edited.title), &edit.edited.text)?;
    }
    let mut kb = KnowledgeBase::open_existing(&copy_dir, embedder)?;
    let started = Instant::now();
    for edit in edits {
        kb.delete_file(&edit.original.id)?;
    }
    sync_every_file(&mut kb, &docs_dir, source, embedder, |f| {
        format!(
            "freshness: the edited copy of a document did not load ({}: {})",
            f.path.display(),
            f.reason
        )
    })?;
    Ok((kb, started.elapsed().as_secs_f64()))
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

/// How far `kb` has moved from the documents a RAFT adapter's training examples came from
/// (changed content hash, or gone); `None` for an adapter without a RAFT manifest to check, or
/// one whose documents are all as it learned them.
pub fn stale_adapter(spec: &VariantSpec, kb: &KnowledgeBase) -> Result<Option<StaleAdapter>> {
    let Some(dir) = spec.run_dir() else {
        return Ok(None);
    };
    let Some(run) = ragtune_raft::trained_run(&dir.join(crate::variants::TRAINING_JSON))? else {
        return Ok(None);
    };
    let staleness = crate::adapters::staleness(&run.lineage, kb.store())?;
    if staleness.changed + staleness.deleted == 0 && staleness.affected_examples == Some(0) {
        return Ok(None);
    }
    Ok(staleness.affected_examples.map(|affected| StaleAdapter {
        adapter: dir.display().to_string(),
        changed_documents: staleness.changed + staleness.deleted,
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
