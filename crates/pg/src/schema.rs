//! Versioned migrations. Each knowledge base's schema records the versions applied in
//! `schema_migrations`; migrations run in one transaction under an advisory lock, so
//! processes that open a new knowledge base at the same moment create it once.

use crate::error::describe;
use crate::{Error, Location, Result};
use postgres::Client;

/// The newest schema this ragtune writes and understands.
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// The lock every ragtune process takes to create extensions, schemas or run migrations.
const MIGRATION_LOCK: &str = "ragtune:migrate";

/// Migration `version` for a knowledge base in `schema` whose vectors have `dim` dimensions.
fn migration(version: i32, s: &str, dim: usize) -> Option<String> {
    match version {
        1 => Some(format!(
            "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
             CREATE TABLE {s}.documents (
                 id bigserial PRIMARY KEY,
                 source text NOT NULL UNIQUE,
                 file text NOT NULL,
                 format text NOT NULL,
                 hash text NOT NULL,
                 size bigint NOT NULL,
                 mtime_ns bigint NOT NULL,
                 metadata jsonb NOT NULL,
                 version bigint NOT NULL,
                 chunk_count integer NOT NULL,
                 indexed_at_ns bigint NOT NULL
             );
             CREATE INDEX documents_file ON {s}.documents (file);
             CREATE TABLE {s}.chunks (
                 id bigserial PRIMARY KEY,
                 doc_id bigint NOT NULL REFERENCES {s}.documents (id) ON DELETE CASCADE,
                 ordinal integer NOT NULL,
                 text text NOT NULL,
                 text_hash bytea NOT NULL,
                 page integer,
                 heading_path jsonb NOT NULL,
                 start_byte bigint NOT NULL,
                 end_byte bigint NOT NULL,
                 tokens integer NOT NULL,
                 -- Document title and heading path: a second, lighter full-text field.
                 title text NOT NULL,
                 embedding vector({dim}) NOT NULL,
                 tsv tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', title), 'C') ||
                     setweight(to_tsvector('english', text), 'A')) STORED,
                 UNIQUE (doc_id, ordinal)
             );
             -- Vectors and tsvectors stay in the row: stored out of line (TOAST), every exact
             -- scan and every ts_rank would fetch them from the TOAST table (measured: exact
             -- search 10x slower over 5,000 rows of 384 dimensions and 1.3 kB of text).
             ALTER TABLE {s}.chunks ALTER COLUMN embedding SET STORAGE MAIN,
                 ALTER COLUMN tsv SET STORAGE MAIN;
             CREATE INDEX chunks_text_hash ON {s}.chunks (text_hash);
             CREATE INDEX chunks_tsv ON {s}.chunks USING gin (tsv);"
        )),
        // Full text ranked by BM25, as the embedded store ranks it: `ts_rank` has no inverse
        // document frequency (SciFact nDCG@10 0.606 against BM25's 0.698). An inverted index
        // in SQL: one posting per (term, chunk) with the term's count in the text (weight A)
        // and the title (weight C) and the chunk's lengths, plus corpus totals in one row.
        // Triggers keep both in step with `chunks` in the writer's own transaction, whatever
        // writes or deletes chunks (deleting a document cascades to them).
        2 => Some(format!(
            "CREATE TABLE {s}.postings (
                 term text NOT NULL,
                 chunk_id bigint NOT NULL,
                 tf_text smallint NOT NULL,
                 tf_title smallint NOT NULL,
                 len_text integer NOT NULL,
                 len_title integer NOT NULL,
                 -- Covering: a query reads its terms' postings from the index alone (measured
                 -- on SciFact: p50 4.7 ms, against 12 ms fetching them from the heap, where
                 -- they lie in the order their chunks were written).
                 PRIMARY KEY (term, chunk_id) INCLUDE (tf_text, tf_title, len_text, len_title)
             );
             CREATE TABLE {s}.text_stats (
                 one boolean PRIMARY KEY DEFAULT true CHECK (one),
                 chunks bigint NOT NULL,
                 text_tokens bigint NOT NULL,
                 titled bigint NOT NULL,
                 title_tokens bigint NOT NULL
             );
             INSERT INTO {s}.text_stats VALUES (true, 0, 0, 0, 0);
             CREATE FUNCTION {s}.index_terms() RETURNS trigger LANGUAGE plpgsql AS $fn$
             BEGIN {index} RETURN NULL; END $fn$;
             CREATE FUNCTION {s}.forget_terms() RETURNS trigger LANGUAGE plpgsql AS $fn$
             BEGIN {forget} RETURN NULL; END $fn$;
             CREATE TRIGGER chunks_index_terms AFTER INSERT ON {s}.chunks
                 REFERENCING NEW TABLE AS added FOR EACH STATEMENT
                 EXECUTE FUNCTION {s}.index_terms();
             CREATE TRIGGER chunks_forget_terms AFTER DELETE ON {s}.chunks
                 REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
                 EXECUTE FUNCTION {s}.forget_terms();
             {backfill}
             -- Nothing searches the tsvector's GIN index any more; writes stop paying for it.
             DROP INDEX {s}.chunks_tsv;",
            index = index_terms(s, "added"),
            forget = forget_terms(s, "removed"),
            backfill = index_terms(s, &format!("{s}.chunks")),
        )),
        _ => None,
    }
}

/// Adds the postings and totals of the chunks in `chunks` (a table or a trigger's
/// transition table). A term's count is its number of positions of each weight: tsvectors
/// keep at most 256 positions a term, so a term repeated more often in one chunk counts 256.
fn index_terms(s: &str, chunks: &str) -> String {
    format!(
        "WITH t AS (
             SELECT c.id, u.lexeme,
                    cardinality(array_positions(u.weights, 'A')) AS tf_text,
                    cardinality(array_positions(u.weights, 'C')) AS tf_title
             FROM {chunks} c, unnest(c.tsv) u),
         l AS (SELECT id, sum(tf_text)::integer AS len_text, sum(tf_title)::integer AS len_title
               FROM t GROUP BY id),
         p AS (INSERT INTO {s}.postings
               SELECT t.lexeme, t.id, t.tf_text, t.tf_title, l.len_text, l.len_title
               FROM t JOIN l USING (id))
         UPDATE {s}.text_stats SET
             chunks = chunks + (SELECT count(*) FROM {chunks}),
             text_tokens = text_tokens + (SELECT coalesce(sum(len_text), 0) FROM l),
             titled = titled + (SELECT count(*) FROM l WHERE len_title > 0),
             title_tokens = title_tokens + (SELECT coalesce(sum(len_title), 0) FROM l);"
    )
}

/// Removes the postings and totals of the chunks in `chunks`.
fn forget_terms(s: &str, chunks: &str) -> String {
    format!(
        "WITH p AS (
             DELETE FROM {s}.postings p USING {chunks} c, unnest(c.tsv) u
             WHERE p.term = u.lexeme AND p.chunk_id = c.id
             RETURNING p.chunk_id, p.len_text, p.len_title),
         l AS (SELECT DISTINCT chunk_id, len_text, len_title FROM p)
         UPDATE {s}.text_stats SET
             chunks = chunks - (SELECT count(*) FROM {chunks}),
             text_tokens = text_tokens - (SELECT coalesce(sum(len_text), 0) FROM l),
             titled = titled - (SELECT count(*) FROM l WHERE len_title > 0),
             title_tokens = title_tokens - (SELECT coalesce(sum(len_title), 0) FROM l);"
    )
}

/// The schema version stored in `schema` (`None`: no knowledge base there).
pub(crate) fn stored_version(client: &mut Client, loc: &Location) -> Result<Option<i32>> {
    let kb = loc.shown();
    let db = |what: &str, e: postgres::Error| Error::Db {
        kb: kb.to_owned(),
        what: what.to_owned(),
        reason: describe(&e),
    };
    let table = format!("{}.schema_migrations", loc.schema);
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(|e| db("looking for the knowledge base", e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let version: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {table}"), &[])
        .map_err(|e| db("reading the schema version", e))?
        .get(0);
    Ok(Some(version.unwrap_or(0)))
}

/// Creates the knowledge base's schema (and the vector extension) when missing and applies
/// the migrations it lacks. `dim` sizes the vector column of a new knowledge base.
pub(crate) fn migrate(
    client: &mut Client,
    loc: &Location,
    embedder: &str,
    dim: usize,
) -> Result<()> {
    let kb = loc.shown();
    let s = &loc.schema;
    let db = |what: &str, e: postgres::Error| Error::Db {
        kb: kb.to_owned(),
        what: what.to_owned(),
        reason: describe(&e),
    };
    let mut tx = client
        .transaction()
        .map_err(|e| db("starting the migration", e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&MIGRATION_LOCK],
    )
    .map_err(|e| db("taking the migration lock", e))?;
    tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
        .map_err(|e| Error::NoVector {
            kb: kb.to_owned(),
            reason: describe(&e),
        })?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .map_err(|e| db("creating the schema", e))?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.schema_migrations"),
            &[],
        )
        .map_err(|e| db("reading the schema version", e))?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaVersion {
            kb: kb.to_owned(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for version in current + 1..=SCHEMA_VERSION {
        let sql = migration(version, s, dim).expect("every version up to SCHEMA_VERSION exists");
        tx.batch_execute(&sql)
            .map_err(|e| db(&format!("migration {version}"), e))?;
        tx.execute(
            &format!("INSERT INTO {s}.schema_migrations (version) VALUES ($1)"),
            &[&version],
        )
        .map_err(|e| db(&format!("recording migration {version}"), e))?;
        if version == 1 {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.meta (key, value) VALUES
                     ('embedder', $1), ('dimension', $2)"
                ),
                &[&embedder, &dim.to_string()],
            )
            .map_err(|e| db("recording the embedder", e))?;
        }
    }
    tx.commit().map_err(|e| db("committing the migration", e))
}
