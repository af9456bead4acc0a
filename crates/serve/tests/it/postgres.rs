//! A knowledge base on PostgreSQL behind the server: answered and searched from like a folder,
//! what another process ingests is served at once, and this server never writes into it.

use crate::{Options, get_json, http, post, search, start_with, upload};
use anyhow::Result;
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{NoProgress, SyncOptions, sync_into};
use ragtune_pg::PgKb;
use ragtune_pg::testing::TestServer;
use serde_json::{Value, json};

#[tokio::test]
async fn a_knowledge_base_on_postgres_is_served_and_follows_its_other_writers() -> Result<()> {
    let pg = TestServer::start();
    let url = pg.url("docs");
    let s = start_with(Options {
        postgres: Some(url.clone()),
        ..Options::default()
    })
    .await?;

    let (status, v) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "rag/docs", "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]}),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "every ninety days [1]");
    let c = &message["context"]["citations"][0];
    assert_eq!(c["valid"], true, "{c}");
    assert!(c["filepath"].as_str().unwrap().ends_with("keys.md"), "{c}");

    let (status, before) = get_json(s.addr, "/v1/kb/docs/status").await?;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        (&before["documents"], &before["writable"]),
        (&json!(2), &json!(false)),
        "{before}"
    );

    // Another process (`ragtune ingest --kb URL` on another machine) adds a file.
    let more = tempfile::tempdir()?;
    std::fs::write(
        more.path().join("parking.md"),
        "# Parking\n\nVisitors park in the zeppelin hangar behind building C.\n",
    )?;
    // A blocking client, kept off the async runtime (as `ragtune ingest` is its own process).
    let writer_url = url.clone();
    let folder = more.path().to_owned();
    let writer = tokio::task::spawn_blocking(move || -> Result<PgKb> {
        let embedder = HashEmbedder::new(16);
        let mut writer = PgKb::open(&writer_url, &embedder)?;
        sync_into(
            &mut writer,
            &[folder],
            &PlainTextSource,
            &embedder,
            &SyncOptions::default(),
            &mut NoProgress,
        )?;
        Ok(writer)
    })
    .await??;
    // Served at once, without a restart: searched, listed and counted.
    assert!(search(s.addr, "zeppelin hangar").await?[0].contains("zeppelin"));
    let (_, after) = get_json(s.addr, "/v1/kb/docs/status").await?;
    assert_eq!(after["documents"], 3, "{after}");
    assert!(after["chunks"].as_u64().unwrap() > before["chunks"].as_u64().unwrap());
    let (status, _, metrics) = http(s.addr, "GET", "/metrics", "").await?;
    assert_eq!(status, 200, "{metrics}");
    let chunks = format!("ragtune_kb_chunks{{kb=\"docs\"}} {}", after["chunks"]);
    assert!(metrics.contains(&chunks), "{metrics}");
    let (status, docs) = get_json(s.addr, "/v1/kb/docs/documents").await?;
    assert_eq!(status, 200, "{docs}");
    let docs: &Vec<Value> = docs["data"].as_array().unwrap();
    assert_eq!(docs.len(), 3);
    assert!(docs.iter().all(|d| d["uploaded"] == false), "{docs:?}");

    // This server does not write into it: uploads and deletions say what does.
    let (status, v) = upload(s.addr, None, &[("notes.md", b"# Notes\n\nhello\n")]).await?;
    assert_eq!(status, 409, "{v}");
    let why = v["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("PostgreSQL") && why.contains("ragtune ingest --kb") && !why.contains("***"),
        "{why}"
    );
    let (status, _, text) = http(
        s.addr,
        "DELETE",
        &format!("/v1/kb/docs/documents/{}", docs[0]["id"]),
        "",
    )
    .await?;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("PostgreSQL"), "{text}");
    let left = tokio::task::spawn_blocking(move || writer.documents().map(|d| d.len())).await??;
    assert_eq!(left, 3, "nothing was deleted");
    Ok(())
}
