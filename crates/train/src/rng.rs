//! A small seeded generator (SplitMix64) for LoRA initialisation and dropout masks.
//!
//! candle's CPU device cannot be seeded (`Device::set_seed` fails on CPU), so everything random
//! in training comes from here, which makes a run repeatable from its seed.

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The whole state: `Rng::new(r.state())` continues exactly where `r` is (checkpoints).
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_values_in_range() {
        let a = Rng::new(7).uniform(1000, -0.5, 0.5);
        let b = Rng::new(7).uniform(1000, -0.5, 0.5);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert_ne!(a, Rng::new(8).uniform(1000, -0.5, 0.5));
    }
}
