//! How ragtune loads and runs models.
//!
//! - [`gguf`]: reads and checks GGUF headers (architecture, chat template, truncation).
//! - [`template`]: renders chat templates with a real Jinja engine.
//! - [`llama`]: tokenizer and text generation on llama.cpp, behind the core `Generator` seam.
//!
//! ```no_run
//! use ragtune_core::{ChatMessage, GenerationRequest, Generator, Prompt};
//! use ragtune_model::llama::{LlamaGenerator, LoadOptions};
//!
//! let model = LlamaGenerator::load("SmolLM2-135M-Instruct.Q4_1.gguf", &LoadOptions::default())?;
//! let request = GenerationRequest::new(Prompt::Chat(vec![ChatMessage::user("Hi!")]));
//! let reply = model.generate(&request, &mut |text| {
//!     print!("{text}");
//!     std::ops::ControlFlow::Continue(())
//! })?;
//! println!("\n{} tokens", reply.usage.completion_tokens);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod gguf;
pub mod llama;
pub mod template;
mod text_stream;

pub use text_stream::TextStream;
