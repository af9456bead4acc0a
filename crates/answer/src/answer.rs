//! Asking: retrieve, fit the prompt into its budget, generate, check the citations, decide on
//! abstention. The work is split in three so an evaluation can batch the middle step:
//! [`Answerer::prepare`] (retrieval and prompt), one [`Answerer::generate_batch`], and
//! [`Answerer::finish`] (checks). [`Answerer::ask`] does the three for one question.

use crate::abstain::{Abstention, AbstentionPolicy};
use crate::budget::{PassageFit, fit_passages};
use crate::citation::{
    CitationFailure, CitationStatus, QuoteCheck, check_citations, strip_citations,
};
use crate::error::{Error, Result};
use crate::expand::{Context, Expanded, Span, expand};
use crate::fewshot::{ExamplePool, SelectedExample};
use crate::sanitize::sanitize_passage;
use crate::template::{PromptExample, PromptPassage, PromptTemplate};
use ragtune_core::{
    ChatMessage, Filter, FinishReason, Generation, GenerationRequest, Generator, Hit, Prompt,
    Query, Retriever, SamplingParams, SearchMode, TokenSink,
};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// How a question is answered. Every mode returns the same [`Answer`] shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Retrieve passages and answer from them, citing them.
    #[default]
    Rag,
    /// The question alone: what the model knows.
    ClosedBook,
    /// The question after the k most similar solved examples; no retrieval.
    FewShot,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Rag, Mode::ClosedBook, Mode::FewShot];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rag => "rag",
            Mode::ClosedBook => "closed-book",
            Mode::FewShot => "few-shot",
        }
    }

    /// The built-in template of the mode.
    pub fn template(self) -> PromptTemplate {
        match self {
            Mode::Rag => PromptTemplate::rag(),
            Mode::ClosedBook => PromptTemplate::closed_book(),
            Mode::FewShot => PromptTemplate::few_shot(),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?}; use rag, closed-book or few-shot"))
    }
}

/// Everything that shapes an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AskOptions {
    pub mode: Mode,
    /// Passages to retrieve (RAG). Two by default: on SQuAD with Qwen2.5 0.5B, two passages
    /// gave the best exact match (fewer distractors for a small model, little recall lost).
    pub top_k: usize,
    pub search: SearchMode,
    pub filter: Filter,
    /// Examples to show (few-shot).
    pub examples: usize,
    /// Most tokens of the answer.
    pub max_tokens: u32,
    /// Most tokens of the prompt. Never more than the generator's context length minus
    /// `max_tokens`, which is also the default.
    pub prompt_budget: Option<u32>,
    /// A passage that does not fit whole is trimmed when at least this many of its characters
    /// fit; otherwise it is dropped.
    pub min_trim_chars: usize,
    pub sampling: SamplingParams,
    /// Generation also stops before these strings.
    pub stop: Vec<String>,
    pub abstention: AbstentionPolicy,
    /// The prompt; `None` takes the mode's built-in template.
    pub template: Option<PromptTemplate>,
    /// Context expansion (RAG): each passage in the prompt grows by the neighbouring chunks
    /// of its document up to this many tokens (the generator's count of the passage text),
    /// within the prompt budget; see [`crate::expand`]. 0 = off: the retrieved chunks alone.
    pub window: u32,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Rag,
            top_k: 2,
            search: SearchMode::Hybrid,
            filter: Filter::default(),
            examples: 3,
            max_tokens: 64,
            prompt_budget: None,
            min_trim_chars: 200,
            sampling: SamplingParams::GREEDY,
            stop: Vec::new(),
            abstention: AbstentionPolicy::default(),
            template: None,
            window: 0,
        }
    }
}

impl AskOptions {
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
}

/// A retrieved chunk and what became of it in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Its number in the prompt (`[1]`, `[2]`...); `None` when it did not fit.
    pub number: Option<u32>,
    /// 1-based position in the retrieval ranking.
    pub rank: u32,
    #[serde(flatten)]
    pub fit: PassageFit,
    /// The chunk with its score and ranks. When context expansion widened the passage that
    /// shows it (or merged it into another hit's), the span, text, page and headings are the
    /// passage's (the chunk id, score and ranks stay the retrieved chunk's), and `core` is the
    /// retrieved chunk's own span.
    pub hit: Hit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<Span>,
    /// The chunks a widened passage is made of, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<i64>,
}

/// Where a citation points: a chunk, and the span of its document it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitedChunk {
    pub chunk_id: i64,
    pub source: String,
    pub page: Option<u32>,
    pub heading_path: Vec<String>,
    /// Byte range of the chunk in its document's extracted text.
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// A citation number of the answer, checked. Each check is reported on its own: `in_prompt`,
/// `quote_found`, `supported`; `status` names the first that fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub number: u32,
    /// The number names a passage of the prompt and every quote next to it was found there
    /// (`failure` says why not). Valid is not supported: see `supported`.
    pub valid: bool,
    /// `ok` only when every check passed; else `unsupported`, `quote_not_found` or
    /// `not_in_prompt`.
    pub status: CitationStatus,
    /// The number names a passage of the prompt.
    pub in_prompt: bool,
    /// `None`: no quote next to the citation; else whether every quote was found in a passage
    /// cited with it.
    pub quote_found: Option<bool>,
    /// The passage holds what the answer says next to the citation (most of its content words,
    /// every number; see [`crate::support`]).
    pub supported: bool,
    /// The text of the answer checked for support: the first the passage does not support,
    /// else the first.
    pub claim: String,
    /// Why it is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<CitationFailure>,
    /// The chunk it names; `None` when the number was not in the prompt.
    pub chunk: Option<CitedChunk>,
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenReport {
    /// Prompt tokens, chat template included.
    pub prompt: u32,
    pub completion: u32,
    /// The most the prompt could take.
    pub prompt_budget: u32,
    /// What the passages (RAG) or examples (few-shot) took: the prompt minus the prompt without
    /// them.
    pub context_used: u32,
    /// Room there was for them: the prompt budget minus the prompt without them.
    pub context_budget: u32,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Retrieval (RAG), or embedding the question and choosing examples (few-shot).
    pub retrieval_ms: f64,
    /// Rendering the prompt and fitting it into the budget (token counting).
    pub prompt_ms: f64,
    /// Generation: wall clock for one question; in a batch, the time the generator reports for
    /// this request (prompt evaluation plus decoding).
    pub generation_ms: f64,
    pub total_ms: f64,
}

/// A checked, grounded answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    pub mode: Mode,
    /// What to show: the model's reply, or the refusal phrase when abstaining.
    pub answer: String,
    /// The reply without citation markers and without a leading "Answer:" / "The answer is",
    /// what QA metrics score; empty when abstaining.
    pub answer_text: String,
    /// The model's reply as generated (trimmed); empty when the model was not asked.
    pub model_output: String,
    pub abstention: Abstention,
    /// The cited numbers of `model_output`, in order of first appearance.
    pub citations: Vec<Citation>,
    /// Citations that are not valid (not in the prompt, or a quote not found).
    pub failed_citations: usize,
    /// Valid citations whose passage does not support what the answer says next to them.
    pub unsupported_citations: usize,
    /// Bracketed markers of `model_output` that repeat a reference of the documents' own text
    /// (`[2, 7, 8]` in a paper, shown in the prompt as `(ref. 2, 7, 8)`) and name no passage of
    /// the prompt: not counted as citations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copied_references: Vec<String>,
    /// Quotations in `model_output` and where they were found.
    pub quotes: Vec<QuoteCheck>,
    /// Every retrieved chunk, in rank order, with its number in the prompt.
    pub passages: Vec<Passage>,
    /// Few-shot examples in the prompt, most similar first.
    pub examples: Vec<SelectedExample>,
    pub tokens: TokenReport,
    pub timings: Timings,
    /// `None` when the model was not asked.
    pub finish_reason: Option<FinishReason>,
}

/// A question ready for generation: retrieval done, prompt built and fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedQuestion {
    pub question: String,
    pub mode: Mode,
    /// What to generate; `None` when there is nothing to ask (RAG found no passage).
    pub request: Option<GenerationRequest>,
    pub passages: Vec<Passage>,
    pub examples: Vec<SelectedExample>,
    pub tokens: TokenReport,
    pub retrieval_ms: f64,
    pub prompt_ms: f64,
    /// The text of passage `[1]`, `[2]`... as the prompt shows it.
    pub shown: Vec<String>,
    /// The best retrieval score in the prompt.
    pub score: Option<f32>,
}

impl PreparedQuestion {
    /// The rendered chat messages, when there is a request.
    pub fn messages(&self) -> Option<&[ChatMessage]> {
        match self.request.as_ref().map(|r| &r.prompt) {
            Some(Prompt::Chat(m)) => Some(m),
            _ => None,
        }
    }
}

/// Answers questions through the core seams: a [`Generator`], and a [`Retriever`] (RAG) or an
/// [`ExamplePool`] (few-shot).
pub struct Answerer<'a> {
    generator: &'a dyn Generator,
    retriever: Option<&'a dyn Retriever>,
    pool: Option<&'a ExamplePool<'a>>,
    options: AskOptions,
    template: PromptTemplate,
}

impl<'a> Answerer<'a> {
    pub fn new(generator: &'a dyn Generator, options: AskOptions) -> Self {
        let template = options
            .template
            .clone()
            .unwrap_or_else(|| options.mode.template());
        Self {
            generator,
            retriever: None,
            pool: None,
            options,
            template,
        }
    }

    /// Where RAG mode finds passages.
    pub fn with_retriever(mut self, retriever: &'a dyn Retriever) -> Self {
        self.retriever = Some(retriever);
        self
    }

    /// Where few-shot mode finds examples.
    pub fn with_examples(mut self, pool: &'a ExamplePool<'a>) -> Self {
        self.pool = Some(pool);
        self
    }

    pub fn options(&self) -> &AskOptions {
        &self.options
    }

    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    /// Answers one question.
    pub fn ask(&self, question: &str) -> Result<Answer> {
        self.ask_streaming(question, &mut |_| ControlFlow::Continue(()))
    }

    /// Answers one question, handing the model's text to `sink` as it is generated. The sink
    /// sees the raw reply; the returned answer may replace it with the refusal (abstention).
    pub fn ask_streaming(&self, question: &str, sink: TokenSink<'_>) -> Result<Answer> {
        let start = Instant::now();
        let prepared = self.prepare(question)?;
        let (generation, generation_ms) = match &prepared.request {
            Some(request) => {
                let t = Instant::now();
                let g =
                    self.generator
                        .generate(request, sink)
                        .map_err(|source| Error::Generate {
                            question: question.to_string(),
                            source,
                        })?;
                (Some(g), ms(t.elapsed()))
            }
            None => (None, 0.0),
        };
        let mut answer = self.finish_with(prepared, generation, generation_ms);
        answer.timings.total_ms = ms(start.elapsed());
        Ok(answer)
    }

    /// Answers many questions with one batched generation.
    pub fn ask_batch(&self, questions: &[&str]) -> Result<Vec<Answer>> {
        let prepared = self.prepare_batch(questions)?;
        let generations = self.generate_batch(&prepared)?;
        Ok(prepared
            .into_iter()
            .zip(generations)
            .map(|(p, g)| self.finish(p, g))
            .collect())
    }

    /// Step (a) for one question: retrieval (or example choice) and the fitted prompt.
    pub fn prepare(&self, question: &str) -> Result<PreparedQuestion> {
        let start = Instant::now();
        let mut hits = Vec::new();
        let mut examples = Vec::new();
        match self.options.mode {
            Mode::Rag => hits = self.retrieve(question)?,
            Mode::FewShot => examples = self.pool()?.select(question, self.options.examples)?,
            Mode::ClosedBook => {}
        }
        self.build(question, hits, examples, ms(start.elapsed()))
    }

    /// Step (a) for many questions (few-shot embeds them in one batch).
    pub fn prepare_batch(&self, questions: &[&str]) -> Result<Vec<PreparedQuestion>> {
        if self.options.mode != Mode::FewShot {
            return questions.iter().map(|q| self.prepare(q)).collect();
        }
        let start = Instant::now();
        let selected = self.pool()?.select_many(questions, self.options.examples)?;
        let each = ms(start.elapsed()) / questions.len().max(1) as f64;
        questions
            .iter()
            .zip(selected)
            .map(|(q, examples)| self.build(q, Vec::new(), examples, each))
            .collect()
    }

    /// Step (b): all requests in one [`Generator::generate_batch`]. One entry per prepared
    /// question, `None` where there was nothing to ask.
    pub fn generate_batch(&self, prepared: &[PreparedQuestion]) -> Result<Vec<Option<Generation>>> {
        let requests: Vec<GenerationRequest> =
            prepared.iter().filter_map(|p| p.request.clone()).collect();
        if requests.is_empty() {
            return Ok(vec![None; prepared.len()]);
        }
        let generations =
            self.generator
                .generate_batch(&requests)
                .map_err(|source| Error::GenerateBatch {
                    requests: requests.len(),
                    source,
                })?;
        if generations.len() != requests.len() {
            return Err(Error::GenerateBatch {
                requests: requests.len(),
                source: ragtune_core::GeneratorError::Permanent(format!(
                    "the generator returned {} results",
                    generations.len()
                )),
            });
        }
        let mut generations = generations.into_iter();
        Ok(prepared
            .iter()
            .map(|p| p.request.as_ref().and_then(|_| generations.next()))
            .collect())
    }

    /// Step (c): checks citations and decides on abstention. Generation time is what the
    /// generator reports for the request.
    pub fn finish(&self, prepared: PreparedQuestion, generation: Option<Generation>) -> Answer {
        let generation_ms = generation
            .as_ref()
            .map_or(0.0, |g| ms(g.prompt_time + g.decode_time));
        self.finish_with(prepared, generation, generation_ms)
    }

    fn finish_with(
        &self,
        prepared: PreparedQuestion,
        generation: Option<Generation>,
        generation_ms: f64,
    ) -> Answer {
        let start = Instant::now();
        let confidence = generation
            .as_ref()
            .and_then(Generation::mean_token_probability);
        let (model_output, finish_reason, usage) = match generation {
            Some(g) => (g.text.trim().to_string(), Some(g.finish_reason), g.usage),
            None => (String::new(), None, Default::default()),
        };
        let refused = finish_reason.is_some() && self.template.is_refusal(&model_output);
        let shown: Vec<&str> = prepared.shown.iter().map(String::as_str).collect();
        let check = check_citations(&model_output, &shown);
        let copied_references = check
            .references
            .iter()
            .map(|m| model_output[m.span.clone()].to_string())
            .collect();
        let abstention = self.options.abstention.decide(
            prepared.mode == Mode::Rag,
            prepared.score,
            confidence,
            refused,
        );
        let citations: Vec<Citation> = check
            .numbers
            .into_iter()
            .map(|c| Citation {
                number: c.number,
                valid: c.failure.is_none(),
                status: c.status(),
                in_prompt: c.in_prompt(),
                quote_found: c.quote_found,
                supported: c.supported,
                claim: c.claim,
                chunk: prepared
                    .passages
                    .iter()
                    .find(|p| p.number == Some(c.number))
                    .map(|p| cited(&p.hit)),
                failure: c.failure,
            })
            .collect();
        let (answer, answer_text) = if abstention.abstained {
            (self.template.refusal.to_string(), String::new())
        } else {
            (model_output.clone(), answer_text(&model_output))
        };
        let mut tokens = prepared.tokens;
        if usage.prompt_tokens > 0 {
            tokens.prompt = usage.prompt_tokens;
        }
        tokens.completion = usage.completion_tokens;
        let mut timings = Timings {
            retrieval_ms: prepared.retrieval_ms,
            prompt_ms: prepared.prompt_ms,
            generation_ms,
            total_ms: 0.0,
        };
        timings.total_ms =
            timings.retrieval_ms + timings.prompt_ms + timings.generation_ms + ms(start.elapsed());
        Answer {
            question: prepared.question,
            mode: prepared.mode,
            answer,
            answer_text,
            model_output,
            abstention,
            failed_citations: citations.iter().filter(|c| !c.valid).count(),
            unsupported_citations: citations
                .iter()
                .filter(|c| c.status == CitationStatus::Unsupported)
                .count(),
            citations,
            copied_references,
            quotes: check.quotes,
            passages: prepared.passages,
            examples: prepared.examples,
            tokens,
            timings,
            finish_reason,
        }
    }

    fn retrieve(&self, question: &str) -> Result<Vec<Hit>> {
        let retriever = self.retriever.ok_or_else(|| {
            Error::Config(
                "RAG mode needs a retriever (a knowledge base); build one, or ask in \
                 closed-book mode"
                    .into(),
            )
        })?;
        let mut query = Query::new(question, self.options.top_k, self.options.search);
        query.filter = self.options.filter.clone();
        retriever
            .retrieve(&query)
            .map_err(|source| Error::Retrieve {
                question: question.to_string(),
                source,
            })
    }

    fn pool(&self) -> Result<&ExamplePool<'a>> {
        self.pool.ok_or_else(|| {
            Error::Config(
                "few-shot mode needs examples (a JSONL file of question/answer pairs)".into(),
            )
        })
    }

    /// The most tokens the prompt may take.
    fn prompt_limit(&self) -> Result<u32> {
        let context = self.generator.context_length();
        if context <= self.options.max_tokens {
            return Err(Error::Config(format!(
                "the answer may take {} tokens but the context holds only {context}, which \
                 leaves no room for the prompt; lower max tokens or raise the context length",
                self.options.max_tokens
            )));
        }
        let room = context - self.options.max_tokens;
        Ok(self.options.prompt_budget.map_or(room, |b| b.min(room)))
    }

    fn count(&self, question: &str, messages: Vec<ChatMessage>) -> Result<u32> {
        self.generator
            .count_prompt_tokens(&Prompt::Chat(messages))
            .map_err(|source| Error::Generate {
                question: question.to_string(),
                source,
            })
    }

    fn build(
        &self,
        question: &str,
        hits: Vec<Hit>,
        mut examples: Vec<SelectedExample>,
        retrieval_ms: f64,
    ) -> Result<PreparedQuestion> {
        let start = Instant::now();
        let limit = self.prompt_limit()?;
        let t = &self.template;
        let render = |included: &[(&Hit, &str)], examples: &[SelectedExample]| {
            let passages: Vec<PromptPassage<'_>> = included
                .iter()
                .enumerate()
                .map(|(pos, &(hit, text))| PromptPassage {
                    number: pos as u32 + 1,
                    source: &hit.source,
                    page: hit.page,
                    text,
                })
                .collect();
            // Most similar example last, nearest the question.
            let shots: Vec<PromptExample<'_>> = examples
                .iter()
                .rev()
                .map(|e| PromptExample {
                    question: &e.question,
                    answer: &e.answer,
                })
                .collect();
            t.render(question, &passages, &shots)
        };
        let empty = self.count(question, render(&[], &[]))?;
        if empty > limit {
            return Err(Error::PromptTooLong {
                question: question.to_string(),
                needed: empty,
                budget: limit,
            });
        }
        let candidates: Vec<String> = hits.iter().map(|h| sanitize_passage(&h.text)).collect();
        let fitted = fit_passages(
            &candidates,
            limit,
            empty,
            self.options.min_trim_chars,
            &mut |included| {
                let included: Vec<(&Hit, &str)> =
                    included.iter().map(|&(i, t)| (&hits[i], t)).collect();
                self.count(question, render(&included, &[]))
            },
        )?;
        let n = hits.len();
        let fitted = match self.retriever {
            Some(retriever) if self.options.mode == Mode::Rag && self.options.window > 0 => expand(
                hits,
                fitted.fits,
                fitted.included,
                fitted.prompt_tokens,
                &mut Context {
                    window: self.options.window,
                    limit,
                    neighbours: &mut |hit, before, after| {
                        retriever
                            .neighbours(hit, before, after)
                            .map_err(|source| Error::Retrieve {
                                question: question.to_string(),
                                source,
                            })
                    },
                    count_text: &mut |text| {
                        self.generator
                            .count_prompt_tokens(&Prompt::Text(text.to_string()))
                            .map_err(|source| Error::Generate {
                                question: question.to_string(),
                                source,
                            })
                    },
                    measure: &mut |passages| self.count(question, render(passages, &[])),
                },
            )?,
            _ => {
                let mut shown_in = vec![None; n];
                for (p, (i, _)) in fitted.included.iter().enumerate() {
                    shown_in[*i] = Some(p);
                }
                Expanded {
                    hits,
                    fits: fitted.fits,
                    shown_in,
                    core: vec![None; n],
                    chunks: vec![Vec::new(); n],
                    included: fitted.included,
                    prompt_tokens: fitted.prompt_tokens,
                }
            }
        };
        let shown_hits: Vec<(&Hit, &str)> = fitted
            .included
            .iter()
            .map(|(i, s)| (&fitted.hits[*i], s.as_str()))
            .collect();
        let mut prompt_tokens = fitted.prompt_tokens;
        while !examples.is_empty() {
            prompt_tokens = self.count(question, render(&shown_hits, &examples))?;
            if prompt_tokens <= limit {
                break;
            }
            // The least similar example goes first.
            examples.pop();
            prompt_tokens = fitted.prompt_tokens;
        }
        let messages = render(&shown_hits, &examples);
        let score = (0..n)
            .filter(|&i| fitted.shown_in[i].is_some())
            .map(|i| fitted.hits[i].score)
            .reduce(f32::max);
        let shown: Vec<String> = fitted.included.iter().map(|(_, s)| s.clone()).collect();
        let request = (self.options.mode != Mode::Rag || !shown.is_empty()).then(|| {
            let mut request = GenerationRequest::new(Prompt::Chat(messages));
            // The answer's token probabilities are the model's own confidence signal.
            request.logprobs = true;
            request
                .with_max_tokens(self.options.max_tokens)
                .with_sampling(self.options.sampling.clone())
                .with_stop(self.options.stop.iter().cloned())
        });
        let Expanded {
            hits: shown_as,
            fits,
            shown_in,
            core,
            chunks,
            ..
        } = fitted;
        let passages = shown_as
            .into_iter()
            .zip(core)
            .zip(chunks)
            .enumerate()
            .map(|(i, ((hit, core), chunks))| Passage {
                number: shown_in[i].map(|p| p as u32 + 1),
                rank: i as u32 + 1,
                fit: fits[i],
                hit,
                core,
                chunks,
            })
            .collect();
        Ok(PreparedQuestion {
            question: question.to_string(),
            mode: self.options.mode,
            request,
            passages,
            examples,
            tokens: TokenReport {
                prompt: prompt_tokens,
                completion: 0,
                prompt_budget: limit,
                context_used: prompt_tokens.saturating_sub(empty),
                context_budget: limit - empty,
            },
            retrieval_ms,
            prompt_ms: ms(start.elapsed()),
            shown,
            score,
        })
    }
}

/// Lead-ins small models put before the answer, and whether a space may follow them (else only
/// a colon).
const LEAD_INS: &[(&str, bool)] = &[
    ("the correct answer is", true),
    ("the answer is", true),
    ("answer", false),
];

/// The reply without citation markers and without a lead-in such as "The answer is:".
pub fn answer_text(reply: &str) -> String {
    let text = strip_citations(reply);
    for &(lead, space_ok) in LEAD_INS {
        let Some(head) = text.get(..lead.len()) else {
            continue;
        };
        let rest = &text[lead.len()..];
        let separated = rest.starts_with(':') || (space_ok && rest.starts_with(' '));
        if head.eq_ignore_ascii_case(lead) && separated {
            let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_whitespace());
            if !rest.is_empty() {
                return rest.to_string();
            }
        }
    }
    text
}

fn cited(hit: &Hit) -> CitedChunk {
    CitedChunk {
        chunk_id: hit.chunk_id,
        source: hit.source.clone(),
        page: hit.page,
        heading_path: hit.heading_path.clone(),
        start: hit.start,
        end: hit.end,
        score: hit.score,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::answer_text;

    #[test]
    fn lead_ins_and_citations_are_removed() {
        assert_eq!(answer_text("The answer is: 20% [2]"), "20%");
        assert_eq!(answer_text("the correct answer is Sky UK"), "Sky UK");
        assert_eq!(answer_text("Answer: phagosome [1]."), "phagosome.");
        assert_eq!(answer_text("Answers vary [1]"), "Answers vary");
        assert_eq!(answer_text("Answer:"), "Answer:");
        assert_eq!(answer_text("The answer is"), "The answer is");
        assert_eq!(answer_text("Denver Broncos"), "Denver Broncos");
    }
}
