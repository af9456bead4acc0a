//! `ragtune_raft::build` over an in-memory knowledge base with the hash embedder: no model.

mod infer;

use anyhow::Result;
use ragtune_core::{Chunk, Format};
use ragtune_index::{DocumentRecord, KnowledgeBase, testing::HashEmbedder};
use ragtune_raft::{
    AnswerFormat, BuildSpec, DistractorSource, Error, GORILLA_FILE, MANIFEST_FILE, SkipReason,
    TRAIN_FILE, abstain_answer, build, quotes,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

const LANDS: usize = 20;

fn fact(i: usize) -> String {
    format!(
        "Land{i} lies by the sea and has old rivers. The capital of Land{i} is City{i}. \
         Its markets sell fish and grain."
    )
}

fn embedder() -> HashEmbedder {
    HashEmbedder::new(64)
}

fn kb_of(embedder: &HashEmbedder, docs: &[(String, String)]) -> Result<KnowledgeBase> {
    let docs: Vec<(String, Vec<String>)> = docs
        .iter()
        .map(|(source, text)| (source.clone(), vec![text.clone()]))
        .collect();
    kb_of_chunks(embedder, &docs)
}

/// A knowledge base whose documents are the given chunks, in order.
fn kb_of_chunks(embedder: &HashEmbedder, docs: &[(String, Vec<String>)]) -> Result<KnowledgeBase> {
    let mut kb = KnowledgeBase::in_memory(embedder)?;
    for (source, texts) in docs {
        let mut start = 0;
        let chunks: Vec<Chunk> = texts
            .iter()
            .enumerate()
            .map(|(ordinal, text)| {
                start += text.len();
                Chunk {
                    source: source.clone(),
                    ordinal: ordinal as u32,
                    text: text.clone(),
                    start: start - text.len(),
                    end: start,
                    page: None,
                    heading_path: vec![],
                    tokens: text.split_whitespace().count() as u32,
                }
            })
            .collect();
        let doc = DocumentRecord {
            source: source.clone(),
            format: Format::Text,
            hash: format!("hash-of-{source}"),
            size: start as u64,
            mtime_ns: 0,
            metadata: Default::default(),
        };
        kb.put_document(&doc, &chunks, embedder)?;
    }
    kb.checkpoint()?;
    Ok(kb)
}

/// One document per land, plus a document that repeats Land0's capital sentence (it contains
/// the oracle's evidence, so it must never be a distractor).
fn lands_kb(embedder: &HashEmbedder) -> Result<KnowledgeBase> {
    let mut docs: Vec<(String, String)> = (0..LANDS)
        .map(|i| (format!("land{i}.txt"), fact(i)))
        .collect();
    docs.push((
        "copy.txt".into(),
        "A travel note. The capital of Land0 is City0. Bring a coat.".into(),
    ));
    kb_of(embedder, &docs)
}

/// `n` questions cycling over the lands, with their context, as JSONL.
fn questions(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("questions.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|q| {
            let i = q % LANDS;
            serde_json::json!({
                "id": format!("q{q}"),
                "question": format!("What is the capital of Land{i}?"),
                "answer": format!("City{i}"),
                "context": fact(i),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap()
}

#[test]
fn hard_negatives_never_include_the_oracle_or_its_evidence() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let mut spec = BuildSpec::new(questions(dir.path(), 40), dir.path().join("out"));
    spec.p = 1.0;
    let report = build(&spec, &kb, &e)?;
    assert_eq!(report.examples, 40);
    for (r, g) in report
        .records
        .iter()
        .zip(lines(&dir.path().join("out").join(GORILLA_FILE)))
    {
        assert_eq!(
            r.passages.iter().filter(|&&c| c == r.oracle_chunk).count(),
            1
        );
        assert_eq!(r.passages.len(), 5);
        let quote = quotes(g["cot_answer"].as_str().unwrap())[0].to_string();
        let texts = g["context"]["sentences"][0].as_array().unwrap();
        let holding = texts
            .iter()
            .filter(|t| t.as_str().unwrap().contains(&quote))
            .count();
        assert_eq!(holding, 1, "evidence shown more than once: {g}");
    }
    Ok(())
}

#[test]
fn p_is_honoured_over_a_seeded_set() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let mut spec = BuildSpec::new(questions(dir.path(), 1000), dir.path().join("out"));
    spec.p = 0.8;
    spec.seed = 7;
    let report = build(&spec, &kb, &e)?;
    assert_eq!(report.examples, 1000);
    assert_eq!(report.with_oracle + report.without_oracle, 1000);
    // Four standard deviations of Binomial(1000, 0.8).
    let sd = (1000.0f64 * 0.8 * 0.2).sqrt();
    let off = (report.with_oracle as f64 - 800.0).abs();
    assert!(off <= 4.0 * sd, "{} with the oracle", report.with_oracle);
    for r in &report.records {
        assert_eq!(r.passages.contains(&r.oracle_chunk), r.oracle_present);
        // Without the oracle, one more distractor keeps the passage count.
        assert_eq!(r.passages.len(), 5);
    }
    let m = manifest(&spec.out);
    assert_eq!(m["counts"]["with_oracle"], report.with_oracle);
    assert_eq!(m["seed"], 7);
    Ok(())
}

#[test]
fn the_same_seed_gives_identical_files_and_another_seed_differs() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 60);
    let run = |name: &str, seed: u64, from: DistractorSource| -> Result<PathBuf> {
        let mut spec = BuildSpec::new(&q, dir.path().join(name));
        spec.seed = seed;
        spec.distractors_from = from;
        build(&spec, &kb, &e)?;
        Ok(spec.out)
    };
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    for from in [DistractorSource::Retriever, DistractorSource::Random] {
        let a = run("a", 1, from)?;
        let b = run("b", 1, from)?;
        let c = run("c", 2, from)?;
        for f in [TRAIN_FILE, GORILLA_FILE] {
            assert_eq!(read(&a, f), read(&b, f), "{f} differs for one seed");
            assert_ne!(read(&a, f), read(&c, f), "{f} equal for two seeds");
        }
        let (ma, mb) = (manifest(&a), manifest(&b));
        assert_eq!(ma["examples"], mb["examples"]);
    }
    Ok(())
}

#[test]
fn quotes_in_targets_occur_verbatim_in_the_oracle() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let spec = BuildSpec::new(questions(dir.path(), 40), dir.path().join("out"));
    build(&spec, &kb, &e)?;
    let train = lines(&spec.out.join(TRAIN_FILE));
    for (g, t) in lines(&spec.out.join(GORILLA_FILE)).iter().zip(&train) {
        let cot = g["cot_answer"].as_str().unwrap();
        let oracle = g["oracle_context"].as_str().unwrap();
        let q = quotes(cot);
        assert_eq!(q.len(), 1, "{cot}");
        assert!(oracle.contains(q[0]), "{:?} not in {oracle:?}", q[0]);
        assert!(cot.ends_with(&format!(
            "<ANSWER>: {}",
            &q[0][q[0].find("City").unwrap()..].trim_end_matches('.')
        )));
        let messages = t["messages"].as_array().unwrap();
        assert_eq!(messages.last().unwrap()["content"], cot);
    }
    Ok(())
}

#[test]
fn gorilla_rows_have_exactly_raft_py_columns() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let spec = BuildSpec::new(questions(dir.path(), 5), dir.path().join("out"));
    build(&spec, &kb, &e)?;
    for g in lines(&spec.out.join(GORILLA_FILE)) {
        let mut keys: Vec<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "context",
                "cot_answer",
                "id",
                "instruction",
                "oracle_context",
                "question",
                "type"
            ]
        );
        assert_eq!(g["type"], "general");
        let ctx = g["context"].as_object().unwrap();
        assert_eq!(ctx.len(), 2);
        let titles = ctx["title"][0].as_array().unwrap();
        let sentences = ctx["sentences"][0].as_array().unwrap();
        assert_eq!(titles.len(), sentences.len());
        assert!(g["instruction"].as_str().unwrap().contains("<documents>"));
    }
    Ok(())
}

#[test]
fn train_lines_are_accepted_by_the_trainer() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let spec = BuildSpec::new(questions(dir.path(), 10), dir.path().join("out"));
    build(&spec, &kb, &e)?;
    let examples = ragtune_train::data::read_sft(&spec.out.join(TRAIN_FILE))?;
    assert_eq!(examples.len(), 10);
    for ex in &examples {
        let roles: Vec<_> = ex.messages.iter().map(|m| m.role).collect();
        use ragtune_core::Role::*;
        assert_eq!(roles, [System, User, Assistant]);
    }
    Ok(())
}

#[test]
fn abstain_teaches_the_refusal_without_the_oracle() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 10);
    let mut spec = BuildSpec::new(&q, dir.path().join("abstain"));
    spec.p = 0.0;
    spec.abstain = true;
    let report = build(&spec, &kb, &e)?;
    assert_eq!(report.without_oracle, 10);
    for g in lines(&spec.out.join(GORILLA_FILE)) {
        assert_eq!(g["cot_answer"], abstain_answer(AnswerFormat::Cot));
    }
    assert!(
        abstain_answer(AnswerFormat::Cot)
            .ends_with("<ANSWER>: the documents do not contain the answer")
    );
    // Without --abstain the oracle's answer is still the target.
    let mut spec = BuildSpec::new(&q, dir.path().join("memorise"));
    spec.p = 0.0;
    build(&spec, &kb, &e)?;
    for g in lines(&spec.out.join(GORILLA_FILE)) {
        assert!(g["cot_answer"].as_str().unwrap().contains("<ANSWER>: City"));
    }
    Ok(())
}

#[test]
fn abstain_shows_an_unanswerable_question_its_own_passage_and_teaches_the_refusal() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = dir.path().join("q.jsonl");
    let rows = [
        serde_json::json!({"id": "a", "question": "What is the capital of Land3?", "answer": "City3", "context": fact(3)}),
        // Written against Land5's paragraph, which does not answer it.
        serde_json::json!({"id": "u", "question": "What is the oldest river of Land5?", "answers": [], "is_impossible": true, "context": fact(5)}),
        serde_json::json!({"id": "nowhere", "question": "Who rules Mars?", "answers": [], "context": "Mars has red dust and two small moons."}),
        serde_json::json!({"id": "bare", "question": "Who rules Land7?", "answers": []}),
    ];
    let text: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(&q, text.join("\n"))?;
    let mut spec = BuildSpec::new(&q, dir.path().join("abstain"));
    spec.p = 1.0;
    spec.distractors = 2;
    spec.abstain = true;
    let report = build(&spec, &kb, &e)?;
    assert_eq!((report.examples, report.with_oracle), (2, 1), "{report:?}");
    assert_eq!(report.unanswerable, 1);
    assert_eq!(report.skipped[&SkipReason::PassageNotInKb], 1);
    assert_eq!(report.skipped[&SkipReason::UnanswerableWithoutContext], 1);
    let rows = lines(&spec.out.join(GORILLA_FILE));
    let g = &rows[1];
    assert_eq!(g["question"], "What is the oldest river of Land5?");
    assert_eq!(g["cot_answer"], abstain_answer(AnswerFormat::Cot));
    assert_eq!(g["oracle_context"], fact(5));
    let shown = g["context"]["sentences"][0].as_array().unwrap();
    assert_eq!(shown.len(), 3, "its passage and two distractors");
    assert_eq!(shown.iter().filter(|t| **t == fact(5)).count(), 1);
    let m = manifest(&spec.out);
    assert_eq!(m["counts"]["unanswerable"], 1);
    assert_eq!(m["examples"][1]["answerable"], false);
    assert_eq!(m["examples"][1]["source"], "land5.txt");
    assert_eq!(m["examples"][0]["answerable"], true);

    // Without --abstain the unanswerable questions are skipped, as before.
    spec.abstain = false;
    spec.out = dir.path().join("plain");
    let report = build(&spec, &kb, &e)?;
    assert_eq!((report.examples, report.unanswerable), (1, 0));
    assert_eq!(report.skipped[&SkipReason::Unanswerable], 3);
    Ok(())
}

#[test]
fn answer_only_targets_hold_the_answer_alone() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 12);
    let mut spec = BuildSpec::new(&q, dir.path().join("answer"));
    spec.p = 0.5;
    spec.answer_format = AnswerFormat::Answer;
    let report = build(&spec, &kb, &e)?;
    assert!(
        report.with_oracle > 0 && report.without_oracle > 0,
        "{report:?}"
    );
    for (g, t) in lines(&spec.out.join(GORILLA_FILE))
        .iter()
        .zip(lines(&spec.out.join(TRAIN_FILE)))
    {
        // The oracle's answer whether or not it is shown, as with chain of thought.
        let target = g["cot_answer"].as_str().unwrap();
        assert!(target.starts_with("<ANSWER>: City"), "{target}");
        assert!(quotes(target).is_empty());
        let system = t["messages"][0]["content"].as_str().unwrap();
        assert!(!system.contains("##begin_quote##"), "{system}");
        assert_eq!(t["messages"][2]["content"], g["cot_answer"]);
    }
    let manifest: Value = serde_json::from_slice(&std::fs::read(spec.out.join(MANIFEST_FILE))?)?;
    assert_eq!(manifest["options"]["answer_format"], "answer");
    // With --abstain, the examples without the oracle are taught the bare refusal.
    spec.abstain = true;
    spec.out = dir.path().join("answer-abstain");
    let report = build(&spec, &kb, &e)?;
    let refusals = lines(&spec.out.join(GORILLA_FILE))
        .iter()
        .filter(|g| g["cot_answer"] == abstain_answer(AnswerFormat::Answer))
        .count();
    assert_eq!(refusals, report.without_oracle);
    Ok(())
}

#[test]
fn a_question_whose_passage_is_not_in_the_kb_is_a_counted_skip() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = dir.path().join("q.jsonl");
    let rows = [
        serde_json::json!({"id": "ok", "question": "Capital of Land3?", "answer": "City3", "context": fact(3)}),
        // City3 is in the KB, but not within this context.
        serde_json::json!({"id": "elsewhere", "question": "Where was Ann born?", "answer": "City3", "context": "Ann was born in City3 in 1990."}),
        serde_json::json!({"id": "absent", "question": "Capital of Mars?", "answer": "Olympus", "context": "The capital of Mars is Olympus."}),
        serde_json::json!({"id": "none", "question": "Unanswerable?", "answers": []}),
    ];
    let text: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(&q, text.join("\n"))?;
    let spec = BuildSpec::new(&q, dir.path().join("out"));
    let report = build(&spec, &kb, &e)?;
    assert_eq!(report.examples, 1);
    assert_eq!(report.skipped[&SkipReason::PassageNotInKb], 1);
    assert_eq!(report.skipped[&SkipReason::AnswerNotInKb], 1);
    assert_eq!(report.skipped[&SkipReason::Unanswerable], 1);
    let m = manifest(&spec.out);
    assert_eq!(m["counts"]["skipped"]["passage_not_in_kb"], 1);
    assert_eq!(m["skipped"][0]["question_id"], "elsewhere");
    assert_eq!(m["examples"][0]["source"], "land3.txt");
    assert_eq!(m["examples"][0]["content_hash"], "hash-of-land3.txt");
    Ok(())
}

#[test]
fn random_and_retriever_distractors_differ() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 20);
    let mut passages = Vec::new();
    for (name, from) in [
        ("r", DistractorSource::Retriever),
        ("u", DistractorSource::Random),
    ] {
        let mut spec = BuildSpec::new(&q, dir.path().join(name));
        spec.p = 1.0;
        spec.distractors_from = from;
        let report = build(&spec, &kb, &e)?;
        let mut sets: Vec<Vec<i64>> = report
            .records
            .iter()
            .map(|r| {
                let mut p = r.passages.clone();
                p.sort_unstable();
                p
            })
            .collect();
        sets.sort();
        passages.push(sets);
    }
    assert_ne!(passages[0], passages[1]);
    Ok(())
}

#[test]
fn yes_no_maybe_questions_take_their_abstract_as_oracle_and_their_label_as_target() -> Result<()> {
    let e = embedder();
    // An abstract in two chunks: the first holds most of it, the second repeats the question's
    // words, so the retriever ranks it high; it is evidence too and must never be a distractor.
    let first = "Aspirin was given to 300 patients after surgery in a randomised trial. \
                 Bleeding was recorded for thirty days after the operation.";
    let second = "Does aspirin reduce pain after surgery?";
    let mut docs: Vec<(String, Vec<String>)> = (0..LANDS)
        .map(|i| (format!("land{i}.txt"), vec![fact(i)]))
        .collect();
    docs.push(("12345.txt".into(), vec![first.into(), second.into()]));
    docs.push((
        "other.txt".into(),
        vec!["Pain after surgery is common; aspirin is cheap.".into()],
    ));
    let kb = kb_of_chunks(&e, &docs)?;
    let dir = tempfile::tempdir()?;
    let q = dir.path().join("pqal.json");
    std::fs::write(
        &q,
        serde_json::json!({
            "12345": {
                "QUESTION": "Does aspirin reduce pain after surgery?",
                "CONTEXTS": [
                    "Aspirin was given to 300 patients after surgery in a randomised trial.",
                    "Bleeding was recorded for thirty days after the operation.",
                ],
                "LABELS": ["METHODS", "RESULTS"],
                "final_decision": "maybe",
            },
            "777": {
                "QUESTION": "Is the moon made of cheese?",
                "CONTEXTS": ["No abstract of ours says anything about the moon at all."],
                "final_decision": "no",
            },
        })
        .to_string(),
    )?;

    // A label is no span to quote: chain-of-thought targets are refused, naming the option.
    let err = build(&BuildSpec::new(&q, dir.path().join("cot")), &kb, &e).unwrap_err();
    assert!(err.to_string().contains("--answer-format answer"), "{err}");
    assert!(err.to_string().contains("pqal.json"), "{err}");

    let mut spec = BuildSpec::new(&q, dir.path().join("labels"));
    spec.answer_format = AnswerFormat::Answer;
    spec.p = 1.0;
    spec.distractors = 2;
    let report = build(&spec, &kb, &e)?;
    assert_eq!((report.examples, report.with_oracle), (1, 1), "{report:?}");
    assert_eq!(report.skipped[&SkipReason::PassageNotInKb], 1);
    let g = &lines(&spec.out.join(GORILLA_FILE))[0];
    assert_eq!(g["cot_answer"], "<ANSWER>: maybe");
    assert_eq!(g["oracle_context"], first);
    let shown = g["context"]["sentences"][0].as_array().unwrap();
    assert_eq!(shown.len(), 3, "the oracle and two distractors: {shown:?}");
    assert_eq!(shown.iter().filter(|t| **t == first).count(), 1);
    assert!(!shown.iter().any(|t| *t == second), "{shown:?}");
    let m = manifest(&spec.out);
    assert_eq!(m["examples"][0]["source"], "12345.txt");
    assert_eq!(m["examples"][0]["answerable"], true);

    // Without the oracle and with --abstain, the target is the refusal, as for spans.
    spec.p = 0.0;
    spec.abstain = true;
    spec.out = dir.path().join("abstain");
    let report = build(&spec, &kb, &e)?;
    assert_eq!(
        (report.examples, report.without_oracle),
        (1, 1),
        "{report:?}"
    );
    let g = &lines(&spec.out.join(GORILLA_FILE))[0];
    assert_eq!(g["cot_answer"], abstain_answer(AnswerFormat::Answer));
    let shown = g["context"]["sentences"][0].as_array().unwrap();
    assert!(
        !shown.iter().any(|t| *t == first || *t == second),
        "{shown:?}"
    );
    Ok(())
}

#[test]
fn bad_input_is_refused_clearly() -> Result<()> {
    let e = embedder();
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 3);

    let empty = kb_of(&e, &[])?;
    let err = build(&BuildSpec::new(&q, dir.path().join("o1")), &empty, &e).unwrap_err();
    assert!(matches!(err, Error::EmptyKnowledgeBase { .. }), "{err}");
    assert!(err.to_string().contains("ragtune ingest"), "{err}");

    let kb = lands_kb(&e)?;
    let mut spec = BuildSpec::new(&q, dir.path().join("o2"));
    spec.p = 1.5;
    assert!(
        build(&spec, &kb, &e)
            .unwrap_err()
            .to_string()
            .contains("--p")
    );
    spec.p = 0.5;
    spec.distractors = 0;
    assert!(
        build(&spec, &kb, &e)
            .unwrap_err()
            .to_string()
            .contains("--distractors")
    );

    spec.distractors = 4;
    spec.limit = Some(0);
    let err = build(&spec, &kb, &e).unwrap_err();
    assert!(err.to_string().contains("--limit"), "{err}");

    let other = HashEmbedder::named(64, "another-embedder");
    let err = build(&BuildSpec::new(&q, dir.path().join("o4")), &kb, &other).unwrap_err();
    assert!(matches!(err, Error::Retriever { .. }), "{err}");
    assert!(err.to_string().contains("another-embedder"), "{err}");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"question\": \"a\", \"answer\": \"b\"}\nnot json\n")?;
    let err = build(&BuildSpec::new(&bad, dir.path().join("o3")), &kb, &e).unwrap_err();
    assert!(err.to_string().contains("bad.jsonl, line 2"), "{err}");

    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy)?;
    std::fs::write(busy.join("notes.txt"), "mine")?;
    let err = build(&BuildSpec::new(&q, &busy), &kb, &e).unwrap_err();
    assert!(matches!(err, Error::OutNotEmpty { .. }), "{err}");

    // A previous build may be replaced.
    let out = dir.path().join("again");
    build(&BuildSpec::new(&q, &out), &kb, &e)?;
    build(&BuildSpec::new(&q, &out), &kb, &e)?;

    // A build killed before its manifest was written is taken over by the next one.
    let whole = std::fs::read(out.join(ragtune_raft::TRAIN_FILE))?;
    std::fs::remove_file(out.join(ragtune_raft::MANIFEST_FILE))?;
    std::fs::write(out.join("gorilla.partial"), "half a li")?;
    build(&BuildSpec::new(&q, &out), &kb, &e)?;
    assert_eq!(std::fs::read(out.join(ragtune_raft::TRAIN_FILE))?, whole);
    assert!(!out.join("gorilla.partial").exists());
    assert!(out.join(ragtune_raft::MANIFEST_FILE).is_file());

    // Someone's own training file (no manifest or marker of ours) is never overwritten.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs)?;
    std::fs::write(theirs.join(ragtune_raft::TRAIN_FILE), "{}\n")?;
    let err = build(&BuildSpec::new(&q, &theirs), &kb, &e).unwrap_err();
    assert!(matches!(err, Error::OutNotEmpty { .. }), "{err}");
    Ok(())
}
