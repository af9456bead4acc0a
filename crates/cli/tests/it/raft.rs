//! `ragtune raft build` on two small files (real embedder) and a tiny SQuAD file.

use crate::{ragtune, run};
use std::path::{Path, PathBuf};

pub const SQUAD: &str = r#"{"version": "1.1", "data": [
 {"title": "Keys", "paragraphs": [{"context": "The signing keys are rotated every ninety days by the platform team. Old keys stay valid for one week.",
   "qas": [{"id": "k1", "question": "How often are the signing keys rotated?", "answers": [{"text": "every ninety days", "answer_start": 25}]},
           {"id": "k2", "question": "Who rotates the signing keys?", "answers": [{"text": "the platform team", "answer_start": 46}]}]}]},
 {"title": "Coffee", "paragraphs": [{"context": "The espresso machine is on the third floor, next to the library.",
   "qas": [{"id": "c1", "question": "Where is the espresso machine?", "answers": [{"text": "on the third floor", "answer_start": 24}]},
           {"id": "x1", "question": "Where is the tea?", "answers": [{"text": "in the basement", "answer_start": 0}]}]}]}
]}"#;

/// Writes `docs` into DIR/docs and ingests them into DIR/kb; returns the knowledge base.
fn ingest(dir: &Path, docs: &[(&str, &str)]) -> PathBuf {
    let folder = dir.join("docs");
    std::fs::create_dir(&folder).unwrap();
    for (name, text) in docs {
        std::fs::write(folder.join(name), text).unwrap();
    }
    let kb = dir.join("kb");
    let (ok, _, err) = run(ragtune().env("RAGTUNE_KB", &kb).arg("ingest").arg(&folder));
    assert!(ok, "{err}");
    kb
}

/// `ragtune raft build` from `kb` and the tiny SQuAD file (written beside `out`) into `out`.
fn raft_build(kb: &Path, out: &Path, args: &[&str]) -> (bool, String, String) {
    let squad = out.with_extension("squad.json");
    std::fs::write(&squad, SQUAD).unwrap();
    run(ragtune()
        .args(["raft", "build", "--kb"])
        .arg(kb)
        .arg("--questions")
        .arg(&squad)
        .arg("--out")
        .arg(out)
        .args(args))
}

#[test]
fn raft_build_writes_training_gorilla_and_manifest_files() {
    let dir = tempfile::tempdir().unwrap();
    let kb = ingest(
        dir.path(),
        &[
            (
                "keys.md",
                "# Keys\n\nThe signing keys are rotated every ninety days by the platform team. Old keys stay valid for one week.\n",
            ),
            (
                "coffee.md",
                "# Coffee\n\nThe espresso machine is on the third floor, next to the library.\n",
            ),
        ],
    );
    let out = dir.path().join("raft");
    let (ok, stdout, err) = raft_build(&kb, &out, &["--distractors", "1", "--seed", "3"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("3 examples from 4 questions"), "{stdout}");
    assert!(stdout.contains("skipped 1"), "{stdout}");
    for name in ["train.jsonl", "gorilla.jsonl"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(text.lines().count(), 3, "{name}");
        for line in text.lines() {
            let _: serde_json::Value = serde_json::from_str(line).unwrap();
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["examples"], 3);
    assert_eq!(manifest["seed"], 3);
    assert_eq!(manifest["options"]["answer_format"], "cot");

    // The ablation without chain of thought: the answer alone; a format we lack is named.
    let bare = dir.path().join("raft-answer");
    let (ok, _, err) = raft_build(
        &kb,
        &bare,
        &["--distractors", "1", "--answer-format", "answer"],
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(bare.join("train.jsonl")).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let target = v["messages"][2]["content"].as_str().unwrap();
        assert!(target.starts_with("<ANSWER>: "), "{target}");
    }
    let (ok, _, err) = raft_build(
        &kb,
        &dir.path().join("raft-x"),
        &["--answer-format", "quote"],
    );
    assert!(!ok);
    assert!(err.contains("`quote` is not an answer format"), "{err}");

    // A folder that is not a previous build is refused.
    let (ok, _, err) = raft_build(&kb, &dir.path().join("docs"), &[]);
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
}

/// A two-step SFT run on RAFT data makes a RAFT adapter: training.json records the lineage,
/// `ask --adapter RUN` answers with the RAFT prompt, a run whose manifest is gone still does
/// (with a note), and a run without the RAFT record gets the ordinary answerer.
#[test]
fn a_raft_adapter_is_recorded_and_ask_uses_the_raft_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let kb = ingest(
        dir.path(),
        &[
            (
                "keys.md",
                "# Keys\n\nThe signing keys are rotated every ninety days by the platform team.\n",
            ),
            (
                "coffee.md",
                "# Coffee\n\nThe espresso machine is on the third floor, next to the library.\n",
            ),
            (
                "parking.md",
                "# Parking\n\nVisitors park in lot C behind the north entrance.\n",
            ),
        ],
    );
    let docs = dir.path().join("docs");
    let data = dir.path().join("raft");
    let (ok, _, err) = raft_build(&kb, &data, &["--distractors", "1"]);
    assert!(ok, "{err}");

    // `raft train` wants a build folder.
    let (ok, _, err) = run(ragtune()
        .args(["raft", "train", "--data"])
        .arg(&docs)
        .arg("--out")
        .arg(dir.path().join("never")));
    assert!(!ok);
    assert!(
        err.contains("not the output of `ragtune raft build`"),
        "{err}"
    );

    let out = dir.path().join("run");
    let (ok, _, err) = run(ragtune()
        .args(["train", "sft", "--data"])
        .arg(data.join("train.jsonl"))
        .arg("--out")
        .arg(&out)
        .args(["--max-steps", "2", "--batch-size", "1", "--max-len", "256"])
        .args(["--save-every", "0", "--threads", "2"]));
    assert!(ok, "{err}");
    assert!(err.contains("RAFT data"), "{err}");
    assert!(
        err.contains("cot targets"),
        "the answer format is said: {err}"
    );
    let training: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("training.json")).unwrap()).unwrap();
    let raft = &training["raft"];
    assert_eq!(raft["prompt_format"], "ragtune-raft-prompt/1");
    assert_eq!(raft["answer_format"], "cot");
    assert_eq!(raft["passages"], 2);
    let documents = raft["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 2, "{raft}");
    assert!(
        documents
            .iter()
            .all(|d| d["hash"].as_str().unwrap().len() == 64)
    );

    // A RAFT adapter brings its base model; the ordinary answerer is told which.
    let ask = |adapter: &std::path::Path, model: &[&str]| {
        let (ok, stdout, err) = run(ragtune()
            .env("RAGTUNE_KB", &kb)
            .args(["ask", "How often are the signing keys rotated?", "--json"])
            .args(["-n", "32", "--threads", "2"])
            .args(model)
            .arg("--adapter")
            .arg(adapter));
        assert!(ok, "{err}");
        let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        (answer, err)
    };
    let (a, _) = ask(&out, &[]);
    assert_eq!(a["prompt_format"], "ragtune-raft-prompt/1", "{a}");
    assert_eq!(a["passages"].as_array().unwrap().len(), 2, "{a}");
    assert!(
        a["citations"].is_array() && a["reasoning"].is_string(),
        "{a}"
    );
    assert!(
        a["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("##begin_quote##"),
        "{a}"
    );

    // Options that do not apply to a RAFT adapter are refused before any model loads.
    let (ok, _, err) = run(ragtune()
        .env("RAGTUNE_KB", &kb)
        .args(["ask", "Where?", "--mode", "closed-book", "--adapter"])
        .arg(&out));
    assert!(!ok);
    assert!(err.contains("is a RAFT adapter"), "{err}");

    // `eval qa` with the RAFT adapter answers with the RAFT prompt, scored like any mode: every
    // quote is a citation checked against the passages.
    let squad = data.with_extension("squad.json");
    let (ok, stdout, err) = run(ragtune()
        .args(["eval", "qa"])
        .arg(&squad)
        .arg("--kb")
        .arg(&kb)
        .args([
            "--sample",
            "0",
            "-n",
            "32",
            "--threads",
            "2",
            "--json",
            "--adapter",
        ])
        .arg(&out));
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let r = &report["reports"][0];
    assert_eq!(r["approach"], "raft", "{report}");
    assert_eq!(r["summary"]["questions"], 4, "{report}");
    assert_eq!(report["model"], training["base"], "{report}");
    let (ok, _, err) = run(ragtune()
        .args(["eval", "qa"])
        .arg(&squad)
        .args(["--mode", "closed-book", "--adapter"])
        .arg(&out));
    assert!(!ok);
    assert!(err.contains("is a RAFT adapter"), "{err}");

    // A run whose manifest is gone is still a RAFT run (with a note). Text output: the answer,
    // with the reasoning when asked; the adapter file works as the folder does.
    let manifest = std::fs::read(data.join("manifest.json")).unwrap();
    std::fs::remove_file(data.join("manifest.json")).unwrap();
    let (ok, stdout, err) = run(ragtune()
        .env("RAGTUNE_KB", &kb)
        .args(["ask", "Where is the espresso machine?", "--show-reasoning"])
        .args(["-n", "32", "--threads", "2", "--adapter"])
        .arg(out.join("adapter.gguf")));
    assert!(ok, "{err}");
    assert!(!stdout.trim().is_empty(), "{stdout}");
    assert!(
        err.contains("RAFT prompt ragtune-raft-prompt/1 (cot targets) | 2 passages"),
        "{err}"
    );
    assert!(err.contains("is gone"), "{err}");
    assert!(!err.contains("trained on 2 passages"), "{err}");

    // Without the RAFT record the adapter is an ordinary one.
    let mut plain = training.clone();
    plain.as_object_mut().unwrap().remove("raft");
    std::fs::write(out.join("training.json"), plain.to_string()).unwrap();
    let (a, _) = ask(&out, &["--model", "smollm2-135m-instruct"]);
    assert!(a.get("prompt_format").is_none(), "{a}");
    assert_eq!(a["mode"], "rag", "{a}");

    // `adapter list` finds the run and checks its lineage against the knowledge base it was
    // built from: nothing changed; then one document changes and another is deleted, and the
    // adapter is stale with every example from those documents affected.
    std::fs::write(out.join("training.json"), training.to_string()).unwrap();
    std::fs::write(data.join("manifest.json"), manifest).unwrap();
    let (ok, stdout, err) = run(ragtune().args(["adapters", "list"]).arg(dir.path()));
    assert!(ok, "{err}");
    assert!(stdout.contains("  raft  "), "{stdout}");
    assert!(
        stdout.contains("2 documents of") && stdout.contains("0 changed, 0 deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("1 adapter(s), 0 stale"), "{stdout}");
    std::fs::write(
        docs.join("keys.md"),
        "# Keys\n\nThe signing keys are rotated every thirty days by the security team.\n",
    )
    .unwrap();
    std::fs::remove_file(docs.join("coffee.md")).unwrap();
    let (ok, _, err) = run(ragtune().env("RAGTUNE_KB", &kb).arg("ingest").arg(&docs));
    assert!(ok, "{err}");
    let (ok, stdout, err) = run(ragtune()
        .args(["adapter", "list", "--json", "--kb"])
        .arg(&kb)
        .arg(&out));
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let l = &listed[0];
    assert_eq!(l["kind"], "raft", "{l}");
    assert_eq!(l["stale"], true, "{l}");
    assert_eq!(l["staleness"]["changed"], 1, "{l}");
    assert_eq!(l["staleness"]["deleted"], 1, "{l}");
    assert_eq!(l["staleness"]["affected_examples"], 3, "{l}");
    let (ok, stdout, _) = run(ragtune().args(["adapter", "list"]).arg(&out));
    assert!(
        ok && stdout.contains("STALE") && stdout.contains("1 stale"),
        "{stdout}"
    );
    let (ok, _, err) = run(ragtune()
        .args(["adapter", "list"])
        .arg(dir.path().join("nowhere")));
    assert!(!ok);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_teacher_writes_questions_that_raft_build_reads() {
    let dir = tempfile::tempdir().unwrap();
    let passage = "The signing keys are rotated every ninety days by the platform team. Old \
                   keys stay valid for one week after they are replaced, so that clients can \
                   refresh their caches. The rotation runs at midnight on the first Monday.";
    let kb = ingest(dir.path(), &[("keys.md", passage)]);
    let out = dir.path().join("questions.jsonl");
    let teach = || {
        run(ragtune()
            .args([
                "raft",
                "questions",
                "--model",
                "smollm2-135m-instruct",
                "--kb",
            ])
            .arg(&kb)
            .arg("--out")
            .arg(&out)
            .args(["--chunks", "1", "--per-chunk", "2", "--threads", "2"]))
    };
    let (ok, stdout, err) = teach();
    assert!(ok, "{err}");
    assert!(stdout.contains("questions kept of"), "{stdout}");
    // Whatever the teacher wrote, what was kept passed the checks: the quote is the passage's
    // own text and holds the answer.
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (quote, answer) = (
            v["context"].as_str().unwrap(),
            v["answer"].as_str().unwrap(),
        );
        assert!(passage.contains(quote), "{quote:?} is not in the passage");
        assert!(quote.contains(answer), "{answer:?} is not in {quote:?}");
    }
    // The file is never appended to or replaced.
    let (ok, _, err) = teach();
    assert!(!ok && err.contains("exists"), "{err}");
    // What the teacher writes is what `raft build` reads: the quote as the context finds the
    // oracle chunk, and the target quotes it.
    let question = ragtune_raft::teacher::TeacherQuestion {
        id: "teacher-1-0".into(),
        question: "How long do old keys stay valid?".into(),
        answer: "one week".into(),
        context: "Old keys stay valid for one week after they are replaced, so that clients can \
                  refresh their caches."
            .into(),
        source: "keys.md".into(),
        chunk_id: 1,
    };
    assert!(passage.contains(&question.context));
    let handed = dir.path().join("handed.jsonl");
    std::fs::write(&handed, ragtune_raft::teacher::to_jsonl(&[question])).unwrap();
    let raft = dir.path().join("raft");
    let (ok, stdout, err) = run(ragtune()
        .args(["raft", "build", "--kb"])
        .arg(&kb)
        .arg("--questions")
        .arg(&handed)
        .arg("--out")
        .arg(&raft)
        .args(["--p", "1"]));
    assert!(ok, "{err}");
    assert!(stdout.contains("1 examples from 1 questions"), "{stdout}");
    let train = std::fs::read_to_string(raft.join("train.jsonl")).unwrap();
    assert!(
        train.contains("##begin_quote## Old keys stay valid for one week"),
        "{train}"
    );
}
