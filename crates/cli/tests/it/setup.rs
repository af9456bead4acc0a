//! `scripts/deps`, the install step of both README commands: its detection, run over laid-out
//! trees (`--dry-run --root DIR`), must pick what a fresh machine lacks and nothing more.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deps_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/deps")
}

/// What `scripts/deps --dry-run --root root` would install, one package a line.
fn would_install(root: &Path) -> Vec<String> {
    let out = Command::new("bash")
        .arg(deps_script())
        .args(["--dry-run", "--root"])
        .arg(root)
        .env_remove("LIBCLANG_PATH")
        .output()
        .expect("run scripts/deps");
    assert!(
        out.status.success(),
        "scripts/deps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A tree whose tools all run (tiny scripts that exit 0), like a machine with a toolchain.
fn tree_with_tools() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("usr/bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["cmake", "c++", "make", "python3", "chromium", "node", "npm"] {
        let path = bin.join(tool);
        fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn put(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// The real libclang this machine's build loaded (scripts/deps installed it before the build).
fn real_libclang() -> PathBuf {
    let mut found = Vec::new();
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
    ]
    .into_iter()
    .map(PathBuf::from)
    .chain(
        fs::read_dir("/usr/lib")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
            .map(|e| e.path().join("lib")),
    ) {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("libclang.so.") || name.starts_with("libclang-1") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .next()
        .expect("no libclang on this machine, yet the build needed one: run scripts/deps")
}

#[test]
fn fresh_machine_with_only_libclang_cpp_gets_libclang_dev() {
    // A fresh Debian machine with LLVM has libclang-cpp.so.14, which bindgen does not load.
    let root = tree_with_tools();
    put(
        root.path(),
        "usr/lib/x86_64-linux-gnu/libclang-cpp.so.14",
        b"\x7fELF",
    );
    put(
        root.path(),
        "usr/lib/llvm-14/lib/libclang-cpp.so.14",
        b"\x7fELF",
    );
    assert_eq!(would_install(root.path()), ["libclang-dev"]);
}

#[test]
fn a_look_alike_libclang_file_that_does_not_load_is_not_enough() {
    let root = tree_with_tools();
    put(
        root.path(),
        "usr/lib/llvm-14/lib/libclang.so.1",
        b"not a library",
    );
    put(root.path(), "usr/lib/x86_64-linux-gnu/libclang-14.so", b"");
    assert_eq!(would_install(root.path()), ["libclang-dev"]);
}

#[test]
fn a_loadable_libclang_where_bindgen_looks_needs_nothing() {
    let root = tree_with_tools();
    let lib = real_libclang();
    let dest = root.path().join("usr/lib/llvm-14/lib/libclang.so.1");
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&lib, &dest).unwrap();
    assert_eq!(would_install(root.path()), Vec::<String>::new());
}

#[test]
fn an_empty_machine_gets_every_build_tool() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        would_install(root.path()),
        [
            "cmake",
            "g++",
            "make",
            "libclang-dev",
            "python3",
            "python3-pip",
            "chromium",
            "nodejs",
            "npm"
        ]
    );
}
