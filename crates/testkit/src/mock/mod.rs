//! Mock model servers speaking each upstream flavor's wire format, with per-request behaviour
//! controlled by `x-mock-*` request headers and shared recording of what they saw.
//!
//! Request headers understood by every flavor:
//! - `x-mock-tokens: N` — number of generated tokens (default 8);
//! - `x-mock-delay-ms: N` — delay before each streamed token (default [`MockOptions::default_delay`]);
//! - `x-mock-status: S` — answer status `S` with the flavor's error JSON;
//! - `x-mock-reset-after: N` — send N body chunks then abort the response body with an error;
//! - `x-mock-stall: head` — never answer (until the client goes away);
//! - `x-mock-stall-after: N` — send the head and N body chunks, then stall forever;
//! - `x-mock-head-delay-ms: N` — wait N ms before sending the response head;
//! - `x-mock-body-bytes: N` — non-streamed 200 whose JSON body is about N bytes;
//! - `x-mock-echo: 1` — 200 with the exact request body and content-type;
//! - `x-mock-say: TEXT` — the generated answer is TEXT, streamed in 3-character tokens, or in
//!   the pieces between `|` when TEXT has one (`Hello, |how |are you?`).

mod body;
mod flavors;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::Flavor;
pub use body::MockBody;
use body::Track;
pub use flavors::fixed_chat_body;

/// Configuration of one mock model server.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Wire format spoken by the mock.
    pub flavor: Flavor,
    /// Models the mock lists (`/v1/models`, `/api/tags`, repository index, …).
    pub models: Vec<String>,
    /// Default delay before each streamed token (overridden by `x-mock-delay-ms`).
    pub default_delay: Duration,
    /// If set, every POST gets this exact 200 JSON body and no request is recorded (benchmarks).
    pub fixed_body: Option<Bytes>,
}

impl MockOptions {
    /// Options for `flavor` serving the single model `mock-model`, without delay or fixed body.
    pub fn new(flavor: Flavor) -> MockOptions {
        MockOptions { flavor, models: vec!["mock-model".to_owned()], default_delay: Duration::ZERO, fixed_body: None }
    }

    /// Replaces the listed models.
    pub fn with_models(mut self, models: &[&str]) -> MockOptions {
        self.models = models.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    /// Sets the default per-token streaming delay.
    pub fn with_delay(mut self, delay: Duration) -> MockOptions {
        self.default_delay = delay;
        self
    }

    /// Sets the fixed benchmark body.
    pub fn with_fixed_body(mut self, body: Bytes) -> MockOptions {
        self.fixed_body = Some(body);
        self
    }
}

/// One request as seen by a mock, with live information about its response.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// HTTP method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Exact request body bytes.
    pub body: Bytes,
    /// HTTP version the request arrived with.
    pub version: http::Version,
    /// When the request head was received.
    pub received_at: Instant,
    /// When each response body chunk was handed to hyper (snapshot).
    pub chunks_sent_at: Vec<Instant>,
    /// The response body chunks handed to hyper, in order (snapshot).
    pub chunks_sent: Vec<Bytes>,
    /// Whether the response body was handed over completely.
    pub completed: bool,
}

impl SeenRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The whole response body handed to hyper so far.
    pub fn sent_bytes(&self) -> Bytes {
        Bytes::from(self.chunks_sent.concat())
    }

    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Live record of one request (shared with its response body).
#[derive(Debug)]
pub(crate) struct Record {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Bytes,
    version: http::Version,
    received_at: Instant,
    chunks: Mutex<Vec<Instant>>,
    sent: Mutex<Vec<Bytes>>,
    completed: AtomicBool,
}

impl Record {
    fn snapshot(&self) -> SeenRequest {
        SeenRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            version: self.version,
            received_at: self.received_at,
            chunks_sent_at: lock(&self.chunks).clone(),
            chunks_sent: lock(&self.sent).clone(),
            completed: self.completed.load(Ordering::SeqCst),
        }
    }
}

/// State shared by all connections of one mock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: MockOptions,
    requests: Mutex<Vec<Arc<Record>>>,
    cancelled: AtomicUsize,
    pub(crate) counter: AtomicU64,
    pub(crate) adapters: Mutex<Vec<String>>,
    pub(crate) sleeping: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running mock model server; stops (closing its connections) when dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::watch::Sender<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl MockServer {
    /// Starts a mock on `127.0.0.1:0`.
    pub async fn start(opts: MockOptions) -> MockServer {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        MockServer::start_on(opts, addr).await.expect("bind mock server on 127.0.0.1:0")
    }

    /// Starts a mock on `addr`.
    pub async fn start_on(opts: MockOptions, addr: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            opts,
            requests: Mutex::new(Vec::new()),
            cancelled: AtomicUsize::new(0),
            counter: AtomicU64::new(0),
            adapters: Mutex::new(Vec::new()),
            sleeping: AtomicBool::new(false),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let accept = tokio::spawn(crate::serve::accept_loop(listener, stop_rx, {
            let shared = shared.clone();
            move |req| handle(shared.clone(), req)
        }));
        Ok(MockServer { addr, shared, accept, _stop: stop_tx })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The flavor this mock speaks.
    pub fn flavor(&self) -> Flavor {
        self.shared.opts.flavor
    }

    /// Snapshot of the recorded requests, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.requests).iter().map(|r| r.snapshot()).collect()
    }

    /// Forgets the recorded requests (and resets the cancellation count).
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
        self.shared.cancelled.store(0, Ordering::SeqCst);
    }

    /// Polls until at least `n` requests were recorded; panics with a clear message on timeout.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<SeenRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if Instant::now() >= deadline {
                let list: Vec<String> = seen.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
                panic!(
                    "{} mock at {}: expected at least {n} request(s) within {timeout:?}, saw {}: {list:?}",
                    self.flavor().name(),
                    self.addr,
                    seen.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Number of responses abandoned by the client before their body finished.
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Polls until at least `n` responses were abandoned; panics with a clear message on timeout.
    pub async fn wait_cancelled(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.cancelled();
            if c >= n {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} mock at {}: expected at least {n} cancelled response(s) within {timeout:?}, saw {c}",
                    self.flavor().name(),
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Behaviour of one response body, from the `x-mock-*` headers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Controls {
    pub(crate) delay: Duration,
    pub(crate) reset_after: Option<usize>,
    pub(crate) stall_after: Option<usize>,
}

fn header_num(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let received_at = Instant::now();
    // Armed from the start: dropping the handler future before the response finishes counts.
    let mut track = Track::new(shared.clone());
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();

    if let Some(fixed) = &shared.opts.fixed_body
        && parts.method == Method::POST
    {
        // Benchmarks of a slow model: the head waits, the body is the fixed one.
        if let Some(ms) = header_num(&parts.headers, "x-mock-head-delay-ms") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let reply = flavors::Reply::Raw(StatusCode::OK, Some("application/json".to_owned()), fixed.clone());
        return Ok(body::respond(reply, track, Controls::default()));
    }

    let rec = Arc::new(Record {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: body.clone(),
        version: parts.version,
        received_at,
        chunks: Mutex::new(Vec::new()),
        sent: Mutex::new(Vec::new()),
        completed: AtomicBool::new(false),
    });
    if shared.opts.fixed_body.is_none() {
        lock(&shared.requests).push(rec.clone());
    }
    track.set_record(rec);

    let h = &parts.headers;
    let stall = h.get("x-mock-stall").and_then(|v| v.to_str().ok()).map(str::trim);
    if stall == Some("head") {
        std::future::pending::<()>().await;
    }
    if let Some(ms) = header_num(h, "x-mock-head-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let ctl = Controls {
        delay: header_num(h, "x-mock-delay-ms").map(Duration::from_millis).unwrap_or(shared.opts.default_delay),
        reset_after: header_num(h, "x-mock-reset-after").map(|n| n as usize),
        stall_after: header_num(h, "x-mock-stall-after").map(|n| n as usize),
    };

    let reply = if let Some(code) = header_num(h, "x-mock-status") {
        let status = u16::try_from(code).ok().and_then(|c| StatusCode::from_u16(c).ok());
        let status = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        flavors::error(shared.opts.flavor, status, &format!("mock error (x-mock-status: {})", status.as_u16()))
    } else if h.get("x-mock-echo").is_some_and(|v| v.as_bytes() != b"0") {
        let ct = h.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        flavors::Reply::Raw(StatusCode::OK, ct, body.clone())
    } else {
        let body_bytes = header_num(h, "x-mock-body-bytes").map(|n| n as usize);
        let ctx = flavors::Ctx::new(
            &shared,
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &body,
            header_num(h, "x-mock-tokens").map(|n| n as usize),
            body_bytes.is_some(),
        )
        .with_say(h.get("x-mock-say").and_then(|v| v.to_str().ok()).map(str::to_owned));
        let reply = flavors::route(&ctx);
        match body_bytes {
            Some(n) => flavors::pad(reply, n, &ctx),
            None => reply,
        }
    };
    Ok(body::respond(reply, track, ctl))
}
