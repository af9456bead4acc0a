//! Question-answering data: SQuAD JSON (v1.1 and v2.0), PubMedQA PQA-L JSON (yes/no/maybe
//! questions over an abstract) and JSONL of question/answers.

use crate::{Error, Result};
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
    /// The paragraph the question was asked about (SQuAD; PubMedQA: the abstract's
    /// paragraphs joined by blank lines); empty otherwise.
    pub context: String,
    /// The gold yes/no/maybe label (PubMedQA's `final_decision`); `None` for other questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// A yes/no/maybe label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Yes,
    No,
    Maybe,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Yes, Decision::No, Decision::Maybe];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Yes => "yes",
            Decision::No => "no",
            Decision::Maybe => "maybe",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QaItem {
    pub fn answerable(&self) -> bool {
        !self.is_impossible
    }
}

#[derive(Deserialize)]
pub(crate) struct SquadFile {
    pub data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
pub(crate) struct SquadArticle {
    pub title: String,
    pub paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
pub(crate) struct SquadParagraph {
    pub context: String,
    pub qas: Vec<SquadQa>,
}

#[derive(Deserialize)]
pub(crate) struct SquadQa {
    pub id: String,
    pub question: String,
    #[serde(default)]
    answers: Vec<SquadAnswer>,
    #[serde(default)]
    is_impossible: bool,
}

#[derive(Deserialize)]
struct SquadAnswer {
    text: String,
}

/// Only whether the top-level object has SQuAD's `data`.
#[derive(Deserialize)]
struct Probe {
    data: Option<serde::de::IgnoredAny>,
}

/// One PubMedQA PQA-L instance (other fields are ignored).
#[derive(Deserialize)]
struct PqalInstance {
    #[serde(rename = "QUESTION")]
    question: String,
    #[serde(rename = "CONTEXTS")]
    contexts: Vec<String>,
    final_decision: Decision,
}

/// A PQA-L file: an object of PubMed id -> instance, in file order.
struct PqalFile(Vec<(String, PqalInstance)>);

impl<'de> Deserialize<'de> for PqalFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PqalFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of PubMed id -> {QUESTION, CONTEXTS, final_decision, ...}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<PqalFile, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(PqalFile(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Loads a question JSON file, questions in file order: SQuAD v1.1 or v2.0 (an object with
/// `data`), or PubMedQA PQA-L (an object of PubMed id -> `QUESTION`, `CONTEXTS`,
/// `final_decision`, ...). A PQA-L instance becomes a question whose gold answer and
/// [`QaItem::decision`] are its yes/no/maybe label and whose context is its abstract.
pub fn load_squad(path: &Path) -> Result<Vec<QaItem>> {
    let bytes = fs_err::read(path)?;
    let squad = serde_json::from_slice::<Probe>(&bytes).map_or(true, |p| p.data.is_some());
    if !squad {
        return load_pqal(path, &bytes);
    }
    let file = parse_squad(path, &bytes)?;
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
                    decision: None,
                });
            }
        }
    }
    Ok(items)
}

/// SQuAD JSON, parsed once for both readers of it (questions and the paragraph corpus).
pub(crate) fn parse_squad(path: &Path, bytes: &[u8]) -> Result<SquadFile> {
    serde_json::from_slice(bytes).map_err(|e| Error::Data {
        path: path.to_owned(),
        line: e.line(),
        format: "SQuAD JSON",
        reason: e.to_string(),
    })
}

/// Loads questions by extension: `.json` as SQuAD or PubMedQA PQA-L ([`load_squad`]),
/// anything else as question/answers JSONL ([`load_qa_jsonl`]).
pub fn load_questions(path: &Path) -> Result<Vec<QaItem>> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        load_squad(path)
    } else {
        load_qa_jsonl(path)
    }
}

/// Loads JSONL, one question per line: `question` (required), `answers` (strings or
/// `{"text": ...}` objects) or `answer` (a string), optional `id` (default `line-<n>`),
/// optional `is_impossible` (default: no answers), optional `context`. Blank lines are skipped.
pub fn load_qa_jsonl(path: &Path) -> Result<Vec<QaItem>> {
    let bytes = fs_err::read(path)?;
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
            decision: None,
        });
    }
    Ok(items)
}

fn load_pqal(path: &Path, bytes: &[u8]) -> Result<Vec<QaItem>> {
    let file: PqalFile = serde_json::from_slice(bytes).map_err(|e| Error::Data {
        path: path.to_owned(),
        line: e.line(),
        format: "PubMedQA PQA-L JSON",
        reason: e.to_string(),
    })?;
    Ok(file
        .0
        .into_iter()
        .map(|(id, p)| QaItem {
            id,
            question: p.question,
            answers: vec![p.final_decision.as_str().to_string()],
            is_impossible: false,
            title: String::new(),
            context: p.contexts.join("\n\n"),
            decision: Some(p.final_decision),
        })
        .collect())
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
