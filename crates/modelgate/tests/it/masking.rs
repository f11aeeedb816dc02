//! Masking through the real binary (issue 7): tokenize end-to-end (the model never sees a value,
//! the caller gets every one back, streamed or not), redaction of a streamed answer with values
//! split across events, the masked recording and counts, fail-closed refusals, and the time to
//! first token through masking.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use testkit::{Flavor, GatewayProcess, MockServer};

use crate::support::*;

const EMAIL: &str = "jane.doe@example.com";
const AWS: &str = "AKIAZ7VQ3X4LRTM2PQ5N";

fn rules() -> String {
    String::from(
        r#"
[masking.profiles.tok]
entities = ["EMAIL", "SECRET_*", "PHONE"]
mode = "tokenize"

[masking.profiles.red]
entities = ["*"]
mode = "redact"

[[access]]
id = "tokenized-chat"
groups = ["users"]
actions = ["inference"]
models = ["mock-model"]
mask = "tok"

[[access]]
id = "redacted-chat"
groups = ["users"]
actions = ["inference"]
models = ["redact-*"]
mask = "red"

[[access]]
id = "plain-chat"
groups = ["users"]
actions = ["inference"]
models = ["plain-*"]

[[access]]
id = "masked-uploads"
groups = ["users"]
actions = ["data"]
mask = "red"
"#,
    )
}

async fn setup() -> (MockServer, GatewayProcess) {
    let mock = mock(Flavor::OpenAi).await;
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let gw = start(&config("", &format!("{up}\n{}", rules())));
    (mock, gw)
}

fn data_dir(gw: &GatewayProcess) -> std::path::PathBuf {
    gw.dir.join("modelgate-data")
}

/// The concatenated `delta.content` of an SSE chat stream, and the raw text received.
fn sse_text(raw: &str) -> String {
    raw.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_keeps_values_from_the_model_and_restores_them_for_the_caller() {
    let (mock, gw) = setup().await;
    let prompt = format!("mail {EMAIL} the key {AWS} please");
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": prompt}]});
    let url = format!("{}/v1/chat/completions", gw.data_url);

    // Not streamed: the mock echoes what it received, so the answer holds the placeholders.
    let (s, h, b) = call(json_req("POST", &url, &body, &[("x-mock-echo", "1")])).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let seen = String::from_utf8_lossy(&mock.requests()[0].body).to_string();
    assert!(!seen.contains(EMAIL) && !seen.contains(AWS), "the model saw a value: {seen}");
    assert!(seen.contains("<EMAIL_1>") && seen.contains("<SECRET_AWS_ACCESS_KEY_1>"), "{seen}");
    let got = String::from_utf8_lossy(&b).to_string();
    assert!(got.contains(EMAIL) && got.contains(AWS), "not restored for the caller: {got}");
    // The recording keeps the masked form; the events carry counts, never values.
    let rid = h["x-request-id"].to_str().unwrap().to_string();
    let events = exchange_events(&data_dir(&gw), &rid);
    let req = events.iter().find(|e| e["event_type"] == "inference.request").unwrap();
    assert_eq!(req["masking"]["request"]["EMAIL"]["masked"], 1, "{req}");
    let (input, _) = stored_content(&data_dir(&gw), req["content"]["input_ref"].as_str().unwrap());
    let input = String::from_utf8_lossy(&input).to_string();
    assert!(!input.contains(EMAIL) && input.contains("<EMAIL_1>"), "{input}");
    let done = events.iter().find(|e| e["event_type"] == "inference.completion").unwrap();
    let (output, _) = stored_content(&data_dir(&gw), done["content"]["output_ref"].as_str().unwrap());
    let output = String::from_utf8_lossy(&output).to_string();
    assert!(!output.contains(EMAIL) && !output.contains(AWS), "the recording holds a value: {output}");
    for e in &events {
        let t = e.to_string();
        assert!(!t.contains(EMAIL) && !t.contains(AWS), "an event holds a value: {t}");
    }

    // Streamed: the model answers with a placeholder split across 3-character deltas; the
    // caller's stream has the value back.
    let mut body = body.clone();
    body["stream"] = json!(true);
    let say = "Sent to <EMAIL_1> just now.";
    let res = testkit::client::send(json_req("POST", &url, &body, &[("x-mock-say", say)])).await;
    assert_eq!(res.status(), 200);
    let raw = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).to_string();
    assert_eq!(sse_text(&raw), format!("Sent to {EMAIL} just now."), "{raw}");
    let seen = String::from_utf8_lossy(&mock.requests()[1].body).to_string();
    assert!(!seen.contains(EMAIL) && !seen.contains(AWS), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_stream_never_shows_a_fragment_of_a_value() {
    let (mock, gw) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let body = json!({"model": "redact-model", "stream": true, "messages": [{"role": "user", "content": "contact?"}]});
    let say = "Call bob.smith@example.org or use key AKIAQ4XW7RT2ZP9MLK3D today.";
    let res =
        testkit::client::send(json_req("POST", &url, &body, &[("x-mock-say", say), ("x-mock-delay-ms", "1")])).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut raw = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Ok(d) = frame.into_data() {
            let d: Bytes = d;
            raw.push_str(&String::from_utf8_lossy(&d));
            // No prefix of a masked value ever reaches the caller, in any chunk so far.
            let text = sse_text(&raw);
            for fragment in ["bob.", "bob.smith", "example.org", "AKIAQ", "Q4XW"] {
                assert!(!text.contains(fragment), "{fragment:?} leaked: {text:?}");
            }
        }
    }
    assert_eq!(sse_text(&raw), "Call [EMAIL] or use key [SECRET_AWS_ACCESS_KEY] today.", "{raw}");
    assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
    assert_eq!(mock.requests().len(), 1);
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_masked_is_refused_and_never_forwarded() {
    let (mock, gw) = setup().await;
    // A streamed upload under a profile that masks requests: refused, recorded, not forwarded.
    let key = key_for(&gw.data_url).unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/files", gw.data_url))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body(http_body_util::Full::new(Bytes::from_static(b"--x\r\ncontent-disposition: form-data; name=\"file\"\r\n\r\nmy email is jane.doe@example.com\r\n--x--\r\n")))
        .unwrap();
    let (s, h, b) = call(req).await;
    assert_eq!((s, error_code(&b).as_str()), (500, "masking_failed"), "{}", String::from_utf8_lossy(&b));
    assert!(mock.requests().is_empty(), "an unmaskable body was forwarded");
    let rid = h["x-request-id"].to_str().unwrap().to_string();
    let done = eventually("the refusal's record", || {
        exchange_events(&data_dir(&gw), &rid).into_iter().find(|e| e["reason"] == "masking_failed")
    });
    assert_eq!(done["status_code"], 500);
}

/// Streams a chat answer of `say` (tokens cut at `|`, `delay_ms` apart) from `model`; returns
/// when the first non-empty content arrived, from the request's start, and the whole text.
async fn first_token(url: &str, model: &str, say: &str, delay_ms: u64) -> (std::time::Duration, String) {
    let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let delay = delay_ms.to_string();
    let t0 = std::time::Instant::now();
    let res =
        testkit::client::send(json_req("POST", url, &body, &[("x-mock-say", say), ("x-mock-delay-ms", &delay)])).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let (mut raw, mut first) = (String::new(), None);
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            raw.push_str(&String::from_utf8_lossy(&d));
            if first.is_none() && !sse_text(&raw).is_empty() {
                first = Some(t0.elapsed());
            }
        }
    }
    (first.expect("no content arrived"), sse_text(&raw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_token_that_ends_a_word_is_not_held_back() {
    let (_mock, gw) = setup().await;
    let url = format!("{}/v1/chat/completions", gw.data_url);
    const DELAY: u64 = 600;
    // The first token ends a word: masked, it goes out as soon as unmasked (both calls run at
    // once, so load on the machine delays both alike).
    let say = "Hello, |how are |you? ";
    let (plain, masked) =
        tokio::join!(first_token(&url, "plain-model", say, DELAY), first_token(&url, "redact-model", say, DELAY));
    assert_eq!((plain.1.as_str(), masked.1.as_str()), ("Hello, how are you?", "Hello, how are you?"));
    assert!(
        masked.0 < plain.0 + std::time::Duration::from_millis(DELAY / 2),
        "masked first token at {:?}, unmasked at {:?}",
        masked.0,
        plain.0
    );
    // A first token that stops inside a word is held until the next one shows where the word
    // ends (it could still grow into an email address): one token later.
    let say = "Hel|lo, |how are you? ";
    let (plain, masked) =
        tokio::join!(first_token(&url, "plain-model", say, DELAY), first_token(&url, "redact-model", say, DELAY));
    assert!(
        masked.0 > plain.0 + std::time::Duration::from_millis(DELAY / 2),
        "masked first token at {:?}, unmasked at {:?}",
        masked.0,
        plain.0
    );
}
