//! `--kb postgres://...`: ingest, search, ask and eval qa against a real PostgreSQL 18 + pgvector
//! (`ragtune_pg::testing`), and rows of a PostgreSQL table as documents.

use crate::{Served, keys_and_coffee, ragtune, run, serve_smollm2};
use ragtune_pg::testing::TestServer;
use std::io::{Read, Write};

#[test]
fn ingest_search_and_ask_on_postgres_follow_the_files() {
    let server = TestServer::start();
    let url = server.url("docs");
    let dir = tempfile::tempdir().unwrap();
    let (docs, _local) = keys_and_coffee(dir.path());
    let pg = || {
        let mut c = ragtune();
        c.env("RAGTUNE_KB", &url);
        c
    };
    let (ok, out, err) = run(pg().arg("ingest").arg(&docs));
    assert!(ok, "{err}");
    assert!(out.contains("added 2") && out.contains("?kb=docs"), "{out}");

    let (ok, out, err) = run(pg().args(["search", "Who rotates the signing keys?", "--json"]));
    assert!(ok, "{err}");
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        hits[0]["source"].as_str().unwrap().ends_with("keys.md"),
        "{out}"
    );
    assert!(hits[0]["ranks"]["dense"].is_number(), "{out}");

    // Same folder, same local results: the local copy keys_and_coffee made answers alike.
    let (ok, local, _) = run(ragtune().env("RAGTUNE_KB", dir.path().join("kb")).args([
        "search",
        "Who rotates the signing keys?",
        "--json",
        "--mode",
        "dense",
    ]));
    assert!(ok);
    let (ok, remote, _) = run(pg().args([
        "search",
        "Who rotates the signing keys?",
        "--json",
        "--mode",
        "dense",
    ]));
    assert!(ok);
    let sources = |s: &str| -> Vec<String> {
        serde_json::from_str::<Vec<serde_json::Value>>(s)
            .unwrap()
            .iter()
            .map(|h| h["source"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(sources(&local), sources(&remote));

    std::fs::write(
        docs.join("coffee.md"),
        "# Coffee\n\nThe espresso machine moved to the fifth floor, by the roof garden.\n",
    )
    .unwrap();
    std::fs::remove_file(docs.join("keys.md")).unwrap();
    let (ok, out, err) = run(pg().arg("ingest").arg(&docs));
    assert!(ok, "{err}");
    assert!(out.contains("updated 1, deleted 1"), "{out}");
    let (ok, out, _) = run(pg().args(["search", "signing keys", "--json", "--mode", "bm25"]));
    assert!(ok);
    assert_eq!(
        out.trim(),
        "[]",
        "the deleted file is gone from full-text search"
    );

    let (ok, out, err) = run(pg().args([
        "ask",
        "Where is the espresso machine?",
        "--json",
        "-n",
        "24",
        "--model",
        "smollm2-135m-instruct",
    ]));
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let passages = answer["passages"].as_array().unwrap();
    assert!(
        passages[0]["hit"]["text"]
            .as_str()
            .unwrap()
            .contains("fifth floor"),
        "{out}"
    );

    // eval qa retrieves from the same knowledge base (its --kb is never taken from RAGTUNE_KB).
    let questions = dir.path().join("qa.jsonl");
    std::fs::write(
        &questions,
        "{\"question\": \"Where is the espresso machine?\", \"answer\": \"fifth floor\"}\n",
    )
    .unwrap();
    let results = dir.path().join("results.jsonl");
    let (ok, out, err) = run(ragtune()
        .args(["eval", "qa"])
        .arg(&questions)
        .args(["--kb", &url, "--mode", "rag", "-n", "16"])
        .args(["--model", "smollm2-135m-instruct", "--results"])
        .arg(&results));
    assert!(ok, "{err}");
    assert!(out.contains("mode rag: 1 questions"), "{out}");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&results).unwrap().trim()).unwrap();
    let passages = line["result"]["answer"]["passages"].as_array().unwrap();
    assert!(
        passages[0]["hit"]["text"]
            .as_str()
            .unwrap()
            .contains("fifth floor"),
        "{line}"
    );

    // compare answers from it too; what needs a folder is noted, not skipped silently.
    let report = dir.path().join("report");
    let (ok, out, err) = run(ragtune()
        .args(["compare", "--questions"])
        .arg(&questions)
        .args(["--kb", &url, "--variant", "rag@smollm2-135m-instruct"])
        .args(["--variant", "closed-book@smollm2-135m-instruct"])
        .args(["--freshness", "1", "-n", "16", "--threads", "2", "--out"])
        .arg(&report));
    assert!(ok, "{err}\n{out}");
    let runs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("runs.json")).unwrap()).unwrap();
    // The RAG prompt holds the passage retrieved from PostgreSQL (the one chunk there).
    let prompt = |i: usize| {
        runs["runs"][i]["outcomes"][0]["prompt_tokens"]
            .as_u64()
            .unwrap()
    };
    assert!(prompt(0) > prompt(1) + 20, "{runs}");
    let notes = runs["notes"].to_string();
    assert!(
        notes.contains("freshness: not measured on postgres://"),
        "{notes}"
    );
    assert!(err.contains("note: freshness: not measured"), "{err}");

    // `serve --kb NAME=URL` answers from it, read only.
    let served = Served::start(
        serve_smollm2()
            .args(["--threads", "2", "--parallel", "1", "--kb"])
            .arg(format!("docs={url}"))
            .env_remove("GOMP_SPINCOUNT")
            .env_remove("OMP_WAIT_POLICY"),
    );
    // llama.cpp's threads spin briefly at OpenMP barriers unless the user chose otherwise:
    // ragtune re-ran itself, in the same process, with GOMP_SPINCOUNT set.
    let environ = std::fs::read(format!("/proc/{}/environ", served.pid())).unwrap();
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|v| v == b"GOMP_SPINCOUNT=1000"),
        "{}",
        String::from_utf8_lossy(&environ)
    );
    let (status, body) = http(&served.url, "GET", "/v1/kb/docs/status", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["documents"], &v["writable"]),
        (&1.into(), &false.into()),
        "{v}"
    );
    let (status, body) = http(
        &served.url,
        "POST",
        "/v1/kb/docs/search",
        r#"{"query": "espresso machine", "mode": "bm25"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("fifth floor"), "{body}");
    drop(served);

    // --watch follows a folder; on PostgreSQL it is refused with what to do instead.
    let (ok, _, err) = run(pg().arg("ingest").arg(&docs).arg("--watch"));
    assert!(!ok && err.contains("run `ragtune ingest`"), "{err}");
}

#[test]
fn rows_of_a_postgres_table_sync_by_key_and_hash() {
    let server = TestServer::start();
    let mut db = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=ragtune dbname=postgres",
            server.port()
        ),
        postgres::NoTls,
    )
    .unwrap();
    db.batch_execute(
        "CREATE TABLE tickets (id int PRIMARY KEY, team text, body text, attachment bytea);
         INSERT INTO tickets VALUES
           (1, 'billing', 'Refunds are paid within thirty days of the request.', NULL),
           (2, 'network', 'The VPN gateway drops idle sessions after an hour.', '\\x0102');",
    )
    .unwrap();
    let kb = tempfile::tempdir().unwrap();
    let source_url = format!("postgres://ragtune@127.0.0.1:{}/postgres", server.port());
    let ingest = || {
        run(ragtune().env("RAGTUNE_KB", kb.path()).args([
            "ingest",
            "--db",
            &source_url,
            "--sql",
            "SELECT id, team, body, attachment FROM tickets",
            "--text-columns",
            "body",
        ]))
    };
    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(out.contains("added 2"), "{out}");
    let (ok, out, _) = run(ragtune().env("RAGTUNE_KB", kb.path()).args([
        "search",
        "VPN idle sessions",
        "--json",
        "-k",
        "1",
    ]));
    assert!(ok);
    let hit: serde_json::Value =
        serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap()[0].clone();
    assert_eq!(hit["source"], format!("{source_url}#2"), "{out}");

    db.batch_execute(
        "UPDATE tickets SET body = 'Refunds are paid within sixty days.' WHERE id = 1;
         DELETE FROM tickets WHERE id = 2;",
    )
    .unwrap();
    let (ok, out, err) = ingest();
    assert!(ok, "{err}");
    assert!(out.contains("updated 1, deleted 1"), "{out}");

    // A query that names a missing column says which columns there are.
    let (ok, _, err) = run(ragtune().env("RAGTUNE_KB", kb.path()).args([
        "ingest",
        "--db",
        &source_url,
        "--sql",
        "SELECT id, team FROM tickets",
        "--text-columns",
        "body",
    ]));
    assert!(
        !ok && err.contains("no column \"body\"") && err.contains("id, team"),
        "{err}"
    );
}

/// One HTTP/1.1 request to `base` (`http://HOST:PORT`): the status and the body.
fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let host = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, rest.to_owned())
}
