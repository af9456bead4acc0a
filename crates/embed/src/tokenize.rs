//! The model's own tokenizer (tokenizer.json through the HF `tokenizers` crate), set up the
//! way sentence-transformers calls it: texts stripped, cut to `max_seq_length` tokens with
//! `[CLS]` and `[SEP]` counted, no padding (batches are packed instead).

use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// Token ids of one text as the encoder sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

#[derive(Clone)]
pub(crate) struct TextTokenizer {
    /// Truncating, for the model.
    model: Tokenizer,
    /// Not truncating, for counting.
    counter: Tokenizer,
    lowercase: bool,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_seq_length: usize, lowercase: bool) -> Result<TextTokenizer> {
        let fail = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let mut counter = Tokenizer::from_file(path).map_err(|e| fail(e.to_string()))?;
        // tokenizer.json files often carry the padding and truncation of their export
        // (all-MiniLM-L6-v2's pads and cuts to 128); sentence-transformers overrides both.
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| fail(e.to_string()))?;
        let mut model = counter.clone();
        model
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| fail(e.to_string()))?;
        Ok(TextTokenizer {
            model,
            counter,
            lowercase,
        })
    }

    /// The largest token id plus one.
    pub fn vocab_size(&self) -> usize {
        self.model.get_vocab_size(true)
    }

    fn prepare<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let text = text.trim();
        match self.lowercase {
            true => text.to_lowercase().into(),
            false => text.into(),
        }
    }

    /// Encodes texts for the model, in parallel on the current rayon pool.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let inputs: Vec<String> = texts.iter().map(|t| self.prepare(t).into_owned()).collect();
        let encodings = self
            .model
            .encode_batch_fast(inputs, true)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            })
            .collect())
    }

    /// Ids of one text as the model sees them (special tokens added, truncated).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let e = self
            .model
            .encode_fast(self.prepare(text).as_ref(), true)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(e.get_ids().to_vec())
    }

    /// Word pieces of a text without special tokens and without truncation.
    pub fn count(&self, text: &str) -> Result<usize> {
        let e = self
            .counter
            .encode_fast(self.prepare(text).as_ref(), false)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(e.len())
    }

    /// How many tokens the special tokens of one text take (2 for BERT's `[CLS]`, `[SEP]`).
    pub fn special_tokens(&self) -> usize {
        self.model
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false))
    }
}
