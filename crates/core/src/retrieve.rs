//! What a search returns, and the seam that answers questions with chunks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How chunks are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Cosine similarity of embeddings.
    Dense,
    /// BM25 over the chunk text.
    Bm25,
    /// Reciprocal rank fusion of dense and BM25.
    Hybrid,
}

impl SearchMode {
    pub const ALL: [SearchMode; 3] = [SearchMode::Bm25, SearchMode::Dense, SearchMode::Hybrid];

    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Dense => "dense",
            SearchMode::Bm25 => "bm25",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

/// Restricts which chunks a search may return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Glob over the source path (`docs/**/*.md`).
    pub path_glob: Option<String>,
    /// Allowed formats (`pdf`, `html`...); empty = all.
    pub formats: Vec<crate::Format>,
    /// Metadata that must be equal.
    pub metadata: BTreeMap<String, String>,
}

/// One retrieved chunk, with what a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Stable id of the chunk in its knowledge base.
    pub chunk_id: i64,
    pub source: String,
    pub format: crate::Format,
    pub page: Option<u32>,
    pub heading_path: Vec<String>,
    /// Byte range of the chunk in its document's extracted text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// The score the ranking used (cosine, BM25, or fused RRF score).
    pub score: f32,
    /// Rank in each mode that found it (1-based), for explaining hybrid results.
    pub ranks: BTreeMap<String, u32>,
}

/// A search request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub text: String,
    pub k: usize,
    pub mode: SearchMode,
    pub filter: Filter,
}

impl Query {
    pub fn new(text: impl Into<String>, k: usize, mode: SearchMode) -> Self {
        Self {
            text: text.into(),
            k,
            mode,
            filter: Filter::default(),
        }
    }
}

/// Something that answers a query with ranked chunks.
pub trait Retriever: Send + Sync {
    fn retrieve(&self, query: &Query) -> Result<Vec<Hit>, RetrieveError>;

    /// The chunks of `hit`'s document around it, in document order: up to `before` chunks
    /// before it, the hit's own chunk as stored now, and up to `after` chunks after it. This is
    /// what context expansion ("small-to-big") widens a hit with.
    ///
    /// A neighbour has no score of its own: it carries `hit`'s score and no ranks. Empty when
    /// the hit's chunk is no longer stored (its document was deleted or changed since the
    /// search): that is not an error, the hit is then shown alone. The default has no
    /// neighbours, for retrievers that know nothing of document order.
    fn neighbours(
        &self,
        hit: &Hit,
        before: usize,
        after: usize,
    ) -> Result<Vec<Hit>, RetrieveError> {
        let _ = (hit, before, after);
        Ok(Vec::new())
    }
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Embed(#[from] crate::EmbedError),
    #[error("{0}")]
    Index(String),
}
