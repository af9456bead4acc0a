//! Documents as the knowledge base sees them: extracted text with its structure, and the
//! chunks cut from it, each carrying enough provenance for an answer to cite it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file formats ragtune reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pdf,
    Docx,
    Html,
    Markdown,
    Text,
    Csv,
    Xlsx,
    Json,
    Jsonl,
    Pptx,
    Odt,
    Epub,
    /// A row of a SQL query result.
    Sql,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Html => "html",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Pptx => "pptx",
            Format::Odt => "odt",
            Format::Epub => "epub",
            Format::Sql => "sql",
        }
    }
}

/// What a block of extracted text is; chunking keeps these boundaries where it can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BlockKind {
    /// A heading of the given depth (1 = top).
    Heading {
        level: u8,
    },
    Paragraph,
    ListItem,
    Table,
    Code,
}

/// A structural unit of a document: its kind, where it is in the extracted text, which page
/// it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    #[serde(flatten)]
    pub kind: BlockKind,
    /// Byte range in [`ExtractedDocument::text`].
    pub start: usize,
    pub end: usize,
    /// 1-based page number, for paged formats (PDF) and sheets/slides where it makes sense.
    pub page: Option<u32>,
}

/// A source document turned into text, with structure and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractedDocument {
    /// Where it came from: a path, or `sqlite:<db>#<row key>` for database rows.
    pub source: String,
    pub format: Format,
    /// The whole extracted text; blocks and chunks point into it.
    pub text: String,
    /// Blocks in reading order, covering the text without overlap.
    pub blocks: Vec<Block>,
    /// Title, author, sheet names, column values of a row...
    pub metadata: BTreeMap<String, String>,
}

/// A piece of a document small enough to embed and to put in a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Source of the document (as in [`ExtractedDocument::source`]).
    pub source: String,
    /// Position of the chunk within its document (0, 1, ...).
    pub ordinal: u32,
    pub text: String,
    /// Byte range of the chunk in the document's extracted text.
    pub start: usize,
    pub end: usize,
    /// 1-based page where the chunk starts, when the format has pages.
    pub page: Option<u32>,
    /// Headings above the chunk, outermost first.
    pub heading_path: Vec<String>,
    /// Tokens by the embedder's tokenizer.
    pub tokens: u32,
}

/// Counts tokens the way the embedder will, so chunks fit its window.
pub trait TokenCounter: Send + Sync {
    fn count_tokens(&self, text: &str) -> usize;
}

/// Turns texts into vectors. Implementations batch and parallelise internally.
pub trait Embedder: Send + Sync {
    /// A stable name, stored with the vectors so a knowledge base never mixes models.
    fn name(&self) -> &str;
    fn dimension(&self) -> usize;
    /// Embeds documents (passages).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Embeds a query; models with query prefixes override this.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut v = self.embed(&[text])?;
        v.pop()
            .ok_or_else(|| EmbedError::Permanent("the embedder returned no vector".into()))
    }
}

/// Why texts could not be embedded. Says whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("transient embedding failure (retrying may help): {0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// Free-form metadata on documents and chunks.
pub type Metadata = BTreeMap<String, String>;
