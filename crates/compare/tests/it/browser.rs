//! The HTML report in a real browser: Debian's Chromium driven by playwright-core
//! (`crates/compare/tests/browser`). Fails, never skips, when either is missing.

use ragtune_compare::{Options, build, recommend, render};
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Panics with what to run when node, Chromium or playwright-core is missing.
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
                .current_dir(browser_dir())
        ),
        "playwright-core is not installed in {}; run scripts/deps (it runs npm ci there)",
        browser_dir().display()
    );
}

#[test]
fn the_html_report_renders_in_chromium() {
    require_tools();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ragtune-compare");
    fs_err::create_dir_all(&out).unwrap();
    // A user-chosen name with markup in it must show as text.
    let mut rs = crate::fixtures::runs();
    let odd = "closed_book@<qwen & \"friends\">";
    rs[3].name = odd.into();
    let mut report = build(
        &rs,
        &crate::fixtures::scenarios(),
        &crate::fixtures::prices(),
        &Options::default(),
    )
    .unwrap();
    report.recommendation = Some(recommend(
        &report,
        &ragtune_compare::Profile {
            changes_per_month: 4.0,
            ..Default::default()
        },
    ));
    let html = out.join("report.html");
    let png = out.join("report.png");
    fs_err::write(&html, render::html(&report)).unwrap();
    let _ = fs_err::remove_file(&png);
    let result = Command::new("node")
        .arg(browser_dir().join("check.mjs"))
        .arg(&html)
        .arg(&png)
        .args(["5", "Use rag@qwen2.5-0.5b (rag)", odd])
        .env("RAGTUNE_CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "the page did not render cleanly:\n{stdout}\n{stderr}"
    );
    let bytes = fs_err::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 20_000,
        "screenshot {}",
        png.display()
    );
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn the_browser_check_rejects_a_broken_page() {
    // The checker itself must be able to fail: a console error, a plot of zero size, a
    // hidden recommendation and a missing text are each reported.
    require_tools();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ragtune-compare");
    fs_err::create_dir_all(&out).unwrap();
    let html = out.join("broken.html");
    fs_err::write(
        &html,
        "<!DOCTYPE html><html><body>\
         <script>console.error('broken on purpose')</script>\
         <svg class=\"plot\" width=\"0\" height=\"0\" aria-label=\"empty\"></svg>\
         <section id=\"recommendation\" style=\"display:none\"><p>Use x</p></section>\
         </body></html>",
    )
    .unwrap();
    let result = Command::new("node")
        .arg(browser_dir().join("check.mjs"))
        .arg(&html)
        .arg(out.join("broken.png"))
        .args(["1", "Use x", "a text that is not there"])
        .env("RAGTUNE_CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "a broken page passed: {stderr}");
    for problem in [
        "console error: broken on purpose",
        "plot \"empty\" has size 0x0",
        "the recommendation is not visible",
        "the page does not show the text \"a text that is not there\"",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem} not reported in:\n{stderr}"
        );
    }
}
