//! The `Generator` seam: prompt or chat messages in, text and usage counts out.
//!
//! The local llama.cpp runtime implements it today; a remote OpenAI-compatible server can be put
//! behind it later without the callers noticing.

use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation, as the OpenAI chat format has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// What the model continues: raw text, or a conversation rendered with the model's own chat
/// template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// How the next token is picked. `temperature == 0` means greedy decoding; the other knobs
/// then have no effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability adds up to p (1.0 = off).
    pub top_p: f32,
    /// Divide the logits of recently seen tokens by this (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: u32,
    pub seed: u32,
}

impl SamplingParams {
    pub const GREEDY: SamplingParams = SamplingParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: 0,
    };

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::GREEDY
    }
}

/// One generation to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// Generation ends before the first occurrence of any of these strings (not included in
    /// the text). End-of-turn tokens of the model always end it.
    pub stop: Vec<String>,
    /// Keep generating past end-of-turn tokens until `max_tokens` (benchmarks use it to decode
    /// a fixed number of tokens).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Report the log-probability of every generated token ([`Generation::logprobs`]); off by
    /// default because it costs a pass over the vocabulary per token.
    #[serde(default)]
    pub logprobs: bool,
    /// With `logprobs`: also report this many of the most likely tokens at each position
    /// ([`TokenLogprob::top`]; OpenAI allows up to 20).
    #[serde(default)]
    pub top_logprobs: u32,
    /// The LoRA adapter (by the name it was loaded under) to apply to this request; `None`
    /// runs the base model. Adapters switch per request over one loaded base.
    #[serde(default)]
    pub adapter: Option<String>,
}

impl GenerationRequest {
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
            logprobs: false,
            top_logprobs: 0,
            adapter: None,
        }
    }
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }
    pub fn with_sampling(mut self, sampling: SamplingParams) -> Self {
        self.sampling = sampling;
        self
    }
    pub fn with_stop(mut self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }
}

/// Token counts, as an OpenAI-compatible API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total_tokens(&self) -> u32 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-turn token, or the text reached a stop string.
    Stop,
    /// `max_tokens` was reached, or the context was full.
    Length,
    /// The token sink asked to stop.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// Time spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Time spent producing the completion tokens.
    pub decode_time: Duration,
    /// When the request asked for them: each completion token with the natural log of the
    /// probability the model gave it (from the raw logits, before sampling adjustments), in
    /// order, up to the end of the text (a stop string cuts them where it cuts the text).
    /// Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
}

/// One completion token and its log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's bytes: a token may hold part of a UTF-8 character.
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first, as many as the request's
    /// `top_logprobs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(Vec<u8>, f32)>,
}

impl TokenLogprob {
    /// The token as text (an incomplete UTF-8 character becomes U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Keeps the tokens whose text starts inside the first `len` bytes of the generated text: a
/// stop string removed from the text takes the tokens that only held it.
pub fn logprobs_within(tokens: &mut Vec<TokenLogprob>, len: usize) {
    let mut start = 0;
    tokens.retain(|t| {
        let keep = start < len;
        start += t.bytes.len();
        keep
    });
}

impl Generation {
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.usage.prompt_tokens, self.prompt_time)
    }
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.usage.completion_tokens, self.decode_time)
    }
    /// The geometric mean of the completion tokens' probabilities, a confidence in 0..=1;
    /// `None` without log-probabilities.
    pub fn mean_token_probability(&self) -> Option<f32> {
        if self.logprobs.is_empty() {
            return None;
        }
        let mean = self
            .logprobs
            .iter()
            .map(|t| f64::from(t.logprob))
            .sum::<f64>()
            / self.logprobs.len() as f64;
        Some(mean.exp() as f32)
    }
}

fn rate(tokens: u32, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    }
}

/// Receives text as it is generated; `ControlFlow::Break` cancels the generation.
pub type TokenSink<'a> = &'a mut dyn FnMut(&str) -> ControlFlow<()>;

/// Why a generation could not run. Says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error(
        "the prompt is {prompt_tokens} tokens but the context holds {context} \
         (shorten the prompt or raise --ctx up to the model's training context)"
    )]
    ContextOverflow { prompt_tokens: u32, context: u32 },
    #[error("the request is invalid: {0}")]
    InvalidRequest(String),
    /// A failure that may pass on a retry (a busy server, a dropped connection).
    #[error("transient generator failure (retrying may help): {0}")]
    Transient(String),
    /// A failure a retry will not fix.
    #[error("{0}")]
    Permanent(String),
}

impl GeneratorError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, GeneratorError::Transient(_))
    }
}

/// Something that continues prompts: a local model or a remote server.
///
/// Synchronous on purpose: servers wrap it in an engine thread or `spawn_blocking`.
pub trait Generator: Send + Sync {
    /// Runs one request, handing text to `sink` as it is produced.
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError>;

    /// Runs several requests; implementations batch them where they can. Results come back in
    /// the order of the requests.
    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        requests
            .iter()
            .map(|r| self.generate(r, &mut |_| ControlFlow::Continue(())))
            .collect()
    }

    /// Runs several requests together, handing request `i`'s text to `sink(i, text)` as it is
    /// produced; a `Break` stops that request only (it finishes as cancelled). Results come
    /// back in the order of the requests. The default runs them one after another.
    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| self.generate(r, &mut |text| sink(i, text)))
            .collect()
    }

    /// How many tokens the prompt of `request` takes, chat template applied.
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError>;

    /// The most tokens (prompt and completion together) one request can hold.
    fn context_length(&self) -> u32;

    /// Counters of what the generator keeps in memory between requests, shared so that a
    /// server can report them from another thread (`/metrics`); `None` for a generator that
    /// keeps nothing (a remote server, a test double).
    fn kv_cache(&self) -> Option<Arc<KvCacheCounters>> {
        None
    }
}

/// What a generator's contexts hold, updated as it runs. A local model keeps a context (its KV
/// cache and compute buffers) between requests rather than building one per request; these
/// say how much the contexts hold, so a server's memory can be told apart from a leak.
#[derive(Debug, Default)]
pub struct KvCacheCounters {
    /// Contexts created over the generator's life (each allocates a KV cache).
    pub contexts_created: AtomicU64,
    /// Bytes of KV cache in the contexts alive: those kept for the next requests and those in
    /// use.
    pub bytes: AtomicU64,
    /// Prompt tokens whose keys and values came from a kept context instead of being computed.
    pub reused_prompt_tokens: AtomicU64,
}

impl KvCacheCounters {
    pub fn contexts_created(&self) -> u64 {
        self.contexts_created.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn reused_prompt_tokens(&self) -> u64 {
        self.reused_prompt_tokens.load(Ordering::Relaxed)
    }
}

impl<G: Generator + ?Sized> Generator for &G {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        (**self).generate(request, sink)
    }

    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        (**self).generate_batch(requests)
    }

    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        (**self).generate_batch_streaming(requests, sink)
    }

    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        (**self).count_prompt_tokens(prompt)
    }

    fn context_length(&self) -> u32 {
        (**self).context_length()
    }

    fn kv_cache(&self) -> Option<Arc<KvCacheCounters>> {
        (**self).kv_cache()
    }
}

/// A generator with an adapter applied to every request that names none (`--adapter` on the
/// command line, an adapter picked by a server request's `model`).
pub struct WithAdapter<G> {
    pub inner: G,
    pub adapter: Option<String>,
}

impl<G> WithAdapter<G> {
    fn request(&self, request: &GenerationRequest) -> GenerationRequest {
        let mut request = request.clone();
        if request.adapter.is_none() {
            request.adapter.clone_from(&self.adapter);
        }
        request
    }
}

impl<G: Generator> Generator for WithAdapter<G> {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        self.inner.generate(&self.request(request), sink)
    }

    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        let requests: Vec<_> = requests.iter().map(|r| self.request(r)).collect();
        self.inner.generate_batch(&requests)
    }

    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        let requests: Vec<_> = requests.iter().map(|r| self.request(r)).collect();
        self.inner.generate_batch_streaming(&requests, sink)
    }

    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        self.inner.count_prompt_tokens(prompt)
    }

    fn context_length(&self) -> u32 {
        self.inner.context_length()
    }

    fn kv_cache(&self) -> Option<Arc<KvCacheCounters>> {
        self.inner.kv_cache()
    }
}
