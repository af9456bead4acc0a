use crate::{replying, retriever};
use ragtune_answer::citation::{check_citations, parse_citations};
use ragtune_answer::{Answer, Answerer, CitationFailure};

fn ask(reply: &str) -> Answer {
    let generator = replying(reply);
    let retriever = retriever();
    Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("Who won Super Bowl 50?")
        .unwrap()
}

fn numbers(reply: &str) -> Vec<Vec<u32>> {
    parse_citations(reply)
        .into_iter()
        .map(|m| m.numbers)
        .collect()
}

#[test]
fn citation_forms_parse() {
    assert_eq!(numbers("Denver [1]"), vec![vec![1]]);
    assert_eq!(numbers("Denver [1][2]"), vec![vec![1], vec![2]]);
    assert_eq!(numbers("Denver [1, 2]"), vec![vec![1, 2]]);
    assert_eq!(numbers("Denver [12]"), vec![vec![12]]);
    assert!(numbers("Denver [a] (1)").is_empty());
}

#[test]
fn every_form_maps_to_passages() {
    for reply in [
        "Denver Broncos [1][2]",
        "Denver Broncos [1, 2]",
        "Denver Broncos [1,2].",
    ] {
        let a = ask(reply);
        let cited: Vec<_> = a.citations.iter().map(|c| (c.number, c.valid)).collect();
        assert_eq!(cited, vec![(1, true), (2, true)], "{reply}");
        assert_eq!(a.answer_text.trim_end_matches('.'), "Denver Broncos");
        assert_eq!(a.citations[1].chunk.as_ref().unwrap().page, Some(2));
    }
}

#[test]
fn out_of_range_numbers_fail_and_are_counted() {
    let a = ask("Denver Broncos [2][4] [0]");
    let cited: Vec<_> = a.citations.iter().map(|c| (c.number, c.valid)).collect();
    assert_eq!(cited, vec![(2, true), (4, false), (0, false)]);
    assert_eq!(a.failed_citations, 2);
    assert_eq!(
        a.citations[1].failure,
        Some(CitationFailure::NotInPrompt { passages: 3 })
    );
    assert!(a.citations[1].chunk.is_none());
    assert_eq!(
        a.citations[1].failure.as_ref().unwrap().to_string(),
        "the prompt had passages [1] to [3] only"
    );
}

#[test]
fn a_repeated_number_is_one_citation() {
    let a = ask("Denver [1], Broncos [1]");
    assert_eq!(a.citations.len(), 1);
}

#[test]
fn quotes_match_across_whitespace_case_and_typography() {
    for reply in [
        "\"won by the   Denver\nBroncos\" [1]",
        "“WON BY THE DENVER BRONCOS,” [1]",
        "[2] says \u{201C}Levi\u{2019}s Stadium\u{201D}",
        "\"won by ... Broncos\" [1]",
    ] {
        let a = ask(reply);
        assert_eq!(a.failed_citations, 0, "{reply}: {:?}", a.citations);
        assert!(a.quotes[0].supported, "{reply}");
    }
}

#[test]
fn a_quote_missing_from_the_cited_passage_fails_that_citation() {
    let a = ask("\"won by the Carolina Panthers\" [1]");
    assert_eq!(a.failed_citations, 1);
    assert_eq!(
        a.citations[0].failure,
        Some(CitationFailure::QuoteNotFound {
            quote: "won by the Carolina Panthers".into()
        })
    );
    // Quoting passage 2 while citing passage 1.
    let a = ask("\"Levi's Stadium\" [1]");
    assert!(!a.citations[0].valid);
    assert_eq!(a.quotes[0].found_in, vec![2]);
    assert_eq!(a.quotes[0].cited, vec![1]);
}

#[test]
fn a_quote_is_checked_against_the_citation_next_to_it() {
    let passages = ["alpha beta", "gamma delta"];
    let c = check_citations("\"alpha beta\" [1] and \"gamma delta\" [2]", &passages);
    assert!(c.numbers.iter().all(|n| n.failure.is_none()));
    let c = check_citations("\"alpha beta\" [2] and \"gamma delta\" [1]", &passages);
    assert!(c.numbers.iter().all(|n| n.failure.is_some()));
    // A citation group covers the quote when any of its passages holds it.
    let c = check_citations("\"gamma delta\" [1][2]", &passages);
    assert!(c.numbers.iter().all(|n| n.failure.is_none()));
    // With the citation before the quote.
    let c = check_citations("[2]: \"gamma delta\"", &passages);
    assert!(c.quotes[0].supported && c.numbers[0].failure.is_none());
    // An uncited quote is reported, not counted as a failed citation.
    let c = check_citations("\"omega\"", &passages);
    assert!(!c.quotes[0].supported && c.numbers.is_empty());
}

/// Passages of a paper that carry its own bracketed references.
fn paper_hits() -> Vec<ragtune_core::Hit> {
    use ragtune_answer::testing::hit;
    vec![
        hit(
            1,
            "paper.pdf",
            "Aspirin lowers fever [2, 7, 8]. The effect lasts about 4 hours [9].",
            0.9,
        ),
        hit(2, "paper.pdf", "Ibuprofen was introduced in 1969 [2].", 0.8),
    ]
}

fn ask_paper(reply: &str) -> Answer {
    let generator = replying(reply);
    let retriever = ragtune_answer::testing::FixedRetriever::new(paper_hits());
    Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("How long does the effect of aspirin last?")
        .unwrap()
}

#[test]
fn bracketed_references_of_the_documents_are_not_shown_as_markers() {
    let generator = replying("about 4 hours [1]");
    let retriever = ragtune_answer::testing::FixedRetriever::new(paper_hits());
    let a = Answerer::new(&generator, crate::all_hits())
        .with_retriever(&retriever)
        .ask("How long does the effect of aspirin last?")
        .unwrap();
    let request = &generator.requests.lock().unwrap()[0];
    let prompt = ragtune_answer::testing::chatml(&request.prompt);
    let question = &prompt[prompt.rfind("<documents>").unwrap()..];
    assert!(
        question.contains(
            "[1] (paper.pdf) Aspirin lowers fever (ref. 2, 7, 8). The effect lasts about 4 hours (ref. 9)."
        ),
        "{question}"
    );
    assert!(question.contains("[2] (paper.pdf) Ibuprofen was introduced in 1969 (ref. 2)."));
    // The stored chunk (and its span) is untouched.
    assert!(a.passages[0].hit.text.contains("fever [2, 7, 8]."));
    assert_eq!(a.failed_citations, 0);
}

#[test]
fn bracketed_references_copied_into_the_reply_are_not_citations() {
    // Copied as the paper wrote them, next to a real citation.
    let a = ask_paper("about 4 hours [9] [1]");
    let cited: Vec<_> = a.citations.iter().map(|c| (c.number, c.valid)).collect();
    assert_eq!(cited, vec![(1, true)]);
    assert_eq!(a.copied_references, vec!["[9]"]);
    assert_eq!(a.failed_citations, 0);
    assert_eq!(a.answer_text, "about 4 hours");
    // A list in another order, and the prompt's own form, copied back.
    let a = ask_paper("Aspirin lowers fever [8, 2, 7]");
    assert!(a.citations.is_empty(), "{:?}", a.citations);
    assert_eq!(a.copied_references, vec!["[8, 2, 7]"]);
    let a = ask_paper("about 4 hours (ref. 9) [1]");
    assert_eq!(a.answer_text, "about 4 hours");
    assert_eq!(a.citations.len(), 1);
    // A number no passage shows as a reference is still a failed citation...
    let a = ask_paper("about 4 hours [7]");
    assert_eq!(a.failed_citations, 1);
    assert!(a.copied_references.is_empty());
    // ...and a number that names a passage stays a citation even when a reference has it.
    let a = ask_paper("in 1969 [2]");
    assert_eq!(a.citations[0].number, 2);
    assert!(a.citations[0].valid);
}

#[test]
fn a_citation_of_an_unrelated_passage_is_unsupported_not_ok() {
    use ragtune_answer::CitationStatus;
    let france = "France is a country in Western Europe. Its capital is Paris.";
    let ask_france = |reply: &str| {
        let generator = replying(reply);
        let retriever =
            ragtune_answer::testing::FixedRetriever::new(vec![ragtune_answer::testing::hit(
                1,
                "france.md",
                france,
                0.9,
            )]);
        Answerer::new(&generator, crate::all_hits())
            .with_retriever(&retriever)
            .ask("What is the highest mountain?")
            .unwrap()
    };
    let a = ask_france("Everest [1]");
    let c = &a.citations[0];
    assert!(c.valid && c.in_prompt && !c.supported, "{c:?}");
    assert_eq!(c.status, CitationStatus::Unsupported);
    assert_eq!(c.claim, "Everest");
    assert_eq!((a.failed_citations, a.unsupported_citations), (0, 1));
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["citations"][0]["status"], "unsupported");
    assert_eq!(json["citations"][0]["valid"], true);
    assert_eq!(json["citations"][0]["supported"], false);
    assert_eq!(json["citations"][0]["quote_found"], serde_json::Value::Null);
    assert_eq!(json["unsupported_citations"], 1);
    // The passage that holds the answer supports it.
    let a = ask_france("Paris [1]");
    assert_eq!(a.citations[0].status, CitationStatus::Ok);
    assert_eq!(a.unsupported_citations, 0);
}

#[test]
fn each_check_of_a_citation_is_reported() {
    use ragtune_answer::CitationStatus::*;
    let status =
        |a: &Answer| -> Vec<_> { a.citations.iter().map(|c| (c.number, c.status)).collect() };
    // One citation group, two passages: only the first holds the answer.
    let a = ask("Denver Broncos [1][2]");
    assert_eq!(status(&a), vec![(1, Ok), (2, Unsupported)]);
    // A quote found in the cited passage.
    let a = ask("\"won by the Denver Broncos\" [1]");
    assert_eq!(a.citations[0].quote_found, Some(true));
    assert_eq!(status(&a), vec![(1, Ok)]);
    // A quote missing from it: the failure decides the status.
    let a = ask("\"won by the Carolina Jaguars\" [1]");
    assert_eq!(a.citations[0].quote_found, Some(false));
    assert!(!a.citations[0].valid);
    assert_eq!(status(&a), vec![(1, QuoteNotFound)]);
    // Not a passage of the prompt.
    let a = ask("Denver Broncos [7]");
    let c = &a.citations[0];
    assert!(!c.in_prompt && !c.supported && !c.valid);
    assert_eq!(status(&a), vec![(7, NotInPrompt)]);
    // Each sentence is checked against the number next to it; one use that the passage does
    // not support is enough.
    let a = ask("The Broncos won [1]. The game was played at Levi's Stadium [2].");
    assert_eq!(status(&a), vec![(1, Ok), (2, Ok)]);
    let a = ask("The Broncos won [1]. The game was played at Levi's Stadium [1].");
    assert_eq!(status(&a), vec![(1, Unsupported)]);
    assert_eq!(
        a.citations[0].claim,
        "The game was played at Levi's Stadium"
    );
    // A citation before its sentence.
    let a = ask("[3] Beyonce and Bruno Mars performed.");
    assert_eq!(status(&a), vec![(3, Ok)]);
}
