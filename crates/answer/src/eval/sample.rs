//! A fixed, seeded sample of questions, the same on every run and platform: the one seeded
//! sampler lives in `ragtune-core` (`rng`), shared with RAFT data and training.

pub use ragtune_core::rng::{SplitMix64, sample, sample_indices};
