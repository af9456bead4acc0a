//! BM25 over tantivy, a derived index: every chunk is one tantivy document (its id as a fast
//! field, its text, and its title + heading path as a second, boosted field). Each commit
//! carries the SQLite change sequence it reflects as its payload, so a stale or damaged index
//! is caught up or rebuilt on open.

use crate::error::Context;
use crate::store::IndexedChunk;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, Term, doc,
};

/// The analyzer: Lucene's English stop words and the Snowball English stemmer, as the BEIR
/// BM25 baseline (Elasticsearch's `english` analyzer) does.
const ANALYZER: &str = "ragtune_en";
const WRITER_MEMORY: usize = 64 << 20;

/// A chunk-id predicate that may travel into tantivy's segment collectors.
pub type SharedFilter = Arc<dyn Fn(i64) -> bool + Send + Sync>;

/// How BM25 queries are scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Options {
    /// Weight of matches in the title/heading field relative to the body; 0 ignores it.
    pub title_boost: f32,
}

impl Default for Bm25Options {
    fn default() -> Self {
        // SciFact nDCG@10 by boost: 0 -> 0.684, 0.2 -> 0.692, 0.35 -> 0.697, 0.5 -> 0.690,
        // 1 -> 0.666, 2 -> 0.624. A light boost helps; a heavy one drowns the body text.
        Bm25Options { title_boost: 0.3 }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    text: Field,
    title: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let id = b.add_i64_field("chunk_id", INDEXED | FAST);
    let text = b.add_text_field("text", text_opts.clone());
    let title = b.add_text_field("title", text_opts);
    (b.build(), Fields { id, text, title })
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The tantivy index of a knowledge base.
pub struct Bm25Index {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    // Created on first write, so readers never take tantivy's writer lock.
    writer: Option<IndexWriter>,
    fields: Fields,
    seq: u64,
    options: Bm25Options,
}

impl Bm25Index {
    pub fn in_memory(options: Bm25Options) -> Result<Self> {
        let (schema, _) = schema();
        Self::from_index(Index::create_in_ram(schema), Path::new("<memory>"), options)
    }

    /// Opens the index in `dir`. A missing, damaged or foreign index is replaced by an empty
    /// one at sequence 0 (rebuilt from SQLite by the caller); the reason is returned.
    pub fn open(dir: &Path, options: Bm25Options) -> Result<(Self, Option<String>)> {
        if dir.join("meta.json").exists() {
            match Index::open_in_dir(dir)
                .at(dir)
                .and_then(|ix| Self::from_index(ix, dir, options))
            {
                Ok(ix) => return Ok((ix, None)),
                Err(e) => {
                    let problem = e.to_string();
                    return Ok((Self::create(dir, options)?, Some(problem)));
                }
            }
        }
        let had_files = dir.exists();
        let ix = Self::create(dir, options)?;
        Ok((ix, had_files.then(|| "meta.json is missing".to_owned())))
    }

    /// Opens the index in `dir` without changing it: `Ok(None)` when there is no `meta.json`,
    /// else the sequence it reflects and its number of documents; an error when unreadable.
    pub fn inspect(dir: &Path) -> Result<Option<(u64, usize)>> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let ix = Self::from_index(
            Index::open_in_dir(dir).at(dir)?,
            dir,
            Bm25Options::default(),
        )?;
        Ok(Some((ix.committed_seq(), ix.num_docs())))
    }

    fn create(dir: &Path, options: Bm25Options) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (schema, _) = schema();
        let index = Index::create_in_dir(dir, schema).at(dir)?;
        Self::from_index(index, dir, options)
    }

    fn from_index(index: Index, path: &Path, options: Bm25Options) -> Result<Self> {
        let (expected, _) = schema();
        let s = index.schema();
        let field = |name: &str| {
            s.get_field(name).map_err(|e| Error::Tantivy {
                path: path.to_owned(),
                source: e,
            })
        };
        let fields = Fields {
            id: field("chunk_id")?,
            text: field("text")?,
            title: field("title")?,
        };
        if s.fields().count() != expected.fields().count() {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                what: "BM25 index",
                reason: "unexpected schema".into(),
            });
        }
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .at(path)?;
        let seq = index
            .load_metas()
            .at(path)?
            .payload
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(Bm25Index {
            path: path.to_owned(),
            index,
            reader,
            writer: None,
            fields,
            seq,
            options,
        })
    }

    fn writer(&mut self) -> Result<&mut IndexWriter> {
        if self.writer.is_none() {
            let w = self
                .index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .at(&self.path)?;
            self.writer = Some(w);
        }
        Ok(self.writer.as_mut().expect("just created"))
    }

    pub fn committed_seq(&self) -> u64 {
        self.seq
    }

    pub fn num_docs(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    pub fn add(&mut self, chunk: &IndexedChunk) -> Result<()> {
        let f = self.fields;
        let path = self.path.clone();
        self.writer()?
            .add_document(doc!(f.id => chunk.id, f.text => chunk.text.as_str(), f.title => chunk.title.as_str()))
            .at(&path)?;
        Ok(())
    }

    pub fn remove(&mut self, id: i64) -> Result<()> {
        let term = Term::from_field_i64(self.fields.id, id);
        self.writer()?.delete_term(term);
        Ok(())
    }

    pub fn clear(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.writer()?.delete_all_documents().at(&path)?;
        Ok(())
    }

    /// Commits with `seq` as payload, atomically (tantivy swaps meta.json last).
    pub fn commit(&mut self, seq: u64) -> Result<()> {
        let path = self.path.clone();
        let payload = seq.to_string();
        let writer = self.writer()?;
        let mut prepared = writer.prepare_commit().at(&path)?;
        prepared.set_payload(&payload);
        prepared.commit().at(&path)?;
        self.reader.reload().at(&path)?;
        self.seq = seq;
        Ok(())
    }

    /// The analyzed terms of a text, as the index sees them.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// The number of indexed chunks and each term's document frequency in the body field
    /// (terms as [`Self::analyze`] gives them). Deleted chunks count until their segment is
    /// merged, as they do in tantivy's own BM25.
    pub fn doc_freqs(&self, terms: &[String]) -> Result<(u64, Vec<u64>)> {
        let searcher = self.reader.searcher();
        let dfs = terms
            .iter()
            .map(|t| searcher.doc_freq(&Term::from_field_text(self.fields.text, t)))
            .collect::<tantivy::Result<Vec<u64>>>()
            .at(&self.path)?;
        Ok((searcher.num_docs(), dfs))
    }

    /// The `k` best chunks by BM25 (body, plus the boosted title field), restricted by
    /// `filter` before the cut-off.
    pub fn search(
        &self,
        text: &str,
        k: usize,
        filter: Option<SharedFilter>,
    ) -> Result<Vec<(i64, f32)>> {
        let terms = self.analyze(text);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            let body = Term::from_field_text(self.fields.text, t);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(body, IndexRecordOption::WithFreqs)),
            ));
            if self.options.title_boost > 0.0 {
                let title = Term::from_field_text(self.fields.title, t);
                let q = TermQuery::new(title, IndexRecordOption::WithFreqs);
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(q), self.options.title_boost)),
                ));
            }
        }
        let query = BooleanQuery::new(clauses);
        let collector = TopChunks { k, filter };
        self.reader
            .searcher()
            .search(&query, &collector)
            .at(&self.path)
    }
}

/// Top-k by score, reading chunk ids from the fast field and applying the filter first.
struct TopChunks {
    k: usize,
    filter: Option<SharedFilter>,
}

struct SegmentTopChunks {
    ids: tantivy::columnar::Column<i64>,
    filter: Option<SharedFilter>,
    top: crate::vector::TopK,
}

impl Collector for TopChunks {
    type Fruit = Vec<(i64, f32)>;
    type Child = SegmentTopChunks;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(SegmentTopChunks {
            ids: segment.fast_fields().i64("chunk_id")?,
            filter: self.filter.clone(),
            top: crate::vector::TopK::new(self.k),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(i64, f32)>>) -> tantivy::Result<Self::Fruit> {
        let mut top = crate::vector::TopK::new(self.k);
        for (id, s) in fruits.into_iter().flatten() {
            top.push(id, s);
        }
        Ok(top.into_sorted())
    }
}

impl SegmentCollector for SegmentTopChunks {
    type Fruit = Vec<(i64, f32)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(id) = self.ids.first(doc) else {
            return;
        };
        if self.filter.as_ref().is_none_or(|f| f(id)) {
            self.top.push(id, score);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.top.into_sorted()
    }
}
