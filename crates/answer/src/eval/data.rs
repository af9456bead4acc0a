//! Question-answering data: SQuAD JSON (v1.1 and v2.0) and JSONL of question/answers.

use crate::error::{Error, Result, read};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A question with its gold answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    /// Gold answers, as the file lists them (SQuAD repeats some); empty when unanswerable.
    pub answers: Vec<String>,
    /// SQuAD v2's unanswerable questions (`is_impossible`); in JSONL, no answers.
    pub is_impossible: bool,
    /// The article title (SQuAD); empty otherwise.
    pub title: String,
    /// The paragraph the question was asked about (SQuAD); empty otherwise.
    pub context: String,
}

impl QaItem {
    pub fn answerable(&self) -> bool {
        !self.is_impossible
    }
}

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
struct SquadArticle {
    title: String,
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    context: String,
    qas: Vec<SquadQa>,
}

#[derive(Deserialize)]
struct SquadQa {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<SquadAnswer>,
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct SquadAnswer {
    text: String,
}

/// Loads a SQuAD v1.1 or v2.0 JSON file, questions in file order.
pub fn load_squad(path: &Path) -> Result<Vec<QaItem>> {
    let bytes = read(path)?;
    let file: SquadFile = serde_json::from_slice(&bytes).map_err(|e| Error::Data {
        path: path.to_owned(),
        line: e.line(),
        format: "SQuAD JSON",
        reason: e.to_string(),
    })?;
    let mut items = Vec::new();
    for article in file.data {
        for paragraph in article.paragraphs {
            for qa in paragraph.qas {
                items.push(QaItem {
                    id: qa.id,
                    question: qa.question,
                    answers: qa.answers.into_iter().map(|a| a.text).collect(),
                    is_impossible: qa.is_impossible,
                    title: article.title.clone(),
                    context: paragraph.context.clone(),
                });
            }
        }
    }
    Ok(items)
}

/// Loads JSONL, one question per line: `question` (required), `answers` (strings or
/// `{"text": ...}` objects) or `answer` (a string), optional `id` (default `line-<n>`),
/// optional `is_impossible` (default: no answers), optional `context`. Blank lines are skipped.
pub fn load_qa_jsonl(path: &Path) -> Result<Vec<QaItem>> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Data {
        path: path.to_owned(),
        line: 1,
        format: "question/answers JSONL",
        reason: format!("not UTF-8: {e}"),
    })?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::Data {
            path: path.to_owned(),
            line: i + 1,
            format: "question/answers JSONL",
            reason,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let question = v
            .get("question")
            .and_then(|q| q.as_str())
            .ok_or_else(|| bad("no string field `question`".into()))?
            .to_string();
        let answers = answers_of(&v).map_err(bad)?;
        let id = match v.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => format!("line-{}", i + 1),
        };
        let is_impossible = v
            .get("is_impossible")
            .and_then(|b| b.as_bool())
            .unwrap_or(answers.is_empty());
        let context = v
            .get("context")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string();
        items.push(QaItem {
            id,
            question,
            answers,
            is_impossible,
            title: String::new(),
            context,
        });
    }
    Ok(items)
}

fn answers_of(v: &serde_json::Value) -> std::result::Result<Vec<String>, String> {
    if let Some(a) = v.get("answer") {
        return match a {
            serde_json::Value::String(s) => Ok(vec![s.clone()]),
            serde_json::Value::Null => Ok(Vec::new()),
            _ => Err("`answer` must be a string".into()),
        };
    }
    match v.get("answers") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .map(|a| match a {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Object(o) => o
                    .get("text")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| "an answer object has no string `text`".to_string()),
                _ => Err("`answers` must hold strings or {\"text\": ...} objects".to_string()),
            })
            .collect(),
        Some(serde_json::Value::String(s)) => Ok(vec![s.clone()]),
        Some(_) => Err("`answers` must be a list".into()),
    }
}
