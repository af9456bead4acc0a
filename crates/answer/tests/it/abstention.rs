use crate::{replying, retriever};
use ragtune_answer::template::{CLOSED_BOOK_REFUSAL, RAG_REFUSAL};
use ragtune_answer::testing::{FixedRetriever, hit};
use ragtune_answer::{AbstainReason, AbstentionPolicy, Answerer, AskOptions, Mode};

fn with_threshold(min_score: Option<f32>, model_refusal: bool) -> AskOptions {
    AskOptions {
        abstention: AbstentionPolicy {
            min_score,
            model_refusal,
            min_confidence: None,
        },
        ..crate::all_hits()
    }
}

#[test]
fn a_low_retrieval_score_abstains_and_a_high_one_answers() {
    let generator = replying("Beyonce [1]");
    let weak = FixedRetriever::new(vec![hit(1, "a.md", "Beyonce sang.", 0.3)]);
    let a = Answerer::new(&generator, with_threshold(Some(0.5), true))
        .with_retriever(&weak)
        .ask("Who sang?")
        .unwrap();
    assert!(a.abstention.abstained);
    assert_eq!(a.abstention.reason, Some(AbstainReason::LowScore));
    assert_eq!(a.abstention.score, Some(0.3));
    assert_eq!(a.abstention.min_score, Some(0.5));
    assert_eq!(a.answer, RAG_REFUSAL);
    assert_eq!(a.answer_text, "");
    // The model's own reply is kept for inspection.
    assert_eq!(a.model_output, "Beyonce [1]");

    let strong = FixedRetriever::new(vec![hit(1, "a.md", "Beyonce sang.", 0.8)]);
    let a = Answerer::new(&generator, with_threshold(Some(0.5), true))
        .with_retriever(&strong)
        .ask("Who sang?")
        .unwrap();
    assert!(!a.abstention.abstained);
    assert_eq!(a.answer_text, "Beyonce");
}

#[test]
fn the_score_is_the_best_passage_in_the_prompt() {
    let generator = replying("x");
    let retriever = retriever();
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("Who?")
        .unwrap();
    assert_eq!(a.abstention.score, Some(0.9));
}

#[test]
fn the_model_refusal_abstains_unless_ignored() {
    let generator = replying("The documents do not contain the answer.");
    let retriever = retriever();
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("What is the capital of Peru?")
        .unwrap();
    assert!(a.abstention.abstained);
    assert_eq!(a.abstention.reason, Some(AbstainReason::ModelRefused));
    assert_eq!(a.answer, RAG_REFUSAL);

    let a = Answerer::new(&generator, with_threshold(None, false))
        .with_retriever(&retriever)
        .ask("What is the capital of Peru?")
        .unwrap();
    assert!(!a.abstention.abstained);
    assert!(a.abstention.model_refused);
}

#[test]
fn an_answer_is_not_mistaken_for_a_refusal() {
    let generator = replying("Denver Broncos [1]");
    let retriever = retriever();
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("Who won?")
        .unwrap();
    assert!(!a.abstention.abstained && !a.abstention.model_refused);
}

#[test]
fn no_passages_abstain_without_asking_the_model() {
    let generator = replying("Lima");
    let empty = FixedRetriever::new(Vec::new());
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&empty)
        .ask("What is the capital of Peru?")
        .unwrap();
    assert_eq!(a.abstention.reason, Some(AbstainReason::NoPassages));
    assert_eq!(a.answer, RAG_REFUSAL);
    assert!(generator.requests.lock().unwrap().is_empty());
    assert_eq!(a.finish_reason, None);
    assert_eq!(a.tokens.completion, 0);
}

#[test]
fn closed_book_abstains_on_its_own_refusal_only() {
    let generator = replying("I don't know.");
    let options = with_threshold(Some(100.0), true).with_mode(Mode::ClosedBook);
    let a = Answerer::new(&generator, options).ask("Who?").unwrap();
    assert_eq!(a.abstention.reason, Some(AbstainReason::ModelRefused));
    assert_eq!(a.abstention.score, None);
    assert_eq!(a.answer, CLOSED_BOOK_REFUSAL);
    let generator = replying("Lima");
    let options = with_threshold(Some(100.0), true).with_mode(Mode::ClosedBook);
    let a = Answerer::new(&generator, options).ask("Who?").unwrap();
    assert!(!a.abstention.abstained);
}

#[test]
fn an_unsure_reply_abstains_when_a_confidence_threshold_is_set() {
    let generator = replying("Beyonce [1]").with_confidence(|reply| {
        if reply.starts_with("Beyonce") {
            0.2
        } else {
            0.9
        }
    });
    let strong = FixedRetriever::new(vec![hit(1, "a.md", "Beyonce sang.", 0.9)]);
    let mut options = crate::all_hits();
    let answer = |options: &AskOptions| {
        Answerer::new(&generator, options.clone())
            .with_retriever(&strong)
            .ask("Who sang?")
            .unwrap()
    };
    // Reported without a threshold, and the answer stands.
    let a = answer(&options);
    assert!(!a.abstention.abstained);
    let c = a.abstention.confidence.unwrap();
    assert!((c - 0.2).abs() < 1e-5, "{c}");
    options.abstention.min_confidence = Some(0.5);
    let a = answer(&options);
    assert_eq!(a.abstention.reason, Some(AbstainReason::LowConfidence));
    assert_eq!(a.answer, RAG_REFUSAL);
}
