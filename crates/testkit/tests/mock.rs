//! Integration tests of the mock servers, hit directly with the client helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use modelgate_testkit as testkit;
use serde_json::{Value, json};
use testkit::client::{self, post_json, read_json, read_timed, send, send_h2c, with_header};
use testkit::{Flavor, MockOptions, MockServer};

const WAIT: Duration = Duration::from_secs(5);

async fn mock(flavor: Flavor) -> MockServer {
    MockServer::start(MockOptions::new(flavor).with_models(&["m1", "m2"])).await
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "m1", "stream": stream, "messages": [{"role": "user", "content": "say hello to me"}]})
}

#[tokio::test]
async fn openai_streamed_chat_is_paced() {
    let m = mock(Flavor::OpenAi).await;
    let delay = Duration::from_millis(30);
    let req =
        with_header(post_json(&format!("{}/v1/chat/completions", m.url()), &chat_body(true)), "x-mock-tokens", "4");
    let req = with_header(req, "x-mock-delay-ms", "30");
    let resp = send(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = read_timed(resp.into_body()).await;
    assert!(body.error.is_none(), "{:?}", body.error);
    let data = body.sse_data();
    assert_eq!(data.len(), 6, "{data:?}"); // 4 tokens, final, [DONE]
    assert_eq!(data[5], "[DONE]");
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "m1");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["choices"][0]["delta"]["content"], "Hello");
    assert!(first.get("usage").is_none());
    let fin: Value = serde_json::from_str(&data[4]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert!(!body.text().contains(r#""choices":[]"#));

    let seen = m.wait_requests(1, WAIT).await;
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("X-Mock-Tokens"), Some("4"));
    assert!(r.completed);
    assert_eq!(r.chunks_sent_at.len(), 6);
    assert!(r.chunks_sent_at[0] - r.received_at >= delay);
    for w in r.chunks_sent_at[..4].windows(2) {
        assert!(w[1] - w[0] >= delay, "token chunks not paced: {:?}", w[1] - w[0]);
    }
    assert_eq!(m.cancelled(), 0);
}

#[tokio::test]
async fn openai_include_usage_only_when_asked() {
    let m = mock(Flavor::Vllm).await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = send(post_json(&format!("{}/v1/chat/completions", m.url()), &body)).await;
    let data = read_timed(resp.into_body()).await.sse_data();
    assert_eq!(data.len(), 8 + 3, "{data:?}");
    let usage: Value = serde_json::from_str(&data[9]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}));
    let tok: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(tok["usage"], Value::Null);
    assert!(tok.get("system_fingerprint").is_none(), "vllm sends none");

    // Non-streamed with max_tokens: finish_reason length.
    let resp = send(post_json(
        &format!("{}/v1/chat/completions", m.url()),
        &json!({"model": "x", "max_tokens": 3, "messages": [{"role": "user", "content": "a b"}]}),
    ))
    .await;
    let (status, v) = read_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(v["model"], "x");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn openai_completions_embeddings_models_and_errors() {
    let m = mock(Flavor::OpenAi).await;
    let (_, v) = read_json(
        send(post_json(&format!("{}/v1/completions", m.url()), &json!({"model": "m2", "prompt": "hi there"}))).await,
    )
    .await;
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    let (_, v) = read_json(
        send(post_json(&format!("{}/v1/embeddings", m.url()), &json!({"model": "e", "input": ["a", "b"]}))).await,
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["object"], "embedding");
    let (_, v) = read_json(send(client::get(&format!("{}/v1/models", m.url()))).await).await;
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    let (status, v) = read_json(send(client::get(&format!("{}/nope", m.url()))).await).await;
    assert_eq!(status, 404);
    assert!(v["error"]["message"].is_string());
    let req =
        with_header(post_json(&format!("{}/v1/chat/completions", m.url()), &chat_body(true)), "x-mock-status", "503");
    let (status, v) = read_json(send(req).await).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["type"], "server_error");
}

#[tokio::test]
async fn vllm_extensions() {
    let m = mock(Flavor::Vllm).await;
    let resp = send(post_json(
        &format!("{}/v1/load_lora_adapter", m.url()),
        &json!({"lora_name": "sql", "lora_path": "/a/sql"}),
    ))
    .await;
    assert_eq!(resp.status(), 200);
    let text = client::read_body(resp.into_body()).await;
    assert!(text.starts_with(b"Success"));
    let (_, v) = read_json(send(client::get(&format!("{}/v1/models", m.url()))).await).await;
    assert_eq!(v["data"][2]["id"], "sql");
    assert_eq!(v["data"][2]["parent"], "m1");
    for p in ["/sleep", "/wake_up", "/reset_prefix_cache"] {
        let resp = send(client::request(Method::POST, &format!("{}{p}", m.url()), None)).await;
        assert_eq!(resp.status(), 200, "{p}");
    }
    let (status, v) = read_json(send(client::get(&format!("{}/nope", m.url()))).await).await;
    assert_eq!(status, 404);
    assert_eq!(v["object"], "error");
    assert_eq!(v["code"], 404);
}

#[tokio::test]
async fn reset_after_gives_body_error_h1_and_h2() {
    let m = mock(Flavor::OpenAi).await;
    let url = format!("{}/v1/chat/completions", m.url());
    let req = with_header(post_json(&url, &chat_body(true)), "x-mock-reset-after", "2");
    let body = read_timed(send(req).await.into_body()).await;
    assert!(body.error.is_some(), "h1 body ended cleanly: {}", body.text());
    assert!(!body.text().contains("[DONE]"));
    assert_eq!(body.sse_data().len(), 2, "{}", body.text());

    let req = with_header(post_json(&url, &chat_body(true)), "x-mock-reset-after", "2");
    let resp = send_h2c(req).await;
    let body = read_timed(resp.into_body()).await;
    assert!(body.error.is_some(), "h2 body ended cleanly: {}", body.text());
    assert_eq!(body.sse_data().len(), 2, "{}", body.text());

    // Non-streamed bodies can be reset too.
    let req = with_header(post_json(&url, &chat_body(false)), "x-mock-reset-after", "1");
    let body = read_timed(send(req).await.into_body()).await;
    assert!(body.error.is_some());
    let seen = m.wait_requests(3, WAIT).await;
    assert_eq!(seen[1].version, http::Version::HTTP_2);
    assert!(seen.iter().all(|r| !r.completed));
    assert_eq!(m.cancelled(), 0, "a deliberate reset is not a client cancellation");
}

#[tokio::test]
async fn stall_head_and_client_drop_counts_cancelled() {
    let m = mock(Flavor::OpenAi).await;
    let url = format!("{}/v1/chat/completions", m.url());
    let req = with_header(post_json(&url, &chat_body(true)), "x-mock-stall", "head");
    let r = tokio::time::timeout(Duration::from_millis(200), send(req)).await;
    assert!(r.is_err(), "stalled request got a response");
    m.wait_requests(1, WAIT).await;
    m.wait_cancelled(1, WAIT).await;

    // h2c: the stream reset cancels too.
    let req = with_header(post_json(&url, &chat_body(true)), "x-mock-stall", "head");
    let r = tokio::time::timeout(Duration::from_millis(200), send_h2c(req)).await;
    assert!(r.is_err());
    m.wait_cancelled(2, WAIT).await;
}

#[tokio::test]
async fn stall_after_then_drop_body_counts_cancelled() {
    let m = mock(Flavor::Ollama).await;
    let req = with_header(post_json(&format!("{}/api/chat", m.url()), &chat_body(true)), "x-mock-stall-after", "2");
    let resp = send(req).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    let mut got = 0;
    while got < 2 {
        let f = body.frame().await.unwrap().unwrap();
        if f.is_data() {
            got += 1;
        }
    }
    let next = tokio::time::timeout(Duration::from_millis(100), body.frame()).await;
    assert!(next.is_err(), "stalled body produced more");
    let seen = m.wait_requests(1, WAIT).await;
    assert_eq!(seen[0].chunks_sent_at.len(), 2);
    drop(body);
    m.wait_cancelled(1, WAIT).await;
    assert!(!m.requests()[0].completed);
}

#[tokio::test]
async fn head_delay_and_body_bytes() {
    let m = mock(Flavor::Tgi).await;
    let start = Instant::now();
    let req =
        with_header(post_json(&format!("{}/generate", m.url()), &json!({"inputs": "x"})), "x-mock-head-delay-ms", "80");
    let resp = send(req).await;
    assert!(start.elapsed() >= Duration::from_millis(80));
    assert_eq!(resp.status(), 200);
    let req = with_header(
        post_json(&format!("{}/generate", m.url()), &json!({"inputs": "x"})),
        "x-mock-body-bytes",
        "100000",
    );
    let resp = send(req).await;
    let body = client::read_body(resp.into_body()).await;
    assert!((99_000..=101_000).contains(&body.len()), "{}", body.len());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["generated_text"], "Hello from the mock model. It says");
}

#[tokio::test]
async fn echo_returns_exact_bytes() {
    let m = mock(Flavor::Ollama).await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let req = with_header(
        client::post_bytes(&format!("{}/api/blobs/sha256:abc", m.url()), "application/octet-stream", payload.clone()),
        "x-mock-echo",
        "1",
    );
    let resp = send(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(client::read_body(resp.into_body()).await, Bytes::from(payload.clone()));
    let seen = m.wait_requests(1, WAIT).await;
    assert_eq!(seen[0].body.len(), payload.len());
    // Without echo, blobs answer 201.
    let resp =
        send(client::post_bytes(&format!("{}/api/blobs/sha256:abc", m.url()), "application/octet-stream", payload))
            .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn fixed_body_mode() {
    let fixed = testkit::mock::fixed_chat_body(2048);
    assert!((2000..=2100).contains(&fixed.len()), "{}", fixed.len());
    let m = MockServer::start(MockOptions::new(Flavor::OpenAi).with_fixed_body(fixed.clone())).await;
    for _ in 0..3 {
        let resp = send(post_json(&format!("{}/v1/chat/completions", m.url()), &chat_body(true))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(client::read_body(resp.into_body()).await, fixed);
    }
    assert!(m.requests().is_empty());
}

#[tokio::test]
async fn ollama_streams_by_default() {
    let m = mock(Flavor::Ollama).await;
    let body = json!({"model": "m2", "messages": [{"role": "user", "content": "one two three"}]});
    let resp = send(post_json(&format!("{}/api/chat", m.url()), &body)).await;
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let lines = read_timed(resp.into_body()).await.ndjson();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["message"]["content"], "Hello");
    assert_eq!(lines[0]["done"], false);
    let last = &lines[8];
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["prompt_eval_count"], 3);
    assert_eq!(last["eval_count"], 8);
    assert_eq!(last["model"], "m2");
    assert!(last["created_at"].as_str().unwrap().ends_with('Z'));

    let resp = send(post_json(
        &format!("{}/api/generate", m.url()),
        &json!({"model": "m1", "prompt": "hi", "stream": false, "options": {"num_predict": 2}}),
    ))
    .await;
    let (_, v) = read_json(resp).await;
    assert_eq!(v["response"], "Hello from");
    assert_eq!(v["done_reason"], "length");
    assert_eq!(v["eval_count"], 2);

    let (_, v) = read_json(send(client::get(&format!("{}/api/tags", m.url()))).await).await;
    assert_eq!(v["models"][1]["name"], "m2");
    assert!(v["models"][0]["digest"].is_string());
    assert!(v["models"][0]["details"]["family"].is_string());
    let resp = send(post_json(&format!("{}/api/pull", m.url()), &json!({"model": "m3"}))).await;
    let lines = read_timed(resp.into_body()).await.ndjson();
    assert_eq!(lines.last().unwrap()["status"], "success");
    let resp =
        send(client::request(Method::DELETE, &format!("{}/api/delete", m.url()), Some(&json!({"model": "m1"})))).await;
    assert_eq!(resp.status(), 200);
    let (_, v) = read_json(send(client::get(&format!("{}/v1/models", m.url()))).await).await;
    assert_eq!(v["data"][0]["owned_by"], "library");
    let (status, v) = read_json(send(client::get(&format!("{}/api/nope", m.url()))).await).await;
    assert_eq!(status, 404);
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn llamacpp_completion_stream() {
    let m = mock(Flavor::LlamaCpp).await;
    let req = with_header(
        post_json(&format!("{}/completion", m.url()), &json!({"prompt": "a b c", "stream": true})),
        "x-mock-tokens",
        "3",
    );
    let data = read_timed(send(req).await.into_body()).await.sse_data();
    assert_eq!(data.len(), 4);
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["stop"], false);
    assert_eq!(first["content"], "Hello");
    let last: Value = serde_json::from_str(&data[3]).unwrap();
    assert_eq!(last["stop"], true);
    assert_eq!(last["tokens_predicted"], 3);
    assert_eq!(last["tokens_evaluated"], 3);
    assert_eq!(last["stop_type"], "eos");
    assert!(last["timings"]["predicted_n"].is_number());
    for p in ["/health", "/slots", "/props", "/v1/models"] {
        assert_eq!(send(client::get(&format!("{}{p}", m.url()))).await.status(), 200, "{p}");
    }
    let (status, v) = read_json(send(client::get(&format!("{}/nope", m.url()))).await).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], 404);
}

#[tokio::test]
async fn tgi_generate_and_stream() {
    let m = mock(Flavor::Tgi).await;
    let body = json!({"inputs": "what is up", "parameters": {"details": true, "max_new_tokens": 5}});
    let resp = send(post_json(&format!("{}/generate", m.url()), &body)).await;
    assert_eq!(resp.headers()["x-generated-tokens"], "5");
    let (_, v) = read_json(resp).await;
    assert_eq!(v["details"]["finish_reason"], "length");
    assert_eq!(v["details"]["generated_tokens"], 5);
    let (_, v) = read_json(send(post_json(&format!("{}/generate", m.url()), &json!({"inputs": "x"}))).await).await;
    assert!(v.get("details").is_none());
    let resp = send(post_json(&format!("{}/generate_stream", m.url()), &json!({"inputs": "x"}))).await;
    let data = read_timed(resp.into_body()).await.sse_data();
    assert_eq!(data.len(), 8);
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["token"]["text"], "Hello");
    assert_eq!(first["generated_text"], Value::Null);
    let last: Value = serde_json::from_str(&data[7]).unwrap();
    assert_eq!(last["details"]["generated_tokens"], 8);
    assert_eq!(last["details"]["finish_reason"], "eos_token");
    assert!(last["generated_text"].is_string());
    let (_, v) = read_json(send(client::get(&format!("{}/info", m.url()))).await).await;
    assert_eq!(v["model_id"], "m1");
    let (_, v) = read_json(send(post_json(&format!("{}/v1/chat/completions", m.url()), &chat_body(false))).await).await;
    assert_eq!(v["object"], "chat.completion");
}

#[tokio::test]
async fn triton_routes() {
    let m = mock(Flavor::Triton).await;
    let body =
        json!({"id": "42", "inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["hi you"]}]});
    let (_, v) = read_json(send(post_json(&format!("{}/v2/models/m2/infer", m.url()), &body)).await).await;
    assert_eq!(v["model_name"], "m2");
    assert_eq!(v["id"], "42");
    assert_eq!(v["outputs"][0]["data"][0], "Hello from the mock model. It says");
    let (_, v) =
        read_json(send(post_json(&format!("{}/v2/models/m1/generate", m.url()), &json!({"text_input": "x"}))).await)
            .await;
    assert!(v["text_output"].is_string());
    let req = with_header(
        post_json(&format!("{}/v2/models/m1/generate_stream", m.url()), &json!({"text_input": "x"})),
        "x-mock-tokens",
        "2",
    );
    let data = read_timed(send(req).await.into_body()).await.sse_data();
    assert_eq!(data.len(), 2);
    let (_, v) =
        read_json(send(client::request(Method::POST, &format!("{}/v2/repository/index", m.url()), None)).await).await;
    assert_eq!(
        v,
        json!([{"name": "m1", "version": "1", "state": "READY"}, {"name": "m2", "version": "1", "state": "READY"}])
    );
    for p in ["load", "unload"] {
        let resp = send(client::request(Method::POST, &format!("{}/v2/repository/models/m1/{p}", m.url()), None)).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(send(client::get(&format!("{}/v2/health/ready", m.url()))).await.status(), 200);
    let (status, v) = read_json(send(client::get(&format!("{}/v2/nope", m.url()))).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn dropping_the_mock_closes_connections() {
    let m = mock(Flavor::OpenAi).await;
    let url = format!("{}/v1/models", m.url());
    let c = client::http1_client();
    let resp = c.request(client::get(&url)).await.unwrap();
    let _ = client::read_body(resp.into_body()).await;
    drop(m);
    let deadline = Instant::now() + WAIT;
    loop {
        if c.request(client::get(&url)).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "mock still answering after drop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
