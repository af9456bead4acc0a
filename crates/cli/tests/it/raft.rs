//! `ragtune raft build` on two small files (real embedder) and a tiny SQuAD file.

use crate::{ragtune, run};

const SQUAD: &str = r#"{"version": "1.1", "data": [
 {"title": "Keys", "paragraphs": [{"context": "The signing keys are rotated every ninety days by the platform team. Old keys stay valid for one week.",
   "qas": [{"id": "k1", "question": "How often are the signing keys rotated?", "answers": [{"text": "every ninety days", "answer_start": 25}]},
           {"id": "k2", "question": "Who rotates the signing keys?", "answers": [{"text": "the platform team", "answer_start": 46}]}]}]},
 {"title": "Coffee", "paragraphs": [{"context": "The espresso machine is on the third floor, next to the library.",
   "qas": [{"id": "c1", "question": "Where is the espresso machine?", "answers": [{"text": "on the third floor", "answer_start": 24}]},
           {"id": "x1", "question": "Where is the tea?", "answers": [{"text": "in the basement", "answer_start": 0}]}]}]}
]}"#;

#[test]
fn raft_build_writes_training_gorilla_and_manifest_files() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(
        docs.join("keys.md"),
        "# Keys\n\nThe signing keys are rotated every ninety days by the platform team. Old keys stay valid for one week.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("coffee.md"),
        "# Coffee\n\nThe espresso machine is on the third floor, next to the library.\n",
    )
    .unwrap();
    let squad = dir.path().join("squad.json");
    std::fs::write(&squad, SQUAD).unwrap();
    let kb = dir.path().join("kb");
    let (ok, _, err) = run(ragtune().env("RAGTUNE_KB", &kb).arg("ingest").arg(&docs));
    assert!(ok, "{err}");

    let out = dir.path().join("raft");
    let (ok, stdout, err) = run(ragtune()
        .args(["raft", "build", "--kb"])
        .arg(&kb)
        .arg("--questions")
        .arg(&squad)
        .arg("--out")
        .arg(&out)
        .args(["--distractors", "1", "--seed", "3"]));
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

    let (ok, _, err) = run(ragtune()
        .args(["raft", "build", "--kb"])
        .arg(&kb)
        .arg("--questions")
        .arg(&squad)
        .arg("--out")
        .arg(&docs));
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
}
