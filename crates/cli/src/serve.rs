//! `ragtune serve`: loads the models, adapters and knowledge bases named on the command line
//! into `ragtune_serve`'s engine thread and serves its OpenAI-compatible routes.

use crate::args::{AnswerArgs, DEFAULT_ANSWER_MODEL, adapter_file};
use crate::kb::{KbLocation, open_embedder, parse_kb};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use ragtune_answer::Mode;
use ragtune_index::KnowledgeBase;
use ragtune_model::llama::{AdapterSpec, LlamaGenerator, LoadOptions};
use ragtune_remote::{Endpoint, RemoteGenerator};
use ragtune_serve::keys::KeyRing;
use ragtune_serve::{Backend, Engine, Limits, ServedKb, ServedModel};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen; port 0 picks a free port, printed on standard output. Without API
    /// keys only a loopback address is allowed.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// API keys (`ragtune keys create`): when this file holds any, every request but
    /// /health needs one.
    #[command(flatten)]
    pub keys: crate::keys::KeysFile,
    /// A model to serve: a catalogue name, a .gguf file, or a model on another OpenAI-compatible
    /// server (`openai:NAME@URL`, key from $RAGTUNE_REMOTE_API_KEY: this server then adds
    /// knowledge bases and citations in front of it); repeat for more. Requests name it as
    /// their `model` (a remote one by its NAME); the first also answers `rag/KB` requests that
    /// name none.
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// A LoRA adapter on the first model, NAME=PATH (a `ragtune train` output folder, a GGUF
    /// LoRA file, or a PEFT adapter folder); requests pick it with `"model": NAME`. Repeat for
    /// more.
    #[arg(long = "adapter", value_parser = parse_named)]
    pub adapters: Vec<(String, PathBuf)>,
    /// A knowledge base, NAME=DIR or NAME=postgres://USER@HOST/DB?kb=KB; requests answer from
    /// it with `"model": "rag/NAME"` (or `"rag/NAME:MODEL"`, or `"ragtune": {"kb": NAME}`), and
    /// files uploaded to /v1/kb/NAME/files go into DIR/uploads. A knowledge base on
    /// PostgreSQL is read only here: `ragtune ingest --kb URL` writes it, and every server
    /// sees what was ingested at once. Repeat for more.
    #[arg(long = "kb", value_parser = parse_named_kb)]
    pub kbs: Vec<(String, KbLocation)>,
    /// Serve the knowledge bases read-only: no uploads or deletions, and no writer lock (a
    /// `ragtune ingest` may run beside the server; restart it to see the changes).
    #[arg(long)]
    pub read_only: bool,
    /// Embedding model for retrieval and /v1/embeddings.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    pub embedder: String,
    /// Requests that may wait while one runs; more are refused with 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Largest upload in bytes (all files of one request; 413 beyond).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_upload_bytes: usize,
    /// A `ragtune compare` report (OUT/report.html) for the web UI to open.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seconds a request may run before it is stopped (504).
    #[arg(long, default_value_t = 600)]
    pub request_timeout: u64,
    /// CPU threads per model (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Sequences each model decodes together: the requests of a round beyond this wait for a
    /// free slot. Each slot holds its own KV cache (memory grows with it).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,
    /// Context length per model (0: the model's, capped at 8192).
    #[arg(long = "ctx", default_value_t = 0)]
    pub context_length: u32,
    /// How RAG answers are built (as `ragtune ask`'s options).
    #[command(flatten)]
    pub answer: AnswerArgs,
}

fn parse_named(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() && !name.contains('/') => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("{s:?}: write NAME=PATH (a name without '/')")),
    }
}

fn parse_named_kb(s: &str) -> Result<(String, KbLocation), String> {
    let (name, location) = s
        .split_once('=')
        .filter(|(n, l)| !n.is_empty() && !l.is_empty() && !n.contains('/'))
        .ok_or_else(|| {
            format!("{s:?}: write NAME=DIR or NAME=postgres://... (a name without '/')")
        })?;
    Ok((name.to_owned(), parse_kb(location)?))
}

/// The id a model is served under: its catalogue name, a file's stem, or a remote model's
/// name on its server.
fn model_id(name: &str) -> String {
    if let Ok(endpoint) = Endpoint::parse(name) {
        return endpoint.model;
    }
    let path = Path::new(name);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        path.file_stem()
            .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
    } else {
        name.to_owned()
    }
}

/// Where a served model runs.
enum Source {
    /// A GGUF file, loaded here.
    Local(PathBuf),
    /// An OpenAI-compatible server; its key from `RAGTUNE_REMOTE_API_KEY`.
    Remote(Endpoint),
}

pub fn serve(args: ServeArgs) -> Result<()> {
    if let Some(report) = &args.report
        && !report.is_file()
    {
        bail!(
            "the report {} does not exist; `ragtune compare --out OUT` writes OUT/report.html",
            report.display()
        );
    }
    let keys_path = args.keys.path()?;
    let keys = KeyRing::open(&keys_path)?;
    let keys = (!keys.is_empty()).then_some(keys);
    ragtune_serve::check_address(&args.addr, keys.is_some()).map_err(anyhow::Error::msg)?;
    let mut models = args.models.clone();
    if models.is_empty() {
        models.push(DEFAULT_ANSWER_MODEL.to_owned());
    }
    let model_ids: Vec<String> = models.iter().map(|m| model_id(m)).collect();
    let mut ids = model_ids.clone();
    ids.extend(args.adapters.iter().map(|(n, _)| n.clone()));
    ids.extend(args.kbs.iter().map(|(n, _)| n.clone()));
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            bail!(
                "{id:?} names two things; give every model, adapter and knowledge base its own name"
            );
        }
    }
    // Found out before anything loads.
    let sources = models
        .iter()
        .map(|m| {
            Ok(if Endpoint::is_remote(m) {
                Source::Remote(Endpoint::parse(m)?)
            } else {
                Source::Local(crate::models::resolve_generator(m)?)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let adapters = args
        .adapters
        .iter()
        .map(|(name, path)| {
            let Source::Local(base) = &sources[0] else {
                bail!(
                    "--adapter loads LoRA adapters onto the first --model, which is served \
                     elsewhere; load them on that server and name them as models \
                     (openai:ADAPTER@URL)"
                );
            };
            Ok(AdapterSpec {
                name: name.clone(),
                path: adapter_file(path, base)?,
                scale: 1.0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let answer = args.answer.options(Mode::Rag)?;
    let (embedder_name, kbs, threads, context_length, read_only, parallel) = (
        args.embedder.clone(),
        args.kbs.clone(),
        args.threads,
        args.context_length,
        args.read_only,
        args.parallel,
    );
    eprintln!("loading {} ...", models.join(", "));
    let engine = Engine::start(args.queue, move || {
        let load = || -> Result<Backend> {
            let embedder = open_embedder(&embedder_name)?;
            // Uploaded files are chunked as `ragtune ingest` chunks by default.
            let embedder_max = embedder.max_content_tokens();
            let mut served_kbs = Vec::new();
            for (name, location) in &kbs {
                let dir = match location {
                    KbLocation::Dir(dir) => dir,
                    KbLocation::Postgres(url) => {
                        let open = || -> Result<ServedKb> {
                            let kb = ragtune_pg::PgKb::open_existing(url)?;
                            kb.check_embedder(&embedder)?;
                            Ok(ServedKb::postgres(name.clone(), kb)?)
                        };
                        served_kbs.push(open().with_context(|| format!("knowledge base {name}"))?);
                        continue;
                    }
                };
                let kb = KnowledgeBase::open_existing(dir, &embedder)
                    .with_context(|| format!("knowledge base {name}"))?;
                served_kbs.push(if read_only {
                    ServedKb::read_only(name.clone(), kb)
                } else {
                    ServedKb::writable(name.clone(), kb, dir).with_context(|| {
                        format!(
                            "knowledge base {name}: serving it with uploads needs its writer lock; stop the other writer or pass --read-only"
                        )
                    })?
                });
            }
            let mut served = Vec::new();
            for (i, (source, id)) in sources.iter().zip(&model_ids).enumerate() {
                let path = match source {
                    Source::Local(path) => path,
                    Source::Remote(endpoint) => {
                        let options = ragtune_remote::Options {
                            concurrency: parallel as usize,
                            context_length,
                            ..ragtune_remote::Options::default()
                        };
                        let generator = RemoteGenerator::connect(endpoint.clone(), options)?;
                        served.push(ServedModel {
                            name: id.clone(),
                            generator: Box::new(generator),
                            adapters: Vec::new(),
                        });
                        continue;
                    }
                };
                let options = LoadOptions {
                    threads,
                    context_length,
                    parallel,
                    adapters: if i == 0 { adapters.clone() } else { Vec::new() },
                    ..LoadOptions::default()
                };
                let generator = LlamaGenerator::load(path, &options)
                    .with_context(|| format!("loading model {id}"))?;
                served.push(ServedModel {
                    name: id.clone(),
                    generator: Box::new(generator),
                    adapters: options.adapters.iter().map(|a| a.name.clone()).collect(),
                });
            }
            Ok(Backend {
                models: served,
                kbs: served_kbs,
                embedder: Box::new(embedder),
                embedder_id: model_id(&embedder_name),
                answer,
                chunk_max_tokens: 256.min(embedder_max),
            })
        };
        load().map_err(|e| crate::message(&e))
    })
    .map_err(anyhow::Error::msg)?;
    let catalog = engine.catalog.clone();
    let has_keys = keys.is_some();
    let router = ragtune_serve::router(
        engine,
        ragtune_serve::Options {
            limits: Limits {
                max_body_bytes: args.max_body_bytes,
                max_upload_bytes: args.max_upload_bytes,
                request_timeout: std::time::Duration::from_secs(args.request_timeout.max(1)),
                ..Limits::default()
            },
            keys,
            report: args.report.clone(),
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}");
        eprintln!(
            "models: {} | knowledge bases: {} | API keys: {} | OpenAI base URL: http://{addr}/v1 | web UI: http://{addr}/ (Ctrl-C stops)",
            catalog.ids().join(", "),
            if catalog.kbs.is_empty() {
                "none".to_owned()
            } else {
                catalog.kbs.join(", ")
            },
            if has_keys {
                format!("required ({})", keys_path.display())
            } else {
                "none (loopback only)".to_owned()
            }
        );
        ragtune_serve::serve(listener, router).await?;
        anyhow::Ok(())
    })
}
