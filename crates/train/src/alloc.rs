//! Keeps glibc from handing the big activation buffers back to the kernel after every step.
//!
//! A training step allocates and frees the same set of large tensors (activations, logits,
//! gradients: many MB each) every step. glibc serves allocations above its mmap threshold with a
//! fresh `mmap` and `munmap`s them on free, so each step faults in and zeroes every page again;
//! the smaller ones are trimmed off the top of the heap for the same round trip. On SmolLM2
//! (batch 4 x 256) that cost 0.5-2 M page faults and a third of the step with composed ops, about
//! 10% with the fused ones (README, "Measured"). With mmap off and trimming practically off,
//! freed blocks stay in the heap and the next step reuses them.
//!
//! The cost: memory freed after the peak is not returned to the system while the process lives,
//! so call this in the training process, not in a long-lived server.

use crate::error::{Error, Result};

/// Turns off glibc's mmap for large blocks (`M_MMAP_MAX = 0`) and its heap trimming
/// (`M_TRIM_THRESHOLD` = 2 GiB, the largest value it takes), the in-process equivalent of
/// `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`. Call it once, before building the model.
/// A no-op on targets without glibc.
pub fn tune_allocator() -> Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        for (param, value, name) in [
            (libc::M_MMAP_MAX, 0, "M_MMAP_MAX"),
            (libc::M_TRIM_THRESHOLD, libc::c_int::MAX, "M_TRIM_THRESHOLD"),
        ] {
            // SAFETY: mallopt only adjusts allocator parameters; it is safe to call at any time.
            if unsafe { libc::mallopt(param, value) } != 1 {
                return Err(Error::Allocator(format!(
                    "glibc rejected mallopt({name}, {value})"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        super::tune_allocator().expect("mallopt");
        // Allocation still works afterwards, large blocks included.
        let v = vec![1u8; 64 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }
}
