//! `ragtune ingest`, `search` and `ingest --sql` on a small folder, as a user runs them.

use crate::{ragtune, run};
use std::path::Path;

fn in_kb(kb: &Path) -> std::process::Command {
    let mut cmd = ragtune();
    cmd.env("RAGTUNE_KB", kb);
    cmd
}

#[test]
fn ingest_follows_added_changed_and_deleted_files() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(docs.path().join(name), text).unwrap();
    write(
        "keys.md",
        "# Key rotation\n\nRotate the signing keys every ninety days.\n",
    );
    write(
        "coffee.md",
        "# Coffee\n\nThe espresso machine is on the third floor.\n",
    );
    let ingest = || run(in_kb(kb.path()).arg("ingest").arg(docs.path()));

    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(
        out.contains("added 2, updated 0, deleted 0, unchanged 0, failed 0"),
        "{out}"
    );

    let (ok, out, err) =
        run(in_kb(kb.path()).args(["search", "how often are keys rotated?", "-k", "1", "--json"]));
    assert!(ok, "{err}");
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        hits[0]["source"].as_str().unwrap().ends_with("keys.md"),
        "{out}"
    );

    write(
        "keys.md",
        "# Key rotation\n\nRotate the signing keys every thirty days.\n",
    );
    std::fs::remove_file(docs.path().join("coffee.md")).unwrap();
    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(
        out.contains("added 0, updated 1, deleted 1, unchanged 0"),
        "{out}"
    );

    let (ok, out, _) =
        run(in_kb(kb.path()).args(["search", "espresso machine", "--mode", "bm25", "--json"]));
    assert!(ok);
    assert!(
        !out.contains("coffee.md"),
        "deleted file still found: {out}"
    );
}

#[test]
fn search_without_a_knowledge_base_says_how_to_make_one() {
    let kb = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(in_kb(&kb.path().join("none")).args(["search", "anything"]));
    assert!(!ok);
    assert!(err.contains("ragtune ingest"), "{err}");
}

#[test]
fn sql_rows_are_documents_and_follow_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let kb = dir.path().join("kb");
    let sqlite = |sql: &str| {
        let status = std::process::Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
            .arg(&db)
            .arg(sql)
            .status()
            .unwrap();
        assert!(status.success());
    };
    sqlite(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT); INSERT INTO notes VALUES (1, 'VPN', 'The VPN gateway is vpn.example.org'), (2, 'Lunch', 'Lunch is served at noon');",
    );
    let ingest = || {
        run(in_kb(&kb)
            .args([
                "ingest",
                "--sql",
                "SELECT id, title, body FROM notes",
                "--text-columns",
                "body",
                "--db",
            ])
            .arg(&db))
    };
    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(out.contains("added 2"), "{out}");
    sqlite(
        "DELETE FROM notes WHERE id = 2; UPDATE notes SET body = 'The VPN gateway moved to vpn2.example.org' WHERE id = 1;",
    );
    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(out.contains("added 0, updated 1, deleted 1"), "{out}");

    let (ok, _, err) = run(in_kb(&kb)
        .args([
            "ingest",
            "--sql",
            "SELECT nope FROM notes",
            "--text-columns",
            "body",
            "--db",
        ])
        .arg(&db));
    assert!(!ok);
    assert!(err.contains("nope") && !err.contains("panicked"), "{err}");
}
