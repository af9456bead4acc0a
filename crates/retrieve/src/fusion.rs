//! Reciprocal rank fusion (Cormack, Clarke & Büttcher 2009): a chunk's fused score is
//! `Σ weight / (k + rank)` over the lists that found it. Ranks, not scores, are combined, so
//! BM25 and cosine need no calibration against each other.

use ragtune_core::SearchMode;
use std::collections::HashMap;

/// One mode's ranking, best first, and how much it counts.
#[derive(Debug, Clone, Copy)]
pub struct RankedList<'a> {
    pub mode: SearchMode,
    pub weight: f32,
    pub ids: &'a [i64],
}

/// A fused result: its score and its 1-based rank in each list that found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: i64,
    pub score: f32,
    pub ranks: Vec<(SearchMode, u32)>,
}

impl Fused {
    fn best_rank(&self) -> u32 {
        self.ranks.iter().map(|&(_, r)| r).min().unwrap_or(u32::MAX)
    }
}

/// Fuses rankings. Ties on score go to the better single rank, then to the lower id, so the
/// order is deterministic. An id repeated within one list counts at its first position.
pub fn reciprocal_rank_fusion(lists: &[RankedList<'_>], k: f32) -> Vec<Fused> {
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    let mut out: Vec<Fused> = Vec::new();
    for list in lists {
        let mut seen = std::collections::HashSet::new();
        for (i, &id) in list.ids.iter().enumerate() {
            if !seen.insert(id) {
                continue;
            }
            let rank = i as u32 + 1;
            let slot = *by_id.entry(id).or_insert_with(|| {
                out.push(Fused {
                    id,
                    score: 0.0,
                    ranks: Vec::new(),
                });
                out.len() - 1
            });
            out[slot].score += list.weight / (k + rank as f32);
            out[slot].ranks.push((list.mode, rank));
        }
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.best_rank().cmp(&b.best_rank()))
            .then(a.id.cmp(&b.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        let bm25 = [1, 2, 3];
        let dense = [4, 2, 1];
        let fused = reciprocal_rank_fusion(
            &[
                RankedList {
                    mode: SearchMode::Bm25,
                    weight: 1.0,
                    ids: &bm25,
                },
                RankedList {
                    mode: SearchMode::Dense,
                    weight: 1.0,
                    ids: &dense,
                },
            ],
            60.0,
        );
        let order: Vec<i64> = fused.iter().map(|f| f.id).collect();
        // 1 (1/61 + 1/63) edges out 2 (2/62); both beat 4, first in one list only (1/61).
        assert_eq!(order, vec![1, 2, 4, 3]);
        assert_eq!(
            fused[1].ranks,
            vec![(SearchMode::Bm25, 2), (SearchMode::Dense, 2)]
        );
    }
}
