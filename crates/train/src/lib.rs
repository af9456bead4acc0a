//! LoRA fine-tuning for ragtune on candle: SFT and continued pretraining.
//!
//! A llama-architecture model whose base weights come from a GGUF file, dequantized to f32 and
//! frozen (no gradient is ever computed for them), with LoRA adapters as the only trainable
//! variables; fused CPU ops with hand-written backward; the masked causal-LM loss; the SFT data
//! formats and packing; the [`trainer::Trainer`] (gradient accumulation, AdamW, warm-up + cosine,
//! eval loss, atomic checkpoints, exact resume); and export of the adapters in PEFT's layout
//! (transformers/PEFT read it) and as a GGUF LoRA that llama.cpp applies at run time.
//!
//! A front end runs a whole training job with one call, [`run`]: a [`RunSpec`] in, a
//! [`RunReport`] out, [`RunEvent`]s on the way; tokenization arrives through the
//! [`tokenize::ChatTokenizer`] trait, so this crate does not link llama.cpp.

pub mod alloc;
pub mod batch;
pub mod config;
pub mod data;
pub mod error;
pub mod frozen;
pub mod fused;
pub mod fused_lora;
pub mod gguf;
pub mod gguf_lora;
pub mod job;
mod kernels;
pub mod lora;
pub mod loss;
pub mod memory;
pub mod merge;
pub mod model;
pub mod optim;
pub mod out_dir;
pub mod peft;
pub mod plot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokenize;
pub mod trainer;

pub use config::{Architecture, LlamaConfig};
pub use error::{Error, Result};
pub use job::{Kind, RunData, RunEvent, RunFiles, RunReport, RunSpec, Split, StepLoss, run};
pub use lora::{LoraConfig, TargetModule};
pub use model::Llama;
pub use ragtune_amx::Precision;
/// The seeded generator of training (LoRA initialisation, dropout, shuffles): ragtune's one
/// SplitMix64, from `ragtune-core`.
pub use ragtune_core::rng::SplitMix64;
