//! `ragtune serve` under load, end to end: the real binary, SmolLM2 answering RAG questions
//! over SQuAD paragraphs, driven over HTTP.
//!
//! 1. One client at a time: latency, requests/s, and the HTTP layer's share of the latency
//!    (the client's time against the engine's `Server-Timing`, which is the library call).
//! 2. CLIENTS clients at once while FILES files are uploaded and ingested: latency p50/p99,
//!    requests/s, errors; then the knowledge base must hold every file once (`kb check` clean,
//!    and as many chunks as a fresh `ragtune ingest` of the same files).
//! 3. RSS of the server at the start and after REQUESTS requests in all.
//!
//! ```sh
//! cargo bench -p ragtune-cli --bench serve_load
//! SEQUENTIAL=16 CONCURRENT=64 CLIENTS=16 FILES=100 REQUESTS=1000 MAX_TOKENS=16 ...
//! ```
//!
//! Prints a JSON report on stdout (BENCH_OUT=FILE writes it there too). Run it on an idle
//! machine: the model takes every core.

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One HTTP/1.1 request: status, headers (lowercase), body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(900)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, head, raw[split + 4..].to_vec()))
}

fn get_json(addr: &str, path: &str) -> Result<Value> {
    let (status, _, body) = http(addr, "GET", path, "application/json", b"")?;
    ensure!(status == 200, "GET {path}: {status}");
    Ok(serde_json::from_slice(&body)?)
}

/// One RAG question: (latency, engine milliseconds from Server-Timing), or the error.
fn ask(addr: &str, question: &str, max_tokens: usize) -> Result<(Duration, f64)> {
    let body = json!({
        "model": "rag/docs",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
    })
    .to_string();
    let started = Instant::now();
    let (status, head, body) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        "application/json",
        body.as_bytes(),
    )?;
    let took = started.elapsed();
    ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let engine = head
        .lines()
        .find_map(|l| l.strip_prefix("server-timing: engine;dur="))
        .and_then(|v| v.trim().parse().ok())
        .context("no Server-Timing")?;
    Ok((took, engine))
}

fn upload(addr: &str, name: &str, content: &[u8]) -> Result<()> {
    let boundary = "ragtune-bench-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, _, text) = http(
        addr,
        "POST",
        "/v1/kb/docs/files",
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    )?;
    ensure!(
        status == 202,
        "upload {name}: {status} {}",
        String::from_utf8_lossy(&text)
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(latencies: &[Duration], wall: Duration, errors: usize) -> Value {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    json!({
        "requests": latencies.len(),
        "errors": errors,
        "p50_ms": percentile(&ms, 0.5),
        "p99_ms": percentile(&ms, 0.99),
        "wall_s": wall.as_secs_f64(),
        "requests_per_s": latencies.len() as f64 / wall.as_secs_f64(),
    })
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ragtune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ragtune"))
}

fn checked(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn kb_check(kb: &Path) -> Result<Value> {
    let out = ragtune()
        .args(["kb", "check", "--json", "--kb"])
        .arg(kb)
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs `n` questions over `clients` threads; returns latencies, engine times, errors, wall.
fn load(
    addr: &str,
    questions: &[String],
    n: usize,
    clients: usize,
    max_tokens: usize,
) -> (Vec<Duration>, Vec<f64>, Vec<String>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((Vec::new(), Vec::new(), Vec::new())));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            let (next, results) = (next.clone(), results.clone());
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let q = &questions[i % questions.len()];
                    let outcome = ask(addr, q, max_tokens);
                    let mut r = results.lock().unwrap();
                    match outcome {
                        Ok((took, engine)) => {
                            r.0.push(took);
                            r.1.push(engine);
                        }
                        Err(e) => r.2.push(e.to_string()),
                    }
                }
            });
        }
    });
    let wall = started.elapsed();
    let (latencies, engine, errors) = std::mem::take(&mut *results.lock().unwrap());
    (latencies, engine, errors, wall)
}

fn main() -> Result<()> {
    let sequential = knob("SEQUENTIAL", 16);
    let concurrent = knob("CONCURRENT", 64);
    let clients = knob("CLIENTS", 16);
    let files = knob("FILES", 100);
    let total_requests = knob("REQUESTS", 1000);
    let max_tokens = knob("MAX_TOKENS", 16);
    let threads = knob("THREADS", 0);

    let squad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/squad-v1.1-dev/dev-v1.1.json");
    let items = ragtune_datasets::load_squad(&squad)
        .with_context(|| format!("{} (the shared SQuAD dev set)", squad.display()))?;
    let mut contexts: Vec<&str> = Vec::new();
    for item in &items {
        if contexts.last() != Some(&item.context.as_str()) {
            contexts.push(&item.context);
        }
    }
    let served = 20;
    ensure!(contexts.len() >= served + files, "not enough paragraphs");
    let questions: Vec<String> = items
        .iter()
        .filter(|i| contexts[..served].contains(&i.context.as_str()))
        .map(|i| i.question.clone())
        .collect();

    let dir = tempfile::tempdir()?;
    let docs = dir.path().join("docs");
    let all = dir.path().join("all");
    fs_err::create_dir_all(&docs)?;
    fs_err::create_dir_all(&all)?;
    for (i, c) in contexts[..served].iter().enumerate() {
        fs_err::write(docs.join(format!("p{i:03}.txt")), c)?;
        fs_err::write(all.join(format!("p{i:03}.txt")), c)?;
    }
    let uploads: Vec<(String, String)> = contexts[served..served + files]
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("u{i:03}.txt"), (*c).to_owned()))
        .collect();
    for (name, text) in &uploads {
        fs_err::write(all.join(name), text)?;
    }
    let kb = dir.path().join("kb");
    checked(ragtune().arg("ingest").arg(&docs).arg("--kb").arg(&kb))?;

    let mut child = ragtune()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--model",
            "smollm2-135m-instruct",
        ])
        .arg("--kb")
        .arg(format!("docs={}", kb.display()))
        .args(["--keys"])
        .arg(dir.path().join("no-keys.json"))
        .args(["--threads", &threads.to_string(), "--queue", "256"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let pid = child.id();
    let mut server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .with_context(|| format!("no address in {line:?}"))?
        .to_owned();

    // Warm up (first-request costs), then the starting memory.
    for q in questions.iter().take(2) {
        ask(&addr, q, max_tokens)?;
    }
    let rss_start = rss_kb(pid)?;
    let fds_start = open_fds(pid);

    eprintln!("phase 1: {sequential} questions, one client");
    let (seq_lat, seq_engine, seq_errors, seq_wall) =
        load(&addr, &questions, sequential, 1, max_tokens);
    let mut overhead: Vec<f64> = seq_lat
        .iter()
        .zip(&seq_engine)
        .map(|(l, e)| (l.as_secs_f64() * 1000.0 - e) / e)
        .collect();
    overhead.sort_by(f64::total_cmp);
    let mut engine_sorted = seq_engine.clone();
    engine_sorted.sort_by(f64::total_cmp);

    eprintln!("phase 2: {concurrent} questions from {clients} clients while {files} files upload");
    let upload_errors = Arc::new(Mutex::new(Vec::new()));
    let ingest_started = Instant::now();
    let (con, ingest_s) = std::thread::scope(|scope| {
        let uploader = {
            let (addr, uploads, errors) = (&addr, &uploads, upload_errors.clone());
            scope.spawn(move || {
                for (name, text) in uploads {
                    if let Err(e) = upload(addr, name, text.as_bytes()) {
                        errors.lock().unwrap().push(e.to_string());
                    }
                }
            })
        };
        let con = load(&addr, &questions, concurrent, clients, max_tokens);
        let _ = uploader.join();
        (con, ingest_started)
    });
    let (con_lat, _, con_errors, con_wall) = con;
    let status = loop {
        let s = get_json(&addr, "/v1/kb/docs/status")?;
        if s["state"] == "idle" {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let ingest_wall = ingest_s.elapsed();
    let rss_after_ingest = rss_kb(pid)?;

    let done = 2 + sequential + concurrent;
    let rest = total_requests.saturating_sub(done);
    eprintln!("phase 3: {rest} more questions from {clients} clients (memory)");
    let (more_lat, _, more_errors, more_wall) = load(&addr, &questions, rest, clients, max_tokens);
    let rss_end = rss_kb(pid)?;
    let fds_end = open_fds(pid);
    let metrics = http(&addr, "GET", "/metrics", "text/plain", b"")?;
    let server_errors = String::from_utf8_lossy(&metrics.2)
        .lines()
        .filter(|l| l.starts_with("ragtune_requests_total") && l.contains("status=\"5"))
        .map(str::to_owned)
        .collect::<Vec<_>>();

    // Stop the server (SIGTERM: a graceful stop), then check the knowledge base it wrote.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.0.wait();
    let check = kb_check(&kb)?;
    let fresh = dir.path().join("fresh");
    checked(ragtune().arg("ingest").arg(&all).arg("--kb").arg(&fresh))?;
    let fresh_check = kb_check(&fresh)?;

    let report = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "model": "smollm2-135m-instruct",
            "embedder": "all-minilm-l6-v2",
            "max_tokens": max_tokens,
        },
        "one_client": summary(&seq_lat, seq_wall, seq_errors.len()),
        "http_overhead": {
            "engine_p50_ms": percentile(&engine_sorted, 0.5),
            "overhead_p50": percentile(&overhead, 0.5),
            "overhead_p99": percentile(&overhead, 0.99),
        },
        "concurrent": {
            "clients": clients,
            "during_ingest": summary(&con_lat, con_wall, con_errors.len()),
            "after_ingest": summary(&more_lat, more_wall, more_errors.len()),
            "errors": con_errors.iter().chain(&more_errors).take(5).collect::<Vec<_>>(),
            "throughput_vs_one_client": (con_lat.len() as f64 / con_wall.as_secs_f64())
                / (seq_lat.len() as f64 / seq_wall.as_secs_f64()),
        },
        "ingest": {
            "files": files,
            "upload_errors": *upload_errors.lock().unwrap(),
            "wall_s": ingest_wall.as_secs_f64(),
            "status": status,
            "documents": check["documents"],
            "chunks": check["chunks"],
            "fresh_ingest_chunks": fresh_check["chunks"],
            "same_as_fresh_ingest": check["documents"] == fresh_check["documents"]
                && check["chunks"] == fresh_check["chunks"],
            "kb_check_problems": check["problems"],
        },
        "memory": {
            "requests": done + rest,
            "rss_start_mb": rss_start as f64 / 1024.0,
            "rss_after_ingest_mb": rss_after_ingest as f64 / 1024.0,
            "rss_end_mb": rss_end as f64 / 1024.0,
            "open_fds_start": fds_start,
            "open_fds_end": fds_end,
        },
        "server_5xx": server_errors,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        fs_err::write(PathBuf::from(out), &text)?;
    }
    Ok(())
}
