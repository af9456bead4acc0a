//! Crash safety: a child process syncs and is killed with SIGKILL at several points; after
//! each kill the knowledge base must open, be consistent and answer queries, and the final
//! sync must leave exactly what a clean ingest leaves.
//!
//! The child is this test binary, re-run on the `crash_child` test with an environment
//! variable naming the folders (the "test re-executes itself" pattern).

use crate::support::{assert_consistent, bm25_sources, embedder, snapshot};
use anyhow::{Context, Result};
use ragtune_core::{EmbedError, Embedder};
use ragtune_index::testing::{HashEmbedder, PlainTextSource};
use ragtune_index::{KnowledgeBase, SyncEvent, SyncOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENV: &str = "RAGTUNE_CRASH_CHILD";

/// The hash embedder, slowed down so kills land in the middle of the work.
struct Slow(HashEmbedder);

impl Embedder for Slow {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn dimension(&self) -> usize {
        self.0.dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        std::thread::sleep(Duration::from_millis(5));
        self.0.embed(texts)
    }
}

/// Runs only as the child: syncs `<docs>` into `<kb>`, printing a line per event.
#[test]
fn crash_child() -> Result<()> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    let (kb_dir, docs) = spec.split_once('|').context("spec is kb|docs")?;
    let mut kb = KnowledgeBase::open(Path::new(kb_dir), &embedder())?;
    println!("opened");
    let options = SyncOptions {
        batch_chunks: 6,
        checkpoint_every: 5,
        rehash: false,
    };
    let mut out = std::io::stdout();
    let mut progress = |e: &SyncEvent<'_>| {
        let line = match e {
            SyncEvent::File { .. } => "file".to_owned(),
            SyncEvent::Checkpoint { .. } => "checkpoint".to_owned(),
            SyncEvent::Deleted { .. } => "deleted".to_owned(),
            _ => return,
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    kb.sync(
        &[docs.into()],
        &PlainTextSource,
        &Slow(embedder()),
        &options,
        &mut progress,
    )?;
    println!("done");
    Ok(())
}

/// Starts the child and kills it after it printed `after` lines matching `what` (or after
/// `delay`). Returns whether it was killed before finishing.
fn run_child(
    kb: &Path,
    docs: &Path,
    what: &str,
    after: usize,
    delay: Option<Duration>,
) -> Result<bool> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "crash::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, format!("{}|{}", kb.display(), docs.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let start = Instant::now();
    let mut seen = 0;
    let mut finished = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line == "done" {
            finished = true;
            break;
        }
        if line == what {
            seen += 1;
        }
        if delay.is_some_and(|d| start.elapsed() >= d) || (delay.is_none() && seen >= after) {
            break;
        }
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok(!finished)
}

fn write_docs(dir: &Path, n: usize, generation: usize) -> Result<()> {
    for i in 0..n {
        let text = format!(
            "# Doc {i}\n\nalpha{i} paragraph one of generation{generation}\n\nbeta{i} second paragraph\n\ngamma{i} third"
        );
        std::fs::write(dir.join(format!("doc{i:03}.txt")), text)?;
    }
    Ok(())
}

fn check_opens_and_answers(kb_dir: &Path) -> Result<()> {
    let kb = KnowledgeBase::open(kb_dir, &embedder())?;
    assert_consistent(&kb);
    // Every document present is complete and findable.
    for d in kb.documents()? {
        assert_eq!(d.chunk_count, 3, "{}", d.source);
    }
    if kb.health()?.documents > 0 {
        assert!(!kb.bm25_search("paragraph", 5, None)?.is_empty());
    }
    Ok(())
}

#[test]
fn killed_sync_leaves_a_sound_knowledge_base_and_the_next_sync_completes_it() -> Result<()> {
    let docs = tempfile::tempdir()?;
    let docs_root = docs.path().canonicalize()?;
    let kb_dir = tempfile::tempdir()?;
    write_docs(&docs_root, 60, 0)?;

    // Kill points: after N files, during checkpoints, and at wall-clock offsets.
    let points: [(&str, usize, Option<u64>); 7] = [
        ("file", 3, None),
        ("checkpoint", 2, None),
        ("file", 17, None),
        ("opened", 1, None),
        ("checkpoint", 1, None),
        ("file", 1, Some(40)),
        ("file", 1, Some(90)),
    ];
    let mut killed = 0;
    for (round, &(what, after, delay)) in points.iter().enumerate() {
        if round == 4 {
            // Changes between runs: updates and deletions get killed too.
            write_docs(&docs_root, 40, 1)?;
            for i in 50..60 {
                std::fs::remove_file(docs_root.join(format!("doc{i:03}.txt")))?;
            }
        }
        let delay = delay.map(Duration::from_millis);
        if run_child(kb_dir.path(), &docs_root, what, after, delay)? {
            killed += 1;
        }
        check_opens_and_answers(kb_dir.path())
            .with_context(|| format!("after kill {round} ({what} {after} {delay:?})"))?;
    }
    assert!(
        killed >= 4,
        "only {killed} children were killed before finishing"
    );

    // Finish with a normal run and compare with a clean ingest of the same files.
    let mut kb = KnowledgeBase::open(kb_dir.path(), &embedder())?;
    crate::support::sync(&mut kb, std::slice::from_ref(&docs_root))?;
    assert_consistent(&kb);
    let clean_dir = tempfile::tempdir()?;
    let mut clean = KnowledgeBase::open(clean_dir.path(), &embedder())?;
    crate::support::sync(&mut clean, std::slice::from_ref(&docs_root))?;
    assert_eq!(snapshot(&kb), snapshot(&clean));
    assert_eq!(kb.health()?.chunks, 150);
    assert_eq!(bm25_sources(&kb, "alpha7"), bm25_sources(&clean, "alpha7"));
    assert!(
        bm25_sources(&kb, "generation0")
            .iter()
            .all(|s| !s.contains("doc00"))
    );
    Ok(())
}
