//! Ranking metrics as BEIR computes them (pytrec_eval): nDCG with linear gain, recall and
//! reciprocal rank at a cut-off, over documents judged relevant (grade > 0).

use std::collections::HashMap;

/// nDCG@k: graded gain `rel / log2(rank + 1)`, normalised by the ideal ordering.
pub fn ndcg_at(ranking: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| relevant.get(d).copied().unwrap_or(0) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &r)| r as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Share of the relevant documents found in the top `k`.
pub fn recall_at(ranking: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    let total = relevant.values().filter(|&&r| r > 0).count();
    if total == 0 {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|d| relevant.get(*d).is_some_and(|&r| r > 0))
        .count();
    found as f64 / total as f64
}

/// 1 / rank of the first relevant document within the top `k`, else 0.
pub fn mrr_at(ranking: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|d| relevant.get(d).is_some_and(|&r| r > 0))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(ids: &[(&str, u32)]) -> HashMap<String, u32> {
        ids.iter().map(|(d, r)| (d.to_string(), *r)).collect()
    }

    fn ranking(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let r = rel(&[("a", 2), ("b", 1)]);
        let run = ranking(&["a", "b", "c"]);
        assert!((ndcg_at(&run, &r, 10) - 1.0).abs() < 1e-12);
        assert_eq!(recall_at(&run, &r, 1), 0.5);
        assert_eq!(mrr_at(&run, &r, 10), 1.0);
    }

    #[test]
    fn relevant_at_rank_two() {
        let r = rel(&[("b", 1)]);
        let run = ranking(&["a", "b"]);
        assert!((ndcg_at(&run, &r, 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(mrr_at(&run, &r, 10), 0.5);
        assert_eq!(mrr_at(&run, &r, 1), 0.0);
        assert_eq!(recall_at(&run, &r, 1), 0.0);
    }
}
