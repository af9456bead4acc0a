//! Versioned migrations. Each knowledge base's schema records the versions applied in
//! `schema_migrations`; migrations run in one transaction under an advisory lock, so
//! processes that open a new knowledge base at the same moment create it once.

use crate::error::describe;
use crate::{Error, Location, Result};
use postgres::Client;

/// The newest schema this ragtune writes and understands.
pub(crate) const SCHEMA_VERSION: i32 = 1;

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
        _ => None,
    }
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
