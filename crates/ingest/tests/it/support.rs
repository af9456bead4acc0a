use ragtune_core::TokenCounter;
use ragtune_ingest::{ExtractedDocument, LoadOptions, Loaded};
use std::path::{Path, PathBuf};

/// Words and punctuation marks, one token each: deterministic, and not additive across a
/// join (so the chunker's re-measuring is exercised).
pub struct WordPunct;

impl TokenCounter for WordPunct {
    fn count_tokens(&self, text: &str) -> usize {
        let mut n = 0;
        let mut in_word = false;
        for c in text.chars() {
            if c.is_alphanumeric() {
                n += usize::from(!in_word);
                in_word = true;
            } else {
                in_word = false;
                n += usize::from(!c.is_whitespace());
            }
        }
        n
    }
}

pub fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/docs-corpus")
        .join(rel)
}

pub fn load_one(rel: &str) -> (ExtractedDocument, Loaded) {
    let path = corpus(rel);
    let mut loaded =
        ragtune_ingest::load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.documents.len(), 1);
    (loaded.documents.remove(0), loaded)
}

/// Text of each block of a kind.
pub fn texts(
    doc: &ExtractedDocument,
    pred: impl Fn(&ragtune_core::BlockKind) -> bool,
) -> Vec<&str> {
    doc.blocks
        .iter()
        .filter(|b| pred(&b.kind))
        .map(|b| &doc.text[b.start..b.end])
        .collect()
}

pub fn headings(doc: &ExtractedDocument) -> Vec<&str> {
    texts(doc, |k| {
        matches!(k, ragtune_core::BlockKind::Heading { .. })
    })
}

/// Blocks are in order, inside the text, on char boundaries and never overlap.
pub fn assert_blocks_sane(doc: &ExtractedDocument) {
    let mut pos = 0;
    for b in &doc.blocks {
        assert!(
            b.start >= pos && b.start < b.end && b.end <= doc.text.len(),
            "{b:?} in {}",
            doc.source
        );
        assert!(doc.text.is_char_boundary(b.start) && doc.text.is_char_boundary(b.end));
        pos = b.end;
    }
}
