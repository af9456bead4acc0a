//! The web UI: one page embedded in the binary (no CDN, nothing to build), served at `/`. It
//! chats through the same `/v1/chat/completions` stream any client uses, opens a citation's
//! passage with its evidence highlighted, uploads files and shows their ingestion, and opens
//! the comparison report when the server was given one.

use crate::error::ApiError;
use crate::openai::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

const PAGE: &str = include_str!("ui.html");

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// No icon: answered, so browsers do not log a missing one.
pub(crate) async fn favicon() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}

/// What the page needs before it has a key: whether to ask for one, and what to show.
pub(crate) async fn config(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "keys_required": s.keys.is_some(),
        "report": s.report.is_some(),
        "embedder": s.engine.catalog.embedder,
    }))
}

pub(crate) async fn report(State(s): State<AppState>) -> Response {
    let Some(path) = &s.report else {
        return ApiError::not_found(
            "this server has no comparison report (start it with --report OUT/report.html)",
        )
        .into_response();
    };
    match fs_err::read_to_string(path) {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}
