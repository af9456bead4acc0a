use crate::TempFile;
use ragtune_answer::testing::{BagOfWords, FakeGenerator};
use ragtune_answer::{Answerer, AskOptions, Example, ExamplePool, Mode, load_examples};
use ragtune_core::{EmbedError, Embedder, Prompt, Role};
use std::sync::Mutex;

fn example(q: &str, a: &str) -> Example {
    Example {
        question: q.into(),
        answer: a.into(),
    }
}

fn examples() -> Vec<Example> {
    vec![
        example("What colour is the sky?", "blue"),
        example("Which team won Super Bowl 49?", "New England Patriots"),
        example("How many legs does a spider have?", "eight"),
        example("Which team lost Super Bowl 50?", "Carolina Panthers"),
        example("Who won Super Bowl 50?", "Denver Broncos"),
    ]
}

#[test]
fn the_most_similar_examples_are_chosen() {
    let embedder = BagOfWords { dimension: 256 };
    let pool = ExamplePool::new(examples(), &embedder).unwrap();
    let chosen = pool.select("Which team won Super Bowl 50?", 2).unwrap();
    let questions: Vec<_> = chosen.iter().map(|e| e.question.as_str()).collect();
    // "Who won Super Bowl 50?" shares "won super bowl 50"; "Which team won Super Bowl 49?"
    // shares "team won super bowl"; both beat the unrelated ones.
    assert_eq!(chosen.len(), 2);
    assert!(
        questions.contains(&"Who won Super Bowl 50?"),
        "{questions:?}"
    );
    assert!(chosen[0].similarity >= chosen[1].similarity);
    assert!(chosen.iter().all(|e| e.similarity > 0.5));
    assert!(!questions.contains(&"What colour is the sky?"));
}

#[test]
fn the_asked_question_is_never_its_own_example() {
    let embedder = BagOfWords { dimension: 256 };
    let pool = ExamplePool::new(examples(), &embedder).unwrap();
    let chosen = pool.select("who won  super bowl 50?", 5).unwrap();
    assert_eq!(chosen.len(), 4);
    assert!(chosen.iter().all(|e| e.answer != "Denver Broncos"));
}

#[test]
fn examples_are_shown_as_turns_with_the_most_similar_last() {
    let embedder = BagOfWords { dimension: 256 };
    let pool = ExamplePool::new(examples(), &embedder).unwrap();
    let generator = FakeGenerator::table(4096, &[], "Denver Broncos");
    let options = AskOptions {
        examples: 2,
        ..crate::all_hits().with_mode(Mode::FewShot)
    };
    let answerer = Answerer::new(&generator, options).with_examples(&pool);
    let a = answerer.ask("Which team won Super Bowl 50?").unwrap();
    assert_eq!(a.examples.len(), 2);
    let Prompt::Chat(m) = &generator.requests.lock().unwrap()[0].prompt else {
        unreachable!()
    };
    let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
    use Role::*;
    assert_eq!(roles, vec![System, User, Assistant, User, Assistant, User]);
    assert_eq!(
        m[3].content,
        format!("Question: {}", a.examples[0].question)
    );
    assert_eq!(m[4].content, a.examples[0].answer);
    assert_eq!(m[5].content, "Question: Which team won Super Bowl 50?");
    assert!(a.tokens.context_used > 0);
}

#[test]
fn the_least_similar_examples_go_first_when_the_budget_is_short() {
    let embedder = BagOfWords { dimension: 256 };
    let pool = ExamplePool::new(examples(), &embedder).unwrap();
    let generator = FakeGenerator::table(4096, &[], "x");
    let all = Answerer::new(
        &generator,
        AskOptions {
            examples: 3,
            ..crate::all_hits().with_mode(Mode::FewShot)
        },
    )
    .with_examples(&pool)
    .prepare("Which team won Super Bowl 50?")
    .unwrap();
    assert_eq!(all.examples.len(), 3);
    let budget = all.tokens.prompt - 1;
    let fewer = Answerer::new(
        &generator,
        AskOptions {
            examples: 3,
            prompt_budget: Some(budget),
            ..crate::all_hits().with_mode(Mode::FewShot)
        },
    )
    .with_examples(&pool)
    .prepare("Which team won Super Bowl 50?")
    .unwrap();
    assert_eq!(fewer.examples, all.examples[..2].to_vec());
    assert!(fewer.tokens.prompt <= budget);
}

/// Counts the embedder calls.
struct Counting {
    inner: BagOfWords,
    calls: Mutex<Vec<usize>>,
}

impl Embedder for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn dimension(&self) -> usize {
        self.inner.dimension
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.lock().unwrap().push(texts.len());
        self.inner.embed(texts)
    }
}

#[test]
fn a_batch_embeds_its_questions_at_once() {
    let embedder = Counting {
        inner: BagOfWords { dimension: 64 },
        calls: Mutex::new(Vec::new()),
    };
    let pool = ExamplePool::new(examples(), &embedder).unwrap();
    let generator = FakeGenerator::table(4096, &[], "x");
    let answerer =
        Answerer::new(&generator, crate::all_hits().with_mode(Mode::FewShot)).with_examples(&pool);
    let answers = answerer.ask_batch(&["a?", "b?", "c?"]).unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(*embedder.calls.lock().unwrap(), vec![5, 3]);
}

#[test]
fn examples_load_from_jsonl() {
    let file = TempFile::new(
        "examples.jsonl",
        r#"{"question": "Q1?", "answer": "A1"}

{"question": "Q2?", "answers": ["A2", "A2b"]}
{"question": "Q3?", "answers": [{"text": "A3", "answer_start": 0}]}
{"question": "Q4?", "answers": []}
"#,
    );
    let examples = load_examples(&file.0).unwrap();
    assert_eq!(
        examples,
        vec![
            example("Q1?", "A1"),
            example("Q2?", "A2"),
            example("Q3?", "A3")
        ]
    );
    let bad = TempFile::new(
        "bad.jsonl",
        "{\"question\": \"Q1?\"}\n{\"answer\": \"x\"}\n",
    );
    let err = load_examples(&bad.0).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("question"), "{err}");
}

#[test]
fn examples_load_from_squad_json() {
    let examples = load_examples(&crate::shared_data("squad-v2.0-dev/dev-v2.0.json")).unwrap();
    // Only the answerable questions.
    assert_eq!(examples.len(), 11_873 - 5_945);
    assert_eq!(
        examples[0],
        example("In what country is Normandy located?", "France")
    );
}
