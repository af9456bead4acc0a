//! The knowledge base: SQLite (truth) plus the derived BM25 and vector indexes, kept in step
//! by replaying SQLite's change log. Writing a document commits to SQLite first and then
//! applies the logged changes to the derived indexes in memory; `checkpoint` makes those
//! durable with the sequence they reflect. On open, each derived index replays what it missed,
//! or is rebuilt when it is missing, damaged, or disagrees with SQLite.

use crate::bm25::{Bm25Index, Bm25Options, SharedFilter};
use crate::store::{
    DbState, DocumentRecord, EmbedderInfo, FileRecord, NewDocument, Store, StoredChunk,
    StoredDocument,
};
use crate::vector::{LocalVectorIndex, VectorIndex, VectorIndexOptions};
use crate::{Error, Result};
use ragtune_core::{Chunk, Embedder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(crate) const DB_FILE: &str = "kb.sqlite";
pub(crate) const BM25_DIR: &str = "bm25";
pub(crate) const VECTOR_FILE: &str = "vectors.bin";
const WRITER_LOCK_FILE: &str = "writer.lock";

/// The knowledge base's writer lock, held while one process syncs into it (see
/// [`KnowledgeBase::lock_writer`]); released when dropped or when the process ends.
#[derive(Debug)]
pub struct WriterLock {
    _file: std::fs::File,
}

/// Tuning of the derived indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KbOptions {
    pub bm25: Bm25Options,
    pub vectors: VectorIndexOptions,
}

/// Counts that must agree in a sound knowledge base (see [`Health::is_consistent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub documents: usize,
    pub chunks: usize,
    pub sqlite_vectors: usize,
    pub bm25_docs: usize,
    pub index_vectors: usize,
    /// Chunks without document, vectors without chunk, chunks without vector, documents whose
    /// chunk count is wrong.
    pub orphans: usize,
    pub seq: u64,
    pub bm25_seq: u64,
    pub vector_seq: u64,
}

impl Health {
    pub fn is_consistent(&self) -> bool {
        self.orphans == 0
            && self.chunks == self.sqlite_vectors
            && self.chunks == self.bm25_docs
            && self.chunks == self.index_vectors
            && self.bm25_seq == self.seq
            && self.vector_seq == self.seq
    }
}

/// A knowledge base: one directory (or memory) holding documents, chunks, BM25 and vectors.
pub struct KnowledgeBase {
    dir: Option<PathBuf>,
    store: Store,
    bm25: Bm25Index,
    vectors: Box<dyn VectorIndex>,
    embedder: EmbedderInfo,
    /// Sequences applied to each derived index in memory (committed or not).
    bm25_applied: u64,
    vectors_applied: u64,
    repairs: Vec<String>,
}

impl KnowledgeBase {
    /// Opens the knowledge base in `dir`, creating it if needed, and repairs stale derived
    /// indexes. Fails if it was built with another embedder.
    pub fn open(dir: &Path, embedder: &dyn Embedder) -> Result<Self> {
        Self::open_with(dir, embedder, KbOptions::default())
    }

    pub fn open_with(dir: &Path, embedder: &dyn Embedder, options: KbOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        // A database that lost its tables next to derived indexes that still hold data is
        // damage, not a new knowledge base: initialising it would wipe the indexes too.
        if let DbState::Uninitialised(reason) = Store::inspect(&dir.join(DB_FILE))?
            && (dir.join(BM25_DIR).exists() || dir.join(VECTOR_FILE).exists())
        {
            return Err(Error::Damaged {
                path: dir.to_owned(),
                reason,
            });
        }
        Self::open_store(dir, info_of(embedder), options)
    }

    /// Opens a knowledge base that must already exist (for searching and answering): a
    /// missing one is [`Error::NotFound`] and a damaged database [`Error::Damaged`], and
    /// nothing is created or initialised. Stale derived indexes are still caught up from
    /// SQLite, which never loses data.
    pub fn open_existing(dir: &Path, embedder: &dyn Embedder) -> Result<Self> {
        Self::open_existing_with(dir, embedder, KbOptions::default())
    }

    pub fn open_existing_with(
        dir: &Path,
        embedder: &dyn Embedder,
        options: KbOptions,
    ) -> Result<Self> {
        match Store::inspect(&dir.join(DB_FILE))? {
            DbState::Ready => Self::open_store(dir, info_of(embedder), options),
            DbState::Missing => Err(Error::NotFound {
                path: dir.to_owned(),
            }),
            DbState::Uninitialised(reason) => Err(Error::Damaged {
                path: dir.to_owned(),
                reason,
            }),
        }
    }

    /// The store of the knowledge base in `dir`, read-only and without an embedder or the
    /// derived indexes: for reading which documents it holds at which version (adapter
    /// lineage). Missing is [`Error::NotFound`].
    pub fn read_store(dir: &Path) -> Result<Store> {
        let db = dir.join(DB_FILE);
        if !db.is_file() {
            return Err(Error::NotFound {
                path: dir.to_owned(),
            });
        }
        Store::open_read_only(&db)
    }

    /// Copies the knowledge base in `src` to `dst` (which must not exist), holding `src`'s
    /// writer lock so no ingest changes it meanwhile: a scratch copy to change without
    /// touching the original.
    pub fn copy(src: &Path, dst: &Path) -> Result<()> {
        if !src.join(DB_FILE).is_file() {
            return Err(Error::NotFound {
                path: src.to_owned(),
            });
        }
        if dst.exists() {
            return Err(Error::io(
                dst,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
            ));
        }
        let _lock = Self::lock_writer(src)?;
        copy_tree(src, dst)
    }

    pub(crate) fn open_store(dir: &Path, info: EmbedderInfo, options: KbOptions) -> Result<Self> {
        let store = Store::open(Some(&dir.join(DB_FILE)))?;
        store.check_embedder(dir, &info)?;
        let (bm25, bm25_problem) = Bm25Index::open(&dir.join(BM25_DIR), options.bm25)?;
        let (vectors, vec_problem) =
            LocalVectorIndex::open(&dir.join(VECTOR_FILE), info.dimension, options.vectors);
        let mut kb = Self::assemble(Some(dir.to_owned()), store, bm25, Box::new(vectors), info);
        kb.repairs
            .extend(bm25_problem.map(|p| format!("BM25 index: {p}")));
        kb.repairs
            .extend(vec_problem.map(|p| format!("vector index: {p}")));
        match kb.catch_up() {
            Ok(()) => {}
            // Another process (`ingest --watch`) holds the BM25 writer and will bring the
            // indexes up to date itself; searching its last commit is what a reader wants.
            Err(Error::Tantivy {
                source: tantivy::TantivyError::LockFailure(..),
                ..
            }) => kb
                .repairs
                .push("another process is writing; searching its last checkpoint".into()),
            Err(e) => return Err(e),
        }
        Ok(kb)
    }

    /// Takes the writer lock of the knowledge base in `dir` (created if needed), so that two
    /// ingests never interleave their files: the second fails at once with [`Error::Busy`]
    /// naming the holder's pid, before it changes anything. Readers do not take it.
    pub fn lock_writer(dir: &Path) -> Result<WriterLock> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(WRITER_LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Busy {
                    path: dir.to_owned(),
                    pid: holder.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The pid is only for the message of whoever comes second.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        written.map_err(|e| Error::io(&path, e))?;
        Ok(WriterLock { _file: file })
    }

    /// A knowledge base that lives in memory only (SQLite `:memory:`, tantivy in RAM).
    pub fn in_memory(embedder: &dyn Embedder) -> Result<Self> {
        Self::in_memory_with(embedder, KbOptions::default())
    }

    pub fn in_memory_with(embedder: &dyn Embedder, options: KbOptions) -> Result<Self> {
        let store = Store::open(None)?;
        let info = info_of(embedder);
        store.check_embedder(Path::new(":memory:"), &info)?;
        let bm25 = Bm25Index::in_memory(options.bm25)?;
        let vectors = LocalVectorIndex::in_memory(info.dimension, options.vectors);
        Ok(Self::assemble(None, store, bm25, Box::new(vectors), info))
    }

    fn assemble(
        dir: Option<PathBuf>,
        store: Store,
        bm25: Bm25Index,
        vectors: Box<dyn VectorIndex>,
        embedder: EmbedderInfo,
    ) -> Self {
        KnowledgeBase {
            dir,
            bm25_applied: bm25.committed_seq(),
            vectors_applied: vectors.committed_seq(),
            store,
            bm25,
            vectors,
            embedder,
            repairs: Vec::new(),
        }
    }

    /// The directory, or `None` for an in-memory knowledge base.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn shown_path(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(":memory:"))
    }

    pub fn embedder_info(&self) -> &EmbedderInfo {
        &self.embedder
    }

    /// The SQLite store, for reads the other methods do not cover.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What opening had to repair (empty when every index was current).
    pub fn repairs(&self) -> &[String] {
        &self.repairs
    }

    pub fn documents(&self) -> Result<Vec<StoredDocument>> {
        self.store.documents()
    }

    pub fn document(&self, source: &str) -> Result<Option<StoredDocument>> {
        self.store.document(source)
    }

    /// Chunks by id, in the order asked (ids deleted meanwhile are skipped).
    pub fn chunks(&self, ids: &[i64]) -> Result<Vec<StoredChunk>> {
        self.store.chunks(ids)
    }

    /// The chunks of chunk `id`'s document around it, in document order: up to `before`
    /// before it, the chunk itself, up to `after` after it. Empty when `id` was deleted
    /// meanwhile. An indexed lookup on (document, ordinal), for context expansion.
    pub fn neighbours(&self, id: i64, before: usize, after: usize) -> Result<Vec<StoredChunk>> {
        self.store.neighbour_chunks(id, before, after)
    }

    /// Embeds `chunks` (reusing vectors already stored for identical texts) and writes the
    /// document. Call [`checkpoint`](Self::checkpoint) after a batch of writes.
    pub fn put_document(
        &mut self,
        doc: &DocumentRecord,
        chunks: &[Chunk],
        embedder: &dyn Embedder,
    ) -> Result<Vec<i64>> {
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let vectors = crate::embedding::embed_texts(&self.store, embedder, &texts, &doc.source)?;
        self.put_embedded(doc, chunks, &vectors)
    }

    /// Writes a document whose chunks are already embedded.
    pub fn put_embedded(
        &mut self,
        doc: &DocumentRecord,
        chunks: &[Chunk],
        vectors: &[Vec<f32>],
    ) -> Result<Vec<i64>> {
        self.check_dimensions(&doc.source, vectors)?;
        let ids = self.store.put_document(doc, chunks, vectors)?;
        self.apply_pending()?;
        Ok(ids)
    }

    /// Replaces everything stored for a file with its (embedded) documents, in one
    /// transaction. Returns the chunk ids of each document.
    pub fn put_file(
        &mut self,
        file: &FileRecord,
        docs: &[NewDocument<'_>],
    ) -> Result<Vec<Vec<i64>>> {
        for d in docs {
            self.check_dimensions(d.source, d.vectors)?;
        }
        let ids = self.store.put_file(file, docs)?;
        self.apply_pending()?;
        Ok(ids)
    }

    fn check_dimensions(&self, source: &str, vectors: &[Vec<f32>]) -> Result<()> {
        match vectors.iter().find(|v| v.len() != self.embedder.dimension) {
            Some(v) => Err(Error::Dimension {
                path: self.shown_path(),
                what: format!("a vector of {source}"),
                expected: self.embedder.dimension,
                actual: v.len(),
            }),
            None => Ok(()),
        }
    }

    /// Removes a document from every index. `false` if it was not there.
    pub fn delete_document(&mut self, source: &str) -> Result<bool> {
        let removed = self.store.delete_document(source)?;
        self.apply_pending()?;
        Ok(removed)
    }

    /// Removes every document of a file from every index. Returns how many there were.
    pub fn delete_file(&mut self, file: &str) -> Result<usize> {
        let removed = self.store.delete_file(file)?;
        self.apply_pending()?;
        Ok(removed)
    }

    /// Applies logged changes the derived indexes have not seen yet (in memory).
    fn apply_pending(&mut self) -> Result<()> {
        let from = self.bm25_applied.min(self.vectors_applied);
        for (seq, id, added) in self.store.changes_since(from)? {
            let chunk = if added {
                self.store.indexed_chunk(id)?
            } else {
                None
            };
            if seq > self.bm25_applied {
                match &chunk {
                    Some(c) => self.bm25.add(c)?,
                    None if !added => self.bm25.remove(id)?,
                    // Added, then deleted later in the log: the later removal wins.
                    None => {}
                }
                self.bm25_applied = seq;
            }
            if seq > self.vectors_applied {
                match &chunk {
                    Some(c) => self.vectors.add(c.id, &c.vector)?,
                    None if !added => {
                        self.vectors.remove(id)?;
                    }
                    None => {}
                }
                self.vectors_applied = seq;
            }
        }
        let seq = self.store.seq()?;
        self.bm25_applied = self.bm25_applied.max(seq);
        self.vectors_applied = self.vectors_applied.max(seq);
        Ok(())
    }

    /// Makes the derived indexes durable at the current sequence and prunes the change log.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.apply_pending()?;
        let seq = self.store.seq()?;
        if self.bm25.committed_seq() != seq {
            self.bm25.commit(seq)?;
        }
        if self.vectors.committed_seq() != seq {
            self.vectors.commit(seq)?;
        }
        self.store.prune_changes(seq)
    }

    /// Brings both derived indexes up to SQLite: replay when the log still holds what they
    /// missed, rebuild otherwise or when counts disagree afterwards.
    fn catch_up(&mut self) -> Result<()> {
        let seq = self.store.seq()?;
        let pruned = self.store.pruned_through()?;
        let stale = |s: u64| s > seq || s < pruned;
        let (bs, vs) = (self.bm25.committed_seq(), self.vectors.committed_seq());
        if stale(bs) {
            self.rebuild_bm25(format!("BM25 index at sequence {bs}, database at {seq}"))?;
        }
        if stale(vs) {
            self.rebuild_vectors(format!("vector index at sequence {vs}, database at {seq}"))?;
        }
        if self.bm25_applied < seq || self.vectors_applied < seq {
            self.repairs.push(format!(
                "replayed changes {}..{seq} into the derived indexes",
                self.bm25_applied.min(self.vectors_applied) + 1
            ));
        }
        self.checkpoint()?;
        let chunks = self.store.chunk_count()?;
        if self.bm25.num_docs() != chunks {
            let n = self.bm25.num_docs();
            self.rebuild_bm25(format!("BM25 index has {n} chunks, database {chunks}"))?;
        }
        if self.vectors.len() != chunks {
            let n = self.vectors.len();
            self.rebuild_vectors(format!("vector index has {n} vectors, database {chunks}"))?;
        }
        self.checkpoint()
    }

    fn rebuild_bm25(&mut self, why: String) -> Result<()> {
        self.repairs
            .push(format!("rebuilt BM25 index from SQLite: {why}"));
        self.bm25.clear()?;
        let seq = self.store.seq()?;
        let bm25 = &mut self.bm25;
        self.store.for_each_indexed_chunk(|c| bm25.add(&c))?;
        self.bm25.commit(seq)?;
        self.bm25_applied = seq;
        Ok(())
    }

    fn rebuild_vectors(&mut self, why: String) -> Result<()> {
        self.repairs
            .push(format!("rebuilt vector index from SQLite: {why}"));
        self.vectors.clear()?;
        let seq = self.store.seq()?;
        let vectors = &mut self.vectors;
        self.store
            .for_each_indexed_chunk(|c| vectors.add(c.id, &c.vector))?;
        self.vectors.commit(seq)?;
        self.vectors_applied = seq;
        Ok(())
    }

    /// Chunk ids by BM25 score, best first.
    pub fn bm25_search(
        &self,
        text: &str,
        k: usize,
        filter: Option<SharedFilter>,
    ) -> Result<Vec<(i64, f32)>> {
        self.bm25.search(text, k, filter)
    }

    /// Chunk ids by cosine similarity to `query`, best first.
    pub fn dense_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<SharedFilter>,
    ) -> Result<Vec<(i64, f32)>> {
        match filter {
            Some(f) => self.vectors.search(query, k, Some(&*f)),
            None => self.vectors.search(query, k, None),
        }
    }

    /// The analyzed BM25 terms of a text (for explaining matches).
    pub fn bm25_terms(&self, text: &str) -> Vec<String> {
        self.bm25.analyze(text)
    }

    /// The number of chunks in the BM25 index and each analyzed term's document frequency
    /// there: the statistics BM25 weighs terms by.
    pub fn bm25_doc_freqs(&self, terms: &[String]) -> Result<(u64, Vec<u64>)> {
        self.bm25.doc_freqs(terms)
    }

    /// Removes rows that reference missing rows (chunks without document, vectors without
    /// chunk) in one transaction, drops them from the derived indexes and checkpoints.
    /// Returns (chunks, vectors) removed. Documents are never removed.
    pub(crate) fn remove_orphans(&mut self) -> Result<(usize, usize)> {
        let removed = self.store.remove_orphans()?;
        self.checkpoint()?;
        Ok(removed)
    }

    /// Counts from every index, for `ragtune kb check` and tests.
    pub fn health(&self) -> Result<Health> {
        Ok(Health {
            documents: self.store.document_count()?,
            chunks: self.store.chunk_count()?,
            sqlite_vectors: self.store.vector_count()?,
            bm25_docs: self.bm25.num_docs(),
            index_vectors: self.vectors.len(),
            orphans: self.store.orphan_count()?,
            seq: self.store.seq()?,
            bm25_seq: self.bm25.committed_seq(),
            vector_seq: self.vectors.committed_seq(),
        })
    }
}

fn info_of(embedder: &dyn Embedder) -> EmbedderInfo {
    EmbedderInfo {
        name: embedder.name().to_owned(),
        dimension: embedder.dimension(),
    }
}

/// Copies the files under `src` into `dst`, leaving out the writer lock.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| Error::io(&from, e))?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_file() && entry.file_name() != WRITER_LOCK_FILE {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}

impl crate::target::SyncTarget for KnowledgeBase {
    fn location(&self) -> String {
        self.shown_path().display().to_string()
    }

    fn embedder_info(&self) -> &EmbedderInfo {
        &self.embedder
    }

    fn files(&self) -> Result<Vec<crate::store::FileState>> {
        self.store.files()
    }

    fn chunking(&self) -> Result<Option<ragtune_ingest::ChunkOptions>> {
        self.store
            .meta(crate::chunking::META_KEY)?
            .map(|s| crate::chunking::decode(&self.location(), &s))
            .transpose()
    }

    fn record_chunking(&mut self, chunking: &ragtune_ingest::ChunkOptions) -> Result<()> {
        self.store.set_meta(
            crate::chunking::META_KEY,
            &crate::chunking::encode(chunking),
        )
    }

    fn document_hash(&self, source: &str) -> Result<Option<String>> {
        Ok(self.store.document(source)?.map(|d| d.hash))
    }

    fn sources(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .documents()?
            .into_iter()
            .map(|d| d.source)
            .collect())
    }

    fn touch_file(&mut self, file: &str, mtime_ns: i64) -> Result<()> {
        self.store.touch_file(file, mtime_ns)
    }

    fn cached_vectors(&self, texts: &[&str]) -> Result<HashMap<[u8; 32], Vec<f32>>> {
        self.store.cached_vectors(texts)
    }

    fn put_file(&mut self, file: &FileRecord, docs: &[NewDocument<'_>]) -> Result<bool> {
        KnowledgeBase::put_file(self, file, docs).map(|_| true)
    }

    fn delete_file(&mut self, file: &str) -> Result<usize> {
        KnowledgeBase::delete_file(self, file)
    }

    fn delete_document(&mut self, source: &str) -> Result<bool> {
        KnowledgeBase::delete_document(self, source)
    }

    fn checkpoint(&mut self) -> Result<Option<u64>> {
        KnowledgeBase::checkpoint(self)?;
        Ok(Some(self.store.seq()?))
    }
}
