//! The HTTP side shared by the generator and the embedder: where the server is, the key, the
//! timeouts, retries with backoff on transient failures only, and a limit on requests in flight.

use crate::Error;
use ragtune_core::rng::SplitMix64;
use serde_json::Value;
use std::fmt;
use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A model on an OpenAI-compatible server: `openai:NAME@URL`, where URL is what the `openai`
/// SDK calls the base URL (`https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The model's name on that server (its `model` field).
    pub model: String,
    /// The base URL, without a trailing slash.
    pub base_url: String,
}

impl Endpoint {
    /// The prefix that marks a remote model where a model name or path is accepted.
    pub const PREFIX: &'static str = "openai:";

    /// Whether `spec` names a remote model (and should be parsed by [`Endpoint::parse`]).
    pub fn is_remote(spec: &str) -> bool {
        spec.starts_with(Self::PREFIX)
    }

    /// Parses `openai:NAME@URL`.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Spec {
            spec: spec.to_owned(),
            why: why.to_owned(),
        };
        let rest = spec
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| bad("it does not start with openai:"))?;
        // The URL starts at the last "@http": a model name may hold an '@', a URL's scheme not.
        let at = rest
            .rfind("@http://")
            .or_else(|| rest.rfind("@https://"))
            .ok_or_else(|| bad("expected openai:NAME@URL with an http:// or https:// URL"))?;
        let (model, url) = (&rest[..at], &rest[at + 1..]);
        if model.is_empty() {
            return Err(bad("the model name before '@' is empty"));
        }
        let base_url = url.trim_end_matches('/');
        let host = base_url.split_once("://").map_or("", |(_, h)| h);
        if host.is_empty() || host.starts_with('/') {
            return Err(bad("the URL has no host"));
        }
        Ok(Self {
            model: model.to_owned(),
            base_url: base_url.to_owned(),
        })
    }

    /// `openai:NAME@URL` again.
    pub fn spec(&self) -> String {
        format!("{}{}@{}", Self::PREFIX, self.model, self.base_url)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A path on the server's root: vLLM and llama.cpp's server answer `/tokenize` beside
    /// `/v1`, not under it.
    pub(crate) fn root_url(&self, path: &str) -> String {
        let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
        format!("{root}{path}")
    }
}

/// An API key. Never printed: `Debug` shows stars.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key in environment variable `var`, if it is set and not empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| Self(k.trim().to_owned()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The environment variable the key is read from unless told otherwise. Not `OPENAI_API_KEY`:
/// a key for one provider must not travel to whichever server a URL names.
pub const DEFAULT_KEY_VAR: &str = "RAGTUNE_REMOTE_API_KEY";

/// How a remote model is reached.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sent as `Authorization: Bearer KEY`; `None` sends no header (local servers).
    pub api_key: Option<ApiKey>,
    /// Where the key came from, for error messages (the variable's name, never the key).
    pub api_key_var: String,
    /// Setting up a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// From sending a request to the response's headers: a busy server queues and reads the
    /// prompt in this time.
    pub response_timeout: Duration,
    /// The longest silence while a response streams in.
    pub read_timeout: Duration,
    /// How many times a transient failure (connection refused or reset, timeout, 408, 429,
    /// 500, 502, 503, 504) is retried before giving up. Other failures are not retried.
    pub retries: u32,
    /// The first retry waits this long, each further one twice as long (with jitter, at most
    /// 30 s); a `Retry-After` header overrides it.
    pub backoff: Duration,
    /// Requests in flight at once, across every caller of this model.
    pub concurrency: usize,
    /// The context length to assume (0: ask the server's `/models`, else 4,096).
    pub context_length: u32,
    /// Texts per embeddings request.
    pub embed_batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: ApiKey::from_env(DEFAULT_KEY_VAR),
            api_key_var: DEFAULT_KEY_VAR.to_owned(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_millis(500),
            concurrency: 4,
            context_length: 0,
            embed_batch: 64,
        }
    }
}

/// A failed exchange, classified for the retry loop.
#[derive(Debug)]
pub(crate) enum Failure {
    /// May pass on a retry; the server may have said when (`Retry-After`).
    Transient(String, Option<Duration>),
    /// Will not pass on a retry.
    Permanent(String),
    /// The server answered 400 (or 422): the request itself is wrong.
    Invalid(String),
}

impl Failure {
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Transient(m, _) | Failure::Permanent(m) | Failure::Invalid(m) => m,
        }
    }
}

/// A limit on requests in flight (a counting semaphore).
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Slot<'_> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= self.max {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= 1;
        self.0.freed.notify_one();
    }
}

pub(crate) struct Client {
    pub(crate) endpoint: Endpoint,
    pub(crate) options: Options,
    agent: ureq::Agent,
    slots: Slots,
    jitter: Mutex<SplitMix64>,
}

/// The most of an error body kept for a message.
const ERROR_BODY_BYTES: u64 = 64 * 1024;

impl Client {
    pub(crate) fn new(endpoint: Endpoint, options: Options) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.response_timeout))
            .timeout_per_read(Some(options.read_timeout))
            .user_agent(concat!("ragtune/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            slots: Slots {
                used: Mutex::new(0),
                freed: Condvar::new(),
                max: options.concurrency.max(1),
            },
            endpoint,
            options,
            agent,
            jitter: Mutex::new(SplitMix64::new(seed)),
        }
    }

    /// Runs `attempt` until it succeeds, fails permanently, or has failed transiently
    /// `retries + 1` times, waiting with exponential backoff in between. Each attempt holds
    /// one of the `concurrency` slots; waiting does not.
    pub(crate) fn with_retries<T>(
        &self,
        mut attempt: impl FnMut(&Self) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut tries = 0;
        loop {
            let result = {
                let _slot = self.slots.take();
                attempt(self)
            };
            match result {
                Err(Failure::Transient(_, retry_after)) if tries < self.options.retries => {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(tries));
                    std::thread::sleep(wait.min(Duration::from_secs(30)));
                    tries += 1;
                }
                Err(Failure::Transient(message, _)) if tries > 0 => {
                    return Err(Failure::Transient(
                        format!("{message} (gave up after {} attempts)", tries + 1),
                        None,
                    ));
                }
                other => return other,
            }
        }
    }

    fn backoff(&self, tries: u32) -> Duration {
        let base = self.options.backoff.saturating_mul(1 << tries.min(6));
        let r = self
            .jitter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_f64();
        // +-25%, so that clients that failed together do not retry together.
        base.mul_f64(0.75 + 0.5 * r)
    }

    /// POSTs `body` as JSON to `url`; a success status hands the response back, any other
    /// status becomes a classified failure carrying the server's message.
    pub(crate) fn post(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut request = self.agent.post(url);
        if let Some(key) = &self.options.api_key {
            request = request.header("Authorization", &format!("Bearer {}", key.0));
        }
        let response = request
            .send_json(body)
            .map_err(|e| transport_failure(url, e))?;
        self.check_status(url, response)
    }

    /// GETs `url` (see [`Client::post`]).
    pub(crate) fn get(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut request = self.agent.get(url);
        if let Some(key) = &self.options.api_key {
            request = request.header("Authorization", &format!("Bearer {}", key.0));
        }
        let response = request.call().map_err(|e| transport_failure(url, e))?;
        self.check_status(url, response)
    }

    /// POSTs `body` to `url` and reads the JSON reply.
    pub(crate) fn post_json(&self, url: &str, body: &Value) -> Result<Value, Failure> {
        json_of(url, self.post(url, body)?)
    }

    /// GETs `url` and reads the JSON reply.
    pub(crate) fn get_json(&self, url: &str) -> Result<Value, Failure> {
        json_of(url, self.get(url)?)
    }

    fn check_status(
        &self,
        url: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let mut text = String::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(ERROR_BODY_BYTES)
            .read_to_string(&mut text);
        let said = server_message(&text);
        let message = format!("{url} answered HTTP {status}: {said}");
        Err(match status {
            408 | 409 | 429 | 500 | 502 | 503 | 504 => Failure::Transient(message, retry_after),
            400 | 422 => Failure::Invalid(message),
            401 | 403 => Failure::Permanent(format!(
                "{message} (the server refused the API key: set it in ${}{})",
                self.options.api_key_var,
                if self.options.api_key.is_none() {
                    ", which is not set"
                } else {
                    ""
                }
            )),
            404 => Failure::Permanent(format!(
                "{message} (is the URL the API's base, like the openai SDK's base_url, \
                 usually ending in /v1, and does the server serve model {}?)",
                self.endpoint.model
            )),
            _ => Failure::Permanent(message),
        })
    }
}

/// The most a JSON reply may hold (a batch of embeddings as text runs to megabytes).
const JSON_REPLY_BYTES: u64 = 256 << 20;

fn json_of(url: &str, response: ureq::http::Response<ureq::Body>) -> Result<Value, Failure> {
    response
        .into_body()
        .with_config()
        .limit(JSON_REPLY_BYTES)
        .read_json()
        .map_err(|e| transport_failure(url, e))
}

/// A failure to talk to the server at all (or mid-response), classified.
pub(crate) fn transport_failure(url: &str, e: ureq::Error) -> Failure {
    let message = format!("{url}: {e}");
    match e {
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Io(_) => {
            Failure::Transient(message, None)
        }
        ureq::Error::HostNotFound => Failure::Permanent(format!(
            "{message} (check the host name in the model's URL)"
        )),
        _ => Failure::Permanent(message),
    }
}

/// The message in an OpenAI-shaped error body (`{"error": {"message": ...}}`), or the body's
/// start.
fn server_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let m = v.pointer("/error/message").or_else(|| v.get("error"));
        if let Some(Value::String(s)) = m {
            return s.clone();
        }
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_owned();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "(no body)".to_owned();
    }
    trimmed.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_a_model_and_a_base_url() {
        let e = Endpoint::parse("openai:gpt-4o-mini@https://api.openai.com/v1/").unwrap();
        assert_eq!(e.model, "gpt-4o-mini");
        assert_eq!(e.base_url, "https://api.openai.com/v1");
        assert_eq!(
            e.url("/chat/completions"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(e.root_url("/tokenize"), "https://api.openai.com/tokenize");
        assert_eq!(e.spec(), "openai:gpt-4o-mini@https://api.openai.com/v1");
        let at = Endpoint::parse("openai:org@name@http://10.0.0.2:8000/v1").unwrap();
        assert_eq!(at.model, "org@name");
        for bad in [
            "gpt@http://x/v1",
            "openai:gpt",
            "openai:@http://x/v1",
            "openai:gpt@ftp://x",
            "openai:gpt@http://",
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn keys_are_never_printed() {
        let k = ApiKey::new("sk-secret");
        assert!(!format!("{k:?}").contains("secret"));
        let o = Options {
            api_key: Some(k),
            ..Options::default()
        };
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn server_messages_come_out_of_openai_error_bodies() {
        assert_eq!(
            server_message(r#"{"error": {"message": "no such model", "type": "x"}}"#),
            "no such model"
        );
        assert_eq!(server_message(r#"{"error": "busy"}"#), "busy");
        assert_eq!(server_message("  "), "(no body)");
        assert_eq!(server_message("Bad Gateway"), "Bad Gateway");
    }
}
