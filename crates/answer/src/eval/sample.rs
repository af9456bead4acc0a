//! A fixed, seeded sample of questions, the same on every run and platform: SplitMix64 (pure
//! 64-bit integer arithmetic), unbiased bounded integers (Lemire's method with rejection), and
//! a partial Fisher-Yates shuffle over the indices. The chosen indices are returned in file
//! order.

/// SplitMix64 (Steele, Lea and Flood 2014), the generator Java's `SplittableRandom` uses.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), without modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0)");
        let mut m = u128::from(self.next_u64()) * u128::from(bound);
        if (m as u64) < bound {
            let threshold = bound.wrapping_neg() % bound;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(bound);
            }
        }
        (m >> 64) as u64
    }
}

/// `n` distinct indices of `0..len` (all of them when `n >= len`), in increasing order.
pub fn sample_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let n = n.min(len);
    let mut rng = SplitMix64::new(seed);
    let mut indices: Vec<usize> = (0..len).collect();
    for i in 0..n {
        let j = i + rng.below((len - i) as u64) as usize;
        indices.swap(i, j);
    }
    indices.truncate(n);
    indices.sort_unstable();
    indices
}

/// `n` items drawn with [`sample_indices`], in their original order.
pub fn sample<T: Clone>(items: &[T], n: usize, seed: u64) -> Vec<T> {
    sample_indices(items.len(), n, seed)
        .into_iter()
        .map(|i| items[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 0 of the reference implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(7);
        for bound in [1, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below(bound) < bound);
            }
        }
    }

    #[test]
    fn sample_is_distinct_sorted_and_complete_when_large() {
        let s = sample_indices(100, 10, 0);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_indices(5, 10, 3), vec![0, 1, 2, 3, 4]);
        assert_ne!(sample_indices(100, 10, 1), s);
    }
}
