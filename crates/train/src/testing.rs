//! A deterministic fake tokenizer for tests without llama.cpp (the `testing` feature).

use crate::error::Result;
use crate::tokenize::ChatTokenizer;
use ragtune_core::{ChatMessage, Role};

/// `<|im_start|>`, a single token.
pub const IM_START: u32 = 256;
/// `<|im_end|>`, a single token and the end of generation.
pub const IM_END: u32 = 257;

/// ChatML as SmolLM2 uses it, over a byte tokenizer where `<|im_start|>`/`<|im_end|>` are the
/// single tokens [`IM_START`]/[`IM_END`] (ids that any real vocabulary of 258 or more holds, so
/// it can drive a real model such as SmolLM2 in tests). No BOS; pads with the space byte.
#[derive(Debug, Default, Clone)]
pub struct ByteChatMl {
    /// Renders the system turn only when there is no generation prompt: a template whose
    /// prefixes are inconsistent.
    pub broken: bool,
    /// Adds a system turn before a non-empty conversation that lacks one, as SmolLM2's
    /// template does.
    pub default_system: bool,
}

impl ChatTokenizer for ByteChatMl {
    fn has_chat_template(&self) -> bool {
        true
    }

    fn render(&self, messages: &[ChatMessage], generation_prompt: bool) -> Result<String> {
        let mut s = String::new();
        if self.default_system && messages.first().is_some_and(|m| m.role != Role::System) {
            s += "<|im_start|>system\nYou are helpful.<|im_end|>\n";
        }
        for m in messages {
            if self.broken && generation_prompt && m.role == Role::System {
                continue;
            }
            s += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content);
        }
        if generation_prompt {
            s += "<|im_start|>assistant\n";
        }
        Ok(s)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("<|im_start|>") {
                ids.push(IM_START);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("<|im_end|>") {
                ids.push(IM_END);
                rest = r;
            } else {
                let c = rest.chars().next().unwrap_or_default();
                ids.extend(c.to_string().bytes().map(u32::from));
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok(ids)
    }

    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text)
    }

    fn end_of_generation(&self) -> Option<u32> {
        Some(IM_END)
    }

    fn pad_id(&self) -> u32 {
        u32::from(b' ')
    }
}
