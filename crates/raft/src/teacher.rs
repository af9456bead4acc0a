//! Questions written by a teacher model from the knowledge base's own chunks, for corpora that
//! come without question/answer pairs.
//!
//! The teacher (any [`Generator`]: a local GGUF or a model on another server) reads a seeded
//! sample of chunks and proposes, per chunk, questions with a short answer and the sentence that
//! supports it, copied from the chunk. Only what can be checked is kept: the quote must occur in
//! the chunk (whitespace aside), the answer in the quote, and the question must be new. The
//! chain-of-thought target is then assembled mechanically by [`crate::build`] from the verified
//! quote and answer (the quote is the question's `context`), since a long teacher-written
//! reasoning per question is too slow on a CPU.

use crate::error::{Error, Result};
use crate::oracle::KbChunk;
use ragtune_answer::eval::SplitMix64;
use ragtune_core::{ChatMessage, GenerationRequest, Generator, Prompt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// What to ask the teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSpec {
    /// Chunks to write questions about (a seeded sample; all when fewer).
    pub chunks: usize,
    /// Questions asked per chunk.
    pub per_chunk: usize,
    pub seed: u64,
    /// Chunks shorter than this (characters, as shown) have too little to ask about.
    pub min_chunk_chars: usize,
}

impl Default for TeacherSpec {
    fn default() -> Self {
        Self {
            chunks: 50,
            per_chunk: 3,
            seed: 0,
            min_chunk_chars: 200,
        }
    }
}

/// Why a proposed question was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A reply held no JSON object with a question (counted once per chunk).
    NoJson,
    /// The question, the answer or the quote is missing or empty.
    Incomplete,
    /// The quote does not occur in the chunk: the teacher paraphrased or made it up.
    QuoteNotInChunk,
    /// The quote is under 30 bytes: too little text to find its passage by.
    QuoteTooShort,
    /// The answer does not occur in the quote.
    AnswerNotInQuote,
    /// The answer is the whole quote or over 10 words: not a short answer.
    AnswerTooLong,
    /// The question already holds its answer ("What colour are the black ducks?" -> "black"):
    /// small teachers write these often, and they teach copying from the question.
    AnswerInQuestion,
    /// The question is about the passage itself ("What is the second sentence of the
    /// passage?"): asked of a whole knowledge base, it has no answer.
    AboutThePassage,
    /// The same question (case and spacing aside) was already kept.
    Duplicate,
}

impl DropReason {
    pub fn describe(self) -> &'static str {
        match self {
            DropReason::NoJson => "the reply held no question in JSON",
            DropReason::Incomplete => "the question, answer or quote was missing",
            DropReason::QuoteNotInChunk => "the quote is not in the passage",
            DropReason::QuoteTooShort => "the quote is under 30 bytes",
            DropReason::AnswerNotInQuote => "the answer is not in the quote",
            DropReason::AnswerTooLong => "the answer is the whole quote or over 10 words",
            DropReason::AnswerInQuestion => "the question holds its own answer",
            DropReason::AboutThePassage => "the question is about the passage, not its subject",
            DropReason::Duplicate => "the question was asked already",
        }
    }
}

/// A question the teacher wrote and the checks passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherQuestion {
    pub id: String,
    pub question: String,
    /// The answer, as the quote spells it.
    pub answer: String,
    /// The supporting sentence, as the chunk has it; `raft build` reads it as the context.
    pub context: String,
    pub source: String,
    pub chunk_id: i64,
}

/// What the teacher was asked, what it proposed and what was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherReport {
    pub chunks: usize,
    pub proposed: usize,
    pub kept: usize,
    pub dropped: BTreeMap<DropReason, usize>,
    pub teacher_seconds: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl TeacherReport {
    /// Kept questions per minute of teacher time.
    pub fn kept_per_minute(&self) -> f64 {
        self.kept as f64 * 60.0 / self.teacher_seconds.max(1e-9)
    }
}

/// A worked exchange the teacher sees first: small models copy a shown format far more
/// reliably than a described one (as the RAG prompt's demonstrations showed).
const DEMO_PASSAGE: &str = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de \
    Mars in Paris. It was designed by the company of engineer Gustave Eiffel and built from 1887 \
    to 1889 as the centerpiece of the 1889 World's Fair. The tower is 330 metres tall.";
const DEMO_REPLY: &str = r#"{"question": "Whose company designed the Eiffel Tower?", "answer": "Gustave Eiffel", "quote": "It was designed by the company of engineer Gustave Eiffel and built from 1887 to 1889 as the centerpiece of the 1889 World's Fair."}
{"question": "How tall is the Eiffel Tower?", "answer": "330 metres", "quote": "The tower is 330 metres tall."}
{"question": "Where in Paris is the Eiffel Tower?", "answer": "the Champ de Mars", "quote": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris."}"#;

fn teacher_request(passage: &str, per_chunk: usize) -> String {
    format!(
        "Passage:\n{passage}\n\nWrite {per_chunk} different questions that this passage \
         answers. For each, give a short answer of a few words copied from the passage, and the \
         sentence of the passage that contains the answer, copied exactly. Reply with one JSON \
         object per line."
    )
}

/// The teacher's instructions for one chunk: a system message, one worked exchange, the chunk.
pub fn teacher_prompt(chunk: &str, per_chunk: usize) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You write exam questions about a passage. Every question must be answerable from \
             the passage alone. Reply with JSON lines only: {\"question\": ..., \"answer\": \
             ..., \"quote\": ...}.",
        ),
        ChatMessage::user(teacher_request(DEMO_PASSAGE, 3)),
        ChatMessage::assistant(DEMO_REPLY),
        ChatMessage::user(teacher_request(chunk, per_chunk)),
    ]
}

/// Asks `teacher` for questions about a seeded sample of `chunks` and keeps those that pass
/// the checks, in sample order.
pub fn write_questions(
    spec: &TeacherSpec,
    chunks: &[KbChunk],
    teacher: &dyn Generator,
) -> Result<(Vec<TeacherQuestion>, TeacherReport)> {
    if spec.chunks == 0 || spec.per_chunk == 0 {
        return Err(Error::Option {
            option: if spec.chunks == 0 {
                "--chunks"
            } else {
                "--per-chunk"
            },
            reason: "must be at least 1".into(),
        });
    }
    let mut pool: Vec<&KbChunk> = chunks
        .iter()
        .filter(|c| c.text.chars().count() >= spec.min_chunk_chars)
        .collect();
    SplitMix64::new(spec.seed).shuffle(&mut pool);
    pool.truncate(spec.chunks);
    let requests: Vec<GenerationRequest> = pool
        .iter()
        .map(|c| {
            GenerationRequest::new(Prompt::Chat(teacher_prompt(&c.text, spec.per_chunk)))
                .with_max_tokens(100 * spec.per_chunk as u32)
        })
        .collect();
    let started = Instant::now();
    let replies = teacher.generate_batch(&requests).map_err(Error::Generate)?;
    let mut report = TeacherReport {
        chunks: pool.len(),
        proposed: 0,
        kept: 0,
        dropped: BTreeMap::new(),
        teacher_seconds: started.elapsed().as_secs_f64(),
        prompt_tokens: replies
            .iter()
            .map(|g| u64::from(g.usage.prompt_tokens))
            .sum(),
        completion_tokens: replies
            .iter()
            .map(|g| u64::from(g.usage.completion_tokens))
            .sum(),
    };
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for (chunk, reply) in pool.iter().zip(&replies) {
        let proposals = json_objects(&reply.text);
        if proposals.is_empty() {
            *report.dropped.entry(DropReason::NoJson).or_default() += 1;
            continue;
        }
        for proposal in proposals {
            report.proposed += 1;
            match check(&proposal, chunk) {
                Ok(q) if !seen.insert(normalise(&q.question)) => {
                    *report.dropped.entry(DropReason::Duplicate).or_default() += 1;
                }
                Ok(mut q) => {
                    q.id = format!("teacher-{}-{}", chunk.id, kept.len());
                    kept.push(q);
                }
                Err(reason) => *report.dropped.entry(reason).or_default() += 1,
            }
        }
    }
    report.kept = kept.len();
    Ok((kept, report))
}

/// The questions as question/answers JSONL (`raft build --questions`, `eval qa`).
pub fn to_jsonl(questions: &[TeacherQuestion]) -> String {
    let mut out = String::new();
    for q in questions {
        let line = json!({
            "id": q.id,
            "question": q.question,
            "answer": q.answer,
            "context": q.context,
            "source": q.source,
            "chunk_id": q.chunk_id,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn check(proposal: &Value, chunk: &KbChunk) -> std::result::Result<TeacherQuestion, DropReason> {
    let field = |k: &str| {
        proposal
            .get(k)
            .and_then(Value::as_str)
            .map(collapse)
            .filter(|s| !s.is_empty())
    };
    let (Some(question), Some(answer), Some(quote)) =
        (field("question"), field("answer"), field("quote"))
    else {
        return Err(DropReason::Incomplete);
    };
    // Chunks are shown with collapsed whitespace already; compare like with like.
    if !collapse(&chunk.text).contains(&quote) {
        return Err(DropReason::QuoteNotInChunk);
    }
    if quote.len() < 30 {
        return Err(DropReason::QuoteTooShort);
    }
    if answer.len() >= quote.len() || answer.split_whitespace().count() > 10 {
        return Err(DropReason::AnswerTooLong);
    }
    // The answer as the quote spells it (small teachers change case).
    let Some(at) = find_ignoring_case(&quote, &answer) else {
        return Err(DropReason::AnswerNotInQuote);
    };
    if holds_word(&question, &answer) {
        return Err(DropReason::AnswerInQuestion);
    }
    // The teacher is shown "Passage:"; a question that names it only makes sense beside it.
    if holds_word(&question, "passage") {
        return Err(DropReason::AboutThePassage);
    }
    Ok(TeacherQuestion {
        id: String::new(),
        question,
        answer: quote[at..at + answer.len()].to_owned(),
        context: quote,
        source: chunk.source.clone(),
        chunk_id: chunk.id,
    })
}

/// Where `needle` starts in `haystack`, ASCII case aside.
fn find_ignoring_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?)
        .find(|&i| haystack.is_char_boundary(i) && h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Whether `needle` occurs in `text` as whole words (case aside): "3" is not in "x3", but
/// "Föglö" is in "What does Föglö have?".
fn holds_word(text: &str, needle: &str) -> bool {
    let (text, needle) = (text.to_lowercase(), needle.to_lowercase());
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&needle).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + needle.len()..].chars().next())
    })
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn normalise(question: &str) -> String {
    collapse(&question.to_lowercase())
}

/// Every JSON object with a `question` in `text`: one per line, a list, or objects inside
/// prose or code fences, as small models write them.
fn json_objects(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) if v.get("question").is_some() => {
                out.push(v);
                i += stream.byte_offset();
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragtune_core::{Generation, GeneratorError, TokenSink, Usage};
    use std::time::Duration;

    const TEXT: &str = "The Broncos defeated the Panthers 24 to 10. The game was played at \
                        Levi's Stadium in Santa Clara on February 7, 2016. Von Miller was named \
                        the most valuable player of the game after two forced fumbles.";

    fn chunk(id: i64, text: &str) -> KbChunk {
        KbChunk {
            id,
            doc_id: 1,
            source: "nfl.md".into(),
            page: None,
            text: text.into(),
        }
    }

    /// Replies with a fixed text to every prompt.
    struct Scripted(String);

    impl Generator for Scripted {
        fn generate(
            &self,
            _: &GenerationRequest,
            _: TokenSink<'_>,
        ) -> std::result::Result<Generation, GeneratorError> {
            Ok(Generation {
                text: self.0.clone(),
                usage: Usage {
                    prompt_tokens: 100,
                    completion_tokens: 50,
                },
                finish_reason: ragtune_core::FinishReason::Stop,
                prompt_time: Duration::ZERO,
                decode_time: Duration::ZERO,
                logprobs: Vec::new(),
            })
        }
        fn count_prompt_tokens(&self, _: &Prompt) -> std::result::Result<u32, GeneratorError> {
            Ok(100)
        }
        fn context_length(&self) -> u32 {
            4096
        }
    }

    #[test]
    fn only_checked_questions_are_kept_and_every_drop_is_counted() {
        let reply = r#"Here you go:
```json
{"question": "Where was the game played?", "answer": "levi's stadium", "quote": "The game was played at Levi's Stadium in Santa Clara on February 7, 2016."}
{"question": "Who won?", "answer": "the Broncos", "quote": "The Broncos beat the Panthers."}
{"question": "Who was MVP?", "answer": "Tom Brady", "quote": "Von Miller was named the most valuable player of the game after two forced fumbles."}
{"question": "What was the score?", "answer": "24 to 10", "quote": "24 to 10."}
{"question": "where was  the game played?", "answer": "Santa Clara", "quote": "The game was played at Levi's Stadium in Santa Clara on February 7, 2016."}
{"question": "", "answer": "x", "quote": "y"}
{"question": "What happened?", "answer": "The Broncos defeated the Panthers 24 to 10.", "quote": "The Broncos defeated the Panthers 24 to 10."}
{"question": "Whom did the Broncos defeat?", "answer": "the broncos", "quote": "The Broncos defeated the Panthers 24 to 10."}
{"question": "By what score (not 124 to 100) did the Broncos win?", "answer": "24 to 10", "quote": "The Broncos defeated the Panthers 24 to 10."}
{"question": "Whom does the first sentence of the passage name?", "answer": "the Panthers", "quote": "The Broncos defeated the Panthers 24 to 10."}
{"question": "What score does the passage give?", "answer": "24 to 10", "quote": "The Broncos defeated the Panthers 24 to 10."}
```"#;
        let chunks = [chunk(7, TEXT), chunk(8, "too short to ask about")];
        let spec = TeacherSpec {
            chunks: 5,
            ..TeacherSpec::default()
        };
        let (kept, report) = write_questions(&spec, &chunks, &Scripted(reply.into())).unwrap();
        assert_eq!(report.chunks, 1, "the short chunk is not asked about");
        assert_eq!(report.proposed, 11);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept[0].answer, "Levi's Stadium",
            "spelled as the quote has it"
        );
        assert_eq!(kept[0].chunk_id, 7);
        assert_eq!(
            kept[1].answer, "24 to 10",
            "inside a longer number is not the answer's words"
        );
        let dropped: Vec<_> = report.dropped.iter().map(|(r, n)| (*r, *n)).collect();
        assert_eq!(
            dropped,
            [
                (DropReason::Incomplete, 1),
                (DropReason::QuoteNotInChunk, 1),
                (DropReason::QuoteTooShort, 1),
                (DropReason::AnswerNotInQuote, 1),
                (DropReason::AnswerTooLong, 1),
                (DropReason::AnswerInQuestion, 1),
                (DropReason::AboutThePassage, 2),
                (DropReason::Duplicate, 1),
            ]
        );
        let line: Value = serde_json::from_str(to_jsonl(&kept).lines().next().unwrap()).unwrap();
        assert_eq!(line["context"], kept[0].context);

        let (kept, report) =
            write_questions(&spec, &chunks, &Scripted("I cannot do that.".into())).unwrap();
        assert!(kept.is_empty());
        assert_eq!(report.dropped.get(&DropReason::NoJson), Some(&1));
    }

    #[test]
    fn the_sample_is_seeded() {
        let chunks: Vec<_> = (0..20).map(|i| chunk(i, &format!("{i} {TEXT}"))).collect();
        let ask = |seed| {
            let spec = TeacherSpec {
                chunks: 3,
                seed,
                ..TeacherSpec::default()
            };
            let reply = format!(
                r#"{{"question": "Where?", "answer": "Santa Clara", "quote": "{}"}}"#,
                "The game was played at Levi's Stadium in Santa Clara on February 7, 2016."
            );
            let (kept, _) = write_questions(&spec, &chunks, &Scripted(reply)).unwrap();
            kept
        };
        // The same question from every chunk: the first sampled chunk keeps it, and which
        // chunk comes first is the seed's choice.
        assert_eq!(ask(1), ask(1));
        assert_eq!(ask(1).len(), 1);
        let firsts: HashSet<i64> = (0..6).map(|seed| ask(seed)[0].chunk_id).collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }
}
