//! Store failures (SPEC section 5): a failing fsync and a full disk, injected with
//! `MODELGATE_AUDIT_FAULTS`. `strict` and `balanced` fail closed (503 `audit_unavailable`,
//! `/readyz` 503) and recover without a restart, with an `audit.outage` event that counts the
//! refusals; `async` keeps serving and counts what it could not keep in `audit.gap`; a kill -9
//! mid-stream is reported by the next start's `gateway.recovered`.

use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::Value;
use testkit::client::Http1Client;

use ::audit::writer::RETRY_INTERVAL;

use crate::crash::{
    Call, Trail, assert_chain, audit_config, check_recovered, launch, one_call, paced_mock, poll, read_rest, send_call,
};
use crate::support::{SOON, get};

/// The fault-injection variable (`audit::writer::FAULTS_ENV`).
const FAULTS: &str = ::audit::writer::FAULTS_ENV;

async fn status_of(client: &Http1Client, url: &str) -> u16 {
    client.request(get(url)).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A metric's value from the admin listener's `/metrics` (0 when absent).
async fn metric(client: &Http1Client, admin_url: &str, name: &str) -> f64 {
    let res = client.request(get(&format!("{admin_url}/metrics"))).await.unwrap();
    let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn set_fault(path: &Path, fault: &str) {
    std::fs::write(path, fault).unwrap();
}

/// Asserts a refused call: 503, SPEC section 8 JSON with code `audit_unavailable`, the request id
/// in the body and the head.
fn assert_refused(c: &Call, tag: &str) {
    assert_eq!(c.status, Some(503), "{tag}: {c:?}");
    assert!(c.full, "{tag}: {c:?}");
    let v: Value = serde_json::from_slice(&c.body).unwrap_or_else(|e| panic!("{tag}: not JSON ({e}): {c:?}"));
    assert_eq!(v["error"]["code"], "audit_unavailable", "{tag}: {v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{tag}: {v}");
    assert!(v["error"]["type"].is_string(), "{tag}: {v}");
    assert_eq!(v["error"]["request_id"].as_str(), c.id.as_deref(), "{tag}: {v}");
}

/// One store-failure episode in `mode`, with `fault` (`fsync` or `full`) injected.
async fn episode(mode: &str, fault: &str) {
    let tag = format!("[{mode}/{fault}]");
    let mock = paced_mock().await;
    let tmp = testkit::temp_dir(&format!("faults-{mode}-{fault}"));
    let data = tmp.join("data");
    let faults = tmp.join("faults");
    set_fault(&faults, "");
    let cfg = audit_config(&data, mode, &mock, "");
    let gw = launch(&cfg, &[(FAULTS, &faults.display().to_string())]);
    let key = gw.create_key("faults-tester", &[])["secret"].as_str().unwrap().to_string();
    let client = testkit::client::http1_client();
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let readyz = format!("{}/readyz", gw.admin_url);
    let stream_ctl = || vec![("x-mock-tokens", "6".to_string()), ("x-mock-delay-ms", "5".to_string())];

    let mut calls: Vec<Call> = Vec::new();
    for stream in [false, true] {
        let c = one_call(&client, &url, &key, stream, &stream_ctl()).await;
        assert!(c.ok(), "{tag} before the fault: {c:?}");
        calls.push(c);
    }
    assert_eq!(status_of(&client, &readyz).await, 200, "{tag}");

    // A slow stream under way when the store fails: its request record is durable (the head
    // arrived), its end comes during the outage.
    let slow = vec![("x-mock-tokens", "60".to_string()), ("x-mock-delay-ms", "25".to_string())];
    let (head, body) = send_call(&client, &url, &key, true, &slow).await;
    assert_eq!(head.status, Some(200), "{tag}: {head:?}");
    let in_flight = tokio::spawn(read_rest(head, body.unwrap()));

    // The fault: drive calls until the store refuses (a full disk only fails once SQLite needs
    // a new page).
    set_fault(&faults, fault);
    let deadline = Instant::now() + SOON;
    loop {
        let c = one_call(&client, &url, &key, calls.len() % 2 == 1, &stream_ctl()).await;
        let refused = c.status == Some(503);
        calls.push(c);
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "{tag}: no 503 within {SOON:?} of injecting the fault: {calls:?}");
    }
    let outage_began = Instant::now();
    assert!(!in_flight.is_finished(), "{tag}: the slow stream ended before the outage began (machine too slow?)");
    assert_eq!(status_of(&client, &readyz).await, 503, "{tag}: /readyz during the outage");
    assert_eq!(metric(&client, &gw.admin_url, "modelgate_audit_fail_closed").await, 1.0, "{tag}");
    // While it lasts (over several of the writer's retries, and until the slow stream is over):
    // every call is refused, streamed or not, and the gateway is not ready.
    while outage_began.elapsed() < 4 * RETRY_INTERVAL || !in_flight.is_finished() {
        let c = one_call(&client, &url, &key, calls.len() % 2 == 1, &stream_ctl()).await;
        assert_refused(&c, &format!("{tag} during the outage"));
        calls.push(c);
        assert!(outage_began.elapsed() < SOON, "{tag}: the slow stream did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_of(&client, &readyz).await, 503, "{tag}: /readyz during the outage");
    let slow = in_flight.await.unwrap();
    if mode == "strict" {
        // Its completion could not be made durable: the caller must not get the end of it.
        assert!(!slow.full, "{tag}: a strict stream ended cleanly while its completion record failed: {slow:?}");
    } else {
        // `balanced` promises the completion only by group commit: the stream is answered.
        assert!(slow.ok(), "{tag}: {slow:?}");
    }
    let slow_id = slow.id.clone().unwrap();
    calls.push(slow);

    // Cleared: the writer's retry finds the store healthy again, without a restart.
    set_fault(&faults, "");
    let mut ready = false;
    let deadline = Instant::now() + SOON;
    while !ready {
        ready = status_of(&client, &readyz).await == 200;
        assert!(ready || Instant::now() < deadline, "{tag}: /readyz still 503 {SOON:?} after clearing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for stream in [false, true] {
        let c = one_call(&client, &url, &key, stream, &stream_ctl()).await;
        assert!(c.ok(), "{tag} after recovery: {c:?}");
        calls.push(c);
    }
    assert_eq!(metric(&client, &gw.admin_url, "modelgate_audit_fail_closed").await, 0.0, "{tag}");

    let refused: Vec<&Call> = calls.iter().filter(|c| c.status == Some(503)).collect();
    for c in &refused {
        assert_refused(c, &tag);
    }
    let outage =
        poll(&format!("{tag} audit.outage"), SOON, || Trail::load(&data).of_type("audit.outage").next().cloned()).await;
    let d = &outage["details"];
    assert!(
        d["refused"].as_u64().unwrap_or(0) >= refused.len() as u64,
        "{tag}: audit.outage counts {} refused calls, the client saw {} 503s: {outage}",
        d["refused"],
        refused.len()
    );
    assert!(d["started"].is_string() && d["ended"].is_string() && d["duration_ms"].is_u64(), "{tag}: {outage}");
    assert!(
        outage["reason"].as_str().is_some_and(|r| r.contains(if fault == "full" { "full" } else { "fsync" })),
        "{tag}: {outage}"
    );
    assert!(
        metric(&client, &gw.admin_url, "modelgate_audit_refused_total").await >= refused.len() as f64,
        "{tag}: refused metric below the client's 503s"
    );

    // Nothing corrupted, nothing unaudited: the chain verifies, every answer has both records,
    // every refused call has either no record or a request record closed by a 503 completion.
    assert_chain(&data, &format!("{tag} after the outage"));
    let answered: Vec<&Call> = calls.iter().filter(|c| c.ok()).collect();
    let trail = poll(&format!("{tag} records of every answered call"), SOON, || {
        let t = Trail::load(&data);
        let (req, done) = (t.requests(), t.completions());
        let all = answered.iter().all(|c| {
            let id = c.id.as_deref().unwrap_or_default();
            req.contains_key(id) && done.contains_key(id)
        });
        let closed = refused.iter().all(|c| {
            let id = c.id.as_deref().unwrap_or_default();
            !req.contains_key(id) || done.get(id).is_some_and(|e| e["status_code"] == 503)
        });
        (all && closed).then_some(t)
    })
    .await;
    let done = trail.completions();
    // Nothing left open: the records kept through the outage were written on recovery.
    let open: Vec<&str> = trail.requests().into_keys().filter(|id| !done.contains_key(id)).collect();
    assert!(open.is_empty(), "{tag}: request records without a completion after recovery: {open:?}");
    assert!(done.contains_key(slow_id.as_str()), "{tag}: no completion for the stream under way");
    for c in &answered {
        let e = done[c.id.as_deref().unwrap()];
        assert_eq!(e["end"], "completed", "{tag}: {e}");
        assert_eq!(e["bytes_out"], c.body.len(), "{tag}: {e}");
    }
    if mode == "strict" {
        // The model never sees an unaudited request: none of the refused calls reached it.
        let req = trail.requests();
        for r in mock.requests() {
            let id = r.header("x-request-id").unwrap();
            assert!(req.contains_key(id), "{tag}: the model saw {id}, which has no request record");
            assert!(!refused.iter().any(|c| c.id.as_deref() == Some(id)), "{tag}: refused call {id} reached the model");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_fsync_failure_fails_closed_and_recovers_without_restart() {
    episode("strict", "fsync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_fsync_failure_fails_closed_and_recovers_without_restart() {
    episode("balanced", "fsync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_full_disk_fails_closed_and_recovers_without_restart() {
    episode("strict", "full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_full_disk_fails_closed_and_recovers_without_restart() {
    episode("balanced", "full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_keeps_serving_through_a_store_failure_and_counts_what_it_dropped() {
    let tag = "[async/fsync]";
    let mock = paced_mock().await;
    let tmp = testkit::temp_dir("faults-async");
    let data = tmp.join("data");
    let faults = tmp.join("faults");
    set_fault(&faults, "");
    let cfg = audit_config(&data, "async", &mock, "queue_limit = 4");
    let gw = launch(&cfg, &[(FAULTS, &faults.display().to_string())]);
    let key = gw.create_key("faults-tester", &[])["secret"].as_str().unwrap().to_string();
    let client = testkit::client::http1_client();
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let ctl = || vec![("x-mock-tokens", "4".to_string()), ("x-mock-delay-ms", "2".to_string())];
    let c = one_call(&client, &url, &key, false, &ctl()).await;
    assert!(c.ok(), "{tag}: {c:?}");

    set_fault(&faults, "fsync");
    // The store fails at its next commit; calls keep being answered meanwhile.
    let mut n = 0;
    let deadline = Instant::now() + SOON;
    while metric(&client, &gw.admin_url, "modelgate_audit_fail_closed").await != 1.0 {
        let c = one_call(&client, &url, &key, n % 2 == 1, &ctl()).await;
        assert!(c.ok(), "{tag} while the store starts failing: {c:?}");
        n += 1;
        assert!(Instant::now() < deadline, "{tag}: the store never failed");
    }
    // Well past the queue bound of 4 records (two per call).
    for i in 0..20 {
        let c = one_call(&client, &url, &key, i % 2 == 1, &ctl()).await;
        assert!(c.ok(), "{tag} during the outage: {c:?}");
    }
    let dropped_during = metric(&client, &gw.admin_url, "modelgate_audit_gap_events_total").await;
    assert!(dropped_during > 0.0, "{tag}: 20 calls over a queue of 4 and nothing counted as dropped");

    set_fault(&faults, "");
    // After recovery the gap events add up to the metric, exactly.
    let (sum, counted) = {
        let deadline = Instant::now() + SOON;
        loop {
            let sum: u64 =
                Trail::load(&data).of_type("audit.gap").map(|e| e["details"]["dropped"].as_u64().unwrap()).sum();
            let counted = metric(&client, &gw.admin_url, "modelgate_audit_gap_events_total").await;
            if sum as f64 == counted && Trail::load(&data).of_type("audit.outage").next().is_some() {
                break (sum, counted);
            }
            assert!(
                Instant::now() < deadline,
                "{tag}: audit.gap events report {sum} dropped, modelgate_audit_gap_events_total is {counted}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(sum > 0 && counted >= dropped_during, "{tag}: {sum} {counted} {dropped_during}");
    let c = one_call(&client, &url, &key, true, &ctl()).await;
    assert!(c.ok(), "{tag} after recovery: {c:?}");
    assert_chain(&data, tag);
    for e in Trail::load(&data).of_type("audit.gap") {
        assert_eq!(e["reason"], "async_queue_full", "{tag}: {e}");
    }
}

/// A kill -9 while a stream is being relayed: the next start lists that exchange, by the id the
/// caller got, as cut off by the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_is_reported_by_gateway_recovered() {
    for mode in ["strict", "balanced"] {
        let tag = format!("[{mode}]");
        let mock = paced_mock().await;
        let tmp = testkit::temp_dir(&format!("midstream-{mode}"));
        let data = tmp.join("data");
        let cfg = audit_config(&data, mode, &mock, "");
        let mut gw = launch(&cfg, &[]);
        let key = gw.create_key("faults-tester", &[])["secret"].as_str().unwrap().to_string();
        let crashed = poll("gateway.start", SOON, || Trail::load(&data).writer_of(gw.pid())).await;
        let url = format!("{}/v1/chat/completions", gw.data_url);
        let body = crate::support::chat("mock-model", true);
        let bearer = format!("Bearer {key}");
        let req = crate::support::json_req(
            "POST",
            &url,
            &body,
            &[("authorization", &bearer), ("x-mock-tokens", "200"), ("x-mock-delay-ms", "50")],
        );
        let client = testkit::client::http1_client();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200, "{tag}");
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(!first.is_empty(), "{tag}");
        gw.kill9();
        // The caller sees the stream break, not end.
        let mut rest = Vec::new();
        let broke = loop {
            match body.frame().await {
                None => break false,
                Some(Err(_)) => break true,
                Some(Ok(f)) => rest.extend_from_slice(&f.into_data().unwrap_or_default()),
            }
        };
        assert!(broke, "{tag}: the stream ended cleanly after kill -9: {}", String::from_utf8_lossy(&rest));

        let gw = launch(&cfg, &[]);
        let current = poll("gateway.start of the restart", SOON, || Trail::load(&data).writer_of(gw.pid())).await;
        assert_chain(&data, &tag);
        let trail = Trail::load(&data);
        assert_eq!(check_recovered(&trail, &crashed, &current, &tag), 1, "{tag}");
        let rec = trail.of_type("gateway.recovered").find(|e| e["writer_id"] == current.as_str()).unwrap();
        let x = &rec["details"]["exchanges"][0];
        assert_eq!(x["request_id"], id.as_str(), "{tag}: {rec}");
        assert_eq!(x["event_type"], "inference.request", "{tag}: {rec}");
        assert_eq!(x["action"], "inference.chat", "{tag}: {rec}");
        assert!(!trail.completions().contains_key(id.as_str()), "{tag}: a completion for the cut exchange");
        // Reported once: a further restart does not list it again.
        drop(gw);
        let gw = launch(&cfg, &[]);
        let third = poll("gateway.start of the third start", SOON, || Trail::load(&data).writer_of(gw.pid())).await;
        let again = Trail::load(&data);
        assert!(
            again
                .of_type("gateway.recovered")
                .all(|e| e["writer_id"] != third.as_str() || !e["details"]["exchanges"].to_string().contains(&id)),
            "{tag}: {id} reported again by a later start"
        );
    }
}

/// `strict` promises that no caller holds a whole answer whose record could be lost. For a
/// server-sent-event stream the answer is whole, for every OpenAI-style client, at `data: [DONE]`:
/// the relay must hold that event, not only the end of the chunked body, until the completion
/// record is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_holds_a_streams_end_marker_until_its_completion_is_durable() {
    let tag = "[strict/[DONE]]";
    let mock = paced_mock().await;
    let tmp = testkit::temp_dir("faults-done");
    let data = tmp.join("data");
    let faults = tmp.join("faults");
    set_fault(&faults, "");
    let gw = launch(&audit_config(&data, "strict", &mock, ""), &[(FAULTS, &faults.display().to_string())]);
    let key = gw.create_key("faults-tester", &[])["secret"].as_str().unwrap().to_string();
    let client = testkit::client::http1_client();
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let slow = vec![("x-mock-tokens", "20".to_string()), ("x-mock-delay-ms", "25".to_string())];
    let (head, body) = send_call(&client, &url, &key, true, &slow).await;
    assert_eq!(head.status, Some(200), "{tag}: {head:?}");
    // The request record is durable (strict answered the head); the completion's commit fails.
    set_fault(&faults, "fsync");
    let slow = read_rest(head, body.unwrap()).await;
    assert!(!slow.full, "{tag}: the stream ended cleanly: {slow:?}");
    let text = String::from_utf8_lossy(&slow.body);
    assert!(!text.contains("data: [DONE]"), "{tag}: the caller got the end of the stream: {slow:?}");
    assert!(text.contains("audit_unavailable"), "{tag}: no error event ended the stream: {slow:?}");
}
