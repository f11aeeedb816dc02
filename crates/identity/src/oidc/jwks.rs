//! An issuer's verification keys: parsing a JWKS, choosing the key for a token, verifying.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::jwt::asymmetric;

/// The type of a public key, which decides the algorithms it may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// RSA (RS256/384/512, PS256/384/512).
    Rsa,
    /// ECDSA on P-256 (ES256).
    P256,
    /// ECDSA on P-384 (ES384).
    P384,
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl KeyType {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyType::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyType::P256 => alg == ES256,
            KeyType::P384 => alg == ES384,
            KeyType::Ed25519 => alg == EdDSA,
        }
    }
}

/// One usable public key of an issuer.
pub(crate) struct VerifyKey {
    /// The key's `kid`, when it has one.
    pub(crate) kid: Option<String>,
    /// The key's own `alg`, when it names one: then it verifies only that algorithm.
    alg: Option<Algorithm>,
    ty: KeyType,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("alg", &self.alg).field("ty", &self.ty).finish()
    }
}

impl VerifyKey {
    /// Whether this key may verify a token signed with `alg`: its type must fit and, if the key
    /// names an algorithm, it must be `alg`. An RSA key never verifies an HMAC token.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.ty.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }

    /// Verifies a base64url `signature` over `signing_input` with this key.
    pub(crate) fn verify(&self, signing_input: &str, signature: &str, alg: Algorithm) -> bool {
        self.fits(alg)
            && jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &self.key, alg).unwrap_or(false)
    }
}

/// A fetched key set, swapped whole when a refresh brings different keys.
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerifyKey>>,
    /// SHA-256 over the usable keys (kid, alg, type and material): equal sets are not swapped.
    pub(crate) fingerprint: [u8; 32],
}

/// Which key verifies a token.
pub(crate) enum Pick {
    /// This one.
    Key(Arc<VerifyKey>),
    /// The `kid` exists but its key does not fit the token's algorithm.
    Mismatch,
    /// No key has this `kid` (or, without a `kid`, no key fits the algorithm): refresh.
    Missing,
    /// No `kid`, and several keys fit: refuse rather than guess.
    Ambiguous,
}

impl KeySet {
    /// The key for a token with `kid` and `alg`: by `kid`, or, without one, the only key that fits.
    pub(crate) fn pick(&self, kid: Option<&str>, alg: Algorithm) -> Pick {
        match kid {
            Some(kid) => {
                let mut named = false;
                for k in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    if k.fits(alg) {
                        return Pick::Key(k.clone());
                    }
                    named = true;
                }
                if named { Pick::Mismatch } else { Pick::Missing }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Pick::Key(k.clone()),
                    (None, _) => Pick::Missing,
                    (Some(_), Some(_)) => Pick::Ambiguous,
                }
            }
        }
    }

    /// The kids, for logs.
    pub(crate) fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("(none)")).collect()
    }
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum JwksError {
    #[error("the key set is not a JSON object with a \"keys\" array")]
    NotAKeySet,
    #[error("the key set holds no usable signing key ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(s: Option<&String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s?.as_bytes()).ok()
}

/// One JWK as a verification key, or `None` for keys we cannot or must not use: symmetric
/// (`oct`) keys, encryption keys, unknown types and curves, keys naming a non-asymmetric `alg`,
/// malformed or too-small material.
fn parse_key(raw: RawKey, hash: &mut Sha256) -> Option<VerifyKey> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|o| o == "verify")) {
        return None;
    }
    let alg = match &raw.alg {
        None => None,
        Some(a) => Some(asymmetric(a)?),
    };
    let (ty, key, material) = match raw.kty.as_str() {
        "RSA" => {
            let (n, e) = (b64(raw.n.as_ref())?, b64(raw.e.as_ref())?);
            // At least 2048 bits (leading zero bytes do not count), and a sane exponent.
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 || e.is_empty() || e.len() > 8 {
                return None;
            }
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            (KeyType::Rsa, key, [n, e].concat())
        }
        "EC" => {
            let (ty, len) = match raw.crv.as_deref()? {
                "P-256" => (KeyType::P256, 32),
                "P-384" => (KeyType::P384, 48),
                _ => return None,
            };
            let (x, y) = (b64(raw.x.as_ref())?, b64(raw.y.as_ref())?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let point = [&[4u8][..], &x, &y].concat();
            (ty, DecodingKey::from_ec_der(&point), point)
        }
        "OKP" => {
            if raw.crv.as_deref()? != "Ed25519" {
                return None;
            }
            let x = b64(raw.x.as_ref())?;
            if x.len() != 32 {
                return None;
            }
            (KeyType::Ed25519, DecodingKey::from_ed_der(&x), x)
        }
        _ => return None,
    };
    if alg.is_some_and(|a| !ty.fits(a)) {
        return None;
    }
    let kid = raw.kid;
    for part in [kid.as_deref().unwrap_or("").as_bytes(), raw.alg.as_deref().unwrap_or("").as_bytes(), &material] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update([ty as u8]);
    Some(VerifyKey { kid, alg, ty, key })
}

/// Parses a JWKS document, keeping the usable signing keys.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let set: RawSet = serde_json::from_slice(body).map_err(|_| JwksError::NotAKeySet)?;
    let mut hash = Sha256::new();
    let mut keys = Vec::with_capacity(set.keys.len());
    let mut skipped = 0;
    for raw in set.keys {
        match serde_json::from_value::<RawKey>(raw).ok().and_then(|r| parse_key(r, &mut hash)) {
            Some(k) => keys.push(Arc::new(k)),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { skipped });
    }
    Ok(KeySet { keys, fingerprint: hash.finalize().into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use testkit::idp::{Alg, TestIdp};

    #[tokio::test]
    async fn parses_the_test_idp_set_and_picks_by_kid_and_type() {
        let idp = TestIdp::start().await;
        let mut jwks = idp.jwks();
        let keys = jwks["keys"].as_array_mut().unwrap();
        keys.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        keys.push(json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": keys[0]["n"], "e": "AQAB"}));
        keys.push(json!({"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!({"kty": "RSA", "kid": "hs", "alg": "HS256", "n": keys[0]["n"], "e": "AQAB"}));
        keys.push(json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}));
        keys.push(json!({"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": keys[2]["x"]}));
        keys.push(json!({"kid": "no-kty"}));
        keys.push(json!("not an object"));
        let set = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(set.kids(), [idp.kid(Alg::Rs256), idp.kid(Alg::Es256), idp.kid(Alg::EdDsa)]);

        let rsa = idp.kid(Alg::Rs256);
        assert!(matches!(set.pick(Some(&rsa), Algorithm::RS256), Pick::Key(_)));
        // The RSA key names RS256: neither another RSA algorithm nor ES256 may use it.
        assert!(matches!(set.pick(Some(&rsa), Algorithm::PS256), Pick::Mismatch));
        assert!(matches!(set.pick(Some(&rsa), Algorithm::ES256), Pick::Mismatch));
        assert!(matches!(set.pick(Some("hmac"), Algorithm::RS256), Pick::Missing));
        assert!(matches!(set.pick(Some("nope"), Algorithm::RS256), Pick::Missing));
        assert!(matches!(set.pick(None, Algorithm::EdDSA), Pick::Key(_)));
        assert!(matches!(set.pick(None, Algorithm::ES384), Pick::Missing));

        // Verification with the right key only.
        let token = idp.token(Alg::Es256, "a", json!({}));
        let (input, sig) = token.rsplit_once('.').unwrap();
        let Pick::Key(es) = set.pick(Some(&idp.kid(Alg::Es256)), Algorithm::ES256) else { panic!() };
        assert!(es.verify(input, sig, Algorithm::ES256));
        assert!(!es.verify(&format!("{input}x"), sig, Algorithm::ES256));
        let Pick::Key(rs) = set.pick(Some(&rsa), Algorithm::RS256) else { panic!() };
        assert!(!rs.verify(input, sig, Algorithm::ES256));
        assert!(!format!("{es:?}{rs:?}").contains(&idp.jwks()["keys"][0]["n"].as_str().unwrap()[..20]));
    }

    #[tokio::test]
    async fn kidless_keys_and_fingerprints() {
        let idp = TestIdp::start().await;
        let mut jwks = idp.jwks();
        let a = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        let b = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        // Two RSA keys without kid and alg: a kid-less RS256 token is ambiguous.
        let rsa = jwks["keys"][0].clone();
        let mut plain = rsa.clone();
        for f in ["kid", "alg", "use"] {
            plain.as_object_mut().unwrap().remove(f);
        }
        jwks["keys"].as_array_mut().unwrap().push(plain.clone());
        let c = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint);
        assert!(matches!(c.pick(None, Algorithm::RS256), Pick::Ambiguous));
        let only = parse_jwks(json!({"keys": [plain]}).to_string().as_bytes()).unwrap();
        assert!(matches!(only.pick(None, Algorithm::PS512), Pick::Key(_)), "a key without alg fits its whole family");

        assert_eq!(parse_jwks(b"<html>").unwrap_err(), JwksError::NotAKeySet);
        assert_eq!(parse_jwks(b"{\"keys\": {}}").unwrap_err(), JwksError::NotAKeySet);
        assert_eq!(parse_jwks(b"{\"keys\": []}").unwrap_err(), JwksError::NoUsableKey { skipped: 0 });
        let oct: Value = json!({"keys": [{"kty": "oct", "k": "AA"}]});
        assert_eq!(parse_jwks(oct.to_string().as_bytes()).unwrap_err(), JwksError::NoUsableKey { skipped: 1 });
    }
}
