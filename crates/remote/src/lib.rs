//! Models on another machine: a [`Generator`](ragtune_core::Generator) and an
//! [`Embedder`](ragtune_core::Embedder) over any OpenAI-compatible HTTP API (vLLM, TGI,
//! llama.cpp's server, Ollama, `ragtune serve`, OpenAI itself), named `openai:NAME@URL`
//! wherever a model is accepted.
//!
//! Nothing here runs unless such a name is given: ragtune stays local by default. The API key
//! comes from an environment variable ([`DEFAULT_KEY_VAR`] unless told otherwise) and is never
//! printed. Transient failures (refused or reset connections, timeouts, 408, 429, 5xx gateway
//! errors) are retried with exponential backoff, honouring `Retry-After`; nothing else is.
//! Requests in flight are capped per model ([`Options::concurrency`]).

mod client;
mod embedder;
mod generator;
mod sse;

pub use client::{ApiKey, DEFAULT_KEY_VAR, Endpoint, Options};
pub use embedder::RemoteEmbedder;
pub use generator::{FALLBACK_CONTEXT, RemoteGenerator, estimate_tokens};

/// Why a remote model could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{spec:?} is not a remote model name: {why} (write openai:NAME@URL, e.g. openai:gpt-4o-mini@https://api.openai.com/v1)"
    )]
    Spec { spec: String, why: String },
    #[error("cannot reach the model server at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} does not serve a model named {model:?}; it serves: {served}")]
    UnknownModel {
        model: String,
        url: String,
        served: String,
    },
}
