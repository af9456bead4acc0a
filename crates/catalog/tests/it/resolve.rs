//! resolve() needs no pip: installed models are laid out by hand, since resolve
//! trusts final file names and never hashes.

use std::path::Path;

use ragtune_catalog::{Error, ResolvedModel};

use crate::support::{Fixture, TestResult};

fn install_by_hand(fx: &Fixture, name: &str) -> TestResult {
    let dir = fx.model_dir(name);
    let entry = fx.store.catalog().find(name)?;
    for file in &entry.files {
        let path = dir.join(&file.path);
        std::fs::create_dir_all(path.parent().ok_or("parent")?)?;
        std::fs::write(path, b"GGUF")?;
    }
    Ok(())
}

#[test]
fn installed_catalogue_names_and_aliases_resolve_to_the_main_file() -> TestResult {
    let fx = Fixture::new();
    install_by_hand(&fx, "fake-gen")?;
    install_by_hand(&fx, "fake-emb")?;
    let gguf = ResolvedModel::Gguf(fx.model_dir("fake-gen").join("fake.gguf"));
    assert_eq!(fx.store.resolve("fake-gen")?, gguf);
    assert_eq!(fx.store.resolve("FG")?, gguf);
    let folder = fx.store.resolve("fake-emb")?;
    assert_eq!(folder, ResolvedModel::HfFolder(fx.model_dir("fake-emb")));
    Ok(())
}

#[test]
fn a_not_installed_name_says_how_to_pull_it() {
    let fx = Fixture::new();
    let err = fx.store.resolve("fg").unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("run `ragtune models pull fake-gen`"),
        "{err}"
    );
}

#[test]
fn a_half_assembled_model_is_not_installed() -> TestResult {
    let fx = Fixture::new();
    install_by_hand(&fx, "fake-emb")?;
    let weights = fx.model_dir("fake-emb").join("model.safetensors");
    std::fs::rename(&weights, weights.with_extension("safetensors.partial"))?;
    assert!(matches!(
        fx.store.resolve("fake-emb"),
        Err(Error::NotInstalled { .. })
    ));
    // Nor does the folder pass as a Hugging Face folder when given as a path.
    let path = fx.model_dir("fake-emb");
    let err = fx.store.resolve(path.to_str().ok_or("utf-8")?).unwrap_err();
    assert!(
        matches!(err, Error::NotModelFolder { gguf_count: 0, .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn an_unknown_name_lists_the_catalogue() {
    let fx = Fixture::new();
    let err = fx.store.resolve("llama-70b").unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`llama-70b`") && msg.contains("fake-gen (fg), fake-emb"),
        "{msg}"
    );
}

#[test]
fn paths_resolve_by_their_content() -> TestResult {
    let fx = Fixture::new();
    let dir = fx.tmp.path().join("mine");
    std::fs::create_dir_all(dir.join("hf"))?;
    std::fs::create_dir_all(dir.join("one"))?;
    let gguf = dir.join("m.gguf");
    std::fs::write(&gguf, b"GGUF\x03\0\0\0rest")?;
    let text = dir.join("notes.gguf");
    std::fs::write(&text, b"not a model")?;
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(dir.join("hf").join(name), b"{}")?;
    }
    std::fs::write(dir.join("one/x.gguf"), b"GGUF")?;
    std::fs::write(dir.join("one/y.gguf.partial"), b"GGUF")?;

    let resolve = |p: &Path| {
        fx.store
            .resolve(p.to_str().ok_or("utf-8")?)
            .map_err(|e| e.to_string())
    };
    assert_eq!(resolve(&gguf)?, ResolvedModel::Gguf(gguf.clone()));
    assert_eq!(
        resolve(&dir.join("hf"))?,
        ResolvedModel::HfFolder(dir.join("hf"))
    );
    assert_eq!(
        resolve(&dir.join("one"))?,
        ResolvedModel::Gguf(dir.join("one/x.gguf"))
    );
    let err = resolve(&text).unwrap_err();
    assert!(
        err.contains(&format!("{} is not a GGUF file", text.display())),
        "{err}"
    );
    std::fs::write(dir.join("one/z.gguf"), b"GGUF")?;
    let err = resolve(&dir.join("one")).unwrap_err();
    assert!(err.contains("found 2"), "{err}");
    Ok(())
}

#[test]
fn a_missing_path_says_it_does_not_exist() {
    let fx = Fixture::new();
    let missing = fx.tmp.path().join("nope/model.gguf");
    let err = fx
        .store
        .resolve(&missing.display().to_string())
        .unwrap_err();
    assert!(matches!(err, Error::PathNotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("{} does not exist", missing.display()))
    );
    assert!(matches!(
        fx.store.resolve("model.gguf"),
        Err(Error::PathNotFound { .. })
    ));
}
