//! Context expansion ("small-to-big"): retrieval ranks small chunks, the reader gets a window
//! around each one. After the passages are fitted into the prompt budget as retrieved
//! (`budget::fit_passages`), each passage in the prompt, best first, grows by the
//! neighbouring chunks of its document ([`Retriever::neighbours`](ragtune_core::Retriever)),
//! one chunk at a time, after and before in turn, while the passage stays within the window's
//! tokens and the whole prompt within its budget. So every retrieved chunk keeps its place
//! before any neighbour takes room, and the ranking order of the passages is kept.
//!
//! A passage is always one contiguous span `[start, end)` of its document's extracted text:
//! chunks are joined in document order, an overlap between consecutive chunks is shown once,
//! and when growing reaches a chunk another passage already shows (two hits of one document
//! that are adjacent or overlap), the two become one passage, at the better one's place, so
//! no text is shown twice. Expansion never crosses documents, and a neighbour that is gone (its
//! document deleted since the search) ends growth on that side without an error.
//!
//! The knowledge base stores chunks, not whole texts, and the chunker leaves out only the
//! whitespace between chunks; a gap between two chunks is shown as that many spaces. Byte
//! offsets in a widened passage are therefore exact (`text.len() == end - start`), and the
//! prompt, which collapses whitespace ([`sanitize`](crate::sanitize)), shows exactly the
//! document's text of the span.

use crate::budget::PassageFit;
use crate::error::Result;
use crate::sanitize::sanitize_passage;
use ragtune_core::Hit;
use serde::{Deserialize, Serialize};

/// A byte range of a document's extracted text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// The passages in the prompt after expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expanded {
    /// One per retrieved hit, in rank order: the hit as the prompt shows it (widened to its
    /// passage's span and text when the passage grew or merged, with the hit's own id, score
    /// and ranks), what became of it, and the passage (index into `included`) that shows it.
    pub hits: Vec<Hit>,
    pub fits: Vec<PassageFit>,
    pub shown_in: Vec<Option<usize>>,
    /// Per hit: the retrieved chunk's own span and the chunks its passage is made of, in
    /// document order, when the passage was widened.
    pub core: Vec<Option<Span>>,
    pub chunks: Vec<Vec<i64>>,
    /// The passages in prompt order: the hit that owns each, and the text shown.
    pub included: Vec<(usize, String)>,
    pub prompt_tokens: u32,
}

/// A hit's neighbours: [`Retriever::neighbours`](ragtune_core::Retriever::neighbours).
pub(crate) type Neighbours<'c> = dyn FnMut(&Hit, usize, usize) -> Result<Vec<Hit>> + 'c;
/// Tokens of the whole prompt with these passages (hit as shown, text shown).
pub(crate) type MeasurePrompt<'c> = dyn FnMut(&[(&Hit, &str)]) -> Result<u32> + 'c;

/// What expansion needs from the answerer: neighbours, token counts of a passage and of the
/// whole prompt with given passages.
pub(crate) struct Context<'c> {
    pub window: u32,
    pub limit: u32,
    pub neighbours: &'c mut Neighbours<'c>,
    pub count_text: &'c mut dyn FnMut(&str) -> Result<u32>,
    pub measure: &'c mut MeasurePrompt<'c>,
}

/// A passage of the prompt: contiguous chunks of one document.
#[derive(Debug, Clone)]
struct Run {
    /// The hit that owns it (the best ranked of the hits it shows).
    owner: usize,
    /// Document order, contiguous, each chunk's text exactly its span.
    chunks: Vec<Hit>,
    /// The text shown; the fitted text until the run changes.
    shown: String,
    changed: bool,
    /// Sides still open to growth: before, after.
    open: [bool; 2],
    alive: bool,
}

const BEFORE: usize = 0;
const AFTER: usize = 1;

/// A chunk whose text is exactly its span: only those can be joined.
fn exact(h: &Hit) -> bool {
    h.end >= h.start && h.text.len() == h.end - h.start
}

/// The text of `[chunks[0].start, max end)`, from chunks in document order; `None` when two
/// chunks disagree about the text they share.
fn join(chunks: &[Hit]) -> Option<(usize, usize, String)> {
    let start = chunks.first()?.start;
    let mut end = start;
    let mut text = String::new();
    for c in chunks {
        if c.start >= end {
            text.extend(std::iter::repeat_n(' ', c.start - end));
            text.push_str(&c.text);
        } else if c.end > end {
            text.push_str(c.text.get(end - c.start..)?);
        }
        end = end.max(c.end);
    }
    Some((start, end, text))
}

impl Run {
    fn widened(&self, core: &Hit) -> Option<Hit> {
        let (start, end, text) = join(&self.chunks)?;
        let first = &self.chunks[0];
        Some(Hit {
            page: first.page,
            heading_path: first.heading_path.clone(),
            start,
            end,
            text,
            ..core.clone()
        })
    }

    fn contains(&self, source: &str, chunk_id: i64) -> bool {
        self.alive
            && self.chunks[0].source == source
            && self.chunks.iter().any(|c| c.chunk_id == chunk_id)
    }
}

/// Widens the fitted passages; see the module docs. `fits` and `included` are
/// `budget::fit_passages`'s outcome for `hits`, and `prompt_tokens` its count.
pub(crate) fn expand(
    hits: Vec<Hit>,
    fits: Vec<PassageFit>,
    included: Vec<(usize, String)>,
    prompt_tokens: u32,
    cx: &mut Context<'_>,
) -> Result<Expanded> {
    let mut runs: Vec<Run> = included
        .into_iter()
        .map(|(i, shown)| Run {
            owner: i,
            chunks: vec![hits[i].clone()],
            shown,
            changed: false,
            open: if matches!(fits[i], PassageFit::Full) && exact(&hits[i]) {
                [true, true]
            } else {
                [false, false]
            },
            alive: true,
        })
        .collect();
    let mut tokens = prompt_tokens;
    for r in 0..runs.len() {
        // After first, then before, in turn.
        let mut side = BEFORE;
        while runs[r].alive && runs[r].open.iter().any(|&o| o) {
            side = 1 - side;
            if !runs[r].open[side] {
                continue;
            }
            let run = &runs[r];
            let edge = if side == AFTER {
                run.chunks.last()
            } else {
                run.chunks.first()
            };
            let Some(edge) = edge.cloned() else {
                runs[r].open = [false, false];
                continue;
            };
            let (before, after) = if side == AFTER { (0, 1) } else { (1, 0) };
            let around = (cx.neighbours)(&edge, before, after)?;
            let next = around
                .iter()
                .position(|c| c.chunk_id == edge.chunk_id)
                .and_then(|p| {
                    if side == AFTER {
                        around.get(p + 1)
                    } else {
                        p.checked_sub(1).and_then(|q| around.get(q))
                    }
                });
            let Some(next) = next.filter(|n| {
                n.source == edge.source
                    && exact(n)
                    && !runs[r].chunks.iter().any(|c| c.chunk_id == n.chunk_id)
            }) else {
                runs[r].open[side] = false;
                continue;
            };
            let other =
                (0..runs.len()).find(|&o| o != r && runs[o].contains(&next.source, next.chunk_id));
            let mut trial = runs.clone();
            match other {
                Some(o) => {
                    // Two hits of one document meet: one passage, at the better one's place.
                    let (keep, gone) = (r.min(o), r.max(o));
                    let (first, second) = if side == AFTER { (r, o) } else { (o, r) };
                    let mut chunks = trial[first].chunks.clone();
                    chunks.extend(trial[second].chunks.iter().cloned());
                    trial[keep].chunks = chunks;
                    trial[gone].alive = false;
                }
                None => {
                    if side == AFTER {
                        trial[r].chunks.push(next.clone());
                    } else {
                        trial[r].chunks.insert(0, next.clone());
                    }
                }
            }
            let keep = other.map_or(r, |o| r.min(o));
            let Some(widened) = trial[keep].widened(&hits[trial[keep].owner]) else {
                runs[r].open[side] = false;
                continue;
            };
            let shown = sanitize_passage(&widened.text);
            if other.is_none() && (cx.count_text)(&shown)? > cx.window {
                runs[r].open[side] = false;
                continue;
            }
            trial[keep].shown = shown;
            trial[keep].changed = true;
            let t = measure(&trial, &hits, cx)?;
            if t > cx.limit {
                runs[r].open[side] = false;
                continue;
            }
            tokens = t;
            runs = trial;
        }
    }
    finish(hits, fits, runs, tokens)
}

/// The prompt's tokens with the live runs.
fn measure(runs: &[Run], hits: &[Hit], cx: &mut Context<'_>) -> Result<u32> {
    let widened: Vec<(Hit, &str)> = runs
        .iter()
        .filter(|r| r.alive)
        .map(|r| {
            let hit = if r.changed {
                r.widened(&hits[r.owner])
                    .unwrap_or_else(|| hits[r.owner].clone())
            } else {
                hits[r.owner].clone()
            };
            (hit, r.shown.as_str())
        })
        .collect();
    let passages: Vec<(&Hit, &str)> = widened.iter().map(|(h, s)| (h, *s)).collect();
    (cx.measure)(&passages)
}

fn finish(
    mut hits: Vec<Hit>,
    mut fits: Vec<PassageFit>,
    runs: Vec<Run>,
    prompt_tokens: u32,
) -> Result<Expanded> {
    let n = hits.len();
    let mut shown_in = vec![None; n];
    let mut core = vec![None; n];
    let mut chunks = vec![Vec::new(); n];
    let mut included = Vec::new();
    let originals = hits.clone();
    for run in runs.into_iter().filter(|r| r.alive) {
        let p = included.len();
        let widened = if run.changed {
            run.widened(&originals[run.owner])
        } else {
            None
        };
        // Every retrieved chunk the passage shows is shown by it, and described by it: the
        // passage's span and text, the chunk's own id, score, ranks and span (`core`).
        for (i, h) in originals.iter().enumerate() {
            if i != run.owner && !run.contains(&h.source, h.chunk_id) {
                continue;
            }
            shown_in[i] = Some(p);
            if let Some(w) = &widened {
                core[i] = Some(Span {
                    start: h.start,
                    end: h.end,
                });
                chunks[i] = run.chunks.iter().map(|c| c.chunk_id).collect();
                hits[i] = Hit {
                    chunk_id: h.chunk_id,
                    score: h.score,
                    ranks: h.ranks.clone(),
                    ..w.clone()
                };
                fits[i] = PassageFit::Full;
            }
        }
        included.push((run.owner, run.shown));
    }
    for (i, fit) in fits.iter_mut().enumerate() {
        if shown_in[i].is_none() {
            *fit = PassageFit::Dropped;
        }
    }
    Ok(Expanded {
        hits,
        fits,
        shown_in,
        core,
        chunks,
        included,
        prompt_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: i64, doc: &str, start: usize, end: usize) -> Hit {
        Hit {
            chunk_id: id,
            source: "d".into(),
            format: ragtune_core::Format::Text,
            page: None,
            heading_path: Vec::new(),
            start,
            end,
            text: doc[start..end].to_string(),
            score: 1.0,
            ranks: Default::default(),
        }
    }

    #[test]
    fn joining_shows_overlaps_once_and_gaps_as_spaces() {
        let doc = "alpha beta gamma\n\ndelta epsilon";
        let a = chunk(1, doc, 0, 10); // "alpha beta"
        let b = chunk(2, doc, 6, 16); // "beta gamma"
        let c = chunk(3, doc, 18, doc.len()); // "delta epsilon"
        let (s, e, t) = join(&[a.clone(), b.clone(), c]).unwrap();
        assert_eq!((s, e), (0, doc.len()));
        assert_eq!(t, "alpha beta gamma  delta epsilon");
        assert_eq!(t.len(), e - s);
        assert_eq!(sanitize_passage(&t), sanitize_passage(doc));
        // A chunk inside the text so far adds nothing.
        let (_, _, t) = join(&[a.clone(), chunk(4, doc, 6, 10), b]).unwrap();
        assert_eq!(t, "alpha beta gamma");
    }

    #[test]
    fn chunks_that_disagree_on_shared_text_are_not_joined() {
        let doc = "h\u{e9}llo world";
        let a = chunk(1, doc, 0, 3); // "h" and the two bytes of "é"
        // Claims to start at byte 2 (inside "é") with a text that has a character there.
        let mut b = chunk(2, doc, 3, doc.len());
        b.start = 2;
        b.text = format!("\u{e9}{}", &doc[3..]);
        b.end = b.start + b.text.len();
        assert!(join(&[a, b]).is_none());
    }
}
