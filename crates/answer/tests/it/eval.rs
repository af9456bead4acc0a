use ragtune_answer::Answerer;
use ragtune_answer::eval::{
    QaItem, Signal, curve, default_thresholds, evaluate, exact_match, f1_score, normalize_answer,
    score_answer,
};
use ragtune_answer::testing::{FakeGenerator, FixedRetriever, hit};

fn item(id: &str, question: &str, answers: &[&str]) -> QaItem {
    QaItem {
        id: id.into(),
        question: question.into(),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        is_impossible: answers.is_empty(),
        title: String::new(),
        context: String::new(),
        decision: None,
    }
}

fn items() -> Vec<QaItem> {
    vec![
        item(
            "q1",
            "Who won Super Bowl 50?",
            &["Denver Broncos", "The Denver Broncos"],
        ),
        item("q2", "Where was Super Bowl 50 played?", &["Levi's Stadium"]),
        item("q3", "What is the capital of Peru?", &[]),
        item("q4", "Who painted the Mona Lisa?", &[]),
    ]
}

fn generator() -> FakeGenerator {
    FakeGenerator::table(
        4096,
        &[
            ("Who won Super Bowl 50?", "Denver Broncos [1]"),
            ("Where was Super Bowl 50 played?", "Santa Clara stadium [2]"),
            (
                "What is the capital of Peru?",
                "the documents do not contain the answer",
            ),
            ("Who painted the Mona Lisa?", "Leonardo [4]"),
        ],
        "?",
    )
}

fn retriever() -> FixedRetriever {
    let passages = |score: f32| {
        vec![
            hit(1, "a.md", "The Denver Broncos won.", score),
            hit(2, "b.md", "It was played at Levi's Stadium.", score - 0.1),
            hit(3, "c.md", "Santa Clara is in California.", score - 0.15),
        ]
    };
    FixedRetriever::default()
        .with("Who won Super Bowl 50?", passages(0.9))
        .with("Where was Super Bowl 50 played?", passages(0.7))
        .with("What is the capital of Peru?", passages(0.2))
        .with("Who painted the Mona Lisa?", passages(0.3))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn metrics_aggregate_over_questions() {
    let generator = generator();
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let eval = evaluate(&answerer, &items()).unwrap();
    // One batched generation with every prompt.
    assert_eq!(*generator.batches.lock().unwrap(), vec![4]);
    let r: Vec<_> = eval.results.iter().map(|r| (r.exact_match, r.f1)).collect();
    assert_eq!(r[0], (1.0, 1.0));
    assert!(r[1].0 == 0.0 && close(r[1].1, 0.4), "{:?}", r[1]);
    assert_eq!(r[2], (1.0, 1.0));
    assert_eq!(r[3], (0.0, 0.0));
    let s = &eval.report.summary;
    assert_eq!((s.questions, s.answerable, s.unanswerable), (4, 2, 2));
    assert!(close(s.exact_match, 0.5) && close(s.f1, 0.6), "{s:?}");
    assert!(close(s.has_answer_exact_match.unwrap(), 0.5));
    assert!(close(s.has_answer_f1.unwrap(), 0.7));
    assert_eq!(s.abstention_rate_unanswerable, Some(0.5));
    assert_eq!(s.false_abstention_rate_answerable, Some(0.0));
    assert_eq!((s.citations, s.valid_citations), (3, 2));
    assert!(close(s.citation_validity_rate.unwrap(), 2.0 / 3.0));
    // "Santa Clara stadium [2]" cites a passage that does not say so: valid, not supported.
    assert_eq!(s.supported_citations, 1);
    assert!(close(s.citation_support_rate.unwrap(), 1.0 / 3.0));
    assert_eq!(s.cited_answer_rate, Some(1.0));
    // The fake takes 1 ms per completion token.
    assert!(
        s.latency_p50_ms >= 2.0 && s.latency_p95_ms >= s.latency_p50_ms,
        "{s:?}"
    );
    assert!(s.mean_prompt_tokens > s.mean_context_tokens && s.mean_context_tokens > 0.0);
    let completion: u32 = eval
        .results
        .iter()
        .map(|r| r.answer.tokens.completion)
        .sum();
    assert!(close(s.mean_completion_tokens, f64::from(completion) / 4.0));
}

#[test]
fn the_threshold_sweep_trades_abstention_for_answers() {
    let generator = generator();
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let eval = evaluate(&answerer, &items()).unwrap();
    let points = curve(&eval.results, Signal::RetrievalScore, &[0.5, 1.0]);
    assert_eq!(points.len(), 3);
    // No threshold: what the run itself decided.
    assert_eq!(points[0].threshold, None);
    assert_eq!(points[0].abstention_rate_unanswerable, Some(0.5));
    assert!(close(
        points[0].exact_match,
        eval.report.summary.exact_match
    ));
    // 0.5 withholds the two weak ones (scores 0.2 and 0.3): both unanswerable.
    assert_eq!(points[1].abstention_rate_unanswerable, Some(1.0));
    assert_eq!(points[1].false_abstention_rate_answerable, Some(0.0));
    assert!(close(points[1].exact_match, 0.75));
    // Above every score, everything is withheld.
    assert_eq!(points[2].false_abstention_rate_answerable, Some(1.0));
    assert!(close(points[2].exact_match, 0.5) && close(points[2].f1, 0.5));
    // The default sweep spans the observed scores and ends where all abstain.
    let t = default_thresholds(&eval.results, Signal::RetrievalScore);
    assert_eq!(t[..4], [0.2, 0.3, 0.7, 0.9]);
    assert_eq!(t.len(), 5);
    let last = eval.report.curve.last().unwrap();
    assert_eq!(last.abstention_rate_unanswerable, Some(1.0));
    assert_eq!(last.false_abstention_rate_answerable, Some(1.0));
}

#[test]
fn the_report_prints_as_a_table_and_json() {
    let generator = generator();
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let eval = evaluate(&answerer, &items()).unwrap();
    let text = eval.report.to_string();
    assert!(
        text.starts_with("mode rag: 4 questions (2 answerable, 2 unanswerable)"),
        "{text}"
    );
    assert!(
        text.contains("exact match                    50.0%"),
        "{text}"
    );
    assert!(
        text.contains("valid citations                66.7% (2 of 3)"),
        "{text}"
    );
    assert!(
        text.contains("supported citations            33.3% (1 of 3)"),
        "{text}"
    );
    assert!(text.contains("threshold"), "{text}");
    let json = serde_json::to_value(&eval).unwrap();
    assert_eq!(json["report"]["summary"]["exact_match"], 0.5);
    assert_eq!(
        json["results"][2]["answer"]["abstention"]["reason"],
        "model_refused"
    );
    assert_eq!(json["report"]["mode"], "rag");
}

#[test]
fn squad_normalisation_and_scores_on_known_cases() {
    // From the official evaluation script's behaviour.
    assert_eq!(exact_match("The Cat", "cat"), 1.0);
    assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
    assert_eq!(exact_match("Denver Broncos [1]", "Denver Broncos"), 0.0);
    assert_eq!(f1_score("Santa Clara stadium", "Levi's Stadium"), 0.4);
    let golds = ["Denver Broncos".to_string(), "Broncos".to_string()];
    assert_eq!(score_answer("the Broncos", &golds), (1.0, 1.0));
    assert_eq!(score_answer("", &[]), (1.0, 1.0));
}

#[test]
fn the_confidence_sweep_uses_the_model_s_own_signal() {
    // Sure of the right answer, unsure of the guess about the Mona Lisa.
    let generator = generator().with_confidence(|reply| {
        if reply.starts_with("Leonardo") {
            0.3
        } else {
            0.9
        }
    });
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let eval = evaluate(&answerer, &items()).unwrap();
    let confidences: Vec<_> = eval
        .results
        .iter()
        .map(|r| r.answer.abstention.confidence.unwrap())
        .collect();
    assert!((confidences[3] - 0.3).abs() < 1e-5, "{confidences:?}");
    let points = curve(&eval.results, Signal::Confidence, &[0.5]);
    // No threshold: only the refusal abstains; at 0.5 the unsure guess is withheld too.
    assert_eq!(points[0].abstention_rate_unanswerable, Some(0.5));
    assert_eq!(points[1].abstention_rate_unanswerable, Some(1.0));
    assert_eq!(points[1].false_abstention_rate_answerable, Some(0.0));
    assert_eq!(eval.report.confidence_curve.len(), 1 + 3);
}

const GOLD: &str = "Super Bowl 50 was an American football game to determine the champion of \
the National Football League for the 2015 season. The Denver Broncos defeated the Carolina \
Panthers 24-10 to earn their third Super Bowl title.";

#[test]
fn context_recall_counts_a_shown_passage_of_the_gold_paragraph_that_holds_the_answer() {
    let with_gold = |id: &str, question: &str| QaItem {
        context: GOLD.into(),
        ..item(id, question, &["Denver Broncos"])
    };
    let items = vec![
        // The gold paragraph's sentence with the answer.
        with_gold("in", "Who won?"),
        // The answer, but from another paragraph.
        with_gold("elsewhere", "Who won the game?"),
        // The gold paragraph, but not the part with the answer.
        with_gold("no-answer", "Who won the title?"),
        // Unanswerable, and answerable without a gold paragraph: not counted.
        QaItem {
            context: GOLD.into(),
            ..item("impossible", "Who lost?", &[])
        },
        item("no-context", "Who played?", &["Denver Broncos"]),
    ];
    let retriever = FixedRetriever::default()
        .with(
            "Who won?",
            vec![
                hit(1, "x.md", "Unrelated text about the weather.", 0.9),
                hit(2, "sb.md", "The Denver Broncos defeated the Carolina Panthers 24-10 to earn their third Super Bowl title.", 0.8),
            ],
        )
        .with(
            "Who won the game?",
            vec![hit(3, "fans.md", "Fans of the Denver Broncos celebrated in the streets of Denver all night.", 0.9)],
        )
        .with(
            "Who won the title?",
            vec![hit(4, "sb.md", "Super Bowl 50 was an American football game to determine the champion of the National Football League.", 0.9)],
        )
        .with("Who lost?", vec![hit(2, "sb.md", GOLD, 0.9)])
        .with("Who played?", vec![hit(2, "sb.md", GOLD, 0.9)]);
    let generator = FakeGenerator::table(4096, &[], "?");
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let eval = evaluate(&answerer, &items).unwrap();
    let flags: Vec<Option<bool>> = eval.results.iter().map(|r| r.gold_in_context).collect();
    assert_eq!(
        flags,
        vec![Some(true), Some(false), Some(false), None, None]
    );
    let recall = eval.report.summary.context_recall.unwrap();
    assert!(close(recall, 1.0 / 3.0), "{recall}");
    assert!(eval.report.to_string().contains("gold paragraph in prompt"));
    // Closed-book answers show no passage: nothing to say about recall.
    let closed = Answerer::new(
        &generator,
        crate::all_hits().with_mode(ragtune_answer::Mode::ClosedBook),
    );
    let eval = evaluate(&closed, &items).unwrap();
    assert_eq!(eval.report.summary.context_recall, None);
    assert!(!eval.report.to_string().contains("gold paragraph in prompt"));
}

#[test]
fn context_recall_sees_only_what_the_budget_left_of_a_passage() {
    let item = QaItem {
        context: GOLD.into(),
        ..item("trimmed", "Who won?", &["Denver Broncos"])
    };
    let retriever = FixedRetriever::new(vec![hit(1, "sb.md", GOLD, 0.9)]);
    let generator = FakeGenerator::table(4096, &[], "?");
    let whole = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let full_prompt = whole.prepare("Who won?").unwrap().tokens.prompt;
    assert_eq!(
        evaluate(&whole, std::slice::from_ref(&item))
            .unwrap()
            .results[0]
            .gold_in_context,
        Some(true)
    );
    // Cut after about 20 words: the first sentence stays, the answer goes.
    let cut = Answerer::new(
        &generator,
        ragtune_answer::AskOptions {
            prompt_budget: Some(full_prompt - 16),
            min_trim_chars: 10,
            ..crate::all_hits()
        },
    )
    .with_retriever(&retriever);
    let eval = evaluate(&cut, std::slice::from_ref(&item)).unwrap();
    assert!(matches!(
        eval.results[0].answer.passages[0].fit,
        ragtune_answer::PassageFit::Trimmed { .. }
    ));
    assert_eq!(eval.results[0].gold_in_context, Some(false));
}
