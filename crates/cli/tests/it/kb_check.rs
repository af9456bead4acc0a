//! `ragtune kb check [--repair]`: exit 0 when clean, 1 while problems remain.

use crate::{ragtune, run};

#[test]
fn kb_check_reports_a_missing_bm25_index_and_repair_fixes_it() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("keys.md"),
        "# Key rotation\n\nRotate the signing keys every ninety days.\n",
    )
    .unwrap();
    let kb_arg = ["--kb", kb.path().to_str().unwrap()];
    let (ok, _, err) = run(ragtune().arg("ingest").args(kb_arg).arg(docs.path()));
    assert!(ok, "{err}");

    let (ok, out, err) = run(ragtune().args(["kb", "check"]).args(kb_arg));
    assert!(ok, "{out}{err}");
    assert!(out.contains("clean"), "{out}");

    std::fs::remove_dir_all(kb.path().join("bm25")).unwrap();
    let output = ragtune()
        .args(["kb", "check", "--json"])
        .args(kb_arg)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["bm25_docs"], serde_json::Value::Null, "{report}");
    assert!(
        report["problems"][0]["what"]
            .as_str()
            .unwrap()
            .contains("BM25 index (bm25/) is missing"),
        "{report}"
    );
    assert!(!kb.path().join("bm25").exists(), "check wrote bm25/");

    let (ok, out, err) = run(ragtune().args(["kb", "check", "--repair"]).args(kb_arg));
    assert!(ok, "{out}{err}");
    assert!(out.contains("repaired: rebuilt BM25 index"), "{out}");
    let (ok, out, _) = run(ragtune().args(["kb", "check"]).args(kb_arg));
    assert!(ok && out.contains("clean"), "{out}");

    let (ok, _, err) = run(ragtune()
        .args(["kb", "check", "--kb"])
        .arg(kb.path().join("none")));
    assert!(!ok && err.contains("no knowledge base"), "{err}");
}
