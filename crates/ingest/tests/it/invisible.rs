//! Invisible characters (zero width, bidi controls, soft hyphen) never reach a passage,
//! whatever the format, and spans still point at the exact text.

use crate::support::WordPunct;
use ragtune_ingest::{ChunkOptions, Chunker, ExtractedDocument, LoadOptions, chunk, load, open};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

/// Every invisible character, hidden inside words.
const HIDDEN: &str = "P\u{200b}W\u{200c}N\u{200d}E\u{200e}D\u{200f} \
                      \u{2060}in\u{2061}vis\u{2062}i\u{2063}b\u{2064}le \
                      \u{feff}bi\u{202a}d\u{202b}i\u{202c}\u{202d}\u{202e} \
                      i\u{2066}s\u{2067}o\u{2068}\u{2069} so\u{00ad}ft";
const CLEAN: &str = "PWNED invisible bidi iso soft";

fn invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn assert_clean(doc: &ExtractedDocument, what: &str) {
    assert!(!doc.text.contains(invisible), "{what}: {:?}", doc.text);
    assert!(doc.text.contains(CLEAN), "{what}: {:?}", doc.text);
    for (k, v) in &doc.metadata {
        assert!(!v.contains(invisible), "{what}: metadata {k} = {v:?}");
    }
    for b in &doc.blocks {
        assert!(doc.text.get(b.start..b.end).is_some(), "{what}: {b:?}");
    }
    let opts = ChunkOptions {
        max_tokens: 4,
        overlap_tokens: 1,
        section_level: 2,
    };
    for c in chunk(doc, &WordPunct, &opts) {
        assert_eq!(&doc.text[c.start..c.end], c.text, "{what}");
        assert!(!c.text.contains(invisible), "{what}: {:?}", c.text);
    }
}

fn load_one(path: &Path) -> ExtractedDocument {
    let mut loaded = load(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded.documents.remove(0)
}

/// Regression: zero-width and bidi characters survived into passages, so
/// "P\u{200b}W\u{200b}N\u{200b}E\u{200b}D" got past a plain string filter.
#[test]
fn invisible_characters_are_dropped_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let json_escaped = HIDDEN
        .chars()
        .map(|c| match c {
            c if invisible(c) => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect::<String>();
    let files = [
        ("a.txt", format!("\u{feff}{HIDDEN}\n\nmore\n")),
        (
            "b.md",
            format!("# T\u{200b}itle\n\n{HIDDEN}\n\n```\ncode\u{200b} {HIDDEN}\n```\n"),
        ),
        (
            "c.html",
            format!(
                "<html><head><title>T\u{200b}itle</title><meta name=author content='A\u{200b}nn'>\
                 </head><body><h1>{HIDDEN}</h1><p>{HIDDEN}</p><pre>{HIDDEN}</pre>\
                 <table><tr><td>{HIDDEN}</td></tr></table></body></html>"
            ),
        ),
        ("d.csv", format!("na\u{200b}me,note\nx,{HIDDEN}\n")),
        (
            "e.json",
            format!(r#"{{"text": "{json_escaped}", "author": "A\u200bnn"}}"#),
        ),
        (
            "f.jsonl",
            format!("{{\"body\": \"{HIDDEN}\", \"tag\": \"{json_escaped}\"}}\n"),
        ),
    ];
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        assert_clean(&load_one(&path), name);
    }
    let docx = dir.path().join("g.docx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&docx).unwrap());
    zip.start_file("word/document.xml", SimpleFileOptions::default())
        .unwrap();
    let ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
    write!(
        zip,
        r#"<w:document xmlns:w="{ns}"><w:body><w:p><w:r><w:t>{HIDDEN}</w:t></w:r></w:p></w:body></w:document>"#
    )
    .unwrap();
    zip.finish().unwrap();
    assert_clean(&load_one(&docx), "g.docx");
}

/// Found by the attack set (bench/attacks, word-hidden-text.docx): text Word hides
/// (`w:vanish`) reached the index, and the model's prompt.
#[test]
fn hidden_word_text_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let docx = dir.path().join("h.docx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&docx).unwrap());
    zip.start_file("word/document.xml", SimpleFileOptions::default())
        .unwrap();
    let ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
    let run =
        |props: &str, text: &str| format!("<w:r><w:rPr>{props}</w:rPr><w:t>{text}</w:t></w:r>");
    write!(
        zip,
        r#"<w:document xmlns:w="{ns}"><w:body><w:p>{}{}{}</w:p></w:body></w:document>"#,
        run("", "Shown."),
        run("<w:vanish/>", " Hidden order."),
        run(r#"<w:vanish w:val="0"/>"#, " Also shown.")
    )
    .unwrap();
    zip.finish().unwrap();
    assert_eq!(load_one(&docx).text, "Shown. Also shown.");
}

/// A streamed text file is cleaned segment by segment; offsets are those of the cleaned
/// whole, so streamed chunk spans point into the text `load` returns.
#[test]
fn streamed_text_is_cleaned_with_exact_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let raw: String = (0..60).map(|i| format!("line {i} {HIDDEN}\n\n")).collect();
    std::fs::write(&path, &raw).unwrap();
    let opts = LoadOptions {
        segment_bytes: 64,
        ..LoadOptions::default()
    };
    let whole = load(&path, &opts).unwrap().documents.remove(0);
    let expected: String = (0..60).map(|i| format!("line {i} {CLEAN}\n\n")).collect();
    assert_eq!(whole.text, expected);
    let mut chunker = Chunker::new(&WordPunct, ChunkOptions::default());
    let (mut at, mut segments) = (0, 0);
    for seg in open(&path, &opts).unwrap() {
        let seg = seg.unwrap();
        assert_eq!(seg.offset, at);
        at += seg.document.text.len();
        segments += 1;
        for c in chunker.push(&seg) {
            assert_eq!(&whole.text[c.start..c.end], c.text);
        }
    }
    assert_eq!(at, whole.text.len());
    assert!(segments > 10, "{segments} segments");
}
