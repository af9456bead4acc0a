//! The `ragtune` binary, driven as a user would: exit codes, messages, output shapes.

mod answer;
mod compare;
mod full_disk;
mod generate;
mod kb;
mod kb_check;
mod models;
mod postgres;
mod raft;
mod remote;
mod serve;
mod setup;
mod train;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn ragtune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ragtune"))
}

/// Runs and returns (exit success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run ragtune");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The installed SmolLM2 (scripts/test pulls it; a missing model fails the test).
pub fn smollm2_path() -> PathBuf {
    let store = ragtune_catalog::ModelStore::from_env().expect("model store");
    store
        .resolve("smollm2-135m-instruct")
        .unwrap_or_else(|e| panic!("{e}"))
        .path()
        .to_path_buf()
}

/// Two small Markdown files (signing keys, the espresso machine) in DIR/docs, ingested into
/// DIR/kb with the default embedder; returns (docs, kb).
pub fn keys_and_coffee(dir: &Path) -> (PathBuf, PathBuf) {
    let docs = dir.join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(
        docs.join("keys.md"),
        "# Keys\n\nThe signing keys are rotated every ninety days by the platform team.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("coffee.md"),
        "# Coffee\n\nThe espresso machine is on the third floor, next to the library.\n",
    )
    .unwrap();
    let kb = dir.join("kb");
    let (ok, _, err) = run(ragtune().env("RAGTUNE_KB", &kb).arg("ingest").arg(&docs));
    assert!(ok, "{err}");
    (docs, kb)
}

/// `ragtune serve` of SmolLM2 on a free loopback port (for [`Served::start`]).
pub fn serve_smollm2() -> Command {
    let mut cmd = ragtune();
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .args(["--model", "smollm2-135m-instruct"]);
    cmd
}

/// A `ragtune serve` process, killed when the test ends, however it ends.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
}

impl Served {
    /// Starts `ragtune serve ARGS` (with `--addr 127.0.0.1:0` among them) and waits for the
    /// address it listens on.
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut served = Served {
            child,
            url: String::new(),
        };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        served.url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        served
    }
}

impl Served {
    /// The server's process id (the one started: re-running itself keeps it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
