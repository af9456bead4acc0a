//! `ragtune ingest`, `ragtune search` and `ragtune eval retrieval`.

use crate::progress::SyncBar;
use crate::term;
use anyhow::{Context, Result, bail};
use clap::Args;
use ragtune_catalog::{ModelStore, ResolvedModel};
use ragtune_core::{
    EmbedError, Embedder, Filter, Format, Query, Retriever, SearchMode, TokenCounter,
};
use ragtune_embed::{EmbedOptions, Precision, SentenceEmbedder};
use ragtune_index::{
    IngestSource, KnowledgeBase, SyncOptions, SyncSummary, SyncTarget, WatchOptions, load_sql_rows,
    sync_into, sync_records_into,
};
use ragtune_ingest::ChunkOptions;
use ragtune_remote::{Endpoint, RemoteEmbedder};
use ragtune_retrieve::KbRetriever;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Where a knowledge base is.
#[derive(Debug, Clone, PartialEq)]
pub enum KbLocation {
    /// A folder (the embedded store: SQLite + tantivy + vectors).
    Dir(PathBuf),
    /// A schema on a PostgreSQL server with pgvector (`postgres://USER@HOST/DB?kb=NAME`).
    Postgres(String),
}

/// Which knowledge base, embedded with which model.
#[derive(Debug, Args)]
pub struct KbArgs {
    /// Knowledge base: a folder (default: $RAGTUNE_HOME/kb/default), or a PostgreSQL URL
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?kb=NAME) for ingest, search, ask, eval qa, serve and compare.
    #[arg(long, env = "RAGTUNE_KB", value_parser = parse_kb)]
    pub kb: Option<KbLocation>,
    /// Embedding model: a catalogue name, a sentence-transformers folder, or a model on an
    /// OpenAI-compatible server (`openai:NAME@URL`; key from $RAGTUNE_REMOTE_API_KEY).
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
}

/// The commands that take a PostgreSQL knowledge base; the others need a folder.
const POSTGRES_COMMANDS: &str = "ingest, search, ask, eval qa, serve and compare";

impl KbArgs {
    /// The knowledge base's folder; a PostgreSQL knowledge base is refused with the commands
    /// that take one.
    pub fn dir(&self) -> Result<PathBuf> {
        match &self.kb {
            Some(KbLocation::Dir(dir)) => Ok(dir.clone()),
            Some(KbLocation::Postgres(url)) => bail!(
                "--kb {}: this command works on a knowledge-base folder; knowledge bases on \
                 PostgreSQL work with {POSTGRES_COMMANDS}",
                shown_url(url)
            ),
            None => Ok(ragtune_catalog::default_home()?.join("kb").join("default")),
        }
    }
}

fn shown_url(url: &str) -> String {
    ragtune_pg::Location::parse(url)
        .map_or_else(|_| "postgres://...".to_owned(), |l| l.shown().to_owned())
}

/// A folder, or a `postgres://` URL (checked here, so a typo fails before any work).
pub(crate) fn parse_kb(s: &str) -> Result<KbLocation, String> {
    if ragtune_pg::is_postgres_url(s) {
        ragtune_pg::Location::parse(s).map_err(|e| e.to_string())?;
        return Ok(KbLocation::Postgres(s.to_owned()));
    }
    match s.split_once("://") {
        Some((scheme, _)) if !scheme.is_empty() && !scheme.contains('/') => Err(format!(
            "{s:?} is a URL; knowledge bases live in a folder or on PostgreSQL \
             (postgres://USER@HOST/DB?kb=NAME), not on {scheme}"
        )),
        _ => Ok(KbLocation::Dir(PathBuf::from(s))),
    }
}

/// A knowledge base is a folder for this command; a URL would silently become a folder
/// named `postgres:`, so it is refused with the commands that take one.
pub(crate) fn parse_kb_dir(s: &str) -> Result<PathBuf, String> {
    match parse_kb(s)? {
        KbLocation::Dir(dir) => Ok(dir),
        KbLocation::Postgres(url) => Err(format!(
            "{}: this command works on a knowledge-base folder; knowledge bases on PostgreSQL \
             work with {POSTGRES_COMMANDS}: pass a folder, e.g. --kb ./my-kb",
            shown_url(&url)
        )),
    }
}

/// A count that must be at least `MIN` (clap value parser).
pub fn at_least<const MIN: usize>(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n < MIN {
        return Err(format!("must be at least {MIN}, got {n}"));
    }
    Ok(n)
}

/// The embedding model of a knowledge base: a sentence-transformers folder run here, or a
/// model on an OpenAI-compatible server (`--embedder openai:NAME@URL`, key from
/// $RAGTUNE_REMOTE_API_KEY).
pub enum Embedding {
    Local(Box<SentenceEmbedder>),
    Remote(Box<RemoteEmbedder>),
}

impl Embedding {
    fn embedder(&self) -> &dyn Embedder {
        match self {
            Embedding::Local(e) => e.as_ref(),
            Embedding::Remote(e) => e.as_ref(),
        }
    }

    /// The most tokens a chunk should hold for this model.
    pub fn max_content_tokens(&self) -> usize {
        match self {
            Embedding::Local(e) => e.max_content_tokens(),
            Embedding::Remote(e) => e.max_content_tokens(),
        }
    }
}

impl Embedder for Embedding {
    fn name(&self) -> &str {
        self.embedder().name()
    }
    fn dimension(&self) -> usize {
        self.embedder().dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embedder().embed(texts)
    }
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embedder().embed_query(text)
    }
}

impl TokenCounter for Embedding {
    fn count_tokens(&self, text: &str) -> usize {
        match self {
            Embedding::Local(e) => e.count_tokens(text),
            Embedding::Remote(e) => e.count_tokens(text),
        }
    }
}

pub fn open_embedder(name: &str) -> Result<Embedding> {
    if Endpoint::is_remote(name) {
        let endpoint = Endpoint::parse(name)?;
        return Ok(Embedding::Remote(Box::new(RemoteEmbedder::connect(
            endpoint,
            ragtune_remote::Options::default(),
        )?)));
    }
    let store = ModelStore::from_env()?;
    match store.resolve(name)? {
        ResolvedModel::HfFolder(dir) => Ok(Embedding::Local(Box::new(
            SentenceEmbedder::load_with(&dir, &embed_options()?)
                .with_context(|| format!("loading embedder {name}"))?,
        ))),
        ResolvedModel::Gguf(path) => bail!(
            "{} is a GGUF generator, not an embedding model; use --embedder all-minilm-l6-v2",
            path.display()
        ),
    }
}

/// `RAGTUNE_EMBED_PRECISION`: `auto` (the default: bf16 matrix products on CPUs with AMX,
/// f32 elsewhere) or `f32` (sentence-transformers' vectors to within 1e-4 everywhere).
fn embed_options() -> Result<EmbedOptions> {
    let precision = match std::env::var("RAGTUNE_EMBED_PRECISION").ok().as_deref() {
        None | Some("" | "auto") => Precision::Auto,
        Some("f32") => Precision::F32,
        Some(other) => bail!(
            "RAGTUNE_EMBED_PRECISION={other:?} is not a precision: use auto (bf16 products on \
             CPUs with AMX, f32 elsewhere) or f32"
        ),
    };
    Ok(EmbedOptions {
        precision,
        ..EmbedOptions::default()
    })
}

/// Opens an existing knowledge base for reading: never creates or initialises one.
pub fn open_existing(args: &KbArgs, embedder: &Embedding) -> Result<KnowledgeBase> {
    Ok(KnowledgeBase::open_existing(&args.dir()?, embedder)?)
}

/// A knowledge base opened for searching, wherever it lives.
pub enum OpenedKb {
    Local(KnowledgeBase),
    Postgres(ragtune_pg::PgKb),
}

impl OpenedKb {
    /// Opens an existing knowledge base (nothing is created).
    pub fn open(args: &KbArgs, embedder: &Embedding) -> Result<Self> {
        match &args.kb {
            Some(location) => Self::at(location, embedder),
            None => Ok(OpenedKb::Local(open_existing(args, embedder)?)),
        }
    }

    /// Opens the existing knowledge base at `location` (nothing is created).
    pub fn at(location: &KbLocation, embedder: &Embedding) -> Result<Self> {
        Ok(match location {
            KbLocation::Postgres(url) => OpenedKb::Postgres(ragtune_pg::PgKb::open_existing(url)?),
            KbLocation::Dir(dir) => OpenedKb::Local(KnowledgeBase::open_existing(dir, embedder)?),
        })
    }

    /// Its retriever, with the embedder it was built with.
    pub fn retriever<'a>(&'a self, embedder: &'a dyn Embedder) -> Result<Box<dyn Retriever + 'a>> {
        Ok(match self {
            OpenedKb::Local(kb) => Box::new(KbRetriever::new(kb, embedder)?),
            OpenedKb::Postgres(kb) => Box::new(ragtune_pg::PgRetriever::new(kb, embedder)?),
        })
    }
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders to index; run again to pick up changes and deletions.
    #[arg(required_unless_present = "sql")]
    pub paths: Vec<PathBuf>,
    /// Index the rows of this query (one document per row, columns as metadata) from --db;
    /// run again to pick up changed and deleted rows.
    #[arg(long, requires = "db", conflicts_with_all = ["paths", "watch"])]
    pub sql: Option<String>,
    /// The database that --sql reads: a SQLite file, or a postgres:// URL.
    #[arg(long, requires = "sql")]
    pub db: Option<PathBuf>,
    /// Columns that hold the text of a row (comma-separated; needed with --sql).
    #[arg(long, value_delimiter = ',')]
    pub text_columns: Vec<String>,
    /// Keep running and follow changes under the paths.
    #[arg(long)]
    pub watch: bool,
    /// JSON/JSONL field that holds the text (dotted path; default: text, content or body).
    #[arg(long)]
    pub text_field: Option<String>,
    /// Most tokens of a chunk (at least 16; capped at what the embedder reads). Default: what
    /// the knowledge base was built with, 256 for a new one; another value than the built one
    /// is refused (its stored chunks would not be cut again).
    #[arg(long, value_parser = at_least::<16>)]
    pub max_tokens: Option<usize>,
    /// Tokens shared by consecutive chunks. Default: the knowledge base's, 32 for a new one.
    #[arg(long)]
    pub overlap: Option<usize>,
    /// Re-hash every file even when size and modification time are unchanged.
    #[arg(long)]
    pub rehash: bool,
    /// Also print where the time went (scan, extract, chunk, embed, write) and the rates.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub kb: KbArgs,
}

pub fn ingest(args: IngestArgs) -> Result<()> {
    if let Some(KbLocation::Postgres(url)) = &args.kb.kb {
        if args.watch {
            bail!(
                "--watch follows files into a knowledge-base folder; for {} run `ragtune ingest` \
                 again (from cron or a file-change hook): each run syncs only what changed",
                shown_url(url)
            );
        }
        let embedder = open_embedder(&args.kb.embedder)?;
        let mut kb = ragtune_pg::PgKb::open(url, &embedder)?;
        return failures(&ingest_into(&args, &mut kb, &embedder)?);
    }
    let dir = args.kb.dir()?;
    // Held until ingest (or --watch) ends: a second ingest is refused before it writes.
    let _writer = KnowledgeBase::lock_writer(&dir)?;
    let embedder = open_embedder(&args.kb.embedder)?;
    let mut kb = KnowledgeBase::open(&dir, &embedder)?;
    for repair in kb.repairs() {
        eprintln!("repaired: {repair}");
    }
    let summary = ingest_into(&args, &mut kb, &embedder)?;
    if !args.watch || args.sql.is_some() {
        return failures(&summary);
    }
    let source = ingest_source(&args, &embedder, kb.chunking()?);
    let shown = dir.display().to_string();
    eprintln!("watching {} path(s); Ctrl-C stops", args.paths.len());
    let stop = AtomicBool::new(false);
    let mut report = |event: &ragtune_index::SyncEvent<'_>| {
        if let ragtune_index::SyncEvent::Finished { summary } = event {
            print_summary(&shown, summary);
        }
    };
    kb.watch(
        &args.paths,
        &source,
        &embedder,
        &WatchOptions::default(),
        &mut report,
        &stop,
    )?;
    Ok(())
}

/// How files become chunks for this ingest: the knowledge base's `recorded` settings (or the
/// defaults, capped at what the embedder reads), with the options given over them.
fn ingest_source<'a>(
    args: &IngestArgs,
    embedder: &'a Embedding,
    recorded: Option<ChunkOptions>,
) -> IngestSource<'a> {
    let mut source = IngestSource::new(embedder);
    let cap = embedder.max_content_tokens();
    source.chunk = ragtune_index::chunking::recorded_or_default(recorded, cap);
    if let Some(max) = args.max_tokens {
        source.chunk.max_tokens = max.min(cap);
    }
    if let Some(overlap) = args.overlap {
        source.chunk.overlap_tokens = overlap;
    }
    if let Some(field) = &args.text_field {
        source.load.json.text_field = Some(field.clone());
    }
    source
}

/// One sync of the paths, or of the query's rows, into any store; its summary printed.
fn ingest_into(
    args: &IngestArgs,
    kb: &mut dyn SyncTarget,
    embedder: &Embedding,
) -> Result<SyncSummary> {
    let source = ingest_source(args, embedder, kb.chunking()?);
    let shown = kb.location();
    if let (Some(query), Some(db)) = (&args.sql, &args.db) {
        if args.text_columns.is_empty() {
            bail!("--sql needs --text-columns: the columns that hold each row's text");
        }
        let columns: Vec<&str> = args.text_columns.iter().map(String::as_str).collect();
        let (prefix, docs) = match db.to_str().filter(|d| ragtune_pg::is_postgres_url(d)) {
            Some(url) => {
                let (prefix, docs) = ragtune_pg::load_rows(url, query, &columns)?;
                let docs = docs
                    .into_iter()
                    .map(|document| {
                        let chunks = ragtune_ingest::chunk(&document, embedder, &source.chunk);
                        ragtune_index::LoadedDocument { document, chunks }
                    })
                    .collect::<Vec<_>>();
                (prefix, docs)
            }
            None => {
                // Sources name the database by its absolute path, so a later run from
                // elsewhere finds the same rows.
                let db_abs = std::fs::canonicalize(db)
                    .with_context(|| format!("the database {} cannot be opened", db.display()))?;
                let docs = load_sql_rows(&db_abs, query, &columns, embedder, &source.chunk)?;
                (format!("sqlite:{}#", db_abs.display()), docs)
            }
        };
        let summary = sync_records_into(
            kb,
            &prefix,
            &docs,
            &source.chunk,
            embedder,
            &mut SyncBar::new(),
        )?;
        print_summary(&shown, &summary);
        return Ok(summary);
    }
    let options = SyncOptions {
        rehash: args.rehash,
        ..SyncOptions::default()
    };
    let started = std::time::Instant::now();
    let summary = sync_into(
        kb,
        &args.paths,
        &source,
        embedder,
        &options,
        &mut SyncBar::new(),
    )?;
    let wall = started.elapsed();
    print_summary(&shown, &summary);
    if args.stats {
        print_stats(&summary, wall);
    }
    Ok(summary)
}

/// A sync with failed paths exits non-zero, after everything else was indexed.
fn failures(s: &SyncSummary) -> Result<()> {
    match s.failed.len() {
        0 => Ok(()),
        n => bail!("{n} path(s) could not be indexed (listed above); the others were"),
    }
}

fn print_summary(kb: &str, s: &SyncSummary) {
    let skipped = match s.skipped.len() {
        0 => String::new(),
        n => format!(", skipped {n}"),
    };
    println!(
        "{}: added {}, updated {}, deleted {}, unchanged {}, failed {}{skipped} ({} chunks embedded, {} reused)",
        term::safe(kb),
        s.added.len(),
        s.updated.len(),
        s.deleted.len(),
        s.unchanged,
        s.failed.len(),
        s.embedded_chunks,
        s.reused_chunks
    );
    let lists = [
        ("failed", &s.failed),
        ("skipped", &s.skipped),
        ("warning", &s.warnings),
    ];
    for (label, list) in lists {
        for f in list {
            // Loader messages usually start with the path already.
            let path = f.path.display().to_string();
            let reason = f
                .reason
                .strip_prefix(&format!("{path}: "))
                .unwrap_or(&f.reason);
            let reason = reason.strip_prefix("skipped, ").unwrap_or(reason);
            println!("  {label}: {}", term::safe(&format!("{path}: {reason}")));
        }
    }
}

/// `ingest --stats`: the time of each stage, its share of the wall-clock time, and the rates.
fn print_stats(s: &SyncSummary, wall: std::time::Duration) {
    let t = &s.timings;
    let secs = wall.as_secs_f64().max(1e-9);
    let part = |name: &str, d: std::time::Duration| {
        format!(
            "{name} {:.1} s ({:.0}%)",
            d.as_secs_f64(),
            100.0 * d.as_secs_f64() / secs
        )
    };
    println!(
        "stats: {:.1} s wall; {}, {}, {}, {}, {}; the writer waited {:.1} s for files (loading runs beside embedding)",
        secs,
        part("scan", t.scan),
        part("extract", t.extract),
        part("chunk", t.chunk),
        part("embed", t.embed),
        part("write", t.write),
        t.wait.as_secs_f64(),
    );
    let files = s.added.len() + s.updated.len();
    let chunks = s.embedded_chunks + s.reused_chunks;
    println!(
        "stats: {files} files loaded ({:.2}/s, {:.2} MB/s), {chunks} chunks ({:.1}/s; {} embedded, {:.1}/s of embedding time)",
        files as f64 / secs,
        s.loaded_bytes as f64 / 1e6 / secs,
        chunks as f64 / secs,
        s.embedded_chunks,
        s.embedded_chunks as f64 / t.embed.as_secs_f64().max(1e-9),
    );
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The question.
    pub question: String,
    /// Ranking: hybrid, bm25 or dense.
    #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: SearchMode,
    /// How many chunks (at least 1).
    #[arg(short, default_value_t = 5, value_parser = at_least::<1>)]
    pub k: usize,
    /// Only sources matching this glob.
    #[arg(long)]
    pub path: Option<String>,
    /// Only these formats (pdf, html, docx, markdown, text, csv, xlsx, json, ...).
    #[arg(long = "type")]
    pub formats: Vec<String>,
    /// Only chunks whose document has this metadata (key=value, repeatable).
    #[arg(long = "meta")]
    pub metadata: Vec<String>,
    /// Print JSON for programs.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kb: KbArgs,
}

pub fn parse_mode(s: &str) -> Result<SearchMode, String> {
    SearchMode::ALL
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| format!("unknown mode {s:?}: use hybrid, bm25 or dense"))
}

pub fn filter_of(path: Option<String>, formats: &[String], metadata: &[String]) -> Result<Filter> {
    let formats = formats
        .iter()
        .map(|f| {
            serde_json::from_value::<Format>(serde_json::Value::String(f.to_lowercase()))
                .map_err(|_| anyhow::anyhow!("unknown --type {f:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = metadata
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--meta {kv:?} must be key=value"))
        })
        .collect::<Result<_>>()?;
    Ok(Filter {
        path_glob: path,
        formats,
        metadata,
    })
}

pub fn search(args: SearchArgs) -> Result<()> {
    let embedder = open_embedder(&args.kb.embedder)?;
    let kb = OpenedKb::open(&args.kb, &embedder)?;
    let retriever = kb.retriever(&embedder)?;
    let mut query = Query::new(args.question.clone(), args.k, args.mode);
    query.filter = filter_of(args.path.clone(), &args.formats, &args.metadata)?;
    let hits = retriever.retrieve(&query)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("no results");
    }
    for (i, hit) in hits.iter().enumerate() {
        let page = hit.page.map(|p| format!(" p.{p}")).unwrap_or_default();
        let heading = if hit.heading_path.is_empty() {
            String::new()
        } else {
            format!(" > {}", hit.heading_path.join(" > "))
        };
        let line = format!(
            "{}. [{:.4}] {}{page}{heading}  (chars {}..{})",
            i + 1,
            hit.score,
            hit.source,
            hit.start,
            hit.end
        );
        println!("{}", term::safe(&line));
        println!("   {}", term::safe(&snippet(&hit.text, 240)));
    }
    Ok(())
}

fn snippet(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
