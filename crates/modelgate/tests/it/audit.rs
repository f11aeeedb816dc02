//! The audit trail as a caller and an auditor see it: two records per exchange, keyed by the
//! `x-request-id` the caller got, with the recorded bodies, refusals and failures recorded too,
//! lifecycle events, and one chain across the gateway and CLI writers.

use serde_json::{Value, json};
use testkit::client::{read_body, read_timed, send, with_header};
use testkit::{Flavor, MockOptions, MockServer};

use crate::support::*;

fn audit_config(data_dir: &std::path::Path, durability: &str, mock: &MockServer, extra: &str) -> String {
    let up = upstream("up", &mock.url(), mock.flavor().name(), &["mock-*"], extra);
    config(&format!("data_dir = \"{}\"\n\n[audit]\ndurability = \"{durability}\"", data_dir.display()), &up)
}

fn request_id<B>(res: &http::Response<B>) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_string()
}

/// Waits for an exchange's completion record and returns (request, completion).
fn records(data_dir: &std::path::Path, id: &str) -> (Value, Value) {
    eventually(&format!("both records of {id}"), || {
        let evs = exchange_events(data_dir, id);
        let req = evs.iter().find(|e| e["event_type"].as_str().is_some_and(|t| t.ends_with(".request")))?.clone();
        let done = evs.iter().find(|e| e["event_type"].as_str().is_some_and(|t| t.ends_with(".completion")))?.clone();
        Some((req, done))
    })
}

#[tokio::test]
async fn every_exchange_has_a_request_and_a_completion_record_in_each_mode() {
    let mock = MockServer::start(
        MockOptions::new(Flavor::Vllm)
            .with_models(&["mock-model", "mock-embed"])
            .with_delay(std::time::Duration::from_millis(5)),
    )
    .await;
    for mode in ["strict", "balanced", "async"] {
        let data = testkit::temp_dir(&format!("audit-{mode}"));
        let gw = start(&audit_config(data.path(), mode, &mock, ""));
        let url = format!("{}/v1/chat/completions", gw.data_url);

        // Non-streamed: the recorded bodies are exactly what went in and came out.
        let body = chat("mock-model", false);
        let res =
            send(json_req("POST", &url, &body, &[("x-request-id", "client-abc"), ("user-agent", "audit-test/1")]))
                .await;
        assert_eq!(res.status(), 200, "{mode}");
        let id = request_id(&res);
        assert_ne!(id, "client-abc", "a caller's request id is kept, never used as the key");
        let answer = read_body(res.into_body()).await;
        let (req, done) = records(data.path(), &id);
        assert_eq!(req["event_type"], "inference.request", "{mode}");
        assert_eq!(req["code"], "MG-INF-001I");
        assert_eq!(req["action"], "inference.chat");
        assert_eq!(req["actor"]["subject"], "tester");
        assert_eq!(req["actor"]["auth_method"], "api_key");
        assert_eq!(req["actor"]["user_agent"], "audit-test/1");
        assert_eq!(req["client_request_id"], "client-abc");
        assert_eq!(req["resource"], json!({"id": "mock-model", "type": "model", "upstream": "up"}));
        assert_eq!(req["gen_ai"]["request.model"], "mock-model");
        assert_eq!(req["gen_ai"]["provider.name"], "vllm");
        assert_eq!(req["gen_ai"]["request.stream"], false);
        assert_eq!(req["schema"], "modelgate.audit.v1");
        let (stored_in, _) = stored_content(data.path(), req["content"]["input_ref"].as_str().unwrap());
        assert_eq!(stored_in, serde_json::to_vec(&body).unwrap());
        assert!(req["content"]["input_digest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(done["event_type"], "inference.completion");
        assert_eq!(done["outcome"], "success");
        assert_eq!(done["status_code"], 200);
        assert_eq!(done["end"], "completed");
        assert!(done["gen_ai"]["usage.input_tokens"].as_u64().unwrap() > 0);
        assert!(done["gen_ai"]["usage.output_tokens"].as_u64().unwrap() > 0);
        assert_eq!(done["bytes_out"], answer.len());
        let (stored_out, timing) = stored_content(data.path(), done["content"]["output_ref"].as_str().unwrap());
        assert_eq!(stored_out, answer.to_vec());
        assert!(timing.is_some());
        assert!(req["seq"].as_u64() < done["seq"].as_u64(), "the request is written first");

        // Streamed: the reassembled stream with per-chunk timing.
        let res = send(with_header(json_req("POST", &url, &chat("mock-model", true), &[]), "x-mock-tokens", "6")).await;
        assert_eq!(res.status(), 200);
        let id = request_id(&res);
        let timed = read_timed(res.into_body()).await;
        let (req, done) = records(data.path(), &id);
        assert_eq!(req["gen_ai"]["request.stream"], true);
        assert_eq!(done["end"], "completed");
        assert_eq!(done["gen_ai"]["usage.output_tokens"], 6);
        assert!(done["ttft_ms"].is_u64());
        let (stored_out, timing) = stored_content(data.path(), done["content"]["output_ref"].as_str().unwrap());
        assert_eq!(stored_out, timed.bytes().to_vec(), "the stream is stored as the caller got it");
        let timing: Vec<(u64, u64)> = serde_json::from_str(&timing.unwrap()).unwrap();
        assert!(timing.len() >= 6, "one timing entry per chunk: {timing:?}");
        assert!(timing.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        drop(gw);
    }
}

#[tokio::test]
async fn metadata_recording_stores_no_bodies() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("audit-metadata");
    let gw = start(&audit_config(data.path(), "strict", &mock, "recording = \"metadata\""));
    let res =
        send(json_req("POST", &format!("{}/v1/chat/completions", gw.data_url), &chat("mock-model", false), &[])).await;
    assert_eq!(res.status(), 200);
    let id = request_id(&res);
    read_body(res.into_body()).await;
    let (req, done) = records(data.path(), &id);
    assert!(req.get("content").is_none(), "{req}");
    assert!(done.get("content").is_none(), "{done}");
    assert!(done["gen_ai"]["usage.output_tokens"].is_u64());
}

#[tokio::test]
async fn refusals_and_failures_are_recorded_with_the_callers_request_id() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("audit-failures");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}");
    let ups =
        upstream("up", &mock.url(), "openai", &["mock-*"], "") + &upstream("gone", &dead, "openai", &["dead-*"], "");
    let gw = start(&config(&format!("data_dir = \"{}\"", data.path().display()), &ups));
    let url = format!("{}/v1/chat/completions", gw.data_url);

    // 401: an auth.failure event with the reason, never the credential.
    let res =
        send(json_req("POST", &url, &chat("mock-model", false), &[("authorization", "Bearer mgk_nope_secretvalue")]))
            .await;
    assert_eq!(res.status(), 401);
    let id = request_id(&res);
    let ev = eventually("auth.failure", || exchange_events(data.path(), &id).into_iter().next());
    assert_eq!(ev["event_type"], "auth.failure");
    assert_eq!(ev["outcome"], "denied");
    assert_eq!(ev["status_code"], 401);
    assert!(ev["reason"].is_string());
    assert!(!ev.to_string().contains("secretvalue"), "a credential reached the trail: {ev}");

    // 404, 400 and 502: a request record and a completion carrying the error code.
    for (body, status, code) in [
        (chat("nobody-serves-this", false), 404, "no_route"),
        (json!("not an object"), 400, "invalid_request"),
        (chat("dead-model", false), 502, "upstream_unavailable"),
    ] {
        let res = send(json_req("POST", &url, &body, &[])).await;
        assert_eq!(res.status(), status);
        let id = request_id(&res);
        let (req, done) = records(data.path(), &id);
        assert_eq!(req["actor"]["subject"], "tester");
        assert_eq!(done["status_code"], status, "{done}");
        assert_eq!(done["reason"], code);
        assert_ne!(done["outcome"], "success");
    }
}

#[tokio::test]
async fn lifecycle_and_token_events_share_one_chain_across_writers() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("audit-lifecycle");
    let mut gw = start(&audit_config(data.path(), "balanced", &mock, ""));
    assert!(gw.stdout().contains("audit signing key created: ed25519 SHA256:"), "{}", gw.stdout());
    let bob = gw.create_key("bob", &[]);
    let out = gw.cli(&["token", "revoke", bob["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    gw.signal_term();
    assert!(gw.wait_exit(SOON).is_some_and(|s| s.success()));

    let events = audit_events(data.path());
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    for t in ["gateway.start", "config.loaded", "token.created", "token.revoked", "gateway.stop"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert_eq!(types.last(), Some(&"gateway.stop"));
    let created = events.iter().find(|e| e["event_type"] == "token.created").unwrap();
    assert_eq!(created["actor"]["auth_method"], "local");
    let writers: std::collections::HashSet<&str> = events.iter().map(|e| e["writer_id"].as_str().unwrap()).collect();
    assert!(writers.len() >= 3, "the gateway and each CLI run are writers of their own: {writers:?}");
    // One chain: every event points at the one before it.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        let prev = if i == 0 { "0".repeat(64) } else { events[i - 1]["hash"].as_str().unwrap().to_string() };
        assert_eq!(e["prev_hash"], prev.as_str(), "chain broken at seq {}", i + 1);
    }

    // A restart continues from the head and prints the same key, not a new one.
    let gw2 = start(&audit_config(data.path(), "balanced", &mock, ""));
    assert!(gw2.stdout().contains("audit signing key: ed25519 SHA256:"), "{}", gw2.stdout());
    let first_new = eventually("the second start's event", || {
        audit_events(data.path()).into_iter().filter(|e| e["event_type"] == "gateway.start").nth(1)
    });
    assert_eq!(first_new["prev_hash"], events.last().unwrap()["hash"]);
}

#[tokio::test]
async fn the_admin_api_serves_the_latest_signed_checkpoint_to_auditors() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("audit-checkpoint");
    let gw = start(&audit_config(data.path(), "strict", &mock, ""));
    let url = format!("{}/admin/v1/checkpoints/latest", gw.admin_url);
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let res = send(testkit::client::with_bearer(testkit::client::get(&url), admin.trim())).await;
    assert_eq!(res.status(), 200);
    let ckpt: Value = serde_json::from_slice(&read_body(res.into_body()).await).unwrap();
    assert_eq!(ckpt["body"]["schema"], "modelgate.checkpoint.v1");
    assert!(ckpt["body"]["seq"].is_u64());
    let public = std::fs::read_to_string(data.join("audit-signing.pub")).unwrap();
    assert_eq!(ckpt["public_key"].as_str().unwrap(), public.trim());
    // Without the auditor role: 403.
    let res =
        send(testkit::client::with_bearer(testkit::client::get(&url), key_for(&gw.data_url).unwrap().as_str())).await;
    assert_eq!(res.status(), 403);
}
