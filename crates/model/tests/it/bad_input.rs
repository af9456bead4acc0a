//! Bad model files and prompts give clear errors, never panics.

use crate::{SMOLLM2, model_path, smollm2};
use ragtune_core::{GenerationRequest, Generator, GeneratorError, Prompt};
use ragtune_model::llama::{LlamaGenerator, LoadOptions};
use std::io::{Read, Write};
use std::ops::ControlFlow;

#[test]
fn truncated_gguf_is_reported_as_truncated() {
    let mut head = vec![0u8; 8 << 20];
    let mut file = std::fs::File::open(model_path(SMOLLM2)).unwrap();
    file.read_exact(&mut head).unwrap();
    let mut cut = tempfile::NamedTempFile::new().unwrap();
    cut.write_all(&head).unwrap();
    let err = LlamaGenerator::load(cut.path(), &LoadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("truncated") && msg.contains("fetch the file again"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_gguf_is_named() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"{\"this\": \"is json\"}").unwrap();
    let msg = LlamaGenerator::load(f.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is not a GGUF file"), "{msg}");
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
}

#[test]
fn a_missing_file_is_named() {
    let msg = LlamaGenerator::load("/nonexistent/model.gguf", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/model.gguf"), "{msg}");
}

#[test]
fn a_prompt_over_the_context_is_a_clear_error() {
    let model = smollm2();
    let long = "word ".repeat(model.context_length() as usize + 10);
    let err = model
        .generate(&GenerationRequest::new(Prompt::Text(long)), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(
        matches!(err, GeneratorError::ContextOverflow { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("shorten the prompt"), "{err}");
}

#[test]
fn an_empty_prompt_is_invalid_not_a_crash() {
    let model = smollm2();
    // SmolLM2 adds no BOS, so an empty text prompt has no token at all.
    let err = model
        .generate(
            &GenerationRequest::new(Prompt::Text(String::new())),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert!(matches!(err, GeneratorError::InvalidRequest(_)), "{err}");
}
