//! What the long-document benches share: where the knowledge base, the questions and the
//! models are, from the environment.

use std::path::PathBuf;

pub type BoxError = Box<dyn std::error::Error>;

/// The inputs of a long-document bench.
pub struct Inputs {
    /// `LONGDOC_KB`: a knowledge base `bench/longdoc/run.sh` built.
    pub kb: PathBuf,
    /// `LONGDOC_QUESTIONS`: a SQuAD file (v1.1 dev by default).
    pub questions: PathBuf,
    /// `LONGDOC_SAMPLE`: seeded questions drawn (seed 0).
    pub sample: usize,
    /// `RAGTUNE_EMBED_MODEL`: the embedder's folder (the catalogue's MiniLM by default).
    pub embedder: PathBuf,
    /// Where `ragtune models pull` put the models (for the generator of `longdoc_rerank`).
    /// (Each bench compiles this module, and `longdoc_retrieval` has no generator.)
    #[allow(dead_code)]
    pub models: PathBuf,
}

pub fn env_path(name: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(name).map_or(default, PathBuf::from)
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn inputs(default_sample: usize) -> Result<Inputs, BoxError> {
    let home = PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?);
    let models = home.join(".cache/ragtune/models");
    Ok(Inputs {
        kb: env_path("LONGDOC_KB", "/tmp/ragtune-longdoc/kb-128".into()),
        questions: env_path(
            "LONGDOC_QUESTIONS",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/data/squad-v1.1-dev/dev-v1.1.json"
            )
            .into(),
        ),
        sample: env_usize("LONGDOC_SAMPLE", default_sample),
        embedder: env_path("RAGTUNE_EMBED_MODEL", models.join("all-minilm-l6-v2")),
        models,
    })
}
