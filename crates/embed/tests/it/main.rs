//! Integration tests of ragtune-embed: the real all-MiniLM-L6-v2 against vectors that
//! sentence-transformers produced (tests/data), folder errors, and a tiny random BERT.

mod folder_errors;
mod minilm;
mod tiny_bert;

use ragtune_embed::{EmbedOptions, SentenceEmbedder};
use serde::Deserialize;
use std::path::PathBuf;

pub const MINILM: &str = "all-minilm-l6-v2";

/// The installed all-MiniLM-L6-v2 folder. Fails (does not skip) when it is missing: these
/// tests check real behaviour, and `scripts/test` pulls the default models first.
pub fn minilm_dir() -> PathBuf {
    let store = ragtune_catalog::ModelStore::from_env().expect("model store");
    match store.resolve(MINILM) {
        Ok(ragtune_catalog::ResolvedModel::HfFolder(path)) => path,
        Ok(other) => panic!("{MINILM} resolved to {other:?}, not a model folder"),
        Err(e) => panic!("{e}\n(run `ragtune models pull {MINILM}` or scripts/test)"),
    }
}

/// MiniLM with 2 threads (nextest runs tests side by side on few cores).
pub fn minilm_with(options: EmbedOptions) -> SentenceEmbedder {
    let options = EmbedOptions {
        threads: 2,
        ..options
    };
    SentenceEmbedder::load_with(minilm_dir(), &options).expect("load all-MiniLM-L6-v2")
}

pub fn minilm() -> SentenceEmbedder {
    minilm_with(EmbedOptions::default())
}

/// tests/data/minilm_reference.json, written by
/// `bench/reference/sentence_transformers_reference.py vectors`.
#[derive(Deserialize)]
pub struct Reference {
    pub model: String,
    pub max_seq_length: usize,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct Case {
    pub text: String,
    pub ids: Vec<u32>,
    pub count: usize,
    pub vector: Vec<f32>,
}

pub fn reference() -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read reference"))
        .expect("parse reference")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
