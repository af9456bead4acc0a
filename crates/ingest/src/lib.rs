//! How does a file become clean text and chunks?
//!
//! Loaders turn PDF, DOCX, PPTX, ODT, EPUB, HTML, Markdown, plain text, CSV, XLSX, JSON,
//! JSONL files and SQLite rows into [`ExtractedDocument`]s: text plus blocks (headings,
//! paragraphs, list items, table rows, code) in reading order, with pages and metadata.
//! [`chunk`] cuts a document into [`Chunk`]s that follow that structure and fit a token
//! budget measured by the embedder's [`TokenCounter`]; each chunk's span points at the
//! exact characters it came from.
//!
//! ```
//! use ragtune_core::TokenCounter;
//! use ragtune_ingest::{ChunkOptions, LoadOptions, chunk, load};
//!
//! struct Words; // stands in for the embedder's tokenizer
//! impl TokenCounter for Words {
//!     fn count_tokens(&self, text: &str) -> usize {
//!         text.split_whitespace().count()
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("notes.md");
//! std::fs::write(&path, "# Setup\n\nInstall it.\n\n## Run\n\nRun it twice, then check.\n")?;
//!
//! let loaded = load(&path, &LoadOptions::default())?;
//! let doc = &loaded.documents[0];
//! let opts = ChunkOptions { max_tokens: 64, overlap_tokens: 8, section_level: 2 };
//! let chunks = chunk(doc, &Words, &opts);
//! assert_eq!(chunks.len(), 2); // "## Run" starts a new section
//! assert_eq!(chunks[1].heading_path, ["Setup", "Run"]);
//! assert_eq!(&doc.text[chunks[1].start..chunks[1].end], chunks[1].text);
//! # Ok(()) }
//! ```
//!
//! Big plain-text, CSV and JSONL files stream: [`open`] yields [`Segment`]s of at most
//! [`LoadOptions::segment_bytes`] of text, and a [`Chunker`] turns each into chunks whose
//! spans and ordinals are those of the whole document, so memory stays bounded:
//!
//! ```no_run
//! # use ragtune_ingest::{ChunkOptions, Chunker, LoadOptions, open};
//! # fn run(counter: &dyn ragtune_core::TokenCounter) -> ragtune_ingest::Result<()> {
//! let mut chunker = Chunker::new(counter, ChunkOptions::default());
//! for segment in open("big.txt", &LoadOptions::default())? {
//!     for chunk in chunker.push(&segment?) { /* embed and store */ }
//! }
//! # Ok(()) }
//! ```
//!
//! Every error names the file and says what to do; [`load_all`] walks folders and reports
//! per file, so one bad file never stops the others.

mod builder;
mod chunk;
mod csv;
mod docx;
mod epub;
mod error;
mod format;
mod html;
mod json;
mod load;
mod markdown;
mod odt;
mod office;
mod pdf;
mod pptx;
mod sql;
mod stream;
mod walk;
mod xlsx;
mod zipguard;

pub use chunk::{ChunkOptions, Chunker, chunk, sentence_spans};
pub use error::{Error, Result, Warning};
pub use format::{SUPPORTED, detect, format_for_path};
pub use json::JsonOptions;
pub use load::{FileOutcome, LoadOptions, Loaded, Segment, Segments, load, open};
pub use ragtune_core::{Block, BlockKind, Chunk, ExtractedDocument, Format, TokenCounter};
pub use sql::{load_sql, row_document, text_column_positions};
pub use walk::{load_all, walk};
pub use zipguard::ZipLimits;
