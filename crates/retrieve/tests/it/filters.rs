//! Filters apply before the cut-off, in every mode and on both backends.

use crate::support::{BACKENDS, Fixture, embedder};
use anyhow::Result;
use ragtune_core::{Filter, Format, Query, RetrieveError, Retriever, SearchMode};
use ragtune_retrieve::KbRetriever;

fn query(text: &str, k: usize, mode: SearchMode, filter: Filter) -> Query {
    Query {
        filter,
        ..Query::new(text, k, mode)
    }
}

#[test]
fn path_format_and_metadata_filters_keep_k_results() -> Result<()> {
    for backend in BACKENDS {
        let fx = Fixture::new(backend)?;
        let e = embedder();
        let r = KbRetriever::new(&fx.kb, &e)?;
        for mode in SearchMode::ALL {
            let ctx = format!("{backend:?} {mode:?}");
            // The best match for "borrow checker" is under guides/; restricted to archive/,
            // the archive chunk must come back first.
            let f = Filter {
                path_glob: Some("archive/**".into()),
                ..Default::default()
            };
            let hits = r.retrieve(&query("borrow checker dangling references", 3, mode, f))?;
            assert_eq!(hits.len(), 1, "{ctx}: only one chunk lives in archive/");
            assert_eq!(hits[0].source, fx.source("archive/old-rust.md"), "{ctx}");

            // Text files only: a query about Rust still gets k = 3 text chunks back (dense
            // and hybrid rank all of them), never a Markdown one.
            let f = Filter {
                formats: vec![Format::Text],
                ..Default::default()
            };
            let hits = r.retrieve(&query("tomato sauce train", 3, mode, f))?;
            assert_eq!(hits.len(), 3, "{ctx}: {hits:?}");
            assert!(hits.iter().all(|h| h.format == Format::Text), "{ctx}");

            // Metadata equality (PlainTextSource sets the title to the file stem).
            let mut f = Filter::default();
            f.metadata.insert("title".into(), "garden".into());
            let hits = r.retrieve(&query("tomato", 5, mode, f))?;
            let sources: Vec<&str> = hits.iter().map(|h| h.source.as_str()).collect();
            assert_eq!(sources, vec![fx.source("notes/garden.txt")], "{ctx}");

            // Filters combine (and): a Markdown file under notes/ does not exist.
            let f = Filter {
                path_glob: Some("notes/*".into()),
                formats: vec![Format::Markdown],
                ..Default::default()
            };
            assert!(
                r.retrieve(&query("tomato", 5, mode, f))?.is_empty(),
                "{ctx}"
            );
        }
    }
    Ok(())
}

#[test]
fn dense_filter_returns_k_even_when_the_matches_rank_last() -> Result<()> {
    let fx = Fixture::new(crate::support::Backend::Ram)?;
    let e = embedder();
    let r = KbRetriever::new(&fx.kb, &e)?;
    let f = Filter {
        path_glob: Some("**/*.txt".into()),
        ..Default::default()
    };
    let hits = r.retrieve(&query(
        "borrow checker cargo crates",
        3,
        SearchMode::Dense,
        f,
    ))?;
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.source.ends_with(".txt")));
    Ok(())
}

#[test]
fn an_invalid_glob_is_an_invalid_query() -> Result<()> {
    let fx = Fixture::new(crate::support::Backend::Ram)?;
    let e = embedder();
    let r = KbRetriever::new(&fx.kb, &e)?;
    let f = Filter {
        path_glob: Some("docs/[".into()),
        ..Default::default()
    };
    let err = r
        .retrieve(&query("tomato", 3, SearchMode::Bm25, f))
        .unwrap_err();
    assert!(
        matches!(err, RetrieveError::InvalidQuery(ref m) if m.contains("docs/[")),
        "{err}"
    );
    Ok(())
}
