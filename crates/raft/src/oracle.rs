//! Finding a question's oracle in the knowledge base: the chunk that holds a gold answer inside
//! the question's context, and the sentence around the answer that the target quotes.

use ragtune_answer::eval::QaItem;
use ragtune_answer::sanitize::sanitize;
use ragtune_retrieve::sentence_match::sentences;
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
    /// Unanswerable, and no context was given, so its passage cannot be found (`abstain`).
    UnanswerableWithoutContext,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Unanswerable => {
                "the question has no gold answer (with --abstain, an unanswerable question \
                 with its context teaches the refusal)"
            }
            SkipReason::AnswerNotInKb => "no chunk of the knowledge base contains the answer",
            SkipReason::PassageNotInKb => {
                "the question's passage is not in the knowledge base (its answer, if it has \
                 one, occurs only in other text)"
            }
            SkipReason::AmbiguousWithoutContext => {
                "no context given and several chunks contain the answer"
            }
            SkipReason::UnanswerableWithoutContext => {
                "the question has no gold answer and no context to find its passage by"
            }
        }
    }
}

/// The oracle of `item` among `chunks`: the first chunk (in the order given) where a gold
/// answer sits in text that agrees with the question's context (its whole sentence, at least
/// 30 bytes around the answer, or the whole context when that is at least 30 bytes). Without a
/// context, the only chunk that contains the answer. The quote is the part of the answer's
/// sentence that agrees with the context.
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
                let end = start + answer.len();
                let (s0, s1) = sentence_around(&chunk.text, start, end);
                let (w0, w1) = if context.is_empty() {
                    (s0, s1)
                } else {
                    common_window(&chunk.text, &context, (start, end), (s0, s1))
                };
                let found = Oracle {
                    chunk: index,
                    answer: answer.clone(),
                    quote: chunk.text[w0..w1].trim().to_string(),
                };
                if context.is_empty() {
                    match &without_context {
                        Some(o) if o.chunk != index => {
                            return Err(SkipReason::AmbiguousWithoutContext);
                        }
                        Some(_) => {}
                        None => without_context = Some(found),
                    }
                } else if w1 - w0 >= (s1 - s0).min(answer.len() + MIN_AGREEMENT)
                    // The whole context (a teacher's quote, a table row) is here verbatim.
                    || (w1 - w0 == context.len() && context.len() >= MIN_AGREEMENT)
                {
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

/// The chunk that holds an unanswerable question's own passage: the one that contains the most
/// of its context's sentences (cut as the chunker cuts them, counted in bytes; sentences of at
/// least [`MIN_SENTENCE`] bytes, sanitised as the prompt shows them). SQuAD v2.0's unanswerable
/// questions are written against a paragraph that seems to answer them, which retrieval then
/// finds; shown that paragraph, the model should refuse, not answer from it.
pub fn find_passage(item: &QaItem, chunks: &[KbChunk]) -> Result<usize, SkipReason> {
    let context = sanitize(&item.context);
    if context.is_empty() {
        return Err(SkipReason::UnanswerableWithoutContext);
    }
    let context_sentences: Vec<&str> = sentences(&context)
        .filter(|s| s.len() >= MIN_SENTENCE)
        .collect();
    let mut best: Option<(usize, usize)> = None;
    for (index, chunk) in chunks.iter().enumerate() {
        let shared: usize = context_sentences
            .iter()
            .filter(|s| chunk.text.contains(**s))
            .map(|s| s.len())
            .sum();
        if shared > 0 && best.is_none_or(|(most, _)| shared > most) {
            best = Some((shared, index));
        }
    }
    best.map(|(_, index)| index)
        .ok_or(SkipReason::PassageNotInKb)
}

/// Shorter sentences ("Yes.", "See above.") occur in too many chunks to place a passage.
const MIN_SENTENCE: usize = 20;

/// How many bytes around the answer a chunk must share with the question's context (unless
/// the whole sentence agrees) to count as the question's passage.
const MIN_AGREEMENT: usize = 30;

/// The widest range of `text` around `answer` (both byte ranges), within `sentence`, that
/// occurs verbatim in `context`. Chunks may carry a heading or be cut mid-sentence, so the
/// whole sentence need not occur in the context.
fn common_window(
    text: &str,
    context: &str,
    answer: (usize, usize),
    sentence: (usize, usize),
) -> (usize, usize) {
    let (mut lo, mut hi) = answer;
    if !context.contains(&text[lo..hi]) {
        return (lo, lo);
    }
    while let Some(c) = text[sentence.0..lo].chars().next_back() {
        if !context.contains(&text[lo - c.len_utf8()..hi]) {
            break;
        }
        lo -= c.len_utf8();
    }
    while let Some(c) = text[hi..sentence.1].chars().next() {
        if !context.contains(&text[lo..hi + c.len_utf8()]) {
            break;
        }
        hi += c.len_utf8();
    }
    (lo, hi)
}

/// The sentence of `text` around the byte range `start..end` (as a byte range): from after the
/// previous `.`, `?` or `!` followed by a space, to the next one (included), clipped to the
/// text, without surrounding spaces.
pub fn sentence_around(text: &str, start: usize, end: usize) -> (usize, usize) {
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
    let lead = text[begin..finish].len() - text[begin..finish].trim_start().len();
    let trail = text[begin..finish].len() - text[begin..finish].trim_end().len();
    (begin + lead, finish - trail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(t: &str, start: usize, end: usize) -> &str {
        let (a, b) = sentence_around(t, start, end);
        &t[a..b]
    }

    #[test]
    fn a_heading_before_the_sentence_does_not_hide_the_passage() {
        let chunk = KbChunk {
            id: 1,
            doc_id: 1,
            source: "keys.md".into(),
            page: None,
            text: "Keys The signing keys are rotated every ninety days by the team.".into(),
        };
        let item = QaItem {
            id: "k".into(),
            question: "How often?".into(),
            answers: vec!["every ninety days".into()],
            is_impossible: false,
            title: String::new(),
            context: "The signing keys are rotated every ninety days by the team. More.".into(),
            decision: None,
        };
        let o = find_oracle(&item, &[chunk]).unwrap();
        assert_eq!(
            o.quote,
            "The signing keys are rotated every ninety days by the team."
        );
    }

    fn chunk(id: i64, text: &str) -> KbChunk {
        KbChunk {
            id,
            doc_id: id,
            source: format!("{id}.md"),
            page: None,
            text: text.into(),
        }
    }

    #[test]
    fn an_unanswerable_question_is_placed_by_its_context() {
        let context = "The signing keys are rotated every ninety days. The old keys are kept for \
                       a year. Nobody may copy them.";
        let item = QaItem {
            id: "u".into(),
            question: "Who rotates the backup keys?".into(),
            answers: vec![],
            is_impossible: true,
            title: String::new(),
            context: context.into(),
            decision: None,
        };
        let chunks = [
            chunk(
                1,
                "Keys Other teams rotate their keys. Nobody may copy them.",
            ),
            // A heading before the paragraph does not hide it; it shares the most sentences.
            chunk(2, &format!("Keys {context}")),
            chunk(3, "Unrelated text about rivers and fish."),
        ];
        assert_eq!(find_passage(&item, &chunks), Ok(1));
        assert_eq!(
            find_passage(&item, &chunks[2..]),
            Err(SkipReason::PassageNotInKb)
        );
        let without = QaItem {
            context: String::new(),
            ..item
        };
        assert_eq!(
            find_passage(&without, &chunks),
            Err(SkipReason::UnanswerableWithoutContext)
        );
    }

    #[test]
    fn a_quote_shorter_than_the_margin_places_its_row() {
        // A teacher's quote: one table row of a long run-on "sentence", the answer most of it.
        let table = "Table 10.9. List of commands command | description gpg -a -s file | sign \
                     file gpg --clearsign file | clear-sign message gpg --verify file | verify \
                     clear-signed file";
        let item = QaItem {
            id: "t".into(),
            question: "How is a file clear-signed?".into(),
            answers: vec!["gpg --clearsign file".into()],
            is_impossible: false,
            title: String::new(),
            context: "gpg --clearsign file | clear-sign message".into(),
            decision: None,
        };
        let other = chunk(
            1,
            "Use gpg --clearsign file to sign mail; it is the usual way.",
        );
        let o = find_oracle(&item, &[other, chunk(2, table)]).unwrap();
        assert_eq!(
            (o.chunk, o.quote.as_str()),
            (1, "gpg --clearsign file | clear-sign message")
        );
        // Under 30 bytes, a whole context is too little to tell passages apart.
        let short = QaItem {
            context: "gpg --clearsign file |".into(),
            ..item
        };
        assert_eq!(
            find_oracle(&short, &[chunk(2, table)]).unwrap_err(),
            SkipReason::PassageNotInKb
        );
    }

    #[test]
    fn sentences_are_cut_at_ends() {
        let t = "First one. The Army won in 1990. Last!";
        let s = t.find("1990").unwrap();
        assert_eq!(sentence(t, s, s + 4), "The Army won in 1990.");
        let s = t.find("First").unwrap();
        assert_eq!(sentence(t, s, s + 5), "First one.");
        let s = t.find("Last").unwrap();
        assert_eq!(sentence(t, s, s + 4), "Last!");
        assert_eq!(sentence("no end here", 3, 6), "no end here");
    }
}
