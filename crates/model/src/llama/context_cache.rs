//! Keeps a llama.cpp context alive between requests.
//!
//! Creating a context allocates its KV cache and compute buffers; the first decode on fresh
//! buffers also pays for page faults. Reusing one context (with its KV cleared) takes that out
//! of every request's latency, as a long-running llama.cpp server does.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
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
    pub fn fits(self, needed: Shape) -> bool {
        self.slots >= needed.slots && self.per_slot >= needed.per_slot
    }
}

/// One spare context; concurrent requests beyond it create their own.
#[derive(Default)]
pub(super) struct ContextCache {
    spare: Mutex<Option<(Shape, OwnedContext)>>,
}

impl std::fmt::Debug for ContextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextCache")
    }
}

impl ContextCache {
    /// A cached context at least as large as `needed`, if one is free.
    pub fn take(&self, needed: Shape) -> Option<(Shape, OwnedContext)> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        match spare.take() {
            Some((shape, ctx)) if shape.fits(needed) => Some((shape, ctx)),
            other => {
                *spare = other;
                None
            }
        }
    }

    /// Returns a context for the next request.
    pub fn put(&self, shape: Shape, ctx: OwnedContext) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the larger one: it serves more requests.
        let keep = spare.as_ref().is_none_or(|(s, _)| shape.fits(*s));
        if keep {
            *spare = Some((shape, ctx));
        }
    }
}
