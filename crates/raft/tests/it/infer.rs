//! RAFT inference and lineage: the inference prompt is the training prompt, `answer` over the
//! knowledge base with a scripted generator, and what training records about the data.

use crate::{embedder, lands_kb, lines, questions};
use anyhow::Result;
use ragtune_answer::testing::{FakeGenerator, last_question};
use ragtune_core::{ChatMessage, Hit};
use ragtune_raft::{
    AnswerFormat, BuildSpec, Error, MANIFEST_FILE, PROMPT_FORMAT, RaftOptions, TRAIN_FILE, answer,
    bare_answer, build, cot_answer, lineage, prompt_for_hits, trained_run,
};
use ragtune_retrieve::KbRetriever;
use std::collections::HashMap;

#[test]
fn the_inference_prompt_is_the_training_prompt_byte_for_byte() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let q = questions(dir.path(), 30);
    for format in [AnswerFormat::Cot, AnswerFormat::Answer] {
        let mut spec = BuildSpec::new(&q, dir.path().join(format.as_str()));
        spec.p = 0.7;
        spec.answer_format = format;
        let report = build(&spec, &kb, &e)?;
        let train = lines(&spec.out.join(TRAIN_FILE));
        assert_eq!(train.len(), report.records.len());
        // What inference reads from the adapter's record is the format the data was built in.
        let trained = lineage(&spec.out.join(TRAIN_FILE))?.expect("a RAFT build");
        assert_eq!(trained.answer_format, format);
        for (record, line) in report.records.iter().zip(&train) {
            let messages: Vec<ChatMessage> = serde_json::from_value(line["messages"].clone())?;
            // The chunks the example showed, in its order, as the retriever would return them.
            let hits = shown_hits(&kb, &record.passages)?;
            let question = last_question(&messages[..2]).to_string();
            let inference = prompt_for_hits(&question, &hits, trained.answer_format);
            assert_eq!(inference.as_slice(), &messages[..2], "{}", record.id);
        }
    }
    Ok(())
}

/// Token for token on the real SmolLM2 tokenizer and template: what generation encodes for the
/// inference prompt is the start of what training encodes for the example, and the rest is the
/// target.
#[test]
fn the_inference_tokens_are_the_training_tokens_up_to_the_answer() -> Result<()> {
    use ragtune_core::Prompt;
    use ragtune_model::llama::Tokenizer;
    let store = ragtune_catalog::ModelStore::from_env()?;
    let model = store.resolve("smollm2-135m-instruct")?;
    let tokenizer = Tokenizer::load(model.path())?;
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let spec = BuildSpec::new(questions(dir.path(), 5), dir.path().join("out"));
    let report = build(&spec, &kb, &e)?;
    for (record, line) in report.records.iter().zip(lines(&spec.out.join(TRAIN_FILE))) {
        let messages: Vec<ChatMessage> = serde_json::from_value(line["messages"].clone())?;
        let trained = tokenizer.encode_rendered_chat(&tokenizer.render_chat(&messages, false)?);
        let hits = shown_hits(&kb, &record.passages)?;
        let inference = prompt_for_hits(last_question(&messages[..2]), &hits, AnswerFormat::Cot);
        let prompted = tokenizer.encode_prompt(&Prompt::Chat(inference))?;
        assert!(prompted.len() < trained.len());
        assert_eq!(prompted, trained[..prompted.len()], "{}", record.id);
        let target = tokenizer.render_chat(&messages, false)?;
        let prompt = tokenizer.render_chat(&messages[..2], true)?;
        assert!(target[prompt.len()..].starts_with(&messages[2].content));
    }
    Ok(())
}

/// The chunks `ids`, in that order, as the retriever returns them.
fn shown_hits(kb: &ragtune_index::KnowledgeBase, ids: &[i64]) -> Result<Vec<Hit>> {
    let stored: HashMap<i64, _> = kb.chunks(ids)?.into_iter().map(|c| (c.id, c)).collect();
    Ok(ids
        .iter()
        .map(|id| {
            let c = &stored[id];
            Hit {
                chunk_id: c.id,
                source: c.source.clone(),
                format: c.format,
                page: c.page,
                heading_path: c.heading_path.clone(),
                start: c.start,
                end: c.end,
                text: c.text.clone(),
                score: 1.0,
                ranks: Default::default(),
            }
        })
        .collect())
}

#[test]
fn answer_retrieves_prompts_and_checks_the_quote() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let retriever = KbRetriever::new(&kb, &e)?;
    // Quotes the capital sentence of the land asked about, from whichever passage shows it.
    let generator = FakeGenerator::new(4096, |messages: &[ChatMessage]| {
        let user = &messages.last().unwrap().content;
        let q = last_question(messages);
        let land = q
            .trim_end_matches('?')
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        let sentence = format!("The capital of {land} is City{}.", &land[4..]);
        let n = user
            .lines()
            .find(|l| l.contains(&sentence))
            .and_then(|l| l[1..].split(']').next()?.parse::<usize>().ok())
            .unwrap_or(9);
        cot_answer(n, &sentence, &format!("City{}", &land[4..]))
    });
    let a = answer(
        "What is the capital of Land3?",
        &retriever,
        &generator,
        &RaftOptions::default(),
    )?;
    assert_eq!(a.prompt_format, PROMPT_FORMAT);
    assert_eq!(a.answer, "City3");
    assert!(a.answer_marker && !a.abstained);
    assert_eq!(a.passages.len(), 5);
    assert_eq!(a.citations.len(), 1);
    let c = &a.citations[0];
    assert!(c.found, "{a:?}");
    assert_eq!(c.passage, c.cited);
    assert_eq!(c.source.as_deref(), Some("land3.txt"));
    assert!(a.reasoning.contains("##begin_quote##"));
    // The request was the RAFT prompt over the passages reported.
    let requests = generator.requests.lock().unwrap();
    let ragtune_core::Prompt::Chat(sent) = &requests[0].prompt else {
        panic!("a chat prompt")
    };
    assert_eq!(sent, &a.messages);
    Ok(())
}

#[test]
fn an_answer_only_adapter_is_prompted_and_read_in_its_format() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let retriever = KbRetriever::new(&kb, &e)?;
    // Answers only when prompted without the chain-of-thought instruction.
    let generator = FakeGenerator::new(4096, |messages: &[ChatMessage]| {
        if messages[0].content.contains("##begin_quote##") {
            "##Reason: wrong prompt".to_string()
        } else {
            bare_answer("City3")
        }
    });
    let options = RaftOptions::for_format(AnswerFormat::Answer, 3, 16);
    assert_eq!(options.max_tokens, 16);
    assert_eq!(
        RaftOptions::for_format(AnswerFormat::Cot, 3, 16).max_tokens,
        256
    );
    let a = answer(
        "What is the capital of Land3?",
        &retriever,
        &generator,
        &options,
    )?;
    assert_eq!(a.answer_format, AnswerFormat::Answer);
    assert_eq!(a.answer, "City3");
    assert!(a.answer_marker && !a.abstained && a.reasoning.is_empty());
    assert!(a.citations.is_empty());
    assert_eq!(a.passages.len(), 3);
    let requests = generator.requests.lock().unwrap();
    assert_eq!(requests[0].max_tokens, 16);
    Ok(())
}

#[test]
fn a_refusal_is_an_abstention() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let retriever = KbRetriever::new(&kb, &e)?;
    let generator = FakeGenerator::new(4096, |_: &[ChatMessage]| {
        ragtune_raft::abstain_answer(AnswerFormat::Cot)
    });
    let a = answer(
        "What is the capital of Atlantis?",
        &retriever,
        &generator,
        &RaftOptions::default(),
    )?;
    assert!(a.abstained);
    assert_eq!(a.answer, ragtune_answer::template::RAG_REFUSAL);
    assert!(a.citations.is_empty());
    Ok(())
}

#[test]
fn training_records_the_lineage_and_inference_recognises_it() -> Result<()> {
    let e = embedder();
    let kb = lands_kb(&e)?;
    let dir = tempfile::tempdir()?;
    let spec = BuildSpec::new(questions(dir.path(), 6), dir.path().join("out"));
    build(&spec, &kb, &e)?;
    let l = lineage(&spec.out.join(TRAIN_FILE))?.expect("a RAFT build");
    assert_eq!(l.prompt_format, PROMPT_FORMAT);
    assert_eq!(l.passages, Some(5));
    assert_eq!(l.documents.len(), 6);
    assert!(
        l.documents
            .iter()
            .all(|d| d.hash.starts_with("hash-of-land"))
    );
    // Data with no manifest beside it is not RAFT data.
    assert!(lineage(&dir.path().join("questions.jsonl"))?.is_none());

    let run = dir.path().join("training.json");
    let write = |raft: serde_json::Value| {
        let record = serde_json::json!({"kind": "sft", "base": "/m.gguf", "raft": raft});
        std::fs::write(&run, record.to_string()).unwrap();
    };
    write(serde_json::to_value(&l)?);
    let r = trained_run(&run)?.expect("a RAFT run");
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(r.base.as_deref(), Some(std::path::Path::new("/m.gguf")));

    std::fs::remove_file(spec.out.join(MANIFEST_FILE))?;
    let r = trained_run(&run)?.expect("still a RAFT run");
    assert!(r.notes[0].contains("is gone"), "{:?}", r.notes);

    let mut old = l.clone();
    old.prompt_format = "ragtune-raft-prompt/0".into();
    write(serde_json::to_value(&old)?);
    let err = trained_run(&run).unwrap_err();
    assert!(matches!(err, Error::PromptFormat { .. }), "{err}");
    assert!(err.to_string().contains("retrain"), "{err}");

    write(serde_json::json!({"kb": 3}));
    let err = trained_run(&run).unwrap_err().to_string();
    assert!(
        err.contains("training.json") && err.contains("\"raft\""),
        "{err}"
    );

    std::fs::write(&run, r#"{"kind": "sft"}"#)?;
    assert!(trained_run(&run)?.is_none());
    assert!(trained_run(&dir.path().join("absent.json"))?.is_none());
    Ok(())
}
