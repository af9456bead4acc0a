//! Format adherence: the check a user puts on every answer of a question set (consistent
//! formatting or structured output is what fine-tuning is often chosen for), either a regular
//! expression or a JSON Schema.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// A check every answer must pass.
pub enum FormatCheck {
    /// The answer as shown must match the pattern somewhere (anchor it for the whole answer).
    Regex(regex::Regex),
    /// The answer must be one JSON value valid under the schema (any draft from 4 to
    /// 2020-12), optionally inside a Markdown code fence, followed by nothing but citation
    /// markers such as `[1]`.
    Schema {
        path: PathBuf,
        schemas: boon::Schemas,
        index: boon::SchemaIndex,
    },
}

impl std::fmt::Debug for FormatCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Regex(re) => f.debug_tuple("Regex").field(&re.as_str()).finish(),
            Self::Schema { path, .. } => f.debug_struct("Schema").field("path", path).finish(),
        }
    }
}

impl FormatCheck {
    pub fn regex(pattern: &str) -> Result<Self> {
        regex::Regex::new(pattern)
            .map(Self::Regex)
            .map_err(|e| Error::Config(format!("--format-regex {pattern:?}: {e}")))
    }

    /// Compiles the JSON Schema in `path` (its `$ref`s may name other local files; nothing is
    /// fetched over the network).
    pub fn json_schema(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)?;
        let bad = |why: String| {
            Error::Config(format!(
                "{}: not a usable JSON Schema: {why}; fix the file or leave out --format-schema",
                path.display()
            ))
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let absolute = std::path::absolute(path)?;
        let location = absolute.to_string_lossy().into_owned();
        let mut compiler = boon::Compiler::new();
        let mut schemas = boon::Schemas::new();
        compiler
            .add_resource(&location, value)
            .map_err(|e| bad(e.to_string()))?;
        let index = compiler
            .compile(&location, &mut schemas)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self::Schema {
            path: path.to_owned(),
            schemas,
            index,
        })
    }

    /// Whether `answer` (the reply as shown, citation markers included) passes.
    pub fn check(&self, answer: &str) -> bool {
        match self {
            Self::Regex(re) => re.is_match(answer),
            Self::Schema { schemas, index, .. } => {
                leading_json(answer).is_some_and(|v| schemas.validate(&v, *index).is_ok())
            }
        }
    }
}

/// The JSON value `text` consists of: optionally fenced (```json ... ```), followed by nothing
/// but whitespace and citation markers.
fn leading_json(text: &str) -> Option<serde_json::Value> {
    static MARKERS: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^(\s*\[\d+\])*\s*$").expect("valid pattern"));
    let mut body = text.trim();
    let mut after_fence = "";
    if let Some(rest) = body.strip_prefix("```") {
        let (_, inner) = rest.split_once('\n')?;
        let (inner, after) = inner.split_once("```")?;
        body = inner;
        after_fence = after;
    }
    let mut stream = serde_json::Deserializer::from_str(body).into_iter::<serde_json::Value>();
    let value = stream.next()?.ok()?;
    let rest = &body[stream.byte_offset()..];
    (MARKERS.is_match(rest) && MARKERS.is_match(after_fence)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> (tempfile::TempDir, FormatCheck) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answer.schema.json");
        std::fs::write(&path, text).unwrap();
        let check = FormatCheck::json_schema(&path).unwrap();
        (dir, check)
    }

    #[test]
    fn a_json_schema_accepts_valid_answers_fenced_or_cited_and_nothing_else() {
        let (_dir, check) = schema(
            r#"{"type": "object", "required": ["year"],
                "properties": {"year": {"type": "integer", "minimum": 1000}},
                "additionalProperties": false}"#,
        );
        assert!(check.check(r#"{"year": 1850}"#));
        assert!(check.check("```json\n{\"year\": 1850}\n```"));
        assert!(check.check(r#"{"year": 1850} [1] [2]"#));
        // Invalid under the schema.
        assert!(!check.check(r#"{"year": "1850"}"#));
        assert!(!check.check(r#"{"year": 850}"#));
        assert!(!check.check(r#"{"year": 1850, "month": 3}"#));
        // Not one JSON value, or prose around it.
        assert!(!check.check("The year is 1850."));
        assert!(!check.check(r#"Answer: {"year": 1850}"#));
        assert!(!check.check(r#"{"year": 1850} because the text says so"#));
        assert!(!check.check(r#"{"year": 1850"#));
        assert!(!check.check(""));
    }

    #[test]
    fn a_regex_matches_the_answer_as_shown() {
        let check = FormatCheck::regex(r"^\d{4}( \[\d+\])*$").unwrap();
        assert!(check.check("1850 [1]"));
        assert!(!check.check("in 1850"));
        let err = FormatCheck::regex("(").unwrap_err().to_string();
        assert!(err.contains("--format-regex"), "{err}");
    }

    #[test]
    fn a_bad_schema_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let not_json = dir.path().join("broken.json");
        std::fs::write(&not_json, "{type: object").unwrap();
        let err = FormatCheck::json_schema(&not_json).unwrap_err().to_string();
        assert!(
            err.contains("broken.json") && err.contains("not JSON"),
            "{err}"
        );
        let bad_schema = dir.path().join("bad.json");
        std::fs::write(&bad_schema, r#"{"type": 42}"#).unwrap();
        let err = FormatCheck::json_schema(&bad_schema)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.json") && err.contains("JSON Schema"),
            "{err}"
        );
        let missing = FormatCheck::json_schema(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.json"), "{missing}");
    }
}
