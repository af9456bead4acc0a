use ragtune_catalog::{Error, InstallState, ModelKind};

use crate::support::{Fixture, TestResult};

#[test]
fn list_shows_every_entry_and_unknown_folders() -> TestResult {
    let fx = Fixture::new();
    let listing = fx.store.list()?;
    assert_eq!(listing.models.len(), 2);
    assert!(
        listing
            .models
            .iter()
            .all(|m| m.state == InstallState::Missing && m.size_on_disk == 0)
    );
    assert!(listing.extra.is_empty());

    fx.pull("fake-gen").0?;
    std::fs::create_dir_all(fx.model_dir("fake-emb").join("1_Pooling"))?;
    std::fs::create_dir_all(fx.model_dir("my-own"))?;
    std::fs::write(fx.model_dir("my-own").join("w.gguf"), b"GGUF1234")?;

    let listing = fx.store.list()?;
    let generator = &listing.models[0];
    assert_eq!(
        (generator.name.as_str(), generator.kind),
        ("fake-gen", ModelKind::Generator)
    );
    assert!(generator.default);
    assert_eq!(generator.state, InstallState::Installed);
    assert_eq!(generator.path, fx.model_dir("fake-gen").join("fake.gguf"));
    let expected = (fx.fake.gguf.len() + fx.fake.license.len()) as u64;
    assert_eq!(generator.size_on_disk, expected);
    assert_eq!(generator.origin, "test catalogue");
    let embedder = &listing.models[1];
    assert_eq!(
        (embedder.state, embedder.default),
        (InstallState::Partial, false)
    );
    assert_eq!(embedder.path, fx.model_dir("fake-emb"));
    assert_eq!(listing.extra.len(), 1);
    assert_eq!(listing.extra[0].name, "my-own");
    assert_eq!(listing.extra[0].size_on_disk, 8);
    Ok(())
}

#[test]
fn rm_removes_an_installed_model() -> TestResult {
    let fx = Fixture::new();
    fx.pull("fake-gen").0?;
    let removed = fx.store.rm("fg")?;
    assert_eq!(removed.name, "fake-gen");
    assert_eq!(removed.dir, fx.model_dir("fake-gen"));
    assert_eq!(
        removed.bytes,
        (fx.fake.gguf.len() + fx.fake.license.len()) as u64
    );
    assert!(!removed.dir.exists());
    assert!(matches!(
        fx.store.resolve("fake-gen"),
        Err(Error::NotInstalled { .. })
    ));

    let err = fx.store.rm("fake-gen").unwrap_err();
    assert!(matches!(err, Error::NothingToRemove { .. }), "{err:?}");
    assert!(err.to_string().contains("not installed"));
    Ok(())
}

#[test]
fn rm_removes_unknown_folders_but_nothing_outside_the_store() -> TestResult {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.model_dir("my-own"))?;
    assert_eq!(fx.store.rm("my-own")?.dir, fx.model_dir("my-own"));
    assert!(!fx.model_dir("my-own").exists());

    // `..` is not a model: the store's parent survives.
    std::fs::create_dir_all(fx.store.models_dir())?;
    for name in ["..", "../home", "nope", ""] {
        let err = fx.store.rm(name).unwrap_err();
        assert!(matches!(err, Error::UnknownModel { .. }), "{name}: {err:?}");
    }
    assert!(fx.store.models_dir().is_dir());
    assert!(
        fx.store
            .rm("llama")
            .unwrap_err()
            .to_string()
            .contains("fake-gen (fg)")
    );
    Ok(())
}
