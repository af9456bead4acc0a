//! The `ragtune` binary, driven as a user would: exit codes, messages, output shapes.

mod answer;
mod compare;
mod full_disk;
mod generate;
mod kb;
mod kb_check;
mod models;
mod raft;
mod remote;
mod serve;
mod setup;
mod train;

use std::path::PathBuf;
use std::process::{Command, Output};

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
