//! Finding a question's oracle in the knowledge base: the chunk that holds a gold answer inside
//! the question's context, and the sentence around the answer that the target quotes.

use ragtune_answer::eval::QaItem;
use ragtune_answer::sanitize::sanitize;
use serde::{Deserialize, Serialize};

/// A chunk of the knowledge base as the prompt shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct KbChunk {
    pub id: i64,
    pub doc_id: i64,
    pub source: String,
    pub page: Option<u32>,
    /// The text as the prompt shows it (markup neutralised, whitespace collapsed).
    pub text: String,
}

/// Where a question's answer is in the knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    /// Index into the chunk list.
    pub chunk: usize,
    /// The gold answer as found in the chunk.
    pub answer: String,
    /// The sentence of the chunk (as shown) that holds the answer.
    pub quote: String,
}

/// Why a question yields no example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No gold answer (SQuAD v2 `is_impossible`, or none given).
    Unanswerable,
    /// No chunk of the knowledge base contains any gold answer.
    AnswerNotInKb,
    /// Chunks contain the answer, but none around text of the question's context: the
    /// question's passage is not in the knowledge base.
    PassageNotInKb,
    /// No context was given and several chunks contain the answer, so the oracle is unknown.
    AmbiguousWithoutContext,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Unanswerable => "the question has no gold answer",
            SkipReason::AnswerNotInKb => "no chunk of the knowledge base contains the answer",
            SkipReason::PassageNotInKb => {
                "the question's passage is not in the knowledge base (the answer occurs only \
                 in other text)"
            }
            SkipReason::AmbiguousWithoutContext => {
                "no context given and several chunks contain the answer"
            }
        }
    }
}

/// The oracle of `item` among `chunks`: the first chunk (in the order given) where a gold
/// answer sits in a sentence that also occurs in the question's context. Without a context,
/// the only chunk that contains the answer.
pub fn find_oracle(item: &QaItem, chunks: &[KbChunk]) -> Result<Oracle, SkipReason> {
    if !item.answerable() || item.answers.iter().all(|a| a.trim().is_empty()) {
        return Err(SkipReason::Unanswerable);
    }
    let context = sanitize(&item.context);
    let mut contains_answer = false;
    let mut without_context: Option<Oracle> = None;
    for answer in &item.answers {
        let answer = sanitize(answer);
        if answer.is_empty() {
            continue;
        }
        for (index, chunk) in chunks.iter().enumerate() {
            for (start, _) in chunk.text.match_indices(answer.as_str()) {
                contains_answer = true;
                let quote = sentence_around(&chunk.text, start, start + answer.len());
                let found = Oracle {
                    chunk: index,
                    answer: answer.clone(),
                    quote: quote.to_string(),
                };
                if context.is_empty() {
                    match &without_context {
                        Some(o) if o.chunk != index => {
                            return Err(SkipReason::AmbiguousWithoutContext);
                        }
                        Some(_) => {}
                        None => without_context = Some(found),
                    }
                } else if context.contains(quote) {
                    return Ok(found);
                }
            }
        }
    }
    match without_context {
        Some(o) => Ok(o),
        None if contains_answer => Err(SkipReason::PassageNotInKb),
        None => Err(SkipReason::AnswerNotInKb),
    }
}

/// The sentence of `text` around the byte range `start..end`: from after the previous `.`, `?`
/// or `!` followed by a space, to the next one (included), clipped to the text.
pub fn sentence_around(text: &str, start: usize, end: usize) -> &str {
    let is_end = |s: &str, i: usize| {
        matches!(s.as_bytes()[i], b'.' | b'?' | b'!')
            && s.as_bytes().get(i + 1).is_none_or(|&b| b == b' ')
    };
    let begin = (0..start)
        .rev()
        .find(|&i| is_end(text, i) && i + 1 < start)
        .map_or(0, |i| i + 2);
    let finish = (end.saturating_sub(1).max(start)..text.len())
        .find(|&i| is_end(text, i))
        .map_or(text.len(), |i| i + 1);
    text[begin..finish].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_at_ends() {
        let t = "First one. The Army won in 1990. Last!";
        let s = t.find("1990").unwrap();
        assert_eq!(sentence_around(t, s, s + 4), "The Army won in 1990.");
        let s = t.find("First").unwrap();
        assert_eq!(sentence_around(t, s, s + 5), "First one.");
        let s = t.find("Last").unwrap();
        assert_eq!(sentence_around(t, s, s + 4), "Last!");
        assert_eq!(sentence_around("no end here", 3, 6), "no end here");
    }
}
