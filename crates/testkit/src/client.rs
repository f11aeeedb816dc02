//! HTTP client helpers for tests: a pooled HTTP/1.1 client, a one-shot h2c sender, request
//! builders, and body readers that record when each data frame arrived.

use std::pin::pin;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Pooled HTTP/1.1 client over plain TCP.
pub type Http1Client = Client<HttpConnector, Full<Bytes>>;

/// A new pooled HTTP/1.1 client (create one per test runtime; pooled connections are tied to it).
pub fn http1_client() -> Http1Client {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `req` over HTTP/1.1 (fresh client); panics with the error on connect/send failure.
pub async fn send(req: Request<Full<Bytes>>) -> Response<Incoming> {
    let target = format!("{} {}", req.method(), req.uri());
    try_send(req).await.unwrap_or_else(|e| panic!("HTTP/1.1 {target} failed: {e}"))
}

/// Sends `req` over HTTP/1.1 (fresh client), returning the error as text.
pub async fn try_send(req: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
    http1_client().request(req).await.map_err(|e| format!("{e:?}"))
}

/// Sends `req` over a new HTTP/2 prior-knowledge (h2c) connection; panics on failure.
pub async fn send_h2c(req: Request<Full<Bytes>>) -> Response<Incoming> {
    let target = format!("{} {}", req.method(), req.uri());
    try_send_h2c(req).await.unwrap_or_else(|e| panic!("h2c {target} failed: {e}"))
}

/// Sends `req` over a new h2c connection, returning the error as text.
pub async fn try_send_h2c(mut req: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
    let authority = req.uri().authority().ok_or_else(|| format!("no authority in {}", req.uri()))?.clone();
    let host = authority.host().to_owned();
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .map_err(|e| format!("h2 handshake: {e:?}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    *req.version_mut() = http::Version::HTTP_2;
    sender.send_request(req).await.map_err(|e| format!("{e:?}"))
}

/// A GET request for `url`.
pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).expect("valid GET request")
}

/// A POST of `body` as JSON (with `content-type: application/json`).
pub fn post_json(url: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    post_bytes(url, "application/json", Bytes::from(body.to_string()))
}

/// A POST of raw bytes with the given content-type.
pub fn post_bytes(url: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(url)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("valid POST request")
}

/// A request with `method` and optional JSON body.
pub fn request(method: http::Method, url: &str, body: Option<&serde_json::Value>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(url);
    let bytes = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(bytes)).expect("valid request")
}

/// Returns `req` with header `name: value` added.
pub fn with_header<B>(mut req: Request<B>, name: &str, value: &str) -> Request<B> {
    let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
    let value = HeaderValue::from_str(value).expect("valid header value");
    req.headers_mut().append(name, value);
    req
}

/// Returns `req` with `authorization: Bearer TOKEN`.
pub fn with_bearer<B>(req: Request<B>, token: &str) -> Request<B> {
    with_header(req, "authorization", &format!("Bearer {token}"))
}

/// Reads a whole body; panics if it ends with an error.
pub async fn read_body<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let t = read_timed(body).await;
    if let Some(e) = &t.error {
        panic!("body ended with an error after {} bytes: {e}", t.bytes().len());
    }
    t.bytes()
}

/// Reads a response into (status, body as JSON); panics if the body is not JSON.
pub async fn read_json(resp: Response<Incoming>) -> (http::StatusCode, serde_json::Value) {
    let status = resp.status();
    let body = read_body(resp.into_body()).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, v)
}

/// A body read frame by frame, with each data frame's arrival time.
#[derive(Clone, Debug, Default)]
pub struct TimedBody {
    /// Data frames in order, with arrival times.
    pub chunks: Vec<(Instant, Bytes)>,
    /// Set if the body ended with an error (e.g. the upstream reset it).
    pub error: Option<String>,
}

impl TimedBody {
    /// All data concatenated.
    pub fn bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        for (_, c) in &self.chunks {
            out.extend_from_slice(c);
        }
        out.freeze()
    }

    /// All data as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Payloads of SSE `data:` lines, in order (including `[DONE]`).
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d).to_owned())
            .collect()
    }

    /// Non-empty NDJSON lines parsed as JSON (lines that are not JSON are skipped).
    pub fn ndjson(&self) -> Vec<serde_json::Value> {
        self.text().lines().filter_map(|l| serde_json::from_str(l.trim()).ok()).collect()
    }
}

/// Reads `body` to its end, recording the arrival time of each data frame and any final error.
pub async fn read_timed<B>(body: B) -> TimedBody
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut body = pin!(body);
    let mut out = TimedBody::default();
    while let Some(frame) = body.as_mut().frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    let data: Bytes = copy_to_bytes(data);
                    if !data.is_empty() {
                        out.chunks.push((Instant::now(), data));
                    }
                }
            }
            Err(e) => {
                out.error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    out
}

fn copy_to_bytes<D: bytes::Buf>(mut d: D) -> Bytes {
    let n = d.remaining();
    d.copy_to_bytes(n)
}
