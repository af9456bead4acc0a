//! How is a grounded answer built, and how is it checked?
//!
//! [`Answerer`] answers a question through the core seams only ([`Generator`](ragtune_core::Generator),
//! [`Retriever`](ragtune_core::Retriever), [`Embedder`](ragtune_core::Embedder)) in one of three [`Mode`]s: `rag` retrieves passages and
//! fits them into an explicit token budget (measured with the generator's own token count;
//! lowest-ranked passages are trimmed or dropped, and the [`Answer`] says which); `closed-book`
//! asks the question alone; `few-shot` shows the most similar solved examples first
//! ([`ExamplePool`]). Documents are data: passages sit in a delimited block, the model is told
//! to ignore instructions inside it, and chat-template markup in them is neutralised
//! ([`sanitize`]), and so are the documents' own bracketed numbers (`[2, 7, 8]` becomes
//! `(ref. 2, 7, 8)`). Citations (`[1]`, `[1, 2]`) are checked against the passages in the prompt and
//! quotations against the passage they cite ([`citation`]), and what the answer says next to a
//! citation against the passage it names ([`support`]); each check is reported, and failures
//! are marked and counted.
//! When the evidence is weak (retrieval score below a threshold) or the model replies with the
//! fixed refusal phrase, the answer is "the documents do not contain the answer"
//! ([`abstain`]). [`eval`] scores answers on SQuAD-style data with one batched generation.
//!
//! ```
//! use ragtune_answer::{Answerer, AskOptions};
//! use ragtune_core::*;
//! use std::time::Duration;
//!
//! /// A generator that always cites the first passage.
//! struct Echo;
//! impl Generator for Echo {
//!     fn generate(&self, _: &GenerationRequest, sink: TokenSink<'_>)
//!         -> Result<Generation, GeneratorError> {
//!         let _ = sink("Denver Broncos [1]");
//!         Ok(Generation { text: "Denver Broncos [1]".into(), usage: Usage::default(),
//!             finish_reason: FinishReason::Stop, prompt_time: Duration::ZERO,
//!             decode_time: Duration::ZERO, logprobs: Vec::new() })
//!     }
//!     fn count_prompt_tokens(&self, p: &Prompt) -> Result<u32, GeneratorError> {
//!         let Prompt::Chat(m) = p else { unreachable!() };
//!         Ok(m.iter().map(|m| m.content.split_whitespace().count() as u32).sum())
//!     }
//!     fn context_length(&self) -> u32 { 512 }
//! }
//!
//! struct OneHit;
//! impl Retriever for OneHit {
//!     fn retrieve(&self, _: &Query) -> Result<Vec<Hit>, RetrieveError> {
//!         let text = "The Denver Broncos won Super Bowl 50.";
//!         Ok(vec![Hit { chunk_id: 7, source: "nfl.md".into(), format: Format::Markdown,
//!             page: None, heading_path: vec!["Super Bowl 50".into()], start: 0,
//!             end: text.len(), text: text.into(), score: 0.9, ranks: Default::default() }])
//!     }
//! }
//!
//! # fn main() -> ragtune_answer::Result<()> {
//! let answerer = Answerer::new(&Echo, AskOptions::default()).with_retriever(&OneHit);
//! let answer = answerer.ask("Who won Super Bowl 50?")?;
//! assert_eq!(answer.answer_text, "Denver Broncos");
//! assert!(answer.citations[0].valid);
//! // The passage holds what the answer says next to the citation.
//! assert_eq!(answer.citations[0].status, ragtune_answer::CitationStatus::Ok);
//! assert_eq!(answer.citations[0].chunk.as_ref().unwrap().source, "nfl.md");
//! # Ok(()) }
//! ```

pub mod abstain;
mod answer;
mod budget;
pub mod citation;
mod error;
pub mod eval;
pub mod expand;
pub mod fewshot;
pub mod sanitize;
pub mod support;
pub mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use abstain::{AbstainReason, Abstention, AbstentionPolicy};
pub use answer::{
    Answer, Answerer, AskOptions, Citation, CitedChunk, Mode, Passage, PreparedQuestion, Timings,
    TokenReport, answer_text,
};
pub use budget::PassageFit;
pub use citation::{CitationFailure, CitationStatus, QuoteCheck};
pub use error::{Error, Result};
pub use expand::Span;
pub use fewshot::{Example, ExamplePool, SelectedExample, examples_from, load_examples};
pub use template::{Demonstration, PromptTemplate};
