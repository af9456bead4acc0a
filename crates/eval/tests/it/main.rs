//! The evaluation workflows on fakes: a seeded question set, held-out examples, a corpus
//! indexed in memory, RAG and RAFT scored the same way, SFT data from the prompts.

mod attacks;
mod compare;

use anyhow::Result;
use ragtune_answer::testing::{FakeGenerator, last_question};
use ragtune_answer::{AskOptions, Mode};
use ragtune_eval::{
    Error, QuestionSet, evaluate_mode, evaluate_raft, index_in_memory, load_corpus, write_sft,
};
use ragtune_index::testing::HashEmbedder;
use ragtune_raft::RaftOptions;
use ragtune_retrieve::KbRetriever;
use std::path::PathBuf;

pub const SQUAD: &str = r#"{"version": "1.1", "data": [
 {"title": "Rivers", "paragraphs": [
  {"context": "The Nile is the longest river in Africa. It flows north into the Mediterranean Sea.",
   "qas": [
    {"id": "nile-sea", "question": "Into which sea does the Nile flow?", "answers": [{"text": "the Mediterranean Sea", "answer_start": 62}]},
    {"id": "nile-long", "question": "Which river is the longest in Africa?", "answers": [{"text": "The Nile", "answer_start": 0}]}]},
  {"context": "The Danube passes through Vienna, Budapest and Belgrade before reaching the Black Sea.",
   "qas": [
    {"id": "danube-sea", "question": "Where does the Danube end?", "answers": [{"text": "the Black Sea", "answer_start": 71}]},
    {"id": "danube-city", "question": "Which capital on the Danube is in Hungary?", "answers": [{"text": "Budapest", "answer_start": 35}]}]},
  {"context": "The Amazon carries more water than any other river, draining into the Atlantic Ocean.",
   "qas": [
    {"id": "amazon-ocean", "question": "Into which ocean does the Amazon drain?", "answers": [{"text": "the Atlantic Ocean", "answer_start": 66}]},
    {"id": "amazon-water", "question": "Which river carries the most water?", "answers": [{"text": "The Amazon", "answer_start": 0}]}]}
 ]}]}"#;

/// The rivers file, its questions, and its paragraphs indexed in memory.
pub struct Rivers {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub set: QuestionSet,
    pub embedder: HashEmbedder,
    pub corpus: ragtune_datasets::Corpus,
    pub kb: ragtune_index::KnowledgeBase,
    pub chunks: usize,
}

pub fn rivers() -> Result<Rivers> {
    let dir = tempfile::tempdir()?;
    let path = squad_file(&dir);
    let set = QuestionSet::load(&path, 0, 0)?;
    let embedder = HashEmbedder::new(64);
    let corpus = load_corpus(&path, &set)?;
    let (kb, chunks) = index_in_memory(&corpus, &embedder, &embedder, 256)?;
    Ok(Rivers {
        _dir: dir,
        path,
        set,
        embedder,
        corpus,
        kb,
        chunks,
    })
}

pub fn squad_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("rivers.json");
    std::fs::write(&path, SQUAD).unwrap();
    path
}

#[test]
fn the_sample_is_seeded_and_held_out_examples_share_no_paragraph_with_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = squad_file(&dir);
    let a = QuestionSet::load(&path, 2, 7)?;
    assert_eq!(a, QuestionSet::load(&path, 2, 7)?);
    assert_eq!(a.items.len(), 2);
    assert_eq!(QuestionSet::load(&path, 0, 7)?.items.len(), 6);
    let drawn: Vec<&str> = a.items.iter().map(|i| i.context.as_str()).collect();
    let examples = a.held_out_examples();
    assert!(!examples.is_empty() || drawn.len() == 3);
    for ex in &examples {
        let item = a.all.iter().find(|i| i.question == ex.question).unwrap();
        assert!(
            !drawn.contains(&item.context.as_str()),
            "{ex:?} gives away {drawn:?}"
        );
    }
    Ok(())
}

#[test]
fn an_empty_question_file_is_refused_by_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("none.jsonl");
    std::fs::write(&path, "\n\n")?;
    let err = QuestionSet::load(&path, 10, 0).unwrap_err();
    assert!(matches!(err, Error::NoQuestions { .. }), "{err}");
    assert!(err.to_string().contains("none.jsonl"), "{err}");
    Ok(())
}

#[test]
fn pubmedqa_questions_answer_from_their_own_abstracts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pqal.json");
    std::fs::write(
        &path,
        r#"{"101": {"QUESTION": "Does aspirin help?", "CONTEXTS": ["Aspirin helped.", "A lot."], "final_decision": "yes"},
            "102": {"QUESTION": "Is water toxic?", "CONTEXTS": ["It is not."], "final_decision": "no"}}"#,
    )?;
    let set = QuestionSet::load(&path, 0, 0)?;
    assert!(set.labelled());
    let corpus = load_corpus(&path, &set)?;
    let docs: Vec<(&str, &str)> = corpus
        .docs
        .iter()
        .map(|d| (d.id.as_str(), d.text.as_str()))
        .collect();
    assert_eq!(
        docs,
        [("101", "Aspirin helped.\n\nA lot."), ("102", "It is not.")]
    );
    Ok(())
}

/// Answers every question right but the Danube's end, citing passage 1.
pub fn rag_generator() -> FakeGenerator {
    FakeGenerator::new(4096, |messages| {
        match last_question(messages) {
            q if q.contains("Nile flow") => "the Mediterranean Sea [1]",
            q if q.contains("longest") => "The Nile [1]",
            q if q.contains("Danube end") => "the North Sea [1]",
            q if q.contains("Hungary") => "Budapest [1]",
            q if q.contains("ocean") => "the Atlantic Ocean [1]",
            _ => "The Amazon [1]",
        }
        .to_string()
    })
}

#[test]
fn rag_over_the_indexed_corpus_is_scored_per_question() -> Result<()> {
    let Rivers {
        set,
        embedder,
        kb,
        chunks,
        ..
    } = rivers()?;
    assert_eq!(chunks, 3);
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let generator = rag_generator();
    let options = AskOptions::default().with_mode(Mode::Rag);
    let evaluation = evaluate_mode(
        &generator,
        Some(&retriever),
        None,
        options,
        &set.items,
        false,
    )?;
    let s = &evaluation.report.summary;
    assert_eq!(s.questions, 6);
    assert!(
        (s.exact_match - 5.0 / 6.0).abs() < 1e-9,
        "{}",
        s.exact_match
    );
    let wrong: Vec<&str> = evaluation
        .results
        .iter()
        .filter(|r| r.exact_match == 0.0)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(wrong, ["danube-sea"]);
    assert_eq!(evaluation.report.approach, None);
    Ok(())
}

#[test]
fn raft_is_scored_on_its_final_answer_and_its_quotes_are_checked() -> Result<()> {
    let Rivers {
        set, embedder, kb, ..
    } = rivers()?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    // Quotes the Nile passage for the Nile questions; invents a quote for the others.
    let generator = FakeGenerator::new(4096, |messages| {
        let q = last_question(messages);
        if q.contains("Nile flow") {
            "##Reason: ##begin_quote## It flows north into the Mediterranean Sea. ##end_quote## \
             <ANSWER>: the Mediterranean Sea"
                .to_string()
        } else {
            "##Reason: ##begin_quote## rivers are made of cheese ##end_quote## <ANSWER>: cheese"
                .to_string()
        }
    });
    let options = RaftOptions {
        top_k: 2,
        ..RaftOptions::default()
    };
    let evaluation = evaluate_raft(&generator, &retriever, &options, &set.items)?;
    assert_eq!(evaluation.report.approach.as_deref(), Some("raft"));
    let by_id = |id: &str| evaluation.results.iter().find(|r| r.id == id).unwrap();
    let nile = by_id("nile-sea");
    assert_eq!(nile.exact_match, 1.0);
    assert_eq!(nile.reply_exact_match, 1.0);
    assert_eq!(nile.answer.citations.len(), 1);
    assert!(nile.answer.citations[0].valid);
    let amazon = by_id("amazon-ocean");
    assert_eq!(amazon.exact_match, 0.0);
    assert!(!amazon.answer.citations[0].valid);
    let s = &evaluation.report.summary;
    assert_eq!(s.citations, 6);
    assert_eq!(s.valid_citations, 1);
    assert!(!evaluation.report.batched);
    Ok(())
}

#[test]
fn sft_data_cites_the_passage_that_holds_the_gold_answer() -> Result<()> {
    let Rivers {
        _dir: dir,
        set,
        embedder,
        kb,
        ..
    } = rivers()?;
    let retriever = KbRetriever::new(&kb, &embedder)?;
    let generator = rag_generator();
    let options = AskOptions {
        top_k: 1,
        ..AskOptions::default().with_mode(Mode::Rag)
    };
    let answerer = ragtune_answer::Answerer::new(&generator, options).with_retriever(&retriever);
    let out = dir.path().join("sft.jsonl");
    let w = write_sft(&answerer, &set.items, &out)?;
    assert_eq!(w.written + w.not_in_prompt + w.unanswerable, 6);
    assert!(w.written > 0);
    let text = std::fs::read_to_string(&out)?;
    assert_eq!(text.lines().count(), w.written);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let messages = v["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "assistant");
        let target = last["content"].as_str().unwrap();
        assert!(target.ends_with(" [1]"), "{target}");
        // Demonstrations are context, not targets.
        for m in &messages[..messages.len() - 1] {
            if m["role"] == "assistant" {
                assert_eq!(m["weight"], 0);
            }
        }
    }
    Ok(())
}
