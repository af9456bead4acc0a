//! Chunking invariants, by property tests over generated documents.

use crate::support::WordPunct;
use proptest::prelude::*;
use ragtune_core::{Block, BlockKind, ExtractedDocument, Format, TokenCounter};
use ragtune_ingest::{ChunkOptions, chunk};

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z]{1,8}",
        1 => "[a-z]{1,3}[.,!?]",
        1 => "(é|日本|ß|🙂){1,3}",
        1 => "[a-z]{30,60}", // one long unbroken "word": split at characters
    ]
}

fn sentence() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..25).prop_map(|w| w.join(" "))
}

#[derive(Debug, Clone)]
enum Gen {
    Heading(u8, String),
    Para(String),
    Item(String),
    Gap(String),
}

fn block() -> impl Strategy<Value = Gen> {
    prop_oneof![
        1 => (1u8..5, sentence()).prop_map(|(l, s)| Gen::Heading(l, s)),
        4 => prop::collection::vec(sentence(), 1..6).prop_map(|s| Gen::Para(s.join(". "))),
        2 => sentence().prop_map(Gen::Item),
        1 => sentence().prop_map(Gen::Gap), // text no block covers
    ]
}

fn document() -> impl Strategy<Value = ExtractedDocument> {
    prop::collection::vec(block(), 0..30).prop_map(|gens| {
        let (mut text, mut blocks) = (String::new(), Vec::new());
        for (i, g) in gens.into_iter().enumerate() {
            let (kind, s) = match g {
                Gen::Heading(l, s) => (Some(BlockKind::Heading { level: l }), s),
                Gen::Para(s) => (Some(BlockKind::Paragraph), s),
                Gen::Item(s) => (Some(BlockKind::ListItem), s),
                Gen::Gap(s) => (None, s),
            };
            text.push_str(if i % 3 == 0 { "\n\n" } else { " \n \n" });
            let start = text.len();
            text.push_str(&s);
            if let Some(kind) = kind {
                blocks.push(Block {
                    kind,
                    start,
                    end: text.len(),
                    page: Some(i as u32 / 4 + 1),
                });
            }
        }
        ExtractedDocument {
            source: "gen".into(),
            format: Format::Text,
            text,
            blocks,
            metadata: Default::default(),
        }
    })
}

fn options() -> impl Strategy<Value = ChunkOptions> {
    (4usize..80, 0usize..30, 1u8..4).prop_map(|(max_tokens, overlap_tokens, section_level)| {
        ChunkOptions {
            max_tokens,
            overlap_tokens,
            section_level,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn spans_budgets_coverage_and_overlap(doc in document(), opts in options()) {
        let chunks = chunk(&doc, &WordPunct, &opts);
        let text = doc.text.as_str();
        let mut covered = vec![false; text.len()];
        for (i, c) in chunks.iter().enumerate() {
            prop_assert_eq!(c.ordinal as usize, i);
            prop_assert!(c.start < c.end && text.is_char_boundary(c.start) && text.is_char_boundary(c.end));
            prop_assert_eq!(&text[c.start..c.end], c.text.as_str());
            prop_assert_eq!(c.text.trim(), c.text.as_str(), "chunks start and end on non-whitespace");
            prop_assert_eq!(c.tokens as usize, WordPunct.count_tokens(&c.text));
            prop_assert!(c.tokens as usize <= opts.max_tokens, "chunk {} has {} tokens", i, c.tokens);
            covered[c.start..c.end].iter_mut().for_each(|x| *x = true);
            if i > 0 {
                let prev = &chunks[i - 1];
                prop_assert!(c.start > prev.start && c.end > prev.end, "in order");
                if c.start < prev.end {
                    let shared = WordPunct.count_tokens(&text[c.start..prev.end]);
                    prop_assert!(shared <= opts.overlap_tokens, "overlap of {} tokens", shared);
                }
            }
            // No chunk has body text before a section heading it contains: everything
            // before such a heading in the chunk is heading text.
            for h in &doc.blocks {
                if let BlockKind::Heading { level } = h.kind
                    && level <= opts.section_level && c.start < h.start && h.start < c.end
                {
                    let in_heading = |pos: usize| doc.blocks.iter().any(|b| {
                        matches!(b.kind, BlockKind::Heading { .. }) && b.start <= pos && pos < b.end
                    });
                    let body_before = text[c.start..h.start].char_indices()
                        .any(|(i, ch)| !ch.is_whitespace() && !in_heading(c.start + i));
                    prop_assert!(!body_before, "chunk {} spans section heading at {}", i, h.start);
                }
            }
        }
        for (pos, ch) in text.char_indices() {
            prop_assert!(ch.is_whitespace() || covered[pos], "char {:?} at {} not in any chunk", ch, pos);
        }
    }
}

#[test]
fn heading_paths_and_pages() {
    let text = "Guide\n\nIntro text.\n\nInstall\n\nStep one.\n\nDetails\n\nMore.";
    let spans = [
        (0, 5, 1),
        (7, 18, 0),
        (20, 27, 2),
        (29, 38, 0),
        (40, 47, 3),
        (49, 54, 0),
    ];
    let blocks = spans
        .iter()
        .enumerate()
        .map(|(i, &(start, end, level))| Block {
            kind: if level > 0 {
                BlockKind::Heading { level }
            } else {
                BlockKind::Paragraph
            },
            start,
            end,
            page: Some(i as u32 + 1),
        })
        .collect();
    let doc = ExtractedDocument {
        source: "s".into(),
        format: Format::Markdown,
        text: text.into(),
        blocks,
        metadata: Default::default(),
    };
    let opts = ChunkOptions {
        max_tokens: 50,
        overlap_tokens: 5,
        section_level: 2,
    };
    let chunks = chunk(&doc, &WordPunct, &opts);
    let got: Vec<(&str, Vec<&str>, Option<u32>)> = chunks
        .iter()
        .map(|c| {
            (
                c.text.as_str(),
                c.heading_path.iter().map(String::as_str).collect(),
                c.page,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("Guide\n\nIntro text.", vec!["Guide"], Some(1)),
            // Level 3 is below section_level: it stays in the chunk of its section.
            (
                "Install\n\nStep one.\n\nDetails\n\nMore.",
                vec!["Guide", "Install"],
                Some(3)
            ),
        ]
    );
}

#[test]
fn oversized_paragraphs_split_at_sentences_with_overlap() {
    let sentence = |i| format!("Sentence number {i} has exactly eight words here.");
    let text: String = (0..10).map(sentence).collect::<Vec<_>>().join(" ");
    let doc = ExtractedDocument {
        source: "s".into(),
        format: Format::Text,
        blocks: vec![Block {
            kind: BlockKind::Paragraph,
            start: 0,
            end: text.len(),
            page: None,
        }],
        text,
        metadata: Default::default(),
    };
    // 9 tokens per sentence (8 words + the period).
    let opts = ChunkOptions {
        max_tokens: 30,
        overlap_tokens: 4,
        section_level: 1,
    };
    let chunks = chunk(&doc, &WordPunct, &opts);
    assert!(chunks.len() >= 4);
    assert!(chunks[0].text.ends_with("here."), "{}", chunks[0].text);
    assert!(
        chunks[1].text.starts_with("eight words here. Sentence"),
        "{}",
        chunks[1].text
    );
    assert!(chunks.iter().all(|c| c.tokens <= 30));
}

/// Regression: overlap carried from a split heading ran into the next section's heading.
#[test]
fn overlap_does_not_run_into_the_next_section() {
    let text = "\n\na a a a a a a \n \na a a a a".to_owned();
    let heading = |start, end| Block {
        kind: BlockKind::Heading { level: 1 },
        start,
        end,
        page: None,
    };
    let doc = ExtractedDocument {
        source: "s".into(),
        format: Format::Text,
        blocks: vec![heading(2, 15), heading(19, 28)],
        text,
        metadata: Default::default(),
    };
    let opts = ChunkOptions {
        max_tokens: 4,
        overlap_tokens: 2,
        section_level: 1,
    };
    for c in chunk(&doc, &WordPunct, &opts) {
        assert!(c.end <= 15 || c.start >= 19, "{c:?} spans both sections");
    }
}

/// A counter that fails the test once it has been asked too often: a chunker that stops
/// making progress fails here instead of hanging.
struct Metered {
    calls: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl Metered {
    fn for_text(text: &str) -> Self {
        Metered {
            calls: Default::default(),
            limit: 1_000 + 200 * text.len(),
        }
    }
}

impl TokenCounter for Metered {
    fn count_tokens(&self, text: &str) -> usize {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(
            n < self.limit,
            "over {} token counts: no progress",
            self.limit
        );
        WordPunct.count_tokens(text)
    }
}

/// Chunks must not overlap too much, stay inside the budget (one char is always allowed),
/// point at their exact text and cover every non-whitespace char.
fn assert_chunks_exact(doc: &ExtractedDocument, max_tokens: usize) {
    let counter = Metered::for_text(&doc.text);
    for overlap_tokens in [0, 1, 3] {
        let opts = ChunkOptions {
            max_tokens,
            overlap_tokens,
            section_level: 2,
        };
        let chunks = chunk(doc, &counter, &opts);
        let text = doc.text.as_str();
        let mut covered = vec![false; text.len()];
        for c in &chunks {
            assert!(c.start < c.end && c.end <= text.len(), "{c:?}");
            assert_eq!(&text[c.start..c.end], c.text, "span of chunk {}", c.ordinal);
            assert!(
                c.tokens as usize <= max_tokens.max(1) || c.text.chars().count() == 1,
                "chunk {} has {} tokens (max {max_tokens})",
                c.ordinal,
                c.tokens
            );
            covered[c.start..c.end].iter_mut().for_each(|x| *x = true);
        }
        for (pos, ch) in text.char_indices() {
            assert!(
                ch.is_whitespace() || covered[pos],
                "char {ch:?} at {pos} not in any chunk (max {max_tokens})"
            );
        }
    }
}

fn plain(text: String, one_block: bool) -> ExtractedDocument {
    let blocks = if one_block && !text.is_empty() {
        vec![Block {
            kind: BlockKind::Paragraph,
            start: 0,
            end: text.len(),
            page: None,
        }]
    } else {
        Vec::new()
    };
    ExtractedDocument {
        source: "s".into(),
        format: Format::Text,
        text,
        blocks,
        metadata: Default::default(),
    }
}

/// Regression: a run with no break opportunity longer than the budget hung the
/// character splitter (its bisection stopped moving at `hi == lo + 1`).
#[test]
fn unbreakable_run_longer_than_the_budget_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commas.txt");
    std::fs::write(&path, format!("hello {}", ",".repeat(260))).unwrap();
    let loaded = ragtune_ingest::load(&path, &Default::default()).unwrap();
    let doc = &loaded.documents[0];
    let chunks = chunk(doc, &Metered::for_text(&doc.text), &ChunkOptions::default());
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(joined, format!("hello{}", ",".repeat(260)));
    assert!(chunks.iter().all(|c| c.tokens <= 256), "{chunks:?}");
    assert_chunks_exact(doc, 256);
    for run in [
        "https://example.com/search?q=a&page=2&sort=desc&lang=en&utm_source=x".repeat(20),
        format!("# Title\n\n{}\n\ntext", "=".repeat(700)),
        format!("a,b\n\"{}", "x,".repeat(400)),
        "{\"a\":[1,2,{\"b\":null}],".repeat(60),
        "é,🙂,".repeat(300),
    ] {
        assert_chunks_exact(&plain(run.clone(), true), 256);
        assert_chunks_exact(&plain(run, false), 7);
    }
}

/// Regression: budgets of 0, 1 and 2 tokens hung the chunker.
#[test]
fn budgets_of_zero_one_and_two_tokens_terminate() {
    let text = "Hello, world! A sentence. ,,,,,,,,,,,,,,,,,, ééé 🙂🙂 word\n\nnext para";
    for max in 0..=3 {
        assert_chunks_exact(&plain(text.to_owned(), true), max);
        assert_chunks_exact(&plain(text.to_owned(), false), max);
    }
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        2 => "[ \n]{1,3}",
        1 => "[.,!?=&/:]{1,4}",
        1 => "(é|日本|ß|🙂|[a-z]){1,3}",
        // Long runs with no break opportunity, in one script or mixed.
        1 => (prop::sample::select(vec![",", "=", "a", "é", "🙂", "&q", ".-"]), 1usize..700)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => "[a-z0-9=&?/:.,%-]{50,400}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn unbreakable_runs_and_tiny_budgets_terminate_with_exact_spans(
        pieces in prop::collection::vec(piece(), 0..12),
        max_tokens in prop_oneof![3 => 0usize..4, 1 => 4usize..300],
        one_block in any::<bool>(),
    ) {
        assert_chunks_exact(&plain(pieces.concat(), one_block), max_tokens);
    }
}
