//! A webhook receiver for tests of the approval notifications: records every POST, checks its
//! `x-modelgate-signature` with its own HMAC-SHA256 code (independent of the sender's), and can
//! answer errors or go down and come back on the same port.
//!
//! The signature scheme checked: `x-modelgate-signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<raw body>")>`, with `t` within five minutes of now.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};

/// How far a signature's timestamp may be from now.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    /// Request path (no query).
    pub path: String,
    /// Headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Exact body bytes.
    pub body: Bytes,
    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub json: Value,
    /// Whether `x-modelgate-signature` signs the body with the receiver's secret, recently.
    pub signature_valid: bool,
    /// The status the receiver answered.
    pub status: u16,
    /// When it arrived.
    pub received_at: Instant,
}

impl WebhookDelivery {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `x-modelgate-delivery` id.
    pub fn delivery_id(&self) -> Option<&str> {
        self.header("x-modelgate-delivery")
    }

    /// Whether the receiver answered 2xx (the sender counts it delivered).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, Default)]
struct Behaviour {
    /// Answer `fail_status` to this many more requests.
    fail_next: usize,
    fail_status: u16,
}

#[derive(Debug)]
struct Shared {
    secret: Vec<u8>,
    seen: Mutex<Vec<WebhookDelivery>>,
    behaviour: Mutex<Behaviour>,
}

#[derive(Debug)]
struct Running {
    accept: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::watch::Sender<()>,
}

/// A running webhook receiver on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(r) = crate::mock::lock(&self.running).take() {
            r.accept.abort();
        }
    }
}

impl WebhookReceiver {
    /// Starts a receiver on `127.0.0.1:0` checking signatures with `secret`. Answers 200 to every
    /// POST (signed or not; see [`WebhookDelivery::signature_valid`]) unless told otherwise.
    pub async fn start(secret: &[u8]) -> WebhookReceiver {
        let shared = Arc::new(Shared {
            secret: secret.to_vec(),
            seen: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour::default()),
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind webhook receiver on 127.0.0.1:0");
        let addr = listener.local_addr().expect("webhook receiver address");
        let receiver = WebhookReceiver { addr, shared, running: Mutex::new(None) };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let shared = self.shared.clone();
        let accept = tokio::spawn(crate::serve::accept_loop(listener, stop_rx, move |req| handle(shared.clone(), req)));
        *crate::mock::lock(&self.running) = Some(Running { accept, _stop: stop_tx });
    }

    /// The bound address (kept across [`go_down`](Self::go_down) and [`come_up`](Self::come_up)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to configure: `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers 503 to the next `n` requests (then 200 again).
    pub fn fail_next(&self, n: usize) {
        self.fail_next_with(n, 503);
    }

    /// Answers `status` to the next `n` requests (then 200 again).
    pub fn fail_next_with(&self, n: usize, status: u16) {
        let mut b = crate::mock::lock(&self.shared.behaviour);
        b.fail_next = n;
        b.fail_status = status;
    }

    /// Closes the listener and every open connection: the port refuses connections until
    /// [`come_up`](Self::come_up).
    pub async fn go_down(&self) {
        let running = crate::mock::lock(&self.running).take();
        if let Some(r) = running {
            r.accept.abort();
            // Once the aborted task is joined its future, and so the listener, is dropped.
            let _ = r.accept.await;
            // Dropping `_stop` closes the open connections.
        }
    }

    /// Listens again on the same port after [`go_down`](Self::go_down) (no-op if up).
    pub async fn come_up(&self) {
        if crate::mock::lock(&self.running).is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match bind(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("webhook receiver: cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Every request received, in arrival order, with the status answered.
    pub fn attempts(&self) -> Vec<WebhookDelivery> {
        crate::mock::lock(&self.shared.seen).clone()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        crate::mock::lock(&self.shared.seen).iter().filter(|d| d.accepted()).cloned().collect()
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        crate::mock::lock(&self.shared.seen).clear();
    }

    /// Polls until at least `n` requests were answered 2xx and returns them; panics with what
    /// arrived after `timeout`.
    pub async fn wait_deliveries(&self, n: usize, timeout: Duration) -> Vec<WebhookDelivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.deliveries();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                let attempts: Vec<String> = self
                    .attempts()
                    .iter()
                    .map(|d| format!("{} {}", d.status, d.delivery_id().unwrap_or("-")))
                    .collect();
                panic!(
                    "webhook receiver at {}: expected at least {n} delivery(ies) within {timeout:?}, got {}; \
                     attempts: {attempts:?}",
                    self.addr,
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A listener on `addr` with `SO_REUSEADDR`, so the port can be taken again right after closing.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let signature = parts.headers.get("x-modelgate-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let signature_valid = signature_ok(&shared.secret, signature, &body, now_secs(), SIGNATURE_TOLERANCE);
    let status = {
        let mut b = crate::mock::lock(&shared.behaviour);
        if b.fail_next > 0 {
            b.fail_next -= 1;
            b.fail_status
        } else {
            200
        }
    };
    crate::mock::lock(&shared.seen).push(WebhookDelivery {
        path: parts.uri.path().to_owned(),
        headers,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body,
        signature_valid,
        status,
        received_at,
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(Response::builder().status(status).body(Full::new(Bytes::from_static(b"ok"))).expect("response"))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks an `x-modelgate-signature` value: `t` within `tolerance` of `now` and some `v1` equal to
/// HMAC-SHA256(`secret`, "<t>.<body>") (aws-lc-rs, constant-time). Written independently of the
/// sender's code on purpose.
pub fn signature_ok(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance: Duration) -> bool {
    use aws_lc_rs::hmac;
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => tags.extend(unhex(v)),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    tags.iter().any(|tag| hmac::verify(&key, &message, tag).is_ok())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
