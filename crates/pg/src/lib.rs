//! Where does a knowledge base live when several machines share it? On PostgreSQL with
//! pgvector, in one schema per knowledge base:
//!
//! ```text
//! postgres://user@host:5432/db?kb=support     schema kb_support
//!   schema_migrations   versioned migrations, applied under an advisory lock
//!   meta                the embedder (name, dimension) the vectors come from
//!   documents           one row per document: source, file, content hash, version, metadata
//!   chunks              text, spans, vector(dim), tsvector (GIN); HNSW built after bulk loads
//! ```
//!
//! [`PgKb`] is a [`SyncTarget`](ragtune_index::SyncTarget): the embedded store's sync
//! (`ragtune_index::sync_into`) writes into it, each file one transaction taken under the
//! knowledge base's advisory write lock, so ingest processes on several machines can sync into
//! it at once (they embed in parallel and write in turn) without duplicates. [`PgRetriever`]
//! answers dense, full-text and hybrid queries, hybrid fused by reciprocal rank in one SQL
//! statement.

mod error;
mod location;
mod rows;
mod schema;
mod search;
mod store;
mod vector;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
pub use location::{HnswOptions, Location, is_postgres_url};
pub use rows::load_rows;
pub use search::PgRetriever;
pub use store::PgKb;
