//! The server over fakes, through real HTTP on a loopback port: OpenAI's shapes for chat,
//! streaming, completions, embeddings and models; adapters by name; RAG with checked
//! citations; errors with their status codes; a full queue.

use anyhow::Result;
use ragtune_answer::testing::FakeGenerator;
use ragtune_core::{
    Embedder, Generation, GenerationRequest, Generator, GeneratorError, Prompt, TokenSink,
};
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, NoProgress, SyncOptions};
use ragtune_serve::{Backend, Engine, Limits, ServedKb, ServedModel, check_address, router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        self.0.count_prompt_tokens(prompt)
    }
    fn context_length(&self) -> u32 {
        self.0.context_length()
    }
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
    _dir: tempfile::TempDir,
}

const KEYS: &str =
    "# Keys\n\nThe signing keys are rotated every ninety days by the platform team.\n";

/// A server with the model `fake` (adapter `fake-lora`) and the knowledge base `docs`.
async fn start(queue: usize, gated: bool) -> Result<Server> {
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
    let generator = fake.clone();
    let kb_dir = dir.path().join("kb");
    let engine = Engine::start(queue, move || {
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
        Ok(Backend {
            models: vec![ServedModel {
                name: "fake".into(),
                generator: Box::new(Shared(generator)),
                adapters: vec!["fake-lora".into()],
            }],
            kbs: vec![ServedKb {
                name: "docs".into(),
                kb,
            }],
            embedder_id: embedder.name().to_owned(),
            embedder: Box::new(embedder),
            answer: Default::default(),
        })
    })
    .map_err(anyhow::Error::msg)?;
    let app = router(
        engine,
        Limits {
            max_body_bytes: 4096,
            ..Limits::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Server {
        addr,
        fake,
        gate,
        _dir: dir,
    })
}

/// One HTTP/1.1 request; the status, the headers (lowercase) and the body (de-chunked).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
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
    let (status, _, body) = http(s.addr, "GET", "/health", "").await?;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
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

#[test]
fn only_loopback_addresses_are_served_without_keys() {
    assert!(check_address(&"127.0.0.1:8080".parse().unwrap()).is_ok());
    assert!(check_address(&"[::1]:8080".parse().unwrap()).is_ok());
    let err = check_address(&"0.0.0.0:8080".parse().unwrap()).unwrap_err();
    assert!(err.contains("no API keys"), "{err}");
}
