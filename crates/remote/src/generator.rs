//! A [`Generator`] over an OpenAI-compatible server: chat messages through `/chat/completions`,
//! raw text through `/completions`, always streamed (text reaches the sink as it arrives),
//! usage from the stream's last chunk.

use crate::Error;
use crate::client::{Client, Endpoint, Failure, Options, transport_failure};
use crate::sse::{Event, Events};
use ragtune_core::{
    FinishReason, Generation, GenerationRequest, Generator, GeneratorError, Prompt, TokenLogprob,
    TokenSink, Usage,
};
use serde_json::{Value, json};
use std::io::BufReader;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// The context length assumed when neither the caller nor the server says.
pub const FALLBACK_CONTEXT: u32 = 4096;

/// How prompt tokens are counted: not yet known, by the server's `/tokenize` (vLLM's shape,
/// also `ragtune serve`'s), or estimated because the server has none.
const COUNT_UNKNOWN: u8 = 0;
const COUNT_BY_SERVER: u8 = 1;
const COUNT_ESTIMATED: u8 = 2;

/// A model served elsewhere, behind the same seam as a local one.
pub struct RemoteGenerator {
    client: Client,
    context: u32,
    counting: AtomicU8,
}

impl RemoteGenerator {
    /// Asks the server which models it serves (`GET /models`): the model must be one of them,
    /// and its `max_model_len` (vLLM, `ragtune serve`) becomes the context length unless
    /// `options.context_length` sets one.
    pub fn connect(endpoint: Endpoint, options: Options) -> Result<Self, Error> {
        let client = Client::new(endpoint, options);
        let listed = list_models(&client)?;
        let entry = listed
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(&client.endpoint.model));
        if entry.is_none() {
            let served: Vec<&str> = listed
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .collect();
            return Err(Error::UnknownModel {
                model: client.endpoint.model.clone(),
                url: client.endpoint.base_url.clone(),
                served: served.join(", "),
            });
        }
        let served_context = entry
            .and_then(|m| m.get("max_model_len"))
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32);
        let context = match client.options.context_length {
            0 => served_context.unwrap_or(FALLBACK_CONTEXT),
            n => n,
        };
        Ok(Self {
            client,
            context,
            counting: AtomicU8::new(COUNT_UNKNOWN),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.client.endpoint
    }

    /// Whether prompt tokens are counted by the server (`Some(true)`), estimated
    /// (`Some(false)`), or not counted yet (`None`).
    pub fn counts_exactly(&self) -> Option<bool> {
        match self.counting.load(Ordering::Relaxed) {
            COUNT_BY_SERVER => Some(true),
            COUNT_ESTIMATED => Some(false),
            _ => None,
        }
    }

    fn body(&self, request: &GenerationRequest) -> (String, Value) {
        // vLLM's convention, and `ragtune serve`'s: an adapter is chosen by `model`.
        let model = request
            .adapter
            .as_deref()
            .unwrap_or(&self.client.endpoint.model);
        let (path, mut body) = match &request.prompt {
            Prompt::Chat(messages) => (
                "/chat/completions",
                json!({
                    "model": model,
                    "messages": messages
                        .iter()
                        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                        .collect::<Vec<_>>(),
                }),
            ),
            Prompt::Text(text) => ("/completions", json!({"model": model, "prompt": text})),
        };
        let s = &request.sampling;
        body["max_tokens"] = json!(request.max_tokens);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        body["seed"] = json!(s.seed);
        if s.is_greedy() {
            body["temperature"] = json!(0.0);
        } else {
            body["temperature"] = json!(s.temperature);
            if s.top_p < 1.0 {
                body["top_p"] = json!(s.top_p);
            }
            // Not OpenAI's, but vLLM's and llama.cpp's; sent only when asked for, since
            // OpenAI refuses fields it does not know.
            if s.top_k > 0 {
                body["top_k"] = json!(s.top_k);
            }
            if s.repeat_penalty != 1.0 {
                body["repetition_penalty"] = json!(s.repeat_penalty);
            }
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if request.ignore_eos {
            body["ignore_eos"] = json!(true);
        }
        if request.logprobs {
            match request.prompt {
                Prompt::Chat(_) => {
                    body["logprobs"] = json!(true);
                    body["top_logprobs"] = json!(request.top_logprobs);
                }
                Prompt::Text(_) => body["logprobs"] = json!(request.top_logprobs.min(5)),
            }
        }
        (self.client.endpoint.url(path), body)
    }

    /// One try at a generation, and whether the server sent its usage. A failure is transient
    /// only while nothing reached the sink: after that a retry would hand the caller the same
    /// text twice.
    fn attempt(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<(Generation, bool), Failure> {
        let (url, body) = self.body(request);
        let start = Instant::now();
        let response = self.client.post(&url, &body)?;
        let mut events = Events::new(BufReader::new(response.into_body().into_reader()));
        let mut out = Streamed::default();
        let mut first: Option<Instant> = None;
        loop {
            let event = match events.next_event() {
                Ok(event) => event,
                Err(e) => {
                    let e = transport_failure(&url, ureq::Error::Io(e));
                    return Err(if out.pieces == 0 {
                        e
                    } else {
                        Failure::Permanent(format!(
                            "the stream broke after {} pieces of text: {}",
                            out.pieces,
                            e.message()
                        ))
                    });
                }
            };
            let data = match event {
                Event::Data(data) => data,
                Event::Done => break,
                Event::End if out.finish.is_some() => break,
                Event::End => {
                    let message = format!("{url}: the stream ended before the answer did");
                    return Err(if out.pieces == 0 {
                        Failure::Transient(message, None)
                    } else {
                        Failure::Permanent(message)
                    });
                }
            };
            let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                Failure::Permanent(format!(
                    "{url} streamed something that is not JSON ({e}): {}",
                    data.chars().take(200).collect::<String>()
                ))
            })?;
            if let Some(error) = chunk.get("error") {
                let said = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned);
                return Err(Failure::Permanent(format!(
                    "{url} reported an error mid-stream: {said}"
                )));
            }
            let text = out.take(&chunk);
            if !text.is_empty() {
                first.get_or_insert_with(Instant::now);
                if sink(&text).is_break() {
                    out.finish = Some(FinishReason::Cancelled);
                    // Dropping the response closes the connection: the server stops.
                    break;
                }
            }
        }
        let end = Instant::now();
        let first = first.unwrap_or(end);
        let sent_usage = out.usage.is_some();
        let generation = Generation {
            text: out.text,
            // Without the server's usage, the completion as the pieces streamed (one token
            // each on vLLM and llama.cpp's server); the prompt is counted by the caller, once
            // this attempt's slot is free (counting takes a slot of its own).
            usage: out.usage.unwrap_or(Usage {
                prompt_tokens: 0,
                completion_tokens: out.pieces,
            }),
            finish_reason: out.finish.unwrap_or(FinishReason::Stop),
            prompt_time: first - start,
            decode_time: end - first,
            logprobs: out.logprobs,
        };
        Ok((generation, sent_usage))
    }

    fn tokenize(&self, prompt: &Prompt) -> Result<u32, Failure> {
        let model = &self.client.endpoint.model;
        let body = match prompt {
            Prompt::Text(text) => json!({"model": model, "prompt": text}),
            Prompt::Chat(messages) => json!({
                "model": model,
                "messages": messages
                    .iter()
                    .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
                    .collect::<Vec<_>>(),
                "add_generation_prompt": true,
            }),
        };
        let url = self.client.endpoint.root_url("/tokenize");
        self.client.with_retries(|c| {
            let reply = c.post_json(&url, &body)?;
            reply
                .get("count")
                .and_then(Value::as_u64)
                .or_else(|| {
                    reply
                        .get("tokens")
                        .and_then(Value::as_array)
                        .map(|t| t.len() as u64)
                })
                .map(|n| n as u32)
                .ok_or_else(|| Failure::Invalid(format!("{url} answered without a token count")))
        })
    }
}

/// Prompt tokens without the model's tokenizer: one per 3 bytes (English runs near 4 bytes a
/// token in today's vocabularies, so this errs high and prompts stay inside the context), and a
/// few per chat message for the template's markup.
pub fn estimate_tokens(prompt: &Prompt) -> u32 {
    match prompt {
        Prompt::Text(text) => estimate_text_tokens(text),
        Prompt::Chat(messages) => {
            3 + messages
                .iter()
                .map(|m| estimate_text_tokens(&m.content) + 4)
                .sum::<u32>()
        }
    }
}

pub(crate) fn estimate_text_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(3)).unwrap_or(u32::MAX)
}

fn list_models(client: &Client) -> Result<Vec<Value>, Error> {
    let url = client.endpoint.url("/models");
    client
        .with_retries(|c| {
            let reply = c.get_json(&url)?;
            reply
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| {
                    Failure::Permanent(format!("{url} answered without a model list (\"data\")"))
                })
        })
        .map_err(|f| Error::Unreachable {
            url: client.endpoint.base_url.clone(),
            why: f.message().to_owned(),
        })
}

/// What a stream has brought so far.
#[derive(Default)]
struct Streamed {
    text: String,
    pieces: u32,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    logprobs: Vec<TokenLogprob>,
}

impl Streamed {
    /// Takes in one chunk; returns its new text.
    fn take(&mut self, chunk: &Value) -> String {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
            self.usage = Some(Usage {
                prompt_tokens: n("prompt_tokens"),
                completion_tokens: n("completion_tokens"),
            });
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return String::new();
        };
        match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => self.finish = Some(FinishReason::Length),
            Some(_) => self.finish = Some(FinishReason::Stop),
            None => {}
        }
        if let Some(lp) = choice.get("logprobs").filter(|l| !l.is_null()) {
            self.logprobs.extend(parse_logprobs(lp));
        }
        let text = choice
            .pointer("/delta/content")
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !text.is_empty() {
            self.text.push_str(text);
            self.pieces += 1;
        }
        text.to_owned()
    }
}

/// Token log-probabilities in either of OpenAI's shapes: chat's `content: [{token, logprob,
/// bytes, top_logprobs}]` or completions' `tokens`, `token_logprobs`, `top_logprobs: [{token:
/// logprob}]`.
fn parse_logprobs(lp: &Value) -> Vec<TokenLogprob> {
    let bytes = |entry: &Value| -> Vec<u8> {
        match entry.get("bytes").and_then(Value::as_array) {
            Some(b) => b
                .iter()
                .filter_map(Value::as_u64)
                .map(|b| b as u8)
                .collect(),
            None => entry
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        }
    };
    let logprob = |entry: &Value| {
        entry
            .get("logprob")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NEG_INFINITY) as f32
    };
    if let Some(content) = lp.get("content").and_then(Value::as_array) {
        return content
            .iter()
            .map(|entry| TokenLogprob {
                bytes: bytes(entry),
                logprob: logprob(entry),
                top: entry
                    .get("top_logprobs")
                    .and_then(Value::as_array)
                    .map(|top| top.iter().map(|t| (bytes(t), logprob(t))).collect())
                    .unwrap_or_default(),
            })
            .collect();
    }
    let (Some(tokens), Some(values)) = (
        lp.get("tokens").and_then(Value::as_array),
        lp.get("token_logprobs").and_then(Value::as_array),
    ) else {
        return Vec::new();
    };
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    tokens
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (token, value))| {
            let mut top: Vec<(Vec<u8>, f32)> = tops
                .and_then(|t| t.get(i))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(t, v)| {
                            (
                                t.as_bytes().to_vec(),
                                v.as_f64().unwrap_or(f64::NEG_INFINITY) as f32,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            TokenLogprob {
                bytes: token.as_str().unwrap_or_default().as_bytes().to_vec(),
                logprob: value.as_f64().unwrap_or(f64::NEG_INFINITY) as f32,
                top,
            }
        })
        .collect()
}

fn generator_error(f: Failure) -> GeneratorError {
    match f {
        Failure::Transient(m, _) => GeneratorError::Transient(m),
        Failure::Invalid(m) => GeneratorError::InvalidRequest(m),
        Failure::Permanent(m) => GeneratorError::Permanent(m),
    }
}

/// What a worker of a batch sends the calling thread.
enum Message {
    Text(usize, String),
    Done(usize, Result<Generation, GeneratorError>),
}

impl Generator for RemoteGenerator {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        let (mut generation, sent_usage) = self
            .client
            .with_retries(|_| self.attempt(request, &mut *sink))
            .map_err(generator_error)?;
        if !sent_usage {
            generation.usage.prompt_tokens = self.count_prompt_tokens(&request.prompt)?;
        }
        Ok(generation)
    }

    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        self.generate_batch_streaming(requests, &mut |_, _| ControlFlow::Continue(()))
    }

    /// Sends up to `concurrency` requests at once (the server batches them); text is handed
    /// to `sink` on the calling thread. The first failure cancels the rest.
    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        let workers = self
            .client
            .options
            .concurrency
            .clamp(1, requests.len().max(1));
        let next = AtomicUsize::new(0);
        let cancelled: Vec<AtomicBool> = requests.iter().map(|_| AtomicBool::new(false)).collect();
        let mut results: Vec<Option<Result<Generation, GeneratorError>>> =
            requests.iter().map(|_| None).collect();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, cancelled) = (&next, &cancelled);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(request) = requests.get(i) else {
                            break;
                        };
                        let result = self.generate(request, &mut |text| {
                            if cancelled[i].load(Ordering::Relaxed)
                                || tx.send(Message::Text(i, text.to_owned())).is_err()
                            {
                                return ControlFlow::Break(());
                            }
                            ControlFlow::Continue(())
                        });
                        if tx.send(Message::Done(i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for message in rx {
                match message {
                    Message::Text(i, text) => {
                        if sink(i, &text).is_break() {
                            cancelled[i].store(true, Ordering::Relaxed);
                        }
                    }
                    Message::Done(i, result) => {
                        if result.is_err() {
                            cancelled
                                .iter()
                                .for_each(|c| c.store(true, Ordering::Relaxed));
                            // No request not yet started starts now.
                            next.store(requests.len(), Ordering::Relaxed);
                        }
                        results[i] = Some(result);
                    }
                }
            }
        });
        // Text for a request the caller cancelled may have been in flight: its result says
        // cancelled whatever the server finished with.
        let mut out = Vec::with_capacity(requests.len());
        let mut first_error = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Some(Ok(mut g)) => {
                    if cancelled[i].load(Ordering::Relaxed) {
                        g.finish_reason = FinishReason::Cancelled;
                    }
                    out.push(g);
                }
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// By the server's `/tokenize` when it has one (vLLM, `ragtune serve`), else
    /// [`estimate_tokens`]; which one is decided by the first call.
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        if self.counting.load(Ordering::Relaxed) != COUNT_ESTIMATED {
            match self.tokenize(prompt) {
                Ok(n) => {
                    self.counting.store(COUNT_BY_SERVER, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(Failure::Permanent(_) | Failure::Invalid(_))
                    if self.counting.load(Ordering::Relaxed) == COUNT_UNKNOWN =>
                {
                    self.counting.store(COUNT_ESTIMATED, Ordering::Relaxed);
                }
                Err(f) => return Err(generator_error(f)),
            }
        }
        Ok(estimate_tokens(prompt))
    }

    fn context_length(&self) -> u32 {
        self.context
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragtune_core::ChatMessage;

    #[test]
    fn chat_and_completion_logprobs_parse_alike() {
        let chat = json!({"content": [
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
             "top_logprobs": [{"token": "Hi", "logprob": -0.5}, {"token": "Yo", "logprob": -1.5}]}
        ]});
        let completion = json!({"tokens": ["Hi"], "token_logprobs": [-0.5],
            "top_logprobs": [{"Yo": -1.5, "Hi": -0.5}]});
        let a = parse_logprobs(&chat);
        let b = parse_logprobs(&completion);
        assert_eq!(a, b);
        assert_eq!(a[0].top[1], (b"Yo".to_vec(), -1.5));
    }

    #[test]
    fn chunks_bring_text_finish_and_usage() {
        let mut s = Streamed::default();
        assert_eq!(
            s.take(&json!({"choices": [{"delta": {"role": "assistant"}}]})),
            ""
        );
        assert_eq!(
            s.take(&json!({"choices": [{"delta": {"content": "Hel"}}]})),
            "Hel"
        );
        assert_eq!(
            s.take(&json!({"choices": [{"text": "lo", "finish_reason": "length"}]})),
            "lo"
        );
        s.take(&json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}));
        assert_eq!(s.text, "Hello");
        assert_eq!(s.pieces, 2);
        assert_eq!(s.finish, Some(FinishReason::Length));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 2
            })
        );
    }

    #[test]
    fn estimates_err_high_for_english() {
        let text = "The quick brown fox jumps over the lazy dog.";
        // 10 tokens in Qwen2.5's and SmolLM2's vocabularies.
        assert!(estimate_tokens(&Prompt::Text(text.into())) >= 10);
        let chat = Prompt::Chat(vec![
            ChatMessage::system("Be brief."),
            ChatMessage::user(text),
        ]);
        assert!(estimate_tokens(&chat) > estimate_tokens(&Prompt::Text(text.into())));
    }
}
