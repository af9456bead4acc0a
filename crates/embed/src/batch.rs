//! Which texts go into which batch: sorted by token length so that a batch holds texts of
//! similar length, filled up to a token budget, and the order restored afterwards.

/// Indices of the texts in each batch, longest texts first.
///
/// The cost of a batch is its packed tokens (`padded == false`) or its length times the
/// length of its longest text (`padded == true`); a batch closes before its cost would pass
/// `budget` (a text longer than the budget gets a batch of its own). With `sort == false`
/// texts keep their input order.
pub(crate) fn plan(lens: &[usize], budget: usize, sort: bool, padded: bool) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    if sort {
        // Stable: equal lengths keep their input order, so the plan is deterministic.
        order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    }
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let (mut tokens, mut longest) = (0usize, 0usize);
    for i in order {
        let len = lens[i];
        let cost = match padded {
            true => (current.len() + 1) * longest.max(len),
            false => tokens + len,
        };
        if !current.is_empty() && cost > budget {
            batches.push(std::mem::take(&mut current));
            tokens = 0;
            longest = 0;
        }
        current.push(i);
        tokens += len;
        longest = longest.max(len);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_lands_in_exactly_one_batch() {
        let lens: Vec<usize> = (0..100).map(|i| (i * 37) % 61 + 2).collect();
        for (sort, padded) in [(true, false), (false, false), (true, true), (false, true)] {
            let batches = plan(&lens, 128, sort, padded);
            let mut seen: Vec<usize> = batches.concat();
            seen.sort();
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
            for b in &batches {
                let cost = match padded {
                    true => b.len() * b.iter().map(|&i| lens[i]).max().unwrap(),
                    false => b.iter().map(|&i| lens[i]).sum(),
                };
                assert!(cost <= 128 || b.len() == 1, "{b:?} costs {cost}");
            }
        }
    }

    #[test]
    fn sorted_batches_hold_similar_lengths() {
        let lens = [5, 100, 6, 99, 7, 98];
        // Padded: a batch costs its length times its longest text.
        assert_eq!(
            plan(&lens, 200, true, true),
            [vec![1, 3], vec![5, 4], vec![2, 0]]
        );
        assert_eq!(plan(&lens, 400, true, true), [vec![1, 3, 5, 4], vec![2, 0]]);
        // Packed and unsorted: the input order, cut at the budget.
        assert_eq!(
            plan(&lens, 200, false, false),
            [vec![0, 1, 2], vec![3, 4], vec![5]]
        );
    }

    #[test]
    fn a_text_over_budget_gets_its_own_batch() {
        assert_eq!(plan(&[300, 3, 4], 100, true, false), [vec![0], vec![2, 1]]);
        assert!(plan(&[], 100, true, false).is_empty());
    }
}
