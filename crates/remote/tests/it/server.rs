//! A scripted HTTP/1.1 server: each connection gets the next reply of the script, one request
//! per connection, and every request is recorded.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub enum Reply {
    /// A status line, headers and a body.
    Status(u16, Vec<(String, String)>, String),
    /// A chat completion streamed as server-sent events, one chunk per piece; `finish` sends a
    /// finish reason, usage and `[DONE]`, otherwise the connection just closes.
    Stream(Vec<String>, bool),
    /// These `data:` payloads, then `[DONE]`.
    Events(Vec<String>),
    /// Streams the request's last message back after a pause.
    Echo(Duration),
    /// Reads the request and never answers.
    Hang,
}

impl Reply {
    pub fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Reply::Status(code, headers, body.to_owned())
    }
    pub fn json(code: u16, body: Value) -> Self {
        Reply::Status(
            code,
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string(),
        )
    }
    pub fn stream(pieces: &[&str], finish: bool) -> Self {
        Reply::Stream(pieces.iter().map(|p| p.to_string()).collect(), finish)
    }
}

pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

pub struct Server {
    addr: String,
    shared: Arc<Shared>,
}

impl Server {
    pub fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for (reply, stream) in script.into_iter().zip(listener.incoming()) {
                let s = s.clone();
                std::thread::spawn(move || serve(stream.unwrap(), reply, &s));
            }
        });
        Self { addr, shared }
    }

    pub fn url(&self) -> &str {
        &self.addr
    }

    pub fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.shared.requests.lock().unwrap()
    }

    pub fn most_in_flight(&self) -> usize {
        self.shared.most.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &TcpStream) -> Request {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Request {
        path,
        headers,
        body,
    }
}

fn chunk(content: &str) -> String {
    let c = serde_json::json!({"choices": [{"index": 0, "delta": {"content": content}}]});
    format!("data: {c}\n\n")
}

fn stream_head() -> &'static str {
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
}

fn finish() -> String {
    let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage =
        serde_json::json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}});
    format!("data: {end}\n\ndata: {usage}\n\ndata: [DONE]\n\n")
}

fn serve(mut stream: TcpStream, reply: Reply, shared: &Shared) {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most.fetch_max(now, Ordering::SeqCst);
    let request = read_request(&stream);
    let last_message = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|b| {
            b["messages"].as_array()?.last()?["content"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    shared.requests.lock().unwrap().push(request);
    // Out of flight before the answer leaves: the client may send its next request at once.
    let answer = match reply {
        Reply::Status(code, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            format!("{head}\r\n{body}")
        }
        Reply::Stream(pieces, done) => {
            let mut out = stream_head().to_owned();
            pieces.iter().for_each(|p| out.push_str(&chunk(p)));
            if done {
                out.push_str(&finish());
            }
            out
        }
        Reply::Events(payloads) => {
            let mut out = stream_head().to_owned();
            for p in payloads {
                out.push_str(&format!("data: {p}\n\n"));
            }
            out.push_str("data: [DONE]\n\n");
            out
        }
        Reply::Echo(pause) => {
            std::thread::sleep(pause);
            format!("{}{}{}", stream_head(), chunk(&last_message), finish())
        }
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(5));
            String::new()
        }
    };
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let _ = stream.write_all(answer.as_bytes());
}
