//! Integration tests of ragtune-answer, with deterministic fakes (no model is loaded).

mod abstention;
mod ask;
mod budget;
mod citations;
mod eval;
mod expand;
mod fewshot;
mod injection;
mod modes;
mod prompts;
mod pubmedqa;
mod squad;

use ragtune_answer::testing::{FakeGenerator, FixedRetriever, hit};
use ragtune_core::Hit;
use std::path::PathBuf;

/// A file of the shared evaluation data, read in place (never copied into the repository).
pub fn shared_data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(path)
}

/// A scratch file, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("ragtune-answer-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub const BRONCOS: &str = "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina \
Panthers 24-10.";
pub const STADIUM: &str = "The game was played at Levi's Stadium in Santa Clara, California.";
pub const HALFTIME: &str = "Beyonce and Bruno Mars performed at the halftime show.";

/// Three passages about Super Bowl 50, best first.
pub fn hits() -> Vec<Hit> {
    let mut a = hit(11, "docs/nfl.md", BRONCOS, 0.9);
    a.heading_path = vec!["Super Bowl 50".into(), "Result".into()];
    a.start = 120;
    a.end = 120 + BRONCOS.len();
    let mut b = hit(12, "docs/stadium.pdf", STADIUM, 0.7);
    b.page = Some(2);
    b.start = 40;
    b.end = 40 + STADIUM.len();
    let c = hit(13, "docs/halftime.md", HALFTIME, 0.4);
    vec![a, b, c]
}

pub fn retriever() -> FixedRetriever {
    FixedRetriever::new(hits())
}

/// A generator that replies `reply` to everything, with a large context.
pub fn replying(reply: &str) -> FakeGenerator {
    FakeGenerator::table(4096, &[], reply)
}

/// The default options with room for every hit of the fixtures (the default top-k is 2).
pub fn all_hits() -> ragtune_answer::AskOptions {
    ragtune_answer::AskOptions {
        top_k: 5,
        ..ragtune_answer::AskOptions::default()
    }
}
