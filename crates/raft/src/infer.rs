//! RAFT inference: [`answer`] retrieves the top-k passages, prompts with [`raft_prompt`] (the
//! function the training data came from), generates, and reads the chain of thought back: the
//! final answer after `<ANSWER>:`, the reasoning, and every quote checked against the passages
//! of the prompt.

use crate::error::{Error, Result};
use crate::prompt::{
    ANSWER_MARKER, AnswerFormat, BEGIN_QUOTE, END_QUOTE, RaftPassage, raft_prompt, raft_template,
};
use ragtune_answer::sanitize::sanitize;
use ragtune_answer::template::RAG_REFUSAL;
use ragtune_answer::{
    AbstainReason, Abstention, Answer, Citation, CitationFailure, CitationStatus, CitedChunk, Mode,
    Passage, PassageFit, Timings, TokenReport,
};
use ragtune_core::{
    ChatMessage, Filter, FinishReason, GenerationRequest, Generator, Hit, Prompt, Query, Retriever,
    SamplingParams, SearchMode, Usage,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ops::ControlFlow;

/// The version of [`raft_prompt`]'s format (system text, data block, passage lines, target
/// markers). Training records it; inference refuses an adapter trained on another. Bump it with
/// any change to what the prompt or the target looks like.
pub const PROMPT_FORMAT: &str = "ragtune-raft-prompt/1";

/// How [`answer`] retrieves and generates.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftOptions {
    /// Passages retrieved (the top hits, duplicates by text dropped).
    pub top_k: usize,
    /// Hybrid by default, as the build's hard negatives.
    pub search: SearchMode,
    pub filter: Filter,
    /// Most tokens of the reply (reasoning and answer together).
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// The adapter's target format (its training record says which).
    pub format: AnswerFormat,
}

impl RaftOptions {
    /// Options for an adapter trained on `format`: `max_tokens` raised to what that format
    /// needs (a chain of thought quotes before it answers), the rest default.
    pub fn for_format(format: AnswerFormat, top_k: usize, max_tokens: u32) -> Self {
        RaftOptions {
            top_k,
            max_tokens: max_tokens.max(format.min_reply_tokens()),
            format,
            ..RaftOptions::default()
        }
    }
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            top_k: 5,
            search: SearchMode::Hybrid,
            filter: Filter::default(),
            max_tokens: 256,
            sampling: SamplingParams::GREEDY,
            format: AnswerFormat::Cot,
        }
    }
}

/// A passage as the prompt showed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShownPassage {
    /// Its number in the prompt (`[1]`, `[2]`...).
    pub number: u32,
    pub chunk_id: i64,
    pub source: String,
    pub page: Option<u32>,
    /// Byte range of the chunk in its document's extracted text.
    pub start: usize,
    pub end: usize,
    pub score: f32,
    /// The text as shown (sanitised).
    pub text: String,
}

/// A `##begin_quote## ... ##end_quote##` span of the reply, checked against the passages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteCitation {
    pub quote: String,
    /// The document number the reasoning names just before the quote (`Document [2] says`).
    pub cited: Option<u32>,
    /// Whether the quote occurs (whitespace normalised) in a passage of the prompt.
    pub found: bool,
    /// The passage it occurs in: the cited one when it holds the quote, else the first.
    pub passage: Option<u32>,
    pub chunk_id: Option<i64>,
    pub source: Option<String>,
    pub page: Option<u32>,
    /// Byte range of that chunk in its document.
    pub start: Option<usize>,
    pub end: Option<usize>,
}

/// A reply read back: see [`parse_output`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedOutput {
    /// The text after the last non-empty `<ANSWER>:`, or the whole reply when there is none.
    pub answer: String,
    /// The text before the first `<ANSWER>:` without its `##Reason:` label (empty without one).
    pub reasoning: String,
    /// How many `<ANSWER>:` markers the reply holds (0: the answer is the whole reply).
    pub markers: usize,
}

/// What [`answer`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftAnswer {
    pub question: String,
    pub prompt_format: String,
    /// What the adapter's targets held, so how the reply was read.
    pub answer_format: AnswerFormat,
    /// The final answer, or the refusal phrase when abstaining.
    pub answer: String,
    pub reasoning: String,
    /// False when the reply had no `<ANSWER>:` and `answer` is the whole reply.
    pub answer_marker: bool,
    pub markers: usize,
    /// The model refused (or there was nothing to show it).
    pub abstained: bool,
    pub citations: Vec<QuoteCitation>,
    pub passages: Vec<ShownPassage>,
    /// Retrieved passages left out because the prompt would not fit the context.
    pub dropped_passages: usize,
    /// The prompt (system and user messages) as generated from.
    pub messages: Vec<ChatMessage>,
    /// The reply as generated (trimmed).
    pub model_output: String,
    pub usage: Usage,
    /// `None` when the model was not asked (no passage retrieved).
    pub finish_reason: Option<FinishReason>,
    /// The hits behind `passages`, as retrieved (not serialised: `passages` shows them).
    #[serde(skip)]
    pub hits: Vec<Hit>,
}

impl RaftAnswer {
    /// The answer as a grounded answer of `ragtune-answer`, so RAFT is scored with the same
    /// metrics as the other approaches: the final answer is what is scored, each quote is a
    /// citation of the passage that holds it (`quote_not_found` when none does), and a refusal
    /// is an abstention. `total_ms` is the time the question took.
    pub fn to_answer(&self, total_ms: f64) -> Answer {
        let passages: Vec<Passage> = self
            .hits
            .iter()
            .enumerate()
            .map(|(i, hit)| Passage {
                number: Some(i as u32 + 1),
                rank: i as u32 + 1,
                fit: PassageFit::Full,
                hit: hit.clone(),
                core: None,
                chunks: Vec::new(),
            })
            .collect();
        let citations: Vec<Citation> = self
            .citations
            .iter()
            .map(|c| Citation {
                number: c.passage.or(c.cited).unwrap_or(0),
                valid: c.found,
                status: if c.found {
                    CitationStatus::Ok
                } else {
                    CitationStatus::QuoteNotFound
                },
                in_prompt: c.passage.is_some(),
                quote_found: Some(c.found),
                supported: c.found,
                claim: c.quote.clone(),
                failure: (!c.found).then(|| CitationFailure::QuoteNotFound {
                    quote: c.quote.clone(),
                }),
                chunk: c.chunk_id.map(|chunk_id| CitedChunk {
                    chunk_id,
                    source: c.source.clone().unwrap_or_default(),
                    page: c.page,
                    heading_path: Vec::new(),
                    start: c.start.unwrap_or_default(),
                    end: c.end.unwrap_or_default(),
                    score: self
                        .passages
                        .iter()
                        .find(|p| Some(p.number) == c.passage)
                        .map_or(0.0, |p| p.score),
                }),
            })
            .collect();
        let asked = self.finish_reason.is_some();
        let score = self.passages.iter().map(|p| p.score).reduce(f32::max);
        Answer {
            question: self.question.clone(),
            mode: Mode::Rag,
            answer: self.answer.clone(),
            answer_text: if self.abstained {
                String::new()
            } else {
                ragtune_answer::answer_text(&self.answer)
            },
            model_output: self.model_output.clone(),
            abstention: Abstention {
                abstained: self.abstained,
                reason: self.abstained.then_some(if asked {
                    AbstainReason::ModelRefused
                } else {
                    AbstainReason::NoPassages
                }),
                score,
                min_score: None,
                confidence: None,
                min_confidence: None,
                model_refused: asked && self.abstained,
            },
            failed_citations: citations.iter().filter(|c| !c.valid).count(),
            unsupported_citations: 0,
            citations,
            copied_references: Vec::new(),
            quotes: Vec::new(),
            passages,
            examples: Vec::new(),
            tokens: TokenReport {
                prompt: self.usage.prompt_tokens,
                completion: self.usage.completion_tokens,
                ..TokenReport::default()
            },
            timings: Timings {
                total_ms,
                generation_ms: total_ms,
                ..Timings::default()
            },
            finish_reason: self.finish_reason,
        }
    }
}

/// The RAFT prompt over retrieved hits: [`raft_prompt`] with each hit's source, page and text,
/// exactly as `build` shows knowledge-base chunks.
pub fn prompt_for_hits(question: &str, hits: &[Hit], format: AnswerFormat) -> Vec<ChatMessage> {
    let passages: Vec<RaftPassage<'_>> = hits
        .iter()
        .map(|h| RaftPassage {
            source: &h.source,
            page: h.page,
            text: &h.text,
        })
        .collect();
    raft_prompt(question, &passages, format)
}

/// Answers `question` the RAFT way: the top `options.top_k` hits of `retriever` (duplicates and
/// empty texts dropped, as `build` drops them), [`raft_prompt`], one generation, then
/// [`parse_output`] and [`check_quotes`]. Lowest-ranked passages are dropped while the prompt
/// and reply would not fit the generator's context.
pub fn answer(
    question: &str,
    retriever: &dyn Retriever,
    generator: &dyn Generator,
    options: &RaftOptions,
) -> Result<RaftAnswer> {
    if options.top_k == 0 {
        return Err(Error::Option {
            option: "--top-k",
            reason: "must be at least 1: a RAFT model answers from passages".into(),
        });
    }
    let mut query = Query::new(question, options.top_k, options.search);
    query.filter = options.filter.clone();
    let retrieved = retriever
        .retrieve(&query)
        .map_err(|source| Error::Retrieve {
            question: question.to_string(),
            source,
        })?;
    let mut seen = HashSet::new();
    let mut hits: Vec<Hit> = retrieved
        .into_iter()
        .filter(|h| {
            let text = sanitize(&h.text);
            !text.is_empty() && seen.insert(text)
        })
        .take(options.top_k)
        .collect();

    let mut out = RaftAnswer {
        question: question.to_string(),
        prompt_format: PROMPT_FORMAT.to_string(),
        answer_format: options.format,
        answer: RAG_REFUSAL.to_string(),
        reasoning: String::new(),
        answer_marker: false,
        markers: 0,
        abstained: true,
        citations: Vec::new(),
        passages: Vec::new(),
        dropped_passages: 0,
        messages: Vec::new(),
        model_output: String::new(),
        usage: Usage::default(),
        finish_reason: None,
        hits: Vec::new(),
    };
    if hits.is_empty() {
        return Ok(out);
    }
    let mut messages = prompt_for_hits(question, &hits, options.format);
    let context = generator.context_length();
    while hits.len() > 1 {
        let prompt = Prompt::Chat(messages.clone());
        let tokens = generator
            .count_prompt_tokens(&prompt)
            .map_err(Error::Generate)?;
        if tokens.saturating_add(options.max_tokens) <= context {
            break;
        }
        hits.pop();
        out.dropped_passages += 1;
        messages = prompt_for_hits(question, &hits, options.format);
    }
    let request = GenerationRequest::new(Prompt::Chat(messages.clone()))
        .with_max_tokens(options.max_tokens)
        .with_sampling(options.sampling.clone());
    let generation = generator
        .generate(&request, &mut |_| ControlFlow::Continue(()))
        .map_err(Error::Generate)?;

    out.passages = hits
        .iter()
        .enumerate()
        .map(|(i, h)| ShownPassage {
            number: i as u32 + 1,
            chunk_id: h.chunk_id,
            source: h.source.clone(),
            page: h.page,
            start: h.start,
            end: h.end,
            score: h.score,
            text: sanitize(&h.text),
        })
        .collect();
    out.model_output = generation.text.trim().to_string();
    let parsed = parse_output(&out.model_output);
    out.citations = check_quotes(&out.model_output, &out.passages);
    out.abstained = raft_template(options.format).is_refusal(&parsed.answer);
    out.answer = if out.abstained {
        RAG_REFUSAL.to_string()
    } else {
        parsed.answer
    };
    out.reasoning = parsed.reasoning;
    out.answer_marker = parsed.markers > 0;
    out.markers = parsed.markers;
    out.messages = messages;
    out.usage = generation.usage;
    out.finish_reason = Some(generation.finish_reason);
    out.hits = hits;
    Ok(out)
}

/// Reads a chain-of-thought reply: the answer is the text after the last `<ANSWER>:` that is
/// followed by any text (the final one, when the model repeats the marker), the reasoning the
/// text before the first. Without a marker the whole reply is the answer (and `markers` is 0).
pub fn parse_output(text: &str) -> ParsedOutput {
    let text = text.trim();
    let pieces: Vec<&str> = text.split(ANSWER_MARKER).collect();
    let markers = pieces.len() - 1;
    if markers == 0 {
        return ParsedOutput {
            answer: text.to_string(),
            reasoning: String::new(),
            markers,
        };
    }
    let answer = pieces[1..]
        .iter()
        .rev()
        .map(|p| p.trim())
        .find(|p| !p.is_empty())
        .unwrap_or_default();
    let reasoning = pieces[0].trim();
    let reasoning = reasoning
        .strip_prefix("##Reason:")
        .unwrap_or(reasoning)
        .trim();
    ParsedOutput {
        answer: answer.to_string(),
        reasoning: reasoning.to_string(),
        markers,
    }
}

/// Every closed `##begin_quote## ... ##end_quote##` span of `reply`, checked: the quote,
/// whitespace normalised (and sanitised as the passages are), must occur in a passage. The
/// passage named just before the quote (`[n]`) is preferred when it holds it.
pub fn check_quotes(reply: &str, passages: &[ShownPassage]) -> Vec<QuoteCitation> {
    let mut out = Vec::new();
    let mut rest = reply;
    while let Some(open) = rest.find(BEGIN_QUOTE) {
        let cited = last_number(&rest[..open]);
        let after = &rest[open + BEGIN_QUOTE.len()..];
        let Some(close) = after.find(END_QUOTE) else {
            break;
        };
        let quote = after[..close].trim();
        rest = &after[close + END_QUOTE.len()..];
        let needle = sanitize(quote);
        let holds = |p: &&ShownPassage| !needle.is_empty() && sanitize(&p.text).contains(&needle);
        let at = cited
            .and_then(|n| passages.iter().find(|p| p.number == n))
            .filter(holds)
            .or_else(|| passages.iter().find(holds));
        out.push(QuoteCitation {
            quote: quote.to_string(),
            cited,
            found: at.is_some(),
            passage: at.map(|p| p.number),
            chunk_id: at.map(|p| p.chunk_id),
            source: at.map(|p| p.source.clone()),
            page: at.and_then(|p| p.page),
            start: at.map(|p| p.start),
            end: at.map(|p| p.end),
        });
    }
    out
}

/// The last `[n]` in `text`.
fn last_number(text: &str) -> Option<u32> {
    let mut found = None;
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find(']')
            && let Ok(n) = after[..close].trim().parse::<u32>()
        {
            found = Some(n);
        }
        rest = after;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{abstain_answer, cot_answer};

    fn passage(number: u32, source: &str, text: &str) -> ShownPassage {
        ShownPassage {
            number,
            chunk_id: 100 + number as i64,
            source: source.into(),
            page: None,
            start: 0,
            end: text.len(),
            score: 1.0,
            text: text.into(),
        }
    }

    fn shown() -> Vec<ShownPassage> {
        vec![
            passage(
                1,
                "coffee.md",
                "The espresso machine is on the third floor.",
            ),
            passage(
                2,
                "keys.md",
                "The signing keys are rotated every ninety days.",
            ),
        ]
    }

    #[test]
    fn the_answer_follows_the_marker_and_the_reasoning_precedes_it() {
        let reply = cot_answer(
            2,
            "The signing keys are rotated every ninety days.",
            "ninety days",
        );
        let p = parse_output(&reply);
        assert_eq!(p.answer, "ninety days");
        assert_eq!(p.markers, 1);
        assert!(
            p.reasoning.starts_with("Document [2] says ##begin_quote##"),
            "{}",
            p.reasoning
        );
    }

    #[test]
    fn without_a_marker_the_whole_reply_is_the_answer() {
        let p = parse_output("  every ninety days \n");
        assert_eq!(p.answer, "every ninety days");
        assert_eq!(p.markers, 0);
        assert_eq!(p.reasoning, "");
    }

    #[test]
    fn with_several_markers_the_last_non_empty_answer_counts() {
        let p = parse_output("##Reason: x. <ANSWER>: ninety <ANSWER>: ninety days");
        assert_eq!((p.answer.as_str(), p.markers), ("ninety days", 2));
        assert_eq!(p.reasoning, "x.");
        let p = parse_output("##Reason: x. <ANSWER>: ninety days <ANSWER>:  ");
        assert_eq!((p.answer.as_str(), p.markers), ("ninety days", 2));
        let p = parse_output("<ANSWER>:");
        assert_eq!((p.answer.as_str(), p.markers), ("", 1));
    }

    #[test]
    fn the_build_refusal_target_reads_as_a_refusal() {
        for f in [AnswerFormat::Cot, AnswerFormat::Answer] {
            let p = parse_output(&abstain_answer(f));
            assert!(raft_template(f).is_refusal(&p.answer), "{p:?}");
            assert!(!raft_template(f).is_refusal("every ninety days"));
        }
    }

    #[test]
    fn a_quote_is_found_in_its_passage() {
        let c = check_quotes(
            "Document [2] says ##begin_quote## The signing keys are rotated every ninety days. \
             ##end_quote## <ANSWER>: ninety days",
            &shown(),
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].found);
        assert_eq!((c[0].cited, c[0].passage), (Some(2), Some(2)));
        assert_eq!(c[0].source.as_deref(), Some("keys.md"));
    }

    #[test]
    fn a_quote_matches_after_whitespace_normalisation() {
        let c = check_quotes(
            "##begin_quote##The signing\n keys   are rotated\tevery ninety days.##end_quote##",
            &shown(),
        );
        assert!(c[0].found, "{c:?}");
        assert_eq!((c[0].cited, c[0].passage), (None, Some(2)));
    }

    #[test]
    fn an_invented_or_empty_quote_is_not_found() {
        let c = check_quotes(
            "[1] ##begin_quote## The keys are rotated daily. ##end_quote## and \
             ##begin_quote## ##end_quote## and ##begin_quote## unclosed",
            &shown(),
        );
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| !c.found && c.passage.is_none()), "{c:?}");
        assert_eq!(c[0].cited, Some(1));
    }

    #[test]
    fn a_quote_from_another_passage_than_the_cited_one_names_where_it_is() {
        let c = check_quotes(
            "Document [1] says ##begin_quote## The signing keys are rotated every ninety days. \
             ##end_quote##",
            &shown(),
        );
        assert!(c[0].found);
        assert_eq!((c[0].cited, c[0].passage), (Some(1), Some(2)));
    }
}
