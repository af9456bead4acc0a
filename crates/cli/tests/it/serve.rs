//! `ragtune serve` on the real SmolLM2 with a trained adapter and a knowledge base, driven by
//! the official openai Python SDK (`crates/serve/tests/openai/check.py`; the SDK is pinned by
//! its requirements.txt and installed by scripts/deps).

use crate::{Served, keys_and_coffee, ragtune, run, serve_smollm2, smollm2_path};
use std::path::PathBuf;
use std::process::Command;

fn openai_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../serve/tests/openai")
}

#[test]
fn the_openai_sdk_chats_streams_embeds_and_gets_cited_rag_answers() {
    let site = openai_dir().join("site");
    assert!(
        site.join("openai").is_dir(),
        "the openai SDK is not installed in {}; run scripts/deps",
        site.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, kb) = keys_and_coffee(dir.path());
    // An adapter: one step of SFT is enough to have one to pick by name.
    let data = dir.path().join("sft.jsonl");
    std::fs::write(
        &data,
        serde_json::json!({"prompt": "What is the vault code word?", "completion": "Blue pelican."})
            .to_string(),
    )
    .unwrap();
    let adapter = dir.path().join("run");
    let (ok, _, err) = run(ragtune()
        .args(["train", "sft", "--base"])
        .arg(smollm2_path())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&adapter)
        .args([
            "--max-steps",
            "1",
            "--batch-size",
            "1",
            "--save-every",
            "0",
            "--threads",
            "2",
        ]));
    assert!(ok, "{err}");

    // Without keys, a non-loopback address is refused before anything loads.
    let keys = dir.path().join("keys.json");
    let (ok, _, err) = run(ragtune()
        .args(["serve", "--addr", "0.0.0.0:0", "--keys"])
        .arg(&keys));
    assert!(!ok);
    assert!(err.contains("no API keys"), "{err}");
    let (ok, secret, err) = run(ragtune()
        .args([
            "keys", "create", "--scope", "write", "--name", "check", "--keys",
        ])
        .arg(&keys));
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("rt-"), "{secret}");
    let (ok, listed, err) = run(ragtune().args(["keys", "list", "--keys"]).arg(&keys));
    assert!(ok, "{err}");
    assert!(listed.contains("\twrite\t*\tcheck"), "{listed}");
    assert!(!listed.contains(&secret), "a listing never shows secrets");

    let server = Served::start(
        serve_smollm2()
            .arg("--adapter")
            .arg(format!("tuned={}", adapter.display()))
            .arg("--kb")
            .arg(format!("docs={}", kb.display()))
            .arg("--keys")
            .arg(&keys)
            .args(["--threads", "2", "--top-k", "1"]),
    );
    let url = server.url.clone();

    let out = Command::new("python3")
        .arg(openai_dir().join("check.py"))
        .args([
            &url,
            "smollm2-135m-instruct",
            "tuned",
            "all-minilm-l6-v2",
            &secret,
        ])
        .env("PYTHONPATH", &site)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check.py failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["errors"], "ok", "{seen}");
    assert_eq!(seen["embedding_dimensions"], 384, "{seen}");
    assert!(!seen["chat"].as_str().unwrap().is_empty(), "{seen}");
    assert!(!seen["logprobs"].as_array().unwrap().is_empty(), "{seen}");
    // The uploaded file landed in the knowledge base's own folder and was ingested.
    assert!(kb.join("uploads/vault.md").is_file());
    assert_eq!(seen["uploaded"]["status"]["files"]["done"], 1, "{seen}");
}
