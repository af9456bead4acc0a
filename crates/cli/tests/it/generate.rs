//! `ragtune generate` and `ragtune chat`.

use crate::{ragtune, run, smollm2_path};
use std::io::{Read, Write};
use std::process::Stdio;

fn generate(args: &[&str]) -> (bool, String, String) {
    let model = smollm2_path();
    run(ragtune()
        .args(["generate", "--threads", "1", "--model"])
        .arg(&model)
        .args(args))
}

#[test]
fn json_output_has_text_usage_and_timings() {
    let (ok, out, err) = generate(&["--json", "-n", "8", "--raw", "The sky is"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["finish_reason"], "length");
    assert!(v["timings"]["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn stats_go_to_stderr() {
    let (ok, out, err) = generate(&["--stats", "-n", "4", "--raw", "Hello"]);
    assert!(ok, "{err}");
    assert!(!out.trim().is_empty());
    assert!(err.contains("prompt: ") && err.contains("tok/s"), "{err}");
}

#[test]
fn prompts_file_is_generated_as_a_batch_of_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, "Name a colour.\n\nName a fruit.\nName an animal.\n").unwrap();
    let (ok, out, err) = generate(&["-n", "6", "--prompts", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
}

#[test]
fn a_prompt_over_the_context_fails_with_advice() {
    let long = "word ".repeat(400);
    let (ok, _, err) = generate(&["--ctx", "128", "--raw", &long]);
    assert!(!ok);
    assert!(
        err.contains("context holds 128") && err.contains("shorten the prompt"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn chat_reads_turns_from_standard_input() {
    let mut child = ragtune()
        .args(["chat", "--threads", "1", "-n", "12", "--model"])
        .arg(smollm2_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello!\nWhat did I just say?\n")
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    // One reply per turn, each ended by a newline.
    assert_eq!(out.matches('\n').count(), 2, "{out:?}");
}
