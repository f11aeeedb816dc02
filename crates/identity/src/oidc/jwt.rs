//! Parsing a compact JWS and checking and mapping its claims. No crypto and no I/O here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::AuthError;

/// Largest bearer token looked at (SPEC section 8); anything longer is refused unparsed.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A compact JWS split into its parts, with header and claims decoded but nothing verified.
pub(crate) struct Parsed<'t> {
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub(crate) signing_input: &'t str,
    /// The base64url signature.
    pub(crate) signature: &'t str,
    /// The header's `alg`, as written.
    pub(crate) alg: String,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The claims object.
    pub(crate) claims: Value,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Critical extensions: we understand none, so any is a refusal (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Splits and decodes `token`. Fails with `Malformed` for anything that is not three non-empty
/// base64url parts with a JSON-object header (with a string `alg`) and a JSON-object payload.
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("not a compact JWS (three dot-separated parts)"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(AuthError::Malformed("empty JWS part"));
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| AuthError::Malformed("header is not base64url"))?;
    // A JSON object only (serde would also take an array for a struct).
    if header.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::Malformed("header is not a JWS header"));
    }
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| AuthError::Malformed("header is not a JWS header"))?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed("unsupported critical header extension"));
    }
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| AuthError::Malformed("payload is not base64url"))?;
    let claims: Value = serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed("payload is not JSON"))?;
    if !claims.is_object() {
        return Err(AuthError::Malformed("claims are not a JSON object"));
    }
    if s.is_empty() {
        // An unsigned token: the algorithm check refuses it (`alg: none` is never allowed).
    } else if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(AuthError::Malformed("signature is not base64url"));
    }
    Ok(Parsed { signing_input, signature: s, alg: header.alg, kid: header.kid, claims })
}

/// The asymmetric algorithm named `name`; `none`, HMAC and unknown names are `None`.
pub(crate) fn asymmetric(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The value at `path` in `claims`: a top-level claim name, or (starting with `/`) an RFC 6901
/// JSON Pointer (`~1` is `/`, `~0` is `~`) into nested objects and arrays.
pub(crate) fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if path.starts_with('/') { claims.pointer(path) } else { claims.get(path) }
}

/// Whether a configured claim path is well-formed (a non-empty name, or a JSON Pointer whose `~`
/// escapes are only `~0` and `~1`).
pub(crate) fn valid_claim_path(path: &str) -> bool {
    if path.is_empty() {
        return false;
    }
    if !path.starts_with('/') {
        return true;
    }
    let b = path.as_bytes();
    b.iter().enumerate().all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// A NumericDate claim as whole seconds: `Ok(None)` when absent, `BadClaim` when not a finite
/// number.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => {
            if let Some(i) = v.as_i64() {
                return Ok(Some(i));
            }
            match v.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => Err(AuthError::BadClaim(name.to_owned())),
            }
        }
    }
}

/// What the time checks found: the token's validity window, for the verified-token cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// `exp`, seconds since the epoch.
    pub(crate) exp: i64,
    /// `nbf`, when present.
    pub(crate) nbf: Option<i64>,
}

impl Window {
    /// Whether the window holds at `now`, with `leeway` seconds of skew either way.
    pub(crate) fn check(&self, now: i64, leeway: i64) -> Result<(), AuthError> {
        if now >= self.exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }
}

/// Checks `iss`, `exp` (required), `nbf`, `iat` and `aud` of signature-verified `claims`.
pub(crate) fn check(
    claims: &Value,
    issuer: &str,
    audiences: &[String],
    now: i64,
    leeway: i64,
) -> Result<Window, AuthError> {
    let Some(map) = claims.as_object() else { return Err(AuthError::Malformed("claims are not a JSON object")) };
    if map.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(AuthError::WrongIssuer);
    }
    let exp = numeric_date(map, "exp")?.ok_or_else(|| AuthError::BadClaim("exp".into()))?;
    let window = Window { exp, nbf: numeric_date(map, "nbf")? };
    window.check(now, leeway)?;
    if numeric_date(map, "iat")?.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(AuthError::IssuedInFuture);
    }
    let accepted = |a: &str| audiences.iter().any(|x| x == a);
    let aud_ok = match map.get("aud") {
        None => false,
        Some(Value::String(a)) => accepted(a),
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(accepted)),
        Some(_) => return Err(AuthError::BadClaim("aud".into())),
    };
    if !aud_ok {
        return Err(AuthError::WrongAudience);
    }
    Ok(window)
}

/// How an issuer's claims map to an identity.
#[derive(Clone, Debug)]
pub(crate) struct ClaimMap {
    pub(crate) subject: String,
    pub(crate) display: Option<String>,
    pub(crate) groups: String,
    pub(crate) service_claim: Option<String>,
    pub(crate) service_values: Vec<String>,
}

/// Display-name fallbacks when no `display_claim` is configured or it is absent.
const DISPLAY_FALLBACKS: [&str; 3] = ["name", "preferred_username", "email"];

impl ClaimMap {
    /// The subject: a non-empty string.
    pub(crate) fn subject(&self, claims: &Value) -> Result<String, AuthError> {
        match claim(claims, &self.subject) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(AuthError::BadClaim(self.subject.clone())),
        }
    }

    /// The display name: `display_claim`, else `name`, `preferred_username`, `email`.
    pub(crate) fn display(&self, claims: &Value) -> Option<String> {
        let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        self.display
            .as_deref()
            .and_then(|p| non_empty(claim(claims, p)))
            .or_else(|| DISPLAY_FALLBACKS.iter().find_map(|n| non_empty(claims.get(*n))))
    }

    /// The groups: an array (its string elements) or a single string; absent is none.
    pub(crate) fn groups(&self, claims: &Value) -> Result<Vec<String>, AuthError> {
        match claim(claims, &self.groups) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(list)) => Ok(list.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect()),
            Some(_) => Err(AuthError::BadClaim(self.groups.clone())),
        }
    }

    /// Whether `service_claim` marks the token as a workload's: present (and not `null` or
    /// `false`) when `service_values` is empty, else equal to one of them (a string, number or
    /// boolean compared as text, or an array holding one).
    pub(crate) fn is_service(&self, claims: &Value) -> bool {
        let Some(path) = &self.service_claim else { return false };
        let Some(v) = claim(claims, path) else { return false };
        if self.service_values.is_empty() {
            return !matches!(v, Value::Null | Value::Bool(false));
        }
        let matches = |v: &Value| match v {
            Value::String(s) => self.service_values.iter().any(|x| x == s),
            Value::Number(_) | Value::Bool(_) => {
                let s = v.to_string();
                self.service_values.contains(&s)
            }
            _ => false,
        };
        match v {
            Value::Array(list) => list.iter().any(matches),
            other => matches(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn parse_refuses_malformed_tokens() {
        let h = enc(&json!({"alg": "RS256", "kid": "k"}));
        let p = enc(&json!({"iss": "x"}));
        let ok = format!("{h}.{p}.c2ln");
        let parsed = parse(&ok).unwrap();
        assert_eq!((parsed.alg.as_str(), parsed.kid.as_deref()), ("RS256", Some("k")));
        assert_eq!(parsed.signing_input, format!("{h}.{p}"));
        assert_eq!(parsed.signature, "c2ln");

        for bad in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!(".{p}.c2ln"),
            format!("{h}..c2ln"),
            format!("{h}!.{p}.c2ln"),
            format!("{h}.{p}.c2l+"),
            format!("{}.{p}.c2ln", enc(&json!(["RS256"]))),
            format!("{}.{p}.c2ln", enc(&json!({"kid": "k"}))),
            format!("{}.{p}.c2ln", enc(&json!({"alg": "RS256", "crit": ["exp"]}))),
            format!("{h}.{}.c2ln", enc(&json!("claims"))),
            format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode(b"{not json")),
        ] {
            assert!(matches!(parse(&bad), Err(AuthError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn only_asymmetric_algorithms_exist() {
        for a in config::ASYMMETRIC_ALGORITHMS {
            assert!(asymmetric(a).is_some(), "{a}");
        }
        for a in ["none", "None", "HS256", "HS384", "HS512", "rs256", "ES512", ""] {
            assert!(asymmetric(a).is_none(), "{a}");
        }
    }

    #[test]
    fn claim_paths_and_json_pointers() {
        let c = json!({
            "groups": ["a"],
            "realm_access": {"roles": ["r1", "r2"]},
            "https://example.com/groups": ["x"],
            "a~b": {"c/d": [10, {"e": "deep"}]},
        });
        assert_eq!(claim(&c, "groups"), Some(&json!(["a"])));
        assert_eq!(claim(&c, "/realm_access/roles"), Some(&json!(["r1", "r2"])));
        assert_eq!(claim(&c, "/https:~1~1example.com~1groups"), Some(&json!(["x"])));
        assert_eq!(claim(&c, "https://example.com/groups"), Some(&json!(["x"])));
        assert_eq!(claim(&c, "/a~0b/c~1d/1/e"), Some(&json!("deep")));
        assert_eq!(claim(&c, "/realm_access/missing"), None);
        assert_eq!(claim(&c, "realm_access/roles"), None);
        assert!(valid_claim_path("/a~0b/c~1d") && valid_claim_path("groups") && valid_claim_path("/"));
        assert!(!valid_claim_path("") && !valid_claim_path("/a~2") && !valid_claim_path("/a~"));
    }

    #[test]
    fn time_and_audience_checks() {
        let aud = vec!["modelgate".to_owned(), "other".to_owned()];
        let base = json!({"iss": "https://i", "aud": "modelgate", "exp": 1000, "nbf": 900, "iat": 900});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v;
            }
            c
        };
        let w = check(&base, "https://i", &aud, 950, 0).unwrap();
        assert_eq!((w.exp, w.nbf), (1000, Some(900)));
        assert_eq!(check(&base, "https://j", &aud, 950, 0).unwrap_err(), AuthError::WrongIssuer);
        assert_eq!(check(&base, "https://i", &aud, 1000, 0).unwrap_err(), AuthError::Expired);
        assert!(check(&base, "https://i", &aud, 1000, 30).is_ok(), "leeway on exp");
        assert_eq!(check(&base, "https://i", &aud, 1030, 30).unwrap_err(), AuthError::Expired);
        assert_eq!(check(&base, "https://i", &aud, 899, 0).unwrap_err(), AuthError::NotYetValid);
        assert!(check(&with("iat", json!(850)), "https://i", &aud, 880, 20).is_ok(), "leeway on nbf");
        assert_eq!(check(&with("nbf", Value::Null), "https://i", &aud, 800, 0).unwrap_err(), AuthError::IssuedInFuture);
        assert!(check(&with("nbf", Value::Null), "https://i", &aud, 800, 100).is_ok(), "leeway on iat");
        assert_eq!(
            check(&with("exp", Value::Null), "https://i", &aud, 950, 0).unwrap_err(),
            AuthError::BadClaim("exp".into())
        );
        assert_eq!(
            check(&with("exp", json!("1000")), "https://i", &aud, 950, 0).unwrap_err(),
            AuthError::BadClaim("exp".into())
        );
        assert!(check(&with("exp", json!(1000.5)), "https://i", &aud, 950, 0).is_ok());
        assert_eq!(
            check(&with("iat", json!(true)), "https://i", &aud, 950, 0).unwrap_err(),
            AuthError::BadClaim("iat".into())
        );
        assert!(check(&with("aud", json!(["x", "other"])), "https://i", &aud, 950, 0).is_ok());
        assert!(check(&with("aud", json!([1, "other"])), "https://i", &aud, 950, 0).is_ok());
        assert_eq!(check(&with("aud", json!(["x"])), "https://i", &aud, 950, 0).unwrap_err(), AuthError::WrongAudience);
        assert_eq!(check(&with("aud", json!("x")), "https://i", &aud, 950, 0).unwrap_err(), AuthError::WrongAudience);
        assert_eq!(check(&with("aud", Value::Null), "https://i", &aud, 950, 0).unwrap_err(), AuthError::WrongAudience);
        assert_eq!(
            check(&with("aud", json!({"a": 1})), "https://i", &aud, 950, 0).unwrap_err(),
            AuthError::BadClaim("aud".into())
        );
    }

    #[test]
    fn claim_mapping() {
        let mut m = ClaimMap {
            subject: "sub".into(),
            display: None,
            groups: "/realm_access/roles".into(),
            service_claim: None,
            service_values: vec![],
        };
        let c = json!({"sub": "u1", "preferred_username": "ann", "email": "a@x", "realm_access": {"roles": ["a", 3, "b"]},
                       "kubernetes.io": {"namespace": "ci"}, "token_use": "m2m", "flags": [true, "svc"]});
        assert_eq!(m.subject(&c).unwrap(), "u1");
        assert_eq!(m.display(&c).as_deref(), Some("ann"));
        assert_eq!(m.groups(&c).unwrap(), ["a", "b"]);
        assert!(!m.is_service(&c));

        m.subject = "/kubernetes.io/namespace".into();
        m.display = Some("email".into());
        m.groups = "token_use".into();
        assert_eq!(m.subject(&c).unwrap(), "ci");
        assert_eq!(m.display(&c).as_deref(), Some("a@x"));
        assert_eq!(m.groups(&c).unwrap(), ["m2m"]);
        m.groups = "missing".into();
        assert!(m.groups(&c).unwrap().is_empty());
        m.groups = "sub".into();
        assert_eq!(m.groups(&c).unwrap(), ["u1"]);
        m.groups = "/realm_access".into();
        assert_eq!(m.groups(&c).unwrap_err(), AuthError::BadClaim("/realm_access".into()));
        m.subject = "missing".into();
        assert_eq!(m.subject(&c).unwrap_err(), AuthError::BadClaim("missing".into()));
        m.display = Some("missing".into());
        assert_eq!(m.display(&json!({"name": ""})), None);

        m.service_claim = Some("/kubernetes.io/namespace".into());
        assert!(m.is_service(&c));
        m.service_values = vec!["prod".into()];
        assert!(!m.is_service(&c));
        m.service_values = vec!["prod".into(), "ci".into()];
        assert!(m.is_service(&c));
        m.service_claim = Some("flags".into());
        m.service_values = vec!["true".into()];
        assert!(m.is_service(&c));
        m.service_values = vec![];
        assert!(!m.is_service(&json!({"flags": false})));
    }
}
