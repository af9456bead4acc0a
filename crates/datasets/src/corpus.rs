//! A retrieval test collection: documents, and queries with graded relevance.

use std::collections::HashMap;

/// A document of an evaluation corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusDoc {
    pub id: String,
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corpus {
    pub docs: Vec<CorpusDoc>,
}

/// A query and the graded relevance of documents to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalQuery {
    pub id: String,
    pub text: String,
    pub relevant: HashMap<String, u32>,
}
