//! `/metrics` in Prometheus' text format: requests by route and status, latency histograms
//! by route, tokens by model, the engine's queue depth, each model's KV cache, the C heap, and
//! each knowledge base's ingestion.

use crate::engine::Engine;
use ragtune_core::KvCacheCounters;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (local generation takes seconds).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A series of a model's KV cache: name, type, help, and its value for one model.
type KvSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&KvCacheCounters) -> u64,
);

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last counts what is above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    /// (model, prompt tokens, completion tokens).
    tokens: BTreeMap<String, (u64, u64)>,
}

/// What the server counts.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A finished request: its route (the pattern, not the path, so ids do not make series).
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let mut c = self.lock();
        *c.requests.entry((route.to_owned(), status)).or_default() += 1;
        let h = c.latency.entry(route.to_owned()).or_default();
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        h.counts[bucket] += 1;
        h.sum += secs;
    }

    pub fn tokens(&self, model: &str, prompt: u32, completion: u32) {
        let mut c = self.lock();
        let t = c.tokens.entry(model.to_owned()).or_default();
        t.0 += u64::from(prompt);
        t.1 += u64::from(completion);
    }

    /// The text `/metrics` answers with.
    pub fn render(&self, engine: &Engine) -> String {
        let c = self.lock();
        let mut out = String::new();
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP ragtune_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE ragtune_requests_total counter\n");
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "ragtune_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        out.push_str("# HELP ragtune_request_duration_seconds Time to answer, by route (streams: until the last event).\n");
        out.push_str("# TYPE ragtune_request_duration_seconds histogram\n");
        for (route, h) in &c.latency {
            let route = label(route);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "ragtune_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let total: u64 = h.counts.iter().sum();
            let _ = writeln!(
                out,
                "ragtune_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "ragtune_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ragtune_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }
        out.push_str("# HELP ragtune_tokens_total Tokens by model and kind.\n");
        out.push_str("# TYPE ragtune_tokens_total counter\n");
        for (model, (prompt, completion)) in &c.tokens {
            let model = label(model);
            let _ = writeln!(
                out,
                "ragtune_tokens_total{{model=\"{model}\",kind=\"prompt\"}} {prompt}"
            );
            let _ = writeln!(
                out,
                "ragtune_tokens_total{{model=\"{model}\",kind=\"completion\"}} {completion}"
            );
        }
        out.push_str("# HELP ragtune_queue_depth Requests waiting for the engine.\n");
        out.push_str("# TYPE ragtune_queue_depth gauge\n");
        let _ = writeln!(out, "ragtune_queue_depth {}", engine.waiting());
        let kv_series: [KvSeries; 3] = [
            (
                "ragtune_kv_cache_bytes",
                "gauge",
                "KV cache of each model's contexts: those in use and those kept for the next requests.",
                KvCacheCounters::bytes,
            ),
            (
                "ragtune_contexts_created_total",
                "counter",
                "Contexts (each with its KV cache) each model created.",
                KvCacheCounters::contexts_created,
            ),
            (
                "ragtune_prompt_tokens_reused_total",
                "counter",
                "Prompt tokens taken from a context's KV cache instead of computed.",
                KvCacheCounters::reused_prompt_tokens,
            ),
        ];
        for (name, kind, help, value) in kv_series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (model, kv) in engine.kv_caches.iter() {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", label(model), value(kv));
            }
        }
        if let Some(heap) = ragtune_core::process::heap() {
            out.push_str("# HELP ragtune_heap_bytes The C heap: bytes in use, and bytes freed but held by the allocator.\n");
            out.push_str("# TYPE ragtune_heap_bytes gauge\n");
            let _ = writeln!(out, "ragtune_heap_bytes{{kind=\"in_use\"}} {}", heap.in_use);
            let _ = writeln!(
                out,
                "ragtune_heap_bytes{{kind=\"free_held\"}} {}",
                heap.free_held
            );
        }
        out.push_str("# HELP ragtune_heap_trimmed_bytes_total Resident bytes the engine handed back by trimming the heap after work.\n");
        out.push_str("# TYPE ragtune_heap_trimmed_bytes_total counter\n");
        let _ = writeln!(
            out,
            "ragtune_heap_trimmed_bytes_total {}",
            engine
                .heap_trimmed
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        out.push_str("# HELP ragtune_kb_files_queued Uploaded files waiting to be ingested.\n");
        out.push_str("# TYPE ragtune_kb_files_queued gauge\n");
        let feeds: Vec<_> = engine
            .feeds
            .iter()
            .map(|f| (label(&f.name), f.counted_status()))
            .collect();
        for (kb, s) in &feeds {
            let _ = writeln!(out, "ragtune_kb_files_queued{{kb=\"{kb}\"}} {}", s.queued);
        }
        out.push_str("# HELP ragtune_kb_chunks Chunks in each knowledge base.\n");
        out.push_str("# TYPE ragtune_kb_chunks gauge\n");
        for (kb, s) in &feeds {
            let _ = writeln!(out, "ragtune_kb_chunks{{kb=\"{kb}\"}} {}", s.chunks);
        }
        out.push_str("# HELP ragtune_kb_ingest_failures_total Files that failed to ingest.\n");
        out.push_str("# TYPE ragtune_kb_ingest_failures_total counter\n");
        for (kb, s) in &feeds {
            let _ = writeln!(
                out,
                "ragtune_kb_ingest_failures_total{{kb=\"{kb}\"}} {}",
                s.failed
            );
        }
        out
    }
}
