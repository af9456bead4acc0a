//! The remote generator and embedder against a scripted HTTP server on loopback: retries on
//! transient failures only, timeouts, broken streams, order and concurrency of batches.

mod server;

use ragtune_core::{
    ChatMessage, Embedder, FinishReason, GenerationRequest, Generator, GeneratorError, Prompt,
};
use ragtune_remote::{ApiKey, Endpoint, Error, Options, RemoteEmbedder, RemoteGenerator};
use serde_json::json;
use server::{Reply, Server};
use std::ops::ControlFlow;
use std::time::Duration;

fn options() -> Options {
    Options {
        api_key: Some(ApiKey::new("sk-test-secret")),
        api_key_var: "TEST_KEY".into(),
        backoff: Duration::from_millis(1),
        ..Options::default()
    }
}

fn models(ids: &[&str]) -> Reply {
    let data: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "max_model_len": 2048}))
        .collect();
    Reply::json(200, json!({"object": "list", "data": data}))
}

fn connect(server: &Server, options: Options) -> RemoteGenerator {
    let endpoint = Endpoint::parse(&format!("openai:tiny@{}/v1", server.url())).unwrap();
    RemoteGenerator::connect(endpoint, options).unwrap()
}

fn ask(text: &str) -> GenerationRequest {
    GenerationRequest::new(Prompt::Chat(vec![ChatMessage::user(text)])).with_max_tokens(8)
}

fn quiet(
    g: &RemoteGenerator,
    r: &GenerationRequest,
) -> Result<ragtune_core::Generation, GeneratorError> {
    g.generate(r, &mut |_| ControlFlow::Continue(()))
}

#[test]
fn transient_failures_are_retried_then_the_answer_streams() {
    let server = Server::start(vec![
        models(&["tiny"]),
        Reply::status(503, &[("Retry-After", "0")], "busy"),
        Reply::json(429, json!({"error": {"message": "slow down"}})),
        Reply::stream(&["Hel", "lo"], true),
    ]);
    let g = connect(&server, options());
    assert_eq!(g.context_length(), 2048, "max_model_len from /models");
    let mut streamed = String::new();
    let out = g
        .generate(&ask("hi"), &mut |t| {
            streamed.push_str(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.text, "Hello");
    assert_eq!(streamed, "Hello");
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(
        (out.usage.prompt_tokens, out.usage.completion_tokens),
        (5, 2)
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    assert!(seen[1..].iter().all(|r| r.path == "/v1/chat/completions"));
    assert!(
        seen.iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-test-secret"))
    );
    let body = &seen[3].json();
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["messages"][0]["content"], "hi");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["max_tokens"], 8);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn client_errors_are_not_retried_and_name_what_to_do() {
    let server = Server::start(vec![
        models(&["tiny"]),
        Reply::json(
            400,
            json!({"error": {"message": "stop takes up to 4 strings"}}),
        ),
        Reply::status(401, &[], "no"),
    ]);
    let g = connect(&server, options());
    let e = quiet(&g, &ask("hi")).unwrap_err();
    assert!(matches!(e, GeneratorError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("stop takes up to 4 strings"), "{e}");
    assert!(!e.is_retryable());
    let e = quiet(&g, &ask("hi")).unwrap_err().to_string();
    assert!(e.contains("HTTP 401") && e.contains("$TEST_KEY"), "{e}");
    assert!(!e.contains("sk-test-secret"), "the key leaked into {e}");
    assert_eq!(server.requests().len(), 3, "no retries");
}

#[test]
fn retries_give_up_after_the_limit() {
    let server = Server::start(
        std::iter::once(models(&["tiny"]))
            .chain((0..5).map(|_| Reply::status(502, &[], "bad gateway")))
            .collect(),
    );
    let g = connect(
        &server,
        Options {
            retries: 2,
            ..options()
        },
    );
    let e = quiet(&g, &ask("hi")).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("gave up after 3 attempts"), "{e}");
    assert_eq!(server.requests().len(), 1 + 3);
}

#[test]
fn a_silent_server_times_out() {
    let server = Server::start(vec![models(&["tiny"]), Reply::Hang]);
    let g = connect(
        &server,
        Options {
            retries: 0,
            response_timeout: Duration::from_millis(300),
            ..options()
        },
    );
    let e = quiet(&g, &ask("hi")).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("timeout"), "{e}");
}

#[test]
fn a_stream_cut_after_text_is_not_retried() {
    let server = Server::start(vec![
        models(&["tiny"]),
        Reply::stream(&["Hel"], false),
        Reply::stream(&["Hello"], true),
    ]);
    let g = connect(&server, options());
    let e = quiet(&g, &ask("hi")).unwrap_err().to_string();
    assert!(e.contains("ended before the answer did"), "{e}");
    assert_eq!(
        server.requests().len(),
        2,
        "text already went out: no retry"
    );
}

#[test]
fn a_model_the_server_does_not_list_is_refused_with_the_list() {
    let server = Server::start(vec![models(&["a", "b"])]);
    let endpoint = Endpoint::parse(&format!("openai:tiny@{}/v1", server.url())).unwrap();
    let e = RemoteGenerator::connect(endpoint, options()).err().unwrap();
    assert!(matches!(e, Error::UnknownModel { .. }));
    assert!(e.to_string().contains("it serves: a, b"), "{e}");
    let nobody = Endpoint::parse("openai:tiny@http://127.0.0.1:9/v1").unwrap();
    let e = RemoteGenerator::connect(
        nobody,
        Options {
            retries: 0,
            ..options()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("cannot reach"), "{e}");
}

#[test]
fn batches_keep_their_order_and_the_concurrency_limit() {
    let server = Server::start(
        std::iter::once(models(&["tiny"]))
            .chain((0..6).map(|_| Reply::Echo(Duration::from_millis(80))))
            .collect(),
    );
    let g = connect(
        &server,
        Options {
            concurrency: 2,
            ..options()
        },
    );
    let requests: Vec<_> = (0..6).map(|i| ask(&format!("q{i}"))).collect();
    let mut streamed = vec![String::new(); 6];
    let out = g
        .generate_batch_streaming(&requests, &mut |i, t| {
            streamed[i].push_str(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    let texts: Vec<_> = out.iter().map(|g| g.text.as_str()).collect();
    assert_eq!(texts, ["q0", "q1", "q2", "q3", "q4", "q5"]);
    assert_eq!(streamed, texts);
    assert_eq!(server.most_in_flight(), 2);
}

#[test]
fn embeddings_come_back_in_input_order() {
    let server = Server::start(vec![
        Reply::json(
            200,
            json!({"data": [{"index": 0, "embedding": [1.0, 0.0]}]}),
        ),
        Reply::json(
            200,
            json!({"data": [
                {"index": 1, "embedding": [0.0, 1.0]},
                {"index": 0, "embedding": [0.5, 0.5]}
            ]}),
        ),
        Reply::json(
            200,
            json!({"data": [{"index": 0, "embedding": [1.0, 2.0, 3.0]}]}),
        ),
    ]);
    let endpoint = Endpoint::parse(&format!("openai:mini@{}/v1", server.url())).unwrap();
    let e = RemoteEmbedder::connect(endpoint, options()).unwrap();
    assert_eq!((e.name(), e.dimension()), ("openai:mini", 2));
    assert_eq!(e.embed(&["a", "b"]).unwrap(), [[0.5, 0.5], [0.0, 1.0]]);
    let wrong = e.embed(&["c"]).unwrap_err().to_string();
    assert!(wrong.contains("3 numbers, not 2"), "{wrong}");
    let seen = server.requests();
    assert_eq!(seen[1].path, "/v1/embeddings");
    assert_eq!(seen[1].json()["input"], json!(["a", "b"]));
}

#[test]
fn a_server_without_usage_gets_the_prompt_counted_by_its_tokenize_route() {
    // One slot: counting the prompt must not wait for the slot the generation held.
    let server = Server::start(vec![
        models(&["tiny"]),
        Reply::Events(vec![
            json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}).to_string(),
            json!({"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "length"}]})
                .to_string(),
        ]),
        Reply::json(200, json!({"count": 42, "max_model_len": 2048})),
    ]);
    let g = connect(
        &server,
        Options {
            concurrency: 1,
            ..options()
        },
    );
    let out = quiet(&g, &ask("hi")).unwrap();
    assert_eq!(out.text, "Hi there");
    assert_eq!(out.finish_reason, FinishReason::Length);
    assert_eq!(
        (out.usage.prompt_tokens, out.usage.completion_tokens),
        (42, 2)
    );
    assert_eq!(g.counts_exactly(), Some(true));
    let seen = server.requests();
    assert_eq!(seen[2].path, "/tokenize");
    assert_eq!(seen[2].json()["add_generation_prompt"], true);
}
