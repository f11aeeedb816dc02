//! OIDC/JWT verification for any number of `[[identity.oidc]]` issuers.
//!
//! [`OidcVerifier::verify`] refuses before any crypto what it can: tokens over 16 KiB, anything
//! that is not a compact JWS, algorithms outside the asymmetric allowlist of the issuer (so never
//! `none` nor HMAC, whatever key a `kid` names), and issuers that are not configured (`iss` is
//! read from the unverified payload only to choose the issuer, and checked again after the
//! signature). The key comes by `kid` from the issuer's cached JWKS, and must fit the token's
//! algorithm (an RSA key never verifies an HS256 token). Then `exp` (required), `nbf`, `iat` and
//! `aud` are checked with the issuer's leeway, and the claims are mapped to an [`Identity`].
//!
//! Keys are fetched in the background ([`OidcVerifier::start`]); see the `issuer` module for the
//! refresh rules. A verified-token cache makes a repeated token cost a hash and a map lookup.
//!
//! Nothing here logs a token, a signature or key material: only reasons, issuers and kids.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;

use crate::{AuthError, AuthMethod, Identity, Kind};

mod cache;
mod fetch;
mod issuer;
mod jwks;
mod jwt;
#[cfg(test)]
mod tests;

use cache::{Hit, TokenCache};
use issuer::{Issuer, NoKey, Settings};
use jwt::ClaimMap;

/// Entries of the verified-token cache.
const TOKEN_CACHE_ENTRIES: usize = 16 * 1024;
/// How long a token waits for keys: the first fetch, or one refresh for a new `kid`.
const KEY_WAIT: Duration = Duration::from_secs(2);

/// Setting up the verifier failed (bad `ca_file`, unusable algorithm or claim path, ...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OidcSetupError(String);

/// Verifies bearer JWTs of the configured issuers and maps them to identities.
pub struct OidcVerifier {
    issuers: Vec<Arc<Issuer>>,
    cache: TokenCache,
    started: AtomicBool,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers.iter().map(|i| i.settings.issuer.as_str()).collect();
        f.debug_struct("OidcVerifier").field("issuers", &issuers).finish_non_exhaustive()
    }
}

impl Drop for OidcVerifier {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.abort();
        }
    }
}

/// Tunables that tests shorten.
#[derive(Clone, Copy, Debug)]
struct Tuning {
    key_wait: Duration,
    cache_entries: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning { key_wait: KEY_WAIT, cache_entries: TOKEN_CACHE_ENTRIES }
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl OidcVerifier {
    /// Builds per-issuer state and HTTP clients (`ca_file` is read here). No network I/O.
    pub fn new(issuers: &[config::OidcConfig]) -> Result<Arc<OidcVerifier>, OidcSetupError> {
        OidcVerifier::with_tuning(issuers, Tuning::default())
    }

    fn with_tuning(issuers: &[config::OidcConfig], tuning: Tuning) -> Result<Arc<OidcVerifier>, OidcSetupError> {
        let mut built: Vec<Arc<Issuer>> = Vec::with_capacity(issuers.len());
        for (i, o) in issuers.iter().enumerate() {
            let err = |m: String| OidcSetupError(format!("identity.oidc[{i}] ({}): {m}", o.issuer));
            if built.iter().any(|b| b.settings.issuer == o.issuer) {
                return Err(err("issuer configured twice".into()));
            }
            if o.audiences.is_empty() {
                return Err(err("at least one audience is required".into()));
            }
            let mut algorithms = Vec::new();
            for a in &o.algorithms {
                algorithms.push(jwt::asymmetric(a).ok_or_else(|| err(format!("algorithm {a:?} is not allowed")))?);
            }
            if algorithms.is_empty() {
                return Err(err("at least one algorithm is required".into()));
            }
            let paths =
                [Some(&o.subject_claim), o.display_claim.as_ref(), Some(&o.groups_claim), o.service_claim.as_ref()];
            for p in paths.into_iter().flatten() {
                if !jwt::valid_claim_path(p) {
                    return Err(err(format!("claim path {p:?} is not a claim name or JSON Pointer")));
                }
            }
            let jwks_uri = match &o.jwks_uri {
                None => {
                    fetch::discovery_uri(&o.issuer).map_err(err)?;
                    None
                }
                Some(u) => Some(
                    fetch::acceptable_uri(u)
                        .ok_or_else(|| err(format!("jwks_uri {u:?} must be https:// (http:// only on loopback)")))?,
                ),
            };
            let settings = Settings {
                issuer: o.issuer.clone(),
                audiences: o.audiences.clone(),
                algorithms,
                leeway: i64::try_from(o.leeway.as_secs()).unwrap_or(i64::MAX),
                claims: ClaimMap {
                    subject: o.subject_claim.clone(),
                    display: o.display_claim.clone(),
                    groups: o.groups_claim.clone(),
                    service_claim: o.service_claim.clone(),
                    service_values: o.service_values.clone(),
                },
                kind: o.kind.into(),
                jwks_uri,
                ttl: o.jwks_cache_ttl.max(Duration::from_secs(1)),
                cooldown: o.jwks_refresh_cooldown,
                wait_bound: tuning.key_wait,
            };
            let client = fetch::client(o.ca_file.as_deref()).map_err(err)?;
            built.push(Arc::new(Issuer::new(settings, client)));
        }
        Ok(Arc::new(OidcVerifier {
            issuers: built,
            cache: TokenCache::new(tuning.cache_entries),
            started: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }))
    }

    /// Spawns the background work: the first fetch of every issuer's keys (through discovery
    /// unless `jwks_uri` is set; retried with backoff while the IdP is down, never failing the
    /// gateway's start) and a refresh every `jwks_cache_ttl`. Must be called inside a tokio
    /// runtime; later calls do nothing. The tasks end when the verifier is dropped.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for issuer in &self.issuers {
            tasks.push(tokio::spawn(issuer.clone().run()).abort_handle());
        }
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a bearer JWT and maps its claims to an [`Identity`] (`auth_method` Oidc,
    /// `issuer` = `iss`, `credential_id` = `jti`, no roles; `src_ip` and `user_agent` are left for
    /// the caller).
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge(token.len()));
        }
        let hash = cache::hash(token);
        let now = now_secs();
        let current = |i: usize| self.issuers.get(i).map_or((u64::MAX, 0), |s| (s.generation(), s.settings.leeway));
        match self.cache.get(&hash, now, current) {
            Hit::Identity(id) => return Ok(id),
            Hit::Refused(e) => return Err(e),
            Hit::Miss => {}
        }

        let parsed = jwt::parse(token)?;
        let Some(alg) = jwt::asymmetric(&parsed.alg) else {
            return Err(AuthError::AlgorithmNotAllowed(printable(&parsed.alg)));
        };
        let Some(iss) = parsed.claims.get("iss").and_then(|v| v.as_str()) else {
            return Err(AuthError::BadClaim("iss".into()));
        };
        let Some((index, issuer)) = self.issuers.iter().enumerate().find(|(_, i)| i.settings.issuer == iss) else {
            return Err(AuthError::UnknownIssuer);
        };
        let s = &issuer.settings;
        if !s.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed(parsed.alg));
        }
        let kid = parsed.kid.as_deref();
        if issuer.cached_key(kid, alg).is_none() && self.signed_by_another(index, &parsed, alg) {
            // A token of one configured issuer claiming to be another's: refuse without a refresh.
            return Err(AuthError::WrongIssuer);
        }
        let (key, generation) = issuer.key(kid, alg).await.map_err(|e| match e {
            NoKey::UnknownKid => AuthError::UnknownKid,
            NoKey::Unavailable => AuthError::KeysUnavailable,
            NoKey::Mismatch => AuthError::AlgorithmNotAllowed(format!("{} with this key", parsed.alg)),
        })?;
        if !key.verify(parsed.signing_input, parsed.signature, alg) {
            return Err(AuthError::BadSignature);
        }

        let now = now_secs();
        let window = jwt::check(&parsed.claims, &s.issuer, &s.audiences, now, s.leeway)?;
        let claims = &parsed.claims;
        let kind = if s.claims.is_service(claims) { Kind::Service } else { s.kind };
        let identity = Identity {
            subject: s.claims.subject(claims)?,
            issuer: s.issuer.clone(),
            kind,
            display: s.claims.display(claims),
            groups: s.claims.groups(claims)?,
            auth_method: AuthMethod::Oidc,
            credential_id: claims.get("jti").and_then(|v| v.as_str()).map(str::to_owned),
            src_ip: None,
            user_agent: None,
            roles: Vec::new(),
        };
        self.cache.insert(hash, &identity, window, index, generation, now);
        Ok(identity)
    }

    /// Whether another configured issuer's cached key (by `kid`) verifies the token.
    fn signed_by_another(&self, index: usize, parsed: &jwt::Parsed<'_>, alg: Algorithm) -> bool {
        let kid = parsed.kid.as_deref();
        kid.is_some()
            && self.issuers.iter().enumerate().any(|(i, other)| {
                i != index
                    && other.settings.algorithms.contains(&alg)
                    && other.cached_key(kid, alg).is_some_and(|k| k.verify(parsed.signing_input, parsed.signature, alg))
            })
    }

    /// The issuer state, for tests.
    #[cfg(test)]
    fn issuer(&self, i: usize) -> &Arc<Issuer> {
        &self.issuers[i]
    }
}

/// An attacker-chosen header value, shortened and stripped of control characters for logs.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}
