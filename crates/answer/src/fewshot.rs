//! Few-shot examples: question/answer pairs shown to the model before the question, the k most
//! similar to it by embedding cosine.
//!
//! Example questions and the asked question are embedded the same way ([`Embedder::embed`]):
//! question-to-question similarity is symmetric, so no query prefix applies. An example whose
//! question equals the asked one (case and spacing aside) is never chosen, so an evaluation that
//! draws examples from its own data set does not hand the model the answer.

use crate::citation::match_form;
use crate::error::{Error, Result};
use crate::eval::QaItem;
use ragtune_core::Embedder;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A solved question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub question: String,
    pub answer: String,
}

/// An example picked for a question, with its similarity to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectedExample {
    /// Position in the pool.
    pub index: usize,
    pub question: String,
    pub answer: String,
    /// Cosine similarity of the two questions' embeddings.
    pub similarity: f32,
}

/// Reads examples from a SQuAD JSON file (`.json`) or from JSONL: one object per line with
/// `question` and `answer` (a string) or `answers` (strings or `{"text": ...}` objects). The
/// first answer is used; unanswerable questions are skipped.
pub fn load_examples(path: &Path) -> Result<Vec<Example>> {
    Ok(examples_from(&ragtune_datasets::load_questions(path)?))
}

/// Examples from answerable questions, with their first non-blank answer.
pub fn examples_from(items: &[QaItem]) -> Vec<Example> {
    items
        .iter()
        .filter(|item| !item.is_impossible)
        .filter_map(|item| {
            let answer = item.answers.iter().find(|a| !a.trim().is_empty())?;
            Some(Example {
                question: item.question.clone(),
                answer: answer.clone(),
            })
        })
        .collect()
}

/// Examples with their embeddings, ready to be chosen from.
pub struct ExamplePool<'e> {
    examples: Vec<Example>,
    vectors: Vec<Vec<f32>>,
    keys: Vec<String>,
    embedder: &'e dyn Embedder,
}

impl std::fmt::Debug for ExamplePool<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExamplePool")
            .field("examples", &self.examples.len())
            .field("embedder", &self.embedder.name())
            .finish()
    }
}

/// How many texts go to the embedder at once.
const EMBED_BATCH: usize = 256;

impl<'e> ExamplePool<'e> {
    /// Embeds the example questions.
    pub fn new(examples: Vec<Example>, embedder: &'e dyn Embedder) -> Result<Self> {
        let questions: Vec<&str> = examples.iter().map(|e| e.question.as_str()).collect();
        let vectors = embed_all(embedder, &questions, "few-shot example questions")?;
        let keys = examples.iter().map(|e| match_form(&e.question)).collect();
        Ok(Self {
            examples,
            vectors,
            keys,
            embedder,
        })
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The `k` examples most similar to `question`, most similar first (ties: pool order).
    pub fn select(&self, question: &str, k: usize) -> Result<Vec<SelectedExample>> {
        Ok(self.select_many(&[question], k)?.pop().unwrap_or_default())
    }

    /// [`select`](Self::select) for many questions, embedded in batches.
    pub fn select_many(&self, questions: &[&str], k: usize) -> Result<Vec<Vec<SelectedExample>>> {
        if k == 0 || self.examples.is_empty() {
            return Ok(vec![Vec::new(); questions.len()]);
        }
        let vectors = embed_all(self.embedder, questions, "the questions")?;
        Ok(questions
            .iter()
            .zip(&vectors)
            .map(|(q, v)| self.nearest(q, v, k))
            .collect())
    }

    fn nearest(&self, question: &str, vector: &[f32], k: usize) -> Vec<SelectedExample> {
        let key = match_form(question);
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| self.keys[*i] != key)
            .map(|(i, v)| (i, cosine(vector, v)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .take(k)
            .map(|(index, similarity)| SelectedExample {
                index,
                question: self.examples[index].question.clone(),
                answer: self.examples[index].answer.clone(),
                similarity,
            })
            .collect()
    }
}

fn embed_all(embedder: &dyn Embedder, texts: &[&str], what: &str) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(EMBED_BATCH) {
        let vectors = embedder.embed(batch).map_err(|source| Error::Embed {
            what: what.to_string(),
            source,
        })?;
        if vectors.len() != batch.len() {
            return Err(Error::Embed {
                what: what.to_string(),
                source: ragtune_core::EmbedError::Permanent(format!(
                    "the embedder {} returned {} vectors for {} texts",
                    embedder.name(),
                    vectors.len(),
                    batch.len()
                )),
            });
        }
        out.extend(vectors);
    }
    Ok(out)
}

/// Cosine similarity; 0 when either vector is zero or the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 1.0]), 0.0);
    }
}
