//! The engine: one thread that owns the models, the knowledge bases and the embedder, and runs
//! requests from a bounded queue in rounds (mistral.rs's split: the HTTP handlers hold no
//! model, they send messages). Every request waiting when a round starts joins it, and its
//! generations run as one batch per model and adapter through
//! [`Generator::generate_batch_streaming`] (llama.cpp decodes the sequences together); requests
//! that arrive meanwhile wait for the next round. A full queue is a 429 at once, not a request
//! left waiting.

use crate::error::ApiError;
use crate::feed::{self, KbFeed, KbStore, ServedKb};
use ragtune_answer::{Answer, Answerer, AskOptions, Mode, PreparedQuestion};
use ragtune_core::{
    Embedder, FinishReason, GenerationRequest, Generator, GeneratorError, KvCacheCounters, Prompt,
    SamplingParams, TokenCounter, Usage, WithAdapter,
};
use ragtune_core::{Query, Retriever};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A loaded base model and the names of the LoRA adapters loaded with it (a request picks one
/// by naming it as its `model`).
pub struct ServedModel {
    pub name: String,
    pub generator: Box<dyn Generator>,
    pub adapters: Vec<String>,
}

/// An embedder that also counts its tokens (for the usage of `/v1/embeddings`).
pub trait TextEmbedder: Embedder + TokenCounter {}
impl<T: Embedder + TokenCounter> TextEmbedder for T {}

/// Everything the engine thread owns.
pub struct Backend {
    /// The first is the default model of RAG requests that name none.
    pub models: Vec<ServedModel>,
    pub kbs: Vec<ServedKb>,
    /// Embeds queries for retrieval and `/v1/embeddings` input.
    pub embedder: Box<dyn TextEmbedder>,
    /// The id `/v1/models` lists the embedder under and `/v1/embeddings` takes as `model`.
    pub embedder_id: String,
    /// How RAG answers are built (`ask`'s defaults unless the caller changed them).
    pub answer: AskOptions,
    /// Most tokens in a chunk of an uploaded file (at most the embedder's window) for a
    /// knowledge base that records no chunk settings; one that does is synced with its own.
    pub chunk_max_tokens: usize,
}

/// The names the HTTP layer resolves and lists, without the models themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// Each base model with its adapters.
    pub models: Vec<(String, Vec<String>)>,
    /// Each base model's context length in tokens (prompt and completion together), in the
    /// order of `models` (`max_model_len` in `/v1/models`, as vLLM lists it).
    pub contexts: Vec<u32>,
    pub kbs: Vec<String>,
    pub embedder: String,
}

/// Which model, adapter and knowledge base a request runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub model: usize,
    pub adapter: Option<String>,
    /// RAG over this knowledge base.
    pub kb: Option<usize>,
    pub top_k: Option<usize>,
}

/// The prefix of model ids that answer with RAG: `rag/KB` or `rag/KB:MODEL_OR_ADAPTER`.
pub const RAG_PREFIX: &str = "rag/";

impl Catalog {
    fn of(backend: &Backend) -> Self {
        Self {
            models: backend
                .models
                .iter()
                .map(|m| (m.name.clone(), m.adapters.clone()))
                .collect(),
            contexts: backend
                .models
                .iter()
                .map(|m| m.generator.context_length())
                .collect(),
            kbs: backend.kbs.iter().map(|k| k.name.clone()).collect(),
            embedder: backend.embedder_id.clone(),
        }
    }

    /// Every id `/v1/models` lists.
    pub fn ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (base, adapters) in &self.models {
            ids.push(base.clone());
            ids.extend(adapters.iter().cloned());
        }
        ids.extend(self.kbs.iter().map(|k| format!("{RAG_PREFIX}{k}")));
        ids.push(self.embedder.clone());
        ids
    }

    /// A base model or adapter by name: the base's index, and the adapter if one was named.
    pub fn model(&self, name: &str) -> Option<(usize, Option<String>)> {
        self.models
            .iter()
            .enumerate()
            .find_map(|(i, (base, adapters))| {
                if base == name {
                    Some((i, None))
                } else {
                    adapters
                        .iter()
                        .any(|a| a == name)
                        .then(|| (i, Some(name.to_owned())))
                }
            })
    }

    /// Resolves a request's `model` (and the `ragtune.kb` / `top_k` it may carry): a base, an
    /// adapter (vLLM's convention), or `rag/KB[:MODEL]`.
    pub fn resolve(
        &self,
        model: &str,
        kb: Option<&str>,
        top_k: Option<usize>,
    ) -> Result<Target, ApiError> {
        let not_found = || ApiError::model_not_found(model, &self.ids());
        let (kb_name, model_name) = match model.strip_prefix(RAG_PREFIX) {
            Some(rest) => match rest.split_once(':') {
                Some((kb, m)) => (Some(kb), Some(m)),
                None => (Some(rest), None),
            },
            None => (kb, Some(model)),
        };
        let (model, adapter) = match model_name {
            Some(name) => self.model(name).ok_or_else(not_found)?,
            None => (0, None),
        };
        let kb = match kb_name {
            Some(name) => Some(self.kbs.iter().position(|k| k == name).ok_or_else(|| {
                ApiError::not_found(format!(
                    "no knowledge base {name:?} on this server (it has: {})",
                    self.kbs.join(", ")
                ))
            })?),
            None => None,
        };
        if top_k == Some(0) {
            return Err(ApiError::bad_request(
                "ragtune.top_k must be at least 1",
                Some("ragtune.top_k"),
            ));
        }
        Ok(Target {
            model,
            adapter,
            kb,
            top_k,
        })
    }
}

/// What a request asks the engine for.
#[derive(Debug, Clone)]
pub enum Work {
    /// Continue a prompt (chat or text) as it is.
    Generate {
        target: Target,
        request: GenerationRequest,
    },
    /// Answer the question from the target's knowledge base, with checked citations.
    Answer {
        target: Target,
        question: String,
        max_tokens: Option<u32>,
        sampling: Option<SamplingParams>,
        stop: Vec<String>,
    },
    Embed {
        texts: Vec<String>,
    },
    /// How many tokens a prompt takes on a model, its chat template applied (`/tokenize`).
    Tokenize {
        model: usize,
        prompt: Prompt,
    },
    /// The documents of a knowledge base.
    Documents {
        kb: usize,
    },
    /// Ranked passages of a knowledge base.
    Search {
        kb: usize,
        query: Query,
    },
    /// Removes an uploaded document (its file and its chunks).
    Delete {
        kb: usize,
        document: i64,
    },
}

/// What comes back: text as it is generated (streaming requests), then one result or an error.
#[derive(Debug, Clone)]
pub enum Event {
    Text(String),
    Generated {
        text: String,
        usage: Usage,
        finish_reason: FinishReason,
        /// RAG answers: the citations (`message.context.citations`).
        citations: Option<Vec<serde_json::Value>>,
        /// How long the engine worked on it (the library call, without the queue or HTTP).
        took: std::time::Duration,
        /// Each token's log-probability, when the request asked (never for RAG answers).
        logprobs: Vec<ragtune_core::TokenLogprob>,
    },
    Embedded {
        vectors: Vec<Vec<f32>>,
        tokens: u32,
    },
    /// A knowledge-base answer, ready to send.
    Json(serde_json::Value),
    Failed(ApiError),
}

struct Job {
    work: Work,
    stream: bool,
    events: UnboundedSender<Event>,
}

/// What the engine thread receives: a request, or a nudge to look at the upload queues.
enum Message {
    Job(Job),
    Wake,
}

/// The handle the HTTP layer sends work through; cloning it is cheap.
#[derive(Clone)]
pub struct Engine {
    jobs: SyncSender<Message>,
    pub catalog: Arc<Catalog>,
    pub queue: usize,
    /// The upload queue and progress of each knowledge base, in the catalog's order.
    pub feeds: Arc<[Arc<KbFeed>]>,
    /// Requests waiting for the engine (the queue depth `/metrics` reports).
    waiting: Arc<AtomicUsize>,
    /// Each base model's name with its contexts' KV-cache counters (models without any, such
    /// as remote ones, are left out), for `/metrics`.
    pub kv_caches: Arc<[(String, Arc<KvCacheCounters>)]>,
    /// Bytes of RSS the engine has handed back by trimming the heap, for `/metrics`.
    pub heap_trimmed: Arc<AtomicU64>,
}

/// How often a busy engine trims the heap, at most.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// Hands the pages the allocator holds back after work: when the engine goes idle, and after a
/// round or upload once [`TRIM_EVERY`] has passed since the last trim. glibc keeps what a round
/// freed (a replaced context's compute buffers, a batch's tensors) in its arenas, so RSS
/// stepped up and stayed (soak: +24 MB in two steps over 35 minutes, the KV cache unchanged).
struct HeapTrimmer {
    last: Instant,
    worked: bool,
    released: Arc<AtomicU64>,
}

impl HeapTrimmer {
    fn after_work(&mut self) {
        self.worked = true;
        if self.last.elapsed() >= TRIM_EVERY {
            self.trim();
        }
    }

    fn before_idle(&mut self) {
        if self.worked {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let released = ragtune_core::process::trim_heap();
        self.released.fetch_add(released, Ordering::Relaxed);
        self.last = Instant::now();
        self.worked = false;
    }
}

impl Engine {
    /// Starts the engine thread: `build` loads the backend there (so nothing in it needs to
    /// move between threads), then requests run in rounds: every request waiting (at most
    /// `queue`) joins the next round, whose generations run as one batch per model and adapter,
    /// and one queued upload is synced between rounds. An error from `build` comes back here.
    pub fn start(
        queue: usize,
        build: impl FnOnce() -> Result<Backend, String> + Send + 'static,
    ) -> Result<Engine, String> {
        let (jobs, inbox) = std::sync::mpsc::sync_channel::<Message>(queue);
        let (ready, started) = std::sync::mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let engine_waiting = waiting.clone();
        let heap_trimmed = Arc::new(AtomicU64::new(0));
        let mut trimmer = HeapTrimmer {
            last: Instant::now(),
            worked: false,
            released: heap_trimmed.clone(),
        };
        std::thread::Builder::new()
            .name("ragtune-engine".into())
            .spawn(move || {
                let mut backend = match build() {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let feeds: Arc<[Arc<KbFeed>]> = backend
                    .kbs
                    .iter_mut()
                    .map(|kb| Arc::new(KbFeed::new(kb)))
                    .collect();
                let kv_caches = backend
                    .models
                    .iter()
                    .filter_map(|m| Some((m.name.clone(), m.generator.kv_cache()?)))
                    .collect();
                if ready
                    .send(Ok((Catalog::of(&backend), feeds.clone(), kv_caches)))
                    .is_err()
                {
                    return;
                }
                let take = |message, jobs: &mut Vec<Job>| {
                    if let Message::Job(job) = message {
                        engine_waiting.fetch_sub(1, Ordering::Relaxed);
                        jobs.push(job);
                    }
                };
                // Each round takes every request waiting and runs the generations together
                // (one batch per model and adapter), then syncs one queued upload. Ends when
                // every `Engine` handle is dropped.
                let mut jobs = Vec::new();
                // Requests taken while a round generated that wait for the next one; they
                // still count as waiting (the queue's limit holds them too).
                let mut deferred: Vec<Job> = Vec::new();
                loop {
                    engine_waiting.fetch_sub(deferred.len(), Ordering::Relaxed);
                    jobs.append(&mut deferred);
                    let mut closed = false;
                    loop {
                        match inbox.try_recv() {
                            Ok(message) => take(message, &mut jobs),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    let ran = !jobs.is_empty();
                    if ran {
                        let inbox = Inbox {
                            messages: &inbox,
                            waiting: &engine_waiting,
                            deferred: &mut deferred,
                        };
                        run_round(&mut backend, &feeds, std::mem::take(&mut jobs), inbox);
                    }
                    if closed {
                        break;
                    }
                    // After a round, the uploads waiting are synced before the next one (up
                    // to a cap): one a round fell behind a server that is always generating
                    // (soak: 12 files queued, 2 synced, after a minute of 8 clients). Idle, one
                    // at a time, looking for requests between files.
                    let quota = if ran {
                        feeds
                            .iter()
                            .map(|f| f.queued())
                            .sum::<usize>()
                            .clamp(1, SYNCS_AFTER_A_ROUND)
                    } else {
                        1
                    };
                    let mut ingested = false;
                    for _ in 0..quota {
                        if !ingest_one(&mut backend, &feeds) {
                            break;
                        }
                        ingested = true;
                    }
                    if ran || ingested {
                        trimmer.after_work();
                    } else {
                        trimmer.before_idle();
                        match inbox.recv() {
                            Ok(message) => take(message, &mut jobs),
                            Err(_) => break,
                        }
                    }
                }
            })
            .map_err(|e| format!("starting the engine thread: {e}"))?;
        let (catalog, feeds, kv_caches) = started
            .recv()
            .map_err(|_| "the engine thread stopped while loading".to_owned())??;
        Ok(Engine {
            jobs,
            catalog: Arc::new(catalog),
            queue,
            feeds,
            waiting,
            kv_caches,
            heap_trimmed,
        })
    }

    /// Queues `work`; its events arrive on the receiver. A full queue is
    /// [`ApiError::queue_full`] at once.
    pub fn submit(&self, work: Work, stream: bool) -> Result<UnboundedReceiver<Event>, ApiError> {
        let (events, receiver) = unbounded_channel();
        // Counted before sending, so the engine never takes one off before it was added.
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed);
        // Requests a round took off the channel but deferred still count: the channel alone
        // would let in `queue` more. (Without a queue nothing is taken during a round.)
        if self.queue > 0 && waiting >= self.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::queue_full(self.queue));
        }
        match self.jobs.try_send(Message::Job(Job {
            work,
            stream,
            events,
        })) {
            Ok(()) => Ok(receiver),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => ApiError::queue_full(self.queue),
                    TrySendError::Disconnected(_) => ApiError::unavailable(),
                })
            }
        }
    }

    /// Requests waiting for the engine.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues a sync of `path` into knowledge base `kb` and wakes the engine if it is idle.
    pub(crate) fn feed(&self, kb: usize, path: PathBuf) {
        self.feeds[kb].push(path);
        // A full queue means the engine is busy; it looks at the uploads after each request.
        let _ = self.jobs.try_send(Message::Wake);
    }
}

/// The most uploads synced between two rounds, so that a large upload does not hold the next
/// questions for long.
const SYNCS_AFTER_A_ROUND: usize = 16;

/// Syncs one queued upload (of the first knowledge base with any); `false` when none waits.
fn ingest_one(backend: &mut Backend, feeds: &[Arc<KbFeed>]) -> bool {
    let Some(i) = feeds.iter().position(|f| f.has_work()) else {
        return false;
    };
    let embedder = backend.embedder.as_ref();
    feed::step(
        &feeds[i],
        &mut backend.kbs[i].kb,
        embedder,
        backend.chunk_max_tokens,
    )
}

type BatchKey = (usize, Option<String>);

/// What a generation job becomes before the batch: its request (none when a RAG question
/// found no passage) and, for RAG, the answerer that checks its citations afterwards.
type Preparation<'a> = (
    Option<GenerationRequest>,
    Option<(Answerer<'a>, PreparedQuestion)>,
);

/// The engine's queue as a round sees it: requests that arrive while the round generates are
/// read between decode steps; reads (searches, listings, embeddings) run at once, anything
/// else waits in `deferred` for the next round.
struct Inbox<'a> {
    messages: &'a std::sync::mpsc::Receiver<Message>,
    waiting: &'a AtomicUsize,
    deferred: &'a mut Vec<Job>,
}

impl Inbox<'_> {
    /// Takes every request waiting: runs the reads now, defers the rest (still counted as
    /// waiting until the next round takes them).
    fn serve_reads(&mut self, backend: &Backend) {
        while let Ok(message) = self.messages.try_recv() {
            // A wake-up needs nothing: uploads are looked at after every round.
            if let Message::Job(job) = message {
                match run_read(backend, job) {
                    None => {
                        self.waiting.fetch_sub(1, Ordering::Relaxed);
                    }
                    Some(job) => self.deferred.push(job),
                }
            }
        }
    }
}

/// Runs one round of requests: generations grouped into one batch per model and adapter,
/// everything else one at a time. While the generations run, searches and other reads that
/// arrive are answered between decode steps instead of waiting for the round to end.
fn run_round(backend: &mut Backend, feeds: &[Arc<KbFeed>], jobs: Vec<Job>, mut inbox: Inbox<'_>) {
    // One batch per (model, adapter).
    let mut batches: Vec<(BatchKey, Vec<Job>)> = Vec::new();
    for job in jobs {
        // A client that went away is not worth working for.
        if job.events.is_closed() {
            continue;
        }
        match &job.work {
            Work::Generate { target, .. } | Work::Answer { target, .. } => {
                let key = (target.model, target.adapter.clone());
                match batches.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, batch)) => batch.push(job),
                    None => batches.push((key, vec![job])),
                }
            }
            _ => run_one(backend, feeds, job),
        }
    }
    for ((model, adapter), batch) in batches {
        generate_together(backend, model, adapter, batch, &mut inbox);
    }
}

/// Work that is not a generation.
fn run_one(backend: &mut Backend, feeds: &[Arc<KbFeed>], job: Job) {
    let Some(job) = run_read(backend, job) else {
        return;
    };
    let result = match job.work {
        Work::Delete { kb, document } => delete(&mut backend.kbs[kb], &feeds[kb], document),
        _ => Err(ApiError::internal(
            "a generation was sent to run alone; it runs in a batch",
        )),
    };
    let _ = job.events.send(result.unwrap_or_else(Event::Failed));
}

/// Runs `job` if it only reads (a search, a document listing, embeddings); gives it back
/// otherwise.
fn run_read(backend: &Backend, job: Job) -> Option<Job> {
    let result = match &job.work {
        Work::Embed { texts } => embed(backend, texts),
        Work::Tokenize { model, prompt } => tokenize(&backend.models[*model], prompt),
        Work::Documents { kb } => documents(&backend.kbs[*kb]),
        Work::Search { kb, query } => search(backend, *kb, query),
        Work::Delete { .. } | Work::Generate { .. } | Work::Answer { .. } => return Some(job),
    };
    let _ = job.events.send(result.unwrap_or_else(Event::Failed));
    None
}

/// A request of a batch, ready to generate.
struct Prepared<'a> {
    job: Job,
    /// RAG: the answerer that finishes it (checks the citations).
    answerer: Option<(Answerer<'a>, PreparedQuestion)>,
    /// Its index among the batch's generation requests; `None` when there is nothing to
    /// generate (RAG found no passage: the answer abstains).
    request: Option<usize>,
}

/// Runs the generations of one model and adapter together: RAG questions are retrieved and
/// their prompts built first, then every prompt goes into one batched generation (each
/// stream gets its own text as it comes), then the answers' citations are checked.
fn generate_together(
    backend: &Backend,
    model: usize,
    adapter: Option<String>,
    jobs: Vec<Job>,
    inbox: &mut Inbox<'_>,
) {
    let started = std::time::Instant::now();
    let generator = WithAdapter {
        inner: backend.models[model].generator.as_ref(),
        adapter,
    };
    let embedder: &dyn Embedder = backend.embedder.as_ref();
    let retrievers: Vec<Result<Box<dyn Retriever + '_>, String>> = backend
        .kbs
        .iter()
        .map(|kb| kb.kb.retriever(embedder).map_err(|e| e.to_string()))
        .collect();
    let mut requests = Vec::new();
    let mut batch: Vec<Prepared<'_>> = Vec::new();
    for job in jobs {
        match prepare(backend, &generator, &retrievers, &job.work) {
            Ok((request, answerer)) => {
                let index = request.map(|r| {
                    requests.push(r);
                    requests.len() - 1
                });
                batch.push(Prepared {
                    job,
                    answerer,
                    request: index,
                });
            }
            Err(e) => {
                let _ = job.events.send(Event::Failed(e));
            }
        }
    }
    let owner: Vec<usize> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.request.map(|_| i))
        .collect();
    let generations = if requests.is_empty() {
        Ok(Vec::new())
    } else {
        generator.generate_batch_streaming(&requests, &mut |i, text| {
            inbox.serve_reads(backend);
            let job = &batch[owner[i]].job;
            let gone = if job.stream {
                job.events.send(Event::Text(text.to_owned())).is_err()
            } else {
                job.events.is_closed()
            };
            if gone {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    };
    let mut generations = match generations {
        Ok(g) => g.into_iter().map(Some).collect::<Vec<_>>(),
        Err(e) => {
            let e = ApiError::from(e);
            for p in batch {
                let _ = p.job.events.send(Event::Failed(e.clone()));
            }
            return;
        }
    };
    let took = started.elapsed();
    for p in batch {
        let generation = p.request.and_then(|i| generations.get_mut(i)?.take());
        let event = match (p.answerer, generation) {
            (Some((answerer, prepared)), generation) => {
                let answer = answerer.finish(prepared, generation);
                Event::Generated {
                    usage: Usage {
                        prompt_tokens: answer.tokens.prompt,
                        completion_tokens: answer.tokens.completion,
                    },
                    finish_reason: answer.finish_reason.unwrap_or(FinishReason::Stop),
                    citations: Some(citations(&answer)),
                    took,
                    text: answer.answer,
                    logprobs: Vec::new(),
                }
            }
            (None, Some(g)) => Event::Generated {
                text: g.text,
                usage: g.usage,
                finish_reason: g.finish_reason,
                citations: None,
                took,
                logprobs: g.logprobs,
            },
            (None, None) => Event::Failed(ApiError::internal("a request got no generation")),
        };
        let _ = p.job.events.send(event);
    }
}

/// The [`Preparation`] of a generation job.
fn prepare<'a>(
    backend: &Backend,
    generator: &'a dyn Generator,
    retrievers: &'a [Result<Box<dyn Retriever + 'a>, String>],
    work: &Work,
) -> Result<Preparation<'a>, ApiError> {
    match work {
        Work::Generate { request, .. } => {
            // Checked here so one prompt too long fails alone, not the whole batch.
            let prompt_tokens = generator.count_prompt_tokens(&request.prompt)?;
            if prompt_tokens >= generator.context_length() {
                return Err(GeneratorError::ContextOverflow {
                    prompt_tokens,
                    context: generator.context_length(),
                }
                .into());
            }
            Ok((Some(request.clone()), None))
        }
        Work::Answer {
            target,
            question,
            max_tokens,
            sampling,
            stop,
        } => {
            let retriever = target
                .kb
                .and_then(|i| retrievers.get(i))
                .ok_or_else(|| ApiError::internal("a RAG request without a knowledge base"))?
                .as_ref()
                .map_err(|e| ApiError::internal(e.clone()))?;
            let mut options = AskOptions {
                mode: Mode::Rag,
                ..backend.answer.clone()
            };
            if let Some(k) = target.top_k {
                options.top_k = k;
            }
            if let Some(n) = max_tokens {
                options.max_tokens = *n;
            }
            if let Some(s) = sampling {
                options.sampling = s.clone();
            }
            if !stop.is_empty() {
                options.stop = stop.clone();
            }
            let answerer = Answerer::new(generator, options).with_retriever(retriever.as_ref());
            let prepared = answerer.prepare(question)?;
            Ok((prepared.request.clone(), Some((answerer, prepared))))
        }
        _ => Err(ApiError::internal("not a generation")),
    }
}

fn index_error(e: ragtune_index::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

fn documents(kb: &ServedKb) -> Result<Event, ApiError> {
    let docs = kb.kb.documents().map_err(ApiError::internal)?;
    let data: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "object": "kb.document",
                "source": d.source,
                "file": d.file,
                "format": d.format,
                "bytes": d.size,
                "chunks": d.chunk_count,
                "version": d.version,
                "indexed_at": d.indexed_at_ns / 1_000_000_000,
                "uploaded": kb.uploads().is_some_and(|u| Path::new(&d.file).starts_with(u)),
            })
        })
        .collect();
    Ok(Event::Json(
        serde_json::json!({"object": "list", "kb": kb.name, "data": data}),
    ))
}

fn search(backend: &Backend, kb: usize, query: &Query) -> Result<Event, ApiError> {
    let served = &backend.kbs[kb];
    let embedder: &dyn Embedder = backend.embedder.as_ref();
    let retriever = served
        .kb
        .retriever(embedder)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let hits = retriever
        .retrieve(query)
        .map_err(|e| ApiError::bad_request(e.to_string(), Some("query")))?;
    let data: Vec<serde_json::Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            serde_json::json!({
                "rank": i + 1,
                "chunk_id": h.chunk_id,
                "filepath": h.source,
                "page": h.page,
                "heading": h.heading_path.join(" > "),
                "start": h.start,
                "end": h.end,
                "content": h.text,
                "score": h.score,
            })
        })
        .collect();
    Ok(Event::Json(serde_json::json!({
        "object": "list",
        "kb": served.name,
        "query": query.text,
        "data": data,
    })))
}

/// Deletes an uploaded document: its file (so a restart does not bring it back) and its
/// chunks. Documents ingested from the user's own folders are theirs to delete.
fn delete(kb: &mut ServedKb, feed: &KbFeed, id: i64) -> Result<Event, ApiError> {
    let docs = kb.kb.documents().map_err(ApiError::internal)?;
    let doc = docs.iter().find(|d| d.id == id).ok_or_else(|| {
        ApiError::not_found(format!(
            "knowledge base {:?} has no document {id}; GET /v1/kb/{}/documents lists them",
            kb.name, kb.name
        ))
    })?;
    let file = PathBuf::from(&doc.file);
    let KbStore::Local(store) = &mut kb.kb else {
        return Err(ApiError::conflict(format!(
            "{} is in a knowledge base on PostgreSQL, which this server only reads: delete the file where it was ingested from and run `ragtune ingest` again",
            doc.file
        )));
    };
    if !kb.uploads.as_deref().is_some_and(|u| file.starts_with(u)) {
        return Err(ApiError::conflict(format!(
            "{} was not uploaded to this server (it was ingested from its folder): delete the file there and run `ragtune ingest` again",
            doc.file
        )));
    }
    feed.cancel(&file);
    match fs_err::remove_file(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ApiError::internal(e.to_string())),
    }
    let removed = store.delete_file(&doc.file).map_err(index_error)?;
    store.checkpoint().map_err(index_error)?;
    feed.refresh(&kb.kb);
    Ok(Event::Json(serde_json::json!({
        "id": id,
        "object": "kb.document.deleted",
        "deleted": true,
        "file": doc.file,
        "documents_removed": removed,
    })))
}

/// The answer's citations as `message.context.citations[]` (Azure OpenAI "On Your Data"'s
/// fields, plus where the passage is, whether the citation checked out, and the sentence of
/// the passage that supports it).
pub fn citations(answer: &Answer) -> Vec<serde_json::Value> {
    answer
        .citations
        .iter()
        .map(|c| {
            let passage = answer
                .passages
                .iter()
                .find(|p| p.number == Some(c.number))
                .map(|p| &p.hit);
            let title = passage.and_then(|h| {
                std::path::Path::new(&h.source)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            });
            serde_json::json!({
                "id": c.number,
                "chunk_id": c.chunk.as_ref().map(|ch| ch.chunk_id),
                "filepath": passage.map(|h| &h.source),
                "title": title,
                "page": passage.and_then(|h| h.page),
                "heading": passage.map(|h| h.heading_path.join(" > ")),
                "start": passage.map(|h| h.start),
                "end": passage.map(|h| h.end),
                "content": passage.map(|h| &h.text),
                "score": passage.map(|h| h.score),
                "valid": c.valid,
                "status": c.status,
                "claim": c.claim,
                // The passage's sentence that best supports the claim, as a byte range of
                // `content` (what a reader is shown highlighted).
                "evidence": passage.and_then(|h| {
                    ragtune_answer::support::evidence(&h.text, &c.claim).map(|r| {
                        serde_json::json!({"start": r.start, "end": r.end, "text": &h.text[r]})
                    })
                }),
            })
        })
        .collect()
}

fn tokenize(model: &ServedModel, prompt: &Prompt) -> Result<Event, ApiError> {
    let count = model
        .generator
        .count_prompt_tokens(prompt)
        .map_err(|e| ApiError::bad_request(e.to_string(), None))?;
    Ok(Event::Json(serde_json::json!({
        "count": count,
        "max_model_len": model.generator.context_length(),
    })))
}

fn embed(backend: &Backend, texts: &[String]) -> Result<Event, ApiError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = backend
        .embedder
        .embed(&refs)
        .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))?;
    let tokens = texts
        .iter()
        .map(|t| backend.embedder.count_tokens(t) as u32)
        .sum();
    Ok(Event::Embedded { vectors, tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_trimmed_when_going_idle_after_work_and_once_a_minute_while_busy() {
        let start = Instant::now();
        let mut trimmer = HeapTrimmer {
            last: start,
            worked: false,
            released: Arc::new(AtomicU64::new(0)),
        };
        // Idle without work since the last trim: nothing to give back.
        trimmer.before_idle();
        assert_eq!(trimmer.last, start);
        // Busy, within the minute: work is noted, no trim yet.
        trimmer.after_work();
        assert_eq!((trimmer.last, trimmer.worked), (start, true));
        // Going idle after it: trimmed.
        trimmer.before_idle();
        assert!(trimmer.last > start && !trimmer.worked);
        // Busy past the minute: trimmed after the work, without going idle.
        let stale = Instant::now()
            .checked_sub(TRIM_EVERY)
            .expect("the monotonic clock has run a minute");
        trimmer.last = stale;
        trimmer.after_work();
        assert!(trimmer.last > stale && !trimmer.worked);
    }
}
