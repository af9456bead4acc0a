//! Deterministic fakes for tests and benchmarks (feature `testing`): a hashed bag-of-words
//! embedder, a plain-text document source, and a temporary folder of documents. Not for real
//! use.

use crate::source::{DocumentSource, LoadedDocument, LoadedFile, SourceError};
use ragtune_core::{
    Block, BlockKind, Chunk, EmbedError, Embedder, ExtractedDocument, Format, TokenCounter,
};
use std::path::{Path, PathBuf};

/// Words of a text, lowercased; the unit of the fakes' "tokenizer".
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Embeds a text as its hashed bag of words (feature hashing with signs), so texts that share
/// words are similar. Deterministic across runs and platforms.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dim: usize,
    name: String,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> Self {
        HashEmbedder {
            dim,
            name: format!("test-hash-bow-{dim}"),
        }
    }

    /// Same vectors under another name, to test embedder mismatch.
    pub fn named(dim: usize, name: &str) -> Self {
        HashEmbedder {
            dim,
            name: name.to_owned(),
        }
    }

    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        for w in words(text) {
            let h = fnv1a(&w);
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            v[(h % self.dim as u64) as usize] += sign;
        }
        crate::vector::normalize(&mut v);
        v
    }
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }
    fn dimension(&self) -> usize {
        self.dim
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

impl TokenCounter for HashEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        words(text).count()
    }
}

/// Reads `.txt` and `.md` files (UTF-8 only; anything else fails to load, which tests use),
/// one chunk per blank-line-separated paragraph, with `# ` headings as the heading path.
#[derive(Debug, Clone, Default)]
pub struct PlainTextSource;

impl DocumentSource for PlainTextSource {
    fn list(&self, root: &Path) -> Vec<Result<PathBuf, SourceError>> {
        let mut out = Vec::new();
        walk(root, &mut out);
        out
    }

    fn load(&self, path: &Path) -> Result<LoadedFile, SourceError> {
        let err = |reason: String| SourceError::new(path, reason);
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not valid UTF-8".into()))?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("md") => Format::Markdown,
            _ => Format::Text,
        };
        let source = path.to_string_lossy().into_owned();
        let mut blocks = Vec::new();
        let mut chunks = Vec::new();
        let mut headings: Vec<String> = Vec::new();
        let mut pos = 0;
        for para in text.split("\n\n") {
            let start = pos;
            pos += para.len() + 2;
            let trimmed = para.trim();
            if trimmed.is_empty() {
                continue;
            }
            let end = start + para.len();
            if let Some(h) = trimmed.strip_prefix("# ") {
                headings = vec![h.to_owned()];
                blocks.push(Block {
                    kind: BlockKind::Heading { level: 1 },
                    start,
                    end,
                    page: None,
                });
                continue;
            }
            blocks.push(Block {
                kind: BlockKind::Paragraph,
                start,
                end,
                page: None,
            });
            chunks.push(Chunk {
                source: source.clone(),
                ordinal: chunks.len() as u32,
                text: trimmed.to_owned(),
                start,
                end,
                page: None,
                heading_path: headings.clone(),
                tokens: words(trimmed).count() as u32,
            });
        }
        let mut metadata = ragtune_core::Metadata::new();
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            metadata.insert("title".into(), stem.to_owned());
        }
        let document = ExtractedDocument {
            source,
            format,
            text,
            blocks,
            metadata,
        };
        Ok(LoadedFile {
            documents: vec![LoadedDocument { document, chunks }],
            ..LoadedFile::default()
        })
    }
}

fn walk(path: &Path, out: &mut Vec<Result<PathBuf, SourceError>>) {
    if path.is_file() {
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("txt" | "md")
        ) {
            out.push(Ok(path.to_owned()));
        }
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            out.push(Err(SourceError::new(path, e.to_string())));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        walk(&child, out);
    }
}

/// A temporary folder of text files to sync, removed when dropped.
pub struct Docs {
    pub dir: tempfile::TempDir,
}

impl Docs {
    pub fn new() -> std::io::Result<Self> {
        Ok(Docs {
            dir: tempfile::tempdir()?,
        })
    }

    /// The folder, canonical (as sync stores sources).
    pub fn root(&self) -> PathBuf {
        self.dir
            .path()
            .canonicalize()
            .expect("the temporary folder exists")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// Writes `text` to `name` (folders created).
    pub fn write(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        Ok(p)
    }

    /// The source a sync stores for `name`.
    pub fn source(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}
