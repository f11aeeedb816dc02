//! Identity on the data path and the admin API: gateway keys, the admin token, roles, and
//! failures that say nothing to the caller and everything to the log.

use serde_json::{Value, json};
use testkit::Flavor;

use crate::support::*;

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

async fn chat_as(gw: &testkit::GatewayProcess, auth: &str) -> (u16, http::HeaderMap, bytes::Bytes) {
    call(json_req(
        "POST",
        &format!("{}/v1/chat/completions", gw.data_url),
        &chat("m", false),
        &[("authorization", auth)],
    ))
    .await
}

#[tokio::test]
async fn keys_created_or_revoked_on_the_data_dir_take_effect_on_the_next_request() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let k = gw.create_key("alice", &["--groups", "ml-team,users", "--description", "notebook"]);
    let secret = k["secret"].as_str().unwrap();
    assert!(secret.starts_with("mgk_"));
    assert_eq!(k["groups"], json!(["ml-team", "users"]));
    assert_eq!(chat_as(&gw, &bearer(secret)).await.0, 200);

    let out = gw.cli(&["token", "revoke", k["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let (status, h, body) = chat_as(&gw, &bearer(secret)).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "authentication_failed");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    // The caller learns nothing; the log has the precise reason.
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("revoked"), "{text}");
    gw.wait_stderr("authentication failed: revoked key", SOON);

    let list = gw.cli(&["token", "list", "--json"]);
    let rows: Vec<Value> =
        String::from_utf8_lossy(&list.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alice = rows.iter().find(|r| r["subject"] == "alice").unwrap();
    assert_eq!(alice["status"], "revoked");
    assert!(alice["last_used_at"].is_string() || alice["last_used_at"].is_null());
    assert!(rows.iter().all(|r| r.get("secret").is_none() && r.get("hmac").is_none()));
}

#[tokio::test]
async fn an_expired_key_fails() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let k = gw.create_key("short-lived", &["--ttl", "1s"]);
    let secret = k["secret"].as_str().unwrap().to_string();
    // Poll until the expiry (1 s) has passed.
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let (status, _, _) = chat_as(&gw, &bearer(&secret)).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(std::time::Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gw.wait_stderr("key_expired", SOON);
}

#[tokio::test]
async fn bad_credentials_get_401_and_never_reach_the_log_or_the_upstream() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let k = gw.create_key("bob", &[]);
    let id = k["id"].as_str().unwrap();
    let good = k["secret"].as_str().unwrap();
    let wrong_secret = format!("mgk_{id}_{}", "A".repeat(43));
    let huge = format!("mgk_{id}_{}", "B".repeat(64 * 1024));
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some(bearer(&wrong_secret)), "wrong_secret"),
        (Some(bearer("mgk_doesnotexist_secret")), "unknown_key"),
        (Some(bearer("sk-proj-1234567890")), "malformed"),
        (Some("Basic YWxpY2U6c2VjcmV0".into()), "malformed"),
        (Some(bearer(&huge)), "too_large"),
        (Some(bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")), "unknown_issuer"),
    ];
    for (auth, reason) in &cases {
        let url = format!("{}/v1/chat/completions", gw.data_url);
        let req = match auth {
            Some(a) => json_req("POST", &url, &chat("m", false), &[("authorization", a)]),
            None => {
                let mut r = json_req("POST", &url, &chat("m", false), &[("authorization", "x")]);
                r.headers_mut().remove("authorization");
                r
            }
        };
        let (status, _, body) = call(req).await;
        assert_eq!(status, 401, "{reason}");
        assert_eq!(error_code(&body), "authentication_failed", "{reason}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["message"], "authentication failed");
    }
    assert!(m.requests().is_empty(), "an unauthenticated call reached the upstream");
    assert_eq!(chat_as(&gw, &bearer(good)).await.0, 200);
    let (_, _, metrics) = call(get(&format!("{}/metrics", gw.admin_url))).await;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    for (_, reason) in &cases {
        let n = cases.iter().filter(|(_, r)| r == reason).count();
        assert!(
            metrics.contains(&format!("modelgate_auth_failures_total{{reason=\"{reason}\"}} {n}")),
            "{reason}:\n{metrics}"
        );
    }
    let logs = gw.stderr();
    for secret in [good, &wrong_secret[wrong_secret.len() - 43..], &gw.admin_token()["mgk_".len()..]] {
        assert!(!logs.contains(secret), "a credential reached the log");
    }
}

#[tokio::test]
async fn the_admin_api_issues_and_revokes_keys_for_admins_only() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "[roles]\nauditor = [\"security\"]\n");
    let admin = gw.admin_token();
    let url = format!("{}/admin/v1/tokens", gw.admin_url);
    let post = |auth: String, body: Value| json_req("POST", &url, &body, &[("authorization", &auth)]);

    // Unauthenticated and non-admin callers are refused.
    let (status, _, _) = call(json_req("POST", &url, &json!({"subject": "x"}), &[])).await;
    assert_eq!(status, 401);
    let auditor = gw.create_key("sec-ann", &["--groups", "security"]);
    let (status, _, body) = call(post(bearer(auditor["secret"].as_str().unwrap()), json!({"subject": "x"}))).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    // The admin token issues a key that works on the data path at once.
    let (status, _, body) =
        call(post(bearer(&admin), json!({"subject": "ci-job", "service": true, "groups": ["ci"], "ttl": "1h"}))).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(created["kind"], "service");
    assert_eq!(created["created_by"], "admin");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(chat_as(&gw, &bearer(&secret)).await.0, 200);

    // Through the CLI against the running gateway, too.
    let out = gw.cli(&["token", "list", "--json", "--server", &gw.admin_url, "--token", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains("\"ci-job\"") && !listed.contains(&secret[10..]));
    let out =
        gw.cli(&["token", "revoke", created["id"].as_str().unwrap(), "--server", &gw.admin_url, "--token", &admin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(chat_as(&gw, &bearer(&secret)).await.0, 401);

    // A key with --role admin may administer; its group-less peers may not.
    let second_admin = gw.create_key("ops", &["--role", "admin"]);
    let (status, _, _) = call(post(bearer(second_admin["secret"].as_str().unwrap()), json!({"subject": "y"}))).await;
    assert_eq!(status, 201);
}
