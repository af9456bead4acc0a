//! Jobs on a disk that fills up: a small tmpfs mounted in a private mount namespace (`unshare`),
//! so nothing outside the test sees it, grown to 64 MB halfway. The job must stop with an error
//! that says the disk is full, keep what it had saved, and finish once space is back.

use std::path::Path;
use std::process::Command;

/// Runs `script` (sh) where `$MNT` is a fresh tmpfs of `size` (`1m`); the script grows it.
fn on_a_small_disk(size: &str, script: &str, mnt: &Path, env: &[(&str, &Path)]) {
    let script =
        format!("set -u\nmount -t tmpfs -o size={size} tmpfs \"$MNT\" || exit 90\n{script}");
    // Root maps to the caller (-r), so this runs without privileges where user namespaces are
    // allowed; as root it works either way.
    let mut cmd = Command::new("unshare");
    cmd.args(["-r", "-m", "sh", "-c", &script])
        .env("RAGTUNE", env!("CARGO_BIN_EXE_ragtune"))
        .env("MNT", mnt);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("unshare (util-linux) runs");
    assert!(
        status.success(),
        "the mount namespace could not be set up: {status}"
    );
}

/// The first run (`1.rc`, `1.err`) failed with an error saying each of `says`, not a panic;
/// returns the error.
fn failed_saying(out: &Path, says: &[&str]) -> String {
    assert_ne!(
        read(out, "1.rc").trim(),
        "0",
        "the job succeeded on a full disk"
    );
    let err = read(out, "1.err");
    for s in says {
        assert!(err.contains(s) && !err.contains("panicked"), "{err}");
    }
    err
}

const INGEST: &str = r#"
"$RAGTUNE" ingest --kb "$MNT/kb" "$DOCS" >"$OUT/1.out" 2>"$OUT/1.err"; echo $? >"$OUT/1.rc"
"$RAGTUNE" kb check --json --kb "$MNT/kb" >"$OUT/check1.json" 2>"$OUT/check1.err"
mount -o remount,size=64m "$MNT" || exit 91
"$RAGTUNE" ingest --kb "$MNT/kb" "$DOCS" >"$OUT/2.out" 2>"$OUT/2.err"; echo $? >"$OUT/2.rc"
"$RAGTUNE" kb check --json --kb "$MNT/kb" >"$OUT/check2.json" 2>"$OUT/check2.err"
echo $? >"$OUT/check2.rc"
"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn ingest_on_a_full_disk_keeps_what_it_saved_and_finishes_once_space_is_back() {
    let work = tempfile::tempdir().unwrap();
    let (docs, mnt, out) = (
        work.path().join("docs"),
        work.path().join("mnt"),
        work.path(),
    );
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    // 30 files of about 12 KB: some 330 chunks, several MB of SQLite, BM25 and vectors.
    let words = [
        "valve", "pump", "cable", "tower", "harbour", "meadow", "signal", "bridge",
    ];
    for i in 0..30 {
        let mut text = String::new();
        for p in 0..12 {
            for w in 0..120 {
                text.push_str(words[(i * 7 + p * 3 + w * w) % words.len()]);
                text.push(' ');
            }
            text.push_str(&format!("document {i} paragraph {p}.\n\n"));
        }
        std::fs::write(docs.join(format!("doc{i:02}.txt")), text).unwrap();
    }
    on_a_small_disk("1m", INGEST, &mnt, &[("DOCS", &docs), ("OUT", out)]);

    let err = failed_saying(out, &["the disk is full", "kb"]);
    assert!(!err.contains("backup"), "{err}");
    // The cause is said once, not again by the error chain.
    assert_eq!(err.matches("database or disk is full").count(), 1, "{err}");

    let saved: serde_json::Value = serde_json::from_str(&read(out, "check1.json"))
        .unwrap_or_else(|e| panic!("{e}: {}", read(out, "check1.err")));
    let kept = saved["documents"].as_u64().unwrap();
    assert!(kept > 0 && kept < 30, "{saved}");
    assert_eq!(saved["chunks_without_document"], 0, "{saved}");

    assert_eq!(read(out, "2.rc").trim(), "0", "{}", read(out, "2.err"));
    let summary = read(out, "2.out");
    assert!(
        summary.contains(&format!("added {}", 30 - kept))
            && summary.contains(&format!("unchanged {kept}")),
        "{summary}"
    );
    assert_eq!(
        read(out, "check2.rc").trim(),
        "0",
        "{}",
        read(out, "check2.json")
    );
    let done: serde_json::Value = serde_json::from_str(&read(out, "check2.json")).unwrap();
    assert_eq!(done["documents"], 30, "{done}");
}

const TRAIN: &str = r#"
args="train sft --base $MODEL --data $DATA --out $MNT/run --max-steps 4 --save-every 2 --threads 1"
"$RAGTUNE" $args >"$OUT/1.out" 2>"$OUT/1.err"; echo $? >"$OUT/1.rc"
ls "$MNT/run/checkpoints" >"$OUT/checkpoints" 2>&1
mount -o remount,size=64m "$MNT" || exit 91
"$RAGTUNE" $args --resume >"$OUT/2.out" 2>"$OUT/2.err"; echo $? >"$OUT/2.rc"
ls "$MNT/run" >"$OUT/run"
"#;

#[test]
fn training_on_a_full_disk_says_so_and_resumes_once_space_is_back() {
    let work = tempfile::tempdir().unwrap();
    let (mnt, out, data) = (
        work.path().join("mnt"),
        work.path(),
        work.path().join("sft.jsonl"),
    );
    std::fs::create_dir_all(&mnt).unwrap();
    let lines: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"prompt": "Code {i}?", "completion": "Code {i} is blue-{i}."}}"#))
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let model = crate::smollm2_path();
    // One checkpoint (about 5.5 MB: LoRA weights and both AdamW moments) fits, the second
    // (written before the first is removed) does not.
    on_a_small_disk(
        "8m",
        TRAIN,
        &mnt,
        &[("DATA", &data), ("OUT", out), ("MODEL", &model)],
    );

    failed_saying(out, &["the disk is full", "--resume"]);
    // The whole checkpoint is kept, the half-written one removed (its space given back).
    let checkpoints = read(out, "checkpoints");
    assert!(
        checkpoints.contains("step-000002") && !checkpoints.contains(".partial"),
        "{checkpoints}"
    );

    assert_eq!(read(out, "2.rc").trim(), "0", "{}", read(out, "2.err"));
    assert!(
        read(out, "2.err").contains("resumed at step 2"),
        "{}",
        read(out, "2.err")
    );
    let run = read(out, "run");
    for file in ["adapter_model.safetensors", "adapter.gguf", "training.json"] {
        assert!(run.contains(file), "{run}");
    }
}

const PULL: &str = r#"
export RAGTUNE_HOME="$MNT/home"
"$RAGTUNE" models pull small-model >"$OUT/0.out" 2>"$OUT/0.err"; echo $? >"$OUT/0.rc"
"$RAGTUNE" models pull big-model >"$OUT/1.out" 2>"$OUT/1.err"; echo $? >"$OUT/1.rc"
"$RAGTUNE" models pull small-model >"$OUT/kept.out" 2>&1; echo $? >"$OUT/kept.rc"
mount -o remount,size=64m "$MNT" || exit 91
"$RAGTUNE" models pull big-model >"$OUT/2.out" 2>"$OUT/2.err"; echo $? >"$OUT/2.rc"
find "$MNT/home" -type f >"$OUT/files"
"#;

/// Bytes that do not compress (a wheel of them is as large as they are).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A 3 MB model pulled into 2 MB (pip's download fails) and into 4 MB (the download fits,
/// assembling the model file does not): the error says the disk is full, the model pulled
/// before stays installed, and the pull completes once space is back.
#[test]
fn pull_on_a_full_disk_keeps_installed_models_and_finishes_once_space_is_back() {
    let work = tempfile::tempdir().unwrap();
    let wheels = work.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let mut catalog = String::new();
    for (name, len) in [("small-model", 10_000), ("big-model", 3_000_000)] {
        let mut gguf = b"GGUF\x03\0\0\0".to_vec();
        gguf.extend(noise(len, len as u64));
        let package = format!("ragtune-{name}");
        let member = format!("{}/model.gguf", package.replace('-', "_"));
        crate::models::write_wheel(&wheels, &package, &member, &gguf);
        catalog += &format!(
            "[[model]]\nname = \"{name}\"\nkind = \"generator\"\ndescription = \"noise\"\n\
             packages = [\"{package}==0.1.0\"]\n\n[[model.file]]\npath = \"model.gguf\"\n\
             sha256 = \"{}\"\nsize = {}\nparts = [{{ package = 0, member = \"{member}\" }}]\n\n",
            sha256_hex(&gguf),
            gguf.len()
        );
    }
    let catalog_path = work.path().join("catalog.toml");
    std::fs::write(&catalog_path, catalog).unwrap();
    for (size, full) in [("2m", "pip could not save"), ("4m", "model.gguf.partial")] {
        let out = work.path().join(format!("out-{size}"));
        let mnt = work.path().join(format!("mnt-{size}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        on_a_small_disk(
            size,
            PULL,
            &mnt,
            &[
                ("OUT", &out),
                ("RAGTUNE_CATALOG", &catalog_path),
                ("PIP_FIND_LINKS", &wheels),
                ("PIP_NO_INDEX", Path::new("1")),
                ("PIP_DISABLE_PIP_VERSION_CHECK", Path::new("1")),
            ],
        );
        assert_eq!(read(&out, "0.rc").trim(), "0", "{}", read(&out, "0.err"));
        failed_saying(&out, &["the disk is full", full, "pull again"]);
        // The model pulled before is still whole (a pull re-hashes what is installed).
        let kept = read(&out, "kept.out");
        assert_eq!(read(&out, "kept.rc").trim(), "0", "{kept}");
        assert!(kept.contains("already"), "{size}: {kept}");
        assert_eq!(
            read(&out, "2.rc").trim(),
            "0",
            "{size}: {}",
            read(&out, "2.err")
        );
        let files = read(&out, "files");
        assert!(
            files.contains("models/big-model/model.gguf")
                && !files.contains(".partial")
                && !files.contains(".whl"),
            "{size}: {files}"
        );
    }
}
