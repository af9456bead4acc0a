//! Who may do what: every route but `/health` and the web UI's page passes the gate, which checks the API key when
//! the server has keys, and counts the request for `/metrics`. Handlers then ask the
//! [`Access`] it leaves whether the key reaches a knowledge base or may write.

use crate::error::ApiError;
use crate::keys::{Key, Scope};
use crate::openai::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the request may do.
#[derive(Debug, Clone)]
pub enum Access {
    /// The server has no keys (it listens on loopback only): everything.
    Open,
    Key(Key),
}

impl Access {
    /// Whether the request may see knowledge base `kb` (listing it, for instance).
    pub fn sees(&self, kb: &str) -> bool {
        match self {
            Access::Open => true,
            Access::Key(k) => k.allows_kb(kb),
        }
    }

    /// 403 unless the request may read knowledge base `kb`.
    pub fn read(&self, kb: &str) -> Result<(), ApiError> {
        if self.sees(kb) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key is limited to knowledge base {:?}; it cannot use {kb:?}",
                self.key_kb()
            )))
        }
    }

    /// 403 unless the request may change knowledge base `kb`.
    pub fn write(&self, kb: &str) -> Result<(), ApiError> {
        self.read(kb)?;
        match self {
            Access::Key(k) if k.scope < Scope::Write => Err(ApiError::forbidden(format!(
                "this API key ({}) has scope read; uploading and deleting documents needs a write key (ragtune keys create --scope write)",
                k.id
            ))),
            _ => Ok(()),
        }
    }

    fn key_kb(&self) -> &str {
        match self {
            Access::Key(Key { kb: Some(kb), .. }) => kb,
            _ => "",
        }
    }
}

/// Routes that need no key: they hold nothing of the models' or documents' (the web UI's page
/// and settings, and the health check).
const OPEN_ROUTES: [&str; 4] = ["/health", "/", "/ui/config", "/favicon.ico"];

/// The bearer token of a request (`Authorization: Bearer KEY`, as the OpenAI SDKs send).
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks the key (when the server has keys) and records the request in the metrics.
pub async fn gate(State(s): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let access = match &s.keys {
        Some(keys) if !OPEN_ROUTES.contains(&route.as_str()) => match bearer(&request) {
            None => Err(ApiError::unauthorized(
                "this server needs an API key: send `Authorization: Bearer KEY` (ragtune keys create makes one)",
            )),
            Some(token) => keys.find(token).map(Access::Key).ok_or_else(|| {
                ApiError::unauthorized(
                    "this API key is not known to this server (revoked, or from another server)",
                )
            }),
        },
        _ => Ok(Access::Open),
    };
    let response = match access {
        Ok(access) => {
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    s.metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}
