//! The verified-token cache: a repeat of a token already verified skips the signature check.
//!
//! Keyed by SHA-256 of the token (the token itself is never stored), bounded in size, sharded to
//! keep lock hold times short. An entry lives until the token's `exp`; `exp` and `nbf` are
//! checked again on every hit, and an entry made under an older key set of its issuer is
//! ignored (the token is verified again against the new keys).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::jwt::Window;
use crate::{AuthError, Identity};

const SHARDS: usize = 16;

/// A SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

/// Hashes a token for the cache.
pub(crate) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    identity: Identity,
    window: Window,
    issuer: usize,
    generation: u64,
}

/// A bounded map from token hash to the identity it verified as.
pub(crate) struct TokenCache {
    shards: Vec<Mutex<HashMap<TokenHash, Entry>>>,
    per_shard: usize,
}

/// What a lookup found.
pub(crate) enum Hit {
    /// A valid entry.
    Identity(Identity),
    /// The token verified before, but its time window no longer holds.
    Refused(AuthError),
    /// Nothing usable.
    Miss,
}

impl TokenCache {
    /// A cache of about `capacity` entries (0 disables it).
    pub(crate) fn new(capacity: usize) -> TokenCache {
        let per_shard = capacity.div_ceil(SHARDS);
        TokenCache { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), per_shard }
    }

    fn shard(&self, h: &TokenHash) -> MutexGuard<'_, HashMap<TokenHash, Entry>> {
        self.shards[usize::from(h[0]) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `h` up at `now`; `current(issuer)` gives the issuer's key-set generation and leeway.
    pub(crate) fn get(&self, h: &TokenHash, now: i64, current: impl Fn(usize) -> (u64, i64)) -> Hit {
        if self.per_shard == 0 {
            return Hit::Miss;
        }
        let mut shard = self.shard(h);
        let Some(e) = shard.get(h) else { return Hit::Miss };
        let (generation, leeway) = current(e.issuer);
        if e.generation != generation {
            shard.remove(h);
            return Hit::Miss;
        }
        match e.window.check(now, leeway) {
            Ok(()) => Hit::Identity(e.identity.clone()),
            Err(err) => {
                if err == AuthError::Expired {
                    shard.remove(h);
                }
                Hit::Refused(err)
            }
        }
    }

    /// Remembers a verified token.
    pub(crate) fn insert(
        &self,
        h: TokenHash,
        identity: &Identity,
        window: Window,
        issuer: usize,
        generation: u64,
        now: i64,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&h);
        if shard.len() >= self.per_shard && !shard.contains_key(&h) {
            shard.retain(|_, e| e.window.exp > now);
            if shard.len() >= self.per_shard
                && let Some(k) = shard.keys().next().copied()
            {
                shard.remove(&k);
            }
        }
        shard.insert(h, Entry { identity: identity.clone(), window, issuer, generation });
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthMethod, Kind};

    fn ident(s: &str) -> Identity {
        Identity {
            subject: s.into(),
            issuer: "i".into(),
            kind: Kind::Human,
            display: None,
            groups: vec![],
            auth_method: AuthMethod::Oidc,
            credential_id: None,
            src_ip: None,
            user_agent: None,
            roles: vec![],
        }
    }

    #[test]
    fn hits_expire_and_follow_key_generations() {
        let c = TokenCache::new(64);
        let h = hash("t1");
        c.insert(h, &ident("a"), Window { exp: 100, nbf: Some(50) }, 0, 7, 60);
        assert!(matches!(c.get(&h, 60, |_| (7, 0)), Hit::Identity(i) if i.subject == "a"));
        assert!(matches!(c.get(&hash("t2"), 60, |_| (7, 0)), Hit::Miss));
        assert!(matches!(c.get(&h, 40, |_| (7, 0)), Hit::Refused(AuthError::NotYetValid)));
        assert!(matches!(c.get(&h, 99, |_| (7, 0)), Hit::Identity(_)));
        assert!(matches!(c.get(&h, 100, |_| (7, 5)), Hit::Identity(_)), "leeway on exp");
        assert!(matches!(c.get(&h, 100, |_| (7, 0)), Hit::Refused(AuthError::Expired)));
        assert_eq!(c.len(), 0, "expired entries are dropped");
        c.insert(h, &ident("a"), Window { exp: 100, nbf: None }, 0, 7, 60);
        assert!(matches!(c.get(&h, 60, |_| (8, 0)), Hit::Miss), "new keys: verify again");
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(32);
        for i in 0..1000 {
            c.insert(hash(&i.to_string()), &ident("a"), Window { exp: 100, nbf: None }, 0, 1, 0);
        }
        assert!(c.len() <= 32, "{}", c.len());
        let off = TokenCache::new(0);
        off.insert(hash("x"), &ident("a"), Window { exp: 100, nbf: None }, 0, 1, 0);
        assert!(matches!(off.get(&hash("x"), 0, |_| (1, 0)), Hit::Miss));
    }
}
