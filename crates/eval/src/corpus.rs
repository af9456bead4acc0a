//! The corpus a run answers from when it is not given a knowledge base.

use crate::{Error, QuestionSet, Result};
use ragtune_core::{Embedder, TokenCounter};
use ragtune_datasets::{Corpus, CorpusDoc, squad_retrieval};
use ragtune_index::{DocumentSource, KnowledgeBase, NoProgress, SyncFailure, SyncOptions};
use ragtune_ingest::ChunkOptions;
use ragtune_retrieve::eval::index_corpus_chunked;
use std::path::Path;

/// The documents of `file`: SQuAD's paragraphs, or, when `file` is the PubMedQA question set
/// itself, one document per question holding its abstract (no title: the title is the
/// question).
pub fn load_corpus(file: &Path, questions: &QuestionSet) -> Result<Corpus> {
    if file == questions.path && questions.labelled() {
        return Ok(Corpus {
            docs: questions
                .all
                .iter()
                .map(|i| CorpusDoc {
                    id: i.id.clone(),
                    title: String::new(),
                    text: i.context.clone(),
                })
                .collect(),
        });
    }
    Ok(squad_retrieval(file)?.0)
}

/// An in-memory knowledge base of `corpus`, cut as `ragtune ingest` cuts text files (a long
/// context, a whole article, would not fit a prompt as one passage) into chunks of at most
/// `max_chunk_tokens` counted by `counter`. Returns the knowledge base and its chunk count.
pub fn index_in_memory(
    corpus: &Corpus,
    embedder: &dyn Embedder,
    counter: &dyn TokenCounter,
    max_chunk_tokens: usize,
) -> Result<(KnowledgeBase, usize)> {
    let chunking = ChunkOptions {
        max_tokens: ChunkOptions::default().max_tokens.min(max_chunk_tokens),
        ..Default::default()
    };
    let mut kb = KnowledgeBase::in_memory(embedder)?;
    let chunks = index_corpus_chunked(&mut kb, corpus, embedder, counter, &chunking)?;
    Ok((kb, chunks))
}

/// Syncs the files under `root` into `kb`; a file that does not load is an error, worded by
/// `failed` (a run that silently left a document out would measure something else).
pub(crate) fn sync_every_file(
    kb: &mut KnowledgeBase,
    root: &Path,
    source: &dyn DocumentSource,
    embedder: &dyn Embedder,
    failed: impl Fn(&SyncFailure) -> String,
) -> Result<()> {
    let summary = kb.sync(
        &[root.to_path_buf()],
        source,
        embedder,
        &SyncOptions::default(),
        &mut NoProgress,
    )?;
    match summary.failed.first() {
        Some(failure) => Err(Error::Config(failed(failure))),
        None => Ok(()),
    }
}
