//! Record formats: JSON, JSONL, CSV, SQLite.

use ragtune_core::{BlockKind, Format};
use ragtune_ingest::{Error, JsonOptions, LoadOptions, load, load_sql};

#[test]
fn jsonl_bad_line_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posts.jsonl");
    std::fs::write(
        &path,
        "{\"id\": 1, \"body\": \"first\", \"author\": \"ann\"}\n\n{\"id\": 2, \"body\": oops}\n{\"id\": 3, \"body\": \"third\\n\\nmore\"}\n",
    )
    .unwrap();
    let opts = LoadOptions {
        json: JsonOptions {
            text_field: Some("body".into()),
        },
        ..LoadOptions::default()
    };
    let loaded = load(&path, &opts).unwrap();
    let texts: Vec<&str> = loaded.documents.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["first", "third\n\nmore"]);
    assert!(loaded.documents[0].source.ends_with("posts.jsonl#L1"));
    assert_eq!(loaded.documents[1].metadata["line"], "4");
    assert_eq!(loaded.documents[0].metadata["author"], "ann");
    assert_eq!(loaded.documents[0].metadata["id"], "1");
    assert_eq!(loaded.errors.len(), 1);
    match &loaded.errors[0] {
        Error::Line { line, path: p, .. } => assert_eq!((*line, p.as_path()), (3, path.as_path())),
        other => panic!("{other:?}"),
    }
    assert!(loaded.errors[0].to_string().contains("line 3"));
}

#[test]
fn json_array_and_missing_text_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faq.json");
    std::fs::write(
        &path,
        r#"[{"q": "Why?", "text": "Because."}, {"q": "How?", "text": "Like so."}]"#,
    )
    .unwrap();
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.documents.len(), 2);
    assert_eq!(loaded.documents[1].metadata["q"], "How?");
    assert!(loaded.documents[1].source.ends_with("faq.json#1"));

    let opts = LoadOptions {
        json: JsonOptions {
            text_field: Some("answer".into()),
        },
        ..LoadOptions::default()
    };
    let err = load(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("faq.json") && err.contains("`answer`") && err.contains("q, text"),
        "{err}"
    );
}

#[test]
fn csv_rows_are_table_blocks_with_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(&path, "name;city\nAnn;Oslo\n\n\"Bo; Jr\";\"New\nYork\"\n").unwrap();
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    let doc = &loaded.documents[0];
    assert_eq!(doc.format, Format::Csv);
    assert_eq!(doc.text, "name | city\nAnn | Oslo\nBo; Jr | New York\n");
    assert!(doc.blocks.iter().all(|b| b.kind == BlockKind::Table));
    assert_eq!(doc.blocks.len(), 3);
    assert_eq!(doc.metadata["columns"], "name, city");
}

fn people_db(dir: &std::path::Path) -> std::path::PathBuf {
    let db = dir.join("kb.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, body TEXT, score REAL);
         INSERT INTO notes VALUES (7, 'Setup', 'Install it.\n\nThen run it.', 0.5);
         INSERT INTO notes VALUES (9, 'Empty', NULL, NULL);",
    )
    .unwrap();
    db
}

#[test]
fn sql_rows_become_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = people_db(dir.path());
    let docs = load_sql(
        &db,
        "SELECT rowid, title, body, score FROM notes ORDER BY id",
        &["title", "body"],
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].source, format!("sqlite:{}#7", db.display()));
    assert_eq!(docs[0].text, "Setup\n\nInstall it.\n\nThen run it.");
    assert_eq!(docs[0].blocks.len(), 3);
    assert_eq!(docs[0].metadata["score"], "0.5");
    assert!(!docs[0].metadata.contains_key("body"));
    assert_eq!(docs[1].text, "Empty");
    assert_eq!(docs[0].format, Format::Sql);
}

#[test]
fn failing_sql_names_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = people_db(dir.path());
    let query = "SELECT nope FROM notes";
    let err = load_sql(&db, query, &["nope"]).unwrap_err();
    assert!(matches!(err, Error::Sql { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(query) && msg.contains("kb.sqlite") && msg.contains("no such column"),
        "{msg}"
    );

    let err = load_sql(&db, "SELECT id, title FROM notes", &["body"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column \"body\"") && err.contains("id, title"),
        "{err}"
    );

    // Read-only: a statement that writes is refused, and the table survives.
    let err = load_sql(&db, "DELETE FROM notes", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DELETE FROM notes"), "{err}");
    assert_eq!(load_sql(&db, "SELECT id FROM notes", &[]).unwrap().len(), 2);
}
