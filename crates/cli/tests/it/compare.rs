//! `ragtune compare` driven as a user would: bad input refused before any model loads, and a
//! small real comparison writing its report.

use crate::raft::SQUAD;
use crate::{ragtune, run};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_variants_and_files_are_refused_before_any_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let questions = write(dir.path(), "qa.json", SQUAD);
    let out = dir.path().join("report");
    let compare = |extra: &[&str]| {
        run(ragtune()
            .arg("compare")
            .arg("--questions")
            .arg(&questions)
            .arg("--out")
            .arg(&out)
            .args(extra))
    };
    let (ok, _, err) = compare(&[]);
    assert!(!ok);
    assert!(err.contains("no variants to compare"), "{err}");
    let (ok, _, err) = compare(&["--variant", "raft"]);
    assert!(!ok);
    assert!(err.contains("needs an adapter"), "{err}");
    let prices = write(dir.path(), "prices.toml", "[models.x]\nprompt = \"free\"\n");
    let (ok, _, err) = compare(&["--variant", "rag", "--prices", prices.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("prices.toml"), "{err}");
    let config = write(dir.path(), "compare.toml", "[[variant]]\nspek = \"rag\"\n");
    let (ok, _, err) = compare(&["--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("compare.toml") && err.contains("spek"),
        "{err}"
    );
    let (ok, _, err) = compare(&["--variant", "rag", "--format-regex", "("]);
    assert!(!ok);
    assert!(err.contains("--format-regex"), "{err}");
    let schema = write(dir.path(), "answer.schema.json", "{\"type\": 42}");
    let (ok, _, err) = compare(&[
        "--variant",
        "rag",
        "--format-schema",
        schema.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("answer.schema.json") && err.contains("JSON Schema"),
        "{err}"
    );
    let (ok, _, err) = compare(&["--variant", "rag,top_k=0"]);
    assert!(!ok);
    assert!(err.contains("top_k"), "{err}");
    assert!(!out.exists(), "nothing written for a refused run");
}

#[test]
fn a_small_comparison_writes_its_report_and_names_the_failed_variant() {
    let dir = tempfile::tempdir().unwrap();
    let questions = write(dir.path(), "qa.json", SQUAD);
    let config = write(
        dir.path(),
        "compare.toml",
        "sample = 0\n[[variant]]\nspec = \"closed-book@smollm2-135m-instruct\"\nname = \"closed\"\n",
    );
    let out = dir.path().join("report");
    let (ok, stdout, err) = run(ragtune()
        .arg("compare")
        .arg("--questions")
        .arg(&questions)
        .arg("--config")
        .arg(&config)
        .args(["--variant", "rag@smollm2-135m-instruct"])
        .args(["--variant", "sft:no-such-run"])
        .args(["-n", "16", "--threads", "2", "--out"])
        .arg(&out));
    assert!(ok, "{err}");
    assert!(
        stdout.contains("closed") && stdout.contains("rag@smollm2-135m-instruct"),
        "{stdout}"
    );
    assert!(err.contains("does not exist"), "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["questions"], 4, "{report}");
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    let failed: Vec<&str> = variants
        .iter()
        .filter(|v| !v["failed"].is_null())
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with("sft:no-such-run@"), "{failed:?}");
    assert!(report["recommendation"].is_object(), "{report}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("closed"));
    let runs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runs.json")).unwrap()).unwrap();
    assert_eq!(runs["runs"][1]["outcomes"].as_array().unwrap().len(), 4);

    // The same report again from runs.json, with another profile, and no model: the numbers
    // are those of the run.
    let profile = write(
        dir.path(),
        "profile.toml",
        "latency_budget_ms = 1
",
    );
    let again = dir.path().join("again");
    let (ok, stdout, err) = run(ragtune()
        .arg("compare")
        .arg("--from-runs")
        .arg(out.join("runs.json"))
        .arg("--profile")
        .arg(&profile)
        .arg("--out")
        .arg(&again));
    assert!(ok, "{err}");
    assert!(stdout.contains("1 ms p95 latency"), "{stdout}");
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("report.json")).unwrap()).unwrap();
    assert_eq!(rebuilt["variants"], report["variants"]);
    let (ok, _, err) = run(ragtune()
        .arg("compare")
        .arg("--from-runs")
        .arg(&questions)
        .arg("--out")
        .arg(dir.path().join("never")));
    assert!(!ok);
    assert!(
        err.contains("qa.json") && err.contains("runs.json"),
        "{err}"
    );
}

#[test]
fn train_builds_a_fine_tuned_variant_once_and_a_rerun_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let questions = write(dir.path(), "qa.json", SQUAD);
    let out = dir.path().join("report");
    let compare = || {
        run(ragtune()
            .arg("compare")
            .arg("--questions")
            .arg(&questions)
            .arg("--train")
            .arg(&questions)
            .args(["--train-sample", "2", "--train-steps", "1", "--sample", "0"])
            .args(["--variant", "sft", "-n", "8", "--threads", "2", "--out"])
            .arg(&out))
    };
    let (ok, _, err) = compare();
    assert!(ok, "{err}");
    assert!(err.contains("--train: training sft (1 steps)"), "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let v = &report["variants"][0];
    assert!(v["failed"].is_null(), "{report}");
    assert_eq!(v["model"], "smollm2-135m-instruct", "{report}");
    assert!(
        v["training"]["cpu_seconds"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let (ok, _, err) = compare();
    assert!(ok, "{err}");
    assert!(err.contains("--train: sft cached in"), "{err}");
}
