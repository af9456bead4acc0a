//! PubMedQA (PQA-L): the loader, the label an answer states, and accuracy.

use crate::{TempFile, shared_data};
use ragtune_answer::eval::{Decision, evaluate, extract_decision};
use ragtune_answer::testing::FakeGenerator;
use ragtune_answer::{Answerer, Mode};
use ragtune_datasets::load_squad;
use std::collections::HashMap;

const FIXTURE: &str = r#"{
 "111": {"QUESTION": "Does coffee help?", "CONTEXTS": ["Background one.", "Results two."],
         "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": [], "YEAR": "2001",
         "reasoning_required_pred": "yes", "reasoning_free_pred": "yes",
         "final_decision": "yes", "LONG_ANSWER": "It helps."},
 "222": {"QUESTION": "Is tea harmful?", "CONTEXTS": ["Only one."], "LABELS": ["RESULTS"],
         "final_decision": "no", "LONG_ANSWER": "No."},
 "33": {"QUESTION": "Is water enough?", "CONTEXTS": ["Unclear."], "final_decision": "maybe"}
}"#;

#[test]
fn loader_reads_an_inline_pqal_file_in_order() {
    let file = TempFile::new("pqal.json", FIXTURE);
    let items = load_squad(&file.0).unwrap();
    let got: Vec<_> = items
        .iter()
        .map(|i| (i.id.as_str(), i.question.as_str(), i.decision))
        .collect();
    assert_eq!(
        got,
        vec![
            ("111", "Does coffee help?", Some(Decision::Yes)),
            ("222", "Is tea harmful?", Some(Decision::No)),
            ("33", "Is water enough?", Some(Decision::Maybe)),
        ]
    );
    assert_eq!(items[0].context, "Background one.\n\nResults two.");
    assert_eq!(items[0].answers, vec!["yes".to_string()]);
    assert!(items.iter().all(|i| i.answerable()));
}

#[test]
fn a_bad_label_names_the_file_and_format() {
    let file = TempFile::new(
        "bad-pqal.json",
        r#"{"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}"#,
    );
    let err = load_squad(&file.0).unwrap_err().to_string();
    assert!(
        err.contains("bad-pqal.json") && err.contains("PubMedQA") && err.contains("perhaps"),
        "{err}"
    );
}

#[test]
fn loader_reads_the_shared_500() {
    let items = load_squad(&shared_data("pubmedqa-pqal/pqal_nontest_500.json")).unwrap();
    assert_eq!(items.len(), 500);
    let mut counts: HashMap<Decision, usize> = HashMap::new();
    for i in &items {
        *counts.entry(i.decision.unwrap()).or_default() += 1;
        assert!(!i.question.is_empty() && !i.context.is_empty(), "{}", i.id);
    }
    // SOURCE.md: yes 276, no 169, maybe 55.
    assert_eq!(counts[&Decision::Yes], 276);
    assert_eq!(counts[&Decision::No], 169);
    assert_eq!(counts[&Decision::Maybe], 55);
    assert_eq!(items[0].id, "10808977");
}

#[test]
fn the_label_is_the_first_yes_no_or_maybe_word() {
    assert_eq!(extract_decision("Yes."), Some(Decision::Yes));
    assert_eq!(extract_decision("Yes, it does [1]."), Some(Decision::Yes));
    assert_eq!(extract_decision("no"), Some(Decision::No));
    assert_eq!(
        extract_decision("It is unclear (maybe)"),
        Some(Decision::Maybe)
    );
    assert_eq!(extract_decision("yes and no"), Some(Decision::Yes));
    assert_eq!(extract_decision("NO, not at all"), Some(Decision::No));
    assert_eq!(extract_decision("Nope"), None);
    assert_eq!(extract_decision("Yesterday, nobody knew"), None);
    assert_eq!(extract_decision(""), None);
}

#[test]
fn accuracy_counts_the_stated_label() {
    let file = TempFile::new("pqal-acc.json", FIXTURE);
    let items = load_squad(&file.0).unwrap();
    let generator = FakeGenerator::table(
        4096,
        &[
            ("Does coffee help?", "Yes, in the trial."),
            ("Is tea harmful?", "Maybe."),
            ("Is water enough?", "Nope"),
        ],
        "?",
    );
    let answerer = Answerer::new(
        &generator,
        ragtune_answer::AskOptions::default().with_mode(Mode::ClosedBook),
    );
    let eval = evaluate(&answerer, &items).unwrap();
    let predicted: Vec<_> = eval.results.iter().map(|r| r.predicted_decision).collect();
    assert_eq!(
        predicted,
        vec![Some(Decision::Yes), Some(Decision::Maybe), None]
    );
    let s = &eval.report.summary;
    assert_eq!(s.labelled, 3);
    assert!((s.accuracy.unwrap() - 1.0 / 3.0).abs() < 1e-12, "{s:?}");
    let text = eval.report.to_string();
    assert!(text.contains("accuracy (yes/no/maybe)"), "{text}");
    let json = serde_json::to_value(&eval.report).unwrap();
    assert!(json["summary"]["accuracy"].is_number(), "{json}");
}

#[test]
fn squad_questions_have_no_accuracy_row() {
    let file = TempFile::new(
        "tiny-squad.json",
        r#"{"data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.",
           "qas": [{"id": "a", "question": "Where is Paris?", "answers": [{"text": "France"}]}]}]}]}"#,
    );
    let items = load_squad(&file.0).unwrap();
    assert_eq!(items[0].decision, None);
    let generator = FakeGenerator::table(4096, &[], "France");
    let answerer = Answerer::new(
        &generator,
        ragtune_answer::AskOptions::default().with_mode(Mode::ClosedBook),
    );
    let eval = evaluate(&answerer, &items).unwrap();
    assert_eq!(eval.report.summary.accuracy, None);
    assert!(!eval.report.to_string().contains("accuracy"));
}
