//! SFT data from an evaluation set: the prompt a mode builds at inference, answered with the
//! gold answer, so a fine-tuned model learns from exactly what it will be shown.

use crate::Result;
use ragtune_answer::citation::match_form;
use ragtune_answer::{Answerer, Mode};
use ragtune_core::Role;
use ragtune_datasets::QaItem;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What [`write_sft`] wrote and left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SftWritten {
    pub written: usize,
    /// RAG: the gold answer is in no passage of the prompt, so no citation could be given.
    pub not_in_prompt: usize,
    /// No gold answer, or no prompt (RAG found no passage).
    pub unanswerable: usize,
}

/// Writes `items` as SFT examples (JSONL in the OpenAI messages format) to `path`: the prompt
/// `answerer` builds, then the gold answer cited with the passage that holds it (RAG) or
/// alone (other modes). The prompt's worked demonstrations are assistant turns too, marked
/// `weight: 0`: context, not targets.
pub fn write_sft(answerer: &Answerer<'_>, items: &[QaItem], path: &Path) -> Result<SftWritten> {
    let questions: Vec<&str> = items.iter().map(|i| i.question.as_str()).collect();
    let prepared = answerer.prepare_batch(&questions)?;
    let mut out = std::io::BufWriter::new(fs_err::File::create(path)?);
    let mut counts = SftWritten {
        written: 0,
        not_in_prompt: 0,
        unanswerable: 0,
    };
    for (item, p) in items.iter().zip(&prepared) {
        let (Some(messages), Some(gold)) = (p.messages(), item.answers.first()) else {
            counts.unanswerable += 1;
            continue;
        };
        let answer = if answerer.options().mode == Mode::Rag {
            let wanted = match_form(gold);
            match p
                .shown
                .iter()
                .position(|text| match_form(text).contains(&wanted))
            {
                Some(i) => format!("{gold} [{}]", i + 1),
                None => {
                    counts.not_in_prompt += 1;
                    continue;
                }
            }
        } else {
            gold.clone()
        };
        let mut messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let mut v = serde_json::to_value(m)?;
                if m.role == Role::Assistant {
                    v["weight"] = 0.into();
                }
                Ok(v)
            })
            .collect::<Result<_>>()?;
        messages.push(serde_json::json!({"role": "assistant", "content": answer}));
        serde_json::to_writer(&mut out, &serde_json::json!({ "messages": messages }))?;
        writeln!(out)?;
        counts.written += 1;
    }
    out.flush()?;
    Ok(counts)
}
