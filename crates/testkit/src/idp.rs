//! A test OpenID Connect identity provider on loopback.
//!
//! [`TestIdp`] serves `GET {issuer}/.well-known/openid-configuration` and `GET {issuer}/jwks`,
//! holds one current signing key per algorithm (RS256 with a 2048-bit RSA key, ES256 on P-256,
//! EdDSA on Ed25519), signs tokens with them, rotates them and can pretend to be down. Keys are
//! generated and used through aws-lc-rs, the workspace's one crypto provider.
//!
//! [`hs256`] and [`unsigned`] build the tokens of the classic attacks (an HMAC keyed with the
//! issuer's public key, `alg: none`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use aws_lc_rs::{hmac, rsa::KeySize};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A signature algorithm the test IdP signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit key.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every algorithm, in JWKS order.
    pub const ALL: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

    /// The JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    fn index(self) -> usize {
        match self {
            Alg::Rs256 => 0,
            Alg::Es256 => 1,
            Alg::EdDsa => 2,
        }
    }
}

enum Secret {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct SigningKey {
    kid: String,
    secret: Secret,
}

impl SigningKey {
    fn generate(alg: Alg) -> SigningKey {
        let secret = match alg {
            Alg::Rs256 => Secret::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA key")),
            Alg::Es256 => Secret::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate P-256 key"),
            ),
            Alg::EdDsa => Secret::Ed(Ed25519KeyPair::generate().expect("generate Ed25519 key")),
        };
        let kid = format!("{}-{}", alg.name().to_ascii_lowercase(), random_hex(8));
        SigningKey { kid, secret }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig).expect("RSA sign");
                sig
            }
            Secret::Ec(k) => k.sign(&SystemRandom::new(), message).expect("ECDSA sign").as_ref().to_vec(),
            Secret::Ed(k) => k.sign(message).as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> Value {
        match &self.secret {
            Secret::Rsa(k) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                       "n": b64(&c.n), "e": b64(&c.e)})
            }
            Secret::Ec(k) => {
                // Uncompressed point: 0x04 || x || y.
                let point = k.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                json!({"kty": "EC", "use": "sig", "alg": "ES256", "kid": self.kid, "crv": "P-256",
                       "x": b64(x), "y": b64(y)})
            }
            Secret::Ed(k) => json!({"kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": self.kid, "crv": "Ed25519",
                                    "x": b64(k.public_key().as_ref())}),
        }
    }
}

struct Shared {
    issuer: String,
    /// Path prefix of the issuer (`""` or `/realms/x`).
    path: String,
    /// Current key per algorithm, indexed by [`Alg::index`].
    keys: Mutex<[Arc<SigningKey>; 3]>,
    available: AtomicBool,
    garbage: AtomicBool,
    jwks_delay_ms: AtomicU64,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

/// A test OpenID Connect provider on `127.0.0.1`, serving discovery and a JWKS, signing tokens
/// with RS256, ES256 and EdDSA. Stops when dropped.
pub struct TestIdp {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::watch::Sender<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp").field("issuer", &self.shared.issuer).finish_non_exhaustive()
    }
}

impl TestIdp {
    /// Starts an IdP on `127.0.0.1:0`; its issuer is `http://127.0.0.1:PORT`.
    pub async fn start() -> TestIdp {
        TestIdp::start_with_path("").await
    }

    /// Starts an IdP whose issuer has a path, e.g. `/realms/dev` gives
    /// `http://127.0.0.1:PORT/realms/dev` (discovery and JWKS live under it).
    pub async fn start_with_path(path: &str) -> TestIdp {
        let path = path.trim_end_matches('/');
        assert!(path.is_empty() || path.starts_with('/'), "issuer path must start with '/': {path:?}");
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind test IdP");
        let addr = listener.local_addr().expect("test IdP address");
        let keys = Alg::ALL.map(|a| Arc::new(SigningKey::generate(a)));
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}{path}"),
            path: path.to_owned(),
            keys: Mutex::new(keys),
            available: AtomicBool::new(true),
            garbage: AtomicBool::new(false),
            jwks_delay_ms: AtomicU64::new(0),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let accept = tokio::spawn(crate::serve::accept_loop(listener, stop_rx, {
            let shared = shared.clone();
            move |req| handle(shared.clone(), req)
        }));
        TestIdp { shared, addr, accept, _stop: stop_tx }
    }

    /// The issuer URL (`iss` of every token it signs).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The JWKS URL, `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `kid` of the current key of `alg`.
    pub fn kid(&self, alg: Alg) -> String {
        self.current(alg).kid.clone()
    }

    /// The JWKS as currently served.
    pub fn jwks(&self) -> Value {
        jwks_of(&self.shared)
    }

    /// Signs `claims` with the current key of `alg`; the header carries `alg`, `typ: JWT` and the
    /// key's `kid`.
    pub fn sign(&self, alg: Alg, claims: &Value) -> String {
        let key = self.current(alg);
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": key.kid});
        compact(&header, claims, |m| key.sign(m))
    }

    /// Signs `claims` under an arbitrary `header` (e.g. a bogus or missing `kid`) with the current
    /// key of `alg`. Only a missing `alg` header is filled in (with `alg`'s name); everything else
    /// is used as given.
    pub fn sign_raw(&self, header: &Value, claims: &Value, alg: Alg) -> String {
        let key = self.current(alg);
        let mut header = header.clone();
        if let Some(h) = header.as_object_mut() {
            h.entry("alg").or_insert_with(|| alg.name().into());
        }
        compact(&header, claims, |m| key.sign(m))
    }

    /// The usual claims: `iss`, `aud: "modelgate"`, `sub`, `iat` and `nbf` now, `exp` in 300 s and
    /// a fresh `jti`, merged with `extra` (an object; its keys override, a `null` removes the
    /// claim).
    pub fn claims(&self, sub: &str, extra: Value) -> Value {
        let now = now_secs();
        let mut claims = json!({
            "iss": self.shared.issuer, "aud": "modelgate", "sub": sub,
            "iat": now, "nbf": now, "exp": now + 300, "jti": random_hex(12),
        });
        if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(&k);
                } else {
                    c.insert(k, v);
                }
            }
        }
        claims
    }

    /// A valid token for `sub` signed with the current key of `alg` ([`TestIdp::claims`] merged
    /// with `extra`).
    pub fn token(&self, alg: Alg, sub: &str, extra: Value) -> String {
        self.sign(alg, &self.claims(sub, extra))
    }

    /// Replaces the key of `alg` by a new one: the new key becomes current, the old one leaves the
    /// JWKS. Returns the new `kid`.
    pub fn rotate(&self, alg: Alg) -> String {
        let key = Arc::new(SigningKey::generate(alg));
        let kid = key.kid.clone();
        lock(&self.shared.keys)[alg.index()] = key;
        kid
    }

    /// The current RSA public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), e.g. to use as an
    /// HMAC secret in the algorithm-confusion attack.
    pub fn rsa_public_key_pem(&self) -> String {
        let key = self.current(Alg::Rs256);
        let Secret::Rsa(k) = &key.secret else { unreachable!("the RS256 slot holds an RSA key") };
        let der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(k.public_key()).expect("RSA public key DER");
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// `false`: discovery and JWKS answer 503 until set back to `true`.
    pub fn set_available(&self, up: bool) {
        self.shared.available.store(up, Ordering::SeqCst);
    }

    /// `true`: the JWKS endpoint answers 200 with a body that is not a JWKS.
    pub fn set_garbage(&self, garbage: bool) {
        self.shared.garbage.store(garbage, Ordering::SeqCst);
    }

    /// Delays every JWKS response by `delay` (to hold a fetch in flight).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.shared.jwks_delay_ms.store(delay.as_millis().try_into().unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Number of JWKS requests received (answered or not).
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Number of discovery requests received (answered or not).
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    fn current(&self, alg: Alg) -> Arc<SigningKey> {
        lock(&self.shared.keys)[alg.index()].clone()
    }
}

/// An HS256 token over `header` and `claims` keyed with `secret` (a missing `alg` header becomes
/// `HS256`). For the "public key as HMAC secret" attack.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let mut header = header.clone();
    if let Some(h) = header.as_object_mut() {
        h.entry("alg").or_insert_with(|| "HS256".into());
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    compact(&header, claims, |m| hmac::sign(&key, m).as_ref().to_vec())
}

/// An unsigned token (`header.claims.` with an empty signature; a missing `alg` header becomes
/// `none`).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    let mut header = header.clone();
    if let Some(h) = header.as_object_mut() {
        h.entry("alg").or_insert_with(|| "none".into());
    }
    compact(&header, claims, |_| Vec::new())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let mut message = b64(&serde_json::to_vec(header).expect("header JSON"));
    message.push('.');
    message.push_str(&b64(&serde_json::to_vec(claims).expect("claims JSON")));
    let sig = sign(message.as_bytes());
    message.push('.');
    message.push_str(&b64(&sig));
    message
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    SystemRandom::new().fill(&mut buf).expect("system random");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn jwks_of(shared: &Shared) -> Value {
    let keys = lock(&shared.keys).clone();
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().strip_prefix(shared.path.as_str()).unwrap_or("");
    let route = match (req.method(), path) {
        (&Method::GET, "/.well-known/openid-configuration") => {
            shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
            Route::Discovery
        }
        (&Method::GET, "/jwks") => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            Route::Jwks
        }
        _ => return Ok(respond(StatusCode::NOT_FOUND, json!({"error": "not_found"}).to_string())),
    };
    if route == Route::Jwks {
        let delay = shared.jwks_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
    if !shared.available.load(Ordering::SeqCst) {
        return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "unavailable"}).to_string()));
    }
    let body = match route {
        Route::Discovery => json!({
            "issuer": shared.issuer,
            "jwks_uri": format!("{}/jwks", shared.issuer),
            "id_token_signing_alg_values_supported": Alg::ALL.map(Alg::name),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
        })
        .to_string(),
        Route::Jwks if shared.garbage.load(Ordering::SeqCst) => "<html>not a key set</html>".to_owned(),
        Route::Jwks => jwks_of(&shared).to_string(),
    };
    Ok(respond(StatusCode::OK, body))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Discovery,
    Jwks,
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_part(token: &str, i: usize) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()
    }

    fn verify(idp: &TestIdp, token: &str) -> bool {
        let jwks = idp.jwks();
        let header: Value = serde_json::from_slice(&decode_part(token, 0)).unwrap();
        let kid = header["kid"].as_str().unwrap();
        let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap();
        let (msg, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let d = |f: &str| URL_SAFE_NO_PAD.decode(jwk[f].as_str().unwrap()).unwrap();
        match jwk["kty"].as_str().unwrap() {
            "RSA" => signature::RsaPublicKeyComponents { n: d("n"), e: d("e") }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg.as_bytes(), &sig)
                .is_ok(),
            "EC" => {
                let mut point = vec![4u8];
                point.extend(d("x"));
                point.extend(d("y"));
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg.as_bytes(), &sig)
                    .is_ok()
            }
            "OKP" => {
                signature::UnparsedPublicKey::new(&signature::ED25519, d("x")).verify(msg.as_bytes(), &sig).is_ok()
            }
            other => panic!("unexpected kty {other}"),
        }
    }

    async fn get(url: &str) -> (StatusCode, Value) {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<Bytes>>();
        let resp = client.get(url.parse().unwrap()).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn signs_verifiable_tokens_with_every_algorithm() {
        let idp = TestIdp::start().await;
        for alg in Alg::ALL {
            let token = idp.token(alg, "alice", json!({"groups": ["a"]}));
            assert!(verify(&idp, &token), "{alg:?} token verifies against the JWKS");
            let claims: Value = serde_json::from_slice(&decode_part(&token, 1)).unwrap();
            assert_eq!(claims["iss"], idp.issuer());
            assert_eq!(claims["sub"], "alice");
            assert_eq!(claims["aud"], "modelgate");
            assert_eq!(claims["groups"], json!(["a"]));
            assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
        }
        let t = idp.token(Alg::Es256, "bob", json!({"aud": ["x", "y"], "jti": null}));
        let claims: Value = serde_json::from_slice(&decode_part(&t, 1)).unwrap();
        assert_eq!(claims["aud"], json!(["x", "y"]));
        assert!(claims.get("jti").is_none());
    }

    #[tokio::test]
    async fn serves_discovery_and_jwks_and_rotates() {
        let idp = TestIdp::start_with_path("/realms/dev").await;
        assert!(idp.issuer().ends_with("/realms/dev"));
        let (s, doc) = get(&format!("{}/.well-known/openid-configuration", idp.issuer())).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(doc["issuer"], idp.issuer());
        assert_eq!(doc["jwks_uri"], idp.jwks_uri());
        assert_eq!(idp.discovery_fetches(), 1);

        let (s, jwks) = get(&idp.jwks_uri()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
        assert_eq!(idp.jwks_fetches(), 1);

        let old = idp.kid(Alg::Es256);
        let new = idp.rotate(Alg::Es256);
        assert_ne!(old, new);
        let (_, jwks) = get(&idp.jwks_uri()).await;
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(kids.contains(&new.as_str()) && !kids.contains(&old.as_str()));
        assert!(verify(&idp, &idp.token(Alg::Es256, "a", json!({}))));

        idp.set_available(false);
        assert_eq!(get(&idp.jwks_uri()).await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&format!("{}/.well-known/openid-configuration", idp.issuer())).await.0, 503);
        assert_eq!(idp.jwks_fetches(), 3);
        idp.set_available(true);
        idp.set_garbage(true);
        assert_eq!(get(&idp.jwks_uri()).await, (StatusCode::OK, Value::Null));
    }

    #[tokio::test]
    async fn attack_helpers() {
        let idp = TestIdp::start().await;
        let pem = idp.rsa_public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMII"));
        let claims = idp.claims("mallory", json!({}));
        let t = hs256(pem.as_bytes(), &json!({"kid": idp.kid(Alg::Rs256)}), &claims);
        let header: Value = serde_json::from_slice(&decode_part(&t, 0)).unwrap();
        assert_eq!(header["alg"], "HS256");
        assert_eq!(decode_part(&t, 2).len(), 32);
        let t = unsigned(&json!({"typ": "JWT"}), &claims);
        assert!(t.ends_with('.'));
        let header: Value = serde_json::from_slice(&decode_part(&t, 0)).unwrap();
        assert_eq!(header["alg"], "none");
        let t = idp.sign_raw(&json!({"kid": "bogus"}), &claims, Alg::EdDsa);
        let header: Value = serde_json::from_slice(&decode_part(&t, 0)).unwrap();
        assert_eq!(header, json!({"alg": "EdDSA", "kid": "bogus"}));
    }
}
