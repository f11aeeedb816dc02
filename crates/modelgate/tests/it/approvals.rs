//! Just-in-time approvals through the real binary (issue 8): hold and ticket modes, request and
//! window grants, the rules (distinct people, no self-approval, expiry, revocation), a restart
//! between approval and retry, webhooks, and the story `audit show` tells.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use testkit::{Flavor, GatewayProcess, MockServer};

use crate::support::*;

const RULES: &str = r#"
[[access]]
id = "hold-request"
groups = ["contractors"]
actions = ["inference"]
models = ["mock-model"]
require_approval = { approvers = ["security"], count = 1, grant = "request", hold_timeout = "4s" }

[[access]]
id = "two-for-embeddings"
groups = ["contractors"]
actions = ["inference"]
models = ["mock-embed"]
require_approval = { approvers = ["security", "compliance"], count = 2, grant = "window", ttl = "1h", mode = "ticket" }

[[access]]
id = "interns-ticket"
groups = ["interns"]
actions = ["inference"]
models = ["mock-model"]
require_approval = { approvers = ["security"], grant = "request", mode = "ticket" }

[[access]]
id = "temps-expire"
groups = ["temps"]
actions = ["inference"]
models = ["mock-model"]
require_approval = { approvers = ["security"], mode = "ticket", pending_ttl = "1s" }
"#;

struct World {
    gw: GatewayProcess,
    mock: MockServer,
    config: String,
    data: testkit::TempDir,
}

impl World {
    async fn start(extra: &str, env: &[(&str, &str)]) -> World {
        let mock = mock(Flavor::OpenAi).await;
        let data = testkit::temp_dir("approvals-data");
        let up = upstream("up", &mock.url(), "openai", &["*"], "");
        let server = format!("data_dir = \"{}\"\npublic_url = \"https://gw.example\"", data.path().display());
        let config = config(&server, &format!("{up}\n{RULES}\n{extra}"));
        let gw = GatewayProcess::start_with_env(bin(), Some(&config), &[], env);
        World { gw, mock, config, data }
    }

    fn key(&self, subject: &str, groups: &str) -> String {
        let k = self.gw.cli(&["token", "create", "--json", "--subject", subject, "--groups", groups]);
        assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
        let v: Value = serde_json::from_slice(&k.stdout).unwrap();
        v["secret"].as_str().unwrap().to_string()
    }

    fn approvals(&self, token: &str, args: &[&str]) -> std::process::Output {
        let mut a = vec!["approvals"];
        a.extend_from_slice(args);
        a.extend(["--server", self.gw.admin_url.as_str(), "--token", token]);
        self.gw.cli(&a)
    }

    fn pending(&self, token: &str) -> Vec<Value> {
        let out = self.approvals(token, &["list", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn events(&self, event_type: &str) -> Vec<Value> {
        audit_events(self.data.path()).into_iter().filter(|e| e["event_type"] == event_type).collect()
    }
}

async fn chat(gw: &GatewayProcess, key: &str, model: &str, text: &str) -> (u16, Value, String) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
    let path = if model == "mock-embed" { "/v1/embeddings" } else { "/v1/chat/completions" };
    let body = if model == "mock-embed" { json!({"model": model, "input": text}) } else { body };
    let auth = format!("Bearer {key}");
    let (s, h, b) = call(json_req("POST", &format!("{}{path}", gw.data_url), &body, &[("authorization", &auth)])).await;
    let rid = h.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null), rid)
}

fn wait_pending(w: &World, token: &str, requester: &str) -> String {
    eventually("a pending approval request", || {
        w.pending(token)
            .into_iter()
            .find(|v| v["requester"] == requester && v["state"] == "pending")
            .map(|v| v["id"].as_str().unwrap().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_mode_forwards_when_approved_and_refuses_on_denial_or_timeout() {
    let w = World::start("", &[]).await;
    let carol = w.key("carol", "contractors");
    let sam = w.key("sam", "security");
    let nobody = w.key("nobody", "users");

    // Approved while held: forwarded.
    let gw_url = w.gw.data_url.clone();
    let carol2 = carol.clone();
    let held = tokio::spawn(async move {
        let started = Instant::now();
        let body =
            json!({"model": "mock-model", "messages": [{"role": "user", "content": "summarise the Q3 numbers"}]});
        let auth = format!("Bearer {carol2}");
        let (s, h, b) =
            call(json_req("POST", &format!("{gw_url}/v1/chat/completions"), &body, &[("authorization", &auth)])).await;
        (s, h, b, started.elapsed())
    });
    let id = wait_pending(&w, &sam, "carol");
    assert!(w.mock.requests().is_empty(), "a held request reached the upstream");
    // Someone outside the approver group may not approve; they may not even see the request,
    // so they are told it does not exist (as for an unknown id).
    let out = w.approvals(&nobody, &["approve", &id, "--reason", "why not"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such approval request"), "{err}");
    let out = w.approvals(&sam, &["approve", &id, "--reason", "quarterly review, ticket SEC-12"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (s, h, _, _) = held.await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(w.mock.requests().len(), 1);
    let rid = h["x-request-id"].to_str().unwrap().to_string();

    // `audit show` tells the whole story: requester, approver with reason, grant, the call.
    let out = w.gw.cli(&["audit", "show", &rid, "--json", "--data-dir", &w.data.path().display().to_string()]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    let types: Vec<&str> =
        shown["events"].as_array().unwrap().iter().filter_map(|e| e["event"]["event_type"].as_str()).collect();
    for t in ["approval.requested", "approval.approved", "approval.used", "inference.request", "inference.completion"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let approved =
        shown["events"].as_array().unwrap().iter().find(|e| e["event"]["event_type"] == "approval.approved").unwrap();
    assert_eq!(approved["event"]["actor"]["subject"], "sam");
    assert_eq!(approved["event"]["approval"]["requester"], "carol");
    let text = String::from_utf8_lossy(
        &w.gw.cli(&["audit", "show", &rid, "--data-dir", &w.data.path().display().to_string()]).stdout,
    )
    .to_string();
    assert!(
        text.contains("carol") && text.contains("sam") && text.contains("quarterly review, ticket SEC-12"),
        "{text}"
    );

    // Denied while held: 403, never forwarded.
    let gw_url = w.gw.data_url.clone();
    let carol2 = carol.clone();
    let held = tokio::spawn(async move {
        let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "export every customer"}]});
        let auth = format!("Bearer {carol2}");
        call(json_req("POST", &format!("{gw_url}/v1/chat/completions"), &body, &[("authorization", &auth)])).await
    });
    let id = wait_pending(&w, &sam, "carol");
    let out = w.approvals(&sam, &["deny", &id]);
    assert!(!out.status.success(), "a denial needs a reason");
    let out = w.approvals(&sam, &["deny", &id, "--reason", "bulk export is not allowed"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (s, _, b) = held.await.unwrap();
    assert_eq!((s, error_code(&b).as_str()), (403, "access_denied"));
    assert!(String::from_utf8_lossy(&b).contains("bulk export is not allowed"));
    assert_eq!(w.mock.requests().len(), 1);
    let denied = eventually("approval.denied", || w.events("approval.denied").into_iter().next());
    assert_eq!(denied["reason"], "bulk export is not allowed");

    // Nobody decides: 403 after hold_timeout, with the approval id to retry with; never forwarded.
    let started = Instant::now();
    let (s, v, _) = chat(&w.gw, &carol, "mock-model", "a third question").await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("approval_required")), "{v}");
    assert!(started.elapsed() >= Duration::from_secs(4), "answered before hold_timeout");
    assert!(v["error"]["approval_id"].is_string(), "{v}");
    assert_eq!(w.mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_mode_window_grants_count_people_not_groups_and_can_be_revoked() {
    let w = World::start("", &[]).await;
    let carol = w.key("carol", "contractors");
    let tess = w.key("tess", "security,compliance");
    let uma = w.key("uma", "compliance");
    let sara = w.key("sara", "contractors,security");
    let admin = std::fs::read_to_string(w.data.join("admin-token")).unwrap().trim().to_string();

    let (s, v, _) = chat(&w.gw, &carol, "mock-embed", "embed this").await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("approval_required")), "{v}");
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    let approve_url = v["error"]["approve_url"].as_str().unwrap();
    assert!(approve_url.starts_with("https://gw.example/"), "{v}");
    // The page approve_url names answers (behind the public URL, the admin listener), to an
    // approver; not to someone who may not see the request, nor for an unknown id.
    let page = approve_url.replace("https://gw.example", &w.gw.admin_url);
    let show = |token: &str, url: &str| {
        let req = Request::builder().uri(url).header("authorization", format!("Bearer {token}"));
        call(req.body(Full::new(Bytes::new())).unwrap())
    };
    let (s, _, body) = show(&tess, &page).await;
    let view: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((s, view["id"].as_str(), view["state"].as_str()), (200, Some(id.as_str()), Some("pending")), "{view}");
    let nobody = w.key("nobody", "users");
    assert_eq!(show(&nobody, &page).await.0, 404);
    // The requester sees their own request; without a credential nobody sees anything.
    assert_eq!(show(&carol, &page).await.0, 200);
    assert_eq!(call(get(&page)).await.0, 401);
    assert_eq!(show(&tess, &format!("{}/admin/v1/approvals/no-such-id", w.gw.admin_url)).await.0, 404);
    // One person in both approver groups counts once: still pending; and only once.
    assert!(w.approvals(&tess, &["approve", &id, "--reason", "ok"]).status.success());
    let again = w.approvals(&tess, &["approve", &id, "--reason", "ok again"]);
    assert!(!again.status.success());
    assert!(w.pending(&tess).iter().any(|p| p["id"] == id.as_str() && p["state"] == "pending"));
    assert_eq!(chat(&w.gw, &carol, "mock-embed", "embed this").await.0, 403);
    // A second person: approved; the retry and other calls of the window go through.
    assert!(w.approvals(&uma, &["approve", &id, "--reason", "fine by compliance"]).status.success());
    let (s, _, retry) = chat(&w.gw, &carol, "mock-embed", "embed this").await;
    assert_eq!(s, 200);
    // `audit show` of the call the grant let through names the requester and both approvers.
    let dir = w.data.path().display().to_string();
    let text = eventually("the approval story of the retried call", || {
        let out = w.gw.cli(&["audit", "show", &retry, "--data-dir", &dir]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("fine by compliance").then_some(text)
    });
    assert!(text.contains("requested by carol") && text.contains("tess") && text.contains("uma"), "{text}");
    assert!(text.contains("inference.completion"), "{text}");
    assert_eq!(chat(&w.gw, &carol, "mock-embed", "and something else").await.0, 200);
    assert!(w.events("approval.used").len() >= 2);

    // A requester never approves their own request, even holding an approver group.
    let (s, v, _) = chat(&w.gw, &sara, "mock-embed", "mine").await;
    assert_eq!(s, 403);
    let own = v["error"]["approval_id"].as_str().unwrap().to_string();
    let out = w.approvals(&sara, &["approve", &own, "--reason", "trust me"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("own"), "{}", String::from_utf8_lossy(&out.stderr));

    // Revoked early: the window no longer lets calls through.
    let grants: Vec<Value> = String::from_utf8_lossy(&w.approvals(&admin, &["grants", "--json"]).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let grant = grants.iter().find(|g| g["subject"] == "carol").unwrap_or_else(|| panic!("{grants:?}"));
    // Neither an approver of the rule, the holder nor an admin: refused, and the window still works.
    let out = w.approvals(&nobody, &["revoke", grant["id"].as_str().unwrap(), "--reason", "mine now"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not revoke"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(chat(&w.gw, &carol, "mock-embed", "embed this").await.0, 200);
    // The admin holds none of the approver groups, but may revoke any grant.
    let out = w.approvals(&admin, &["revoke", grant["id"].as_str().unwrap(), "--reason", "contract ended"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(chat(&w.gw, &carol, "mock-embed", "embed this").await.0, 403);
    assert_eq!(w.events("approval.revoked").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_grants_are_single_use_bound_to_the_body_and_survive_a_restart() {
    let mut w = World::start("", &[]).await;
    let ian = w.key("ian", "interns");
    let sam = w.key("sam", "security");
    let tom = w.key("tom", "temps");

    let (s, v, _) = chat(&w.gw, &ian, "mock-model", "body A").await;
    assert_eq!(s, 403);
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    assert!(w.approvals(&sam, &["approve", &id]).status.success());
    // Another body does not match the grant.
    let (s, v, _) = chat(&w.gw, &ian, "mock-model", "body B").await;
    assert_eq!(s, 403);
    assert_ne!(v["error"]["approval_id"].as_str().unwrap(), id);
    assert_eq!(chat(&w.gw, &ian, "mock-model", "body A").await.0, 200);
    // Used once: the same body again needs a new approval.
    let (s, v, _) = chat(&w.gw, &ian, "mock-model", "body A").await;
    assert_eq!(s, 403);
    assert_ne!(v["error"]["approval_id"].as_str().unwrap(), id);
    assert_eq!(w.mock.requests().len(), 1);

    // Approved, then the gateway restarts: the retry still matches the grant.
    let (_, v, _) = chat(&w.gw, &ian, "mock-model", "body C").await;
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    assert!(w.approvals(&sam, &["approve", &id, "--reason", "fine"]).status.success());
    w.gw.signal_term();
    assert!(w.gw.wait_exit(SOON).is_some());
    w.gw = GatewayProcess::start(bin(), Some(&w.config), &[]);
    assert_eq!(chat(&w.gw, &ian, "mock-model", "body C").await.0, 200);

    // A pending request expires undecided (pending_ttl 1s): an event, and no late approval.
    let (s, v, _) = chat(&w.gw, &tom, "mock-model", "later").await;
    assert_eq!(s, 403);
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    let expired = eventually("approval.expired", || {
        w.events("approval.expired").into_iter().find(|e| e["approval"]["id"] == id.as_str())
    });
    assert_eq!(expired["outcome"], "failure");
    let out = w.approvals(&sam, &["approve", &id]);
    assert!(!out.status.success());
    assert!(!w.pending(&sam).iter().any(|p| p["id"] == id.as_str()));
}

/// One webhook for the `security` group, signed with `hook-secret` (from `MG_TEST_HOOK_SECRET`).
fn hook_config(receiver: &testkit::webhook::WebhookReceiver) -> String {
    format!(
        "[[approvals.webhooks]]\ngroup = \"security\"\nurl = \"{}/hook\"\nsecret_env = \"MG_TEST_HOOK_SECRET\"\n",
        receiver.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_slack_and_teams_shaped_and_retried_without_blocking() {
    let receiver = testkit::webhook::WebhookReceiver::start(b"hook-secret").await;
    receiver.fail_next(2);
    let hooks = hook_config(&receiver);
    let w = World::start(&hooks, &[("MG_TEST_HOOK_SECRET", "hook-secret")]).await;
    let ian = w.key("ian", "interns");
    let started = Instant::now();
    let (s, v, _) = chat(&w.gw, &ian, "mock-model", "mail jane.doe@example.com the totals").await;
    assert_eq!(s, 403);
    assert!(started.elapsed() < Duration::from_secs(2), "a failing webhook held up the caller");
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    let deliveries = receiver.wait_deliveries(1, Duration::from_secs(30)).await;
    let d = &deliveries[0];
    assert!(d.signature_valid, "{d:?}");
    let attempts = receiver.attempts();
    assert!(attempts.len() >= 3, "two failures then a success: {}", attempts.len());
    // Retries keep the delivery id.
    assert!(attempts.iter().all(|a| a.delivery_id() == d.delivery_id()));
    let body = &d.json;
    assert_eq!(body["modelgate"]["id"], id.as_str());
    assert!(body["text"].as_str().unwrap().contains("ian"));
    assert!(body["blocks"].is_array());
    assert_eq!(body["@type"], "MessageCard");
    assert!(body["potentialAction"][0]["targets"][0]["uri"].as_str().unwrap().starts_with("https://gw.example/"));
    // The delivery totals reach /metrics (read at scrape time; the retries may still be under way).
    let url = format!("{}/metrics", w.gw.admin_url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, body) = call(get(&url)).await;
        let text = String::from_utf8_lossy(&body).to_string();
        let line = |result: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("modelgate_approval_webhook_deliveries{{result=\"{result}\"}}")))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        };
        if line("delivered") == Some(1) && line("retried").is_some_and(|n| n >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "webhook totals not on /metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The excerpt is masked.
    let excerpt = body["modelgate"]["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("[EMAIL]") && !body.to_string().contains("jane.doe@example.com"), "{excerpt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_a_webhook_retry_finish() {
    let receiver = testkit::webhook::WebhookReceiver::start(b"hook-secret").await;
    // The first attempt fails, so the delivery is waiting out its backoff when the stop comes.
    receiver.fail_next(1);
    let hooks = hook_config(&receiver);
    let mut w = World::start(&hooks, &[("MG_TEST_HOOK_SECRET", "hook-secret")]).await;
    let ian = w.key("ian", "interns");
    let (s, v, _) = chat(&w.gw, &ian, "mock-model", "the quarterly totals").await;
    assert_eq!(s, 403);
    let id = v["error"]["approval_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.attempts().is_empty() {
        assert!(Instant::now() < deadline, "no webhook attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(receiver.deliveries().is_empty(), "the first attempt was to fail");
    w.gw.signal_term();
    let status = w.gw.wait_exit(Duration::from_secs(30)).expect("the gateway did not stop");
    assert!(status.success(), "{status:?}");
    // The retry went out before the process ended, signed and for this approval.
    let delivered = receiver.deliveries();
    assert_eq!(delivered.len(), 1, "attempts: {}", receiver.attempts().len());
    assert!(delivered[0].signature_valid);
    assert_eq!(delivered[0].json["modelgate"]["id"], id.as_str());
}
