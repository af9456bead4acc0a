//! How text becomes a vector: sentence-transformers models on candle, behind the
//! [`ragtune_core::Embedder`] and [`ragtune_core::TokenCounter`] seams.
//!
//! [`SentenceEmbedder::load`] opens a sentence-transformers folder (config.json,
//! model.safetensors, tokenizer.json, pooling config) of a BERT-family encoder such as
//! all-MiniLM-L6-v2, and embeds texts as sentence-transformers does: the model's own
//! tokenizer, truncation at `max_seq_length`, the encoder, pooling over the tokens, L2
//! normalisation. Texts are sorted by length and packed into batches without padding, and
//! the batches run on all cores; the output keeps the input order.
//!
//! ```no_run
//! use ragtune_core::{Embedder, TokenCounter};
//! use ragtune_embed::SentenceEmbedder;
//!
//! let model = SentenceEmbedder::load("/home/me/.cache/ragtune/models/all-minilm-l6-v2")?;
//! let vectors = model.embed(&["A cat sat on the mat.", "Stocks fell sharply."])?;
//! assert_eq!(vectors[0].len(), model.dimension()); // 384
//! let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
//! println!("cosine {cosine:.3}, {} tokens", model.count_tokens("A cat sat on the mat."));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Other encoders (MPNet for all-mpnet-base-v2) join as variants of the folder loader; a
//! remote `/v1/embeddings` client would be another `Embedder` beside this one.

mod batch;
pub mod bert;
mod embedder;
mod error;
mod folder;
mod kernels;
mod tokenize;

/// Whether this CPU and kernel run the encoder's products in bf16 on AMX tiles
/// ([`Precision::Auto`]).
pub fn amx_available() -> bool {
    ragtune_amx::available()
}

pub use embedder::{EmbedOptions, Kernels, Parallelism, Precision, SentenceEmbedder};
pub use error::{Error, Result};
pub use folder::{ModelFolder, Pooling};
