//! Given a question, which chunks?
//!
//! [`KbRetriever`] implements [`ragtune_core::Retriever`] over a
//! [`KnowledgeBase`](ragtune_index::KnowledgeBase): dense (cosine top-k), BM25 (tantivy,
//! English stemming) and hybrid, which fuses the two rankings with reciprocal rank fusion
//! ([`fusion`]) and reorders the first fused candidates by their best sentence
//! ([`sentence_match`]). Filters on path glob, format and metadata are applied before the cut-off.
//! [`eval`] measures retrieval on BEIR data sets and SQuAD.
//!
//! ```
//! use ragtune_core::{Query, Retriever, SearchMode};
//! use ragtune_index::{KnowledgeBase, testing::HashEmbedder};
//! use ragtune_retrieve::{KbRetriever, eval::{Corpus, CorpusDoc, index_corpus}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let embedder = HashEmbedder::new(64);
//! let mut kb = KnowledgeBase::in_memory(&embedder)?;
//! let corpus = Corpus { docs: vec![
//!     CorpusDoc { id: "a".into(), title: "Cats".into(), text: "Cats purr and sleep.".into() },
//!     CorpusDoc { id: "b".into(), title: "Rust".into(), text: "Rust has no garbage collector.".into() },
//! ]};
//! index_corpus(&mut kb, &corpus, &embedder)?;
//! let retriever = KbRetriever::new(&kb, &embedder)?;
//! let hits = retriever.retrieve(&Query::new("garbage collection", 1, SearchMode::Hybrid))?;
//! assert_eq!(hits[0].source, "b");
//! # Ok(()) }
//! ```

mod error;
pub mod eval;
pub mod filter;
pub mod fusion;
mod retriever;
pub mod sentence_match;

pub use error::{Error, Result};
pub use retriever::{KbRetriever, RetrieveOptions, to_hit};
