//! A question set: every question of a file, and the seeded sample a run answers.

use crate::{Error, Result};
use ragtune_answer::{Example, examples_from};
use ragtune_core::rng::sample_indices;
use ragtune_datasets::{QaItem, load_questions};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The questions of one file and the sample drawn from them.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionSet {
    pub path: PathBuf,
    /// Every question of the file, in file order.
    pub all: Vec<QaItem>,
    /// Positions in `all` of the sampled questions, in sample order.
    pub chosen: Vec<usize>,
    /// The sampled questions.
    pub items: Vec<QaItem>,
}

impl QuestionSet {
    /// Loads `path` (SQuAD or PubMedQA JSON, or question/answers JSONL) and draws `sample`
    /// questions with `seed` (0: all of them, in file order). The same file, sample and seed
    /// give the same questions on every run and platform.
    pub fn load(path: &Path, sample: usize, seed: u64) -> Result<Self> {
        let all = load_questions(path)?;
        if all.is_empty() {
            return Err(Error::NoQuestions {
                path: path.to_owned(),
            });
        }
        let chosen = if sample == 0 {
            (0..all.len()).collect()
        } else {
            sample_indices(all.len(), sample, seed)
        };
        let items = chosen.iter().map(|&i| all[i].clone()).collect();
        Ok(Self {
            path: path.to_owned(),
            all,
            chosen,
            items,
        })
    }

    /// Whether the file is JSON (SQuAD or PubMedQA), which carries its own passages.
    pub fn is_json(&self) -> bool {
        self.path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    }

    /// Whether the questions are yes/no/maybe ones (PubMedQA), scored by accuracy.
    pub fn labelled(&self) -> bool {
        self.all.iter().any(|i| i.decision.is_some())
    }

    /// Few-shot examples from the questions that were not drawn and are not about a paragraph
    /// a drawn question is about, so no example gives an answer away.
    pub fn held_out_examples(&self) -> Vec<Example> {
        let chosen: HashSet<usize> = self.chosen.iter().copied().collect();
        let contexts: HashSet<&str> = self
            .chosen
            .iter()
            .map(|&i| self.all[i].context.as_str())
            .collect();
        let rest: Vec<QaItem> = self
            .all
            .iter()
            .enumerate()
            .filter(|(i, item)| !chosen.contains(i) && !contexts.contains(item.context.as_str()))
            .map(|(_, item)| item.clone())
            .collect();
        examples_from(&rest)
    }
}
