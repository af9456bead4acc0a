//! A folder that is not a usable model gives an error that names the folder and the
//! problem, before any weights are read.

use crate::tiny_bert::{Tiny, random_weights, tiny_folder, write_tiny};
use candle_core::{Device, Tensor};
use ragtune_embed::{Error, SentenceEmbedder};

fn load_err(dir: &std::path::Path) -> Error {
    SentenceEmbedder::load(dir).expect_err("loading should fail")
}

#[test]
fn missing_tokenizer_is_named_with_its_folder() {
    let dir = tiny_folder(&Tiny::default());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(
            err,
            Error::MissingFile {
                file: "tokenizer.json",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(
        msg.contains("tokenizer.json") && msg.contains("ragtune models pull"),
        "{msg}"
    );
}

#[test]
fn missing_weights_and_config_are_named() {
    for file in ["model.safetensors", "config.json"] {
        let dir = tiny_folder(&Tiny::default());
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = load_err(dir.path());
        assert!(
            matches!(err, Error::MissingFile { file: f, .. } if f == file),
            "{err:?}"
        );
    }
}

#[test]
fn broken_config_json_is_named() {
    let dir = tiny_folder(&Tiny::default());
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, Error::BadJson { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn config_without_a_field_is_named() {
    let dir = tiny_folder(&Tiny::default());
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load_err(dir.path());
    assert!(err.to_string().contains("hidden_size"), "{err}");
}

#[test]
fn unsupported_model_type_is_named() {
    let dir = tiny_folder(&Tiny::default());
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"bert\"", "\"mpnet\"");
    std::fs::write(&path, config).unwrap();
    let err = load_err(dir.path());
    assert!(
        matches!(&err, Error::UnsupportedModel { model_type, .. } if model_type == "mpnet"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`mpnet` is not supported"),
        "{err}"
    );
}

#[test]
fn unsupported_activation_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Tiny {
        hidden_act: "swish",
        ..Tiny::default()
    };
    write_tiny(dir.path(), &spec, &random_weights());
    let err = load_err(dir.path());
    assert!(err.to_string().contains("hidden_act"), "{err}");
}

#[test]
fn weights_that_do_not_match_the_config_are_named() {
    let mut weights = random_weights();
    weights.insert(
        "encoder.layer.1.intermediate.dense.weight".into(),
        Tensor::zeros((7, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), &Tiny::default(), &weights);
    let err = load_err(dir.path());
    assert!(matches!(err, Error::Weights { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    weights.remove("encoder.layer.1.intermediate.dense.weight");
    let dir = tempfile::tempdir().unwrap();
    write_tiny(dir.path(), &Tiny::default(), &weights);
    let err = load_err(dir.path());
    assert!(
        err.to_string().contains("intermediate.dense.weight"),
        "{err}"
    );
}

#[test]
fn a_file_or_missing_path_is_not_a_folder() {
    let dir = tiny_folder(&Tiny::default());
    let err = load_err(&dir.path().join("config.json"));
    assert!(matches!(err, Error::NotAFolder { .. }), "{err:?}");
    let err = load_err(&dir.path().join("nowhere"));
    assert!(matches!(err, Error::NotAFolder { .. }), "{err:?}");
}

#[test]
fn errors_become_permanent_embed_errors() {
    let dir = tiny_folder(&Tiny::default());
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err: ragtune_core::EmbedError = load_err(dir.path()).into();
    assert!(matches!(err, ragtune_core::EmbedError::Permanent(_)));
}
