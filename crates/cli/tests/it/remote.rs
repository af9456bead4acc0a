//! Models on another server (`--model openai:NAME@URL`), here a real `ragtune serve` over
//! HTTP: the same greedy text, token counts and grounded answers as the model loaded locally,
//! and a refused key named by its variable, never printed.

use crate::{Served, keys_and_coffee, ragtune, run, serve_smollm2};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_model_behind_ragtune_serve_answers_like_the_same_model_here() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, kb) = keys_and_coffee(dir.path());
    let keys = dir.path().join("keys.json");
    let (ok, secret, err) = run(ragtune()
        .args(["keys", "create", "--scope", "read", "--keys"])
        .arg(&keys));
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();

    // One sequence at a time, as a local run decodes.
    let server = Served::start(
        serve_smollm2()
            .args(["--threads", "2", "--parallel", "1", "--keys"])
            .arg(&keys),
    );
    let url = &server.url;
    let remote = format!("openai:smollm2-135m-instruct@{url}/v1");

    let question = "Name three colours of the rainbow.";
    let generate = |model: &str| {
        let (ok, out, err) = run(ragtune()
            .args(["generate", "--json", "--max-tokens", "24", "--threads", "2"])
            .args(["--model", model, "--api-key-env", "RAGTUNE_TEST_REMOTE_KEY"])
            .arg(question)
            .env("RAGTUNE_TEST_REMOTE_KEY", &secret));
        assert!(ok, "{model}: {err}");
        json(&out)
    };
    let (here, there) = (generate("smollm2-135m-instruct"), generate(&remote));
    assert_eq!(there["text"], here["text"]);
    assert!(!here["text"].as_str().unwrap().is_empty());
    assert_eq!(
        there["usage"], here["usage"],
        "usage from the server's stream"
    );
    assert_eq!(there["finish_reason"], here["finish_reason"]);

    // RAG: retrieval here, generation there; prompts are budgeted with the server's exact
    // token counts (its /tokenize), so the prompt and the answer are the local ones.
    let ask = |model: &str| {
        let (ok, out, err) = run(ragtune()
            .args(["ask", "--json", "--threads", "2", "--model", model])
            .args(["--api-key-env", "RAGTUNE_TEST_REMOTE_KEY", "--kb"])
            .arg(&kb)
            .arg("How often are the signing keys rotated?")
            .env("RAGTUNE_TEST_REMOTE_KEY", &secret));
        assert!(ok, "{model}: {err}");
        json(&out)
    };
    let (here, there) = (ask("smollm2-135m-instruct"), ask(&remote));
    assert_eq!(there["answer"], here["answer"]);
    assert_eq!(there["citations"], here["citations"]);
    assert_eq!(there["usage"], here["usage"]);

    // Embeddings there: a knowledge base embedded by the server's copy of the model ranks and
    // scores passages as one embedded here.
    let remote_kb = dir.path().join("kb-remote");
    let remote_embedder = format!("openai:all-minilm-l6-v2@{url}/v1");
    let (ok, _, err) = run(ragtune()
        .args(["ingest", "--embedder", &remote_embedder, "--kb"])
        .arg(&remote_kb)
        .arg(&docs)
        .env("RAGTUNE_REMOTE_API_KEY", &secret));
    assert!(ok, "{err}");
    let search = |kb: &std::path::Path, embedder: &str| {
        let (ok, out, err) = run(ragtune()
            .args([
                "search",
                "--json",
                "--mode",
                "dense",
                "--embedder",
                embedder,
                "--kb",
            ])
            .arg(kb)
            .arg("Where can I get an espresso?")
            .env("RAGTUNE_REMOTE_API_KEY", &secret));
        assert!(ok, "{embedder}: {err}");
        json(&out)
    };
    let (here, there) = (
        search(&kb, "all-minilm-l6-v2"),
        search(&remote_kb, &remote_embedder),
    );
    let hits = |v: &Value| -> Vec<(String, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["text"].as_str().unwrap().to_owned(),
                    h["score"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (here, there) = (hits(&here), hits(&there));
    assert_eq!(here.len(), 2);
    assert!(here[0].0.contains("espresso"), "{here:?}");
    assert_eq!(here.len(), there.len());
    for ((a, x), (b, y)) in here.iter().zip(&there) {
        assert_eq!(a, b);
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    // A knowledge base refuses an embedder other than its own.
    let (ok, _, err) = run(ragtune()
        .args(["search", "--embedder", &remote_embedder, "--kb"])
        .arg(&kb)
        .arg("espresso")
        .env("RAGTUNE_REMOTE_API_KEY", &secret));
    assert!(!ok);
    assert!(err.contains("openai:all-minilm-l6-v2"), "{err}");

    // A refused key: the server's 401, the variable to fix, never the key itself.
    let (ok, _, err) = run(ragtune()
        .args([
            "generate",
            "--model",
            &remote,
            "--api-key-env",
            "RAGTUNE_TEST_REMOTE_KEY",
        ])
        .arg(question)
        .env("RAGTUNE_TEST_REMOTE_KEY", "rt-not-a-key-8c1f"));
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("$RAGTUNE_TEST_REMOTE_KEY"),
        "{err}"
    );
    assert!(
        !err.contains("rt-not-a-key-8c1f"),
        "the key was printed: {err}"
    );
    // A name the server does not serve: the list of what it does.
    let (ok, _, err) = run(ragtune()
        .args(["generate", "--model", &format!("openai:gpt-4o@{url}/v1")])
        .args(["--api-key-env", "RAGTUNE_TEST_REMOTE_KEY"])
        .arg(question)
        .env("RAGTUNE_TEST_REMOTE_KEY", &secret));
    assert!(!ok);
    assert!(
        err.contains("does not serve a model named \"gpt-4o\""),
        "{err}"
    );
    assert!(err.contains("smollm2-135m-instruct"), "{err}");
}
