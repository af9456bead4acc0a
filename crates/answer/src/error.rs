//! One error type for the crate. Messages name the question, file or line and say what to do.

use std::path::PathBuf;

/// Everything that can stop an answer or an evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The retriever failed for a question.
    #[error("retrieval failed for the question {question:?}: {source}")]
    Retrieve {
        question: String,
        #[source]
        source: ragtune_core::RetrieveError,
    },

    /// The generator failed (or could not count the prompt's tokens).
    #[error("generation failed for the question {question:?}: {source}")]
    Generate {
        question: String,
        #[source]
        source: ragtune_core::GeneratorError,
    },

    /// A batched generation failed.
    #[error("batched generation of {requests} requests failed: {source}")]
    GenerateBatch {
        requests: usize,
        #[source]
        source: ragtune_core::GeneratorError,
    },

    /// Embedding few-shot examples or a question failed.
    #[error("embedding {what} failed: {source}")]
    Embed {
        what: String,
        #[source]
        source: ragtune_core::EmbedError,
    },

    /// The prompt does not fit even without any passage or example.
    #[error(
        "the prompt for the question {question:?} takes {needed} tokens without any passage or \
         example, but the budget is {budget} tokens; shorten the question, lower the answer's \
         max tokens, or raise the prompt budget / context length"
    )]
    PromptTooLong {
        question: String,
        needed: u32,
        budget: u32,
    },

    /// The options ask for something the answerer was not given.
    #[error("{0}")]
    Config(String),

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A data file does not follow its format.
    #[error("{}, line {line}: {reason}; the file does not follow the {format} format", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        format: &'static str,
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}
