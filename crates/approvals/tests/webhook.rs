//! Approval webhooks against the testkit receiver: signatures, payload, retries, a receiver that
//! is down, queue limits and group routing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use approvals::webhook::{Notice, WebhookStats, Webhooks, sign, verify};
use testkit::webhook::{WebhookReceiver, signature_ok};

const SECRET: &str = "webhook-test-secret";
const LONG: Duration = Duration::from_secs(20);

fn notice(id: &str, groups: &[&str]) -> Notice {
    Notice {
        id: id.to_owned(),
        requester: "alice".into(),
        requester_display: Some("Alice Example".into()),
        action: "chat".into(),
        model: Some("gpt-4o".into()),
        upstream: Some("openai".into()),
        excerpt: Some("summarise [EMAIL_1]'s contract".into()),
        approvers: groups.iter().map(|g| (*g).to_owned()).collect(),
        count: 1,
        approve_url: Some(format!("https://gw.example/approvals/{id}")),
        expires: SystemTime::now() + Duration::from_secs(600),
    }
}

/// Webhooks for `(group, url)` pairs, all signed with [`SECRET`] read from a file, with fast retries.
fn webhooks(dir: &testkit::TempDir, hooks: &[(&str, String)], attempts: u32) -> Webhooks {
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let config = config::ApprovalsConfig {
        webhooks: hooks
            .iter()
            .map(|(group, url)| config::WebhookConfig {
                group: (*group).to_owned(),
                url: url.clone(),
                secret_env: None,
                secret_file: Some(file.clone()),
            })
            .collect(),
        ..Default::default()
    };
    Webhooks::new(&config)
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(100), attempts)
        .with_timeout(Duration::from_secs(2))
}

async fn wait_stats(hooks: &Webhooks, what: &str, cond: impl Fn(&WebhookStats) -> bool) -> WebhookStats {
    let deadline = Instant::now() + LONG;
    loop {
        let s = hooks.stats();
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn signed_payload_arrives() {
    let rx = WebhookReceiver::start(SECRET.as_bytes()).await;
    let dir = testkit::temp_dir("webhook-payload");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 3);
    hooks.start();
    hooks.notify(&notice("apr_1", &["ml-leads"]));
    let got = rx.wait_deliveries(1, LONG).await;
    let d = &got[0];
    assert!(d.signature_valid, "signature: {:?}", d.header("x-modelgate-signature"));
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(d.path, "/hook");
    let id = d.delivery_id().unwrap();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    // The sender's own check agrees with the receiver's.
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let header = d.header("x-modelgate-signature").unwrap();
    assert!(verify(SECRET.as_bytes(), header, &d.body, now, Duration::from_secs(300)));
    assert!(!verify(b"wrong", header, &d.body, now, Duration::from_secs(300)));
    // Payload.
    let j = &d.json;
    let text = j["text"].as_str().unwrap();
    assert!(text.contains("Alice Example") && text.contains("chat") && text.contains("gpt-4o"), "{text}");
    assert!(text.contains("https://gw.example/approvals/apr_1"), "{text}");
    assert!(j["blocks"].as_array().is_some_and(|b| b.iter().any(|b| b["type"] == "actions")));
    assert_eq!(j["@type"], "MessageCard");
    assert_eq!(j["potentialAction"][0]["targets"][0]["uri"], "https://gw.example/approvals/apr_1");
    assert_eq!(j["modelgate"]["event"], "approval.requested");
    assert_eq!(j["modelgate"]["id"], "apr_1");
    assert_eq!(j["modelgate"]["excerpt"], "summarise [EMAIL_1]'s contract");
    assert_eq!(hooks.stats(), WebhookStats { delivered: 1, ..Default::default() });
}

#[tokio::test]
async fn receiver_with_another_secret_sees_a_bad_signature() {
    let rx = WebhookReceiver::start(b"not-the-secret").await;
    let dir = testkit::temp_dir("webhook-badsig");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 3);
    hooks.start();
    hooks.notify(&notice("apr_bad", &["ml-leads"]));
    let got = rx.wait_deliveries(1, LONG).await;
    assert!(!got[0].signature_valid);
}

#[test]
fn receiver_check_matches_sign() {
    let body = br#"{"x":1}"#;
    let now = 1_700_000_000;
    let h = sign(b"k", now, body);
    assert!(signature_ok(b"k", &h, body, now, Duration::from_secs(300)));
    assert!(!signature_ok(b"k", &h, b"{}", now, Duration::from_secs(300)));
    assert!(!signature_ok(b"k", &h, body, now + 301, Duration::from_secs(300)));
}

#[tokio::test]
async fn retried_after_503_and_delivered_once() {
    let rx = WebhookReceiver::start(SECRET.as_bytes()).await;
    rx.fail_next(2);
    let dir = testkit::temp_dir("webhook-retry");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 5);
    hooks.start();
    hooks.notify(&notice("apr_2", &["ml-leads"]));
    let got = rx.wait_deliveries(1, LONG).await;
    let stats = wait_stats(&hooks, "delivered", |s| s.delivered == 1).await;
    assert_eq!(stats, WebhookStats { delivered: 1, retried: 2, failed: 0, dropped: 0 });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts = rx.attempts();
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let ids: HashSet<&str> = attempts.iter().map(|a| a.delivery_id().unwrap()).collect();
    assert_eq!(ids.len(), 1, "same delivery id on every attempt: {ids:?}");
    assert!(attempts.iter().all(|a| a.signature_valid && a.body == got[0].body));
    assert_eq!(rx.deliveries().len(), 1, "arrives once");
    // Backoff: the attempts are spaced by at least the configured waits (20 ms, then 40 ms).
    assert!(attempts[1].received_at - attempts[0].received_at >= Duration::from_millis(20));
    assert!(attempts[2].received_at - attempts[1].received_at >= Duration::from_millis(40));
}

#[tokio::test]
async fn client_error_gives_up_at_once_and_exhausted_retries_fail() {
    let rx = WebhookReceiver::start(SECRET.as_bytes()).await;
    let dir = testkit::temp_dir("webhook-giveup");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 3);
    hooks.start();
    rx.fail_next_with(1, 400);
    hooks.notify(&notice("apr_400", &["ml-leads"]));
    wait_stats(&hooks, "a failure", |s| s.failed == 1).await;
    assert_eq!(rx.attempts().len(), 1, "no retry after 400");

    rx.clear();
    rx.fail_next_with(10, 500);
    hooks.notify(&notice("apr_500", &["ml-leads"]));
    let s = wait_stats(&hooks, "a second failure", |s| s.failed == 2).await;
    assert_eq!(rx.attempts().len(), 3, "three attempts in all");
    assert_eq!(s.retried, 2);
    assert_eq!(s.delivered, 0);

    rx.clear();
    rx.fail_next_with(1, 429);
    hooks.notify(&notice("apr_429", &["ml-leads"]));
    rx.wait_deliveries(1, LONG).await;
    assert_eq!(rx.attempts().len(), 2, "429 is retried");
}

#[tokio::test]
async fn receiver_down_never_blocks_and_gets_everything_later() {
    let rx = WebhookReceiver::start(SECRET.as_bytes()).await;
    let dir = testkit::temp_dir("webhook-down");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 200);
    hooks.start();
    rx.go_down().await;

    const N: usize = 200;
    let started = Instant::now();
    for i in 0..N {
        hooks.notify(&notice(&format!("apr_down_{i}"), &["ml-leads"]));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "notify blocked: {N} calls took {took:?}");

    // Let the first attempts fail against the closed port.
    wait_stats(&hooks, "failed attempts while down", |s| s.retried >= 10).await;
    assert!(rx.attempts().is_empty());
    let started = Instant::now();
    hooks.notify(&notice("apr_down_last", &["ml-leads"]));
    assert!(started.elapsed() < Duration::from_millis(250), "notify blocked while deliveries retry");

    rx.come_up().await;
    let got = rx.wait_deliveries(N + 1, LONG).await;
    let ids: HashSet<String> = got.iter().map(|d| d.json["modelgate"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), N + 1, "each notice delivered exactly once");
    assert!(got.iter().all(|d| d.signature_valid));
    let s = wait_stats(&hooks, "all delivered", |s| s.delivered == (N + 1) as u64).await;
    assert_eq!((s.failed, s.dropped), (0, 0));
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let rx = WebhookReceiver::start(SECRET.as_bytes()).await;
    rx.go_down().await;
    let dir = testkit::temp_dir("webhook-full");
    let hooks = webhooks(&dir, &[("ml-leads", rx.url())], 1000).with_limits(2, 1);
    hooks.start();
    let started = Instant::now();
    for i in 0..10 {
        hooks.notify(&notice(&format!("apr_full_{i}"), &["ml-leads"]));
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    let dropped = hooks.stats().dropped;
    assert!((7..=8).contains(&dropped), "queue of 2 plus at most 1 in flight: dropped {dropped}");
    rx.come_up().await;
    let got = rx.wait_deliveries(10 - dropped as usize, LONG).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.deliveries().len(), got.len(), "dropped notices never arrive");
}

#[tokio::test]
async fn only_the_notice_groups_are_called() {
    let a = WebhookReceiver::start(SECRET.as_bytes()).await;
    let b = WebhookReceiver::start(SECRET.as_bytes()).await;
    let c = WebhookReceiver::start(SECRET.as_bytes()).await;
    let dir = testkit::temp_dir("webhook-groups");
    let hooks = webhooks(&dir, &[("ml-leads", a.url()), ("finance", b.url()), ("security", c.url())], 3);
    hooks.start();
    hooks.notify(&notice("apr_g", &["ml-leads", "security", "nobody"]));
    let got_a = a.wait_deliveries(1, LONG).await;
    let got_c = c.wait_deliveries(1, LONG).await;
    assert_ne!(got_a[0].delivery_id(), got_c[0].delivery_id(), "one delivery per webhook");
    wait_stats(&hooks, "two deliveries", |s| s.delivered == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.attempts().is_empty(), "finance is not an approver group of this request");
    assert_eq!((a.attempts().len(), c.attempts().len()), (1, 1));

    hooks.notify(&notice("apr_none", &["other"]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hooks.stats().delivered, 2);
    assert_eq!(a.attempts().len() + b.attempts().len() + c.attempts().len(), 2);
}
