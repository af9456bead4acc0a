//! The output folder of a run: trained into only when it is new, empty, or an earlier ragtune
//! run's, so that a run never replaces files it did not write (`loss.csv`, `training.json`, ...).

use crate::error::{Error, Result};
use crate::trainer::CHECKPOINTS;
use std::path::Path;

/// The run summary [`crate::run`] writes into the output folder at the end of a run; its
/// `kind` is `"sft"` or `"cpt"`.
pub const TRAINING_JSON: &str = "training.json";

/// The GGUF LoRA in the output folder (what `--adapter DIR` loads); the PEFT files are
/// [`crate::peft::CONFIG_FILE`] and [`crate::peft::WEIGHTS_FILE`].
pub const ADAPTER_GGUF: &str = "adapter.gguf";

/// Makes `out` ready for a run. A missing folder is created and an empty one used. A folder an
/// earlier ragtune run wrote (its `checkpoints/` or its `training.json`) is used when it holds
/// no checkpoints, or with `resume`. Any other existing path is refused, `resume` or not.
pub fn prepare(out: &Path, resume: bool) -> Result<()> {
    let refuse = |reason: String| Error::OutDir {
        path: out.to_path_buf(),
        reason,
    };
    if !out.exists() {
        return std::fs::create_dir_all(out).map_err(|e| Error::Write {
            path: out.to_path_buf(),
            reason: e.to_string(),
        });
    }
    if !out.is_dir() {
        return Err(refuse(
            "it is a file, not a folder; choose a new or empty folder for --out".into(),
        ));
    }
    let mut names: Vec<String> = fs_err::read_dir(out)
        .map_err(Error::File)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::File)?;
    if names.is_empty() {
        return Ok(());
    }
    if !is_ragtune_run(out) {
        names.sort();
        let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 3 { ", ..." } else { "" };
        return Err(refuse(format!(
            "it already holds files ({shown}{more}) and is not the folder of an earlier ragtune \
             run (no checkpoint under {CHECKPOINTS}/, no {TRAINING_JSON} written by ragtune), so training would \
             replace files in it such as loss.csv and {TRAINING_JSON}; choose an empty or new \
             folder for --out (--resume continues only a folder that ragtune trained into)"
        )));
    }
    if out.join(CHECKPOINTS).exists() && !resume {
        return Err(refuse(
            "it holds checkpoints of an earlier run; pass --resume to continue it, or choose a \
             new --out"
                .into(),
        ));
    }
    Ok(())
}

/// Whether `dir` holds what a ragtune run writes: a checkpoint (or one being written) under
/// `checkpoints/`, or a `training.json` run summary.
fn is_ragtune_run(dir: &Path) -> bool {
    let checkpoints = std::fs::read_dir(dir.join(CHECKPOINTS)).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "latest" || name.starts_with("step-")
        })
    });
    let summary = std::fs::read_to_string(dir.join(TRAINING_JSON))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| matches!(v["kind"].as_str(), Some("sft" | "cpt")));
    checkpoints || summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(out: &Path, resume: bool) -> String {
        match prepare(out, resume) {
            Err(e @ Error::OutDir { .. }) => e.to_string(),
            other => panic!("{}: expected a refusal, got {other:?}", out.display()),
        }
    }

    #[test]
    fn unrelated_non_empty_out_folder_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join(crate::trainer::LOSS_CSV), "my data").unwrap();
        std::fs::write(out.join(TRAINING_JSON), r#"{"mine": true}"#).unwrap();
        for resume in [false, true] {
            let err = refused(out, resume);
            assert!(
                err.contains(&out.display().to_string())
                    && err.contains("loss.csv, training.json")
                    && err.contains("not the folder of an earlier ragtune run")
                    && err.contains("choose an empty or new folder for --out"),
                "{err}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(out.join("loss.csv")).unwrap(),
            "my data"
        );
        // Another tool's checkpoints folder does not make it a ragtune run.
        std::fs::create_dir(out.join(CHECKPOINTS)).unwrap();
        std::fs::write(out.join(CHECKPOINTS).join("epoch=3.ckpt"), "").unwrap();
        refused(out, true);
        // A file is not a folder.
        refused(&out.join("loss.csv"), false);
    }

    #[test]
    fn new_or_empty_folders_and_ragtune_runs_follow_the_checkpoint_rule() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        prepare(&new, false).unwrap();
        assert!(new.is_dir());
        prepare(&new, false).unwrap();
        prepare(&new, true).unwrap();

        // A run with a checkpoint: only with --resume.
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join(CHECKPOINTS).join("step-000002")).unwrap();
        std::fs::write(run.join(CHECKPOINTS).join("latest"), "step-000002").unwrap();
        std::fs::write(run.join("loss.csv"), "step\n").unwrap();
        let err = refused(&run, false);
        assert!(err.contains("pass --resume"), "{err}");
        prepare(&run, true).unwrap();

        // A run killed while writing its first checkpoint is a ragtune run too.
        let killed = dir.path().join("killed");
        std::fs::create_dir_all(killed.join(CHECKPOINTS).join("step-000050.partial")).unwrap();
        assert!(refused(&killed, false).contains("pass --resume"));
        prepare(&killed, true).unwrap();

        // A finished run whose checkpoints were removed is recognised by its summary.
        let done = dir.path().join("done");
        std::fs::create_dir(&done).unwrap();
        std::fs::write(done.join(TRAINING_JSON), r#"{"kind": "cpt", "steps": 3}"#).unwrap();
        std::fs::write(done.join("adapter.gguf"), "").unwrap();
        prepare(&done, false).unwrap();
    }
}
