//! Properties of reciprocal rank fusion.

use proptest::prelude::*;
use ragtune_core::SearchMode;
use ragtune_retrieve::fusion::{RankedList, reciprocal_rank_fusion};
use std::collections::HashSet;

/// A ranking: distinct ids, best first.
fn ranking() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::hash_set(0i64..60, 0..40).prop_shuffle_vec()
}

trait ShuffleVec {
    fn prop_shuffle_vec(self) -> BoxedStrategy<Vec<i64>>;
}

impl<S: Strategy<Value = HashSet<i64>> + 'static> ShuffleVec for S {
    fn prop_shuffle_vec(self) -> BoxedStrategy<Vec<i64>> {
        self.prop_map(|s| s.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
            .boxed()
    }
}

fn lists<'a>(a: &'a [i64], b: &'a [i64], wa: f32, wb: f32) -> [RankedList<'a>; 2] {
    [
        RankedList {
            mode: SearchMode::Bm25,
            weight: wa,
            ids: a,
        },
        RankedList {
            mode: SearchMode::Dense,
            weight: wb,
            ids: b,
        },
    ]
}

proptest! {
    #[test]
    fn first_in_both_lists_is_first(mut a in ranking(), mut b in ranking(), top in 100i64..200, k in 1f32..100.0, wa in 0.1f32..3.0, wb in 0.1f32..3.0) {
        a.insert(0, top);
        b.insert(0, top);
        let fused = reciprocal_rank_fusion(&lists(&a, &b, wa, wb), k);
        prop_assert_eq!(fused[0].id, top);
        prop_assert_eq!(&fused[0].ranks, &vec![(SearchMode::Bm25, 1), (SearchMode::Dense, 1)]);
    }

    #[test]
    fn fusing_a_list_with_itself_keeps_its_order(a in ranking(), k in 1f32..100.0) {
        let fused = reciprocal_rank_fusion(&lists(&a, &a, 1.0, 1.0), k);
        let order: Vec<i64> = fused.iter().map(|f| f.id).collect();
        prop_assert_eq!(order, a);
    }

    #[test]
    fn scores_are_non_increasing_and_every_id_appears_once(a in ranking(), b in ranking(), k in 1f32..100.0) {
        let fused = reciprocal_rank_fusion(&lists(&a, &b, 1.0, 0.5), k);
        prop_assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
        let ids: HashSet<i64> = fused.iter().map(|f| f.id).collect();
        let expected: HashSet<i64> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(ids.len(), fused.len());
        prop_assert_eq!(ids, expected);
    }

    /// Moving an id up in one list never lowers its fused score (monotonicity).
    #[test]
    fn promoting_an_id_never_lowers_its_score(a in ranking(), b in ranking(), pick in any::<prop::sample::Index>(), k in 1f32..100.0) {
        prop_assume!(a.len() >= 2);
        let i = pick.index(a.len() - 1) + 1;
        let id = a[i];
        let mut promoted = a.clone();
        promoted.swap(i, i - 1);
        let score = |x: &[i64]| {
            reciprocal_rank_fusion(&lists(x, &b, 1.0, 1.0), k)
                .into_iter()
                .find(|f| f.id == id)
                .unwrap()
                .score
        };
        prop_assert!(score(&promoted) >= score(&a));
    }

    /// A list with zero weight changes no score, only the ranks it reports.
    #[test]
    fn zero_weight_list_does_not_change_scores(a in ranking(), b in ranking(), k in 1f32..100.0) {
        let alone = reciprocal_rank_fusion(&[RankedList { mode: SearchMode::Bm25, weight: 1.0, ids: &a }], k);
        let with = reciprocal_rank_fusion(&lists(&a, &b, 1.0, 0.0), k);
        for f in &alone {
            let g = with.iter().find(|g| g.id == f.id).unwrap();
            prop_assert_eq!(f.score, g.score);
        }
    }
}
