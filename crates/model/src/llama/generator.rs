//! `LlamaGenerator`: the `Generator` seam over a GGUF model run by llama.cpp.
//!
//! One engine serves single and batched requests: a set of sequence slots in one llama.cpp
//! context, refilled as sequences finish (continuous batching). Each decode call carries the
//! next token of every running sequence plus as much pending prompt as fits in the batch.
//! The context is kept between requests with its KV cells: a prompt starts from the longest
//! prefix it shares with what its slot held before ([`LoadOptions::prefix_reuse`]).

use super::context_cache::{CachedContext, ContextCache, Counted, KvState, OwnedContext, Shape};
use super::prompt_cache::PromptCache;
use super::sampling::{Picker, log_probability, picker, top_log_probabilities};
use super::{GgufHeader, ModelError, Tokenizer, backend, load_model};
use crate::text_stream::TextStream;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use ragtune_core::{
    FinishReason, Generation, GenerationRequest, Generator, GeneratorError, KvCacheCounters,
    Prompt, TokenLogprob, TokenSink, Usage, logprobs_within,
};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a model is loaded and run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Most tokens (prompt + completion) of one request; 0 = the model's training context,
    /// capped at 8192 to keep memory modest.
    pub context_length: u32,
    /// CPU threads; 0 = all available cores.
    pub threads: usize,
    /// Layers to offload to the GPU (needs the `cuda` feature); 0 = CPU only.
    pub gpu_layers: u32,
    /// Tokens per llama.cpp decode call (prompt chunks and batched decoding).
    pub batch_size: u32,
    /// Sequences decoded together by `generate_batch`.
    pub parallel: u32,
    /// LoRA adapters (GGUF) loaded with the model; a request picks one by name.
    pub adapters: Vec<AdapterSpec>,
    /// Keep the KV cache in f32 instead of llama.cpp's f16: twice the cache memory, but no
    /// rounding of keys and values (used to compare a merged model with base + adapter).
    pub f32_kv_cache: bool,
    /// Keep each slot's KV cells between requests and compute only the part of a new prompt
    /// that differs from what the slot held: the RAG system text and worked exchanges that
    /// open every prompt are computed once. Greedy output is the same either way (tested);
    /// off computes every prompt whole (to measure the gain).
    pub prefix_reuse: bool,
    /// A folder where single-sequence requests keep their KV cells between processes (with
    /// `prefix_reuse`): a new process starts from the cells the last run with the same model,
    /// adapter, build and settings left, so one-shot commands such as `ask` skip the shared
    /// prefix too. `None`: nothing is kept beyond the generator's life.
    pub prompt_cache: Option<PathBuf>,
}

/// What [`LlamaGenerator::perplexity`] measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Perplexity {
    /// Tokens scored.
    pub tokens: usize,
    /// Mean negative log-likelihood per scored token (nats).
    pub mean_nll: f64,
    pub perplexity: f64,
}

/// A GGUF LoRA adapter to load under `name`, applied at `scale` (1.0 = as trained).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    pub name: String,
    pub path: PathBuf,
    pub scale: f32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            context_length: 0,
            threads: 0,
            gpu_layers: 0,
            batch_size: 512,
            parallel: 16,
            adapters: Vec::new(),
            f32_kv_cache: false,
            prefix_reuse: true,
            prompt_cache: None,
        }
    }
}

/// A GGUF model loaded for generation.
#[derive(Debug)]
pub struct LlamaGenerator {
    tokenizer: Tokenizer,
    path: PathBuf,
    architecture: String,
    context_length: u32,
    threads: i32,
    batch_size: u32,
    parallel: u32,
    f32_kv_cache: bool,
    prefix_reuse: bool,
    /// Contexts created, KV bytes of those alive, prompt tokens reused (shared with `/metrics`).
    kv: Arc<KvCacheCounters>,
    /// Bytes of one KV cell (one token's keys and values in every layer).
    kv_cell_bytes: u64,
    contexts: ContextCache,
    prompt_cache: Option<PromptCache>,
    /// Loaded adapters; llama.cpp frees them with the model. The mutex only guards the
    /// `&mut` the binding's setter asks for.
    adapters: Vec<(AdapterSpec, Mutex<LlamaLoraAdapter>)>,
}

impl LlamaGenerator {
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let params = LlamaModelParams::default().with_n_gpu_layers(options.gpu_layers);
        let (mut model, header) = load_model(path, &params)?;
        let mut adapters = Vec::new();
        for spec in &options.adapters {
            if adapters
                .iter()
                .any(|(s, _): &(AdapterSpec, _)| s.name == spec.name)
            {
                return Err(ModelError::Adapter {
                    path: spec.path.clone(),
                    reason: format!("a second adapter is named {:?}", spec.name),
                });
            }
            let adapter = load_adapter(&mut model, &header, spec)?;
            adapters.push((spec.clone(), Mutex::new(adapter)));
        }
        let trained = model.n_ctx_train().max(1);
        let context_length = match options.context_length {
            0 => trained.min(8192),
            n => n.min(trained),
        };
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // One token's keys and values in every layer; llama.cpp's KV cache is f16 unless told.
        let head_dim = model.n_embd().max(1) as u64 / u64::from(model.n_head().max(1));
        let kv_cell_bytes = u64::from(model.n_layer())
            * 2
            * u64::from(model.n_head_kv())
            * head_dim
            * if options.f32_kv_cache { 4 } else { 2 };
        Ok(Self {
            tokenizer: Tokenizer::new(Arc::new(model), &header)?,
            path: path.to_path_buf(),
            architecture: header.architecture().unwrap_or("unknown").to_string(),
            context_length,
            threads: i32::try_from(threads).unwrap_or(i32::MAX),
            batch_size: options.batch_size.max(1),
            parallel: options.parallel.max(1),
            f32_kv_cache: options.f32_kv_cache,
            prefix_reuse: options.prefix_reuse,
            contexts: ContextCache::default(),
            kv: Arc::new(KvCacheCounters::default()),
            kv_cell_bytes,
            prompt_cache: options.prompt_cache.clone().map(|dir| {
                let settings = (
                    threads,
                    options.batch_size.max(1),
                    options.f32_kv_cache,
                    options.gpu_layers,
                );
                PromptCache::new(dir, path, settings)
            }),
            adapters,
        })
    }

    /// Prompt tokens whose keys and values came from a slot's earlier request instead of
    /// being computed ([`LoadOptions::prefix_reuse`]), over this model's life.
    pub fn reused_prompt_tokens(&self) -> u64 {
        self.kv.reused_prompt_tokens()
    }

    /// Names of the loaded adapters, in load order.
    pub fn adapter_names(&self) -> Vec<&str> {
        self.adapters.iter().map(|(s, _)| s.name.as_str()).collect()
    }

    /// How well the model (with `adapter`, by name, or the base) predicts `text`: the text is
    /// tokenized as a raw prompt and cut into windows of `window` tokens (0: the context
    /// length); each token after the first of its window is scored given the tokens before it
    /// in the window, as llama.cpp's perplexity tool does without its half-window overlap.
    pub fn perplexity(
        &self,
        text: &str,
        window: u32,
        adapter: Option<&str>,
    ) -> Result<Perplexity, GeneratorError> {
        let tokens = self.tokenizer.tokens(text, true, false);
        let window = match window {
            0 => self.context_length,
            n => n.min(self.context_length),
        }
        .max(2) as usize;
        let shape = Shape {
            slots: 1,
            per_slot: (window as u32).next_multiple_of(256),
        };
        let mut cached = match self.contexts.take(shape) {
            Some(cached) => cached,
            None => self.new_cached(shape)?,
        };
        let mut request = GenerationRequest::new(Prompt::Text(String::new()));
        request.adapter = adapter.map(str::to_string);
        let n_vocab = self.tokenizer.vocab_size();
        let batch_size = self.batch_size as usize;
        // Sequence 0 is used and cleared here: it holds nothing afterwards.
        cached.kv.sequence(0).clear();
        let scored = cached.context.with_dependent_mut(|_, ctx| {
            self.set_adapter(ctx, std::slice::from_ref(&request))?;
            let mut batch = LlamaBatch::new(batch_size, 1);
            let (mut nll, mut count) = (0f64, 0usize);
            for chunk in tokens.chunks(window) {
                ctx.clear_kv_cache_seq(Some(0), None, None).ok();
                for (start, part) in chunk
                    .chunks(batch_size)
                    .enumerate()
                    .map(|(i, p)| (i * batch_size, p))
                {
                    batch.clear();
                    for (j, &token) in part.iter().enumerate() {
                        batch
                            .add(token, (start + j) as i32, &[0], true)
                            .map_err(|e| GeneratorError::Permanent(e.to_string()))?;
                    }
                    ctx.decode(&mut batch)
                        .map_err(|e| GeneratorError::Permanent(format!("llama.cpp decode: {e}")))?;
                    for j in 0..part.len() {
                        let Some(&next) = chunk.get(start + j + 1) else {
                            break;
                        };
                        let logits = &ctx.get_logits_ith(j as i32)[..n_vocab];
                        nll -= f64::from(log_probability(logits, next.0 as usize));
                        count += 1;
                    }
                }
            }
            Ok::<_, GeneratorError>((nll, count))
        });
        self.contexts.put(cached);
        let (nll, count) = scored?;
        if count == 0 {
            return Err(GeneratorError::InvalidRequest(
                "the text has fewer than two tokens; nothing to score".into(),
            ));
        }
        Ok(Perplexity {
            tokens: count,
            mean_nll: nll / count as f64,
            perplexity: (nll / count as f64).exp(),
        })
    }

    /// Applies the adapter `requests` ask for to `ctx` (or none), replacing what was set before.
    fn set_adapter(
        &self,
        ctx: &mut LlamaContext<'_>,
        requests: &[GenerationRequest],
    ) -> Result<(), GeneratorError> {
        let wanted = requests[0].adapter.as_deref();
        if requests.iter().any(|r| r.adapter.as_deref() != wanted) {
            return Err(GeneratorError::InvalidRequest(
                "the requests of one batch must use the same adapter; batch them by adapter".into(),
            ));
        }
        let Some((_, any)) = self.adapters.first() else {
            return match wanted {
                Some(name) => Err(GeneratorError::InvalidRequest(format!(
                    "no adapter named {name:?} is loaded (none is)"
                ))),
                None => Ok(()),
            };
        };
        match wanted {
            None => ctx
                .lora_adapter_remove(&mut lock(any))
                .map_err(|e| GeneratorError::Permanent(format!("clearing adapters: {e}"))),
            Some(name) => {
                let (spec, adapter) = self
                    .adapters
                    .iter()
                    .find(|(s, _)| s.name == name)
                    .ok_or_else(|| {
                        GeneratorError::InvalidRequest(format!(
                            "no adapter named {name:?} is loaded (loaded: {})",
                            self.adapter_names().join(", ")
                        ))
                    })?;
                ctx.lora_adapter_set(&mut lock(adapter), spec.scale)
                    .map_err(|e| GeneratorError::Permanent(format!("setting adapter {name}: {e}")))
            }
        }
    }

    /// What identifies the cells computed with adapter `name`, for the prompt cache.
    fn adapter_identity(&self, name: Option<&str>) -> Option<(&str, &Path, f32)> {
        let (spec, _) = self
            .adapters
            .iter()
            .find(|(s, _)| Some(s.name.as_str()) == name)?;
        Some((spec.name.as_str(), spec.path.as_path(), spec.scale))
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Runs `requests` through up to `parallel` slots; `sink(i, text)` gets request i's text.
    fn run(
        &self,
        requests: &[GenerationRequest],
        parallel: u32,
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        let prompts = requests
            .iter()
            .map(|r| self.prompt_tokens(&r.prompt))
            .collect::<Result<Vec<_>, _>>()?;
        let budgets: Vec<u32> = requests
            .iter()
            .zip(&prompts)
            .map(|(r, p)| r.max_tokens.min(self.context_length - p.len() as u32))
            .collect();
        let slots = parallel.min(requests.len() as u32).max(1);
        // Each slot gets its own KV stream, as long as the longest request needs.
        let per_slot = prompts
            .iter()
            .zip(&budgets)
            .map(|(p, b)| p.len() as u32 + b)
            .max()
            .unwrap_or(1)
            .next_multiple_of(256);
        let needed = Shape { slots, per_slot };
        let mut cached = match self.contexts.take(needed) {
            Some(cached) => cached,
            None => self.new_cached(self.shape_for(needed))?,
        };
        let adapter = requests[0].adapter.clone();
        let disk = match &self.prompt_cache {
            Some(cache) if slots == 1 && self.prefix_reuse => {
                Some((cache, cache.file(self.adapter_identity(adapter.as_deref()))))
            }
            _ => None,
        };
        let CachedContext {
            context, kv, shape, ..
        } = &mut cached;
        let done = context.with_dependent_mut(|_, ctx| {
            self.set_adapter(ctx, requests)?;
            if !self.prefix_reuse || kv.adapter != adapter {
                // Cells computed under another adapter hold other keys and values.
                *kv = KvState {
                    adapter,
                    sequences: Vec::new(),
                };
            }
            if let Some((cache, file)) = &disk
                && kv.sequences.first().is_none_or(Vec::is_empty)
                && let Some(tokens) = cache.load(ctx, file, shape.per_slot as usize)
            {
                *kv.sequence(0) = tokens;
            }
            let mut engine = Engine {
                batch: LlamaBatch::new(self.batch_size as usize, slots as i32),
                slots: (0..slots).map(|_| None).collect(),
                queue: (0..requests.len()).collect(),
                done: (0..requests.len()).map(|_| None).collect(),
                batch_size: self.batch_size as usize,
            };
            while engine.admit(ctx, kv, &prompts, &budgets, requests, self) {
                engine.step(ctx, kv, &self.tokenizer, sink)?;
            }
            if let Some((cache, file)) = &disk {
                cache.save(ctx, file, kv.sequence(0));
            }
            Ok::<_, GeneratorError>(engine.done)
        });
        // A slot's cells past what `kv` says it holds are removed when a request is admitted
        // there, so after a failure mid-request, forgetting what every slot holds leaves the
        // context fit for the next one.
        if done.is_err() {
            cached.kv = KvState::default();
        }
        self.contexts.put(cached);
        done?
            .into_iter()
            .map(|g| g.ok_or_else(|| GeneratorError::Permanent("a request did not finish".into())))
            .collect()
    }

    /// The context to create for `needed`: a single-sequence context is made large enough for
    /// most later requests too, so it can be reused.
    fn shape_for(&self, needed: Shape) -> Shape {
        let per_slot = if needed.slots == 1 {
            needed
                .per_slot
                .max(self.context_length.min(4096).next_multiple_of(256))
        } else {
            needed.per_slot
        };
        Shape {
            slots: needed.slots,
            per_slot,
        }
    }

    fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>, GeneratorError> {
        let tokens = self
            .tokenizer
            .encode_prompt(prompt)
            .map_err(|e| GeneratorError::InvalidRequest(e.to_string()))?;
        if tokens.is_empty() {
            return Err(GeneratorError::InvalidRequest("the prompt is empty".into()));
        }
        if tokens.len() as u64 >= self.context_length as u64 {
            return Err(GeneratorError::ContextOverflow {
                prompt_tokens: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                context: self.context_length,
            });
        }
        Ok(tokens)
    }

    fn new_cached(&self, shape: Shape) -> Result<CachedContext, GeneratorError> {
        Ok(CachedContext {
            shape,
            context: self.new_context(shape)?,
            kv: KvState::default(),
            _counted: Counted::new(self.kv.clone(), shape.cells() * self.kv_cell_bytes),
        })
    }

    fn new_context(&self, shape: Shape) -> Result<OwnedContext, GeneratorError> {
        let n_ctx = shape.per_slot * shape.slots;
        let mut params = LlamaContextParams::default();
        if self.f32_kv_cache {
            params = params
                .with_type_k(KvCacheType::F32)
                .with_type_v(KvCacheType::F32);
        }
        let params = params
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(self.batch_size)
            .with_n_ubatch(self.batch_size)
            .with_n_seq_max(shape.slots)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let backend = backend().map_err(|e| GeneratorError::Permanent(e.to_string()))?;
        OwnedContext::try_new(self.tokenizer.model_arc(), |model| {
            model.new_context(backend, params)
        })
        .map_err(|e| {
            GeneratorError::Permanent(format!(
                "llama.cpp could not create a context of {n_ctx} tokens for {}: {e}",
                self.path.display()
            ))
        })
    }
}

impl Generator for LlamaGenerator {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        let mut generations =
            self.run(std::slice::from_ref(request), 1, &mut |_, text| sink(text))?;
        Ok(generations.remove(0))
    }

    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.run(requests, self.parallel, &mut |_, _| {
            ControlFlow::Continue(())
        })
    }

    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.run(requests, self.parallel, sink)
    }

    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        let tokens = self
            .tokenizer
            .encode_prompt(prompt)
            .map_err(|e| GeneratorError::InvalidRequest(e.to_string()))?;
        Ok(u32::try_from(tokens.len()).unwrap_or(u32::MAX))
    }

    fn context_length(&self) -> u32 {
        self.context_length
    }

    fn kv_cache(&self) -> Option<Arc<KvCacheCounters>> {
        Some(self.kv.clone())
    }
}

/// One running sequence.
struct Active {
    request: usize,
    /// Tokens not yet fed to the model: the rest of the prompt, then the last sampled token.
    feed: VecDeque<LlamaToken>,
    position: i32,
    prompt_tokens: u32,
    completion_tokens: u32,
    budget: u32,
    ignore_eos: bool,
    picker: Picker,
    stream: TextStream,
    /// Index in the current batch of the token whose logits to sample from.
    logits_at: Option<i32>,
    started: Instant,
    first_token: Option<Instant>,
    /// `Some` when the request asked for log-probabilities.
    logprobs: Option<Vec<TokenLogprob>>,
    /// How many of the most likely tokens to report with each (with `logprobs`).
    top_logprobs: usize,
}

/// OpenAI's limit on `top_logprobs`.
const MAX_TOP_LOGPROBS: u32 = 20;

struct Engine {
    batch: LlamaBatch<'static>,
    slots: Vec<Option<Active>>,
    queue: VecDeque<usize>,
    done: Vec<Option<Generation>>,
    batch_size: usize,
}

impl Engine {
    /// Puts waiting requests into free slots. Returns false when nothing is left to do.
    fn admit(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        kv: &mut KvState,
        prompts: &[Vec<LlamaToken>],
        budgets: &[u32],
        requests: &[GenerationRequest],
        generator: &LlamaGenerator,
    ) -> bool {
        let n_vocab = generator.tokenizer.vocab_size() as i32;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let Some(request) = self.queue.pop_front() else {
                break;
            };
            let prompt = &prompts[request];
            let mut kept = match generator.prefix_reuse {
                true => kv.reusable(seq, prompt),
                false => 0,
            };
            // Positions from `kept` on go; llama.cpp refuses a partial removal for some
            // models (recurrent ones), and then the whole sequence is computed again.
            let cut = ctx.clear_kv_cache_seq(Some(seq as u32), Some(kept as u32), None);
            if kept > 0 && !matches!(cut, Ok(true)) {
                kept = 0;
                ctx.clear_kv_cache_seq(Some(seq as u32), None, None).ok();
            }
            kv.sequence(seq).truncate(kept);
            generator
                .kv
                .reused_prompt_tokens
                .fetch_add(kept as u64, Ordering::Relaxed);
            let params = &requests[request];
            *slot = Some(Active {
                request,
                feed: prompt[kept..].iter().copied().collect(),
                position: kept as i32,
                prompt_tokens: prompt.len() as u32,
                completion_tokens: 0,
                budget: budgets[request],
                ignore_eos: params.ignore_eos,
                picker: picker(&params.sampling, n_vocab, prompt),
                stream: TextStream::new(&params.stop),
                logits_at: None,
                started: Instant::now(),
                first_token: None,
                logprobs: params.logprobs.then(Vec::new),
                top_logprobs: params.top_logprobs.min(MAX_TOP_LOGPROBS) as usize,
            });
        }
        self.slots.iter().any(Option::is_some)
    }

    /// One llama.cpp decode call, then sampling for every sequence that got logits.
    fn step(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        kv: &mut KvState,
        tokenizer: &Tokenizer,
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<(), GeneratorError> {
        self.batch.clear();
        let mut room = self.batch_size;
        // Decoding sequences (one token each) go first so prompts never starve them.
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by_key(|&i| self.slots[i].as_ref().map_or(usize::MAX, |a| a.feed.len()));
        for seq in order {
            let Some(active) = self.slots[seq].as_mut() else {
                continue;
            };
            active.logits_at = None;
            let mut added = 0;
            while room > 0 {
                // A prompt's chunks end where a prompt computed whole from position 0 has
                // them end (multiples of the batch size), so a prompt continued from a reused
                // prefix meets llama.cpp's kernels in the same batches and row groups: its
                // greedy output stays the same.
                if added > 0 && (active.position as usize).is_multiple_of(self.batch_size) {
                    break;
                }
                let Some(token) = active.feed.pop_front() else {
                    break;
                };
                added += 1;
                let last = active.feed.is_empty();
                self.batch
                    .add(token, active.position, &[seq as i32], last)
                    .map_err(|e| GeneratorError::Permanent(e.to_string()))?;
                // Held once decoded; a failed decode makes the caller forget every slot.
                kv.sequence(seq).push(token);
                if last {
                    active.logits_at = Some(self.batch.n_tokens() - 1);
                }
                active.position += 1;
                room -= 1;
            }
        }
        ctx.decode(&mut self.batch)
            .map_err(|e| GeneratorError::Permanent(format!("llama.cpp decode failed: {e}")))?;

        for seq in 0..self.slots.len() {
            let Some(active) = self.slots[seq].as_mut() else {
                continue;
            };
            let Some(at) = active.logits_at else {
                continue;
            };
            let now = Instant::now();
            active.first_token.get_or_insert(now);
            let token = active.picker.pick(ctx, at);
            let finish = if !active.ignore_eos && tokenizer.is_end_of_generation(token.0 as u32) {
                Some(FinishReason::Stop)
            } else {
                active.completion_tokens += 1;
                let piece = tokenizer.piece(token, false);
                if let Some(logprobs) = &mut active.logprobs {
                    let logits = ctx.get_logits_ith(at);
                    let top = top_log_probabilities(logits, active.top_logprobs)
                        .into_iter()
                        .map(|(id, lp)| (tokenizer.piece(LlamaToken(id as i32), false), lp))
                        .collect();
                    logprobs.push(TokenLogprob {
                        bytes: piece.clone(),
                        logprob: log_probability(logits, token.0 as usize),
                        top,
                    });
                }
                let text = active.stream.push(&piece);
                if sink(active.request, text).is_break() {
                    Some(FinishReason::Cancelled)
                } else if active.stream.is_stopped() {
                    Some(FinishReason::Stop)
                } else if active.completion_tokens >= active.budget {
                    Some(FinishReason::Length)
                } else {
                    active.feed.push_back(token);
                    None
                }
            };
            if let Some(reason) = finish {
                let Some(mut active) = self.slots[seq].take() else {
                    continue;
                };
                let rest = active.stream.finish().to_string();
                if reason != FinishReason::Cancelled && !rest.is_empty() {
                    let _ = sink(active.request, &rest);
                }
                let request = active.request;
                self.done[request] = Some(finished(active, reason, now));
            }
        }
        Ok(())
    }
}

fn finished(active: Active, finish_reason: FinishReason, now: Instant) -> Generation {
    let first = active.first_token.unwrap_or(now);
    let text = active.stream.into_text();
    let mut logprobs = active.logprobs.unwrap_or_default();
    logprobs_within(&mut logprobs, text.len());
    Generation {
        text,
        usage: Usage {
            prompt_tokens: active.prompt_tokens,
            completion_tokens: active.completion_tokens,
        },
        finish_reason,
        prompt_time: first.saturating_duration_since(active.started),
        decode_time: now.saturating_duration_since(first).max(Duration::ZERO),
        logprobs,
    }
}

/// Loads one GGUF LoRA after checking it is an adapter for this model's architecture (llama.cpp
/// would otherwise fail with a bare null pointer, or apply mismatched tensors).
fn load_adapter(
    model: &mut LlamaModel,
    base: &GgufHeader,
    spec: &AdapterSpec,
) -> Result<LlamaLoraAdapter, ModelError> {
    let err = |reason: String| ModelError::Adapter {
        path: spec.path.clone(),
        reason,
    };
    let header = GgufHeader::read(&spec.path).map_err(|e| err(e.to_string()))?;
    if header.get_str("general.type") != Some("adapter")
        || header.get_str("adapter.type") != Some("lora")
    {
        return Err(err(
            "not a GGUF LoRA adapter (general.type must be \"adapter\" and adapter.type \"lora\"); `ragtune train` writes one as adapter.gguf".into(),
        ));
    }
    if header.architecture() != base.architecture() {
        return Err(err(format!(
            "it is for architecture {:?}, the model is {:?}",
            header.architecture().unwrap_or("?"),
            base.architecture().unwrap_or("?")
        )));
    }
    model.lora_adapter_init(&spec.path).map_err(|e| {
        err(format!(
            "llama.cpp refused it: {e} (trained for another base model?)"
        ))
    })
}

fn lock(m: &Mutex<LlamaLoraAdapter>) -> std::sync::MutexGuard<'_, LlamaLoraAdapter> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
