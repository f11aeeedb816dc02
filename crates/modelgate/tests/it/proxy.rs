//! Proxying: byte-exact relaying for every flavor, streaming without buffering, routing, header
//! hygiene and credential injection, gateway-answered model lists.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::client::read_timed;
use testkit::{Flavor, MockOptions, MockServer};

use crate::support::*;

/// (method, path, body, streamed) per flavor: the calls each server's clients make.
fn calls(flavor: Flavor) -> Vec<(&'static str, &'static str, Value, bool)> {
    let chat_s = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}});
    match flavor {
        Flavor::OpenAi | Flavor::Vllm => vec![
            ("POST", "/v1/chat/completions", chat("mock-model", false), false),
            ("POST", "/v1/chat/completions", chat_s, true),
            ("POST", "/v1/completions", json!({"model": "mock-model", "prompt": "Once upon"}), false),
            (
                "POST",
                "/v1/completions",
                json!({"model": "mock-model", "prompt": "Once upon", "stream": true, "stream_options": {"include_usage": true}}),
                true,
            ),
            ("POST", "/v1/embeddings", json!({"model": "mock-embed", "input": ["a", "b"]}), false),
        ],
        Flavor::Ollama => vec![
            (
                "POST",
                "/api/chat",
                json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]}),
                true,
            ),
            (
                "POST",
                "/api/chat",
                json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
                false,
            ),
            ("POST", "/api/generate", json!({"model": "mock-model", "prompt": "why is the sky blue"}), true),
            ("POST", "/api/embed", json!({"model": "mock-embed", "input": "x"}), false),
            ("POST", "/api/pull", json!({"model": "mock-model"}), true),
            ("POST", "/v1/chat/completions", chat("mock-model", false), false),
        ],
        Flavor::LlamaCpp => vec![
            ("POST", "/completion", json!({"prompt": "Building a website", "n_predict": 8}), false),
            ("POST", "/completion", json!({"prompt": "Building a website", "n_predict": 8, "stream": true}), true),
            ("POST", "/v1/chat/completions", chat("mock-model", false), false),
        ],
        Flavor::Tgi => vec![
            (
                "POST",
                "/generate",
                json!({"inputs": "What is deep learning?", "parameters": {"max_new_tokens": 8, "details": true}}),
                false,
            ),
            (
                "POST",
                "/generate_stream",
                json!({"inputs": "What is deep learning?", "parameters": {"max_new_tokens": 8}}),
                true,
            ),
        ],
        Flavor::Triton => vec![
            (
                "POST",
                "/v2/models/mock-model/infer",
                json!({"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}),
                false,
            ),
            ("POST", "/v2/models/mock-model/generate_stream", json!({"text_input": "hi", "max_tokens": 8}), true),
        ],
    }
}

/// Pairs each chunk the client received with the index of the upstream chunk that completes it
/// (the relayed bytes equal the sent bytes, so byte offsets line up).
fn pair_chunks(got: &testkit::client::TimedBody, seen: &testkit::SeenRequest) -> Vec<(std::time::Instant, usize)> {
    let mut ends = Vec::new();
    let mut off = 0;
    for c in &seen.chunks_sent {
        off += c.len();
        ends.push(off);
    }
    let mut received = 0;
    got.chunks
        .iter()
        .map(|(arrived, bytes)| {
            received += bytes.len();
            (*arrived, ends.iter().position(|&e| e >= received).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn every_flavor_relays_the_upstreams_exact_bytes() {
    for flavor in [Flavor::OpenAi, Flavor::Vllm, Flavor::Ollama, Flavor::LlamaCpp, Flavor::Tgi, Flavor::Triton] {
        let m = mock(flavor).await;
        let gw = gateway_for(&m, "");
        for (i, (method, path, body, streamed)) in calls(flavor).into_iter().enumerate() {
            let res = testkit::client::send(json_req(method, &format!("{}{path}", gw.data_url), &body, &[])).await;
            assert_eq!(res.status(), 200, "{flavor:?} {path}");
            let rid = res.headers()["x-request-id"].to_str().unwrap().to_string();
            let got = read_timed(res.into_body()).await;
            assert!(got.error.is_none(), "{flavor:?} {path}: {:?}", got.error);
            let seen = m.wait_requests(i + 1, SOON).await;
            let seen = &seen[i];
            assert_eq!(seen.path, path);
            assert_eq!(seen.body, serde_json::to_vec(&body).unwrap(), "{flavor:?} {path}: request body altered");
            assert_eq!(seen.header("x-request-id"), Some(rid.as_str()));
            let sent = seen.sent_bytes();
            assert!(!sent.is_empty());
            assert_eq!(got.bytes(), sent, "{flavor:?} {path}: response bytes differ");
            if streamed {
                assert!(seen.chunks_sent_at.len() > 2, "{flavor:?} {path}: mock did not stream");
            }
        }
    }
}

#[tokio::test]
async fn a_streamed_chunk_reaches_the_caller_before_the_upstream_sends_its_last() {
    let m = MockServer::start(MockOptions::new(Flavor::OpenAi).with_delay(Duration::from_millis(150))).await;
    let gw = gateway_for(&m, "");
    let mut body = chat("mock-model", true);
    body["stream_options"] = json!({"include_usage": true});
    let res =
        testkit::client::send(json_req("POST", &format!("{}/v1/chat/completions", gw.data_url), &body, &[])).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let got = read_timed(res.into_body()).await;
    let seen = &m.wait_requests(1, SOON).await[0];
    assert_eq!(got.bytes(), seen.sent_bytes());
    let sent_at = &seen.chunks_sent_at;
    assert!(got.chunks.len() >= 8, "expected the stream in pieces, got {} chunks", got.chunks.len());
    assert!(got.chunks[0].0 < *sent_at.last().unwrap(), "first chunk arrived only after the upstream's last was sent");
    // Each received chunk arrived before the upstream sent the chunk after the one it ends in:
    // nothing is held back waiting for more.
    for (arrived, j) in pair_chunks(&got, seen) {
        if j + 1 < sent_at.len() && sent_at[j + 1] - sent_at[j] >= Duration::from_millis(100) {
            assert!(arrived < sent_at[j + 1], "a chunk ending in sent chunk {j} was held back until the next one");
        }
    }
}

#[tokio::test]
async fn the_usage_chunk_the_gateway_asked_for_is_dropped_for_callers_who_did_not() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let res = testkit::client::send(json_req(
        "POST",
        &format!("{}/v1/chat/completions", gw.data_url),
        &chat("mock-model", true),
        &[],
    ))
    .await;
    let got = read_timed(res.into_body()).await;
    let seen = &m.wait_requests(1, SOON).await[0];
    assert_eq!(seen.json()["stream_options"]["include_usage"], true);
    let text = String::from_utf8(got.bytes().to_vec()).unwrap();
    let sent = String::from_utf8(seen.sent_bytes().to_vec()).unwrap();
    assert!(sent.contains("\"usage\":{"), "mock did not send usage");
    assert!(!text.contains("\"usage\":{"), "usage chunk leaked to a caller who did not ask: {text}");
    // Everything else is byte-identical.
    let kept: String = sent.split_inclusive("\n\n").filter(|e| !e.contains("\"usage\":{")).collect();
    assert_eq!(text, kept);
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn upstream_key_is_injected_and_caller_credentials_never_forwarded() {
    let m = mock(Flavor::Vllm).await;
    let keys = testkit::temp_dir("keys");
    let key_file = keys.path().join("vllm.key");
    std::fs::write(&key_file, "upstream-secret-123\n").unwrap();
    let up = upstream("vllm", &m.url(), "vllm", &["*"], &format!("api_key_file = \"{}\"", key_file.display()));
    let gw = start(&config("", &up));
    let headers = [
        ("cookie", "session=caller"),
        ("x-api-key", "caller-key"),
        ("proxy-authorization", "Basic Y2FsbGVy"),
        ("x-request-id", "caller-chosen-id"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("x-custom", "kept"),
    ];
    let (status, h, _) =
        call(json_req("POST", &format!("{}/v1/chat/completions", gw.data_url), &chat("m", false), &headers)).await;
    assert_eq!(status, 200);
    let seen = &m.wait_requests(1, SOON).await[0];
    assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret-123"));
    let caller_key = key_for(&gw.data_url).unwrap();
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&caller_key)), "the caller's key reached the upstream");
    for (k, _) in &seen.headers {
        assert!(
            !["cookie", "x-api-key", "proxy-authorization", "x-hop", "connection"].contains(&k.as_str()),
            "{k} forwarded"
        );
    }
    assert_eq!(seen.header("x-custom"), Some("kept"));
    let rid = h["x-request-id"].to_str().unwrap();
    assert_ne!(rid, "caller-chosen-id");
    assert_eq!(seen.header("x-request-id"), Some(rid));
    assert!(!gw.stderr().contains("upstream-secret-123"), "the upstream key reached the log");
}

#[tokio::test]
async fn routes_by_model_flavor_prefix_and_default() {
    let vllm = mock(Flavor::Vllm).await;
    let ollama = mock(Flavor::Ollama).await;
    let triton = mock(Flavor::Triton).await;
    let ups = [
        upstream("vllm", &vllm.url(), "vllm", &["llama-3-70b", "qwen*"], ""),
        upstream("ollama", &ollama.url(), "ollama", &["gemma*"], "default = true"),
        upstream("triton", &triton.url(), "triton", &[], "prefix = \"/triton\""),
    ]
    .concat();
    let gw = start(&config("", &ups));
    let url = |p: &str| format!("{}{p}", gw.data_url);

    assert_eq!(call(json_req("POST", &url("/v1/chat/completions"), &chat("qwen2.5-7b", false), &[])).await.0, 200);
    assert_eq!(
        call(json_req("POST", &url("/api/chat"), &json!({"model": "gemma3", "stream": false, "messages": []}), &[]))
            .await
            .0,
        200
    );
    let infer = json!({"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    assert_eq!(call(json_req("POST", &url("/triton/v2/models/resnet/infer"), &infer, &[])).await.0, 200);
    // Model-less: the default upstream.
    assert_eq!(call(get(&url("/api/version"))).await.0, 200);

    assert_eq!(vllm.wait_requests(1, SOON).await[0].path, "/v1/chat/completions");
    let o = ollama.wait_requests(2, SOON).await;
    assert_eq!((o[0].path.as_str(), o[1].path.as_str()), ("/api/chat", "/api/version"));
    assert_eq!(triton.wait_requests(1, SOON).await[0].path, "/v2/models/resnet/infer");

    let (status, h, body) = call(json_req("POST", &url("/v1/chat/completions"), &chat("mistral", false), &[])).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "no_route");
    assert!(h.contains_key("x-request-id"));
    assert_eq!(
        vllm.requests().len() + ollama.requests().len() + triton.requests().len(),
        4,
        "an unroutable call went upstream"
    );
}

#[tokio::test]
async fn model_lists_are_answered_from_all_upstreams() {
    let vllm =
        MockServer::start(MockOptions::new(Flavor::Vllm).with_models(&["qwen-7b", "llama-3-70b", "hidden"])).await;
    let ollama = MockServer::start(MockOptions::new(Flavor::Ollama).with_models(&["gemma3:4b", "qwen-7b"])).await;
    let ups = [
        upstream("vllm", &vllm.url(), "vllm", &["qwen*", "llama-3-70b"], ""),
        upstream("ollama", &ollama.url(), "ollama", &["*"], ""),
    ]
    .concat();
    let gw = start(&config("", &ups));
    let (status, _, body) = call(get(&format!("{}/v1/models", gw.data_url))).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    // qwen-7b routes to vLLM (first match), so Ollama's copy is not listed; "hidden" routes to
    // Ollama's "*", which does not have it.
    assert_eq!(ids, ["gemma3:4b", "llama-3-70b", "qwen-7b"]);
    let (status, _, body) = call(get(&format!("{}/api/tags", gw.data_url))).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = v["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    // vLLM does not speak Ollama's API, so for Ollama clients qwen-7b is Ollama's.
    assert_eq!(names, ["gemma3:4b", "qwen-7b"]);
}

/// How long a streamed chunk takes from the upstream handing it over to the caller receiving it,
/// direct and through the gateway. A report for BENCHMARKS.md, not a check (timing belongs in
/// benchmarks): `cargo test --release -p modelgate --test it relay_lag -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing report, not a check"]
async fn relay_lag() {
    let m = MockServer::start(MockOptions::new(Flavor::OpenAi).with_delay(Duration::from_millis(5))).await;
    let gw = gateway_for(&m, "");
    let mut seen_so_far = 0;
    for (name, base) in [("direct", m.url()), ("through modelgate", gw.data_url.clone())] {
        let mut lags = Vec::new();
        for _ in 0..5 {
            let mut body = chat("mock-model", true);
            body["stream_options"] = json!({"include_usage": true});
            let url = format!("{base}/v1/chat/completions");
            let res = testkit::client::send(json_req("POST", &url, &body, &[("x-mock-tokens", "200")])).await;
            let got = read_timed(res.into_body()).await;
            seen_so_far += 1;
            let seen = &m.wait_requests(seen_so_far, SOON).await[seen_so_far - 1];
            for (arrived, j) in pair_chunks(&got, seen) {
                lags.push(arrived.duration_since(seen.chunks_sent_at[j]));
            }
        }
        lags.sort();
        let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
        println!(
            "relay lag {name} over {} chunks: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            lags.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            lags[lags.len() - 1]
        );
    }
}
