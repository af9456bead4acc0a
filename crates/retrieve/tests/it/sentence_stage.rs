//! Hybrid search's second stage: the fused head reordered by each chunk's best sentence.

use crate::support::{BACKENDS, Fixture, embedder};
use anyhow::Result;
use ragtune_core::{Query, Retriever, SearchMode};
use ragtune_retrieve::{KbRetriever, RetrieveOptions};

const FILES: &[(&str, &str)] = &[
    // Every question word, often, but never two in one sentence.
    (
        "scattered.txt",
        "Copper prices fell. The mine hired workers. Copper is heavy. Roads closed. The mine is deep. Copper wire.",
    ),
    // All three in one sentence, once, in a longer text.
    (
        "together.txt",
        "Workers said the copper mine closed in 1931 after the flood, and the town around it emptied over the following decade as families left for the coast and the railway.",
    ),
    // Two of them together.
    (
        "opened.txt",
        "The copper mine opened in 1890 and the valley grew quickly around its shafts and sheds.",
    ),
    (
        "other1.txt",
        "The orchard grows apples and pears on the south slope.",
    ),
    (
        "other2.txt",
        "A ferry crosses the lake twice a day in summer.",
    ),
    ("other3.txt", "The library lends maps of the old railway."),
];

fn order(r: &KbRetriever, q: &str) -> Result<Vec<ragtune_core::Hit>> {
    Ok(r.retrieve(&Query::new(q, 3, SearchMode::Hybrid))?)
}

fn names(hits: &[ragtune_core::Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.source.rsplit('/').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_chunk_that_says_it_in_one_sentence_rises_above_one_that_scatters_the_words() -> Result<()> {
    for backend in BACKENDS {
        let fx = Fixture::with_files(backend, FILES)?;
        let e = embedder();
        let q = "When was the copper mine closed?";
        let off = RetrieveOptions {
            sentence_depth: 0,
            ..Default::default()
        };
        let fused = order(&KbRetriever::new(&fx.kb, &e)?.with_options(off), q)?;
        // The premise: fusion alone puts the text that repeats the words first.
        assert_eq!(
            names(&fused)[0],
            "scattered.txt",
            "{backend:?}: {:?}",
            names(&fused)
        );

        let staged = order(&KbRetriever::new(&fx.kb, &e)?, q)?;
        assert_eq!(
            names(&staged)[0],
            "together.txt",
            "{backend:?}: {:?}",
            names(&staged)
        );
        // Scores stay fusion's, by place: the best one is unchanged and they still descend.
        assert_eq!(staged[0].score, fused[0].score, "{backend:?}");
        assert!(
            staged.windows(2).all(|w| w[0].score >= w[1].score),
            "{backend:?}"
        );
        // Each chunk keeps its own ranks in the two lists.
        let together = fused.iter().find(|h| h.source.ends_with("together.txt"));
        assert_eq!(
            together.map(|h| &h.ranks),
            Some(&staged[0].ranks),
            "{backend:?}"
        );

        // Only hybrid search has the stage.
        let bm25 = KbRetriever::new(&fx.kb, &e)?.retrieve(&Query::new(q, 3, SearchMode::Bm25))?;
        assert_eq!(
            names(&bm25)[0],
            "scattered.txt",
            "{backend:?}: {:?}",
            names(&bm25)
        );
    }
    Ok(())
}
