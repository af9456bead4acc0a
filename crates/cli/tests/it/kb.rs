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
fn ingest_stats_break_the_time_down_and_a_bad_precision_is_named() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("keys.md"),
        "# Key rotation\n\nRotate the signing keys every ninety days.\n",
    )
    .unwrap();
    let (ok, out, err) = run(in_kb(kb.path())
        .args(["ingest", "--stats"])
        .arg(docs.path()));
    assert!(ok, "{err}");
    for part in [
        "s wall; scan ",
        ", extract ",
        ", chunk ",
        ", embed ",
        ", write ",
        "1 files loaded",
    ] {
        assert!(out.contains(part), "no {part:?} in {out}");
    }

    let (ok, _, err) = run(in_kb(kb.path())
        .env("RAGTUNE_EMBED_PRECISION", "fp8")
        .args(["search", "keys"]));
    assert!(!ok);
    assert!(
        err.contains("RAGTUNE_EMBED_PRECISION=\"fp8\"") && err.contains("f32"),
        "{err}"
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

/// Regression: `ingest --kb K missing good.txt` ingested nothing.
#[test]
fn a_missing_path_is_reported_and_the_others_are_ingested() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    let good = docs.path().join("good.txt");
    std::fs::write(&good, "The VPN gateway is vpn.example.org.").unwrap();
    let missing = docs.path().join("missing.txt");
    let (ok, out, err) = run(in_kb(kb.path()).arg("ingest").arg(&missing).arg(&good));
    assert!(!ok, "a failed path must fail the run: {out}");
    assert!(
        out.contains("added 1,") && out.contains("failed 1"),
        "{out}"
    );
    assert!(
        out.contains(&format!("failed: {}: does not exist", missing.display())),
        "{out}"
    );
    assert!(err.contains("1 path(s) could not be indexed"), "{err}");
    let (ok, out, err) = run(in_kb(kb.path()).args(["search", "VPN gateway", "--json"]));
    assert!(ok, "{err}");
    assert!(out.contains("good.txt"), "{out}");
}

/// Regression: `--kb postgres://...` silently created a local folder `postgres:/...`. Now a
/// PostgreSQL URL is a knowledge base on that server (an unreachable one is named), commands
/// that need a folder say which commands take a URL, and other schemes are refused.
#[test]
fn a_database_url_as_kb_is_a_server_or_refused_and_creates_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec!["search", "x", "--kb", "postgres://user@127.0.0.1:1/kb"],
            "cannot connect",
        ),
        (
            vec!["ingest", ".", "--kb", "postgresql://user:pw@127.0.0.1:1/kb"],
            "cannot connect",
        ),
        (
            vec!["kb", "check", "--kb", "postgres://user@db.example/kb"],
            "ingest, search, ask, eval qa, serve and compare",
        ),
        (
            vec!["adapter", "list", "--kb", "postgres://db.example/kb"],
            "ingest, search, ask, eval qa, serve and compare",
        ),
        (
            vec!["search", "x", "--kb", "mysql://db.example/kb"],
            "is a URL",
        ),
        (
            vec!["search", "x", "--kb", "postgres://h/db?kb=Bad-Name"],
            "a-z, 0-9 and _",
        ),
    ];
    for (args, want) in cases {
        let (ok, _, err) = run(ragtune().current_dir(cwd.path()).args(&args));
        assert!(!ok);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains(":pw@"),
            "the password is never printed: {err}"
        );
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

/// Regression: a zeroed `kb.sqlite` gave "no results" with exit 0, and the read-only
/// `search` re-initialised the database and emptied `bm25/` and `vectors.bin`.
#[test]
fn a_zeroed_database_is_an_error_and_the_indexes_survive() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("a.txt"), "Rotate the signing keys yearly.").unwrap();
    let (ok, _, err) = run(in_kb(kb.path()).arg("ingest").arg(docs.path()));
    assert!(ok, "{err}");
    let vectors = std::fs::metadata(kb.path().join("vectors.bin"))
        .unwrap()
        .len();
    let bm25_files = || std::fs::read_dir(kb.path().join("bm25")).unwrap().count();
    let bm25_before = bm25_files();
    std::fs::File::create(kb.path().join("kb.sqlite")).unwrap();
    for args in [vec!["search", "keys"], vec!["ingest", "."]] {
        let (ok, out, err) = run(in_kb(kb.path()).current_dir(docs.path()).args(&args));
        assert!(!ok, "{out}");
        assert!(
            err.contains("is damaged") && err.contains("0 bytes"),
            "{err}"
        );
        assert!(!err.contains("delete"), "{err}");
    }
    let vectors_after = std::fs::metadata(kb.path().join("vectors.bin"))
        .unwrap()
        .len();
    assert_eq!(vectors_after, vectors);
    assert_eq!(bm25_files(), bm25_before);
}

/// Regression: `--top-k 0` answered "the documents do not contain the answer" without
/// retrieving, and `--max-tokens 0` was accepted (and hung the chunker).
#[test]
fn counts_that_cannot_work_are_refused_before_anything_runs() {
    let kb = tempfile::tempdir().unwrap();
    for (args, what) in [
        (vec!["search", "x", "-k", "0"], "at least 1"),
        (vec!["ask", "x", "--top-k", "0"], "at least 1"),
        (vec!["ingest", ".", "--max-tokens", "0"], "at least 16"),
        (vec!["ingest", ".", "--max-tokens", "2"], "at least 16"),
    ] {
        let (ok, _, err) = run(in_kb(kb.path()).args(&args));
        assert!(!ok, "{args:?}");
        assert!(err.contains(what), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(kb.path()).unwrap().count(), 0);
}

/// Regression: FIFOs and symbolic link loops were skipped without a word (and a FIFO read
/// would block).
#[test]
fn fifos_and_link_loops_are_reported_as_skipped() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("real.txt"), "indexed text").unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(docs.path().join("pipe.txt"))
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink(docs.path(), docs.path().join("again")).unwrap();
    std::os::unix::fs::symlink("self.txt", docs.path().join("self.txt")).unwrap();
    let (ok, out, err) = run(in_kb(kb.path()).arg("ingest").arg(docs.path()));
    assert!(ok, "skipping is not failing: {out} {err}");
    assert!(
        out.contains("added 1,") && out.contains("skipped 3"),
        "{out}"
    );
    assert!(out.contains("pipe.txt: a FIFO"), "{out}");
    assert!(out.contains("again: a link back to"), "{out}");
    assert!(
        out.contains("self.txt: a link that leads to no file"),
        "{out}"
    );
}

/// Regression: terminal escape sequences in documents reached the terminal raw.
#[test]
fn control_characters_in_documents_are_escaped_in_search_output() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("evil.txt"),
        "Quarterly report \x1b]0;owned\x07 with \x1b[2J cleared screens.",
    )
    .unwrap();
    let (ok, _, err) = run(in_kb(kb.path()).arg("ingest").arg(docs.path()));
    assert!(ok, "{err}");
    let (ok, out, err) = run(in_kb(kb.path()).args(["search", "quarterly report"]));
    assert!(ok, "{err}");
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("\\u{1b}"), "{out}");
}

/// `ingest --max-tokens 64` on a knowledge base built with the defaults used to report every
/// file "unchanged" and keep the old chunks. Now the knowledge base keeps its settings: a
/// later ingest without the options uses them, and one with other values is refused.
#[test]
fn ingest_keeps_the_knowledge_base_chunk_settings_and_refuses_others() {
    let docs = tempfile::tempdir().unwrap();
    let kb = tempfile::tempdir().unwrap();
    let sentences: Vec<String> = (0..40)
        .map(|i| format!("Rule {i} says the gate closes at hour {i}."))
        .collect();
    std::fs::write(docs.path().join("rules.txt"), sentences.join(" ")).unwrap();
    let ingest = |extra: &[&str]| run(in_kb(kb.path()).arg("ingest").arg(docs.path()).args(extra));
    let chunks = || {
        let (ok, out, err) = run(in_kb(kb.path()).args(["search", "gate", "-k", "100", "--json"]));
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };

    let (ok, _, err) = ingest(&["--max-tokens", "32", "--overlap", "0"]);
    assert!(ok, "{err}");
    let small = chunks();
    assert!(small > 4, "{small}");

    let (ok, out, err) = ingest(&[]);
    assert!(ok, "{err}");
    assert!(out.contains("unchanged 1"), "{out}");
    std::fs::write(docs.path().join("more.txt"), sentences.join(" ")).unwrap();
    let (ok, out, err) = ingest(&[]);
    assert!(ok, "{err}");
    assert!(out.contains("added 1"), "{out}");
    assert_eq!(chunks(), 2 * small, "the new file is cut as the first was");

    let (ok, out, err) = ingest(&["--max-tokens", "128"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("--max-tokens 32 --overlap 0") && err.contains("--max-tokens 128"),
        "{err}"
    );
    assert_eq!(chunks(), 2 * small, "a refused ingest writes nothing");
}
