//! Integration tests of the model crate on the real default models (pulled by scripts/test).

mod bad_input;
mod generation;
mod templates;
mod tokenizer_parity;

use ragtune_model::llama::{LlamaGenerator, LoadOptions};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub const SMOLLM2: &str = "smollm2-135m-instruct";
pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct";

/// Path of an installed catalogue model. Fails (does not skip) when it is missing: these
/// tests check real behaviour, and `scripts/test` pulls the models first.
pub fn model_path(name: &str) -> PathBuf {
    let store = ragtune_catalog::ModelStore::from_env().expect("model store");
    match store.resolve(name) {
        Ok(ragtune_catalog::ResolvedModel::Gguf(path)) => path,
        Ok(other) => panic!("{name} resolved to {other:?}, not a GGUF file"),
        Err(e) => panic!("{e}\n(run `ragtune models pull {name}` or scripts/test)"),
    }
}

/// SmolLM2 loaded once for the whole test binary (loading is the slow part).
pub fn smollm2() -> Arc<LlamaGenerator> {
    static MODEL: OnceLock<Arc<LlamaGenerator>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let options = LoadOptions {
                // One thread: nextest runs tests side by side on few cores.
                threads: 1,
                ..LoadOptions::default()
            };
            Arc::new(LlamaGenerator::load(model_path(SMOLLM2), &options).expect("load SmolLM2"))
        })
        .clone()
}

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
