//! Limits and failures: body size, dead, slow, stalled and breaking upstreams.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use testkit::Flavor;
use testkit::client::read_timed;

use crate::support::*;

/// A chat body of exactly `n` bytes.
fn body_of(n: usize) -> Vec<u8> {
    let base =
        serde_json::to_vec(&json!({"model": "mock-model", "messages": [{"role": "user", "content": ""}]})).unwrap();
    let pad = n - base.len();
    let v = json!({"model": "mock-model", "messages": [{"role": "user", "content": "x".repeat(pad)}]});
    let out = serde_json::to_vec(&v).unwrap();
    assert_eq!(out.len(), n);
    out
}

#[tokio::test]
async fn a_body_of_the_maximum_size_passes_and_one_byte_more_is_413() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "max_request_bytes = 4096");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let auth = format!("Bearer {}", key_for(&gw.data_url).unwrap());
    let send = |body: Vec<u8>| {
        http::Request::post(&url)
            .header("content-type", "application/json")
            .header("authorization", &auth)
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap()
    };
    let (status, _, _) = call(send(body_of(4096))).await;
    assert_eq!(status, 200);
    assert_eq!(m.wait_requests(1, SOON).await[0].body.len(), 4096);

    let (status, h, body) = call(send(body_of(4097))).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "request_too_large");
    assert!(h.contains_key("x-request-id"));

    // Without a content-length (chunked), the limit holds too.
    let req = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("authorization", &auth)
        .body(Chunked(body_of(4097)))
        .unwrap();
    let stream = tokio::net::TcpStream::connect(gw.data).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(m.requests().len(), 1, "an oversized body went upstream");
}

/// A body sent in 1000-byte chunks with no declared length.
struct Chunked(Vec<u8>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.0.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = self.0.len().min(1000);
        let chunk: Vec<u8> = self.0.drain(..n).collect();
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}

#[tokio::test]
async fn a_dead_upstream_gives_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let up = upstream("dead", &format!("http://127.0.0.1:{port}"), "openai", &["*"], "");
    let gw = start(&config("", &up));
    let (status, _, body) =
        call(json_req("POST", &format!("{}/v1/chat/completions", gw.data_url), &chat("m", false), &[])).await;
    assert_eq!(status, 502);
    assert_eq!(error_code(&body), "upstream_unavailable");
    // The gateway keeps serving.
    assert_eq!(call(get(&format!("{}/healthz", gw.admin_url))).await.0, 200);
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "first_byte_timeout = \"300ms\"");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let (status, _, body) = call(json_req("POST", &url, &chat("m", false), &[("x-mock-head-delay-ms", "3000")])).await;
    assert_eq!(status, 504);
    assert_eq!(error_code(&body), "upstream_timeout");
    // Head sent, body never: still a clean 504, since the head waits for the first frame.
    let (status, _, body) = call(json_req("POST", &url, &chat("m", true), &[("x-mock-stall-after", "0")])).await;
    assert_eq!(status, 504);
    assert_eq!(error_code(&body), "upstream_timeout");
}

#[tokio::test]
async fn a_stream_that_breaks_or_stalls_ends_with_an_error_event() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "idle_timeout = \"400ms\"");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    for (header, value, code) in
        [("x-mock-reset-after", "3", "upstream_unavailable"), ("x-mock-stall-after", "2", "upstream_timeout")]
    {
        let res = testkit::client::send(json_req("POST", &url, &chat("m", true), &[(header, value)])).await;
        assert_eq!(res.status(), 200);
        let got = read_timed(res.into_body()).await;
        let text = String::from_utf8_lossy(&got.bytes()).to_string();
        let (before, got_code, _) = stream_error(&text);
        assert!(before.starts_with("data: {"), "the chunks before the failure were not relayed: {text:?}");
        assert_eq!(got_code, code);
        assert!(got.error.is_some(), "{header}: the stream ended cleanly, hiding the failure");
    }
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_call() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    // Mid-stream.
    let res = testkit::client::send(json_req(
        "POST",
        &url,
        &chat("m", true),
        &[("x-mock-tokens", "200"), ("x-mock-delay-ms", "100")],
    ))
    .await;
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    m.wait_cancelled(1, SOON).await;
    // Before the upstream answered at all.
    let req = json_req("POST", &url, &chat("m", false), &[("x-mock-stall", "head")]);
    let pending = tokio::spawn(testkit::client::send(req));
    m.wait_requests(2, SOON).await;
    pending.abort();
    let _ = pending.await;
    m.wait_cancelled(2, SOON).await;
}

#[tokio::test]
async fn a_stream_longer_than_request_timeout_is_cut() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "request_timeout = \"600ms\"");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let res = testkit::client::send(json_req(
        "POST",
        &url,
        &chat("m", true),
        &[("x-mock-tokens", "100"), ("x-mock-delay-ms", "50")],
    ))
    .await;
    assert_eq!(res.status(), 200);
    let got = read_timed(res.into_body()).await;
    let text = String::from_utf8_lossy(&got.bytes()).to_string();
    let (_, code, event) = stream_error(&text);
    assert_eq!(code, "upstream_timeout");
    assert!(event.contains("request_timeout"), "{event}");
    assert!(got.error.is_some());
    m.wait_cancelled(1, SOON).await;
}

#[tokio::test]
async fn large_request_headers_are_read_up_to_the_limit() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "max_header_bytes = \"96KiB\"");
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let big = "a".repeat(60 * 1024);
    let (status, _, _) = call(json_req("POST", &url, &chat("m", false), &[("x-big", &big)])).await;
    assert_eq!(status, 200);
    assert_eq!(m.wait_requests(1, SOON).await[0].header("x-big").map(str::len), Some(big.len()));
    let huge = "a".repeat(100 * 1024);
    let res = testkit::client::try_send(json_req("POST", &url, &chat("m", false), &[("x-big", &huge)])).await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 431);
    }
    assert_eq!(m.requests().len(), 1, "an oversized head went upstream");
}
