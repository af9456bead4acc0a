//! Replays the saved fuzzing corpora (`fuzz/corpus/TARGET/`: the inputs libFuzzer kept because
//! they reached new code, findings included) through the same entries the fuzzers run.

use std::path::PathBuf;

fn replay(target: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let inputs = files_in(&dir);
    assert!(
        !inputs.is_empty(),
        "no saved corpus in {}: run scripts/fuzz",
        dir.display()
    );
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(|| ragtune_fuzz::run(target, &data));
        assert!(outcome.is_ok(), "{target} broke on {}", input.display());
    }
    ragtune_fuzz::remove_scratch();
}

fn files_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_replay_test() {
    let source = include_str!("replay.rs");
    for target in ragtune_fuzz::TARGETS {
        assert!(
            source.contains(&format!("    {target},\n")),
            "{target} is not replayed"
        );
    }
}

macro_rules! replay_tests {
    ($($target:ident,)*) => {
        $(#[test]
        fn $target() {
            replay(stringify!($target));
        })*
    };
}

replay_tests! {
    pdf,
    docx,
    xlsx,
    pptx,
    odt,
    epub,
    html,
    markdown,
    csv,
    json,
    jsonl,
    text,
    gguf_header,
    chat_template,
    sft_data,
    catalog,
    server_request,
}
