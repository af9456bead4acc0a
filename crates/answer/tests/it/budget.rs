use ragtune_answer::testing::{FakeGenerator, FixedRetriever, hit};
use ragtune_answer::{Answerer, AskOptions, Error, PassageFit};

fn words(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{tag}w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn generator() -> FakeGenerator {
    FakeGenerator::table(4096, &[], "p0w1 [1]")
}

/// Tokens of the RAG prompt without passages.
fn empty_prompt_tokens(generator: &FakeGenerator) -> u32 {
    let none = FixedRetriever::new(Vec::new());
    let p = Answerer::new(generator, AskOptions::default())
        .with_retriever(&none)
        .prepare("How long?")
        .unwrap();
    assert!(p.request.is_none());
    p.tokens.prompt
}

fn options(budget: u32, min_trim_chars: usize) -> AskOptions {
    AskOptions {
        prompt_budget: Some(budget),
        min_trim_chars,
        top_k: 5,
        ..AskOptions::default()
    }
}

fn user_message(p: &ragtune_answer::PreparedQuestion) -> String {
    p.messages().unwrap().last().unwrap().content.clone()
}

#[test]
fn passages_that_do_not_fit_are_dropped_and_reported() {
    let generator = generator();
    let empty = empty_prompt_tokens(&generator);
    // Each passage line is "[n] (source) text": 2 + 30 tokens.
    let retriever = FixedRetriever::new(vec![
        hit(1, "a", &words("p0", 30), 0.9),
        hit(2, "b", &words("p1", 30), 0.8),
        hit(3, "c", &words("p2", 30), 0.7),
    ]);
    let budget = empty + 2 * 32 + 5;
    let answerer = Answerer::new(&generator, options(budget, 10_000)).with_retriever(&retriever);
    let p = answerer.prepare("How long?").unwrap();
    let fits: Vec<_> = p.passages.iter().map(|p| p.fit).collect();
    assert_eq!(
        fits,
        vec![PassageFit::Full, PassageFit::Full, PassageFit::Dropped]
    );
    assert_eq!(p.passages[2].number, None);
    assert!(!user_message(&p).contains("p2w0"));
    assert_eq!(p.tokens.prompt, empty + 2 * 32);
    assert_eq!(p.tokens.prompt_budget, budget);
    assert_eq!(p.tokens.context_used, 2 * 32);
    assert_eq!(p.tokens.context_budget, budget - empty);
    // The answer reports the same.
    let a = answerer.ask("How long?").unwrap();
    assert_eq!(a.passages[2].fit, PassageFit::Dropped);
    assert!(a.tokens.prompt <= a.tokens.prompt_budget);
}

#[test]
fn a_passage_is_trimmed_to_the_room_left() {
    let generator = generator();
    let empty = empty_prompt_tokens(&generator);
    let retriever = FixedRetriever::new(vec![
        hit(1, "a", &words("p0", 30), 0.9),
        hit(2, "b", &words("p1", 30), 0.8),
    ]);
    let budget = empty + 32 + 12;
    let p = Answerer::new(&generator, options(budget, 1))
        .with_retriever(&retriever)
        .prepare("How long?")
        .unwrap();
    // 12 tokens left: "[2] (b)", 9 words and the trim mark.
    let kept = words("p1", 9);
    assert_eq!(
        p.passages[1].fit,
        PassageFit::Trimmed {
            kept_chars: kept.len()
        }
    );
    assert!(user_message(&p).contains(&format!("[2] (b) {kept} \u{2026}")));
    assert_eq!(p.tokens.prompt, budget);
    assert_eq!(p.shown[1], format!("{kept} \u{2026}"));
}

#[test]
fn a_shorter_passage_after_a_dropped_one_is_kept_and_renumbered() {
    let generator = FakeGenerator::table(4096, &[], "p2w0 [2]");
    let empty = empty_prompt_tokens(&generator);
    let retriever = FixedRetriever::new(vec![
        hit(1, "a", &words("p0", 5), 0.9),
        hit(2, "b", &words("p1", 200), 0.8),
        hit(3, "c", &words("p2", 5), 0.7),
    ]);
    let options = options(empty + 2 * 7 + 3, 10_000);
    let a = Answerer::new(&generator, options)
        .with_retriever(&retriever)
        .ask("How long?")
        .unwrap();
    let numbers: Vec<_> = a.passages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![Some(1), None, Some(2)]);
    // [2] is the third retrieved chunk.
    assert_eq!(a.citations[0].chunk.as_ref().unwrap().chunk_id, 3);
}

#[test]
fn the_budget_never_exceeds_the_context_minus_the_answer() {
    let generator = FakeGenerator::table(300, &[], "x");
    let retriever = FixedRetriever::new(vec![hit(1, "a", &words("p0", 1000), 0.9)]);
    let p = Answerer::new(&generator, options(100_000, 1))
        .with_retriever(&retriever)
        .prepare("How long?")
        .unwrap();
    assert_eq!(p.tokens.prompt_budget, 300 - 64);
    assert!(p.tokens.prompt <= 300 - 64);
    assert!(matches!(p.passages[0].fit, PassageFit::Trimmed { .. }));
}

#[test]
fn a_budget_too_small_for_the_question_is_an_error() {
    let generator = generator();
    let retriever = crate::retriever();
    let err = Answerer::new(&generator, options(5, 1))
        .with_retriever(&retriever)
        .ask("How long?")
        .unwrap_err();
    assert!(
        matches!(err, Error::PromptTooLong { budget: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("How long?"));
    let err = Answerer::new(&FakeGenerator::table(64, &[], "x"), AskOptions::default())
        .with_retriever(&retriever)
        .ask("How long?")
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}
