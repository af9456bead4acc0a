use crate::{BRONCOS, replying, retriever};
use ragtune_answer::{Answerer, AskOptions, Mode, PassageFit};
use ragtune_core::SearchMode;
use std::ops::ControlFlow;

#[test]
fn an_answer_cites_chunks_with_source_page_heading_and_span() {
    let generator = replying("Denver Broncos [1]");
    let retriever = retriever();
    let options = AskOptions {
        top_k: 5,
        ..crate::all_hits()
    };
    let answerer = Answerer::new(&generator, options).with_retriever(&retriever);
    let a = answerer.ask("Who won Super Bowl 50?").unwrap();
    assert_eq!(a.answer, "Denver Broncos [1]");
    assert_eq!(a.answer_text, "Denver Broncos");
    assert_eq!(a.mode, Mode::Rag);
    assert!(!a.abstention.abstained);
    assert_eq!(a.citations.len(), 1);
    let c = &a.citations[0];
    assert!(c.valid);
    let chunk = c.chunk.as_ref().unwrap();
    assert_eq!(chunk.chunk_id, 11);
    assert_eq!(chunk.source, "docs/nfl.md");
    assert_eq!(chunk.heading_path, vec!["Super Bowl 50", "Result"]);
    assert_eq!((chunk.start, chunk.end), (120, 120 + BRONCOS.len()));
    assert_eq!(chunk.page, None);
    // Every retrieved chunk is reported with its score and number.
    let numbers: Vec<_> = a.passages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![Some(1), Some(2), Some(3)]);
    assert!(a.passages.iter().all(|p| p.fit == PassageFit::Full));
    assert_eq!(a.passages[1].hit.score, 0.7);
    assert_eq!(a.passages[1].hit.page, Some(2));
}

#[test]
fn the_retriever_gets_the_configured_query() {
    let generator = replying("x");
    let retriever = retriever();
    let options = AskOptions {
        top_k: 2,
        search: SearchMode::Bm25,
        ..crate::all_hits()
    };
    let a = Answerer::new(&generator, options)
        .with_retriever(&retriever)
        .ask("Where?")
        .unwrap();
    let queries = retriever.queries.lock().unwrap();
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].k, 2);
    assert_eq!(queries[0].mode, SearchMode::Bm25);
    assert_eq!(queries[0].text, "Where?");
    assert_eq!(a.passages.len(), 2);
}

#[test]
fn tokens_and_timings_are_reported() {
    let generator = replying("Denver Broncos [1]");
    let retriever = retriever();
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("Who won?")
        .unwrap();
    let t = a.tokens;
    assert_eq!(t.completion, 3);
    assert!(t.prompt > t.context_used && t.context_used > 0);
    assert_eq!(t.prompt_budget, 4096 - 64);
    assert!(t.context_used <= t.context_budget && t.context_budget < t.prompt_budget);
    let m = a.timings;
    assert!(m.total_ms >= m.retrieval_ms + m.prompt_ms + m.generation_ms - 1e-9);
    let request = &generator.requests.lock().unwrap()[0];
    assert_eq!(request.max_tokens, 64);
    assert!(request.sampling.is_greedy());
}

#[test]
fn streaming_hands_over_the_reply_as_it_comes() {
    let generator = replying("Levi's Stadium [2]");
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let mut pieces = Vec::new();
    let a = answerer
        .ask_streaming("Where was it played?", &mut |piece| {
            pieces.push(piece.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(pieces.len() > 1);
    assert_eq!(pieces.concat(), a.model_output);
}

#[test]
fn the_result_serialises_to_json_and_back() {
    let generator = replying("Denver Broncos [1] [7]");
    let retriever = retriever();
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("Who won?")
        .unwrap();
    let json = serde_json::to_value(&a).unwrap();
    for key in [
        "answer",
        "citations",
        "passages",
        "timings",
        "tokens",
        "abstention",
    ] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
    assert_eq!(json["citations"][1]["failure"]["reason"], "not_in_prompt");
    assert_eq!(json["passages"][0]["fit"], "full");
    assert_eq!(json["mode"], "rag");
    let back: ragtune_answer::Answer = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);
}

#[test]
fn ask_batch_uses_one_batched_generation() {
    let generator = replying("Denver Broncos [1]");
    let retriever = retriever();
    let answerer = Answerer::new(&generator, crate::all_hits()).with_retriever(&retriever);
    let answers = answerer.ask_batch(&["a?", "b?", "c?"]).unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(*generator.batches.lock().unwrap(), vec![3]);
    assert!(answers.iter().all(|a| a.citations[0].valid));
}
