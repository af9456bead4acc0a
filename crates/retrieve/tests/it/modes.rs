//! The same expectations over BM25, dense and hybrid, on RAM and disk storage.

use crate::support::{BACKENDS, Fixture, embedder};
use anyhow::Result;
use ragtune_core::{Format, Query, RetrieveError, Retriever, SearchMode};
use ragtune_index::testing::HashEmbedder;
use ragtune_retrieve::KbRetriever;

#[test]
fn every_mode_finds_the_chunk_that_answers_and_cites_it() -> Result<()> {
    for backend in BACKENDS {
        let fx = Fixture::new(backend)?;
        let e = embedder();
        let r = KbRetriever::new(&fx.kb, &e)?;
        for mode in SearchMode::ALL {
            let ctx = format!("{backend:?} {mode:?}");
            let hits = r.retrieve(&Query::new("borrow checker dangling references", 3, mode))?;
            assert!(!hits.is_empty() && hits.len() <= 3, "{ctx}: {hits:?}");
            let top = &hits[0];
            assert_eq!(top.source, fx.source("guides/rust.md"), "{ctx}");
            assert_eq!(top.heading_path, vec!["Ownership"], "{ctx}");
            assert_eq!(top.format, Format::Markdown, "{ctx}");
            assert!(top.text.contains("dangling"), "{ctx}");
            let file = std::fs::read_to_string(&top.source)?;
            assert_eq!(
                file[top.start..top.end].trim(),
                top.text,
                "{ctx}: span points into the text"
            );
            assert!(
                top.ranks.contains_key(mode_key(mode)),
                "{ctx}: {:?}",
                top.ranks
            );
            if mode == SearchMode::Hybrid {
                assert_eq!(
                    top.ranks.len(),
                    2,
                    "{ctx}: ranks in both modes {:?}",
                    top.ranks
                );
            }
            // Scores never increase down the list.
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "{ctx}");

            // The second-best answer mentions the borrow checker too.
            let sources: Vec<&str> = hits.iter().map(|h| h.source.as_str()).collect();
            assert!(
                sources.contains(&fx.source("archive/old-rust.md").as_str()),
                "{ctx}: {sources:?}"
            );

            let tomato = r.retrieve(&Query::new("tomato", 10, mode))?;
            let top2: Vec<&str> = tomato.iter().take(2).map(|h| h.source.as_str()).collect();
            assert!(
                top2.contains(&fx.source("notes/cooking.txt").as_str()),
                "{ctx}: {top2:?}"
            );
            assert!(
                top2.contains(&fx.source("notes/garden.txt").as_str()),
                "{ctx}: {top2:?}"
            );

            let one = r.retrieve(&Query::new("tomato", 1, mode))?;
            assert_eq!(one.len(), 1, "{ctx}: k is respected");
        }
    }
    Ok(())
}

fn mode_key(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Hybrid => "bm25",
        m => m.as_str(),
    }
}

#[test]
fn empty_query_and_other_embedder_are_rejected() -> Result<()> {
    let fx = Fixture::new(crate::support::Backend::Ram)?;
    let e = embedder();
    let r = KbRetriever::new(&fx.kb, &e)?;
    let err = r
        .retrieve(&Query::new("   ", 5, SearchMode::Hybrid))
        .unwrap_err();
    assert!(matches!(err, RetrieveError::InvalidQuery(_)), "{err}");
    let other = HashEmbedder::named(128, "another-model");
    let err = KbRetriever::new(&fx.kb, &other).err().unwrap();
    assert!(err.to_string().contains("another-model"), "{err}");
    Ok(())
}

#[test]
fn stop_words_only_query_returns_nothing_from_bm25_but_dense_still_answers() -> Result<()> {
    let fx = Fixture::new(crate::support::Backend::Ram)?;
    let e = embedder();
    let r = KbRetriever::new(&fx.kb, &e)?;
    assert!(
        r.retrieve(&Query::new("the of and", 5, SearchMode::Bm25))?
            .is_empty()
    );
    assert!(
        !r.retrieve(&Query::new("the of and", 5, SearchMode::Dense))?
            .is_empty()
    );
    Ok(())
}

#[test]
fn neighbours_come_from_the_hits_document_in_order_and_vanish_with_it() -> Result<()> {
    for backend in BACKENDS {
        let mut fx = Fixture::new(backend)?;
        let e = embedder();
        let rust = fx.source("guides/rust.md");
        let hit = {
            let r = KbRetriever::new(&fx.kb, &e)?;
            let hits = r.retrieve(&Query::new("borrow checker", 5, SearchMode::Bm25))?;
            let hit = hits
                .into_iter()
                .find(|h| h.source == rust)
                .expect("rust.md");
            let around = r.neighbours(&hit, 3, 3)?;
            let file = std::fs::read_to_string(&rust)?;
            let texts: Vec<&str> = around.iter().map(|h| h.text.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "The borrow checker rejects dangling references at compile time.",
                    "Cargo builds crates and resolves dependencies from the registry."
                ],
                "{backend:?}: only rust.md's chunks, in document order"
            );
            for n in &around {
                assert_eq!(n.source, rust, "{backend:?}");
                assert_eq!(file[n.start..n.end].trim(), n.text, "{backend:?}");
                assert_eq!(n.score, hit.score, "{backend:?}: the hit's score");
                assert!(n.ranks.is_empty(), "{backend:?}");
            }
            assert_eq!(around[0].chunk_id, hit.chunk_id, "{backend:?}");
            assert_eq!(r.neighbours(&hit, 0, 0)?, vec![around[0].clone()]);
            hit
        };
        // Deleted between the search and the expansion: no neighbours, no error.
        fx.kb.delete_document(&rust)?;
        let r = KbRetriever::new(&fx.kb, &e)?;
        assert!(r.neighbours(&hit, 3, 3)?.is_empty(), "{backend:?}");
    }
    Ok(())
}
