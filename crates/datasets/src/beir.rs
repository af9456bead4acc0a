//! BEIR data sets: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`)
//! and `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`, with a header line).

use crate::{Corpus, CorpusDoc, Error, EvalQuery, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

fn lines(path: &Path) -> Result<impl Iterator<Item = (usize, Result<String>)>> {
    let file = fs_err::File::open(path)?;
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.map_err(Error::from))))
}

fn field(v: &serde_json::Value, name: &str, path: &Path, line: usize) -> Result<String> {
    match v.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        None if name == "title" => Ok(String::new()),
        _ => Err(Error::Data {
            path: path.to_owned(),
            line,
            format: "BEIR JSONL",
            reason: format!("no string field `{name}`"),
        }),
    }
}

fn jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Value)>> {
    let mut out = Vec::new();
    for (line, text) in lines(path)? {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_owned(),
            line,
            format: "BEIR JSONL",
            reason: e.to_string(),
        })?;
        out.push((line, v));
    }
    Ok(out)
}

/// Loads a BEIR folder; only queries judged in `split` are returned.
pub fn load(dir: &Path, split: &str) -> Result<(Corpus, Vec<EvalQuery>)> {
    let corpus_path = dir.join("corpus.jsonl");
    let mut docs = Vec::new();
    for (line, v) in jsonl(&corpus_path)? {
        docs.push(CorpusDoc {
            id: field(&v, "_id", &corpus_path, line)?,
            title: field(&v, "title", &corpus_path, line)?,
            text: field(&v, "text", &corpus_path, line)?,
        });
    }
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for (line, text) in lines(&qrels_path)? {
        let text = text?;
        let cols: Vec<&str> = text.split('\t').collect();
        if line == 1 && cols.first() == Some(&"query-id") || text.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| Error::Data {
            path: qrels_path.clone(),
            line,
            format: "BEIR qrels TSV",
            reason,
        };
        let [q, d, s] = cols[..] else {
            return Err(bad(format!("{} columns, expected 3", cols.len())));
        };
        let score: i64 = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("score {s:?} is not an integer")))?;
        qrels
            .entry(q.to_owned())
            .or_default()
            .insert(d.to_owned(), score.max(0) as u32);
    }
    let queries_path = dir.join("queries.jsonl");
    let mut queries = Vec::new();
    for (line, v) in jsonl(&queries_path)? {
        let id = field(&v, "_id", &queries_path, line)?;
        if let Some(relevant) = qrels.remove(&id) {
            queries.push(EvalQuery {
                id,
                text: field(&v, "text", &queries_path, line)?,
                relevant,
            });
        }
    }
    Ok((Corpus { docs }, queries))
}
