//! Rows of a PostgreSQL query as documents (`ragtune ingest --db postgres://... --sql ...`),
//! one per row, made as SQLite rows are (`ragtune_ingest::row_document`): the text columns are
//! the paragraphs, the other columns metadata. The source is `<URL without password>#<first
//! column>`, so a later sync finds the same rows by key and compares their text's hash.

use crate::error::describe;
use crate::{Error, Location, Result};
use postgres::NoTls;
use postgres::types::Type;
use ragtune_core::ExtractedDocument;

/// The documents of `query`'s rows, and the source prefix they share (what a sync of them
/// may delete under). The query runs in a read-only transaction.
pub fn load_rows(
    url: &str,
    query: &str,
    text_columns: &[&str],
) -> Result<(String, Vec<ExtractedDocument>)> {
    let loc = Location::parse(url)?;
    let base = loc
        .shown()
        .split('?')
        .next()
        .unwrap_or(loc.shown())
        .to_owned();
    let fail = |reason: String| Error::Db {
        kb: base.clone(),
        what: format!("the query {query:?}"),
        reason,
    };
    let mut client = loc.config.connect(NoTls).map_err(|e| Error::Connect {
        kb: base.clone(),
        reason: describe(&e),
    })?;
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|e| fail(describe(&e)))?;
    let stmt = tx.prepare(query).map_err(|e| fail(describe(&e)))?;
    let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
    if columns.is_empty() {
        return Err(fail(
            "it returns no columns; select a key column and the text".into(),
        ));
    }
    let text_idx = ragtune_ingest::text_column_positions(&columns, text_columns).map_err(fail)?;
    // Every value as text, as PostgreSQL prints it; binary columns only by their size.
    let exprs: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| {
            let col = format!("q.\"{}\"", c.name().replace('"', "\"\""));
            if c.type_() == &Type::BYTEA {
                format!("'<' || length({col}) || ' bytes of binary data>'")
            } else {
                format!("{col}::text")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM ({}) AS q",
        exprs.join(", "),
        query.trim().trim_end_matches(';')
    );
    let rows = tx.query(&sql, &[]).map_err(|e| fail(describe(&e)))?;
    let mut docs = Vec::with_capacity(rows.len());
    for row in &rows {
        let values: Vec<Option<String>> = (0..columns.len()).map(|i| row.get(i)).collect();
        let key = values[0].clone().unwrap_or_else(|| docs.len().to_string());
        docs.push(ragtune_ingest::row_document(
            format!("{base}#{key}"),
            &columns,
            &values,
            &text_idx,
        ));
    }
    tx.commit().map_err(|e| fail(describe(&e)))?;
    Ok((format!("{base}#"), docs))
}
