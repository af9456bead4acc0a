//! SQuAD as a retrieval test: every paragraph is a document (id `<article>#<n>`), every
//! question's only relevant document is the paragraph it was asked about.

use super::{Corpus, CorpusDoc, EvalQuery};
use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
}

/// Loads a SQuAD v1.1/v2.0 JSON file. Paragraphs are indexed without the article title (all
/// paragraphs of an article share it, so it would not tell them apart).
pub fn load(path: &Path) -> Result<(Corpus, Vec<EvalQuery>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let file: File = serde_json::from_slice(&bytes).map_err(|e| Error::Data {
        path: path.to_owned(),
        line: e.line(),
        format: "SQuAD JSON",
        reason: e.to_string(),
    })?;
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
