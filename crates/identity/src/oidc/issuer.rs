//! One configured issuer: its settings, its cached keys and the background task that refreshes
//! them.
//!
//! Keys live in an `Arc<KeySet>` snapshot behind a lock held only to clone or swap the `Arc`, so
//! the hot path never waits on I/O once keys are cached. One task per issuer does every fetch:
//! the first one (retried with backoff while the IdP is down), one every `jwks_cache_ttl`, and
//! the ones requested by tokens with an unknown `kid`. Those requests are coalesced (everyone
//! waits for the same fetch, watching a completion counter) and rate-limited (a fetch starts at
//! least `jwks_refresh_cooldown` after the previous one), so a flood of bad `kid`s costs at most
//! one fetch per cooldown. A failed fetch keeps the last good keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::fetch::{self, FetchError, HttpClient};
use super::jwks::{self, KeySet, Pick, VerifyKey};
use super::jwt::ClaimMap;
use crate::Kind;

/// First retry delay after a failed fetch; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay after failed fetches (never longer than the cache lifetime).
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Settings of one issuer, from its `[[identity.oidc]]` table.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: i64,
    pub(crate) claims: ClaimMap,
    pub(crate) kind: Kind,
    pub(crate) jwks_uri: Option<Uri>,
    pub(crate) ttl: Duration,
    pub(crate) cooldown: Duration,
    /// How long a token waits for keys (first fetch, or a refresh for an unknown `kid`).
    pub(crate) wait_bound: Duration,
}

#[derive(Debug)]
struct Schedule {
    /// When the last fetch started.
    last_fetch: Option<Instant>,
    /// When the next planned fetch (first, ttl refresh, retry) is due.
    due: Instant,
    /// A token asked for a refresh (unknown `kid`, or no keys yet).
    requested: bool,
    /// A fetch is running.
    in_flight: bool,
}

impl Schedule {
    /// When the task should fetch next.
    fn next(&self, cooldown: Duration) -> Instant {
        if !self.requested {
            return self.due;
        }
        let allowed = self.last_fetch.map_or_else(Instant::now, |t| t + cooldown);
        self.due.min(allowed)
    }
}

/// Why no key was found for a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoKey {
    /// `kid` unknown even after a refresh (or no refresh could happen in time).
    UnknownKid,
    /// The `kid` exists, but its key does not fit the token's algorithm.
    Mismatch,
    /// No keys were ever fetched.
    Unavailable,
}

/// One issuer's state, shared by the verifier and its refresh task.
pub(crate) struct Issuer {
    pub(crate) settings: Settings,
    client: HttpClient,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Bumped whenever the key set changes: verified-token cache entries of older generations
    /// are re-verified.
    generation: AtomicU64,
    schedule: Mutex<Schedule>,
    wake: Notify,
    /// Completed fetch attempts (successful or not); tokens waiting for keys watch it.
    done: watch::Sender<u64>,
    /// The `jwks_uri` found by discovery (forgotten when a fetch from it fails).
    discovered: Mutex<Option<Uri>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Issuer {
    pub(crate) fn new(settings: Settings, client: HttpClient) -> Issuer {
        Issuer {
            settings,
            client,
            keys: RwLock::new(None),
            generation: AtomicU64::new(0),
            schedule: Mutex::new(Schedule {
                last_fetch: None,
                due: Instant::now(),
                requested: false,
                in_flight: false,
            }),
            wake: Notify::new(),
            done: watch::Sender::new(0),
            discovered: Mutex::new(None),
        }
    }

    /// The current key set, if any was fetched.
    pub(crate) fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key-set generation (changes whenever the keys do).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Number of completed fetch attempts.
    #[cfg(test)]
    pub(crate) fn fetch_attempts(&self) -> u64 {
        *self.done.borrow()
    }

    /// Forgets when the last fetch happened, as if the cooldown had passed.
    #[cfg(test)]
    pub(crate) fn forget_cooldown(&self) {
        lock(&self.schedule).last_fetch = None;
    }

    /// The key for a token with `kid` and `alg`, in the cached keys only (no waiting).
    pub(crate) fn cached_key(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyKey>> {
        match self.snapshot()?.pick(kid, alg) {
            Pick::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The key for a token with `kid` and `alg`. Cached keys answer at once; otherwise (no keys
    /// yet, or an unknown `kid`) a refresh is requested and awaited, within the wait bound.
    pub(crate) async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<(Arc<VerifyKey>, u64), NoKey> {
        let mut done = self.done.subscribe();
        let deadline = Instant::now() + self.settings.wait_bound;
        let mut refreshed = false;
        loop {
            // Read the fetch counter before the keys: a fetch completing after this look is seen.
            let seen = *done.borrow_and_update();
            let generation = self.generation();
            let snapshot = self.snapshot();
            if let Some(set) = &snapshot {
                match set.pick(kid, alg) {
                    Pick::Key(k) => return Ok((k, generation)),
                    Pick::Mismatch => return Err(NoKey::Mismatch),
                    Pick::Ambiguous => return Err(NoKey::UnknownKid),
                    // A refresh completed after the token arrived, and still no such key.
                    Pick::Missing if refreshed => return Err(NoKey::UnknownKid),
                    Pick::Missing => {}
                }
            }
            let failed = if snapshot.is_some() { NoKey::UnknownKid } else { NoKey::Unavailable };
            match self.request_refresh(seen) {
                // A fetch completed since the look above: look again.
                None => {
                    refreshed = true;
                    continue;
                }
                // Rate-limited beyond the wait bound: answer now; the refresh still happens later.
                Some(at) if at > deadline => return Err(failed),
                Some(_) => {}
            }
            if snapshot.is_some() && !refreshed {
                tracing::debug!(issuer = %self.settings.issuer, kid = ?kid.map(|k| k.chars().take(64).collect::<String>()),
                    "unknown key id, waiting for a key refresh");
            }
            match tokio::time::timeout_at(deadline, done.changed()).await {
                Ok(Ok(())) => refreshed = true,
                // Timed out, or the issuer is gone.
                _ => return Err(failed),
            }
        }
    }

    /// Asks the refresh task for a fetch, unless one completed since the caller read `seen` from
    /// the fetch counter (then `None`: look at the keys again). Returns when the fetch will start
    /// at the earliest; a running fetch is joined rather than followed by another.
    fn request_refresh(&self, seen: u64) -> Option<Instant> {
        let mut s = lock(&self.schedule);
        // The counter only moves under the schedule lock, so this check and the request are atomic.
        if *self.done.borrow() != seen {
            return None;
        }
        if s.in_flight {
            return Some(Instant::now());
        }
        s.requested = true;
        let at = s.next(self.settings.cooldown);
        drop(s);
        self.wake.notify_one();
        Some(at)
    }

    /// The refresh task: fetches when due or requested, until the verifier is dropped (the task
    /// is aborted then).
    pub(crate) async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            loop {
                let at = lock(&self.schedule).next(self.settings.cooldown);
                if Instant::now() >= at {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = self.wake.notified() => {}
                }
            }
            {
                let mut s = lock(&self.schedule);
                s.last_fetch = Some(Instant::now());
                s.requested = false;
                s.in_flight = true;
            }
            let due = match self.fetch().await {
                Ok(set) => {
                    backoff = BACKOFF_MIN;
                    self.install(set);
                    Instant::now() + self.settings.ttl
                }
                Err(e) => {
                    let cached = self.snapshot().is_some();
                    tracing::warn!(issuer = %self.settings.issuer, error = %e, retry_in = ?backoff, keeping_cached_keys = cached,
                        "fetching the issuer's keys failed");
                    let due = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX).min(self.settings.ttl.max(BACKOFF_MIN));
                    due
                }
            };
            let mut s = lock(&self.schedule);
            s.in_flight = false;
            s.due = due;
            // Under the schedule lock: see `request_refresh`.
            self.done.send_modify(|n| *n += 1);
            drop(s);
        }
    }

    /// Installs a fetched key set unless it holds the same keys as the current one.
    fn install(&self, set: KeySet) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.as_ref().is_some_and(|k| k.fingerprint == set.fingerprint) {
            return;
        }
        tracing::info!(issuer = %self.settings.issuer, kids = ?set.kids(), "issuer keys loaded");
        *keys = Some(Arc::new(set));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// One fetch: discovery when needed, then the key set.
    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let uri = match &self.settings.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let known = lock(&self.discovered).clone();
                match known {
                    Some(u) => u,
                    None => {
                        let discovery = fetch::discovery_uri(&self.settings.issuer).map_err(FetchError::Request)?;
                        let body = fetch::get(&self.client, &discovery).await?;
                        let u = fetch::jwks_uri_from_discovery(&self.settings.issuer, &body)?;
                        *lock(&self.discovered) = Some(u.clone());
                        u
                    }
                }
            }
        };
        let result = async { Ok(jwks::parse_jwks(&fetch::get(&self.client, &uri).await?)?) }.await;
        if result.is_err() {
            // Discover again next time: the IdP may have moved its keys.
            *lock(&self.discovered) = None;
        }
        result
    }
}
