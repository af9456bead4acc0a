//! Context recall: was the gold paragraph in front of the model?
//!
//! For an answerable question that carries its gold paragraph ([`QaItem::context`]) and was
//! answered in RAG mode, the gold paragraph **is in the context** when one passage shown in
//! the prompt (as shown: sanitised, and cut where the budget trimmed it) both
//!
//! 1. contains a gold answer: its words, normalised as SQuAD normalises answers
//!    ([`normalize_answer`]), occur as a contiguous run of the passage's normalised words; and
//! 2. shares a run of at least [`MIN_SHARED_WORDS`] consecutive normalised words with the gold
//!    paragraph (the whole paragraph when it is shorter),
//!
//! so an answer string that occurs in some other paragraph does not count, and neither does a
//! passage from the gold paragraph that was cut before the answer.

use super::{QaItem, normalize_answer};
use crate::answer::{Answer, Mode};
use crate::budget::PassageFit;
use crate::sanitize::sanitize_passage;
use std::collections::HashSet;

/// Consecutive words a passage must share with the gold paragraph.
pub const MIN_SHARED_WORDS: usize = 8;

/// `None` when the question says nothing about context recall (unanswerable, no gold
/// paragraph, or not RAG); else whether the gold paragraph was in the prompt.
pub fn gold_in_context(item: &QaItem, answer: &Answer) -> Option<bool> {
    if answer.mode != Mode::Rag {
        return None;
    }
    gold_in_passages(item, shown_passages(answer))
}

/// The same test on passage texts as shown (for measuring retrieval without generating):
/// `None` for an unanswerable question or one without its gold paragraph.
pub fn gold_in_passages(
    item: &QaItem,
    passages: impl IntoIterator<Item = impl AsRef<str>>,
) -> Option<bool> {
    if !item.answerable() || item.context.trim().is_empty() {
        return None;
    }
    let gold: Vec<Vec<String>> = item
        .answers
        .iter()
        .map(|a| words(a))
        .filter(|w| !w.is_empty())
        .collect();
    let paragraph = words(&item.context);
    if gold.is_empty() || paragraph.is_empty() {
        return None;
    }
    let n = MIN_SHARED_WORDS.min(paragraph.len());
    let runs: HashSet<&[String]> = paragraph.windows(n).collect();
    Some(passages.into_iter().any(|text| {
        let passage = words(text.as_ref());
        passage.windows(n).any(|w| runs.contains(w))
            && gold
                .iter()
                .any(|g| passage.windows(g.len()).any(|w| w == g.as_slice()))
    }))
}

fn words(text: &str) -> Vec<String> {
    normalize_answer(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The text of each passage in the prompt, as shown (without the trim mark). Every hit a
/// passage shows carries the passage's text, so the first with a number is the passage.
fn shown_passages(answer: &Answer) -> impl Iterator<Item = String> + '_ {
    let mut seen = HashSet::new();
    answer.passages.iter().filter_map(move |p| {
        let number = p.number?;
        if !seen.insert(number) {
            return None;
        }
        let text = sanitize_passage(&p.hit.text);
        Some(match p.fit {
            PassageFit::Trimmed { kept_chars } => text.chars().take(kept_chars).collect(),
            _ => text,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalised_as_squad_answers() {
        assert_eq!(
            words("The Denver  Broncos, 24-10!"),
            ["denver", "broncos", "2410"]
        );
    }
}
