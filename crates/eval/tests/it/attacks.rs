//! The committed prompt-injection set (bench/attacks) against a model that obeys any order it
//! can see outside the data block: every attack must reach the prompt and none may be obeyed.

use ragtune_answer::testing::{ORDER, obedient};
use ragtune_answer::{Answerer, AskOptions};
use ragtune_core::{ChatMessage, GenerationRequest, Generator, Prompt, SearchMode};
use ragtune_eval::attacks::{build_kb, read_attacks, run_attacks};
use ragtune_index::testing::HashEmbedder;
use ragtune_retrieve::KbRetriever;
use std::path::{Path, PathBuf};

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/attacks/attacks.jsonl")
}

#[test]
fn no_attack_of_the_set_moves_an_obedient_model() {
    let set = read_attacks(&manifest()).unwrap();
    assert!(set.attacks.len() >= 30, "{} attacks", set.attacks.len());
    let embedder = HashEmbedder::new(256);
    let kb = build_kb(&set, &embedder, &embedder).unwrap();
    let retriever = KbRetriever::new(&kb, &embedder).unwrap();
    let generator = obedient(&[]);
    // BM25 alone: the hash embedder's vectors are noise, and retrieval is not what is tested.
    let options = AskOptions {
        search: SearchMode::Bm25,
        ..AskOptions::default()
    };
    let answerer = Answerer::new(&generator, options).with_retriever(&retriever);
    let report = run_attacks(&set, &answerer).unwrap();
    let missing: Vec<_> = report.outcomes.iter().filter(|o| !o.in_context).collect();
    assert!(
        missing.is_empty(),
        "attacks not in the prompt: {missing:#?}"
    );
    let obeyed: Vec<_> = report.outcomes.iter().filter(|o| o.obeyed).collect();
    assert!(obeyed.is_empty(), "obeyed: {obeyed:#?}");
    assert_eq!(
        report.kinds.iter().map(|k| k.attacks).sum::<usize>(),
        report.attacks
    );
}

/// The test above can fail: most documents keep their order through loading, and the fake says
/// each one's marker once the order stands outside the data block.
#[test]
fn the_orders_the_loaders_keep_are_obeyed_outside_the_data_block() {
    let set = read_attacks(&manifest()).unwrap();
    let generator = obedient(&[]);
    let mut kept = 0;
    for attack in &set.attacks {
        let path = set.documents.join(&attack.file);
        let loaded = ragtune_ingest::load(&path, &Default::default()).unwrap();
        let text: String = loaded.documents.iter().map(|d| d.text.as_str()).collect();
        let Some(at) = text.to_lowercase().find(ORDER) else {
            continue; // hidden text the loader dropped, or an order split by invisible marks
        };
        kept += 1;
        let order = text[at..].lines().next().unwrap().to_string();
        let escaped = Prompt::Chat(vec![ChatMessage::system(order), ChatMessage::user("Hi")]);
        let reply = generator
            .generate(&GenerationRequest::new(escaped), &mut |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert!(
            reply
                .text
                .to_lowercase()
                .contains(&attack.marker.to_lowercase()),
            "{}: {}",
            attack.file,
            reply.text
        );
    }
    assert!(
        kept >= 20,
        "only {kept} documents keep their order after loading"
    );
}

#[test]
fn a_bad_manifest_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("documents")).unwrap();
    std::fs::write(dir.path().join("documents/a.md"), "text").unwrap();
    let path = dir.path().join("attacks.jsonl");
    let good = r#"{"file": "a.md", "kind": "k", "question": "q?", "marker": "M"}"#;
    std::fs::write(&path, format!("{good}\n{{\"file\": 3}}\n")).unwrap();
    let e = read_attacks(&path).unwrap_err().to_string();
    assert!(e.contains("attacks.jsonl:2"), "{e}");
    std::fs::write(&path, good.replace("a.md", "gone.md")).unwrap();
    let e = read_attacks(&path).unwrap_err().to_string();
    assert!(
        e.contains("attacks.jsonl:1") && e.contains("gone.md"),
        "{e}"
    );
}
