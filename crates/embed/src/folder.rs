//! What is in a sentence-transformers model folder: which files, which architecture, which
//! pooling, how many tokens. Read once at load time; every failure names the folder and file.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the tokens (all-MiniLM-L6-v2, all-mpnet-base-v2).
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// Element-wise maximum over the tokens.
    Max,
    /// Sum over the tokens divided by √(tokens).
    MeanSqrtLen,
}

/// The parts of a model folder that decide how it is loaded and run.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub weights_path: PathBuf,
    pub tokenizer_path: PathBuf,
    /// `model_type` from config.json (`bert`, `mpnet`, ...).
    pub model_type: String,
    /// Texts are cut to this many tokens, special tokens included (sentence-transformers'
    /// `max_seq_length`).
    pub max_seq_length: usize,
    /// sentence-transformers lower-cases texts itself when `do_lower_case` is set.
    pub lowercase: bool,
    pub pooling: Pooling,
}

#[derive(Deserialize)]
struct ModelType {
    model_type: Option<String>,
    max_position_embeddings: Option<usize>,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// Reads and parses a JSON file, naming it in every error.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::BadJson {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl ModelFolder {
    /// Checks that `dir` is a model folder and reads its settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<ModelFolder> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotAFolder { dir });
        }
        let need = |file: &'static str| -> Result<PathBuf> {
            let path = dir.join(file);
            match path.is_file() {
                true => Ok(path),
                false => Err(Error::MissingFile {
                    dir: dir.clone(),
                    file,
                }),
            }
        };
        let config_path = need("config.json")?;
        let tokenizer_path = need("tokenizer.json")?;
        let weights_path = need("model.safetensors")?;

        let config: ModelType = read_json(&config_path)?;
        let model_type = config.model_type.ok_or_else(|| Error::BadJson {
            path: config_path.clone(),
            message: "no `model_type` field".into(),
        })?;
        let sbert_path = dir.join("sentence_bert_config.json");
        let sbert: Option<SentenceBertConfig> = match sbert_path.is_file() {
            true => Some(read_json(&sbert_path)?),
            false => None,
        };
        // Without sentence_bert_config.json the model's own window is the limit, as in
        // sentence-transformers (which also caps it at 512).
        let window = config.max_position_embeddings.unwrap_or(512).min(512);
        let max_seq_length = sbert
            .as_ref()
            .and_then(|s| s.max_seq_length)
            .unwrap_or(window);
        if max_seq_length < 2 {
            return Err(Error::UnsupportedConfig {
                path: sbert_path,
                what: "max_seq_length below 2",
                detail: format!("{max_seq_length} leaves no room for [CLS] and [SEP]"),
            });
        }
        let pooling = read_pooling(&dir)?;
        Ok(ModelFolder {
            lowercase: sbert.is_some_and(|s| s.do_lower_case),
            dir,
            config_path,
            weights_path,
            tokenizer_path,
            model_type,
            max_seq_length,
            pooling,
        })
    }
}

/// The pooling module named in modules.json (or `1_Pooling/` by convention); mean pooling
/// when the folder has none, as sentence-transformers does for plain transformer folders.
fn read_pooling(dir: &Path) -> Result<Pooling> {
    let modules_path = dir.join("modules.json");
    let pooling_dir = match modules_path.is_file() {
        true => {
            let modules: Vec<Module> = read_json(&modules_path)?;
            modules
                .into_iter()
                .find(|m| m.kind.ends_with(".Pooling"))
                .map(|m| dir.join(m.path))
        }
        false => Some(dir.join("1_Pooling")),
    };
    let Some(path) = pooling_dir
        .map(|p| p.join("config.json"))
        .filter(|p| p.is_file())
    else {
        return Ok(Pooling::Mean);
    };
    let c: PoolingConfig = read_json(&path)?;
    let modes = [
        (c.pooling_mode_mean_tokens, Some(Pooling::Mean)),
        (c.pooling_mode_cls_token, Some(Pooling::Cls)),
        (c.pooling_mode_max_tokens, Some(Pooling::Max)),
        (
            c.pooling_mode_mean_sqrt_len_tokens,
            Some(Pooling::MeanSqrtLen),
        ),
        (c.pooling_mode_weightedmean_tokens, None),
        (c.pooling_mode_lasttoken, None),
    ];
    let on: Vec<Option<Pooling>> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
    match on.as_slice() {
        [Some(mode)] => Ok(*mode),
        [] => Ok(Pooling::Mean),
        _ => Err(Error::UnsupportedConfig {
            path,
            what: "this pooling mode",
            detail: "only exactly one of mean, cls, max or mean_sqrt_len pooling is implemented"
                .into(),
        }),
    }
}
