//! SQLite rows as documents: chosen columns are the text, the others metadata.

use crate::builder::DocBuilder;
use crate::error::{Error, Result};
use ragtune_core::{BlockKind, ExtractedDocument, Format};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Runs `query` on the SQLite database at `db` (opened read-only) and makes one document
/// per row: the `text_columns` values are its paragraphs, in that order, and every other
/// non-null column becomes metadata. The source is `sqlite:<db>#<key>`, where the key is
/// the `rowid` column if the query selects one, else the first column.
///
/// ```no_run
/// let docs = ragtune_ingest::load_sql("kb.sqlite", "SELECT id, title, body FROM notes", &["body"])?;
/// # Ok::<(), ragtune_ingest::Error>(())
/// ```
pub fn load_sql(
    db: impl AsRef<Path>,
    query: &str,
    text_columns: &[&str],
) -> Result<Vec<ExtractedDocument>> {
    let db = db.as_ref();
    let fail = |reason: String| Error::Sql {
        db: db.to_owned(),
        query: query.to_owned(),
        reason,
    };
    if !db.is_file() {
        return Err(Error::io(
            db,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such database file"),
        ));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(format!("cannot open the database ({e})")))?;
    let mut stmt = conn.prepare(query).map_err(|e| fail(e.to_string()))?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let text_idx = text_column_positions(&columns, text_columns).map_err(fail)?;
    let key_idx = columns
        .iter()
        .position(|n| matches!(n.to_ascii_lowercase().as_str(), "rowid" | "_rowid_" | "oid"))
        .unwrap_or(0);
    let mut rows = stmt.query([]).map_err(|e| fail(e.to_string()))?;
    let mut docs = Vec::new();
    while let Some(row) = rows.next().map_err(|e| fail(e.to_string()))? {
        let values: Vec<Option<String>> = (0..columns.len())
            .map(|i| row.get_ref(i).map(value_text))
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| fail(e.to_string()))?;
        let key = values[key_idx]
            .clone()
            .unwrap_or_else(|| docs.len().to_string());
        let source = format!("sqlite:{}#{key}", db.display());
        docs.push(row_document(source, &columns, &values, &text_idx));
    }
    Ok(docs)
}

/// Where each of `text_columns` is among a query's `columns` (names compared ignoring case),
/// or which one is missing and what there is.
pub fn text_column_positions(
    columns: &[String],
    text_columns: &[impl AsRef<str>],
) -> std::result::Result<Vec<usize>, String> {
    text_columns
        .iter()
        .map(|c| {
            let c = c.as_ref();
            columns
                .iter()
                .position(|n| n.eq_ignore_ascii_case(c))
                .ok_or_else(|| {
                    format!(
                        "the result has no column {c:?} (columns: {})",
                        columns.join(", ")
                    )
                })
        })
        .collect()
}

/// One row of a query result as a document (SQLite's here, PostgreSQL's in `ragtune-pg`):
/// the values of the columns at `text_columns` are its paragraphs, in that order, and every
/// other non-null column is metadata.
pub fn row_document(
    source: String,
    columns: &[String],
    values: &[Option<String>],
    text_columns: &[usize],
) -> ExtractedDocument {
    let mut b = DocBuilder::new();
    for &i in text_columns {
        if let Some(text) = &values[i] {
            for para in crate::builder::paragraph_blocks(text, 0, None) {
                b.push(BlockKind::Paragraph, &text[para.start..para.end]);
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v.as_ref().filter(|_| !text_columns.contains(&i)) {
            b.metadata.insert(columns[i].clone(), v.clone());
        }
    }
    b.finish(source, Format::Sql)
}

fn value_text(v: ValueRef) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(format!("<{} bytes of binary data>", b.len())),
    }
}
