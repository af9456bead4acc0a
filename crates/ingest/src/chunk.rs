//! Structure-aware chunking. Blocks stay whole when they fit; a block over the budget is
//! cut at sentence, then word, then character boundaries. Chunks never span a heading of
//! level <= `section_level` (a heading is kept with the text under it), consecutive chunks
//! of one section overlap by at most `overlap_tokens`, and every count comes from the
//! caller's [`TokenCounter`].
//!
//! Spans: `chunk.text == doc.text[chunk.start..chunk.end]` exactly. Chunks start and end on
//! non-whitespace, so only whitespace between chunks is left out.

use crate::load::Segment;
use ragtune_core::{BlockKind, Chunk, ExtractedDocument, TokenCounter};

/// How documents are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Most tokens in a chunk.
    pub max_tokens: usize,
    /// Most tokens a chunk repeats from the end of the previous chunk of the same section
    /// (clamped to half of `max_tokens`).
    pub overlap_tokens: usize,
    /// Headings of this level and above (1 = top) start a new chunk.
    pub section_level: u8,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 256,
            overlap_tokens: 32,
            section_level: 3,
        }
    }
}

/// The smallest pieces a chunk is built from: a block, or a part of an oversized block.
#[derive(Debug, Clone)]
struct Atom {
    start: usize,
    end: usize,
    tokens: usize,
    page: Option<u32>,
    heading: bool,
    /// A heading at or above `section_level`: no chunk spans it.
    section: bool,
    /// Index into the heading paths.
    path: usize,
}

/// Cuts `doc` into chunks; see the module docs for the rules.
pub fn chunk(
    doc: &ExtractedDocument,
    counter: &dyn TokenCounter,
    opts: &ChunkOptions,
) -> Vec<Chunk> {
    let max = opts.max_tokens.max(1);
    let overlap = opts.overlap_tokens.min(max / 2);
    let text = doc.text.as_str();
    let count = |s: usize, e: usize| counter.count_tokens(&text[s..e]);
    let (atoms, paths) = atoms(doc, opts, max, &count);
    let mut chunks = Vec::new();
    let (mut first, mut carry): (usize, Option<usize>) = (0, None);
    while first < atoms.len() {
        let mut sum = carry.map_or(0, |c| count(c, atoms[first].start.max(c)));
        // Carried-over text counts as body: it must not run into the next section.
        let (mut j, mut has_body) = (first, carry.is_some());
        while j < atoms.len() {
            let a = &atoms[j];
            if j > first && ((a.section && has_body) || sum + a.tokens > max) {
                break;
            }
            sum += a.tokens;
            has_body |= !a.heading;
            j += 1;
        }
        // A heading belongs with the text below it, not at the end of a chunk.
        if j < atoms.len() && !atoms[j].section {
            let body_before = |k: usize| atoms[first..k].iter().any(|a| !a.heading);
            while j - 1 > first && atoms[j - 1].heading && body_before(j - 1) {
                j -= 1;
            }
        }
        // Counts are not additive in general: measure, and shed atoms until it fits.
        let (start, end, tokens) = loop {
            let start = carry.unwrap_or(atoms[first].start);
            let end = atoms[j - 1].end;
            let n = count(start, end);
            if n <= max {
                break (start, end, n);
            } else if j - 1 > first {
                j -= 1;
            } else if carry.is_some() {
                carry = None;
            } else {
                break (start, end, n);
            }
        };
        let path_of = atoms[first..j]
            .iter()
            .find(|a| !a.heading)
            .unwrap_or(&atoms[j - 1])
            .path;
        let page_at = atoms[..atoms.partition_point(|a| a.start <= start)]
            .last()
            .and_then(|a| a.page);
        chunks.push(Chunk {
            source: doc.source.clone(),
            ordinal: chunks.len() as u32,
            text: text[start..end].to_owned(),
            start,
            end,
            page: page_at.or(atoms[first].page),
            heading_path: paths[path_of].clone(),
            tokens: tokens as u32,
        });
        carry = match atoms.get(j) {
            Some(next) if overlap > 0 && !next.section => {
                overlap_start(text, start, end, overlap, counter)
            }
            _ => None,
        };
        first = j;
    }
    chunks
}

/// Where the overlap carried into the next chunk starts: the earliest word start after
/// `start` whose suffix up to `end` fits in `budget` tokens.
fn overlap_start(
    text: &str,
    start: usize,
    end: usize,
    budget: usize,
    counter: &dyn TokenCounter,
) -> Option<usize> {
    let mut best = None;
    let slice = &text[start..end];
    let mut prev_ws = false;
    for (i, c) in slice.char_indices().rev() {
        let ws = c.is_whitespace();
        // Moving backwards: a word starts at i+len when c is whitespace and the next is not.
        if ws && !prev_ws && i + c.len_utf8() < slice.len() {
            let pos = start + i + c.len_utf8();
            if counter.count_tokens(&text[pos..end]) > budget {
                break;
            }
            best = Some(pos);
        }
        prev_ws = ws;
    }
    best
}

/// Blocks (and any non-blank text between them) as atoms, oversized ones split, with the
/// heading path in force at each.
fn atoms(
    doc: &ExtractedDocument,
    opts: &ChunkOptions,
    max: usize,
    count: &dyn Fn(usize, usize) -> usize,
) -> (Vec<Atom>, Vec<Vec<String>>) {
    let text = doc.text.as_str();
    let mut paths: Vec<Vec<String>> = vec![Vec::new()];
    let mut stack: Vec<(u8, String)> = Vec::new();
    let mut atoms = Vec::new();
    for (start, end, kind, page) in units(doc) {
        let level = match kind {
            BlockKind::Heading { level } => Some(level),
            _ => None,
        };
        if let Some(level) = level {
            stack.retain(|(l, _)| *l < level);
            stack.push((
                level,
                crate::builder::collapse_ws(&text[start..end]).replace('\n', " "),
            ));
            paths.push(stack.iter().map(|(_, t)| t.clone()).collect());
        }
        let path = paths.len() - 1;
        let atom = |start, end, tokens| Atom {
            start,
            end,
            tokens,
            page,
            heading: level.is_some(),
            section: level.is_some_and(|l| l <= opts.section_level),
            path,
        };
        let tokens = count(start, end);
        if tokens <= max {
            atoms.push(atom(start, end, tokens));
        } else {
            let mut pieces = Vec::new();
            split(text, start, end, max, count, Level::Sentence, &mut pieces);
            for (i, (s, e, t)) in pieces.into_iter().enumerate() {
                let mut a = atom(s, e, t);
                a.section &= i == 0;
                atoms.push(a);
            }
        }
    }
    (atoms, paths)
}

/// Block ranges trimmed to non-whitespace, in order and without overlap, plus paragraphs
/// for any non-blank text no block covers (so every character ends up in a chunk).
fn units(doc: &ExtractedDocument) -> Vec<(usize, usize, BlockKind, Option<u32>)> {
    let text = doc.text.as_str();
    let mut blocks: Vec<_> = doc.blocks.iter().collect();
    blocks.sort_by_key(|b| b.start);
    let mut out = Vec::new();
    let (mut pos, mut page) = (0usize, None);
    let gap = |from: usize, to: usize, page, out: &mut Vec<_>| {
        if from < to {
            for b in crate::builder::paragraph_blocks(&text[from..to], from, page) {
                out.push((b.start, b.end, BlockKind::Paragraph, page));
            }
        }
    };
    for b in blocks {
        let (s, e) = (
            floor(text, b.start.max(pos)),
            floor(text, b.end.min(text.len())),
        );
        if s >= e {
            continue;
        }
        gap(pos, s, page, &mut out);
        let slice = &text[s..e];
        let ts = s + (slice.len() - slice.trim_start().len());
        let te = s + slice.trim_end().len();
        if ts < te {
            out.push((ts, te, b.kind.clone(), b.page));
        }
        pos = e;
        page = b.page;
    }
    gap(pos, text.len(), page, &mut out);
    out
}

fn floor(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Clone, Copy)]
enum Level {
    Sentence,
    Word,
    Char,
}

/// Splits `[start, end)` into pieces of at most `max` tokens each, at the coarsest
/// boundary that works.
fn split(
    text: &str,
    start: usize,
    end: usize,
    max: usize,
    count: &dyn Fn(usize, usize) -> usize,
    level: Level,
    out: &mut Vec<(usize, usize, usize)>,
) {
    let parts = match level {
        Level::Sentence => sentences(text, start, end),
        Level::Word => words(text, start, end),
        Level::Char => return split_chars(text, start, end, max, count, out),
    };
    let finer = match level {
        Level::Sentence => Level::Word,
        _ => Level::Char,
    };
    if parts.len() <= 1 {
        return split(text, start, end, max, count, finer, out);
    }
    for (s, e) in parts {
        let n = count(s, e);
        if n <= max {
            out.push((s, e, n));
        } else {
            split(text, s, e, max, count, finer, out);
        }
    }
}

/// The byte spans of `text`'s sentences, as the chunker cuts them: a sentence ends after `.`,
/// `!` or `?` (and closing quotes or brackets) followed by whitespace, or at a line break.
pub fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    sentences(text, 0, text.len())
}

/// Sentence spans within `[start, end)`.
fn sentences(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let slice = &text[start..end];
    let mut out = Vec::new();
    let (mut s, mut last_end, mut after_stop) = (None::<usize>, 0usize, false);
    for (i, c) in slice.char_indices() {
        if c.is_whitespace() {
            if let Some(b) = s.filter(|_| after_stop || c == '\n') {
                out.push((start + b, start + last_end));
                s = None;
            }
            after_stop = false;
            continue;
        }
        s.get_or_insert(i);
        last_end = i + c.len_utf8();
        after_stop = matches!(c, '.' | '!' | '?')
            || (after_stop && matches!(c, '"' | '\'' | ')' | ']' | '’' | '”'));
    }
    if let Some(b) = s {
        out.push((start + b, start + last_end));
    }
    out
}

fn words(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let slice = &text[start..end];
    let mut out = Vec::new();
    let mut s = None;
    for (i, c) in slice.char_indices() {
        match (c.is_whitespace(), s) {
            (true, Some(b)) => {
                out.push((start + b, start + i));
                s = None;
            }
            (false, None) => s = Some(i),
            _ => {}
        }
    }
    if let Some(b) = s {
        out.push((start + b, end));
    }
    out
}

/// Longest prefixes that fit, found by galloping then binary search over char
/// boundaries, so a huge unbroken string costs O(log n) counts per piece. Every piece
/// holds at least one char, so the loop ends whatever the counter says.
fn split_chars(
    text: &str,
    mut start: usize,
    end: usize,
    max: usize,
    count: &dyn Fn(usize, usize) -> usize,
    out: &mut Vec<(usize, usize, usize)>,
) {
    let ceil = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    while start < end {
        let fits = |b: usize| count(start, b) <= max;
        // `lo` fits (or is the first char, which always goes, even if a counter rates it
        // over `max`); `hi` is `end` or a boundary known not to fit.
        let (mut lo, mut hi) = (ceil(start + 1), end);
        let mut step = max.max(16);
        while lo < hi {
            let cand = ceil(start.saturating_add(step).min(end));
            if cand <= lo {
                step = step.saturating_mul(2);
            } else if fits(cand) {
                lo = cand;
                step = step.saturating_mul(2);
            } else {
                hi = cand;
                break;
            }
        }
        // Bisect strictly between `lo` and `hi`; stop when no boundary lies there.
        while lo < hi {
            let mid = ceil(lo + (hi - lo) / 2);
            let mid = if mid == lo { ceil(lo + 1) } else { mid };
            if mid >= hi {
                break;
            }
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        out.push((start, lo, count(start, lo)));
        start = lo;
    }
}

/// Chunks streamed segments as they come: spans are shifted by the segment offset and
/// ordinals continue across the segments of one document, so both match the whole
/// document. Overlap does not cross segment boundaries (segments end at paragraph
/// breaks where possible).
pub struct Chunker<'c> {
    counter: &'c dyn TokenCounter,
    opts: ChunkOptions,
    source: Option<String>,
    next_ordinal: u32,
}

impl<'c> Chunker<'c> {
    pub fn new(counter: &'c dyn TokenCounter, opts: ChunkOptions) -> Self {
        Chunker {
            counter,
            opts,
            source: None,
            next_ordinal: 0,
        }
    }

    /// Chunks of one segment, positioned in its whole document.
    pub fn push(&mut self, segment: &Segment) -> Vec<Chunk> {
        let doc = &segment.document;
        let continues = segment.offset > 0 && self.source.as_deref() == Some(doc.source.as_str());
        if !continues {
            self.source = Some(doc.source.clone());
            self.next_ordinal = 0;
        }
        let mut chunks = chunk(doc, self.counter, &self.opts);
        for c in &mut chunks {
            c.start += segment.offset;
            c.end += segment.offset;
            c.ordinal += self.next_ordinal;
        }
        self.next_ordinal += chunks.len() as u32;
        chunks
    }
}
