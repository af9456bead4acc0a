//! Whether a passage supports what the answer says next to a citation.
//!
//! The claim of a citation is the text of its sentence before it (back to the previous
//! citation), or, when that holds no content word (`[2] In 1912, he left`), the text after it up
//! to the next citation or the end of the sentence. Its content words are its words (letters
//! and digits, lowercased, typographic apostrophes made plain) less articles, pronouns,
//! auxiliaries, common prepositions and answer lead-ins ("the answer is"); a plural `s` is
//! ignored. A passage supports the claim when at least three quarters of those words, and
//! every number among them, occur in it as words. A claim without any content word ("Yes") is
//! not supported: there is nothing to check it by.
//!
//! This is a lexical check, made for the short extractive answers the RAG prompt asks for: it
//! catches a citation of an unrelated passage ("Everest [1]" citing a passage about France),
//! not a passage that holds the right words in a wrong statement.

use std::collections::HashSet;

/// Words that carry no content of their own, separated by spaces.
const STOPWORDS: &str = "a about according also an and answer are as at be been being but by can \
    correct could did do doc document does for from had has have he her here him his i in into is \
    it its may might must of on or our passage ref she should so source than that the their them \
    then there these they this those to us was we were which who whom whose will with would yes \
    you your";

/// The least share of a claim's content words that the passage must hold.
const MIN_SHARE: (usize, usize) = (3, 4);

/// A passage's words, for checking claims against it.
#[derive(Debug, Clone, Default)]
pub struct PassageWords {
    words: HashSet<String>,
}

impl PassageWords {
    pub fn of(passage: &str) -> Self {
        Self {
            words: words(passage).collect(),
        }
    }

    /// Whether the passage supports `claim` (see the module docs).
    pub fn supports(&self, claim: &str) -> bool {
        let content = content_words(claim);
        if content.is_empty() {
            return false;
        }
        let mut found = 0;
        for w in &content {
            if self.words.contains(w) {
                found += 1;
            } else if is_number(w) {
                return false;
            }
        }
        found * MIN_SHARE.1 >= content.len() * MIN_SHARE.0
    }
}

/// Whether `text` holds a content word.
pub fn has_content(text: &str) -> bool {
    !content_words(text).is_empty()
}

fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = words(text)
        .filter(|w| !STOPWORDS.split_whitespace().any(|s| s == w.as_str()))
        .filter(|w| w.chars().count() > 1 || is_number(w))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn is_number(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_digit())
}

/// Lowercased runs of letters and digits, a plural `s` dropped from words of four letters and
/// more (not `ss`).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            let n = w.chars().count();
            if n >= 4 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_string()
            } else {
                w
            }
        })
}

/// Where a sentence ends in `text`: after `.`, `!` or `?` followed by whitespace (or the end),
/// and after a line break. Returns the byte offsets just past each end.
fn sentence_ends(text: &str) -> impl Iterator<Item = usize> + '_ {
    let b = text.as_bytes();
    text.char_indices().filter_map(move |(i, c)| {
        let next = b.get(i + 1);
        let ends = c == '\n'
            || (matches!(c, '.' | '!' | '?') && next.is_none_or(|n| n.is_ascii_whitespace()));
        ends.then_some(i + 1)
    })
}

/// The sentence of `passage` that holds the most of `claim`'s content words (the first of
/// equals), as a byte range of `passage` without its surrounding whitespace: the evidence a
/// reader is shown highlighted. `None` when no sentence shares a content word with the claim.
pub fn evidence(passage: &str, claim: &str) -> Option<std::ops::Range<usize>> {
    let wanted = content_words(claim);
    let mut best: Option<(usize, std::ops::Range<usize>)> = None;
    let mut start = 0;
    let ends = sentence_ends(passage).chain(std::iter::once(passage.len()));
    for end in ends {
        if end <= start {
            continue;
        }
        let sentence = &passage[start..end];
        let found: HashSet<String> = words(sentence).collect();
        let score = wanted.iter().filter(|w| found.contains(*w)).count();
        if score > 0 && best.as_ref().is_none_or(|(b, _)| score > *b) {
            let lead = sentence.len() - sentence.trim_start().len();
            let trail = sentence.len() - sentence.trim_end().len();
            best = Some((score, start + lead..end - trail));
        }
        start = end;
    }
    best.map(|(_, range)| range)
}

/// The claim of a citation at `mark` (a byte range of `text`), given where the previous
/// citation ends (`from`) and where the next starts (`to`).
pub fn claim(text: &str, mark: std::ops::Range<usize>, from: usize, to: usize) -> &str {
    let before = text[from..mark.start]
        .trim_end()
        .trim_end_matches(['.', '!', '?']);
    let start = sentence_ends(before).last().unwrap_or(0);
    let claim = before[start..].trim();
    if has_content(claim) {
        return claim;
    }
    let after = &text[mark.end..to];
    let end = sentence_ends(after).next().unwrap_or(after.len());
    let next = after[..end]
        .trim_start_matches([':', ',', ';'])
        .trim()
        .trim_end_matches(['.', '!', '?']);
    if next.is_empty() { claim } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supports(passage: &str, claim: &str) -> bool {
        PassageWords::of(passage).supports(claim)
    }

    #[test]
    fn short_answers_are_supported_by_the_passage_that_holds_them() {
        let p =
            "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina Panthers 24-10.";
        assert!(supports(p, "Denver Broncos"));
        assert!(supports(p, "The answer is: the Broncos"));
        assert!(supports(p, "24\u{2013}10"));
        assert!(!supports(p, "Everest"));
        assert!(!supports(p, "Denver Broncos, 1999"));
        assert!(!supports(p, "Yes"));
        assert!(!supports("France is a country in Europe.", "Mount Everest"));
        assert!(supports(
            "It was played at Levi's Stadium.",
            "Levi\u{2019}s stadiums"
        ));
    }

    #[test]
    fn most_content_words_must_occur() {
        let p = "The P-40 pump moves 40 litres per minute.";
        assert!(supports(p, "the pump moves 40 litres every minute"));
        assert!(!supports(p, "the valve leaks oil every minute"));
    }

    #[test]
    fn the_claim_is_the_sentence_part_next_to_the_citation() {
        let t = "It opened in 1998. Ada Park founded it [2]. She left [1]";
        let at = |m: &str| {
            let s = t.find(m).unwrap();
            s..s + m.len()
        };
        assert_eq!(claim(t, at("[2]"), 0, t.len()), "Ada Park founded it");
        assert_eq!(claim(t, at("[1]"), at("[2]").end, t.len()), "She left");
        let t = "[2] In 1912, he left. Later [1]";
        assert_eq!(
            claim(t, 0..3, 0, t.find("[1]").unwrap()),
            "In 1912, he left"
        );
        let t = "Denver Broncos. [1]";
        assert_eq!(claim(t, 16..19, 0, t.len()), "Denver Broncos");
        let t = "[1]: \"gamma delta\"";
        assert_eq!(claim(t, 0..3, 0, t.len()), "\"gamma delta\"");
    }

    #[test]
    fn evidence_is_the_sentence_holding_most_of_the_claim() {
        let passage = "The office opens at nine. Signing keys are rotated every ninety days by the platform team.\nCoffee is free.";
        let range = evidence(passage, "The keys are rotated every ninety days").unwrap();
        assert_eq!(
            &passage[range],
            "Signing keys are rotated every ninety days by the platform team."
        );
        assert_eq!(evidence(passage, "Zebras graze"), None);
        assert_eq!(evidence("", "anything"), None);
    }
}
