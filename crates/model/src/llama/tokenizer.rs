//! The model's tokenizer and chat template, in the one place inference and training share.
//!
//! Token ids come from llama.cpp's own tokenizer over the vocabulary stored in the GGUF file,
//! so they are llama.cpp's ids by construction (a committed parity test guards the flags).

use super::{ModelError, load_model};
use crate::gguf::GgufHeader;
use crate::template::{ChatTemplate, TemplateError};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use ragtune_core::{ChatMessage, Prompt};
use std::path::Path;
use std::sync::Arc;

/// Tokenizer and chat template of one GGUF model.
#[derive(Clone)]
pub struct Tokenizer {
    model: Arc<LlamaModel>,
    template: Option<Arc<ChatTemplate>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("template", &self.template)
            .finish()
    }
}

impl Tokenizer {
    /// Loads only the vocabulary and template of a GGUF file (no weights): what training needs.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let params = LlamaModelParams::default().with_vocab_only(true);
        let (model, header) = load_model(path.as_ref(), &params)?;
        Self::new(Arc::new(model), &header)
    }

    pub(crate) fn new(model: Arc<LlamaModel>, header: &GgufHeader) -> Result<Self, ModelError> {
        let token_text = |key: &str| {
            header
                .get(key)
                .and_then(|v| v.as_u64())
                .and_then(|id| header.token_text(id))
                .unwrap_or("")
                .to_string()
        };
        let template = header
            .chat_template()
            .map(|src| {
                ChatTemplate::new(
                    src,
                    token_text("tokenizer.ggml.bos_token_id"),
                    token_text("tokenizer.ggml.eos_token_id"),
                )
            })
            .transpose()?
            .map(Arc::new);
        Ok(Self { model, template })
    }

    pub(crate) fn model_arc(&self) -> Arc<LlamaModel> {
        Arc::clone(&self.model)
    }

    /// Token ids of `text`. With `special`, the model's BOS is added when it wants one and
    /// special-token markup (`<|im_start|>`) becomes its token; without, markup is plain text.
    pub fn encode(&self, text: &str, special: bool) -> Vec<u32> {
        self.tokens(text, special, special)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    pub(crate) fn tokens(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Vec<LlamaToken> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), add_special, parse_special)
    }

    /// The text of `ids`, special tokens included as their markup.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.piece(LlamaToken(id as i32), true));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes of one token (a piece may hold part of a UTF-8 character).
    pub(crate) fn piece(&self, token: LlamaToken, special: bool) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, special, None)
    }

    /// True for end-of-generation tokens (EOS, end of turn).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.model.vocab().is_eog(LlamaToken(id as i32))
    }

    pub fn vocab_size(&self) -> usize {
        self.model.vocab().n_tokens().max(0) as usize
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_deref()
    }

    /// Renders a conversation with the model's template, ending where the reply begins.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.template
            .as_ref()
            .ok_or(TemplateError::Missing)?
            .render(messages, add_generation_prompt)
    }

    /// The token ids the model sees for `prompt`: chat rendered with the template, BOS added
    /// where the model wants one and the template did not already write it.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, TemplateError> {
        Ok(match prompt {
            // As llama.cpp's completion endpoints do: markup in a raw prompt is markup.
            Prompt::Text(text) => self.tokens(text, true, true),
            Prompt::Chat(messages) => self.encode_rendered_chat(&self.render_chat(messages, true)?),
        })
    }

    /// Tokens of a conversation already rendered with [`Self::render_chat`], exactly as
    /// generation encodes it (markup parsed; BOS added unless the template wrote it). Training
    /// uses this so that fine-tuned models see the same tokens they will be prompted with.
    pub fn encode_rendered_chat(&self, text: &str) -> Vec<LlamaToken> {
        let bos = self.template.as_ref().map_or("", |t| t.bos_token());
        let template_wrote_bos = !bos.is_empty() && text.starts_with(bos);
        self.tokens(text, !template_wrote_bos, true)
    }
}
