//! [`PgKb`]: a knowledge base in a PostgreSQL schema, written by sync through
//! [`SyncTarget`]. Every write takes the knowledge base's advisory lock for the length of its
//! transaction: writers on several machines embed in parallel and write in turn, and a file
//! that two of them load at once is stored once (the second replaces the first).

use crate::error::describe;
use crate::schema::{self, SCHEMA_VERSION};
use crate::vector::PgVector;
use crate::{Error, Location, Result};
use postgres::{Client, GenericClient, NoTls, Row, Transaction};
use ragtune_core::{Embedder, Format, Metadata};
use ragtune_index::{
    EmbedderInfo, FileRecord, FileState, NewDocument, StoredChunk, StoredDocument, SyncTarget,
    chunking, text_hash,
};
use ragtune_ingest::ChunkOptions;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// A knowledge base on PostgreSQL.
pub struct PgKb {
    client: Mutex<Client>,
    loc: Location,
    embedder: EmbedderInfo,
    /// The chunk-settings record this handle last read or wrote (`chunking::encode`): each
    /// write checks it under the write lock, so a sync whose settings another ingest replaced
    /// meanwhile stops instead of cutting its files another way.
    chunking_seen: Mutex<Option<String>>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub(crate) fn format_name(format: Format) -> String {
    match serde_json::to_value(format) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "text".to_owned(),
    }
}

pub(crate) fn parse_format(s: &str) -> Format {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Format::Text)
}

/// Document title and heading path, as the embedded store's BM25 title field has them.
fn title(metadata: &Metadata, headings: &[String]) -> String {
    metadata
        .get("title")
        .into_iter()
        .chain(headings.iter())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" / ")
}

const DOC_COLUMNS: &str = "id, source, file, format, hash, size, mtime_ns, metadata::text,
     version, chunk_count, indexed_at_ns";

fn document_row(r: &Row) -> StoredDocument {
    StoredDocument {
        id: r.get(0),
        source: r.get(1),
        file: r.get(2),
        format: parse_format(r.get(3)),
        hash: r.get(4),
        size: r.get::<_, i64>(5) as u64,
        mtime_ns: r.get(6),
        metadata: serde_json::from_str(r.get(7)).unwrap_or_default(),
        version: r.get(8),
        chunk_count: r.get::<_, i32>(9) as usize,
        indexed_at_ns: r.get(10),
    }
}

pub(crate) const CHUNK_COLUMNS: &str = "c.id, c.doc_id, d.source, d.format, c.ordinal, c.text,
     c.page, c.heading_path::text, c.start_byte, c.end_byte, c.tokens";

pub(crate) fn chunk_row(r: &Row) -> StoredChunk {
    StoredChunk {
        id: r.get(0),
        doc_id: r.get(1),
        source: r.get(2),
        format: parse_format(r.get(3)),
        ordinal: r.get::<_, i32>(4) as u32,
        text: r.get(5),
        page: r.get::<_, Option<i32>>(6).map(|p| p as u32),
        heading_path: serde_json::from_str(r.get(7)).unwrap_or_default(),
        start: r.get::<_, i64>(8) as usize,
        end: r.get::<_, i64>(9) as usize,
        tokens: r.get::<_, i32>(10) as u32,
    }
}

impl PgKb {
    /// Opens the knowledge base at `url`, creating it (and migrating an older schema) when
    /// needed. Fails if it was built with another embedder.
    pub fn open(url: &str, embedder: &dyn Embedder) -> Result<Self> {
        let loc = Location::parse(url)?;
        let mut client = connect(&loc)?;
        schema::migrate(&mut client, &loc, embedder.name(), embedder.dimension())?;
        let kb = Self::finish_open(client, loc)?;
        kb.check_embedder(embedder)?;
        Ok(kb)
    }

    /// Opens a knowledge base that must exist (for searching and answering): nothing is
    /// created. Another embedder than the one it was built with is refused when searching.
    pub fn open_existing(url: &str) -> Result<Self> {
        let loc = Location::parse(url)?;
        let mut client = connect(&loc)?;
        match schema::stored_version(&mut client, &loc)? {
            None => Err(Error::NotFound {
                kb: loc.shown().to_owned(),
            }),
            Some(v) if v > SCHEMA_VERSION => Err(Error::SchemaVersion {
                kb: loc.shown().to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(v) if v < SCHEMA_VERSION => Err(Error::Damaged {
                kb: loc.shown().to_owned(),
                reason: format!(
                    "schema version {v} is older than this ragtune's ({SCHEMA_VERSION}); run \
                     `ragtune ingest` on it once to migrate"
                ),
            }),
            Some(_) => Self::finish_open(client, loc),
        }
    }

    fn finish_open(mut client: Client, loc: Location) -> Result<Self> {
        let s = &loc.schema;
        let rows = client
            .query(&format!("SELECT key, value FROM {s}.meta"), &[])
            .map_err(|e| db_err(&loc, "reading the knowledge base's embedder", e))?;
        let meta: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let damaged = |reason: &str| Error::Damaged {
            kb: loc.shown().to_owned(),
            reason: reason.to_owned(),
        };
        let name = meta
            .get("embedder")
            .ok_or_else(|| damaged("its meta table names no embedder"))?
            .clone();
        let dimension = meta
            .get("dimension")
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| damaged("its meta table has no vector dimension"))?;
        // Searches with a filter keep scanning the HNSW graph until they have k rows
        // (pgvector 0.8's iterative scans) instead of returning fewer.
        client
            .batch_execute(&format!(
                "SET hnsw.ef_search = {}; SET hnsw.iterative_scan = strict_order",
                loc.hnsw.ef_search
            ))
            .map_err(|e| db_err(&loc, "setting hnsw.ef_search", e))?;
        Ok(PgKb {
            client: Mutex::new(client),
            loc,
            embedder: EmbedderInfo { name, dimension },
            chunking_seen: Mutex::new(None),
        })
    }

    /// Another connection to the same knowledge base, for another thread.
    pub fn reopen(&self) -> Result<Self> {
        let client = connect(&self.loc)?;
        Self::finish_open(client, self.loc.clone())
    }

    /// Documents and chunks stored.
    pub fn sizes(&self) -> Result<(usize, usize)> {
        let s = &self.loc.schema;
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {s}.documents), (SELECT chunks FROM {s}.text_stats)"
                ),
                &[],
            )
            .map_err(|e| self.db("counting documents", e))?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    /// Fails when `embedder` is not the one the knowledge base was built with.
    pub fn check_embedder(&self, embedder: &dyn Embedder) -> Result<()> {
        if self.embedder.name != embedder.name() || self.embedder.dimension != embedder.dimension()
        {
            return Err(Error::Damaged {
                kb: self.loc.shown().to_owned(),
                reason: format!(
                    "it was built with embedder `{}` ({} dimensions), not `{}` ({}); use the same \
                     embedder, or ingest into another knowledge base (?kb=NEW_NAME)",
                    self.embedder.name,
                    self.embedder.dimension,
                    embedder.name(),
                    embedder.dimension()
                ),
            });
        }
        Ok(())
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    pub fn embedder_info(&self) -> &EmbedderInfo {
        &self.embedder
    }

    pub(crate) fn client(&self) -> MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn db(&self, what: &str, e: postgres::Error) -> Error {
        db_err(&self.loc, what, e)
    }

    pub fn documents(&self) -> Result<Vec<StoredDocument>> {
        let s = &self.loc.schema;
        let rows = self
            .client()
            .query(
                &format!("SELECT {DOC_COLUMNS} FROM {s}.documents ORDER BY source"),
                &[],
            )
            .map_err(|e| self.db("listing documents", e))?;
        Ok(rows.iter().map(document_row).collect())
    }

    pub fn document(&self, source: &str) -> Result<Option<StoredDocument>> {
        let s = &self.loc.schema;
        let row = self
            .client()
            .query_opt(
                &format!("SELECT {DOC_COLUMNS} FROM {s}.documents WHERE source = $1"),
                &[&source],
            )
            .map_err(|e| self.db("reading a document", e))?;
        Ok(row.as_ref().map(document_row))
    }

    /// Chunks stored, and how many documents claim a source twice or chunks an ordinal twice
    /// (always 0: the schema's unique constraints forbid it; reported for checks).
    pub fn counts(&self) -> Result<(usize, usize)> {
        let s = &self.loc.schema;
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {s}.chunks),
                            (SELECT count(*) FROM {s}.documents) -
                            (SELECT count(DISTINCT source) FROM {s}.documents)"
                ),
                &[],
            )
            .map_err(|e| self.db("counting chunks", e))?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    /// Is the HNSW index over the vectors built? (Below `hnsw_min_chunks` search is exact.)
    pub fn has_hnsw(&self) -> Result<bool> {
        let name = format!("{}.chunks_embedding_hnsw", self.loc.schema);
        let row = self
            .client()
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .map_err(|e| self.db("looking for the HNSW index", e))?;
        Ok(row.get(0))
    }

    /// Builds the HNSW index over the vectors now, whatever their number (once; later
    /// writes maintain it). Sync calls this itself after loads that cross `hnsw_min_chunks`.
    pub fn build_hnsw(&self) -> Result<()> {
        let s = &self.loc.schema;
        let h = self.loc.hnsw;
        let mut client = self.client();
        let mut tx = client
            .transaction()
            .map_err(|e| self.db("building the HNSW index", e))?;
        lock_kb(&mut tx, &self.loc)?;
        // Building is bound by maintenance_work_mem: a graph that fits is built several times
        // faster than one spilled to disk.
        tx.batch_execute(&format!(
            "SET LOCAL maintenance_work_mem = '512MB';
             CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON {s}.chunks
             USING hnsw (embedding vector_cosine_ops)
             WITH (m = {}, ef_construction = {})",
            h.m, h.ef_construction
        ))
        .map_err(|e| self.db("building the HNSW index", e))?;
        tx.commit()
            .map_err(|e| self.db("building the HNSW index", e))
    }

    /// The chunks of chunk `id`'s document around it, in document order.
    pub fn neighbours(&self, id: i64, before: usize, after: usize) -> Result<Vec<StoredChunk>> {
        let s = &self.loc.schema;
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT {CHUNK_COLUMNS} FROM {s}.chunks c
                     JOIN {s}.documents d ON d.id = c.doc_id
                     JOIN {s}.chunks hit ON hit.doc_id = c.doc_id AND hit.id = $1
                     WHERE c.ordinal BETWEEN hit.ordinal - $2 AND hit.ordinal + $3
                     ORDER BY c.ordinal"
                ),
                &[
                    &id,
                    &(before.min(i32::MAX as usize) as i32),
                    &(after.min(i32::MAX as usize) as i32),
                ],
            )
            .map_err(|e| self.db("reading neighbouring chunks", e))?;
        Ok(rows.iter().map(chunk_row).collect())
    }

    /// Drops the knowledge base's schema and everything in it.
    pub fn drop_kb(self) -> Result<()> {
        let s = &self.loc.schema;
        self.client()
            .batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
            .map_err(|e| self.db("dropping the knowledge base", e))
    }
}

fn connect(loc: &Location) -> Result<Client> {
    loc.config.connect(NoTls).map_err(|e| Error::Connect {
        kb: loc.shown().to_owned(),
        reason: describe(&e),
    })
}

fn db_err(loc: &Location, what: &str, e: postgres::Error) -> Error {
    Error::Db {
        kb: loc.shown().to_owned(),
        what: what.to_owned(),
        reason: describe(&e),
    }
}

/// The knowledge base's write lock, held until the transaction ends.
fn lock_kb(tx: &mut Transaction<'_>, loc: &Location) -> Result<()> {
    let key = format!("ragtune:write:{}", loc.schema);
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
        .map_err(|e| db_err(loc, "taking the knowledge base's write lock", e))?;
    Ok(())
}

impl PgKb {
    /// Under the write lock: the chunk-settings record is still the one this handle synced
    /// under (when it read or wrote one).
    fn check_chunking(&self, tx: &mut Transaction<'_>, path: &str) -> Result<()> {
        let Some(seen) = self
            .chunking_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Ok(());
        };
        let now = self.chunking_record(tx)?;
        if now.as_deref() == Some(seen.as_str()) {
            return Ok(());
        }
        Err(Error::ChunkingChanged {
            kb: self.loc.shown().to_owned(),
            file: path.to_owned(),
            ours: seen,
            now: now.unwrap_or_else(|| "none".into()),
        })
    }

    /// The stored chunk-settings record, as `chunking::encode` wrote it.
    fn chunking_record(&self, c: &mut impl GenericClient) -> Result<Option<String>> {
        let s = &self.loc.schema;
        Ok(c.query_opt(
            &format!("SELECT value FROM {s}.meta WHERE key = $1"),
            &[&chunking::META_KEY],
        )
        .map_err(|e| self.db("reading the chunk settings", e))?
        .map(|r| r.get(0)))
    }

    fn see_chunking(&self, record: Option<String>) {
        *self.chunking_seen.lock().unwrap_or_else(|e| e.into_inner()) = record;
    }

    /// `false`: another writer stored this very content first, and nothing was written.
    fn write_file(&self, file: &FileRecord, docs: &[NewDocument<'_>]) -> Result<bool> {
        let s = &self.loc.schema;
        let what = format!("writing {}", file.path);
        let mut client = self.client();
        let mut tx = client.transaction().map_err(|e| self.db(&what, e))?;
        lock_kb(&mut tx, &self.loc)?;
        self.check_chunking(&mut tx, &file.path)?;
        let sources: Vec<&str> = docs.iter().map(|d| d.source).collect();
        // Another process wrote this very content while we embedded it: nothing to do.
        let same: bool = tx
            .query_one(
                &format!(
                    "SELECT count(*) = $3 AND count(*) > 0 AND bool_and(hash = $2)
                        AND bool_and(source = ANY($4))
                     FROM {s}.documents WHERE file = $1"
                ),
                &[&file.path, &file.hash, &(docs.len() as i64), &sources],
            )
            .map_err(|e| self.db(&what, e))?
            .get::<_, Option<bool>>(0)
            .unwrap_or(false);
        if same {
            tx.commit().map_err(|e| self.db(&what, e))?;
            return Ok(false);
        }
        // Versions survive replacement: a document is updated, not new, when its source was
        // stored before (under this file or, after a rename, another one).
        let versions: HashMap<String, i64> = tx
            .query(
                &format!("SELECT source, version FROM {s}.documents WHERE source = ANY($1)"),
                &[&sources],
            )
            .map_err(|e| self.db(&what, e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tx.execute(
            &format!("DELETE FROM {s}.documents WHERE file = $1 OR source = ANY($2)"),
            &[&file.path, &sources],
        )
        .map_err(|e| self.db(&what, e))?;
        let insert_doc = tx
            .prepare(&format!(
                "INSERT INTO {s}.documents (source, file, format, hash, size, mtime_ns, metadata,
                     version, chunk_count, indexed_at_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::jsonb, $8, $9, $10) RETURNING id"
            ))
            .map_err(|e| self.db(&what, e))?;
        let insert_chunk = tx
            .prepare(&format!(
                "INSERT INTO {s}.chunks (doc_id, ordinal, text, text_hash, page, heading_path,
                     start_byte, end_byte, tokens, title, embedding)
                 VALUES ($1, $2, $3, $4, $5, ($6::text)::jsonb, $7, $8, $9, $10, $11)"
            ))
            .map_err(|e| self.db(&what, e))?;
        let now = now_ns();
        for doc in docs {
            let metadata = serde_json::to_string(doc.metadata).unwrap_or_else(|_| "{}".into());
            let version = versions.get(doc.source).copied().unwrap_or(0) + 1;
            let id: i64 = tx
                .query_one(
                    &insert_doc,
                    &[
                        &doc.source,
                        &file.path,
                        &format_name(doc.format),
                        &file.hash,
                        &(file.size as i64),
                        &file.mtime_ns,
                        &metadata,
                        &version,
                        &(doc.chunks.len() as i32),
                        &now,
                    ],
                )
                .map_err(|e| self.db(&what, e))?
                .get(0);
            for (chunk, vector) in doc.chunks.iter().zip(doc.vectors) {
                if vector.len() != self.embedder.dimension {
                    return Err(Error::Damaged {
                        kb: self.loc.shown().to_owned(),
                        reason: format!(
                            "a vector of {} has {} dimensions, expected {}; nothing of it was written",
                            doc.source,
                            vector.len(),
                            self.embedder.dimension
                        ),
                    });
                }
                let headings =
                    serde_json::to_string(&chunk.heading_path).unwrap_or_else(|_| "[]".into());
                tx.execute(
                    &insert_chunk,
                    &[
                        &id,
                        &(chunk.ordinal as i32),
                        &chunk.text,
                        &text_hash(&chunk.text).as_slice(),
                        &chunk.page.map(|p| p as i32),
                        &headings,
                        &(chunk.start as i64),
                        &(chunk.end as i64),
                        &(chunk.tokens as i32),
                        &title(doc.metadata, &chunk.heading_path),
                        &PgVector(vector.clone()),
                    ],
                )
                .map_err(|e| self.db(&what, e))?;
            }
        }
        tx.commit().map_err(|e| self.db(&what, e))?;
        Ok(true)
    }

    fn delete_where(&self, column: &str, value: &str) -> Result<usize> {
        let s = &self.loc.schema;
        let what = format!("deleting {value}");
        let mut client = self.client();
        let mut tx = client.transaction().map_err(|e| self.db(&what, e))?;
        lock_kb(&mut tx, &self.loc)?;
        let n = tx
            .execute(
                &format!("DELETE FROM {s}.documents WHERE {column} = $1"),
                &[&value],
            )
            .map_err(|e| self.db(&what, e))?;
        tx.commit().map_err(|e| self.db(&what, e))?;
        Ok(n as usize)
    }
}

impl SyncTarget for PgKb {
    fn location(&self) -> String {
        self.loc.shown().to_owned()
    }

    fn embedder_info(&self) -> &EmbedderInfo {
        &self.embedder
    }

    fn files(&self) -> ragtune_index::Result<Vec<FileState>> {
        let s = &self.loc.schema;
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT file, max(hash), max(size), max(mtime_ns), min(indexed_at_ns), count(*)
                     FROM {s}.documents GROUP BY file ORDER BY file"
                ),
                &[],
            )
            .map_err(|e| self.db("listing files", e))?;
        Ok(rows
            .iter()
            .map(|r| FileState {
                path: r.get(0),
                hash: r.get(1),
                size: r.get::<_, i64>(2) as u64,
                mtime_ns: r.get(3),
                indexed_at_ns: r.get(4),
                documents: r.get::<_, i64>(5) as usize,
            })
            .collect())
    }

    fn chunking(&self) -> ragtune_index::Result<Option<ChunkOptions>> {
        let record = self.chunking_record(&mut *self.client())?;
        self.see_chunking(record.clone());
        record
            .map(|r| chunking::decode(&SyncTarget::location(self), &r))
            .transpose()
    }

    /// Under the write lock, so that the record changes only while no document is stored
    /// (another ingest may have written its first file since this one looked).
    fn record_chunking(&mut self, settings: &ChunkOptions) -> ragtune_index::Result<()> {
        let s = &self.loc.schema;
        let what = "recording the chunk settings";
        let value = chunking::encode(settings);
        let mut client = self.client();
        let mut tx = client.transaction().map_err(|e| self.db(what, e))?;
        lock_kb(&mut tx, &self.loc)?;
        let now = self.chunking_record(&mut tx)?;
        if let Some(now) = now.filter(|n| *n != value) {
            let stored: bool = tx
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {s}.documents)"), &[])
                .map_err(|e| self.db(what, e))?
                .get(0);
            if stored {
                let location = SyncTarget::location(self);
                return Err(ragtune_index::Error::ChunkingMismatch {
                    stored: chunking::decode(&location, &now)
                        .map_or(now, |c| chunking::describe(&c)),
                    requested: chunking::describe(settings),
                    location,
                });
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO {s}.meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&chunking::META_KEY, &value],
        )
        .map_err(|e| self.db(what, e))?;
        tx.commit().map_err(|e| self.db(what, e))?;
        drop(client);
        self.see_chunking(Some(value));
        Ok(())
    }

    fn document_hash(&self, source: &str) -> ragtune_index::Result<Option<String>> {
        Ok(self.document(source)?.map(|d| d.hash))
    }

    fn sources(&self) -> ragtune_index::Result<Vec<String>> {
        let s = &self.loc.schema;
        let rows = self
            .client()
            .query(
                &format!("SELECT source FROM {s}.documents ORDER BY source"),
                &[],
            )
            .map_err(|e| self.db("listing documents", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn touch_file(&mut self, file: &str, mtime_ns: i64) -> ragtune_index::Result<()> {
        let s = &self.loc.schema;
        self.client()
            .execute(
                &format!(
                    "UPDATE {s}.documents SET mtime_ns = $2, indexed_at_ns = $3 WHERE file = $1"
                ),
                &[&file, &mtime_ns, &now_ns()],
            )
            .map_err(|e| self.db(&format!("recording the time of {file}"), e))?;
        Ok(())
    }

    fn cached_vectors(&self, texts: &[&str]) -> ragtune_index::Result<HashMap<[u8; 32], Vec<f32>>> {
        let s = &self.loc.schema;
        let hashes: Vec<Vec<u8>> = texts.iter().map(|t| text_hash(t).to_vec()).collect();
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM {s}.chunks
                     WHERE text_hash = ANY($1)"
                ),
                &[&hashes],
            )
            .map_err(|e| self.db("reading stored vectors", e))?;
        let mut out = HashMap::new();
        for r in rows {
            let hash: Vec<u8> = r.get(0);
            let PgVector(v) = r.get(1);
            if let Ok(h) = <[u8; 32]>::try_from(hash.as_slice()) {
                out.insert(h, v);
            }
        }
        Ok(out)
    }

    fn put_file(
        &mut self,
        file: &FileRecord,
        docs: &[NewDocument<'_>],
    ) -> ragtune_index::Result<bool> {
        Ok(self.write_file(file, docs)?)
    }

    fn delete_file(&mut self, file: &str) -> ragtune_index::Result<usize> {
        Ok(self.delete_where("file", file)?)
    }

    fn delete_document(&mut self, source: &str) -> ragtune_index::Result<bool> {
        Ok(self.delete_where("source", source)? > 0)
    }

    /// Every write is already committed: there are no derived indexes to catch up.
    fn checkpoint(&mut self) -> ragtune_index::Result<Option<u64>> {
        Ok(None)
    }

    /// Builds the HNSW index once the knowledge base has outgrown exact search, and vacuums
    /// the postings this sync wrote: full-text queries read postings from the index alone only
    /// where the visibility map says their pages are all visible (autovacuum gets there too,
    /// later). VACUUM skips the pages already marked, so this costs what changed.
    fn sync_finished(&mut self) -> ragtune_index::Result<()> {
        if !self.has_hnsw()? && self.counts()?.0 >= self.loc.hnsw.min_chunks {
            self.build_hnsw()?;
        }
        let s = &self.loc.schema;
        self.client()
            .batch_execute(&format!("VACUUM (ANALYZE) {s}.postings"))
            .map_err(|e| self.db("vacuuming the full-text postings", e))?;
        Ok(())
    }
}
