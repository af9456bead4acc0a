//! Keeps a llama.cpp context alive between requests, with what its KV cache holds.
//!
//! Creating a context allocates its KV cache and compute buffers; the first decode on fresh
//! buffers also pays for page faults. Reusing one context takes that out of every request's
//! latency, as a long-running llama.cpp server does. Its KV cells are kept too: a request
//! whose prompt starts as the slot's previous one did (every RAG prompt opens with the same
//! system text and worked exchanges) computes only the rest.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use ragtune_core::KvCacheCounters;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

type Context<'a> = LlamaContext<'a>;

self_cell::self_cell!(
    /// A context together with the model it borrows.
    pub(super) struct OwnedContext {
        owner: Arc<LlamaModel>,
        #[covariant]
        dependent: Context,
    }
);

/// The size a context was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// Sequences decoded together.
    pub slots: u32,
    /// KV cells of each sequence.
    pub per_slot: u32,
}

impl Shape {
    pub fn cells(self) -> u64 {
        u64::from(self.slots) * u64::from(self.per_slot)
    }

    pub fn fits(self, needed: Shape) -> bool {
        self.slots >= needed.slots && self.per_slot >= needed.per_slot
    }
}

/// What a context's KV cache holds: per sequence, the tokens at positions 0.. whose keys and
/// values are there, all computed with one adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct KvState {
    /// The adapter the cells were computed with (`None`: the base model).
    pub adapter: Option<String>,
    pub sequences: Vec<Vec<LlamaToken>>,
}

/// Reused prefixes are cut to a multiple of this many tokens. llama.cpp's CPU matrix kernels
/// take a batch's rows in groups (of 4 or 8, with a slower path for the rest), and a row's
/// result can differ in its last bits with the group it falls in; cut at a multiple, the rest
/// of the prompt falls into the groups it would have had if computed whole, and greedy output
/// stays the same (tested on both default models; cut anywhere, a SmolLM2 answer changed in
/// the `prefix_reuse` bench).
pub(super) const REUSE_ALIGN: usize = 32;

impl KvState {
    /// How many of `prompt`'s first tokens sequence `seq` already holds, down to a multiple of
    /// [`REUSE_ALIGN`], leaving at least the last prompt token to compute (its logits pick the
    /// first new token).
    pub fn reusable(&self, seq: usize, prompt: &[LlamaToken]) -> usize {
        let held = self.sequences.get(seq).map_or(&[][..], Vec::as_slice);
        let shared = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let shared = shared.min(prompt.len().saturating_sub(1));
        shared - shared % REUSE_ALIGN
    }

    /// The tokens sequence `seq` holds, for appending as they are decoded.
    pub fn sequence(&mut self, seq: usize) -> &mut Vec<LlamaToken> {
        if self.sequences.len() <= seq {
            self.sequences.resize_with(seq + 1, Vec::new);
        }
        &mut self.sequences[seq]
    }
}

/// A context with its shape and what its cache holds.
pub(super) struct CachedContext {
    pub shape: Shape,
    pub context: OwnedContext,
    pub kv: KvState,
    /// Held for its `Drop`: the bytes leave the gauge with the context.
    pub _counted: Counted,
}

/// A context's KV cache bytes, counted in [`KvCacheCounters::bytes`] while the context lives.
pub(super) struct Counted {
    counters: Arc<KvCacheCounters>,
    bytes: u64,
}

impl Counted {
    pub fn new(counters: Arc<KvCacheCounters>, bytes: u64) -> Self {
        counters.contexts_created.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        Self { counters, bytes }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counters.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Spare contexts: the largest single-sequence one (for `generate`) and the largest batched one
/// (for `generate_batch`), so alternating between the two keeps both, with their KV cells.
/// Concurrent requests beyond them create their own.
#[derive(Default)]
pub(super) struct ContextCache {
    spares: Mutex<[Option<CachedContext>; 2]>,
}

impl std::fmt::Debug for ContextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextCache")
    }
}

/// Which spare a context of `shape` is kept as.
fn kind(shape: Shape) -> usize {
    usize::from(shape.slots > 1)
}

impl ContextCache {
    /// A cached context at least as large as `needed`, if one is free: the one of its kind
    /// first, else the other.
    pub fn take(&self, needed: Shape) -> Option<CachedContext> {
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        let first = kind(needed);
        for k in [first, 1 - first] {
            if spares[k].as_ref().is_some_and(|c| c.shape.fits(needed)) {
                return spares[k].take();
            }
        }
        None
    }

    /// Returns a context for the next request.
    pub fn put(&self, cached: CachedContext) {
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        let spare = &mut spares[kind(cached.shape)];
        // Keep the larger one: it serves more requests.
        if spare.as_ref().is_none_or(|s| cached.shape.fits(s.shape)) {
            *spare = Some(cached);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    #[test]
    fn the_shared_prefix_is_reused_but_the_last_prompt_token_is_always_computed() {
        let a = REUSE_ALIGN as i32;
        let run = |from: i32, to: i32| tokens(&(from..to).collect::<Vec<_>>());
        let mut kv = KvState::default();
        kv.sequence(1).extend(run(0, 2 * a + 5));
        kv.sequence(1).push(LlamaToken(-1));
        // 2a + 5 tokens shared: 2a of them reused.
        let prompt = [run(0, 2 * a + 5), run(1000, 1010)].concat();
        assert_eq!(kv.reusable(1, &prompt), 2 * REUSE_ALIGN);
        // The whole prompt is held: its last token is fed again for its logits.
        assert_eq!(kv.reusable(1, &run(0, a + 1)), REUSE_ALIGN);
        assert_eq!(kv.reusable(1, &run(0, a)), 0);
        assert_eq!(kv.reusable(1, &run(7, 100)), 0);
        // A sequence never used holds nothing.
        assert_eq!(kv.reusable(0, &tokens(&[1, 2])), 0);
        assert_eq!(kv.reusable(5, &tokens(&[1, 2])), 0);
        assert_eq!(kv.reusable(1, &[]), 0);
    }
}
