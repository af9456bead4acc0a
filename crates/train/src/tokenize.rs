//! Turning a conversation into token ids with a per-token "trainable" flag.
//!
//! The text is rendered with the model's chat template exactly as at inference; the tokens of
//! each assistant turn (its content and the template's end-of-turn marker) are trainable, every
//! other token is context. Turn boundaries are found by rendering the conversation up to each
//! assistant turn (with the generation prompt) and after it, and checking that their tokens are
//! prefixes of the tokens of the whole conversation, so a template or tokenizer that breaks that
//! assumption is reported instead of silently mis-masking.

use crate::data::Example;
use crate::error::{Error, Result};
use ragtune_core::{ChatMessage, Role};

/// What training needs from a model's tokenizer and chat template (ragtune-model's llama.cpp
/// tokenizer implements it in the CLI, so training tokenizes exactly as inference does; a fake
/// over bytes is in [`crate::testing`]).
pub trait ChatTokenizer {
    /// Whether the model has a chat template; SFT needs one (without it, prompt/response pairs
    /// cannot be rendered as at inference).
    fn has_chat_template(&self) -> bool;
    /// The chat template applied to `messages`; with `add_generation_prompt` it ends with the
    /// assistant header the model continues from.
    fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String>;
    /// Token ids for already-rendered text (special tokens in the text are parsed).
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Token ids of a plain-text document for continued pretraining, as llama.cpp encodes a raw
    /// prompt: BOS first when the model wants one, special-token markup parsed.
    fn encode_text(&self, text: &str) -> Result<Vec<u32>>;
    /// The end-of-generation token (EOS) that separates continued-pretraining documents; None
    /// when the vocabulary has none.
    fn end_of_generation(&self) -> Option<u32>;
    /// The id that pads SFT rows to a batch's longest row (never trained on or attended to).
    fn pad_id(&self) -> u32;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    pub trainable: Vec<bool>,
}

pub fn tokenize_example(tok: &(impl ChatTokenizer + ?Sized), ex: &Example) -> Result<Tokenized> {
    let ids = tok.encode(&tok.render(&ex.messages, false)?)?;
    let mut trainable = vec![false; ids.len()];
    for (i, msg) in ex.messages.iter().enumerate() {
        if msg.role != Role::Assistant || ex.untrained_turns.contains(&i) {
            continue;
        }
        if !ex.messages[..i].iter().any(|m| m.role == Role::User) {
            // Templates that add a default system prompt to a non-empty conversation render
            // nothing before such a turn, so the prefix check below would fail with a riddle.
            return Err(Error::Template(format!(
                "line {line}: message {i} is an assistant turn with no user message before it, so there is no request for the model to learn the answer to; start the conversation with the user's message",
                line = ex.line
            )));
        }
        let start = prefix_len(tok, &ids, &ex.messages[..i], true, ex.line)?;
        let end = prefix_len(tok, &ids, &ex.messages[..=i], false, ex.line)?;
        trainable[start..end].iter_mut().for_each(|t| *t = true);
    }
    Ok(Tokenized { ids, trainable })
}

/// Number of tokens of `msgs` rendered, after checking they begin `full`.
fn prefix_len(
    tok: &(impl ChatTokenizer + ?Sized),
    full: &[u32],
    msgs: &[ChatMessage],
    generation_prompt: bool,
    line: usize,
) -> Result<usize> {
    let part = tok.encode(&tok.render(msgs, generation_prompt)?)?;
    if !full.starts_with(&part) {
        return Err(Error::Template(format!(
            "line {line}: the chat template renders the first {} message(s) differently (or they tokenize differently) inside the whole conversation, so the answer tokens cannot be located; use a template that renders turns independently",
            msgs.len()
        )));
    }
    Ok(part.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ByteChatMl;

    fn trained_text(t: &Tokenized) -> String {
        t.ids
            .iter()
            .zip(&t.trainable)
            .filter(|(_, tr)| **tr)
            .map(|(&id, _)| match id {
                257 => "<E>".to_string(),
                id => char::from(id as u8).to_string(),
            })
            .collect()
    }

    #[test]
    fn only_assistant_turns_and_their_end_marker_are_trainable() -> Result<()> {
        let ex = Example {
            line: 1,
            messages: vec![
                ChatMessage::system("sys"),
                ChatMessage::user("hi"),
                ChatMessage::assistant("hello"),
                ChatMessage::user("bye"),
                ChatMessage::assistant("ciao"),
            ],
            untrained_turns: Vec::new(),
        };
        let tok = ByteChatMl::default();
        let t = tokenize_example(&tok, &ex)?;
        assert_eq!(t.ids, tok.encode(&tok.render(&ex.messages, false)?)?);
        assert_eq!(trained_text(&t), "hello<E>\nciao<E>\n");
        // "weight": 0 on the first answer (a worked demonstration) leaves it out.
        let ex = Example {
            untrained_turns: vec![2],
            ..ex
        };
        assert_eq!(trained_text(&tokenize_example(&tok, &ex)?), "ciao<E>\n");
        Ok(())
    }

    #[test]
    fn inconsistent_template_is_an_error_naming_the_line() {
        let ex = Example {
            line: 7,
            messages: vec![
                ChatMessage::system("s"),
                ChatMessage::user("u"),
                ChatMessage::assistant("a"),
            ],
            untrained_turns: Vec::new(),
        };
        let err = tokenize_example(
            &ByteChatMl {
                broken: true,
                ..ByteChatMl::default()
            },
            &ex,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn assistant_first_chat_says_what_is_wrong_not_first_0_messages() -> Result<()> {
        let tok = ByteChatMl {
            default_system: true,
            ..ByteChatMl::default()
        };
        let ok = Example {
            line: 2,
            messages: vec![ChatMessage::user("q"), ChatMessage::assistant("a")],
            untrained_turns: Vec::new(),
        };
        assert_eq!(trained_text(&tokenize_example(&tok, &ok)?), "a<E>\n");
        let ex = Example {
            line: 3,
            messages: vec![
                ChatMessage::assistant("hello"),
                ChatMessage::user("q"),
                ChatMessage::assistant("a"),
            ],
            untrained_turns: Vec::new(),
        };
        let err = tokenize_example(&tok, &ex).unwrap_err().to_string();
        assert!(
            err.contains("line 3: message 0 is an assistant turn with no user message before it")
                && err.contains("start the conversation with the user's message")
                && !err.contains("first 0"),
            "{err}"
        );
        Ok(())
    }
}
