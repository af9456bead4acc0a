//! Checks on catalogue entries. User catalogues are as untrusted as the wheels:
//! names become directory names and paths become file paths, so both are checked
//! before anything touches the disk.

use std::collections::HashSet;

use crate::catalog::{ModelEntry, ModelKind, Part};
use crate::error::{Error, Result};

/// Checks an entry that may not come from a parsed catalogue (its fields are public).
pub(crate) fn check(model: &ModelEntry) -> Result<()> {
    entry(&mut model.clone())
}

/// Validates one entry in place (hashes are normalised to lowercase).
pub(crate) fn entry(entry: &mut ModelEntry) -> Result<()> {
    let (origin, model) = (entry.origin.clone(), entry.name.clone());
    let fail = |problem: String| Error::CatalogInvalid {
        origin: origin.clone(),
        model: model.clone(),
        problem,
    };
    for name in std::iter::once(&entry.name).chain(&entry.aliases) {
        if !is_model_name(name) {
            return Err(fail(format!(
                "`{name}` is not a valid model name (use a-z, 0-9, `.`, `_`, `-`; not starting with `.`)"
            )));
        }
    }
    check_packages(&entry.packages).map_err(fail)?;
    if entry.files.is_empty() {
        return Err(fail("it has no [[model.file]]".into()));
    }
    let mut ids = HashSet::new();
    for archive in &entry.archives {
        if !ids.insert(archive.id.as_str()) {
            return Err(fail(format!("archive id `{}` is used twice", archive.id)));
        }
        check_parts(&archive.parts, entry.packages.len())
            .map_err(|p| fail(format!("archive `{}`: {p}", archive.id)))?;
        if !entry
            .files
            .iter()
            .any(|f| f.archive.as_ref() == Some(&archive.id))
        {
            return Err(fail(format!("archive `{}` is used by no file", archive.id)));
        }
    }
    let mut paths = HashSet::new();
    for file in &mut entry.files {
        let problem = file_problem(file, &ids, entry.packages.len(), &mut paths);
        if let Some(problem) = problem {
            return Err(fail(format!("file `{}`: {problem}", file.path)));
        }
        file.sha256.make_ascii_lowercase();
    }
    let used: HashSet<usize> = entry
        .files
        .iter()
        .flat_map(|f| &f.parts)
        .chain(entry.archives.iter().flat_map(|a| &a.parts))
        .map(|p| p.package)
        .collect();
    if let Some(unused) = (0..entry.packages.len()).find(|i| !used.contains(i)) {
        let package = &entry.packages[unused];
        return Err(fail(format!("package `{package}` is used by no part")));
    }
    kind_problem(entry).map_or(Ok(()), |p| Err(fail(p)))
}

fn file_problem(
    file: &crate::ModelFile,
    archive_ids: &HashSet<&str>,
    packages: usize,
    paths: &mut HashSet<String>,
) -> Option<String> {
    if let Err(reason) = check_relative_path(&file.path) {
        return Some(reason);
    }
    if file.path.ends_with(".partial") {
        return Some("paths ending in `.partial` are reserved for files being assembled".into());
    }
    if !paths.insert(file.path.clone()) {
        return Some("the path is listed twice".into());
    }
    if !is_sha256(&file.sha256) {
        return Some(format!("sha256 `{}` is not 64 hex digits", file.sha256));
    }
    match (&file.archive, file.parts.is_empty()) {
        (Some(_), false) => Some("give either `parts` or `archive`, not both".into()),
        (None, true) => Some("give `parts` or `archive`".into()),
        (None, false) if file.inner.is_some() => Some("`inner` needs `archive`".into()),
        (None, false) => check_parts(&file.parts, packages).err(),
        (Some(id), true) if !archive_ids.contains(id.as_str()) => {
            Some(format!("no [[model.archive]] with id `{id}`"))
        }
        (Some(_), true) => check_relative_path(file.inner_name())
            .err()
            .map(|r| format!("inner: {r}")),
    }
}

fn kind_problem(entry: &ModelEntry) -> Option<String> {
    let top: Vec<&str> = entry
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| !p.contains('/'))
        .collect();
    match entry.kind {
        ModelKind::Generator => {
            let ggufs = entry.files.iter().filter(|f| is_gguf_name(&f.path)).count();
            (ggufs != 1)
                .then(|| format!("a generator needs exactly one .gguf file, it has {ggufs}"))
        }
        ModelKind::Embedder => {
            let ok = top.contains(&"config.json")
                && top.contains(&"tokenizer.json")
                && top.iter().any(|p| p.ends_with(".safetensors"));
            (!ok).then(|| "an embedder needs config.json, tokenizer.json and a *.safetensors file at its top level".into())
        }
    }
}

fn check_packages(packages: &[String]) -> Result<(), String> {
    if packages.is_empty() {
        return Err("it lists no packages".into());
    }
    let mut seen = HashSet::new();
    for spec in packages {
        let Some((name, version)) = spec.split_once("==") else {
            return Err(format!(
                "package `{spec}` must be pinned as `name==version`"
            ));
        };
        let ok_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        let ok_version = !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+!-".contains(c));
        if !ok_name || !ok_version {
            return Err(format!(
                "package `{spec}` is not a valid `name==version` pin"
            ));
        }
        if !seen.insert(crate::pip::normalize_name(name)) {
            return Err(format!("package `{name}` is listed twice"));
        }
    }
    Ok(())
}

fn check_parts(parts: &[Part], packages: usize) -> Result<(), String> {
    if parts.is_empty() {
        return Err("it has no parts".into());
    }
    for part in parts {
        if part.package >= packages {
            return Err(format!(
                "part `{}` refers to package {} but only {packages} are listed (indexes start at 0)",
                part.member, part.package
            ));
        }
        check_relative_path(&part.member).map_err(|r| format!("member: {r}"))?;
    }
    Ok(())
}

/// A relative path with `/` separators, no `..`, `.` or empty components: safe to join
/// under a directory and safe to look up in a zip.
pub(crate) fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') || path.contains('\0') {
        return Err(format!(
            "`{path}` must be a relative path with `/` separators"
        ));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "`{path}` must not contain `..`, `.` or empty components"
        ));
    }
    Ok(())
}

/// Names become directory names under `models/`.
pub(crate) fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

pub(crate) fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn is_gguf_name(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".gguf")
}

/// Names and aliases must not collide across the whole (merged) catalogue.
pub(crate) fn unique_names(entries: &[ModelEntry]) -> Result<()> {
    let mut seen: HashSet<&str> = HashSet::new();
    for entry in entries {
        for name in std::iter::once(&entry.name).chain(&entry.aliases) {
            if !seen.insert(name) {
                return Err(Error::CatalogInvalid {
                    origin: entry.origin.clone(),
                    model: entry.name.clone(),
                    problem: format!("the name `{name}` is already used by another entry"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        for ok in ["a", "a/b.bin", "1_Pooling/config.json", "x..y"] {
            assert!(check_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
            "a/",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn model_names() {
        assert!(is_model_name("qwen2.5-coder-0.5b-instruct"));
        for bad in ["", ".", "..", ".hidden", "a/b", "Upper", "a b"] {
            assert!(!is_model_name(bad), "{bad}");
        }
    }

    #[test]
    fn packages() {
        assert!(check_packages(&["a-b==1.0.0".into()]).is_ok());
        assert!(check_packages(&["a-b>=1.0".into()]).is_err());
        assert!(check_packages(&["a b==1".into()]).is_err());
        assert!(check_packages(&["a-b==1".into(), "A_B==2".into()]).is_err());
    }
}
