//! Context expansion: passages grow by their document's neighbouring chunks within the window
//! and the prompt budget, adjacent hits merge, spans stay exact, documents are never crossed.

use ragtune_answer::sanitize::sanitize_passage;
use ragtune_answer::testing::{FakeGenerator, FixedRetriever, chunks_of, hit, word_count};
use ragtune_answer::{Answerer, AskOptions, PassageFit, PreparedQuestion, Span};
use ragtune_core::Hit;

/// A document of `n` chunks of ten words (`{tag}c{chunk}w{word}`): the text, and the chunks
/// (ids from `first_id`). `overlap` words of each chunk repeat the previous chunk's last ones;
/// chunks are separated by `sep` otherwise.
fn document(tag: &str, n: usize, overlap: usize, sep: &str, first_id: i64) -> (String, Vec<Hit>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    // Word start offsets, to place overlapping chunks.
    let mut starts: Vec<usize> = Vec::new();
    for c in 0..n {
        let start = if c > 0 && overlap > 0 {
            starts[starts.len() - overlap]
        } else {
            if c > 0 {
                text.push_str(sep);
            }
            text.len()
        };
        for w in 0..10 - if c > 0 { overlap } else { 0 } {
            if text.len() > start || (c > 0 && overlap > 0) {
                text.push(' ');
            }
            starts.push(text.len());
            text.push_str(&format!("{tag}c{c}w{w}"));
        }
        spans.push((start, text.len()));
    }
    let chunks = chunks_of(tag, &text, &spans, first_id);
    (text, chunks)
}

fn generator() -> FakeGenerator {
    FakeGenerator::table(4096, &[], "no idea")
}

fn options(window: u32, top_k: usize) -> AskOptions {
    AskOptions {
        window,
        top_k,
        ..AskOptions::default()
    }
}

fn ranked(mut h: Hit, score: f32) -> Hit {
    h.score = score;
    h
}

fn user(p: &PreparedQuestion) -> String {
    p.messages().unwrap().last().unwrap().content.clone()
}

fn prepare(window: u32, retriever: &FixedRetriever) -> PreparedQuestion {
    let g = generator();
    Answerer::new(&g, options(window, 5))
        .with_retriever(retriever)
        .prepare("Which word?")
        .unwrap()
}

#[test]
fn the_document_fake_builds_the_chunks_it_describes() {
    let (text, chunks) = document("a", 3, 2, " ", 1);
    assert_eq!(chunks[1].text.split(' ').next(), Some("ac0w8"));
    for c in &chunks {
        assert_eq!(text[c.start..c.end], c.text);
        assert_eq!(word_count(&c.text), 10);
    }
    let (text, chunks) = document("b", 2, 0, "\n\n", 1);
    assert_eq!(&text[chunks[0].end..chunks[1].start], "\n\n");
}

#[test]
fn window_zero_leaves_the_prompt_as_it_was() {
    let (_, chunks) = document("a", 6, 0, " ", 1);
    let hits = vec![chunks[3].clone(), hit(99, "other", "alone here", 0.5)];
    let plain = FixedRetriever::new(hits.clone());
    let with_docs = FixedRetriever::new(hits).with_document(chunks);
    let a = prepare(0, &plain);
    let b = prepare(0, &with_docs);
    assert_eq!(a.request, b.request);
    assert_eq!(a.passages, b.passages);
    assert_eq!((a.shown, a.tokens, a.score), (b.shown, b.tokens, b.score));
    assert!(with_docs.neighbour_requests.lock().unwrap().is_empty());
    assert!(
        b.passages
            .iter()
            .all(|p| p.core.is_none() && p.chunks.is_empty())
    );
}

#[test]
fn a_hit_grows_by_its_neighbours_in_document_order_within_the_window() {
    let (text, chunks) = document("a", 8, 0, " ", 1);
    let r = FixedRetriever::new(vec![ranked(chunks[3].clone(), 0.9)]).with_document(chunks.clone());
    let p = prepare(35, &r);
    let passage = &p.passages[0];
    // After (4), before (2); a fourth chunk would make 40 words > 35.
    assert_eq!(passage.chunks, vec![3, 4, 5]);
    assert_eq!(passage.hit.start, chunks[2].start);
    assert_eq!(passage.hit.end, chunks[4].end);
    assert_eq!(passage.hit.text, text[passage.hit.start..passage.hit.end]);
    assert_eq!(passage.hit.chunk_id, 4, "the retrieved chunk's id");
    assert_eq!(passage.hit.score, 0.9);
    assert_eq!(
        passage.core,
        Some(Span {
            start: chunks[3].start,
            end: chunks[3].end
        })
    );
    assert_eq!(passage.fit, PassageFit::Full);
    assert!(word_count(&p.shown[0]) <= 35);
    assert_eq!(p.shown[0], sanitize_passage(&passage.hit.text));
    assert!(user(&p).contains(&p.shown[0]));
    // A larger window takes more; one chunk's worth takes none.
    assert_eq!(prepare(60, &r).passages[0].chunks.len(), 6);
    let small = prepare(15, &r);
    assert!(small.passages[0].core.is_none());
    assert_eq!(small.passages[0].hit, ranked(chunks[3].clone(), 0.9));
}

#[test]
fn adjacent_hits_of_one_document_become_one_passage_at_the_better_ones_place() {
    let (text, chunks) = document("a", 6, 0, " ", 1);
    let b = hit(50, "b", "bee words only", 0.8);
    // The better hit is after the worse one in the document.
    let r = FixedRetriever::new(vec![
        ranked(chunks[3].clone(), 0.9),
        b,
        ranked(chunks[2].clone(), 0.7),
    ])
    .with_document(chunks.clone());
    // A window below one chunk: nothing grows, but adjacent hits still merge.
    let p = prepare(5, &r);
    let numbers: Vec<Option<u32>> = p.passages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![Some(1), Some(2), Some(1)]);
    assert_eq!(p.shown.len(), 2);
    let merged = &p.passages[0].hit;
    assert_eq!((merged.start, merged.end), (chunks[2].start, chunks[3].end));
    assert_eq!(merged.text, text[merged.start..merged.end]);
    assert_eq!(merged.chunk_id, 4);
    assert_eq!(p.passages[2].fit, PassageFit::Full);
    // The worse hit is described by the passage that shows it, with its own id and span.
    let worse = &p.passages[2];
    assert_eq!((worse.hit.start, worse.hit.end), (merged.start, merged.end));
    assert_eq!((worse.hit.chunk_id, worse.hit.score), (3, 0.7));
    assert_eq!(
        worse.core,
        Some(Span {
            start: chunks[2].start,
            end: chunks[2].end
        })
    );
    assert_eq!(worse.chunks, vec![3, 4]);
    let prompt = user(&p);
    for w in merged.text.split(' ') {
        assert_eq!(
            prompt.matches(&format!("{w} ")).count() + prompt.matches(&format!("{w}\n")).count(),
            1,
            "{w} once"
        );
    }
    assert!(prompt.find("ac2w0").unwrap() < prompt.find("bee words").unwrap());
}

#[test]
fn overlapping_chunks_are_shown_once() {
    let (text, chunks) = document("a", 5, 3, " ", 1);
    let r = FixedRetriever::new(vec![ranked(chunks[2].clone(), 0.9)]).with_document(chunks.clone());
    // 10 words, then 7 new ones after: 17 <= 20; 7 more before would be 24.
    let p = prepare(20, &r);
    let h = &p.passages[0].hit;
    assert_eq!(p.passages[0].chunks, vec![3, 4]);
    assert_eq!(h.text, text[chunks[2].start..chunks[3].end]);
    assert_eq!(word_count(&h.text), 17);
}

#[test]
fn gaps_between_chunks_keep_offsets_exact_and_the_prompt_the_documents() {
    let (text, chunks) = document("a", 4, 0, "\n\n", 1);
    let r = FixedRetriever::new(vec![ranked(chunks[1].clone(), 0.9)]).with_document(chunks.clone());
    let p = prepare(30, &r);
    let h = &p.passages[0].hit;
    assert_eq!((h.start, h.end), (chunks[0].start, chunks[2].end));
    assert_eq!(h.text.len(), h.end - h.start);
    assert_eq!(p.shown[0], sanitize_passage(&text[h.start..h.end]));
}

#[test]
fn expansion_stays_within_the_prompt_budget_after_every_hit() {
    let (_, a) = document("a", 8, 0, " ", 1);
    let (_, b) = document("b", 8, 0, " ", 101);
    let g = generator();
    let r = FixedRetriever::new(vec![ranked(a[4].clone(), 0.9), ranked(b[4].clone(), 0.8)])
        .with_document(a)
        .with_document(b);
    let at = |budget: Option<u32>| {
        Answerer::new(
            &g,
            AskOptions {
                prompt_budget: budget,
                ..options(1000, 5)
            },
        )
        .with_retriever(&r)
        .prepare("Which word?")
        .unwrap()
    };
    let cores = prepare(0, &r).tokens.prompt;
    // Room for the two hits and one more chunk, not two.
    let p = at(Some(cores + 15));
    assert!(p.tokens.prompt <= cores + 15);
    assert_eq!(p.passages[0].chunks.len(), 2, "the best hit grows first");
    assert!(p.passages[1].core.is_none() && p.passages[1].number == Some(2));
    // No room at all: the hits as retrieved.
    assert_eq!(at(Some(cores)).shown, prepare(0, &r).shown);
    // The whole prompt counts with the window: everything fits into a large budget.
    let all = at(None);
    assert_eq!(all.passages[0].chunks.len(), 8);
    assert_eq!(all.passages[1].chunks.len(), 8);
}

#[test]
fn expansion_never_crosses_documents() {
    let (_, mut a) = document("a", 3, 0, " ", 1);
    let (_, b) = document("b", 2, 0, " ", 101);
    // A retriever that wrongly lists another document's chunk after a's last one.
    a.push(b[0].clone());
    let r = FixedRetriever::new(vec![ranked(a[2].clone(), 0.9)]).with_document(a);
    let p = prepare(1000, &r);
    assert_eq!(p.passages[0].chunks, vec![1, 2, 3]);
    assert!(!user(&p).contains("bc0w0"));
}

#[test]
fn a_document_deleted_since_the_search_leaves_the_hit_alone() {
    let (_, chunks) = document("a", 3, 0, " ", 1);
    // Retrieved, but no longer stored: the retriever has no neighbours for it.
    let r = FixedRetriever::new(vec![chunks[1].clone()]);
    let p = prepare(1000, &r);
    assert_eq!(p.passages[0].hit, chunks[1]);
    assert!(p.passages[0].core.is_none());
    assert_eq!(
        r.neighbour_requests.lock().unwrap().len(),
        2,
        "asked after and before"
    );
}

#[test]
fn a_citation_of_a_widened_passage_names_its_span() {
    let (_, chunks) = document("a", 5, 0, " ", 1);
    let r = FixedRetriever::new(vec![ranked(chunks[2].clone(), 0.9)]).with_document(chunks.clone());
    // Quotes a neighbour's words, which only the widened passage shows.
    let g = FakeGenerator::table(4096, &[], "ac3w4 \"ac3w4 ac3w5\" [1]");
    let a = Answerer::new(&g, options(30, 5))
        .with_retriever(&r)
        .ask("Which word?")
        .unwrap();
    let c = &a.citations[0];
    assert!(c.valid, "{c:?}");
    assert_eq!(c.quote_found, Some(true));
    let chunk = c.chunk.as_ref().unwrap();
    assert_eq!(chunk.chunk_id, 3);
    assert_eq!((chunk.start, chunk.end), (chunks[1].start, chunks[3].end));
}
