//! Retrieval quality on real data: BEIR SciFact (BM25 must reach the published baseline) and
//! SQuAD paragraphs. Data is read from the shared folder beside the repository.

use anyhow::Result;
use ragtune_core::SearchMode;
use ragtune_datasets::{beir, squad_retrieval};
use ragtune_index::KnowledgeBase;
use ragtune_index::testing::HashEmbedder;
use ragtune_retrieve::KbRetriever;
use ragtune_retrieve::eval;
use std::path::PathBuf;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

#[test]
fn scifact_bm25_reaches_the_beir_baseline() -> Result<()> {
    let (corpus, queries) = beir::load(&data("beir-scifact"), "test")?;
    assert_eq!((corpus.docs.len(), queries.len()), (5183, 300));
    let e = HashEmbedder::new(256);
    let mut kb = KnowledgeBase::in_memory(&e)?;
    eval::index_corpus(&mut kb, &corpus, &e)?;
    let r = KbRetriever::new(&kb, &e)?;
    let mut report = vec![eval::Metrics::HEADER.to_owned()];
    let mut by_mode = Vec::new();
    for mode in SearchMode::ALL {
        let m = eval::evaluate(&r, &queries, mode)?;
        report.push(m.to_string());
        by_mode.push(m);
    }
    eprintln!("SciFact (hash embedder for dense):\n{}", report.join("\n"));
    let bm25 = &by_mode[0];
    assert_eq!(bm25.queries, 300);
    assert!(
        bm25.ndcg_at_10 >= 0.66,
        "BM25 nDCG@10 {:.4} < 0.66",
        bm25.ndcg_at_10
    );
    assert!(
        bm25.recall_at_100 >= 0.90,
        "BM25 recall@100 {:.4}",
        bm25.recall_at_100
    );
    Ok(())
}

#[test]
fn squad_paragraph_retrieval_with_bm25() -> Result<()> {
    let (corpus, queries) = squad_retrieval(&data("squad-v1.1-dev/dev-v1.1.json"))?;
    assert_eq!((corpus.docs.len(), queries.len()), (2067, 10570));
    let e = HashEmbedder::new(64);
    let mut kb = KnowledgeBase::in_memory(&e)?;
    eval::index_corpus(&mut kb, &corpus, &e)?;
    let r = KbRetriever::new(&kb, &e)?;
    // Every 5th question keeps the test quick; the bench runs them all.
    let sample: Vec<_> = queries.into_iter().step_by(5).collect();
    let m = eval::evaluate(&r, &sample, SearchMode::Bm25)?;
    eprintln!(
        "SQuAD v1.1 dev paragraphs, BM25:\n{}\n{m}",
        eval::Metrics::HEADER
    );
    assert!(m.recall_at_5 >= 0.70, "recall@5 {:.4}", m.recall_at_5);
    assert!(m.recall_at_1 <= m.recall_at_5 && m.recall_at_5 <= m.recall_at_10);
    Ok(())
}

#[test]
fn malformed_beir_files_name_the_file_and_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("corpus.jsonl"),
        "{\"_id\": \"1\", \"text\": \"ok\"}\n{broken\n",
    )?;
    let err = beir::load(dir.path(), "test").unwrap_err().to_string();
    assert!(err.contains("corpus.jsonl, line 2"), "{err}");
    std::fs::write(
        dir.path().join("corpus.jsonl"),
        "{\"_id\": \"1\", \"text\": \"ok\"}\n",
    )?;
    std::fs::write(
        dir.path().join("queries.jsonl"),
        "{\"_id\": \"q\", \"text\": \"ok?\"}\n",
    )?;
    std::fs::create_dir(dir.path().join("qrels"))?;
    std::fs::write(
        dir.path().join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq\t1\n",
    )?;
    let err = beir::load(dir.path(), "test").unwrap_err().to_string();
    assert!(
        err.contains("test.tsv, line 2") && err.contains("2 columns"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_context_longer_than_the_chunk_budget_is_chunked_for_qa() -> Result<()> {
    use ragtune_core::{Query, Retriever, TokenCounter};
    use ragtune_ingest::ChunkOptions;
    // A full article as a SQuAD context: three paragraphs of 60 words each.
    let paragraph = |topic: &str| {
        (0..60)
            .map(|i| format!("{topic}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + "."
    };
    let text = [paragraph("alpha"), paragraph("beta"), paragraph("gamma")].join("\n\n");
    let corpus = eval::Corpus {
        docs: vec![eval::CorpusDoc {
            id: "Article#0".into(),
            title: "Article".into(),
            text: text.clone(),
        }],
    };
    let e = HashEmbedder::new(32);
    let options = ChunkOptions {
        max_tokens: 40,
        overlap_tokens: 0,
        ..ChunkOptions::default()
    };
    assert!(e.count_tokens(&text) > options.max_tokens);
    let mut kb = KnowledgeBase::in_memory(&e)?;
    let chunks = eval::index_corpus_chunked(&mut kb, &corpus, &e, &e, &options)?;
    assert!(chunks >= 5, "{chunks} chunks");
    assert_eq!(kb.store().chunk_count()?, chunks);
    let r = KbRetriever::new(&kb, &e)?;
    let hits = r.retrieve(&Query::new("gamma59", 3, SearchMode::Bm25))?;
    let best = &hits[0];
    assert_eq!(best.source, "Article#0");
    assert!(best.text.contains("gamma59.") && !best.text.contains("alpha"));
    assert_eq!(&text[best.start..best.end], best.text);
    assert!(e.count_tokens(&best.text) <= options.max_tokens);
    // The unchunked index keeps one chunk per document (BEIR's convention).
    let mut whole = KnowledgeBase::in_memory(&e)?;
    eval::index_corpus(&mut whole, &corpus, &e)?;
    assert_eq!(whole.store().chunk_count()?, 1);
    Ok(())
}
