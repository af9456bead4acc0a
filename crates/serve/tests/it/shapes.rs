//! The JSON the server answers with, as snapshots: a change to a shape that clients parse
//! shows up here as a diff. Ids, times, scores and temporary paths are filtered out.

use crate::{events, http, post, start, upload, wait_idle};
use anyhow::Result;
use serde_json::{Value, json};

/// Replaces what changes from run to run with a placeholder.
fn filter(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "id" if value.is_string() => *value = json!("[id]"),
                    "created" | "indexed_at" => *value = json!("[time]"),
                    "score" => *value = json!("[score]"),
                    "embedding" => {
                        let n = value.as_array().map_or(0, Vec::len);
                        *value = json!(format!("[{n} floats]"));
                    }
                    "filepath" | "file" | "source" | "running" if value.is_string() => {
                        let name = value.as_str().unwrap_or_default();
                        let base = name.rsplit('/').next().unwrap_or(name).to_owned();
                        *value = json!(format!(".../{base}"));
                    }
                    _ => filter(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(filter),
        _ => {}
    }
}

fn shape(mut v: Value) -> String {
    filter(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[tokio::test]
async fn the_json_shapes_clients_parse() -> Result<()> {
    let s = start(8, false).await?;
    let rag = json!({"model": "rag/docs", "messages": [{"role": "user", "content": "How often are the signing keys rotated?"}]});
    let (_, chat) = post(s.addr, "/v1/chat/completions", rag.clone()).await?;
    insta::assert_snapshot!("rag_chat_completion", shape(chat));

    let mut streamed = rag.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (_, _, body) = http(
        s.addr,
        "POST",
        "/v1/chat/completions",
        &streamed.to_string(),
    )
    .await?;
    let chunks: Vec<Value> = events(&body)
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| json!(e)))
        .collect();
    insta::assert_snapshot!("rag_chat_stream", shape(json!(chunks)));

    let (_, models) = crate::get_json(s.addr, "/v1/models").await?;
    insta::assert_snapshot!("models", shape(models));

    let (_, embeddings) = post(
        s.addr,
        "/v1/embeddings",
        json!({"model": "test-hash-bow-16", "input": ["signing keys"]}),
    )
    .await?;
    insta::assert_snapshot!("embeddings", shape(embeddings));

    let (_, error) = post(
        s.addr,
        "/v1/chat/completions",
        json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await?;
    insta::assert_snapshot!("error", shape(error));

    let (_, uploaded) =
        upload(s.addr, None, &[("fine.txt", b"The library opens at nine.")]).await?;
    insta::assert_snapshot!("upload", shape(uploaded));
    insta::assert_snapshot!("kb_status", shape(wait_idle(s.addr).await?));
    let (_, found) = post(
        s.addr,
        "/v1/kb/docs/search",
        json!({"query": "library", "top_k": 1, "mode": "bm25"}),
    )
    .await?;
    insta::assert_snapshot!("search", shape(found));
    Ok(())
}
