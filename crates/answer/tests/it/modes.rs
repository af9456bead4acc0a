use crate::{replying, retriever};
use ragtune_answer::testing::BagOfWords;
use ragtune_answer::{Answerer, Error, Example, ExamplePool, Mode};
use std::collections::BTreeSet;

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_mode_returns_the_same_shape() {
    let generator = replying("Denver Broncos [1]");
    let retriever = retriever();
    let embedder = BagOfWords { dimension: 64 };
    let pool = ExamplePool::new(
        vec![Example {
            question: "Who won Super Bowl 49?".into(),
            answer: "New England Patriots".into(),
        }],
        &embedder,
    )
    .unwrap();
    let mut shapes = Vec::new();
    for mode in Mode::ALL {
        let answerer = Answerer::new(&generator, crate::all_hits().with_mode(mode))
            .with_retriever(&retriever)
            .with_examples(&pool);
        let a = answerer.ask("Who won Super Bowl 50?").unwrap();
        assert_eq!(a.mode, mode);
        let json = serde_json::to_value(&a).unwrap();
        shapes.push((keys(&json), keys(&json["timings"]), keys(&json["tokens"])));
        match mode {
            Mode::Rag => assert_eq!(a.passages.len(), 3),
            Mode::ClosedBook => assert!(a.passages.is_empty() && a.examples.is_empty()),
            Mode::FewShot => assert!(a.passages.is_empty() && a.examples.len() == 1),
        }
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    // Only RAG retrieved.
    assert_eq!(retriever.queries.lock().unwrap().len(), 1);
}

#[test]
fn closed_book_cites_nothing_that_exists() {
    let generator = replying("Denver Broncos [1]");
    let a = Answerer::new(&generator, crate::all_hits().with_mode(Mode::ClosedBook))
        .ask("Who won Super Bowl 50?")
        .unwrap();
    assert_eq!(a.failed_citations, 1);
    assert_eq!(a.tokens.context_used, 0);
    let messages = match &generator.requests.lock().unwrap()[0].prompt {
        ragtune_core::Prompt::Chat(m) => m.clone(),
        _ => unreachable!(),
    };
    assert!(!messages.iter().any(|m| m.content.contains("<documents>")));
}

#[test]
fn a_mode_without_its_source_is_a_configuration_error() {
    let generator = replying("x");
    let err = Answerer::new(&generator, crate::all_hits())
        .ask("q")
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)) && err.to_string().contains("retriever"));
    let err = Answerer::new(&generator, crate::all_hits().with_mode(Mode::FewShot))
        .ask("q")
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)) && err.to_string().contains("examples"));
}

#[test]
fn modes_parse_and_print() {
    for mode in Mode::ALL {
        assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
        assert_eq!(
            serde_json::to_value(mode).unwrap(),
            serde_json::Value::String(mode.to_string())
        );
    }
    assert!("open-book".parse::<Mode>().is_err());
}
