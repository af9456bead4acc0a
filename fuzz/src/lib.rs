//! What must never crash: one entry per kind of untrusted input.
//!
//! Each entry feeds bytes to the public front door a user's file goes through (a loader, the
//! GGUF header reader, the chat-template renderer, the SFT/RAFT data reader, the catalogue
//! parser, the server's routes) and checks what a caller relies on besides "no panic": errors
//! name the file, spans point into the text, chunks quote their document exactly, the server
//! answers every request with a client error or a well-formed reply. libFuzzer runs the entries
//! (`fuzz_targets/`, built by `scripts/fuzz`); `tests/replay.rs` runs them on the saved corpora
//! in the ordinary test suite.

use ragtune_core::{ChatMessage, ExtractedDocument, TokenCounter};
use ragtune_ingest::{ChunkOptions, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

mod server;

/// Every target, by the name of its binary and corpus folder.
pub const TARGETS: &[&str] = &[
    "pdf",
    "docx",
    "xlsx",
    "pptx",
    "odt",
    "epub",
    "html",
    "markdown",
    "csv",
    "json",
    "jsonl",
    "text",
    "gguf_header",
    "chat_template",
    "sft_data",
    "catalog",
    "server_request",
];

/// Runs one input through the target `name`; panics (the fuzzer's finding) when a promise is
/// broken.
pub fn run(name: &str, data: &[u8]) {
    // A crash that kills the process before libFuzzer can save the input (a stack overflow):
    // RAGTUNE_FUZZ_LAST=FILE keeps the input being run.
    if let Some(last) = std::env::var_os("RAGTUNE_FUZZ_LAST") {
        let _ = std::fs::write(last, data);
    }
    match name {
        "gguf_header" => gguf_header(data),
        "chat_template" => chat_template(data),
        "sft_data" => sft_data(data),
        "catalog" => catalog(data),
        "server_request" => server::request(data),
        "markdown" => document("md", data),
        "text" => document("txt", data),
        ext => document(ext, data),
    }
}

/// Called once per fuzzing process. The loaders turn a panic inside a third-party parser into
/// an error naming the file (`ragtune_ingest::load`); libFuzzer's hook would abort on that
/// caught panic, so the hook only prints one line. A panic that escapes still ends the run:
/// libfuzzer-sys aborts when the closure unwinds.
pub fn init() {
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
}

thread_local! {
    /// This thread's scratch folder, once made.
    static SCRATCH: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// This thread's own scratch folder (a fuzzing process runs one thread; `cargo test` runs the
/// replay tests as threads of one process, and each must not delete another's files).
fn scratch_dir() -> PathBuf {
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    SCRATCH.with(|dir| {
        dir.borrow_mut()
            .get_or_insert_with(|| {
                let n = THREADS.fetch_add(1, Ordering::Relaxed);
                let name = format!("ragtune-fuzz-{}-{n}", std::process::id());
                let dir = std::env::temp_dir().join(name);
                std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
                dir
            })
            .clone()
    })
}

/// Removes this thread's scratch folder. A replay test calls it when it is done; a fuzzing
/// process runs until it is stopped and leaves its one folder.
pub fn remove_scratch() {
    if let Some(dir) = SCRATCH.with(|dir| dir.borrow_mut().take()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A file named `input.EXT` holding `data`, in the scratch folder.
fn scratch_file(ext: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(format!("input.{ext}"));
    std::fs::write(&path, data).expect("the temporary folder is writable");
    path
}

/// An error about a file must say which file.
fn names_file(path: &Path, message: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        message.contains(&*name),
        "the error does not name {name}: {message}"
    );
}

struct Words;
impl TokenCounter for Words {
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

fn document(ext: &str, data: &[u8]) {
    let path = scratch_file(ext, data);
    match ragtune_ingest::load(&path, &LoadOptions::default()) {
        Ok(loaded) => {
            for e in &loaded.errors {
                names_file(&path, &e.to_string());
            }
            for doc in &loaded.documents {
                check_document(doc);
            }
        }
        Err(e) => names_file(&path, &e.to_string()),
    }
    let _ = std::fs::remove_file(path);
}

/// Blocks lie inside the text on character boundaries, and every chunk is the exact text of
/// its span (what citations are checked against).
fn check_document(doc: &ExtractedDocument) {
    for b in &doc.blocks {
        assert!(
            b.start <= b.end && b.end <= doc.text.len(),
            "block out of the text: {b:?}"
        );
        assert!(
            doc.text.is_char_boundary(b.start) && doc.text.is_char_boundary(b.end),
            "block splits a character: {b:?}"
        );
    }
    let opts = ChunkOptions {
        max_tokens: 16,
        overlap_tokens: 4,
        section_level: 2,
    };
    for c in ragtune_ingest::chunk(doc, &Words, &opts) {
        assert_eq!(
            doc.text.get(c.start..c.end),
            Some(c.text.as_str()),
            "chunk {}",
            c.ordinal
        );
    }
}

fn gguf_header(data: &[u8]) {
    let path = scratch_file("gguf", data);
    match ragtune_model::gguf::GgufHeader::read(&path) {
        Ok(header) => {
            let _ = (
                header.architecture(),
                header.chat_template(),
                header.context_length(),
            );
            for id in 0..4 {
                let _ = header.token_text(id);
            }
            for t in &header.tensors {
                let _ = t.byte_len();
            }
        }
        Err(e) => names_file(&path, &e.to_string()),
    }
    let _ = std::fs::remove_file(path);
}

/// A template from a stranger's GGUF file, rendered as every prompt is.
fn chat_template(data: &[u8]) {
    use ragtune_model::template::ChatTemplate;
    let source = String::from_utf8_lossy(data);
    let Ok(template) = ChatTemplate::new(&source, "<s>", "</s>") else {
        return;
    };
    let messages = [
        ChatMessage::system("You answer from the passages."),
        ChatMessage::user("What is the capital of France?"),
        ChatMessage::assistant("Paris [1]."),
        ChatMessage::user("And of Italy?"),
    ];
    for generation_prompt in [false, true] {
        let _ = template.render(&messages, generation_prompt);
    }
}

fn sft_data(data: &[u8]) {
    let path = scratch_file("jsonl", data);
    match ragtune_train::data::read_sft_lenient(&path) {
        Ok((_, bad)) => {
            for e in bad {
                names_file(&path, &e.to_string());
            }
        }
        Err(e) => names_file(&path, &e.to_string()),
    }
    let _ = std::fs::remove_file(path);
}

fn catalog(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = ragtune_catalog::Catalog::parse(&text, "fuzz.toml") {
        names_file(Path::new("fuzz.toml"), &e.to_string());
    }
}
