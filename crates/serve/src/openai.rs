//! The OpenAI-compatible routes: requests parsed and checked here, run by the engine, and
//! answered in OpenAI's JSON (or its server-sent events when `stream` is set).

use crate::access::{Access, gate};
use crate::engine::{Engine, Event, RAG_PREFIX, Work};
use crate::error::ApiError;
use crate::keys::KeyRing;
use crate::knowledge;
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use ragtune_core::{
    ChatMessage, FinishReason, GenerationRequest, Prompt, Role, SamplingParams, TokenLogprob, Usage,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// What one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Larger uploads (a whole multipart body) are refused with 413.
    pub max_upload_bytes: usize,
    /// A request still running after this long is stopped (504, or an error event that ends
    /// a stream).
    pub request_timeout: Duration,
    /// `max_tokens` when a chat request gives none (text completions default to 16, as
    /// OpenAI's do).
    pub default_max_tokens: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_upload_bytes: 64 << 20,
            request_timeout: Duration::from_secs(600),
            default_max_tokens: 512,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    /// `None`: the server has no keys and listens on loopback only.
    pub(crate) keys: Option<KeyRing>,
    pub(crate) metrics: Metrics,
    pub(crate) report: Option<std::path::PathBuf>,
    /// When the server started (the `created` of every model).
    started: u64,
    pub(crate) next_id: AtomicU64,
}

pub(crate) type AppState = Arc<Shared>;

/// How a server is set up, beyond its engine.
#[derive(Default)]
pub struct Options {
    pub limits: Limits,
    /// API keys: with them, every route but `/health` and the web UI's page needs one.
    pub keys: Option<KeyRing>,
    /// A `ragtune compare` HTML report the web UI links to (`GET /report`).
    pub report: Option<std::path::PathBuf>,
}

/// The routes, over `engine`.
pub fn router(engine: Engine, options: Options) -> Router {
    let Options {
        limits,
        keys,
        report,
    } = options;
    let shared = Arc::new(Shared {
        engine,
        limits,
        keys,
        report,
        metrics: Metrics::default(),
        started: now(),
        next_id: AtomicU64::new(1),
    });
    let uploads = Router::new()
        .route("/v1/kb/{name}/files", post(knowledge::upload))
        .layer(DefaultBodyLimit::max(limits.max_upload_bytes));
    Router::new()
        .route("/", get(crate::ui::page))
        .route("/ui/config", get(crate::ui::config))
        .route("/favicon.ico", get(crate::ui::favicon))
        .route("/report", get(crate::ui::report))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/tokenize", post(tokenize))
        .route("/v1/kb", get(knowledge::list))
        .route("/v1/kb/{name}/status", get(knowledge::status))
        .route("/v1/kb/{name}/documents", get(knowledge::documents))
        .route("/v1/kb/{name}/documents/{id}", delete(knowledge::delete))
        .route("/v1/kb/{name}/search", post(knowledge::search))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .merge(uploads)
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .fallback(not_found)
        .with_state(shared)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; this server has /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /v1/kb, /metrics and /health",
        uri.path()
    ))
}

async fn metrics(State(s): State<AppState>) -> Response {
    // Off the runtime: knowledge bases on PostgreSQL are counted over the network.
    match tokio::task::spawn_blocking(move || s.metrics.render(&s.engine)).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

async fn models(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> axum::Json<Value> {
    let c = &s.engine.catalog;
    let entry = |id: &str, parent: Option<&str>| {
        let mut v =
            json!({"id": id, "object": "model", "created": s.started, "owned_by": "ragtune"});
        if let Some(p) = parent {
            v["parent"] = json!(p);
            v["root"] = json!(p);
        }
        v
    };
    let mut data = Vec::new();
    for ((base, adapters), context) in c.models.iter().zip(&c.contexts) {
        let with_context = |mut v: Value| {
            v["max_model_len"] = json!(context);
            v
        };
        data.push(with_context(entry(base, None)));
        data.extend(adapters.iter().map(|a| with_context(entry(a, Some(base)))));
    }
    let default = c.models.first().map(|(m, _)| m.as_str());
    data.extend(
        c.kbs
            .iter()
            .filter(|k| access.sees(k))
            .map(|k| entry(&format!("{RAG_PREFIX}{k}"), default)),
    );
    data.push(entry(&c.embedder, None));
    axum::Json(json!({"object": "list", "data": data}))
}

/// The body as a request of type `T`, or the error to answer with.
pub(crate) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limits: &Limits,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limits.max_body_bytes)
        } else {
            ApiError::bad_request(r.body_text(), None)
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body does not read: {e}"), None))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    fn into_vec(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
        let stop = match stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::bad_request(
                "stop takes up to 4 non-empty strings",
                Some("stop"),
            ));
        }
        Ok(stop)
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// `ragtune` in a request: answer from a knowledge base.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RagtuneOptions {
    kb: Option<String>,
    top_k: Option<usize>,
}

/// The sampling fields every generation request shares.
#[derive(Debug, Default, Deserialize)]
struct Sampling {
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    n: Option<u32>,
}

impl Sampling {
    /// The sampler, or `None` when the request set nothing (RAG then answers greedily, as
    /// `ask` does). OpenAI's default temperature is 1.
    fn params(&self) -> Result<Option<SamplingParams>, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "n must be 1 (one choice per request)",
                Some("n"),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ApiError::bad_request(
                "temperature must be between 0 and 2",
                Some("temperature"),
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ApiError::bad_request(
                "top_p must be above 0 and at most 1",
                Some("top_p"),
            ));
        }
        if self.temperature.is_none() && self.top_p.is_none() && self.seed.is_none() {
            return Ok(None);
        }
        let seed = self.seed.map_or_else(fresh_seed, |s| s as u32);
        Ok(Some(SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            seed,
            ..SamplingParams::GREEDY
        }))
    }

    /// The sampler, with OpenAI's defaults (temperature 1, a fresh seed) for what is unset.
    fn params_or_default(&self) -> Result<SamplingParams, ApiError> {
        Ok(self.params()?.unwrap_or(SamplingParams {
            temperature: 1.0,
            seed: fresh_seed(),
            ..SamplingParams::GREEDY
        }))
    }
}

fn fresh_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// A chat request's `logprobs` and `top_logprobs`: `None`, or how many alternatives to report
/// with each token.
fn chat_logprobs(logprobs: Option<bool>, top: Option<u32>) -> Result<Option<u32>, ApiError> {
    match (logprobs.unwrap_or(false), top) {
        (_, Some(n)) if n > 20 => Err(ApiError::bad_request(
            "top_logprobs must be between 0 and 20",
            Some("top_logprobs"),
        )),
        (false, Some(n)) if n > 0 => Err(ApiError::bad_request(
            "top_logprobs needs \"logprobs\": true",
            Some("top_logprobs"),
        )),
        (false, _) => Ok(None),
        (true, n) => Ok(Some(n.unwrap_or(0))),
    }
}

/// Asks `request` for log-probabilities with `top` alternatives per token.
fn with_logprobs(mut request: GenerationRequest, top: Option<u32>) -> GenerationRequest {
    if let Some(top) = top {
        request.logprobs = true;
        request.top_logprobs = top;
    }
    request
}

fn max_tokens(value: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match value {
        Some(0) => Err(ApiError::bad_request(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        )),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

impl InMessage {
    fn into_chat(self) -> Result<ChatMessage, ApiError> {
        let role = match self.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(ApiError::bad_request(
                    format!(
                        "unknown message role {other:?} (system, developer, user, assistant, tool)"
                    ),
                    Some("messages"),
                ));
            }
        };
        let content = match self.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::bad_request(
                                format!(
                                    "content parts of type {kind:?} are not supported (text only)"
                                ),
                                Some("messages"),
                            ));
                        }
                    }
                }
                text
            }
        };
        Ok(ChatMessage::new(role, content))
    }
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Stop>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    #[serde(flatten)]
    sampling: Sampling,
    ragtune: Option<RagtuneOptions>,
}

async fn chat(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run_chat(&s, &access, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_chat(
    s: &AppState,
    access: &Access,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r: ChatRequest = parse(body, &s.limits)?;
    let rag = r.ragtune.unwrap_or_default();
    let target = s
        .engine
        .catalog
        .resolve(&r.model, rag.kb.as_deref(), rag.top_k)?;
    if let Some(kb) = target.kb {
        access.read(&s.engine.catalog.kbs[kb])?;
    }
    if r.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages must hold at least one message",
            Some("messages"),
        ));
    }
    let messages = r
        .messages
        .into_iter()
        .map(InMessage::into_chat)
        .collect::<Result<Vec<_>, _>>()?;
    let stop = Stop::into_vec(r.stop)?;
    let limit = r.max_completion_tokens.or(r.max_tokens);
    let logprobs = chat_logprobs(r.logprobs, r.top_logprobs)?;
    if logprobs.is_some() && target.kb.is_some() {
        return Err(ApiError::bad_request(
            "logprobs are not reported for answers from a knowledge base (their text is checked and may be rewritten); ask the model without rag/ for them",
            Some("logprobs"),
        ));
    }
    let work = if target.kb.is_some() {
        // RAG answers the last user message; the conversation before it is not used.
        let question = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "a RAG request needs a user message with the question",
                    Some("messages"),
                )
            })?;
        Work::Answer {
            target,
            question,
            max_tokens: limit.map(|n| max_tokens(Some(n), 0)).transpose()?,
            sampling: r.sampling.params()?,
            stop,
        }
    } else {
        let request = GenerationRequest::new(Prompt::Chat(messages))
            .with_max_tokens(max_tokens(limit, s.limits.default_max_tokens)?)
            .with_sampling(r.sampling.params_or_default()?)
            .with_stop(stop);
        Work::Generate {
            target,
            request: with_logprobs(request, logprobs),
        }
    };
    let reply = Reply {
        id: format!("chatcmpl-{}", s.next_id.fetch_add(1, Ordering::Relaxed)),
        model: r.model,
        created: now(),
        chat: true,
        include_usage: r.stream_options.unwrap_or_default().include_usage,
        logprobs,
    };
    respond(s, work, r.stream, reply).await
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TextPrompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: TextPrompt,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    stop: Option<Stop>,
    /// Report each token's log-probability with this many alternatives (0 to 5).
    logprobs: Option<u32>,
    #[serde(flatten)]
    sampling: Sampling,
}

async fn completions(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    run_completions(&s, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_completions(
    s: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r: CompletionRequest = parse(body, &s.limits)?;
    let target = s.engine.catalog.resolve(&r.model, None, None)?;
    if target.kb.is_some() {
        return Err(ApiError::bad_request(
            "answers from a knowledge base are chat completions: POST /v1/chat/completions",
            Some("model"),
        ));
    }
    let prompt = match r.prompt {
        TextPrompt::One(p) => p,
        TextPrompt::Many(mut v) if v.len() == 1 => v.remove(0),
        TextPrompt::Many(_) => {
            return Err(ApiError::bad_request(
                "prompt must be one string (one completion per request)",
                Some("prompt"),
            ));
        }
    };
    if r.logprobs.is_some_and(|n| n > 5) {
        return Err(ApiError::bad_request(
            "logprobs must be between 0 and 5",
            Some("logprobs"),
        ));
    }
    let request = GenerationRequest::new(Prompt::Text(prompt))
        .with_max_tokens(max_tokens(r.max_tokens, 16)?)
        .with_sampling(r.sampling.params_or_default()?)
        .with_stop(Stop::into_vec(r.stop)?);
    let request = with_logprobs(request, r.logprobs);
    let reply = Reply {
        id: format!("cmpl-{}", s.next_id.fetch_add(1, Ordering::Relaxed)),
        model: r.model,
        created: now(),
        chat: false,
        include_usage: r.stream_options.unwrap_or_default().include_usage,
        logprobs: r.logprobs,
    };
    respond(s, Work::Generate { target, request }, r.stream, reply).await
}

/// How a generation's answer is written.
struct Reply {
    id: String,
    model: String,
    created: u64,
    /// A chat completion (else a text completion).
    chat: bool,
    include_usage: bool,
    /// Log-probabilities asked for, with this many alternatives per token.
    logprobs: Option<u32>,
}

fn finish(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens(),
    })
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.chat, chunk) {
            (true, false) => "chat.completion",
            (true, true) => "chat.completion.chunk",
            (false, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// OpenAI's `logprobs` of a choice: `content[]` for chat, parallel arrays for text
    /// completions; `null` when the request did not ask.
    fn logprobs(&self, tokens: &[TokenLogprob]) -> Value {
        let Some(top) = self.logprobs else {
            return Value::Null;
        };
        if self.chat {
            let entry = |bytes: &[u8], logprob: f32| json!({"token": String::from_utf8_lossy(bytes), "logprob": logprob, "bytes": bytes});
            let content: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    let mut e = entry(&t.bytes, t.logprob);
                    e["top_logprobs"] = t.top.iter().map(|(b, lp)| entry(b, *lp)).collect();
                    e
                })
                .collect();
            return json!({"content": content, "refusal": null});
        }
        let mut offset = 0;
        let mut text_offset = Vec::new();
        for t in tokens {
            text_offset.push(offset);
            offset += t.text().chars().count();
        }
        let top_logprobs: Value = if top == 0 {
            Value::Null
        } else {
            tokens
                .iter()
                .map(|t| {
                    let alternatives: serde_json::Map<String, Value> = t
                        .top
                        .iter()
                        .map(|(b, lp)| (String::from_utf8_lossy(b).into_owned(), json!(lp)))
                        .collect();
                    Value::Object(alternatives)
                })
                .collect()
        };
        json!({
            "tokens": tokens.iter().map(TokenLogprob::text).collect::<Vec<_>>(),
            "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
            "top_logprobs": top_logprobs,
            "text_offset": text_offset,
        })
    }

    fn whole(
        &self,
        text: String,
        reason: FinishReason,
        u: &Usage,
        citations: Option<Vec<Value>>,
        tokens: &[TokenLogprob],
    ) -> Value {
        let logprobs = self.logprobs(tokens);
        let choice = if self.chat {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(c) = citations {
                message["context"] = json!({"citations": c});
            }
            json!({"index": 0, "message": message, "finish_reason": finish(reason), "logprobs": logprobs})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish(reason), "logprobs": logprobs})
        };
        let mut v = self.envelope(false, json!([choice]));
        v["usage"] = usage(u);
        v
    }

    /// A streamed piece: `delta` holds what changed (chat), `text` the new text (completions).
    fn chunk(&self, delta: Value, text: &str, reason: Option<FinishReason>) -> Value {
        self.chunk_with(delta, text, reason, Value::Null)
    }

    fn chunk_with(
        &self,
        delta: Value,
        text: &str,
        reason: Option<FinishReason>,
        logprobs: Value,
    ) -> Value {
        let reason = reason.map(finish);
        let choice = if self.chat {
            json!({"index": 0, "delta": delta, "finish_reason": reason, "logprobs": logprobs})
        } else {
            json!({"index": 0, "text": text, "finish_reason": reason, "logprobs": logprobs})
        };
        self.envelope(true, json!([choice]))
    }
}

/// Runs `work` and answers: one JSON body, or server-sent events ending in `[DONE]`.
async fn respond(
    s: &AppState,
    work: Work,
    stream: bool,
    reply: Reply,
) -> Result<Response, ApiError> {
    let timeout = s.limits.request_timeout;
    let deadline = Instant::now() + timeout;
    let expired = || ApiError::timeout(timeout.as_secs());
    let mut events = s.engine.submit(work, stream)?;
    if !stream {
        // Dropping `events` on a timeout stops the generation.
        while let Some(event) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| expired())?
        {
            match event {
                Event::Text(_) => {}
                Event::Generated {
                    text,
                    usage,
                    finish_reason,
                    citations,
                    took,
                    logprobs,
                } => {
                    s.metrics
                        .tokens(&reply.model, usage.prompt_tokens, usage.completion_tokens);
                    // Server-Timing: the engine's share of the latency, so a client can tell
                    // the model's time from the queue's and HTTP's.
                    let timing = format!("engine;dur={:.1}", took.as_secs_f64() * 1000.0);
                    return Ok((
                        [(axum::http::HeaderName::from_static("server-timing"), timing)],
                        axum::Json(reply.whole(text, finish_reason, &usage, citations, &logprobs)),
                    )
                        .into_response());
                }
                Event::Failed(e) => return Err(e),
                Event::Embedded { .. } | Event::Json(_) => break,
            }
        }
        return Err(ApiError::internal("the engine stopped before answering"));
    }
    // The first event decides the status: an error before any text is an ordinary error
    // response, not a stream.
    let first = tokio::time::timeout_at(deadline, events.recv())
        .await
        .map_err(|_| expired())?
        .ok_or_else(|| ApiError::internal("the engine stopped before answering"))?;
    if let Event::Failed(e) = first {
        return Err(e);
    }
    let (out, body) = tokio::sync::mpsc::unbounded_channel::<SseEvent>();
    tokio::spawn(forward(s.clone(), reply, first, events, out, deadline));
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), body))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Turns the engine's events into server-sent events until the answer is complete or the
/// client is gone (then dropping `events` cancels the generation).
async fn forward(
    s: AppState,
    reply: Reply,
    first: Event,
    mut events: UnboundedReceiver<Event>,
    out: tokio::sync::mpsc::UnboundedSender<SseEvent>,
    deadline: Instant,
) {
    let data = |v: Value| SseEvent::default().data(v.to_string());
    if reply.chat
        && out
            .send(data(reply.chunk(
                json!({"role": "assistant", "content": ""}),
                "",
                None,
            )))
            .is_err()
    {
        return;
    }
    let mut next = Some(first);
    loop {
        let event = match next.take() {
            Some(e) => e,
            None => match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => Event::Failed(ApiError::timeout(s.limits.request_timeout.as_secs())),
            },
        };
        let sent = match event {
            Event::Text(t) => out.send(data(reply.chunk(json!({"content": t}), &t, None))),
            Event::Generated {
                usage: u,
                finish_reason,
                citations,
                logprobs,
                ..
            } => {
                s.metrics
                    .tokens(&reply.model, u.prompt_tokens, u.completion_tokens);
                let delta = match citations {
                    Some(c) => json!({"context": {"citations": c}}),
                    None => json!({}),
                };
                // Log-probabilities come whole with the last chunk (clients append the
                // `content` lists of every chunk).
                let logprobs = reply.logprobs(&logprobs);
                let _ = out.send(data(reply.chunk_with(
                    delta,
                    "",
                    Some(finish_reason),
                    logprobs,
                )));
                if reply.include_usage {
                    let mut last = reply.envelope(true, json!([]));
                    last["usage"] = usage(&u);
                    let _ = out.send(data(last));
                }
                break;
            }
            Event::Failed(e) => {
                let _ = out.send(data(e.body()));
                break;
            }
            Event::Embedded { .. } | Event::Json(_) => break,
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = out.send(SseEvent::default().data("[DONE]"));
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: EmbeddingInput,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

/// `POST /tokenize`, vLLM's route (beside `/v1`, not under it): `{"model", "prompt"}` or
/// `{"model", "messages"}` (the chat template applied, with the generation prompt) answers
/// `{"count", "max_model_len"}`. Remote `openai:` models count their prompts with it.
#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    model: String,
    prompt: Option<String>,
    messages: Option<Vec<InMessage>>,
}

async fn tokenize(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let run = async {
        let r: TokenizeRequest = parse(body, &s.limits)?;
        let catalog = &s.engine.catalog;
        let (model, _) = catalog
            .model(&r.model)
            .ok_or_else(|| ApiError::model_not_found(&r.model, &catalog.ids()))?;
        let prompt = match (r.prompt, r.messages) {
            (Some(text), None) => Prompt::Text(text),
            (None, Some(messages)) => Prompt::Chat(
                messages
                    .into_iter()
                    .map(InMessage::into_chat)
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(ApiError::bad_request(
                    "give either \"prompt\" (text) or \"messages\" (a chat)",
                    None,
                ));
            }
        };
        crate::knowledge::engine_json(&s, Work::Tokenize { model, prompt }).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn embeddings(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    run_embeddings(&s, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run_embeddings(
    s: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r: EmbeddingRequest = parse(body, &s.limits)?;
    let catalog = &s.engine.catalog;
    if r.model != catalog.embedder {
        return Err(ApiError::model_not_found(
            &r.model,
            std::slice::from_ref(&catalog.embedder),
        ));
    }
    let texts = match r.input {
        EmbeddingInput::One(t) => vec![t],
        EmbeddingInput::Many(v) => v,
    };
    if texts.is_empty() || texts.iter().any(|t| t.is_empty()) {
        return Err(ApiError::bad_request(
            "input must be a non-empty string or a list of them (token arrays are not supported)",
            Some("input"),
        ));
    }
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("encoding_format {other:?}: use float or base64"),
                Some("encoding_format"),
            ));
        }
    };
    let mut events = s.engine.submit(Work::Embed { texts }, false)?;
    let (vectors, tokens) = loop {
        match events.recv().await {
            Some(Event::Embedded { vectors, tokens }) => break (vectors, tokens),
            Some(Event::Failed(e)) => return Err(e),
            Some(_) => {}
            None => return Err(ApiError::internal("the engine stopped before answering")),
        }
    };
    if let Some(d) = r.dimensions
        && vectors.first().is_some_and(|v| v.len() != d)
    {
        return Err(ApiError::bad_request(
            format!(
                "{} gives {} dimensions; it cannot shorten its vectors to {d}",
                catalog.embedder,
                vectors[0].len()
            ),
            Some("dimensions"),
        ));
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                json!(encode_base64(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": catalog.embedder,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// A vector as OpenAI's `encoding_format: "base64"` sends it: little-endian f32 bytes in
/// standard base64 (what the `openai` SDKs ask for by default and decode).
fn encode_base64(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_base64;

    #[test]
    fn base64_vectors_are_little_endian_f32_in_standard_base64() {
        // 1.0f32 = 00 00 80 3f; -2.0 = 00 00 00 c0.
        assert_eq!(encode_base64(&[1.0]), "AACAPw==");
        assert_eq!(encode_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(encode_base64(&[]), "");
    }
}
