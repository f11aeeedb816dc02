//! OIDC on the data path through the real binary: several issuers, key rotation without restart,
//! groups from nested claims mapped to roles, and the attack suite over HTTP.

use serde_json::json;
use testkit::idp::{hs256, unsigned};
use testkit::{Alg, Flavor, GatewayProcess, MockServer, TestIdp};

use crate::support::*;

fn issuer_toml(idp: &TestIdp, extra: &str) -> String {
    format!(
        "[[identity.oidc]]\nissuer = \"{}\"\naudiences = [\"modelgate\"]\njwks_refresh_cooldown = \"1s\"\n{extra}\n",
        idp.issuer()
    )
}

async fn setup(extra_server: &str) -> (MockServer, TestIdp, TestIdp, GatewayProcess) {
    let m = mock(Flavor::OpenAi).await;
    let corp = TestIdp::start().await;
    let ci = TestIdp::start().await;
    let up = upstream("up", &m.url(), "openai", &["*"], "");
    let cfg = format!(
        "{}\n{}\n{}\n[roles]\nadmin = [\"platform\"]\n",
        config(extra_server, &up),
        issuer_toml(&corp, "groups_claim = \"/realm_access/roles\""),
        issuer_toml(&ci, "kind = \"service\""),
    );
    let gw = start(&cfg);
    (m, corp, ci, gw)
}

async fn chat_with(gw: &GatewayProcess, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    call(json_req(
        "POST",
        &format!("{}/v1/chat/completions", gw.data_url),
        &chat("m", false),
        &[("authorization", &auth)],
    ))
    .await
    .0
}

#[tokio::test]
async fn tokens_of_two_issuers_and_every_algorithm_work() {
    let (m, corp, ci, gw) = setup("").await;
    for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
        assert_eq!(chat_with(&gw, &corp.token(alg, "alice", json!({}))).await, 200, "{alg:?}");
    }
    assert_eq!(chat_with(&gw, &ci.token(Alg::Rs256, "repo:org/app:ref:refs/heads/main", json!({}))).await, 200);
    assert_eq!(m.requests().len(), 4);
    // No token reaches the log.
    let logs = gw.stderr();
    let t = corp.token(Alg::Rs256, "alice", json!({}));
    let signature = t.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_without_restart() {
    let (_m, corp, _ci, gw) = setup("").await;
    assert_eq!(chat_with(&gw, &corp.token(Alg::Es256, "alice", json!({}))).await, 200);
    let before = corp.jwks_fetches();
    corp.rotate(Alg::Es256);
    // The new kid is unknown to the gateway: it refreshes once and accepts the token.
    assert_eq!(chat_with(&gw, &corp.token(Alg::Es256, "alice", json!({}))).await, 200);
    assert_eq!(corp.jwks_fetches(), before + 1);
}

#[tokio::test]
async fn groups_from_nested_claims_map_to_roles() {
    let (_m, corp, _ci, gw) = setup("").await;
    let url = format!("{}/admin/v1/tokens", gw.admin_url);
    let as_admin = corp.token(Alg::Rs256, "pat", json!({"realm_access": {"roles": ["platform", "users"]}}));
    let as_user = corp.token(Alg::Rs256, "uma", json!({"realm_access": {"roles": ["users"]}}));
    let get_as = |t: &str| {
        let auth = format!("Bearer {t}");
        json_req("GET", &url, &json!(null), &[("authorization", &auth)])
    };
    assert_eq!(call(get_as(&as_admin)).await.0, 200);
    assert_eq!(call(get_as(&as_user)).await.0, 403);
}

#[tokio::test]
async fn the_attack_suite_gets_401_over_http() {
    let (m, corp, _ci, gw) = setup("").await;
    let stranger = TestIdp::start().await;
    let good = corp.token(Alg::Rs256, "alice", json!({}));
    let claims = corp.claims("mallory", json!({}));
    let now = testkit::idp::now_secs();
    let mut header = json!({"alg": "HS256", "typ": "JWT", "kid": corp.kid(Alg::Rs256)});
    let hs = hs256(corp.rsa_public_key_pem().as_bytes(), &header, &claims);
    header["alg"] = json!("none");
    let none = unsigned(&header, &claims);
    let attacks = [
        ("alg none", none),
        ("HS256 with the RSA public key", hs),
        ("expired", corp.token(Alg::Rs256, "m", json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}))),
        ("not yet valid", corp.token(Alg::Rs256, "m", json!({"nbf": now + 3600}))),
        ("wrong iss", corp.token(Alg::Rs256, "m", json!({"iss": "https://login.example.com"}))),
        ("wrong aud", corp.token(Alg::Rs256, "m", json!({"aud": "another-service"}))),
        (
            "unknown kid",
            corp.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": "nobody-knows"}), &claims, Alg::Rs256),
        ),
        ("unconfigured issuer", stranger.token(Alg::Rs256, "m", json!({}))),
        ("truncated", good[..good.len() - 10].to_string()),
        ("garbage base64", "e$$$.e%%%.sig!!".to_string()),
        ("64 KiB token", format!("{}.{}.{}", "a".repeat(22_000), "b".repeat(22_000), "c".repeat(22_000))),
    ];
    for (name, token) in &attacks {
        assert_eq!(chat_with(&gw, token).await, 401, "{name}");
    }
    assert!(m.requests().is_empty(), "an attack reached the upstream");
    assert_eq!(chat_with(&gw, &good).await, 200);
    let logs = gw.stderr();
    for (name, token) in &attacks {
        if token.len() > 40 {
            assert!(!logs.contains(&token[token.len() - 40..]), "{name}: token reached the log");
        }
    }
}

#[tokio::test]
async fn a_burst_of_unknown_kids_costs_at_most_one_fetch_per_cooldown() {
    let (_m, corp, _ci, gw) = setup("").await;
    assert_eq!(chat_with(&gw, &corp.token(Alg::Rs256, "warm", json!({}))).await, 200);
    let before = corp.jwks_fetches();
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // 1,000 tokens, 64 in flight at a time (file descriptors are finite on CI machines).
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..1000 {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let claims = corp.claims("flood", json!({}));
        let token =
            corp.sign_raw(&json!({"alg": "RS256", "typ": "JWT", "kid": format!("bogus-{i}")}), &claims, Alg::Rs256);
        let url = format!("{}/v1/chat/completions", gw.data_url);
        tasks.spawn(async move {
            let auth = format!("Bearer {token}");
            let status = call(json_req("POST", &url, &chat("m", false), &[("authorization", &auth)])).await.0;
            drop(permit);
            status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    // The cooldown is 1 s: one fetch per started second of the burst, at most.
    let allowed = 1 + started.elapsed().as_secs() as usize;
    let fetched = corp.jwks_fetches() - before;
    assert!(fetched <= allowed, "{fetched} JWKS fetches for a {:?} burst", started.elapsed());
}
