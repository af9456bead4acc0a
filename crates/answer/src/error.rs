//! One error type for the crate. Messages name the question, file or line and say what to do.

use std::path::PathBuf;

/// Everything that can stop an answer or an evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The retriever failed for a question.
    #[error("retrieval failed for the question {}: {source}", shown(question))]
    Retrieve {
        question: String,
        #[source]
        source: ragtune_core::RetrieveError,
    },

    /// The generator failed (or could not count the prompt's tokens).
    #[error("generation failed for the question {}: {source}", shown(question))]
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
        "the prompt for the question {} takes {needed} tokens without any passage or \
         example, but the budget is {budget} tokens; shorten the question, lower the answer's \
         max tokens, or raise the prompt budget / context length",
        shown(question)
    )]
    PromptTooLong {
        question: String,
        needed: u32,
        budget: u32,
    },

    /// The options ask for something the answerer was not given.
    #[error("{0}")]
    Config(String),

    /// Evaluation data (questions, examples) could not be read.
    #[error(transparent)]
    Dataset(#[from] ragtune_datasets::Error),

    /// A file could not be read (an `fs-err` error: its message names the path).
    #[error(transparent)]
    Io(std::io::Error),

    /// A data file does not follow its format.
    #[error("{}, line {line}: {reason}; the file does not follow the {format} format", path.display())]
    Data {
        path: PathBuf,
        line: usize,
        format: &'static str,
        reason: String,
    },
}

/// A question as a message shows it: quoted, and cut after 120 characters (a 100 KB question
/// is not echoed back in full).
fn shown(question: &str) -> String {
    const MAX: usize = 120;
    match question.char_indices().nth(MAX) {
        Some((at, _)) => format!(
            "{:?}… ({} characters in all)",
            &question[..at],
            question.chars().count()
        ),
        None => format!("{question:?}"),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    fs_err::read(path).map_err(Error::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a 100 KB question was echoed back in full in the error.
    #[test]
    fn long_questions_are_cut_in_messages() {
        let question = "why ".repeat(25_000);
        let e = Error::PromptTooLong {
            question: question.clone(),
            needed: 30_000,
            budget: 8_000,
        };
        let msg = e.to_string();
        assert!(msg.len() < 600, "{}", msg.len());
        assert!(msg.contains("(100000 characters in all)"), "{msg}");
        let short = Error::PromptTooLong {
            question: "Who?".into(),
            needed: 9,
            budget: 8,
        };
        assert!(short.to_string().contains("\"Who?\" takes 9 tokens"));
    }
}
