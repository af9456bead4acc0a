//! The web UI in a real browser (Debian's Chromium driven by playwright-core, both installed
//! by scripts/deps; fails, never skips, when either is missing), and the routes it needs.

use crate::{Options, http, start, start_with};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where scripts/deps installs playwright-core (for the compare report's check too).
fn playwright_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compare/tests/browser")
}

fn require_tools() {
    let runs = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    assert!(
        runs(Command::new("node").arg("--version")),
        "node does not run; install it with scripts/deps"
    );
    assert!(
        runs(Command::new(CHROMIUM).arg("--version")),
        "{CHROMIUM} does not run; install Chromium with scripts/deps"
    );
    assert!(
        runs(
            Command::new("node")
                .args(["-e", "require('playwright-core')"])
                .current_dir(playwright_dir())
        ),
        "playwright-core is not installed in {}; run scripts/deps",
        playwright_dir().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_uploads_watches_ingestion_asks_and_opens_the_cited_evidence() -> Result<()> {
    require_tools();
    let s = start(8, false).await?;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ragtune-serve");
    std::fs::create_dir_all(&out)?;
    let shot = out.join("ui.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{}/", s.addr);
    let script = browser_dir().join("ui.mjs");
    let shot_arg = shot.clone();
    let result = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .arg(&shot_arg)
            .arg("How often are the signing keys rotated?")
            .arg("The signing keys are rotated every ninety days by the platform team.")
            .env("RAGTUNE_CHROMIUM", CHROMIUM)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "the UI check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // The upload really reached the knowledge base's folder.
    assert!(s.kb_dir.join("uploads/parking.md").is_file());
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    Ok(())
}

#[tokio::test]
async fn the_page_needs_no_key_but_the_report_does() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys.json");
    let (_, secret) =
        ragtune_serve::keys::create(&keys, ragtune_serve::keys::Scope::Read, None, String::new())?;
    let report = dir.path().join("report.html");
    std::fs::write(&report, "<html><body>the comparison</body></html>")?;
    let s = start_with(Options {
        keys: Some(keys),
        report: Some(report),
        ..Options::default()
    })
    .await?;
    let (status, headers, page) = http(s.addr, "GET", "/", "").await?;
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: text/html"), "{headers}");
    assert!(page.contains("<title>ragtune</title>"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    let (status, _, config) = http(s.addr, "GET", "/ui/config", "").await?;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&config)?;
    assert_eq!(config["keys_required"], true);
    assert_eq!(config["report"], true);
    assert_eq!(http(s.addr, "GET", "/report", "").await?.0, 401);
    let auth = format!("Bearer {secret}");
    let (status, _, body) =
        crate::http_with(s.addr, "GET", "/report", &[("Authorization", &auth)], b"").await?;
    assert_eq!(status, 200);
    assert!(body.contains("the comparison"));
    Ok(())
}
