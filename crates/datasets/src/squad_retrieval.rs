//! SQuAD as a retrieval test: every paragraph is a document (id `<article>#<n>`), every
//! question's only relevant document is the paragraph it was asked about.

use crate::qa::parse_squad;
use crate::{Corpus, CorpusDoc, EvalQuery, Result};
use std::path::Path;

/// Loads a SQuAD v1.1/v2.0 JSON file as a corpus of paragraphs and its questions. Paragraphs
/// are indexed without the article title (all paragraphs of an article share it, so it would
/// not tell them apart).
pub fn squad_retrieval(path: &Path) -> Result<(Corpus, Vec<EvalQuery>)> {
    let file = parse_squad(path, &fs_err::read(path)?)?;
    let mut corpus = Corpus::default();
    let mut queries = Vec::new();
    for article in file.data {
        for (i, p) in article.paragraphs.into_iter().enumerate() {
            let id = format!("{}#{i}", article.title);
            for qa in p.qas {
                queries.push(EvalQuery {
                    id: qa.id,
                    text: qa.question,
                    relevant: [(id.clone(), 1)].into(),
                });
            }
            corpus.docs.push(CorpusDoc {
                id,
                title: String::new(),
                text: p.context,
            });
        }
    }
    Ok((corpus, queries))
}
