//! Verification against real test IdPs on loopback: issuers, algorithms, rotation, claim
//! mapping, the attack suite, refresh rate limiting and outages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use testkit::idp::{self, Alg, TestIdp, now_secs};
use tokio::task::JoinSet;

use super::*;

/// An `[[identity.oidc]]` table for `idp` (discovery unless `extra` sets `jwks_uri`), parsed with
/// the real config code so defaults and validation apply.
fn cfg(idp: &TestIdp, extra: &str) -> config::OidcConfig {
    let toml = format!(
        "[[identity.oidc]]\nissuer = \"{}\"\naudiences = [\"modelgate\"]\njwks_cache_ttl = \"1h\"\n{extra}\n",
        idp.issuer()
    );
    let mut c = config::Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    c.identity.oidc.remove(0)
}

fn verifier(cfgs: &[config::OidcConfig]) -> Arc<OidcVerifier> {
    let v = OidcVerifier::new(cfgs).unwrap();
    v.start();
    v
}

fn verifier_tuned(cfgs: &[config::OidcConfig], key_wait: Duration) -> Arc<OidcVerifier> {
    let v = OidcVerifier::with_tuning(cfgs, Tuning { key_wait, ..Tuning::default() }).unwrap();
    v.start();
    v
}

/// Polls until every issuer has keys.
async fn wait_keys(v: &OidcVerifier) {
    testkit::wait_for_async("issuer keys", Duration::from_secs(10), || {
        v.issuers.iter().all(|i| i.snapshot().is_some())
    })
    .await;
}

/// Replaces the claims of a signed token, keeping its header and signature.
fn tamper(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    parts.join(".")
}

#[tokio::test]
async fn two_issuers_and_every_algorithm_verify() {
    let a = TestIdp::start().await;
    let b = TestIdp::start_with_path("/realms/dev").await;
    let v = verifier(&[cfg(&a, ""), cfg(&b, &format!("jwks_uri = \"{}\"", b.jwks_uri()))]);
    assert!(!v.is_empty());
    for idp in [&a, &b] {
        for alg in Alg::ALL {
            let token = idp.token(alg, "alice", json!({"jti": "j-1", "name": "Alice A.", "groups": ["ml-team"]}));
            let id = v.verify(&token).await.unwrap_or_else(|e| panic!("{} {alg:?}: {e}", idp.issuer()));
            assert_eq!(id.subject, "alice");
            assert_eq!(id.issuer, idp.issuer());
            assert_eq!(id.kind, Kind::Human);
            assert_eq!(id.display.as_deref(), Some("Alice A."));
            assert_eq!(id.groups, ["ml-team"]);
            assert_eq!(id.auth_method, AuthMethod::Oidc);
            assert_eq!(id.credential_id.as_deref(), Some("j-1"));
            assert!(id.roles.is_empty() && id.src_ip.is_none() && id.user_agent.is_none());
            // A repeat is a cache hit with the same answer.
            assert_eq!(v.verify(&token).await.unwrap(), id);
        }
    }
    assert_eq!((a.discovery_fetches(), a.jwks_fetches()), (1, 1), "discovery once, then the JWKS");
    assert_eq!((b.discovery_fetches(), b.jwks_fetches()), (0, 1), "explicit jwks_uri: no discovery");
    assert!(OidcVerifier::new(&[]).unwrap().is_empty());
}

#[tokio::test]
async fn rotation_is_picked_up_with_one_coalesced_refresh() {
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "jwks_refresh_cooldown = \"200ms\"")]);
    let old = idp.token(Alg::Rs256, "bob", json!({}));
    v.verify(&old).await.unwrap();
    let fetches = idp.jwks_fetches();

    // Several requests carrying the new kid at once wait for the same refresh.
    let kid = idp.rotate(Alg::Rs256);
    let mut set = JoinSet::new();
    for i in 0..20 {
        let (v, token) = (v.clone(), idp.token(Alg::Rs256, &format!("u{i}"), json!({})));
        set.spawn(async move { v.verify(&token).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap().issuer, idp.issuer());
    }
    assert_eq!(idp.jwks_fetches(), fetches + 1, "one refresh for the new kid {kid}");

    // The old key left the JWKS: its token (cached before) is verified again and refused.
    let started = Instant::now();
    assert_eq!(v.verify(&old).await.unwrap_err(), AuthError::UnknownKid);
    // An unknown kid after the refresh: one more refresh (after the cooldown), then 401, bounded.
    let bogus = idp.sign_raw(&json!({"kid": "nope"}), &idp.claims("c", json!({})), Alg::Rs256);
    assert_eq!(v.verify(&bogus).await.unwrap_err(), AuthError::UnknownKid);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(idp.jwks_fetches() <= fetches + 3);
}

#[tokio::test]
async fn unknown_kid_is_bounded_when_the_idp_hangs() {
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "jwks_refresh_cooldown = \"1ms\"")]);
    wait_keys(&v).await;
    idp.set_jwks_delay(Duration::from_secs(6));
    let bogus = idp.sign_raw(&json!({"kid": "nope"}), &idp.claims("c", json!({})), Alg::EdDsa);
    let started = Instant::now();
    assert_eq!(v.verify(&bogus).await.unwrap_err(), AuthError::UnknownKid);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(3), "{took:?}");
    // Known keys keep working meanwhile, without waiting.
    let started = Instant::now();
    v.verify(&idp.token(Alg::EdDsa, "d", json!({}))).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn groups_from_nested_claims_and_service_kind() {
    let idp = TestIdp::start().await;
    let keycloak = cfg(&idp, "groups_claim = \"/realm_access/roles\"\ndisplay_claim = \"/profile/nick\"");
    let v = verifier(&[keycloak]);
    let t = idp.token(
        Alg::Es256,
        "u1",
        json!({"realm_access": {"roles": ["ml-team", "users"]}, "profile": {"nick": "Nick"}, "name": "N"}),
    );
    let id = v.verify(&t).await.unwrap();
    assert_eq!(id.groups, ["ml-team", "users"]);
    assert_eq!(id.display.as_deref(), Some("Nick"));
    let id = v.verify(&idp.token(Alg::Es256, "u2", json!({"email": "u2@x"}))).await.unwrap();
    assert!(id.groups.is_empty(), "missing groups claim: no groups");
    assert_eq!(id.display.as_deref(), Some("u2@x"));

    let idp2 = TestIdp::start().await;
    let uri_keyed = cfg(
        &idp2,
        "groups_claim = \"/https:~1~1example.com~1groups\"\nservice_claim = \"/kubernetes.io/namespace\"\n\
         service_values = [\"ci\", \"batch\"]\nsubject_claim = \"/kubernetes.io/serviceaccount/name\"",
    );
    let v = verifier(&[uri_keyed]);
    let k8s = json!({
        "https://example.com/groups": "platform",
        "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "runner"}},
    });
    let id = v.verify(&idp2.token(Alg::EdDsa, "system:serviceaccount:ci:runner", k8s)).await.unwrap();
    assert_eq!(id.groups, ["platform"]);
    assert_eq!(id.subject, "runner");
    assert_eq!(id.kind, Kind::Service);
    let other_ns = json!({"kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "x"}}});
    assert_eq!(v.verify(&idp2.token(Alg::EdDsa, "s", other_ns)).await.unwrap().kind, Kind::Human);
    let no_sa = idp2.token(Alg::EdDsa, "s", json!({}));
    assert_eq!(v.verify(&no_sa).await.unwrap_err(), AuthError::BadClaim("/kubernetes.io/serviceaccount/name".into()));

    // GitHub Actions style: every token of the issuer is a service.
    let idp3 = TestIdp::start().await;
    let v = verifier(&[cfg(&idp3, "kind = \"service\"\nservice_claim = \"repository\"")]);
    assert_eq!(v.verify(&idp3.token(Alg::Rs256, "repo:o/r", json!({}))).await.unwrap().kind, Kind::Service);
}

#[tokio::test]
async fn attack_suite() {
    let a = TestIdp::start().await;
    let b = TestIdp::start().await;
    let stranger = TestIdp::start().await;
    let v = verifier(&[cfg(&a, "jwks_refresh_cooldown = \"1h\""), cfg(&b, "jwks_refresh_cooldown = \"1h\"")]);
    wait_keys(&v).await;
    let fetches = (a.jwks_fetches(), b.jwks_fetches());
    let now = now_secs();
    let claims = a.claims("mallory", json!({}));
    let rsa_kid = a.kid(Alg::Rs256);
    let good = a.token(Alg::Rs256, "mallory", json!({}));
    assert!(v.verify(&good).await.is_ok());

    let mut big = a.token(Alg::Rs256, "m", json!({"pad": "x".repeat(64 * 1024)}));
    big.truncate(64 * 1024);
    let cut = good.rsplit_once('.').unwrap().0.to_owned();
    let cut_sig = good[..good.len() - 4].to_owned();
    let cases: Vec<(&str, String, AuthError)> = vec![
        ("alg none", idp::unsigned(&json!({"kid": rsa_kid}), &claims), AuthError::AlgorithmNotAllowed("none".into())),
        (
            "alg none, trailing signature",
            format!("{}c2ln", idp::unsigned(&json!({"alg": "none"}), &claims)),
            AuthError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "HS256 keyed with the RSA public key",
            idp::hs256(a.rsa_public_key_pem().as_bytes(), &json!({"kid": rsa_kid, "typ": "JWT"}), &claims),
            AuthError::AlgorithmNotAllowed("HS256".into()),
        ),
        (
            "HS256 keyed with the RSA public key, no kid",
            idp::hs256(a.rsa_public_key_pem().as_bytes(), &json!({}), &claims),
            AuthError::AlgorithmNotAllowed("HS256".into()),
        ),
        (
            "ES256 header on the RSA kid",
            a.sign_raw(&json!({"alg": "ES256", "kid": rsa_kid}), &claims, Alg::Es256),
            AuthError::AlgorithmNotAllowed("ES256 with this key".into()),
        ),
        (
            "expired",
            a.token(Alg::Rs256, "m", json!({"exp": now - 120, "iat": now - 600, "nbf": now - 600})),
            AuthError::Expired,
        ),
        ("not yet valid", a.token(Alg::Es256, "m", json!({"nbf": now + 600})), AuthError::NotYetValid),
        (
            "issued in the future",
            a.token(Alg::EdDsa, "m", json!({"iat": now + 600, "nbf": null})),
            AuthError::IssuedInFuture,
        ),
        ("no exp", a.token(Alg::EdDsa, "m", json!({"exp": null})), AuthError::BadClaim("exp".into())),
        ("no sub", a.token(Alg::EdDsa, "m", json!({"sub": null})), AuthError::BadClaim("sub".into())),
        ("no iss", a.token(Alg::EdDsa, "m", json!({"iss": null})), AuthError::BadClaim("iss".into())),
        ("wrong iss: a's key, b's name", a.token(Alg::Rs256, "m", json!({"iss": b.issuer()})), AuthError::WrongIssuer),
        ("wrong aud", a.token(Alg::Rs256, "m", json!({"aud": "someone-else"})), AuthError::WrongAudience),
        ("wrong aud list", a.token(Alg::Rs256, "m", json!({"aud": ["x", "y"]})), AuthError::WrongAudience),
        ("no aud", a.token(Alg::Rs256, "m", json!({"aud": null})), AuthError::WrongAudience),
        ("unknown kid", a.sign_raw(&json!({"kid": "bogus"}), &claims, Alg::Rs256), AuthError::UnknownKid),
        ("unconfigured issuer", stranger.token(Alg::Rs256, "m", json!({})), AuthError::UnknownIssuer),
        (
            "unconfigured issuer claiming a's name",
            stranger.token(Alg::Rs256, "m", json!({"iss": a.issuer()})),
            AuthError::UnknownKid,
        ),
        ("tampered claims", tamper(&good, &a.claims("admin", json!({}))), AuthError::BadSignature),
        ("truncated to two parts", cut, AuthError::Malformed("not a compact JWS (three dot-separated parts)")),
        ("truncated signature", cut_sig, AuthError::BadSignature),
        ("garbage base64", "eyJhbGciOi!.@@@.###".into(), AuthError::Malformed("header is not base64url")),
        ("garbage", "not a token at all".into(), AuthError::Malformed("not a compact JWS (three dot-separated parts)")),
        ("empty", String::new(), AuthError::Malformed("not a compact JWS (three dot-separated parts)")),
        ("64 KiB", big, AuthError::TooLarge(64 * 1024)),
    ];
    for (name, token, want) in cases {
        let started = Instant::now();
        assert_eq!(v.verify(&token).await, Err(want), "{name}");
        assert!(started.elapsed() < Duration::from_millis(500), "{name} answered at once");
    }
    assert_eq!((a.jwks_fetches(), b.jwks_fetches()), fetches, "no attack made a fetch within the cooldown");

    // The allowlist is per issuer.
    let es_only = verifier(&[cfg(&a, "algorithms = [\"ES256\"]")]);
    let rs = a.token(Alg::Rs256, "m", json!({}));
    assert_eq!(es_only.verify(&rs).await.unwrap_err(), AuthError::AlgorithmNotAllowed("RS256".into()));
    assert!(es_only.verify(&a.token(Alg::Es256, "m", json!({}))).await.is_ok());
    // Without a kid, the issuer's one key of the right type is used.
    let kidless = a.sign_raw(&json!({"typ": "JWT"}), &a.claims("k", json!({})), Alg::EdDsa);
    assert_eq!(v.verify(&kidless).await.unwrap().subject, "k");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_one_fetch_per_cooldown() {
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "jwks_refresh_cooldown = \"1h\"")]);
    wait_keys(&v).await;
    // As if the cooldown since the first fetch had passed: the flood may cause one fetch.
    v.issuer(0).forget_cooldown();
    let before = idp.jwks_fetches();
    let tokens: Vec<String> = (0..1000)
        .map(|i| idp.sign_raw(&json!({"kid": format!("bogus-{i}")}), &idp.claims("x", json!({})), Alg::Es256))
        .collect();
    for round in 0..2 {
        let started = Instant::now();
        let mut set = JoinSet::new();
        for t in &tokens {
            let (v, t) = (v.clone(), t.clone());
            set.spawn(async move { v.verify(&t).await });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap_err(), AuthError::UnknownKid);
        }
        assert!(started.elapsed() < Duration::from_secs(4), "round {round}: {:?}", started.elapsed());
        assert_eq!(idp.jwks_fetches() - before, 1, "round {round}: one fetch in all");
    }
    // Real tokens still pass.
    assert!(v.verify(&idp.token(Alg::Es256, "ok", json!({}))).await.is_ok());
}

#[tokio::test]
async fn last_good_keys_are_kept_while_the_idp_is_down_or_broken() {
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "jwks_refresh_cooldown = \"1ms\"")]);
    wait_keys(&v).await;
    idp.set_available(false);
    // An unknown kid forces a (failing) refresh; the cached keys survive it.
    let attempts = v.issuer(0).fetch_attempts();
    let bogus = idp.sign_raw(&json!({"kid": "bogus"}), &idp.claims("x", json!({})), Alg::Rs256);
    assert_eq!(v.verify(&bogus).await.unwrap_err(), AuthError::UnknownKid);
    assert!(v.issuer(0).fetch_attempts() > attempts);
    for alg in Alg::ALL {
        // Fresh tokens (new jti): no verified-token cache involved.
        assert!(v.verify(&idp.token(alg, "still-works", json!({}))).await.is_ok(), "{alg:?} with the IdP down");
    }
    idp.set_available(true);
    idp.set_garbage(true);
    let attempts = v.issuer(0).fetch_attempts();
    assert_eq!(v.verify(&bogus).await.unwrap_err(), AuthError::UnknownKid);
    assert!(v.issuer(0).fetch_attempts() > attempts);
    assert!(v.verify(&idp.token(Alg::Es256, "still-works", json!({}))).await.is_ok(), "garbage JWKS ignored");
}

#[tokio::test]
async fn tokens_wait_for_the_first_fetch_then_get_keys_unavailable() {
    let idp = TestIdp::start().await;
    idp.set_available(false);
    let v = verifier_tuned(&[cfg(&idp, "jwks_refresh_cooldown = \"50ms\"")], Duration::from_millis(400));
    let token = idp.token(Alg::Rs256, "early", json!({}));
    let started = Instant::now();
    assert_eq!(v.verify(&token).await.unwrap_err(), AuthError::KeysUnavailable);
    assert!(started.elapsed() >= Duration::from_millis(350) && started.elapsed() < Duration::from_secs(2));
    // The IdP comes back: the retries pick it up.
    idp.set_available(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match v.verify(&token).await {
            Ok(id) => break assert_eq!(id.subject, "early"),
            Err(AuthError::KeysUnavailable) if Instant::now() < deadline => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(idp.discovery_fetches() >= 2, "discovery retried");
}

#[tokio::test]
async fn a_token_arriving_during_the_first_fetch_waits_for_it() {
    let idp = TestIdp::start().await;
    idp.set_jwks_delay(Duration::from_millis(300));
    let v = verifier(&[cfg(&idp, "")]);
    let id = v.verify(&idp.token(Alg::EdDsa, "patient", json!({}))).await.unwrap();
    assert_eq!(id.subject, "patient");
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn setup_errors() {
    let idp = TestIdp::start().await;
    let mut c = cfg(&idp, "");
    c.ca_file = Some("/nonexistent/ca.pem".into());
    let e = OidcVerifier::new(&[c]).unwrap_err().to_string();
    assert!(e.contains("identity.oidc[0]") && e.contains("/nonexistent/ca.pem"), "{e}");
    let mut c = cfg(&idp, "");
    c.algorithms = vec!["HS256".into()];
    assert!(OidcVerifier::new(&[c]).unwrap_err().to_string().contains("HS256"));
    let mut c = cfg(&idp, "");
    c.groups_claim = "/bad~2escape".into();
    assert!(OidcVerifier::new(&[c]).unwrap_err().to_string().contains("claim path"));
    let c = cfg(&idp, "");
    assert!(OidcVerifier::new(&[c.clone(), c]).unwrap_err().to_string().contains("twice"));
    let mut c = cfg(&idp, "");
    c.jwks_uri = Some("http://keys.example/jwks".into());
    assert!(OidcVerifier::new(&[c]).unwrap_err().to_string().contains("jwks_uri"));
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, captured by a process-wide subscriber (a thread-local one
/// would miss lines whose callsites other tests' threads registered first).
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");
        logs
    })
}

#[tokio::test]
async fn no_token_or_key_material_in_logs() {
    let logs = captured_logs();
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "jwks_refresh_cooldown = \"1ms\"")]);
    let mut secrets = vec![];
    for k in idp.jwks()["keys"].as_array().unwrap() {
        for f in ["n", "x", "y"] {
            if let Some(s) = k[f].as_str() {
                secrets.push(s[..40.min(s.len())].to_owned());
            }
        }
    }
    let now = now_secs();
    let mut tokens = vec![
        idp.token(Alg::Rs256, "alice", json!({})),
        idp.token(Alg::Es256, "bob", json!({"exp": now - 100})),
        idp.sign_raw(&json!({"kid": "bogus"}), &idp.claims("c", json!({})), Alg::EdDsa),
        idp::hs256(
            idp.rsa_public_key_pem().as_bytes(),
            &json!({"kid": idp.kid(Alg::Rs256)}),
            &idp.claims("d", json!({})),
        ),
        idp::unsigned(&json!({}), &idp.claims("e", json!({}))),
    ];
    for t in &tokens {
        let _ = v.verify(t).await;
    }
    idp.rotate(Alg::Rs256);
    idp.set_garbage(true);
    tokens.push(idp.token(Alg::Rs256, "frank", json!({})));
    let _ = v.verify(tokens.last().unwrap()).await;
    idp.set_available(false);
    let _ = v.verify(&tokens[2]).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let ours = |what: &str| text.lines().any(|l| l.contains(what) && l.contains(&format!("issuer={}", idp.issuer())));
    assert!(ours("issuer keys loaded") && ours("fetching the issuer's keys failed"), "{text}");
    for t in &tokens {
        for part in t.split('.').filter(|p| p.len() > 8) {
            assert!(!text.contains(part), "a token part leaked into the logs:\n{text}");
        }
    }
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "key material leaked into the logs:\n{text}");
    }
}

/// Per-request cost of a verification, cache hit and miss, per algorithm. Run with
/// `cargo test --release -p modelgate-identity oidc::tests::timing -- --ignored --nocapture`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "timing report, not a check"]
async fn timing() {
    let idp = TestIdp::start().await;
    let v = verifier(&[cfg(&idp, "")]);
    wait_keys(&v).await;
    let groups =
        json!({"groups": ["ml-team", "users", "readers"], "name": "Alice Example", "email": "alice@example.com"});
    const N: usize = 2000;
    for alg in Alg::ALL {
        let tokens: Vec<String> = (0..N).map(|_| idp.token(alg, "alice", groups.clone())).collect();
        let started = Instant::now();
        for t in &tokens {
            v.verify(t).await.unwrap();
        }
        let miss = started.elapsed() / N as u32;
        let started = Instant::now();
        for _ in 0..10 {
            for t in &tokens {
                v.verify(t).await.unwrap();
            }
        }
        let hit = started.elapsed() / (10 * N) as u32;
        println!(
            "{:<6} token {:>4} B: miss {:>7.1} µs, hit {:>5.2} µs",
            alg.name(),
            tokens[0].len(),
            miss.as_secs_f64() * 1e6,
            hit.as_secs_f64() * 1e6
        );
    }
    let off = OidcVerifier::with_tuning(&[cfg(&idp, "")], Tuning { cache_entries: 0, ..Tuning::default() }).unwrap();
    off.start();
    wait_keys(&off).await;
    let t = idp.token(Alg::Rs256, "alice", groups);
    let started = Instant::now();
    for _ in 0..N {
        off.verify(&t).await.unwrap();
    }
    println!("RS256 without the token cache: {:.1} µs", (started.elapsed() / N as u32).as_secs_f64() * 1e6);
}
