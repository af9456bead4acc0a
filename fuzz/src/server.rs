//! The server's front door: request bodies (and the path segments a client picks) sent to
//! every route of `ragtune serve`'s router, over a fake model and a real knowledge base.
//!
//! An input is `ROUTE CONTENT-TYPE '\n' BODY`: its first byte picks the route, the bytes up to
//! the first newline are the `Content-Type` header, the rest is the body (for the routes that
//! take a name or an id in their path, the body is that segment, percent-encoded). Promises
//! checked besides "no panic": no 5xx (every failure is the client's, with a fake model), an
//! error is OpenAI's JSON with a message, a success is JSON (or server-sent events whose data
//! are JSON or `[DONE]`), and an accepted upload is ingested before the next input runs.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ragtune_answer::testing::FakeGenerator;
use ragtune_core::Embedder;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions};
use ragtune_serve::{Backend, Engine, Limits, ServedKb, ServedModel};
use serde_json::Value;
use std::sync::OnceLock;
use tower::ServiceExt as _;

/// A route an input can reach: the bytes after the content type are its body, or the path
/// segment between `before` and `after`.
struct Route {
    method: &'static str,
    before: &'static str,
    after: &'static str,
    segment: bool,
    upload: bool,
}

const fn route(method: &'static str, path: &'static str) -> Route {
    Route {
        method,
        before: path,
        after: "",
        segment: false,
        upload: false,
    }
}

/// The routes, picked by an input's first byte (modulo their count).
const ROUTES: &[Route] = &[
    route("POST", "/v1/chat/completions"),
    route("POST", "/v1/completions"),
    route("POST", "/v1/embeddings"),
    route("POST", "/tokenize"),
    route("POST", "/v1/kb/docs/search"),
    Route {
        upload: true,
        ..route("POST", "/v1/kb/docs/files")
    },
    // The document id.
    Route {
        segment: true,
        ..route("DELETE", "/v1/kb/docs/documents/")
    },
    // The knowledge base's name.
    Route {
        segment: true,
        after: "/status",
        ..route("GET", "/v1/kb/")
    },
    route("GET", "/v1/models"),
    route("GET", "/v1/kb/docs/documents"),
];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    engine: Engine,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = crate::scratch_dir().join("server");
        let _ = std::fs::remove_dir_all(&dir);
        let docs = dir.join("docs");
        std::fs::create_dir_all(&docs).expect("the temporary folder is writable");
        std::fs::write(
            docs.join("keys.md"),
            "# Keys\n\nThe signing keys are rotated every ninety days.\n",
        )
        .expect("the temporary folder is writable");
        let kb_dir = dir.join("kb");
        let engine = Engine::start(4, move || {
            let embedder = HashEmbedder::new(16);
            let mut kb = KnowledgeBase::open(&kb_dir, &embedder).map_err(|e| e.to_string())?;
            kb.sync(
                &[docs],
                &PlainTextSource,
                &embedder,
                &SyncOptions::default(),
                &mut NoProgress,
            )
            .map_err(|e| e.to_string())?;
            let fake = FakeGenerator::new(2048, |_| {
                "The keys are rotated every ninety days [1].".into()
            });
            Ok(Backend {
                models: vec![ServedModel {
                    name: "fake".into(),
                    generator: Box::new(fake),
                    adapters: vec!["fake-lora".into()],
                }],
                kbs: vec![ServedKb::writable("docs", kb, &kb_dir).map_err(|e| e.to_string())?],
                embedder_id: embedder.name().to_owned(),
                embedder: Box::new(embedder),
                answer: Default::default(),
                chunk_max_tokens: 64,
            })
        })
        .expect("the fuzzing server starts");
        let limits = Limits {
            max_body_bytes: 64 << 10,
            max_upload_bytes: 64 << 10,
            ..Limits::default()
        };
        let router = ragtune_serve::router(
            engine.clone(),
            ragtune_serve::Options {
                limits,
                ..Default::default()
            },
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Server {
            runtime,
            router,
            engine,
        }
    })
}

/// `data` as one path segment.
fn percent_encoded(data: &[u8]) -> String {
    data.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) fn request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let route = &ROUTES[usize::from(pick) % ROUTES.len()];
    let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"application/json"[..], rest),
    };
    let method = route.method;
    let mut uri = route.before.to_owned();
    let mut request = Request::builder().method(method);
    let body = if route.segment {
        uri.push_str(&percent_encoded(body));
        uri.push_str(route.after);
        Body::empty()
    } else {
        if let Ok(value) = header::HeaderValue::from_bytes(content_type) {
            request = request.header(header::CONTENT_TYPE, value);
        }
        Body::from(body.to_vec())
    };
    let Ok(request) = request.uri(&uri).body(body) else {
        return; // Not a request a client could send.
    };
    let server = server();
    let (status, content_type, bytes) = server.runtime.block_on(async {
        let response = server
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router's error type is Infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the response body reads to its end");
        (status, content_type, bytes)
    });
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !status.is_server_error(),
        "{method} {uri}: {status}: {text}"
    );
    if content_type.starts_with("text/event-stream") {
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                assert!(
                    data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
                    "{method} {uri}: an event that is not JSON: {data}"
                );
            }
        }
    } else {
        let reply: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{method} {uri}: {status}: a reply that is not JSON ({e}): {text}")
        });
        if !status.is_success() {
            let message = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.is_empty(),
                "{method} {uri}: {status} without an error message: {text}"
            );
        }
    }
    if route.upload && status == StatusCode::ACCEPTED {
        // The upload's ingestion runs on the engine between requests; the next input starts
        // after it (so that a failure in it belongs to this input).
        let feed = &server.engine.feeds[0];
        while feed.status().queued > 0 || feed.status().running.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
