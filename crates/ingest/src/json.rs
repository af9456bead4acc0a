//! JSON and JSONL records: one field is the text, the other scalar fields become metadata.
//! A JSON file holds one record or an array of them; JSONL holds one record per line, and
//! a bad line is reported with its number and skipped.

use crate::builder::{plain_text, strip_invisible_metadata};
use crate::error::{Error, Result, Warning};
use crate::load::Segment;
use crate::stream::{invalid_utf8_warning, read_line_capped};
use ragtune_core::{ExtractedDocument, Format, Metadata};
use serde_json::Value;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Which field of a record holds the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Field holding the text; a dotted path (`"post.body"`) reaches into nested objects.
    /// `None` takes the first of `text`, `content`, `body`. A string or an array of strings.
    pub text_field: Option<String>,
}

const DEFAULT_FIELDS: &[&str] = &["text", "content", "body"];

/// Builds the document for one record, or says why the record has no text.
fn record(
    value: &Value,
    opts: &JsonOptions,
    source: String,
    format: Format,
) -> Result<ExtractedDocument, String> {
    let (field, text) = match value {
        Value::String(s) => (None, s.clone()),
        Value::Object(map) => {
            let (field, found) = match &opts.text_field {
                Some(f) => (f.as_str(), lookup(value, f)),
                None => DEFAULT_FIELDS
                    .iter()
                    .find_map(|f| map.get(*f).map(|v| (*f, Some(v))))
                    .unwrap_or(("text", None)),
            };
            let Some(found) = found else {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(format!(
                    "the record has no text field `{field}` (its fields: {}); name the field that holds the text (`ragtune ingest --text-field NAME`, JsonOptions::text_field)",
                    keys.join(", ")
                ));
            };
            (
                Some(field),
                text_of(found).ok_or_else(|| {
                    format!("field `{field}` is not a string or an array of strings; point JsonOptions::text_field at the text")
                })?,
            )
        }
        other => {
            return Err(format!(
                "expected an object or a string, found {}; each record must be a JSON object",
                kind(other)
            ));
        }
    };
    let mut metadata = Metadata::new();
    if let Value::Object(map) = value {
        for (k, v) in map {
            if Some(k.as_str()) == field {
                continue;
            }
            match v {
                Value::String(s) => metadata.insert(k.clone(), s.clone()),
                Value::Number(n) => metadata.insert(k.clone(), n.to_string()),
                Value::Bool(b) => metadata.insert(k.clone(), b.to_string()),
                _ => None,
            };
        }
    }
    strip_invisible_metadata(&mut metadata);
    let (text, blocks) = plain_text(text);
    Ok(ExtractedDocument {
        source,
        format,
        blocks,
        text,
        metadata,
    })
}

fn lookup<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(value, |v, key| v.get(key))
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join("\n\n")),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A whole JSON file: an object (one document) or an array (one document per element,
/// source `<path>#<index>`).
pub(crate) fn load(
    path: &Path,
    bytes: &[u8],
    opts: &JsonOptions,
) -> Result<Vec<ExtractedDocument>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::Json {
        path: path.to_owned(),
        reason: format!(
            "invalid JSON at line {}, column {} ({e}); fix the file or load it as text",
            e.line(),
            e.column()
        ),
    })?;
    let base = path.display().to_string();
    let json_err = |reason: String| Error::Json {
        path: path.to_owned(),
        reason,
    };
    match &value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                record(v, opts, format!("{base}#{i}"), Format::Json)
                    .map_err(|r| json_err(format!("element {i}: {r}")))
            })
            .collect(),
        v => Ok(vec![record(v, opts, base, Format::Json).map_err(json_err)?]),
    }
}

pub(crate) struct JsonlStream {
    reader: BufReader<File>,
    path: PathBuf,
    opts: JsonOptions,
    max_line: usize,
    line: u64,
    buf: Vec<u8>,
    emitted: bool,
}

impl JsonlStream {
    pub fn new(path: PathBuf, file: File, opts: JsonOptions, max_line: usize) -> Self {
        JsonlStream {
            reader: BufReader::new(file),
            path,
            opts,
            max_line,
            line: 0,
            buf: Vec::new(),
            emitted: false,
        }
    }

    fn line_error(&self, reason: String) -> Error {
        Error::Line {
            path: self.path.clone(),
            line: self.line,
            reason,
        }
    }
}

impl Iterator for JsonlStream {
    type Item = Result<Segment>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let too_long = match read_line_capped(&mut self.reader, &mut self.buf, self.max_line) {
                Ok(Some(t)) => t,
                Ok(None) if !self.emitted => {
                    // An empty file still yields its (empty) document, with a warning.
                    self.emitted = true;
                    let mut seg = Segment::whole(empty(&self.path));
                    seg.warnings
                        .push(Warning::new(&self.path, "the file has no records"));
                    return Some(Ok(seg));
                }
                Ok(None) => return None,
                Err(e) => return Some(Err(Error::io(&self.path, e))),
            };
            self.line += 1;
            self.emitted = true;
            if too_long {
                return Some(Err(self.line_error(format!(
                    "line is longer than {} bytes (LoadOptions::segment_bytes)",
                    self.max_line
                ))));
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (text, lossy) = match std::str::from_utf8(&self.buf) {
                Ok(s) => (std::borrow::Cow::Borrowed(s), false),
                Err(_) => (String::from_utf8_lossy(&self.buf), true),
            };
            let value: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return Some(Err(
                        self.line_error(format!("invalid JSON at column {} ({e})", e.column()))
                    ));
                }
            };
            let source = format!("{}#L{}", self.path.display(), self.line);
            return Some(match record(&value, &self.opts, source, Format::Jsonl) {
                Ok(mut doc) => {
                    doc.metadata.insert("line".into(), self.line.to_string());
                    let mut seg = Segment::whole(doc);
                    if lossy {
                        seg.warnings.push(invalid_utf8_warning(&self.path, 1));
                    }
                    Ok(seg)
                }
                Err(reason) => Err(self.line_error(reason)),
            });
        }
    }
}

fn empty(path: &Path) -> ExtractedDocument {
    ExtractedDocument {
        source: path.display().to_string(),
        format: Format::Jsonl,
        text: String::new(),
        blocks: Vec::new(),
        metadata: Metadata::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_field_and_scalar_metadata() {
        let opts = JsonOptions {
            text_field: Some("post.body".into()),
        };
        let v =
            json!({"id": 7, "ok": true, "title": "T", "tags": ["x"], "post": {"body": "a\n\nb"}});
        let doc = record(&v, &opts, "s".into(), Format::Json).unwrap();
        assert_eq!(doc.text, "a\n\nb");
        assert_eq!(doc.blocks.len(), 2);
        assert_eq!(doc.metadata["id"], "7");
        assert_eq!(doc.metadata["ok"], "true");
        assert!(!doc.metadata.contains_key("tags"));
    }

    #[test]
    fn missing_field_names_the_available_ones() {
        let err = record(
            &json!({"a": 1, "b": 2}),
            &JsonOptions::default(),
            "s".into(),
            Format::Json,
        )
        .unwrap_err();
        assert!(
            err.contains("fields: a, b") && err.contains("text_field"),
            "{err}"
        );
    }
}
