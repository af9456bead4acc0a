//! The one seeded random generator of ragtune: SplitMix64 (Steele, Lea and Flood 2014; pure
//! 64-bit integer arithmetic, so a seed gives the same numbers on every run and platform),
//! with unbiased bounded integers (Lemire's method with rejection), uniform floats, Fisher-Yates
//! shuffles and seeded samples. Question samples, RAFT data and training (LoRA initialisation,
//! dropout masks, epoch shuffles) all draw from it, so every run is repeatable from its seed.
//! candle's CPU device cannot be seeded, which is why training needs it too.

/// The step of SplitMix64's state per draw (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function of a state.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64, the generator Java's `SplittableRandom` uses.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The whole state: `SplitMix64::new(r.state())` continues exactly where `r` is
    /// (training checkpoints).
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// What the `i`-th call of [`next_u64`](Self::next_u64) from here returns (`i` = 0: the
    /// next one), without drawing anything. The state moves by a constant per draw, so any
    /// draw can be computed on its own: long streams (dropout masks) are filled in parallel
    /// and still equal the sequential draws.
    #[inline(always)]
    pub fn peek_u64(&self, i: u64) -> u64 {
        mix(self
            .state
            .wrapping_add(GAMMA.wrapping_mul(i.wrapping_add(1))))
    }

    /// Moves past `n` draws, as `n` calls of [`next_u64`](Self::next_u64) would.
    pub fn skip(&mut self, n: u64) {
        self.state = self.state.wrapping_add(GAMMA.wrapping_mul(n));
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

    /// Uniform in [0, 1), with the 53 bits an f64 mantissa holds.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, 1), with the 24 bits an f32 mantissa holds.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `n` values uniform in [lo, hi).
    pub fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next_f32()).collect()
    }

    /// A child generator, so that e.g. each layer's init does not depend on how many numbers
    /// another part drew.
    pub fn fork(&mut self) -> SplitMix64 {
        SplitMix64::new(self.next_u64())
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
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
    fn peek_and_skip_equal_sequential_draws() {
        let mut r = SplitMix64::new(0xDEAD_BEEF);
        r.next_u64();
        let ahead = r.clone();
        let drawn: Vec<u64> = (0..50).map(|_| r.next_u64()).collect();
        let peeked: Vec<u64> = (0..50).map(|i| ahead.peek_u64(i)).collect();
        assert_eq!(drawn, peeked);
        let mut skipped = ahead.clone();
        skipped.skip(50);
        assert_eq!(skipped.state(), r.state());
        assert_eq!(skipped.next_u64(), r.next_u64());
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

    #[test]
    fn same_seed_same_stream_and_floats_in_range() {
        let a = SplitMix64::new(7).uniform(1000, -0.5, 0.5);
        let b = SplitMix64::new(7).uniform(1000, -0.5, 0.5);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert_ne!(a, SplitMix64::new(8).uniform(1000, -0.5, 0.5));
        let mut r = SplitMix64::new(1);
        assert!(
            (0..1000)
                .map(|_| r.next_f64())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut v: Vec<u32> = (0..50).collect();
        SplitMix64::new(3).shuffle(&mut v);
        let mut again: Vec<u32> = (0..50).collect();
        SplitMix64::new(3).shuffle(&mut again);
        assert_eq!(v, again);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
