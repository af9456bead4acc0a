//! The server over fakes, through real HTTP on a loopback port: OpenAI's shapes for chat,
//! streaming, completions, embeddings and models; adapters by name; RAG with checked
//! citations; errors with their status codes; a full queue; API keys and their scopes;
//! uploads into a knowledge base with their ingestion, listing, search and deletion;
//! metrics; request timeouts.

use anyhow::Result;
use ragtune_answer::testing::FakeGenerator;
use ragtune_core::{
    ChatMessage, Embedder, Generation, GenerationRequest, Generator, GeneratorError,
    KvCacheCounters, Prompt, TokenSink,
};
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions, sync_into};
use ragtune_pg::PgKb;
use ragtune_serve::keys::{KeyRing, Scope};
use ragtune_serve::{Backend, Engine, Limits, ServedKb, ServedModel, check_address, router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod postgres;
mod shapes;
mod ui;

/// A fake shared with the test, so its requests can be read after the engine ran them.
struct Shared(Arc<FakeGenerator>);

impl Generator for Shared {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        self.0.generate(request, sink)
    }
    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> std::ops::ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        self.0.generate_batch_streaming(requests, sink)
    }
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        self.0.count_prompt_tokens(prompt)
    }
    fn context_length(&self) -> u32 {
        self.0.context_length()
    }
    fn kv_cache(&self) -> Option<Arc<KvCacheCounters>> {
        Some(shared_kv_cache())
    }
}

/// What `Shared` says its contexts' KV cache holds, for `/metrics`.
fn shared_kv_cache() -> Arc<KvCacheCounters> {
    static KV: std::sync::OnceLock<Arc<KvCacheCounters>> = std::sync::OnceLock::new();
    KV.get_or_init(|| {
        let kv = KvCacheCounters::default();
        kv.bytes.store(23_040 * 1024, Ordering::Relaxed);
        kv.contexts_created.store(2, Ordering::Relaxed);
        kv.reused_prompt_tokens.store(160, Ordering::Relaxed);
        Arc::new(kv)
    })
    .clone()
}

/// Holds every reply until opened, counting the replies that started.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    started: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

struct Server {
    addr: SocketAddr,
    fake: Arc<FakeGenerator>,
    gate: Arc<Gate>,
    /// The knowledge base `docs`.
    kb_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// How a test server differs from the default one.
struct Options {
    queue: usize,
    gated: bool,
    limits: Limits,
    keys: Option<std::path::PathBuf>,
    /// Files already in the uploads folder when the server starts.
    preloaded: Vec<(&'static str, &'static str)>,
    report: Option<std::path::PathBuf>,
    /// Serves this generator as `fake` instead of the fake model.
    generator: Option<Box<dyn Generator>>,
    /// `docs` is this knowledge base on PostgreSQL (a URL), not a folder.
    postgres: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queue: 8,
            gated: false,
            limits: Limits {
                max_body_bytes: 4096,
                ..Limits::default()
            },
            keys: None,
            preloaded: Vec::new(),
            report: None,
            generator: None,
            postgres: None,
        }
    }
}

const KEYS: &str =
    "# Keys\n\nThe signing keys are rotated every ninety days by the platform team.\n";

/// A server with the model `fake` (adapter `fake-lora`) and the knowledge base `docs`.
async fn start(queue: usize, gated: bool) -> Result<Server> {
    start_with(Options {
        queue,
        gated,
        ..Options::default()
    })
    .await
}

async fn start_with(o: Options) -> Result<Server> {
    let Options {
        queue,
        gated,
        limits,
        keys,
        preloaded,
        report,
        generator: served,
        postgres,
    } = o;
    let dir = tempfile::tempdir()?;
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs)?;
    std::fs::write(docs.join("keys.md"), KEYS)?;
    std::fs::write(
        docs.join("coffee.md"),
        "# Coffee\n\nThe espresso machine is on the third floor.\n",
    )?;
    let gate = Arc::new(Gate::default());
    if !gated {
        gate.open();
    }
    let g = gate.clone();
    let fake = Arc::new(FakeGenerator::new(4096, move |messages| {
        g.pass();
        let last = messages.last().map_or("", |m| m.content.as_str());
        if last.contains("How often are the signing keys rotated?") {
            "every ninety days [1]".into()
        } else {
            "hello from the fake model".into()
        }
    }));
    let generator: Box<dyn Generator> = served.unwrap_or_else(|| Box::new(Shared(fake.clone())));
    let kb_dir = dir.path().join("kb");
    let uploads = kb_dir.join(ragtune_serve::UPLOADS_DIR);
    std::fs::create_dir_all(&uploads)?;
    for (name, text) in preloaded {
        std::fs::write(uploads.join(name), text)?;
    }
    let engine_kb_dir = kb_dir.clone();
    let engine = Engine::start(queue, move || {
        let kb_dir = engine_kb_dir;
        let embedder = HashEmbedder::new(16);
        let served_kb = match postgres {
            Some(url) => {
                let mut kb = PgKb::open(&url, &embedder).map_err(|e| e.to_string())?;
                sync_into(
                    &mut kb,
                    &[docs],
                    &PlainTextSource,
                    &embedder,
                    &SyncOptions::default(),
                    &mut NoProgress,
                )
                .map_err(|e| e.to_string())?;
                ServedKb::postgres("docs", kb).map_err(|e| e.to_string())?
            }
            None => served_folder(&kb_dir, &docs, &embedder)?,
        };
        Ok(Backend {
            models: vec![ServedModel {
                name: "fake".into(),
                generator,
                adapters: vec!["fake-lora".into()],
            }],
            kbs: vec![served_kb],
            embedder_id: embedder.name().to_owned(),
            embedder: Box::new(embedder),
            answer: Default::default(),
            chunk_max_tokens: 64,
        })
    })
    .map_err(anyhow::Error::msg)?;
    // The uploads folder is caught up at start; a request racing it would find the engine
    // busy (with no queue, a 429).
    while engine.feeds[0].status().queued > 0 || engine.feeds[0].status().running.is_some() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let keys = keys.map(|k| KeyRing::open(&k)).transpose()?;
    let app = router(
        engine,
        ragtune_serve::Options {
            limits,
            keys,
            report,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server {
        addr,
        fake,
        gate,
        kb_dir,
        _dir: dir,
    })
}

/// The knowledge base `docs` in `kb_dir`, synced from `docs`, taking uploads.
fn served_folder(
    kb_dir: &std::path::Path,
    docs: &std::path::Path,
    embedder: &HashEmbedder,
) -> Result<ServedKb, String> {
    let mut kb = KnowledgeBase::open(kb_dir, embedder).map_err(|e| e.to_string())?;
    kb.sync(
        &[docs.to_owned()],
        &PlainTextSource,
        embedder,
        &SyncOptions::default(),
        &mut NoProgress,
    )
    .map_err(|e| e.to_string())?;
    ServedKb::writable("docs", kb, kb_dir).map_err(|e| e.to_string())
}

/// One HTTP/1.1 request; the status, the headers (lowercase) and the body (de-chunked).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String, String)> {
    http_with(addr, method, path, &[], body.as_bytes()).await
}

/// [`http`] with more headers (a JSON body unless they set another content type).
async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if !headers
        .iter()
        .any(|(h, _)| h.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (h, v) in headers {
        head.push_str(&format!("{h}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    // A server that refuses a large body early may close before reading it all.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    // After an early refusal the connection may be reset once the answer is read.
    if let Err(e) = stream.read_to_end(&mut raw).await
        && raw.is_empty()
    {
        return Err(e.into());
    }
    let raw = String::from_utf8(raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse()?;
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16)?;
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    Ok((status, headers, body))
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> Result<(u16, Value)> {
    let (status, _, text) = http(addr, "POST", path, &body.to_string()).await?;
    Ok((status, serde_json::from_str(&text)?))
}

/// The `data:` payloads of a server-sent event stream.
fn events(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn models_lists_bases_adapters_with_their_parent_and_knowledge_bases() -> Result<()> {
    let s = start(8, false).await?;
    let (status, _, body) = http(s.addr, "GET", "/v1/models", "").await?;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fake", "fake-lora", "rag/docs", "test-hash-bow-16"]);
    assert_eq!(v["data"][1]["parent"], "fake");
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["max_model_len"], 4096);
    assert_eq!(v["data"][1]["max_model_len"], 4096);
    let (status, _, body) = http(s.addr, "GET", "/health", "").await?;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    Ok(())
}

#[tokio::test]
async fn tokenize_counts_a_prompt_as_the_model_does() -> Result<()> {
    let s = start(8, false).await?;
    let chat = Prompt::Chat(vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user("one two"),
    ]);
    let expected = s.fake.count_prompt_tokens(&chat)?;
    let (status, v) = post(
        s.addr,
        "/tokenize",
        json!({"model": "fake-lora", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two"}
        ], "add_generation_prompt": true}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"count": expected, "max_model_len": 4096}));
    let text = s
        .fake
        .count_prompt_tokens(&Prompt::Text("one two three".into()))?;
    let (status, v) = post(
        s.addr,
        "/tokenize",
        json!({"model": "fake", "prompt": "one two three"}),
    )
    .await?;
    assert_eq!((status, &v["count"]), (200, &json!(text)));
    let (status, v) = post(s.addr, "/tokenize", json!({"model": "nope", "prompt": "x"})).await?;
    assert_eq!(status, 404, "{v}");
    let (status, v) = post(s.addr, "/tokenize", json!({"model": "fake"})).await?;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    Ok(())
}

#[tokio::test]
async fn chat_answers_in_openai_shape_and_an_adapter_is_picked_by_name() -> Result<()> {
    let s = start(8, false).await?;
    let (status, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stop": "\n"}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello from the fake model"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 5);
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + 5)
    );
    let last = s.fake.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.adapter, None);
    assert_eq!(last.stop, ["\n"]);
    assert!(last.sampling.is_greedy());

    let (status, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "fake-lora", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 2}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "hello from");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let last = s.fake.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.adapter.as_deref(), Some("fake-lora"));
    assert_eq!(last.max_tokens, 2);
    Ok(())
}

#[tokio::test]
async fn a_rag_model_answers_with_checked_citations() -> Result<()> {
    let s = start(8, false).await?;
    for request in [
        json!({"model": "rag/docs", "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]}),
        json!({"model": "fake-lora", "ragtune": {"kb": "docs", "top_k": 1}, "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]}),
    ] {
        let (status, v) = post(s.addr, "/v1/chat/completions", request).await?;
        assert_eq!(status, 200, "{v}");
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], "every ninety days [1]");
        let c = &message["context"]["citations"][0];
        assert_eq!(c["id"], 1);
        assert_eq!(c["valid"], true, "{c}");
        assert!(c["filepath"].as_str().unwrap().ends_with("keys.md"), "{c}");
        assert!(
            c["content"].as_str().unwrap().contains("every ninety days"),
            "{c}"
        );
        let (start, end) = (
            c["start"].as_u64().unwrap() as usize,
            c["end"].as_u64().unwrap() as usize,
        );
        assert!(KEYS[start..end].contains("every ninety days"), "{c}");
        // The evidence is the passage's sentence that supports the claim, by byte range.
        let content = c["content"].as_str().unwrap();
        let e = &c["evidence"];
        let (from, to) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            &content[from..to],
            "The signing keys are rotated every ninety days by the platform team.",
            "{c}"
        );
        assert_eq!(e["text"], &content[from..to]);
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    }
    let last = s.fake.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.adapter.as_deref(), Some("fake-lora"));
    Ok(())
}

#[tokio::test]
async fn a_stream_sends_deltas_then_the_citations_then_usage_then_done() -> Result<()> {
    let s = start(8, false).await?;
    let body = json!({"model": "rag/docs", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]});
    let (status, headers, text) =
        http(s.addr, "POST", "/v1/chat/completions", &body.to_string()).await?;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers.contains("content-type: text/event-stream"),
        "{headers}"
    );
    let events = events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e))
        .collect::<Result<_, _>>()?;
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let said: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(said, "every ninety days [1]");
    let finished = chunks
        .iter()
        .position(|c| c["choices"][0]["finish_reason"] == "stop")
        .unwrap();
    let citations = &chunks[finished]["choices"][0]["delta"]["context"]["citations"];
    assert_eq!(citations[0]["valid"], true, "{citations}");
    // Usage last, with no choices, as OpenAI sends it.
    let usage = chunks.last().unwrap();
    assert_eq!(finished, chunks.len() - 2);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    Ok(())
}

#[tokio::test]
async fn text_completions_and_embeddings_answer_in_openai_shape() -> Result<()> {
    let s = start(8, false).await?;
    let (status, v) = post(
        s.addr,
        "/v1/completions",
        json!({"model": "fake", "prompt": "Say hi", "max_tokens": 3}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "hello from the");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert!(matches!(
        s.fake.requests.lock().unwrap().last().unwrap().prompt,
        Prompt::Text(_)
    ));

    let (status, v) = post(
        s.addr,
        "/v1/embeddings",
        json!({"model": "test-hash-bow-16", "input": ["one text", "another text"]}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    let floats: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone())?;
    assert_eq!(floats.len(), 16);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);
    // base64: the same floats, little-endian.
    let (_, b) = post(
        s.addr,
        "/v1/embeddings",
        json!({"model": "test-hash-bow-16", "input": "one text", "encoding_format": "base64"}),
    )
    .await?;
    let encoded = b["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), (16 * 4usize).div_ceil(3) * 4);
    Ok(())
}

#[tokio::test]
async fn errors_come_in_openai_shape_with_their_status() -> Result<()> {
    let s = start(8, false).await?;
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = post(s.addr, "/v1/chat/completions", chat("gpt-9")).await?;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rag/docs"),
        "{v}"
    );
    let (status, v) = post(s.addr, "/v1/chat/completions", chat("rag/nowhere")).await?;
    assert_eq!(status, 404, "{v}");
    let (status, v) = post(
        s.addr,
        "/v1/embeddings",
        json!({"model": "fake", "input": "x"}),
    )
    .await?;
    assert_eq!(status, 404, "{v}");
    for bad in [
        json!({"model": "fake", "messages": []}),
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "temperature": 7}),
        json!({"model": "fake", "messages": [{"role": "wizard", "content": "hi"}]}),
        json!({"model": "fake", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "ragtune": {"kb": "docs", "bogus": 1}}),
        json!({"model": "rag/docs", "prompt": "hi"}),
    ] {
        let path = if bad.get("prompt").is_some() {
            "/v1/completions"
        } else {
            "/v1/chat/completions"
        };
        let (status, v) = post(s.addr, path, bad.clone()).await?;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let (status, _, text) = http(s.addr, "POST", "/v1/chat/completions", "{not json").await?;
    assert_eq!(status, 400, "{text}");
    let big = json!({"model": "fake", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let (status, v) = post(s.addr, "/v1/chat/completions", big).await?;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    let (status, _, text) = http(s.addr, "GET", "/v2/nothing", "").await?;
    assert_eq!(status, 404);
    assert!(text.contains("\"error\""), "{text}");
    // Found by fuzzing (server_request): a path segment that is not UTF-8 got axum's plain-text
    // rejection instead of an error in OpenAI's shape.
    for path in ["/v1/kb/doc%FF/status", "/v1/kb/%C3/documents"] {
        let (status, v) = get_json(s.addr, path).await?;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{path}: {v}");
    }
    let (status, _, text) = http(s.addr, "DELETE", "/v1/kb/docs/documents/%FE", "").await?;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"error\""), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_full_queue_is_refused_with_429_and_retry_after() -> Result<()> {
    // No queue: while the engine runs one request, the next is refused at once.
    let s = start(0, true).await?;
    let addr = s.addr;
    let first = tokio::spawn(async move {
        post(
            addr,
            "/v1/chat/completions",
            json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
    });
    for _ in 0..1000 {
        if s.gate.started.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.gate.started.load(Ordering::SeqCst),
        1,
        "the first request runs"
    );
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, text) =
        http(addr, "POST", "/v1/chat/completions", &body.to_string()).await?;
    assert_eq!(status, 429, "{text}");
    assert!(headers.contains("retry-after: 1"), "{headers}");
    assert!(text.contains("rate_limit_error"), "{text}");
    s.gate.open();
    let (status, v) = first.await??;
    assert_eq!(status, 200, "{v}");
    Ok(())
}

#[tokio::test]
async fn requests_waiting_together_are_generated_in_one_batch() -> Result<()> {
    let s = start(8, true).await?;
    let ask = |content: &'static str, model: &'static str| {
        let addr = s.addr;
        tokio::spawn(async move {
            post(
                addr,
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": content}]}),
            )
            .await
        })
    };
    // The first request holds the engine; three more wait, one of them for another adapter.
    let first = ask("hi", "fake");
    while s.gate.started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let waiting = [
        ask("one", "fake"),
        ask("How often are the signing keys rotated?", "rag/docs"),
        ask("two", "fake-lora"),
    ];
    for _ in 0..1000 {
        let (_, _, m) = http(s.addr, "GET", "/metrics", "").await?;
        if m.lines().any(|l| l == "ragtune_queue_depth 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.gate.open();
    let (status, v) = first.await??;
    assert_eq!(status, 200, "{v}");
    for w in waiting {
        let (status, v) = w.await??;
        assert_eq!(status, 200, "{v}");
    }
    // The plain chat and the RAG answer on the base model went together; the adapter's alone.
    let mut batches = s.fake.batches.lock().unwrap().clone();
    batches[1..].sort_unstable();
    assert_eq!(batches, vec![1, 1, 2], "batch sizes");
    Ok(())
}

#[test]
fn only_loopback_addresses_are_served_without_keys() {
    assert!(check_address(&"127.0.0.1:8080".parse().unwrap(), false).is_ok());
    assert!(check_address(&"[::1]:8080".parse().unwrap(), false).is_ok());
    let err = check_address(&"0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
    assert!(err.contains("no API keys"), "{err}");
    assert!(check_address(&"0.0.0.0:8080".parse().unwrap(), true).is_ok());
}

/// A `multipart/form-data` body with one file part per `(name, content)`.
fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "ragtune-test-boundary";
    let mut body = Vec::new();
    for (name, content) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    addr: SocketAddr,
    key: Option<&str>,
    files: &[(&str, &[u8])],
) -> Result<(u16, Value)> {
    let (content_type, body) = multipart(files);
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", content_type.as_str())];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let (status, _, text) = http_with(addr, "POST", "/v1/kb/docs/files", &headers, &body).await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(json!(text))))
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<(u16, Value)> {
    let (status, _, text) = http(addr, "GET", path, "").await?;
    Ok((status, serde_json::from_str(&text)?))
}

/// Polls the status of `docs` until nothing is queued or running.
async fn wait_idle(addr: SocketAddr) -> Result<Value> {
    for _ in 0..2000 {
        let (status, v) = get_json(addr, "/v1/kb/docs/status").await?;
        assert_eq!(status, 200, "{v}");
        if v["state"] == "idle" {
            return Ok(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    anyhow::bail!("the ingestion never finished")
}

async fn search(addr: SocketAddr, query: &str) -> Result<Vec<String>> {
    let (status, v) = post(
        addr,
        "/v1/kb/docs/search",
        json!({"query": query, "top_k": 5, "mode": "bm25"}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    Ok(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["content"].as_str().unwrap().to_owned())
        .collect())
}

#[tokio::test]
async fn an_uploaded_file_is_ingested_listed_searched_and_deleted() -> Result<()> {
    let s = start(8, false).await?;
    let before = wait_idle(s.addr).await?;
    let (status, v) = upload(
        s.addr,
        None,
        &[(
            "parking.md",
            b"# Parking\n\nVisitors park in the zeppelin hangar behind building C.\n",
        )],
    )
    .await?;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["data"][0]["filename"], "parking.md");
    assert_eq!(v["data"][0]["status"], "queued");
    let after = wait_idle(s.addr).await?;
    assert_eq!(after["files"]["failed"], 0, "{after}");
    assert_eq!(
        after["documents"].as_u64().unwrap(),
        before["documents"].as_u64().unwrap() + 1,
        "{after}"
    );
    assert!(search(s.addr, "zeppelin hangar").await?[0].contains("zeppelin"));

    let (status, docs) = get_json(s.addr, "/v1/kb/docs/documents").await?;
    assert_eq!(status, 200, "{docs}");
    let docs = docs["data"].as_array().unwrap().clone();
    let uploaded: Vec<&Value> = docs.iter().filter(|d| d["uploaded"] == true).collect();
    assert_eq!(uploaded.len(), 1, "{docs:?}");
    assert!(
        uploaded[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("parking.md")
    );
    // Documents ingested from the user's own folder are not the server's to delete.
    let theirs = docs.iter().find(|d| d["uploaded"] == false).unwrap();
    let (status, _, text) = http(
        s.addr,
        "DELETE",
        &format!("/v1/kb/docs/documents/{}", theirs["id"]),
        "",
    )
    .await?;
    assert_eq!(status, 409, "{text}");

    let (status, _, text) = http(
        s.addr,
        "DELETE",
        &format!("/v1/kb/docs/documents/{}", uploaded[0]["id"]),
        "",
    )
    .await?;
    assert_eq!(status, 200, "{text}");
    assert!(!s.kb_dir.join("uploads/parking.md").exists());
    assert!(
        search(s.addr, "zeppelin hangar")
            .await?
            .iter()
            .all(|t| !t.contains("zeppelin"))
    );
    let (_, status) = get_json(s.addr, "/v1/kb/docs/status").await?;
    assert_eq!(status["documents"], before["documents"], "{status}");
    Ok(())
}

#[tokio::test]
async fn a_failed_file_is_reported_with_its_reason_and_the_others_still_land() -> Result<()> {
    let s = start(8, false).await?;
    let (status, v) = upload(
        s.addr,
        None,
        &[
            ("broken.docx", b"this is not a zip archive"),
            ("fine.txt", b"The library opens at nine."),
        ],
    )
    .await?;
    assert_eq!(status, 202, "{v}");
    let after = wait_idle(s.addr).await?;
    assert_eq!(after["files"]["failed"], 1, "{after}");
    let failure = &after["failures"][0];
    assert!(failure["file"].as_str().unwrap().ends_with("broken.docx"));
    assert!(!failure["reason"].as_str().unwrap().is_empty());
    assert!(search(s.addr, "library opens").await?[0].contains("nine"));
    Ok(())
}

#[tokio::test]
async fn files_left_in_the_uploads_folder_are_ingested_when_the_server_starts() -> Result<()> {
    let s = start_with(Options {
        preloaded: vec![("early.md", "Uploaded before a restart: the quokka census.")],
        ..Options::default()
    })
    .await?;
    assert!(search(s.addr, "quokka census").await?[0].contains("quokka"));
    Ok(())
}

#[tokio::test]
async fn upload_names_cannot_leave_the_folder_and_oversized_uploads_are_refused() -> Result<()> {
    let s = start_with(Options {
        limits: Limits {
            max_body_bytes: 4096,
            max_upload_bytes: 2048,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await?;
    for name in [
        "../escape.md",
        "/tmp/escape.md",
        "sub/escape.md",
        ".hidden.md",
    ] {
        let (status, v) = upload(s.addr, None, &[(name, b"text")]).await?;
        assert_eq!(status, 400, "{name}: {v}");
        assert_eq!(v["error"]["param"], "file", "{v}");
    }
    assert!(!s.kb_dir.join("escape.md").exists());
    assert!(!s._dir.path().join("escape.md").exists());
    let big = vec![b'a'; 10_000];
    let (status, v) = upload(s.addr, None, &[("big.txt", &big)]).await?;
    assert_eq!(status, 413, "{v}");
    let uploads: Vec<_> = std::fs::read_dir(s.kb_dir.join("uploads"))?.collect();
    assert!(uploads.is_empty(), "nothing is left behind: {uploads:?}");
    Ok(())
}

#[tokio::test]
async fn api_keys_are_checked_and_a_key_reaches_only_its_knowledge_base() -> Result<()> {
    let keys_dir = tempfile::tempdir()?;
    let keys = keys_dir.path().join("keys.json");
    let (_, read) = ragtune_serve::keys::create(&keys, Scope::Read, None, "app".into())?;
    let (_, write) = ragtune_serve::keys::create(&keys, Scope::Write, None, "ingest".into())?;
    let (_, other) =
        ragtune_serve::keys::create(&keys, Scope::Admin, Some("other".into()), "x".into())?;
    let s = start_with(Options {
        keys: Some(keys.clone()),
        ..Options::default()
    })
    .await?;
    let chat = json!({"model": "rag/docs", "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]}).to_string();
    let call = |key: Option<&str>, method: &'static str, path: &'static str, body: String| {
        let auth = key.map(|k| format!("Bearer {k}"));
        let addr = s.addr;
        async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            http_with(addr, method, path, &headers, body.as_bytes()).await
        }
    };
    // /health needs no key; everything else does.
    assert_eq!(call(None, "GET", "/health", String::new()).await?.0, 200);
    let (status, _, text) = call(None, "POST", "/v1/chat/completions", chat.clone()).await?;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("invalid_api_key"), "{text}");
    let (status, _, _) = call(Some("rt-wrong"), "GET", "/v1/models", String::new()).await?;
    assert_eq!(status, 401);
    let (status, _, text) = call(Some(&read), "POST", "/v1/chat/completions", chat.clone()).await?;
    assert_eq!(status, 200, "{text}");
    // A key limited to another knowledge base cannot read this one, nor see it.
    let (status, _, text) = call(Some(&other), "POST", "/v1/chat/completions", chat).await?;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("permission_error"), "{text}");
    let (status, _, _) = call(Some(&other), "GET", "/v1/kb/docs/status", String::new()).await?;
    assert_eq!(status, 403);
    let (_, _, models) = call(Some(&other), "GET", "/v1/models", String::new()).await?;
    assert!(!models.contains("rag/docs"), "{models}");
    let (_, _, models) = call(Some(&read), "GET", "/v1/models", String::new()).await?;
    assert!(models.contains("rag/docs"), "{models}");
    // Uploading needs a write key.
    let (status, v) = upload(s.addr, Some(&read), &[("a.md", b"alpha")]).await?;
    assert_eq!(status, 403, "{v}");
    let (status, v) = upload(s.addr, Some(&write), &[("a.md", b"alpha")]).await?;
    assert_eq!(status, 202, "{v}");
    Ok(())
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_the_queue() -> Result<()> {
    let s = start(8, false).await?;
    let (status, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    let (status, headers, text) = http(s.addr, "GET", "/metrics", "").await?;
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/plain"), "{headers}");
    for line in [
        "ragtune_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1".to_owned(),
        "ragtune_request_duration_seconds_count{route=\"/v1/chat/completions\"} 1".to_owned(),
        format!("ragtune_tokens_total{{model=\"fake\",kind=\"completion\"}} {completion}"),
        "ragtune_queue_depth 0".to_owned(),
        "ragtune_kb_files_queued{kb=\"docs\"} 0".to_owned(),
        "ragtune_kv_cache_bytes{model=\"fake\"} 23592960".to_owned(),
        "ragtune_contexts_created_total{model=\"fake\"} 2".to_owned(),
        "ragtune_prompt_tokens_reused_total{model=\"fake\"} 160".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    // The C heap (glibc counts it): something is in use; what trimming gave back is a counter.
    let value = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(
        value("ragtune_heap_bytes{kind=\"in_use\"}").unwrap() > 0,
        "{text}"
    );
    assert!(
        value("ragtune_heap_bytes{kind=\"free_held\"}").is_some(),
        "{text}"
    );
    assert!(
        value("ragtune_heap_trimmed_bytes_total").is_some(),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_that_runs_past_the_time_limit_gets_504() -> Result<()> {
    let s = start_with(Options {
        gated: true,
        limits: Limits {
            request_timeout: std::time::Duration::from_millis(300),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await?;
    let (status, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await?;
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "request_timeout");
    s.gate.open();
    Ok(())
}

/// `logprobs` in OpenAI's two shapes: chat's `content[]` (with `top_logprobs` and bytes, the
/// whole list with the last chunk when streamed) and the text completions' parallel arrays;
/// out-of-range values and RAG requests are refused.
#[tokio::test]
async fn logprobs_come_in_openai_shapes() -> Result<()> {
    let s = start(8, false).await?;
    let chat = json!({"model": "fake", "logprobs": true, "top_logprobs": 2,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = post(s.addr, "/v1/chat/completions", chat.clone()).await?;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    let words: Vec<&str> = content
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(words.concat(), v["choices"][0]["message"]["content"], "{v}");
    for t in content {
        assert_eq!(t["logprob"], 0.0, "{t}");
        assert_eq!(
            t["bytes"],
            json!(t["token"].as_str().unwrap().as_bytes()),
            "{t}"
        );
        let top = t["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2, "{t}");
        assert_eq!(top[0]["token"], t["token"]);
        assert_eq!(top[1]["token"], " alt1");
    }
    // Not asked: null, as OpenAI sends it.
    let (_, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await?;
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");

    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let (status, _, text) = http(
        s.addr,
        "POST",
        "/v1/chat/completions",
        &streamed.to_string(),
    )
    .await?;
    assert_eq!(status, 200, "{text}");
    let events = events(&text);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e))
        .collect::<Result<_, _>>()?;
    let with: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["logprobs"].is_null())
        .collect();
    assert_eq!(with.len(), 1, "{text}");
    assert_eq!(
        with[0]["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .len(),
        content.len()
    );
    assert!(!with[0]["choices"][0]["finish_reason"].is_null(), "{text}");

    let (status, v) = post(
        s.addr,
        "/v1/completions",
        json!({"model": "fake", "prompt": "hi", "logprobs": 1}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tokens.concat(), v["choices"][0]["text"], "{v}");
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), tokens.len());
    assert_eq!(lp["top_logprobs"][0][tokens[0]], 0.0, "{v}");
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert_eq!(offsets[1], tokens[0].chars().count() as u64, "{v}");

    for (path, bad, param) in [
        (
            "/v1/chat/completions",
            json!({"logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"top_logprobs": 2}),
            "top_logprobs",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "rag/docs", "logprobs": true}),
            "logprobs",
        ),
        ("/v1/completions", json!({"logprobs": 6}), "logprobs"),
    ] {
        let mut body = if path == "/v1/completions" {
            json!({"model": "fake", "prompt": "hi"})
        } else {
            json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
        };
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, v) = post(s.addr, path, body.clone()).await?;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    Ok(())
}

/// Streams " tick" to every request of its batch until released, or until it takes one of the
/// permits (at most 20,000 ticks), and records whether the release came while it was still
/// generating.
#[derive(Default)]
struct Ticker {
    started: std::sync::atomic::AtomicBool,
    /// Batches begun.
    batches: AtomicUsize,
    released: std::sync::atomic::AtomicBool,
    /// Each lets one batch end.
    permits: AtomicUsize,
    released_while_generating: std::sync::atomic::AtomicBool,
}

struct Ticking(Arc<Ticker>);

impl Generator for Ticking {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        let mut one = |_: usize, t: &str| sink(t);
        Ok(self
            .generate_batch_streaming(std::slice::from_ref(request), &mut one)?
            .remove(0))
    }
    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> std::ops::ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        let t = &self.0;
        t.batches.fetch_add(1, Ordering::SeqCst);
        let mut ticks = 0;
        while ticks < 20_000 {
            if t.released.load(Ordering::SeqCst) {
                t.released_while_generating.store(true, Ordering::SeqCst);
                break;
            }
            let permit = |p: usize| p.checked_sub(1);
            if t.permits
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, permit)
                .is_ok()
            {
                break;
            }
            for i in 0..requests.len() {
                let _ = sink(i, " tick");
            }
            ticks += 1;
            t.started.store(true, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(requests
            .iter()
            .map(|_| Generation {
                text: " tick".repeat(ticks),
                usage: ragtune_core::Usage {
                    prompt_tokens: 1,
                    completion_tokens: ticks as u32,
                },
                finish_reason: ragtune_core::FinishReason::Stop,
                prompt_time: std::time::Duration::ZERO,
                decode_time: std::time::Duration::ZERO,
                logprobs: Vec::new(),
            })
            .collect())
    }
    fn count_prompt_tokens(&self, _: &Prompt) -> Result<u32, GeneratorError> {
        Ok(1)
    }
    fn context_length(&self) -> u32 {
        4096
    }
}

/// A search, a document listing and embeddings sent while a generation runs are answered
/// between its decode steps, not after it: the generation only ends once the test, having
/// got all three answers, releases it.
#[tokio::test]
async fn reads_are_answered_while_a_generation_runs() -> Result<()> {
    let ticker = Arc::new(Ticker::default());
    let s = start_with(Options {
        generator: Some(Box::new(Ticking(ticker.clone()))),
        ..Options::default()
    })
    .await?;
    let chat = json!({"model": "fake", "messages": [{"role": "user", "content": "tick"}]});
    let generation = tokio::spawn(async move { post(s.addr, "/v1/chat/completions", chat).await });
    // Reads sent once the first ticks are out arrive mid-generation.
    while !ticker.started.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let (status, found) = post(
        s.addr,
        "/v1/kb/docs/search",
        json!({"query": "signing keys", "top_k": 1}),
    )
    .await?;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["data"][0]["content"]
            .as_str()
            .unwrap()
            .contains("ninety days"),
        "{found}"
    );
    let (status, listed) = get_json(s.addr, "/v1/kb/docs/documents").await?;
    assert_eq!(status, 200, "{listed}");
    let (status, embedded) = post(
        s.addr,
        "/v1/embeddings",
        json!({"model": "test-hash-bow-16", "input": "keys"}),
    )
    .await?;
    assert_eq!(status, 200, "{embedded}");
    ticker.released.store(true, Ordering::SeqCst);
    let (status, reply) = generation.await??;
    assert_eq!(status, 200, "{reply}");
    assert!(
        ticker.released_while_generating.load(Ordering::SeqCst),
        "the reads waited for the generation to end: {reply}"
    );
    Ok(())
}

/// Generations that arrive during a round are taken off the queue (to reach the reads behind
/// them) but still count against its limit: with a queue of 2, a third is refused with 429.
#[tokio::test]
async fn generations_deferred_during_a_round_still_fill_the_queue() -> Result<()> {
    let ticker = Arc::new(Ticker::default());
    let s = start_with(Options {
        queue: 2,
        generator: Some(Box::new(Ticking(ticker.clone()))),
        ..Options::default()
    })
    .await?;
    let chat = json!({"model": "fake", "messages": [{"role": "user", "content": "tick"}]});
    let send = |body: Value| {
        let addr = s.addr;
        tokio::spawn(async move { post(addr, "/v1/chat/completions", body).await })
    };
    let first = send(chat.clone());
    while !ticker.started.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let waiting = [send(chat.clone()), send(chat.clone())];
    // Both wait (taken off the channel by the round, or still in it).
    loop {
        let (_, _, metrics) = http(s.addr, "GET", "/metrics", "").await?;
        if metrics.contains("ragtune_queue_depth 2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let (status, _) = post(s.addr, "/v1/chat/completions", chat.clone()).await?;
    assert_eq!(
        status, 429,
        "a third generation was let in while two waited"
    );
    ticker.released.store(true, Ordering::SeqCst);
    for reply in [first].into_iter().chain(waiting) {
        let (status, v) = reply.await??;
        assert_eq!(status, 200, "{v}");
    }
    Ok(())
}

/// Uploads that arrive while a round generates are all synced before the next round starts,
/// not one a round: a server that always has questions waiting fell behind its uploads (soak).
#[tokio::test]
async fn uploads_queued_during_a_round_are_synced_before_the_next_round() -> Result<()> {
    let ticker = Arc::new(Ticker::default());
    let s = start_with(Options {
        generator: Some(Box::new(Ticking(ticker.clone()))),
        ..Options::default()
    })
    .await?;
    let done_before = wait_idle(s.addr).await?["files"]["done"].as_u64().unwrap();
    let chat = json!({"model": "fake", "messages": [{"role": "user", "content": "tick"}]});
    let ask = move || {
        let chat = chat.clone();
        tokio::spawn(async move { post(s.addr, "/v1/chat/completions", chat).await })
    };
    let first = ask();
    while ticker.batches.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    for (name, text) in [
        ("one.md", "# One\n\nThe first upload."),
        ("two.md", "# Two\n\nThe second upload."),
        ("three.md", "# Three\n\nThe third upload."),
    ] {
        let (status, v) = upload(s.addr, None, &[(name, text.as_bytes())]).await?;
        assert_eq!(status, 202, "{v}");
    }
    // The next question waits for the engine before the first round ends.
    let second = ask();
    loop {
        let (_, _, metrics) = http(s.addr, "GET", "/metrics", "").await?;
        if metrics.lines().any(|l| l == "ragtune_queue_depth 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    ticker.permits.fetch_add(1, Ordering::SeqCst);
    while ticker.batches.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // The second round is generating: every upload was synced before it began.
    let (_, v) = get_json(s.addr, "/v1/kb/docs/status").await?;
    assert_eq!(v["files"]["done"].as_u64().unwrap(), done_before + 3, "{v}");
    assert_eq!(v["files"]["queued"], 0, "{v}");
    ticker.permits.fetch_add(1, Ordering::SeqCst);
    for reply in [first, second] {
        let (status, v) = reply.await??;
        assert_eq!(status, 200, "{v}");
    }
    Ok(())
}
