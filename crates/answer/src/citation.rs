//! Citations are checked, not trusted.
//!
//! [`parse_citations`] finds the markers a model writes: `[1]`, `[1][2]`, `[1, 2]`, `[1; 2]`,
//! ranges `[1-3]`, and `[doc 1]` / `[Document 1]`. [`check_citations`] then checks every cited
//! number against the passages that were in the prompt (numbered from 1), and every quotation in
//! the answer (`"..."` or `“...”`) against the passage(s) cited right after it (or, when nothing
//! follows, right before it). A quote matches when it occurs in the passage after this
//! normalisation of both: case folded, typographic quotes and apostrophes made plain, runs of
//! whitespace collapsed; surrounding spaces and end punctuation of the quote are ignored, and an
//! ellipsis (`...` or `…`) inside a quote stands for omitted text (each piece must occur, in
//! order).
//!
//! Documents carry bracketed numbers of their own (a paper's `[2, 7, 8]`, Wikipedia's `[9]`)
//! that look exactly like our markers. [`neutralize_references`] rewrites them for the prompt
//! as `(ref. 2, 7, 8)` (the stored chunk and its span are untouched), and when a reply still
//! holds a bracketed marker naming a number that is not a passage of the prompt while a
//! passage shows those very numbers as a reference, the marker is taken for a copied reference
//! ([`CitationCheck::references`]), not for a citation.
//!
//! A number that names a passage and whose quotes are found is *valid*; it is also
//! *supported* when the passage holds what the answer says next to it
//! ([`crate::support`]): "Everest [1]" citing a passage about France is valid, not supported.
//! [`NumberCheck::status`] names the first check that fails.

use crate::support::{self, PassageWords};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One citation marker in an answer: the numbers it names and where it is (byte range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitationMark {
    pub numbers: Vec<u32>,
    pub span: Range<usize>,
}

/// Why a citation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CitationFailure {
    /// The number names no passage of the prompt (which had `passages` of them).
    NotInPrompt { passages: u32 },
    /// The answer quotes text next to this citation that none of the passages it cites holds.
    QuoteNotFound { quote: String },
}

impl std::fmt::Display for CitationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CitationFailure::NotInPrompt { passages: 0 } => {
                write!(f, "the prompt had no passages")
            }
            CitationFailure::NotInPrompt { passages } => {
                write!(f, "the prompt had passages [1] to [{passages}] only")
            }
            CitationFailure::QuoteNotFound { quote } => {
                write!(f, "the quote {quote:?} is not in the cited passage")
            }
        }
    }
}

/// A quotation in the answer and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteCheck {
    pub quote: String,
    /// The citation numbers the quote is attributed to (empty: none next to it).
    pub cited: Vec<u32>,
    /// Every prompt passage that holds the quote.
    pub found_in: Vec<u32>,
    /// Found in a cited passage, or (when nothing is cited) in any passage.
    pub supported: bool,
}

/// The check of one cited number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberCheck {
    pub number: u32,
    /// Why the number is not a valid citation: not a passage of the prompt, or a quote next to
    /// it is not in the passage(s) cited.
    pub failure: Option<CitationFailure>,
    /// `None`: no quote next to it; else whether every quote next to it was found in a passage
    /// cited with it.
    pub quote_found: Option<bool>,
    /// The passage supports what the answer says next to every use of the number
    /// ([`crate::support`]); never for a number that names no passage.
    pub supported: bool,
    /// The text checked for support: the first claim the passage does not support, else the
    /// first claim.
    pub claim: String,
}

impl NumberCheck {
    /// The number names a passage of the prompt.
    pub fn in_prompt(&self) -> bool {
        !matches!(self.failure, Some(CitationFailure::NotInPrompt { .. }))
    }

    pub fn status(&self) -> CitationStatus {
        match (&self.failure, self.supported) {
            (Some(CitationFailure::NotInPrompt { .. }), _) => CitationStatus::NotInPrompt,
            (Some(CitationFailure::QuoteNotFound { .. }), _) => CitationStatus::QuoteNotFound,
            (None, false) => CitationStatus::Unsupported,
            (None, true) => CitationStatus::Ok,
        }
    }
}

/// What the checks of a cited number came to; the first check that fails decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CitationStatus {
    /// A passage of the prompt, every quote next to it found, and the passage supports what
    /// the answer says next to it.
    Ok,
    /// A passage of the prompt (and any quote found), but it does not support what the answer
    /// says next to the citation.
    Unsupported,
    /// A quote next to it is not in the passage(s) cited.
    QuoteNotFound,
    /// The number names no passage of the prompt.
    NotInPrompt,
}

impl CitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CitationStatus::Ok => "ok",
            CitationStatus::Unsupported => "unsupported",
            CitationStatus::QuoteNotFound => "quote not found",
            CitationStatus::NotInPrompt => "not in prompt",
        }
    }
}

impl std::fmt::Display for CitationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything [`check_citations`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitationCheck {
    /// The citation markers, copied references excluded.
    pub marks: Vec<CitationMark>,
    /// Markers that repeat a reference of the documents' own text (shown in the prompt as
    /// `(ref. ...)`) and name a number that is not a passage of the prompt: not citations.
    pub references: Vec<CitationMark>,
    /// Distinct cited numbers, in the order they first appear.
    pub numbers: Vec<NumberCheck>,
    pub quotes: Vec<QuoteCheck>,
}

/// Words a model may put before a number inside the brackets (`[doc 1]`).
const NUMBER_PREFIXES: &[&str] = &["document", "doc", "passage", "source"];

/// The most numbers a range (`[1-50]`) expands to.
const MAX_RANGE: u32 = 20;

/// How the prompt shows a bracketed reference of a document's own text: `[2, 7, 8]` becomes
/// `(ref. 2, 7, 8)`. A small model that copies it writes no marker of ours.
pub const REFERENCE_OPEN: &str = "(ref. ";
pub const REFERENCE_CLOSE: &str = ")";

/// The longest reference body looked for after [`REFERENCE_OPEN`], in characters.
const MAX_REFERENCE: usize = 200;

/// Rewrites every bracketed text of `text` that would read as a citation marker (`[9]`,
/// `[2, 7, 8]`, `[3-5]`, `[doc 1]`) as a reference, `(ref. 2, 7, 8)`. Idempotent.
pub fn neutralize_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut at, mut from) = (0, 0);
    while let Some(pos) = text[from..].find('[') {
        let start = from + pos;
        match parse_mark(&text[start..]) {
            Some((len, _)) => {
                out.push_str(&text[at..start]);
                out.push_str(REFERENCE_OPEN);
                out.push_str(text[start + 1..start + len - 1].trim());
                out.push_str(REFERENCE_CLOSE);
                at = start + len;
                from = at;
            }
            None => from = start + 1,
        }
    }
    out.push_str(&text[at..]);
    out
}

/// The references [`neutralize_references`] wrote into `text`: where each is and the numbers
/// it names, sorted.
fn shown_references(text: &str) -> Vec<(Range<usize>, Vec<u32>)> {
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(REFERENCE_OPEN) {
        let start = from + pos;
        let inner = start + REFERENCE_OPEN.len();
        from = inner;
        let Some((close, _)) = text[inner..]
            .char_indices()
            .take(MAX_REFERENCE)
            .find(|&(_, c)| c == ')')
        else {
            continue;
        };
        let body = format!("[{}]", &text[inner..inner + close]);
        if let Some((len, mut numbers)) = parse_mark(&body)
            && len == body.len()
        {
            numbers.sort_unstable();
            numbers.dedup();
            refs.push((start..inner + close + REFERENCE_CLOSE.len(), numbers));
            from = inner + close;
        }
    }
    refs
}

/// Finds citation markers outside quotations, in order.
pub fn parse_citations(answer: &str) -> Vec<CitationMark> {
    let quotes = find_quotes(answer);
    marks_outside(answer, &quotes)
}

fn marks_outside(answer: &str, quotes: &[Quote]) -> Vec<CitationMark> {
    let mut marks = Vec::new();
    let mut from = 0;
    while let Some(pos) = answer[from..].find('[') {
        let start = from + pos;
        match parse_mark(&answer[start..]) {
            Some((len, numbers)) if !quotes.iter().any(|q| q.outer.contains(&start)) => {
                marks.push(CitationMark {
                    numbers,
                    span: start..start + len,
                });
                from = start + len;
            }
            _ => from = start + 1,
        }
    }
    marks
}

/// Parses `[...]` at the start of `s`: its length and numbers.
fn parse_mark(s: &str) -> Option<(usize, Vec<u32>)> {
    let b = s.as_bytes();
    let mut i = 1;
    let mut numbers = Vec::new();
    loop {
        i = skip_spaces(b, i);
        i = skip_prefix(s, i);
        let (first, next) = parse_number(b, i)?;
        i = skip_spaces(b, next);
        let mut last = first;
        let rest = &s[i..];
        if let Some(after) = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix('\u{2013}'))
        {
            let j = skip_spaces(b, s.len() - after.len());
            let (to, next) = parse_number(b, j)?;
            last = to;
            i = skip_spaces(b, next);
        }
        let (lo, hi) = (first.min(last), first.max(last));
        numbers.extend((lo..=hi).take(MAX_RANGE as usize));
        match b.get(i) {
            Some(b',') | Some(b';') => i += 1,
            Some(b']') => return Some((i + 1, numbers)),
            _ => return None,
        }
    }
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

fn skip_prefix(s: &str, i: usize) -> usize {
    let rest = &s[i..];
    for p in NUMBER_PREFIXES {
        if rest.len() >= p.len()
            && rest.is_char_boundary(p.len())
            && rest[..p.len()].eq_ignore_ascii_case(p)
        {
            let after = &rest[p.len()..];
            let after = after.strip_prefix('.').unwrap_or(after);
            return skip_spaces(s.as_bytes(), s.len() - after.len());
        }
    }
    i
}

/// Digits at `i`: the number (saturating) and the index after it.
fn parse_number(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let mut j = i;
    let mut n: u32 = 0;
    while let Some(d) = b.get(j).filter(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u32::from(d - b'0'));
        j += 1;
    }
    (j > i).then_some((n, j))
}

/// A quotation: the text between the quote marks and the range including them.
#[derive(Debug, Clone)]
struct Quote {
    inner: Range<usize>,
    outer: Range<usize>,
}

/// Straight (`"..."`) and curly (`“...”`) quotations; an unclosed one is ignored.
fn find_quotes(text: &str) -> Vec<Quote> {
    let mut quotes = Vec::new();
    let mut at = 0;
    while let Some((rel, c)) = text[at..]
        .char_indices()
        .find(|(_, c)| *c == '"' || *c == '\u{201C}')
    {
        let start = at + rel;
        let closers: &[char] = if c == '"' {
            &['"', '\u{201D}']
        } else {
            &['\u{201D}', '"']
        };
        let inner_start = start + c.len_utf8();
        let Some(len) = text[inner_start..].find(closers) else {
            break;
        };
        let inner_end = inner_start + len;
        let end = inner_end + text[inner_end..].chars().next().map_or(1, char::len_utf8);
        if !text[inner_start..inner_end].trim().is_empty() {
            quotes.push(Quote {
                inner: inner_start..inner_end,
                outer: start..end,
            });
        }
        at = end;
    }
    quotes
}

/// Checks the citations and quotations of `answer` against the passages that were in the
/// prompt; `passages[0]` is passage `[1]`.
pub fn check_citations(answer: &str, passages: &[&str]) -> CitationCheck {
    let quotes = find_quotes(answer);
    let count = passages.len() as u32;
    let shown: Vec<Vec<u32>> = passages
        .iter()
        .flat_map(|p| shown_references(p))
        .map(|(_, numbers)| numbers)
        .collect();
    let (references, marks): (Vec<CitationMark>, Vec<CitationMark>) =
        marks_outside(answer, &quotes)
            .into_iter()
            .partition(|m| is_copied_reference(m, count, &shown));
    let mut numbers: Vec<NumberCheck> = Vec::new();
    for n in marks.iter().flat_map(|m| &m.numbers) {
        if !numbers.iter().any(|c| c.number == *n) {
            let failure =
                (*n == 0 || *n > count).then_some(CitationFailure::NotInPrompt { passages: count });
            numbers.push(NumberCheck {
                number: *n,
                supported: failure.is_none(),
                failure,
                quote_found: None,
                claim: String::new(),
            });
        }
    }
    let normalised: Vec<String> = passages.iter().map(|p| match_form(p)).collect();
    let runs = runs(answer, &marks);
    let mut checks = Vec::new();
    for (qi, q) in quotes.iter().enumerate() {
        let text = &answer[q.inner.clone()];
        let Some(pieces) = quote_pieces(text) else {
            continue;
        };
        let found_in: Vec<u32> = normalised
            .iter()
            .enumerate()
            .filter(|(_, p)| occurs_in_order(p, &pieces))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        let cited = attributed_run(&quotes, qi, &runs)
            .map(|r| r.numbers.clone())
            .unwrap_or_default();
        let supported = if cited.is_empty() {
            !found_in.is_empty()
        } else {
            cited.iter().any(|n| found_in.contains(n))
        };
        for n in &cited {
            let Some(c) = numbers.iter_mut().find(|c| c.number == *n) else {
                continue;
            };
            c.quote_found = Some(c.quote_found.unwrap_or(true) && supported);
            if !supported && c.failure.is_none() {
                c.failure = Some(CitationFailure::QuoteNotFound {
                    quote: text.trim().to_string(),
                });
            }
        }
        checks.push(QuoteCheck {
            quote: text.trim().to_string(),
            cited,
            found_in,
            supported,
        });
    }
    check_support(answer, passages, &runs, &mut numbers);
    CitationCheck {
        marks,
        references,
        numbers,
        quotes: checks,
    }
}

/// Checks every use of a number against its passage ([`crate::support`]).
fn check_support(answer: &str, passages: &[&str], runs: &[Run], numbers: &mut [NumberCheck]) {
    let words: Vec<PassageWords> = passages.iter().map(|p| PassageWords::of(p)).collect();
    let mut seen = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let from = if ri == 0 { 0 } else { runs[ri - 1].span.end };
        let to = runs.get(ri + 1).map_or(answer.len(), |r| r.span.start);
        let claim = support::claim(answer, run.span.clone(), from, to);
        for n in &run.numbers {
            let Some(c) = numbers.iter_mut().find(|c| c.number == *n) else {
                continue;
            };
            let ok = c.in_prompt() && words[*n as usize - 1].supports(claim);
            let first = !seen.contains(n);
            if first {
                seen.push(*n);
            }
            if first || (c.supported && !ok) {
                c.claim = claim.to_string();
            }
            c.supported &= ok;
        }
    }
}

/// A marker that names a number outside the prompt's passages and repeats a reference that a
/// passage shows (the same numbers).
fn is_copied_reference(mark: &CitationMark, passages: u32, shown: &[Vec<u32>]) -> bool {
    if mark.numbers.iter().all(|n| (1..=passages).contains(n)) {
        return false;
    }
    let mut numbers = mark.numbers.clone();
    numbers.sort_unstable();
    numbers.dedup();
    shown.contains(&numbers)
}

/// Adjacent citation marks (only spaces, commas or semicolons between them) as one group.
#[derive(Debug)]
struct Run {
    numbers: Vec<u32>,
    span: Range<usize>,
}

fn runs(answer: &str, marks: &[CitationMark]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for m in marks {
        if let Some(last) = runs.last_mut()
            && answer[last.span.end..m.span.start]
                .chars()
                .all(|c| c.is_whitespace() || c == ',' || c == ';')
        {
            last.span.end = m.span.end;
            for n in &m.numbers {
                if !last.numbers.contains(n) {
                    last.numbers.push(*n);
                }
            }
            continue;
        }
        runs.push(Run {
            numbers: m.numbers.clone(),
            span: m.span.clone(),
        });
    }
    runs
}

/// The run right after quote `qi` (before the next quote), else the one right before it
/// (after the previous quote).
fn attributed_run<'r>(quotes: &[Quote], qi: usize, runs: &'r [Run]) -> Option<&'r Run> {
    let q = &quotes[qi];
    let next_quote = quotes.get(qi + 1).map_or(usize::MAX, |n| n.outer.start);
    let prev_quote = if qi == 0 { 0 } else { quotes[qi - 1].outer.end };
    runs.iter()
        .find(|r| r.span.start >= q.outer.end && r.span.start < next_quote)
        .or_else(|| {
            runs.iter()
                .rev()
                .find(|r| r.span.end <= q.outer.start && r.span.start >= prev_quote)
        })
}

/// The normalised pieces of a quote between ellipses; `None` when nothing is left.
fn quote_pieces(quote: &str) -> Option<Vec<String>> {
    let pieces: Vec<String> = quote
        .split("...")
        .flat_map(|p| p.split('\u{2026}'))
        .map(|p| {
            let p = p.trim_matches(|c: char| c.is_whitespace() || ".,;:!?".contains(c));
            match_form(p)
        })
        .filter(|p| !p.is_empty())
        .collect();
    (!pieces.is_empty()).then_some(pieces)
}

fn occurs_in_order(haystack: &str, pieces: &[String]) -> bool {
    let mut from = 0;
    for p in pieces {
        match haystack[from..].find(p.as_str()) {
            Some(i) => from += i + p.len(),
            None => return false,
        }
    }
    true
}

/// The form quotes and passages are compared in: lowercase, plain quotes and apostrophes,
/// whitespace collapsed.
pub fn match_form(s: &str) -> String {
    let mapped: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            c => c,
        })
        .collect();
    crate::sanitize::collapse_whitespace(&mapped)
}

/// The answer without its citation markers and without references copied in the form the
/// prompt shows them (`(ref. 2)`), spaces tidied (what QA metrics score).
pub fn strip_citations(answer: &str) -> String {
    let mut spans: Vec<Range<usize>> = parse_citations(answer)
        .into_iter()
        .map(|m| m.span)
        .chain(shown_references(answer).into_iter().map(|(span, _)| span))
        .collect();
    spans.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(answer.len());
    let mut at = 0;
    for span in spans {
        if span.start < at {
            continue;
        }
        out.push_str(&answer[at..span.start]);
        out.push(' ');
        at = span.end;
    }
    out.push_str(&answer[at..]);
    let collapsed = crate::sanitize::collapse_whitespace(&out);
    let mut tidy = String::with_capacity(collapsed.len());
    for c in collapsed.chars() {
        if ".,;:!?)".contains(c) && tidy.ends_with(' ') {
            tidy.pop();
        }
        tidy.push(c);
    }
    tidy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(s: &str) -> Vec<Vec<u32>> {
        parse_citations(s).into_iter().map(|m| m.numbers).collect()
    }

    #[test]
    fn marker_forms() {
        assert_eq!(numbers("Paris [1]"), vec![vec![1]]);
        assert_eq!(numbers("Paris [1][2]"), vec![vec![1], vec![2]]);
        assert_eq!(numbers("Paris [1, 2]"), vec![vec![1, 2]]);
        assert_eq!(numbers("Paris [1;3 ]"), vec![vec![1, 3]]);
        assert_eq!(numbers("Paris [2-4]"), vec![vec![2, 3, 4]]);
        assert_eq!(
            numbers("Paris [Document 2], [doc. 3]"),
            vec![vec![2], vec![3]]
        );
        assert_eq!(numbers("[99999999999]"), vec![vec![u32::MAX]]);
    }

    #[test]
    fn non_markers_are_ignored() {
        assert!(numbers("a [b] [] [1 2] [1,] [-1] [ x").is_empty());
        assert!(numbers("he said \"see [1]\"").is_empty());
    }

    #[test]
    fn stripping_markers_tidies_spaces() {
        assert_eq!(strip_citations("Denver Broncos [1]."), "Denver Broncos.");
        assert_eq!(
            strip_citations("[2] In 1912 [1, 3], he left"),
            "In 1912, he left"
        );
        assert_eq!(strip_citations("no markers"), "no markers");
    }

    #[test]
    fn bracketed_numbers_of_documents_become_references() {
        assert_eq!(
            neutralize_references("shown before [2, 7, 8], and in 1998.[9] See [doc 3]."),
            "shown before (ref. 2, 7, 8), and in 1998.(ref. 9) See (ref. doc 3)."
        );
        let s = "a[b] [] [1 2] [x [4-6] [";
        assert_eq!(neutralize_references(s), "a[b] [] [1 2] [x (ref. 4-6) [");
        let once = neutralize_references("[1][2] [3; 4]");
        assert_eq!(once, "(ref. 1)(ref. 2) (ref. 3; 4)");
        assert_eq!(neutralize_references(&once), once);
        assert!(parse_citations(&once).is_empty());
    }

    #[test]
    fn references_are_read_back_with_their_numbers() {
        let refs = shown_references("x (ref. 8, 2, 7) y (ref. 4-5) (ref. z) (ref. 1");
        let numbers: Vec<_> = refs.iter().map(|(_, n)| n.clone()).collect();
        assert_eq!(numbers, vec![vec![2, 7, 8], vec![4, 5]]);
        assert_eq!(
            strip_citations("the Broncos (ref. 2, 7) [1]."),
            "the Broncos."
        );
    }

    #[test]
    fn quotes_straight_and_curly() {
        let q: Vec<String> = find_quotes("a \"one\" b “two” c \"open")
            .iter()
            .map(|q| "a \"one\" b “two” c \"open"[q.inner.clone()].to_string())
            .collect();
        assert_eq!(q, vec!["one", "two"]);
    }
}
