//! The vocabulary of ragtune and the seams between its parts.
//!
//! ```
//! use ragtune_core::{ChatMessage, GenerationRequest, Prompt};
//!
//! let request = GenerationRequest::new(Prompt::Chat(vec![ChatMessage::user("Hi!")]))
//!     .with_max_tokens(16);
//! assert_eq!(request.max_tokens, 16);
//! assert!(request.sampling.is_greedy());
//! ```

mod document;
mod generate;
mod retrieve;

pub mod io;
pub mod process;
pub mod rng;
pub mod stats;

pub use document::{
    Block, BlockKind, Chunk, EmbedError, Embedder, ExtractedDocument, Format, Metadata,
    TokenCounter,
};

pub use generate::{
    ChatMessage, FinishReason, Generation, GenerationRequest, Generator, GeneratorError,
    KvCacheCounters, Prompt, Role, SamplingParams, TokenLogprob, TokenSink, Usage, WithAdapter,
    logprobs_within,
};
pub use retrieve::{Filter, Hit, Query, RetrieveError, Retriever, SearchMode};
