//! [`PgRetriever`]: dense (pgvector cosine, HNSW or exact), full text (BM25 over postings
//! kept in SQL) and hybrid: both rankings computed as
//! two CTEs and fused by reciprocal rank in the same statement, one round trip per query.
//! Filters use the embedded store's own matching (`ragtune_retrieve::filter`) to pick the
//! allowed documents, which the SQL then restricts to.

use crate::store::{CHUNK_COLUMNS, PgKb, chunk_row};
use crate::vector::PgVector;
use postgres::Row;
use ragtune_core::{Embedder, Filter, Hit, Query, RetrieveError, Retriever, SearchMode};
use ragtune_retrieve::filter::{PathGlob, document_matches};
use ragtune_retrieve::sentence_match::{QUESTION_WORDS, SentenceMatch, rerank, sentences};
use ragtune_retrieve::{RetrieveOptions, to_hit};
use std::collections::BTreeMap;

/// Answers queries from a PostgreSQL knowledge base with the embedder that built it.
pub struct PgRetriever<'a> {
    kb: &'a PgKb,
    embedder: &'a dyn Embedder,
    options: RetrieveOptions,
}

/// BM25 over the postings (schema migration 2), in SQL: `$1` the question, parameter
/// `limit` how many, `allowed` the allowed documents (NULL: all). Yields `(id, score)` best first. The question's
/// terms are its `to_tsvector` lexemes (stemmed, stop words dropped, as the chunks' are);
/// each scores as tantivy scores it (k1 1.2, b 0.75, idf ln(1 + (N - df + 0.5) / (df + 0.5)))
/// in the text and, times the title boost, in the title, each field with its own document
/// frequencies and mean length (document frequencies are counted from the same postings the
/// score reads, in one pass). `ts_rank` over the GIN index, which this replaces, has no IDF:
/// SciFact nDCG@10 0.606 against this ranking's 0.698.
fn bm25(s: &str, limit: &str, allowed: &str) -> String {
    let boost = ragtune_index::Bm25Options::default().title_boost;
    // float8 throughout: a bare 0.5 would make the arithmetic numeric, 30% slower.
    format!(
        "SELECT p.chunk_id AS id, sum(
                ln(1 + (st.n - p.df_text + 0.5::float8) / (p.df_text + 0.5::float8))
                  * p.tf_text * 2.2::float8
                  / (p.tf_text + 1.2::float8 * (0.25::float8 + 0.75::float8 * p.len_text / st.avg_text))
              + {boost}::float8 * ln(1 + (st.n - p.df_title + 0.5::float8) / (p.df_title + 0.5::float8))
                  * p.tf_title * 2.2::float8
                  / (p.tf_title + 1.2::float8 * (0.25::float8 + 0.75::float8 * p.len_title / st.avg_title))
            )::float4 AS score
         FROM (SELECT p.*, count(*) FILTER (WHERE p.tf_text > 0) OVER term AS df_text,
                      count(*) FILTER (WHERE p.tf_title > 0) OVER term AS df_title
               FROM {s}.postings p
               WHERE p.term = ANY(ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', $1))))
               WINDOW term AS (PARTITION BY p.term)) p
         CROSS JOIN (SELECT chunks::float8 AS n,
                            greatest(text_tokens::float8 / greatest(chunks, 1), 1) AS avg_text,
                            greatest(title_tokens::float8 / greatest(titled, 1), 1) AS avg_title
                     FROM {s}.text_stats) st
         WHERE {allowed}::bigint[] IS NULL
            OR p.chunk_id IN (SELECT id FROM {s}.chunks WHERE doc_id = ANY({allowed}))
         GROUP BY p.chunk_id
         ORDER BY score DESC, id
         LIMIT {limit}"
    )
}

impl<'a> PgRetriever<'a> {
    /// Fails when `embedder` is not the one the knowledge base was built with.
    pub fn new(kb: &'a PgKb, embedder: &'a dyn Embedder) -> Result<Self, RetrieveError> {
        kb.check_embedder(embedder)
            .map_err(|e| RetrieveError::InvalidQuery(e.to_string()))?;
        Ok(PgRetriever {
            kb,
            embedder,
            options: RetrieveOptions::default(),
        })
    }

    pub fn with_options(mut self, options: RetrieveOptions) -> Self {
        self.options = options;
        self
    }

    /// The documents a filter allows (`None`: no filter, all of them).
    fn allowed(&self, filter: &Filter) -> Result<Option<Vec<i64>>, RetrieveError> {
        if filter == &Filter::default() {
            return Ok(None);
        }
        let glob = filter
            .path_glob
            .as_deref()
            .map(PathGlob::new)
            .transpose()
            .map_err(|e| RetrieveError::InvalidQuery(e.to_string()))?;
        Ok(Some(
            self.kb
                .documents()?
                .iter()
                .filter(|d| document_matches(filter, glob.as_ref(), d))
                .map(|d| d.id)
                .collect(),
        ))
    }

    /// Reorders `head` by its chunks' best sentences ([`ragtune_retrieve::sentence_match`]),
    /// with PostgreSQL's English analysis (the postings' lexemes) and document frequencies, in
    /// two round trips.
    fn sentence_stage(&self, question: &str, head: &mut [Hit]) -> Result<(), RetrieveError> {
        let s = &self.kb.location().schema;
        let mut client = self.kb.client();
        let db = |e| RetrieveError::from(self.kb.db("reordering by sentence", e));
        // Each text's lexemes in the order they occur.
        const LEXEMES: &str = "array(SELECT t.lexeme FROM unnest(to_tsvector('english', u.x)) t,
                                      unnest(t.positions) p ORDER BY p, t.lexeme)";
        let rows = client
            .query(
                &format!(
                    "SELECT {LEXEMES} FROM unnest(ARRAY[$1::text, $2::text]) WITH ORDINALITY u(x, i)
                     ORDER BY u.i"
                ),
                &[&question, &QUESTION_WORDS],
            )
            .map_err(db)?;
        let mut terms: Vec<String> = rows[0].get(0);
        let skip: Vec<String> = rows[1].get(0);
        terms.retain(|t| !skip.contains(t));
        if terms.is_empty() {
            return Ok(());
        }
        let stats = client
            .query_one(
                &format!(
                    "SELECT (SELECT chunks FROM {s}.text_stats),
                            array(SELECT (SELECT count(*) FROM {s}.postings p
                                          WHERE p.term = q.term AND p.tf_text > 0)
                                  FROM unnest($1::text[]) WITH ORDINALITY q(term, i) ORDER BY q.i)"
                ),
                &[&terms],
            )
            .map_err(db)?;
        let docs: i64 = stats.get(0);
        let dfs: Vec<i64> = stats.get(1);
        let dfs: Vec<u64> = dfs.into_iter().map(|d| d.max(0) as u64).collect();
        let matcher = SentenceMatch::new(&terms, docs.max(0) as u64, &dfs);
        // Every sentence of the head in one round trip, then grouped back by chunk.
        let mut owner = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        for (i, hit) in head.iter().enumerate() {
            for sentence in sentences(&hit.text) {
                owner.push(i);
                texts.push(sentence);
            }
        }
        let analyzed = client
            .query(
                &format!(
                    "SELECT {LEXEMES} FROM unnest($1::text[]) WITH ORDINALITY u(x, i) ORDER BY u.i"
                ),
                &[&texts],
            )
            .map_err(db)?;
        let mut by_chunk: Vec<Vec<Vec<String>>> = vec![Vec::new(); head.len()];
        for (i, row) in owner.into_iter().zip(&analyzed) {
            by_chunk[i].push(row.get(0));
        }
        let scores: Vec<f32> = by_chunk.iter().map(|s| matcher.best_sentence(s)).collect();
        rerank(head, &scores, |h| &mut h.score);
        Ok(())
    }

    fn run(&self, query: &Query) -> Result<Vec<Row>, RetrieveError> {
        let s = &self.kb.location().schema;
        let allowed = self.allowed(&query.filter)?;
        // Hybrid fetches the sentence stage's whole head; `retrieve` cuts it to k after.
        let k = query.k.max(self.options.sentence_head(query)) as i64;
        let mut client = self.kb.client();
        let db = |e| RetrieveError::from(self.kb.db("searching", e));
        let rows = match query.mode {
            SearchMode::Dense => {
                let v = PgVector(self.embedder.embed_query(&query.text)?);
                client.query(
                    &format!(
                        "SELECT {CHUNK_COLUMNS}, (1 - n.dist)::float4, 1::bigint, NULL::bigint
                         FROM (SELECT c.id, c.embedding <=> $1 AS dist FROM {s}.chunks c
                               WHERE $3::bigint[] IS NULL OR c.doc_id = ANY($3)
                               ORDER BY c.embedding <=> $1 LIMIT $2) n
                         JOIN {s}.chunks c ON c.id = n.id JOIN {s}.documents d ON d.id = c.doc_id
                         ORDER BY n.dist, c.id"
                    ),
                    &[&v, &k, &allowed],
                )
            }
            SearchMode::Bm25 => client.query(
                &format!(
                    "SELECT {CHUNK_COLUMNS}, l.score, NULL::bigint, 1::bigint
                     FROM ({}) l
                     JOIN {s}.chunks c ON c.id = l.id JOIN {s}.documents d ON d.id = c.doc_id
                     ORDER BY l.score DESC, c.id",
                    bm25(s, "$2", "$3")
                ),
                &[&query.text, &k, &allowed],
            ),
            SearchMode::Hybrid => {
                let o = &self.options;
                let depth = (query.k * o.depth_factor).max(o.min_depth).max(query.k) as i64;
                let v = PgVector(self.embedder.embed_query(&query.text)?);
                client.query(
                    &format!(
                        "WITH dense AS (
                             SELECT id, row_number() OVER (ORDER BY dist, id) AS r
                             FROM (SELECT c.id, c.embedding <=> $2 AS dist FROM {s}.chunks c
                                   WHERE $4::bigint[] IS NULL OR c.doc_id = ANY($4)
                                   ORDER BY c.embedding <=> $2 LIMIT $3) n),
                         lexical AS (
                             SELECT id, row_number() OVER (ORDER BY score DESC, id) AS r
                             FROM ({lexical}) l),
                         fused AS (
                             SELECT coalesce(n.id, l.id) AS id, n.r AS dr, l.r AS lr,
                                    coalesce($6::float8 / ($5::float8 + n.r), 0)
                                        + coalesce($7::float8 / ($5::float8 + l.r), 0)
                                        AS score
                             FROM dense n FULL OUTER JOIN lexical l ON n.id = l.id)
                         SELECT {CHUNK_COLUMNS}, f.score::float4, f.dr, f.lr
                         FROM fused f JOIN {s}.chunks c ON c.id = f.id
                         JOIN {s}.documents d ON d.id = c.doc_id
                         ORDER BY f.score DESC, least(f.dr, f.lr), f.id
                         LIMIT $8",
                        lexical = bm25(s, "$3", "$4")
                    ),
                    &[
                        &query.text,
                        &v,
                        &depth,
                        &allowed,
                        &(o.rrf_k as f64),
                        &(o.dense_weight as f64),
                        &(o.bm25_weight as f64),
                        &k,
                    ],
                )
            }
        };
        rows.map_err(db)
    }
}

impl Retriever for PgRetriever<'_> {
    fn retrieve(&self, query: &Query) -> Result<Vec<Hit>, RetrieveError> {
        if query.text.trim().is_empty() {
            return Err(RetrieveError::InvalidQuery(
                "the query is empty; type a question".into(),
            ));
        }
        let rows = self.run(query)?;
        let hits: Vec<Hit> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let score: f32 = r.get(11);
                let mut ranks = BTreeMap::new();
                // Single-mode queries carry their position; hybrid ones each list's rank.
                let single = query.mode != SearchMode::Hybrid;
                for (col, mode) in [(12, SearchMode::Dense), (13, SearchMode::Bm25)] {
                    if let Some(rank) = r.get::<_, Option<i64>>(col) {
                        let rank = if single { i as i64 + 1 } else { rank };
                        ranks.insert(mode.as_str().to_owned(), rank as u32);
                    }
                }
                to_hit(chunk_row(r), score, ranks)
            })
            .collect();
        self.options
            .finish_hits(query, hits, |head| self.sentence_stage(&query.text, head))
    }

    fn neighbours(
        &self,
        hit: &Hit,
        before: usize,
        after: usize,
    ) -> Result<Vec<Hit>, RetrieveError> {
        Ok(self
            .kb
            .neighbours(hit.chunk_id, before, after)?
            .into_iter()
            .map(|c| to_hit(c, hit.score, BTreeMap::new()))
            .collect())
    }
}
