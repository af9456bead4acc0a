//! `ragtune serve`: an OpenAI-compatible HTTP server over the local models and knowledge
//! bases, in the shape llama.cpp's server, vLLM and Ollama share, so the `openai` SDKs,
//! LangChain and LlamaIndex talk to it unchanged:
//!
//! - `POST /v1/chat/completions` and `POST /v1/completions`, streamed (server-sent events) or
//!   not, with `max_tokens`, `temperature`, `top_p`, `seed` and `stop`;
//! - `POST /v1/embeddings`; `GET /v1/models` (base models; adapters with their `parent`, as vLLM
//!   lists LoRA modules; knowledge bases as `rag/NAME`; the embedder); `GET /health`;
//!   `GET /metrics` (Prometheus);
//! - knowledge bases under `/v1/kb`: upload files, watch their ingestion,
//!   list, delete and search documents.
//!
//! A request picks an adapter by naming it as its `model` (vLLM's convention). It answers from
//! a knowledge base, with `[n]` markers and `message.context.citations[]` (the passage, where it
//! is, and whether the citation checked out), when its model is `rag/NAME[:MODEL]` or it carries
//! `"ragtune": {"kb": NAME, "top_k": N}`; a stream sends the citations in a last chunk before
//! `[DONE]`. Errors come in OpenAI's shape ([`ApiError`]).
//!
//! The HTTP layer ([`router`]) holds no model: it resolves names against the [`Catalog`] and
//! sends [`Work`] to the [`Engine`] thread, which owns every model and knowledge base and runs
//! requests from a bounded queue (429 when full) in rounds, the generations of a round
//! batched together, syncing one uploaded file between rounds.
//!
//! With API keys ([`keys`]), every route but `/health` needs `Authorization: Bearer KEY`; a
//! key limited to one knowledge base gets 403 on the others. Without keys the server only
//! listens on loopback ([`check_address`]).

mod access;
mod engine;
mod error;
mod feed;
pub mod keys;
mod knowledge;
mod metrics;
mod openai;
mod ui;

pub use access::Access;
pub use engine::{
    Backend, Catalog, Engine, Event, RAG_PREFIX, ServedModel, Target, TextEmbedder, Work, citations,
};
pub use error::ApiError;
pub use feed::{Failure, IngestStatus, KbFeed, ServedKb, UPLOADS_DIR, check_upload_name};
pub use openai::{Limits, Options, router};

use std::net::SocketAddr;

/// Refuses an address other machines can reach unless the server checks API keys: without
/// them anyone who can reach the port could use the models and read the knowledge bases.
pub fn check_address(addr: &SocketAddr, has_keys: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || has_keys {
        Ok(())
    } else {
        Err(format!(
            "{addr} can be reached from other machines, and this server has no API keys: \
             make one with `ragtune keys create --scope read` (then every request needs it), \
             or bind a loopback address (127.0.0.1:PORT)"
        ))
    }
}

/// Serves `router` on `listener` until Ctrl-C (or SIGTERM).
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
        })
        .await
}
