//! Assembles an [`ExtractedDocument`]: blocks appended in reading order, separated by a
//! blank line (a single newline between rows of the same table).
//!
//! Every loader's text comes through here: [`DocBuilder`], [`cell_text`] (CSV) or
//! [`plain_text`] (streamed plain text, JSON fields). Each drops invisible characters
//! ([`is_invisible`]) before any span is measured, so spans point into the cleaned text.

use ragtune_core::{Block, BlockKind, ExtractedDocument, Format, Metadata};
use std::borrow::Cow;

#[derive(Debug, Default)]
pub(crate) struct DocBuilder {
    text: String,
    blocks: Vec<Block>,
    /// Page (or slide, sheet) that pushed blocks are on.
    pub page: Option<u32>,
    pub metadata: Metadata,
}

impl DocBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a block; whitespace runs collapse to one space (newlines kept for code and
    /// explicit line breaks), and an empty block is dropped.
    pub fn push(&mut self, kind: BlockKind, raw: &str) {
        let text = if kind == BlockKind::Code {
            trim_lines_end(&strip_invisible(raw))
        } else {
            collapse_ws(raw)
        };
        self.push_verbatim(kind, &text);
    }

    /// Appends a block as given (invisible characters dropped, trimmed).
    pub fn push_verbatim(&mut self, kind: BlockKind, text: &str) {
        let text = strip_invisible(text);
        let text = text.trim_matches(|c: char| c.is_whitespace());
        if text.is_empty() {
            return;
        }
        if let Some(last) = self.blocks.last() {
            let rows = last.kind == BlockKind::Table && kind == BlockKind::Table;
            self.text.push_str(if rows { "\n" } else { "\n\n" });
        }
        let start = self.text.len();
        self.text.push_str(text);
        self.blocks.push(Block {
            kind,
            start,
            end: self.text.len(),
            page: self.page,
        });
    }

    /// Appends a table row; cells are joined with ` | `.
    pub fn push_row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let cells: Vec<String> = cells.iter().map(|c| cell_text(c.as_ref())).collect();
        let last = cells.iter().rposition(|c| !c.is_empty());
        if let Some(last) = last {
            self.push_verbatim(BlockKind::Table, &cells[..=last].join(" | "));
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    #[cfg(test)]
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    pub fn finish(mut self, source: String, format: Format) -> ExtractedDocument {
        strip_invisible_metadata(&mut self.metadata);
        ExtractedDocument {
            source,
            format,
            text: self.text,
            blocks: self.blocks,
            metadata: self.metadata,
        }
    }
}

/// Characters a reader never sees but a tokenizer, a model and a string filter do: zero
/// width space, non-joiner and joiner, direction marks, embeddings, overrides and
/// isolates (and the Arabic letter mark), word joiner and invisible operators, the byte order
/// mark (zero width no-break space), the soft hyphen, and the Unicode tag characters (an
/// invisible copy of ASCII, a known channel for instructions a reader cannot see). Hidden in
/// a word ("P\u{200b}WNED") they get an instruction past a filter, and they split words for
/// search. Dropping the joiners costs emoji ZWJ sequences and some Persian and Indic
/// spellings their joins; the letters stay.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{061C}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// `s` without [invisible](is_invisible) characters; borrowed when it has none.
pub(crate) fn strip_invisible(s: &str) -> Cow<'_, str> {
    match s.find(is_invisible) {
        None => Cow::Borrowed(s),
        Some(first) => {
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..first]);
            out.extend(s[first..].chars().filter(|&c| !is_invisible(c)));
            Cow::Owned(out)
        }
    }
}

pub(crate) fn strip_invisible_metadata(metadata: &mut Metadata) {
    for v in metadata.values_mut() {
        if let Cow::Owned(clean) = strip_invisible(v) {
            *v = clean;
        }
    }
}

/// Text taken as it is (a streamed text segment, a JSON field): invisible characters
/// dropped, with one paragraph block per run of non-blank lines.
pub(crate) fn plain_text(text: String) -> (String, Vec<Block>) {
    let text = match strip_invisible(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    };
    let blocks = paragraph_blocks(&text, 0, None);
    (text, blocks)
}

/// Collapses whitespace runs to one space, but keeps line breaks as `\n` (one per run), so
/// explicit breaks (`<br>`, soft line breaks in poems and addresses) survive. Invisible
/// characters are dropped.
pub(crate) fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Option<char> = None;
    for c in s.chars().filter(|&c| !is_invisible(c)) {
        if c.is_whitespace() {
            if c == '\n' || pending.is_none() {
                pending = Some(if c == '\n' { '\n' } else { ' ' });
            }
        } else {
            if let Some(p) = pending.take()
                && !out.is_empty()
            {
                out.push(p);
            }
            out.push(c);
        }
    }
    out
}

/// A table cell on one line.
pub(crate) fn cell_text(s: &str) -> String {
    collapse_ws(s).replace('\n', " ")
}

fn trim_lines_end(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    lines.join("\n")
}

/// Paragraph blocks of plain text: maximal runs of non-blank lines, trimmed, with byte
/// ranges relative to `text` shifted by `base`.
pub(crate) fn paragraph_blocks(text: &str, base: usize, page: Option<u32>) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if let Some((s, e)) = current.take() {
                blocks.push(paragraph(s + base, e + base, page));
            }
        } else {
            let lead = line.len() - line.trim_start().len();
            let end = pos + lead + trimmed.len();
            current = Some((current.map_or(pos + lead, |(s, _)| s), end));
        }
        pos += line.len();
    }
    if let Some((s, e)) = current {
        blocks.push(paragraph(s + base, e + base, page));
    }
    blocks
}

fn paragraph(start: usize, end: usize, page: Option<u32>) -> Block {
    Block {
        kind: BlockKind::Paragraph,
        start,
        end,
        page,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_keeps_one_newline_per_break() {
        assert_eq!(collapse_ws("  a \t b\n\n  c  "), "a b\nc");
        assert_eq!(collapse_ws(" \n "), "");
    }

    #[test]
    fn rows_are_joined_by_single_newlines() {
        let mut b = DocBuilder::new();
        b.push(BlockKind::Heading { level: 1 }, " Title ");
        b.push_row(&["a", "b", ""]);
        b.push_row(&["", ""]);
        b.push_row(&["c", " d "]);
        b.push(BlockKind::Paragraph, "end");
        assert_eq!(b.text(), "Title\n\na | b\nc | d\n\nend");
        let t = b.text().to_owned();
        let spans: Vec<&str> = b.blocks().iter().map(|x| &t[x.start..x.end]).collect();
        assert_eq!(spans, ["Title", "a | b", "c | d", "end"]);
    }

    #[test]
    fn invisible_characters_are_dropped_before_spans_are_measured() {
        let mut b = DocBuilder::new();
        b.push(
            BlockKind::Heading { level: 1 },
            "\u{feff}T\u{200b}itle\u{2060}",
        );
        b.push(BlockKind::Paragraph, "\u{200b}"); // nothing visible: no block
        b.push(BlockKind::Code, "x = 1 \u{200d}\nco\u{00ad}de");
        b.push_row(&["a\u{202e}b", "\u{2066}c\u{2069}"]);
        b.push_verbatim(
            BlockKind::Paragraph,
            "P\u{200b}W\u{200c}N\u{200e}E\u{200f}D\u{e0050}\u{e0057}",
        );
        b.metadata.insert("title".into(), "T\u{00ad}itle".into());
        assert_eq!(b.text(), "Title\n\nx = 1\ncode\n\nab | c\n\nPWNED");
        let doc = b.finish("s".into(), Format::Html);
        assert_eq!(doc.metadata["title"], "Title");
        let spans: Vec<&str> = doc
            .blocks
            .iter()
            .map(|x| &doc.text[x.start..x.end])
            .collect();
        assert_eq!(spans, ["Title", "x = 1\ncode", "ab | c", "PWNED"]);
        let (text, blocks) = plain_text("a\u{200b}b\n\n\u{feff}c\u{00ad}".to_owned());
        assert_eq!(text, "ab\n\nc");
        assert_eq!((blocks[1].start, blocks[1].end), (4, 5));
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let text = "  one\ntwo  \n \n\nthree\n";
        let spans: Vec<&str> = paragraph_blocks(text, 0, None)
            .iter()
            .map(|b| &text[b.start..b.end])
            .collect();
        assert_eq!(spans, ["one\ntwo", "three"]);
    }
}
