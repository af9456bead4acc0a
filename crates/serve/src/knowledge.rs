//! The knowledge-base routes: list them, upload files into one (multipart, written into its
//! own `uploads` folder and ingested in the background), watch the ingestion, list and delete
//! documents, and search.
//!
//! - `GET /v1/kb`: the knowledge bases the key reaches, with their status;
//! - `GET /v1/kb/{name}/status`: files queued, running, done and failed (with reasons),
//!   documents and chunks;
//! - `POST /v1/kb/{name}/files`: `multipart/form-data`, one or more file parts (202);
//! - `GET /v1/kb/{name}/documents`, `DELETE /v1/kb/{name}/documents/{id}`;
//! - `POST /v1/kb/{name}/search`: `{"query", "top_k", "mode": "hybrid"|"bm25"|"dense"}`.

use crate::access::Access;
use crate::engine::{Event, Work};
use crate::error::ApiError;
use crate::feed::{UPLOAD_TMP_PREFIX, check_upload_name};
use crate::openai::{AppState, parse};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ragtune_core::{Query, SearchMode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::atomic::Ordering;

/// The index of knowledge base `name`, if the request may read it.
fn kb_index(s: &AppState, access: &Access, name: &str) -> Result<usize, ApiError> {
    let i = s
        .engine
        .catalog
        .kbs
        .iter()
        .position(|k| k == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no knowledge base {name:?} on this server; GET /v1/kb lists them"
            ))
        })?;
    access.read(name)?;
    Ok(i)
}

fn status_json(s: &AppState, i: usize) -> Value {
    let feed = &s.engine.feeds[i];
    let status = feed.counted_status();
    let state = if status.running.is_some() || status.queued > 0 {
        "ingesting"
    } else {
        "idle"
    };
    json!({
        "object": "kb.status",
        "kb": feed.name,
        "writable": feed.uploads.is_some(),
        "state": state,
        "files": {
            "queued": status.queued,
            "running": status.running,
            "done": status.done,
            "failed": status.failed,
        },
        "documents": status.documents,
        "chunks": status.chunks,
        "failures": status.failures,
    })
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
) -> Response {
    let seen: Vec<usize> = (0..s.engine.feeds.len())
        .filter(|&i| access.sees(&s.engine.feeds[i].name))
        .collect();
    match statuses(s, seen).await {
        Ok(data) => axum::Json(json!({"object": "list", "data": data})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The status of each knowledge base in `kbs`, off the async runtime: a knowledge base on
/// PostgreSQL is counted over the network.
async fn statuses(s: AppState, kbs: Vec<usize>) -> Result<Vec<Value>, ApiError> {
    tokio::task::spawn_blocking(move || kbs.iter().map(|&i| status_json(&s, i)).collect())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(crate) async fn status(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async {
        let i = path(name).and_then(|name| kb_index(&s, &access, &name))?;
        let mut one = statuses(s.clone(), vec![i]).await?;
        Ok::<_, ApiError>(axum::Json(one.remove(0)))
    };
    run.await.into_response()
}

/// A path's segments, or a 400 in OpenAI's shape (axum's own rejection is plain text).
fn path<T>(segments: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    segments
        .map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text(), None))
}

/// Runs read or delete work on the engine and answers with its JSON.
pub(crate) async fn engine_json(s: &AppState, work: Work) -> Result<Response, ApiError> {
    let mut events = s.engine.submit(work, false)?;
    match events.recv().await {
        Some(Event::Json(v)) => Ok(axum::Json(v).into_response()),
        Some(Event::Failed(e)) => Err(e),
        _ => Err(ApiError::internal("the engine stopped before answering")),
    }
}

pub(crate) async fn documents(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async {
        let name = path(name)?;
        let kb = kb_index(&s, &access, &name)?;
        engine_json(&s, Work::Documents { kb }).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    segments: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let run = async {
        let (name, id) = path(segments)?;
        let kb = kb_index(&s, &access, &name)?;
        access.write(&name)?;
        let document = id.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                format!("{id:?} is no document id; GET /v1/kb/{name}/documents lists them"),
                None,
            )
        })?;
        engine_json(&s, Work::Delete { kb, document }).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: String,
    #[serde(default = "default_top_k")]
    top_k: usize,
    #[serde(default)]
    mode: Option<String>,
}

fn default_top_k() -> usize {
    5
}

pub(crate) async fn search(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let name = path(name)?;
        let kb = kb_index(&s, &access, &name)?;
        let r: SearchRequest = parse(body, &s.limits)?;
        if r.query.trim().is_empty() {
            return Err(ApiError::bad_request(
                "query must not be empty",
                Some("query"),
            ));
        }
        if !(1..=100).contains(&r.top_k) {
            return Err(ApiError::bad_request(
                "top_k must be between 1 and 100",
                Some("top_k"),
            ));
        }
        let mode = match r.mode.as_deref() {
            None | Some("hybrid") => SearchMode::Hybrid,
            Some("bm25") => SearchMode::Bm25,
            Some("dense") => SearchMode::Dense,
            Some(other) => {
                return Err(ApiError::bad_request(
                    format!("mode {other:?}: use hybrid, bm25 or dense"),
                    Some("mode"),
                ));
            }
        };
        let query = Query::new(r.query, r.top_k, mode);
        engine_json(&s, Work::Search { kb, query }).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Writes each file part into the knowledge base's uploads folder (through a hidden
/// temporary file renamed into place, so the ingester never reads half a file) and queues it.
pub(crate) async fn upload(
    State(s): State<AppState>,
    Extension(access): Extension<Access>,
    name: Result<Path<String>, PathRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let run = async {
        let name = path(name)?;
        let kb = kb_index(&s, &access, &name)?;
        access.write(&name)?;
        let feed = &s.engine.feeds[kb];
        let uploads = feed
            .uploads
            .clone()
            .ok_or_else(|| ApiError::conflict(feed.read_only.clone().unwrap_or_default()))?;
        let mut multipart =
            multipart.map_err(|e| ApiError::bad_request(e.body_text(), Some("file")))?;
        let mut saved = Vec::new();
        let too_large = |e: &axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(s.limits.max_upload_bytes)
            } else {
                ApiError::bad_request(e.body_text(), Some("file"))
            }
        };
        while let Some(mut field) = multipart.next_field().await.map_err(|e| too_large(&e))? {
            let Some(file_name) = field.file_name().map(str::to_owned) else {
                continue; // A plain form field, not a file.
            };
            let file_name = check_upload_name(&file_name)?.to_owned();
            let final_path = uploads.join(&file_name);
            let tmp = uploads.join(format!(
                "{UPLOAD_TMP_PREFIX}{}-{file_name}",
                s.next_id.fetch_add(1, Ordering::Relaxed)
            ));
            let written = async {
                let mut out =
                    fs_err::File::create(&tmp).map_err(|e| ApiError::internal(e.to_string()))?;
                let mut bytes = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(|e| too_large(&e))? {
                    bytes += chunk.len() as u64;
                    out.write_all(&chunk)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                }
                out.sync_all()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok::<_, ApiError>(bytes)
            }
            .await;
            let bytes = match written {
                Ok(b) => b,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let replaced = final_path.exists();
            if let Err(e) = fs_err::rename(&tmp, &final_path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(ApiError::internal(e.to_string()));
            }
            s.engine.feed(kb, final_path);
            saved.push(json!({
                "object": "kb.file",
                "filename": file_name,
                "bytes": bytes,
                "replaced": replaced,
                "status": "queued",
            }));
        }
        if saved.is_empty() {
            return Err(ApiError::bad_request(
                "the upload holds no file: send multipart/form-data with a file part (curl -F file=@notes.md)",
                Some("file"),
            ));
        }
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"object": "list", "kb": name, "data": saved})),
        )
            .into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}
