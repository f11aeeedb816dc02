//! Gateway-issued API keys: scoped, expiring, revocable, stored only as keyed hashes.
//!
//! A key reads `mgk_<id>_<secret>`: the prefix makes leaked keys recognisable to secret
//! scanners, the id finds the record, and the 256-bit secret is checked as
//! HMAC-SHA-256(install key, secret) in constant time — no slow password hash per request, and a
//! stolen `keys.json` without `keys.hmac` gives nothing to brute-force against.
//!
//! The store is a JSON file in the data dir, shared by the running gateway and the CLI. Writers
//! take an exclusive file lock, write a temporary file, fsync and rename. Readers notice a new
//! file by its metadata on every key check, so a key created or revoked from the CLI takes
//! effect on the running gateway's next request.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{AuthError, AuthMethod, Identity, Kind, Role};

/// The prefix of every gateway-issued key.
pub const KEY_PREFIX: &str = "mgk_";
/// Group given to new keys when none is named (SPEC section 2: the default access rule).
pub const DEFAULT_GROUP: &str = "users";
/// The `issuer` of identities from gateway-issued keys.
pub const ISSUER: &str = "modelgate";
/// File holding the one-time admin token, in the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
const STORE_FILE: &str = "keys.json";
const LOCK_FILE: &str = "keys.lock";
const HMAC_FILE: &str = "keys.hmac";

/// One issued key as stored (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public key id (the part after `mgk_`).
    pub id: String,
    /// Subject the key authenticates as.
    pub subject: String,
    /// Groups of that subject.
    pub groups: Vec<String>,
    /// `human`, `service` or `system`.
    pub kind: Kind,
    /// Admin roles granted by the key.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Revocation time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    /// Last successful use, Unix seconds (flushed periodically, so approximate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    /// Whether this is the one-time admin token.
    #[serde(default)]
    pub admin_token: bool,
    /// Hex HMAC-SHA-256 of the secret under the install key.
    #[serde(rename = "hmac")]
    hash: String,
}

impl KeyRecord {
    /// `active`, `revoked` or `expired` at `now`.
    pub fn status(&self, now: u64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// What a new key is for.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Subject.
    pub subject: String,
    /// Groups (the CLI defaults to `users`).
    pub groups: Vec<String>,
    /// Human or service.
    pub kind: Kind,
    /// Admin roles.
    pub roles: Vec<Role>,
    /// Lifetime; `None` never expires.
    pub ttl: Option<Duration>,
    /// Free text.
    pub description: Option<String>,
    /// Creator (an identity's subject, or `local:<os user>`).
    pub created_by: String,
}

/// A created key: its record and the secret, shown once.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    /// The stored record.
    pub record: KeyRecord,
    /// The full key to hand to the caller (`mgk_<id>_<secret>`).
    pub secret: String,
}

/// Key store failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// File system trouble.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The store file is not valid.
    #[error("{path} is damaged: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// No key has this id.
    #[error("no key with id {0}")]
    NotFound(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

struct Entry {
    record: KeyRecord,
    hash: [u8; 32],
    last_used: AtomicU64,
}

#[derive(Default)]
struct Snapshot {
    by_id: HashMap<String, Arc<Entry>>,
}

/// The key store of one data dir.
pub struct KeyStore {
    dir: PathBuf,
    file: PathBuf,
    hmac_key: [u8; 32],
    snapshot: RwLock<Arc<Snapshot>>,
    /// The lock file, which also holds the store's generation: every writer bumps it in place
    /// after replacing `keys.json`, so a reader notices any writer's change with one `pread`.
    lock_file: File,
    /// The generation the snapshot was loaded at.
    seen_generation: AtomicU64,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + 'a {
    move |source| KeyStoreError::Io { what, path: path.to_path_buf(), source }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyStoreError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| KeyStoreError::Invalid(format!("no randomness: {e}")))?;
    Ok(b)
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A 32-byte secret kept in `path` (mode 0600), made from fresh randomness when the file does
/// not exist yet; a file of another length is an error.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], KeyStoreError> {
    match fs::read(path) {
        Ok(b) => b
            .as_slice()
            .try_into()
            .map_err(|_| KeyStoreError::Corrupt { path: path.to_path_buf(), message: "expected 32 bytes".into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = random_bytes::<32>()?;
            write_private(path, &k)?;
            Ok(k)
        }
        Err(e) => Err(io("reading", path)(e)),
    }
}

impl KeyStore {
    /// Opens (creating when missing) the store in `dir`, with its install HMAC key.
    pub fn open(dir: &Path) -> Result<Arc<KeyStore>, KeyStoreError> {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let hmac_path = dir.join(HMAC_FILE);
        let hmac_key = load_or_create_secret(&hmac_path)?;
        let lock_path = dir.join(LOCK_FILE);
        let mut opts = OpenOptions::new();
        opts.create(true).truncate(false).read(true).write(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let lock_file = opts.open(&lock_path).map_err(io("opening", &lock_path))?;
        let store = KeyStore {
            dir: dir.to_path_buf(),
            file: dir.join(STORE_FILE),
            hmac_key,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            lock_file,
            seen_generation: AtomicU64::new(u64::MAX),
        };
        store.reload()?;
        Ok(Arc::new(store))
    }

    fn path(&self) -> PathBuf {
        self.file.clone()
    }

    fn mac(&self, secret: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key).unwrap_or_else(|_| unreachable_hmac());
        m.update(secret);
        m.finalize().into_bytes().into()
    }

    /// The store's generation (0 before the first write).
    fn generation(&self) -> u64 {
        let mut b = [0u8; 8];
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&self.lock_file, &mut b, 0).unwrap_or(0);
        #[cfg(not(unix))]
        let n = 0;
        if n == 8 { u64::from_le_bytes(b) } else { 0 }
    }

    /// Reloads the records from disk.
    fn reload(&self) -> Result<(), KeyStoreError> {
        let path = self.path();
        // Read the generation first: a write that lands after it bumps it again, and the next
        // check reloads once more.
        let generation = self.generation();
        let file = read_store(&path)?;
        let mut by_id = HashMap::with_capacity(file.keys.len());
        let old = self.snapshot.read().map(|s| s.clone()).unwrap_or_default();
        for record in file.keys {
            let Some(hash) = unhex32(&record.hash) else {
                return Err(KeyStoreError::Corrupt { path, message: format!("key {} has a bad hmac", record.id) });
            };
            let used = old.by_id.get(&record.id).map_or(0, |e| e.last_used.load(Ordering::Relaxed));
            let used = used.max(record.last_used_at.unwrap_or(0));
            by_id.insert(record.id.clone(), Arc::new(Entry { record, hash, last_used: AtomicU64::new(used) }));
        }
        if let Ok(mut s) = self.snapshot.write() {
            *s = Arc::new(Snapshot { by_id });
        }
        self.seen_generation.store(generation, Ordering::Release);
        Ok(())
    }

    /// Reloads when any writer (this process or the CLI) changed the store: one `pread` of
    /// the generation per key check, so a key created or revoked by the CLI applies to the very
    /// next request. (Without `pread`, every check reloads.)
    fn refresh_if_changed(&self) {
        let same = cfg!(unix) && self.generation() == self.seen_generation.load(Ordering::Acquire);
        if !same && let Err(e) = self.reload() {
            tracing::error!("reloading the key store failed; keeping the keys in memory: {e}");
        }
    }

    /// Checks a presented key. Precise reasons for the log; callers see a generic 401.
    pub fn verify(&self, presented: &str) -> Result<Identity, AuthError> {
        let rest = presented.strip_prefix(KEY_PREFIX).ok_or(AuthError::Malformed("not a modelgate key"))?;
        let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed("modelgate key without a secret"))?;
        if id.is_empty() || secret.is_empty() {
            return Err(AuthError::Malformed("modelgate key without a secret"));
        }
        self.refresh_if_changed();
        let snap = self.snapshot.read().map(|s| s.clone()).map_err(|_| AuthError::UnknownKey)?;
        let mac = self.mac(secret.as_bytes());
        let Some(entry) = snap.by_id.get(id) else { return Err(AuthError::UnknownKey) };
        if !bool::from(mac.ct_eq(&entry.hash)) {
            return Err(AuthError::WrongSecret);
        }
        let r = &entry.record;
        let now = now_unix();
        if r.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if r.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::KeyExpired);
        }
        entry.last_used.store(now, Ordering::Relaxed);
        Ok(Identity {
            subject: r.subject.clone(),
            issuer: ISSUER.to_string(),
            kind: r.kind,
            display: r.description.clone(),
            groups: r.groups.clone(),
            auth_method: if r.admin_token { AuthMethod::AdminToken } else { AuthMethod::ApiKey },
            credential_id: Some(r.id.clone()),
            src_ip: None,
            user_agent: None,
            roles: r.roles.clone(),
        })
    }

    /// All records, oldest first, with in-memory last-used times.
    pub fn list(&self) -> Vec<KeyRecord> {
        self.refresh_if_changed();
        let Ok(snap) = self.snapshot.read().map(|s| s.clone()) else { return Vec::new() };
        let mut out: Vec<KeyRecord> = snap
            .by_id
            .values()
            .map(|e| {
                let mut r = e.record.clone();
                let used = e.last_used.load(Ordering::Relaxed);
                if used > 0 {
                    r.last_used_at = Some(used);
                }
                r
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// Runs `f` over the stored records under the exclusive file lock, then writes them back
    /// atomically and reloads.
    fn mutate<T>(&self, f: impl FnOnce(&mut Vec<KeyRecord>) -> Result<T, KeyStoreError>) -> Result<T, KeyStoreError> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        lock.lock().map_err(io("locking", &lock_path))?;
        let path = self.path();
        let mut file = read_store(&path)?;
        let out = f(&mut file.keys)?;
        file.version = 1;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| KeyStoreError::Invalid(e.to_string()))?;
        let tmp = self.dir.join(format!("{STORE_FILE}.tmp"));
        let _ = fs::remove_file(&tmp);
        write_private(&tmp, &bytes)?;
        fs::rename(&tmp, &path).map_err(io("replacing", &path))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        // Announce the new file to every reader (in place: the lock file is never replaced).
        #[cfg(unix)]
        {
            let next = self.generation().wrapping_add(1);
            std::os::unix::fs::FileExt::write_all_at(&lock, &next.to_le_bytes(), 0)
                .map_err(io("writing", &lock_path))?;
        }
        drop(lock);
        self.reload()?;
        Ok(out)
    }

    /// Issues a new key; the secret is returned once and stored only as its HMAC.
    pub fn create(&self, new: NewKey) -> Result<CreatedKey, KeyStoreError> {
        self.create_inner(new, false)
    }

    fn create_inner(&self, new: NewKey, admin_token: bool) -> Result<CreatedKey, KeyStoreError> {
        if new.subject.trim().is_empty() {
            return Err(KeyStoreError::Invalid("a key needs a subject".into()));
        }
        let id = hex(&random_bytes::<6>()?);
        let id = if admin_token { format!("admin{id}") } else { id };
        let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let now = now_unix();
        let record = KeyRecord {
            id: id.clone(),
            subject: new.subject,
            groups: new.groups,
            kind: new.kind,
            roles: new.roles,
            description: new.description,
            created_by: new.created_by,
            created_at: now,
            expires_at: new.ttl.map(|t| now.saturating_add(t.as_secs())),
            revoked_at: None,
            last_used_at: None,
            admin_token,
            hash: hex(&self.mac(secret.as_bytes())),
        };
        let stored = record.clone();
        self.mutate(move |keys| {
            keys.push(stored);
            Ok(())
        })?;
        Ok(CreatedKey { record, secret: format!("{KEY_PREFIX}{id}_{secret}") })
    }

    /// Revokes a key; it fails on its next use.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, KeyStoreError> {
        let now = now_unix();
        self.mutate(|keys| {
            let k = keys.iter_mut().find(|k| k.id == id).ok_or_else(|| KeyStoreError::NotFound(id.to_string()))?;
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now);
            }
            Ok(k.clone())
        })
    }

    /// On first start: creates the one-time admin token and writes it to `admin-token`
    /// (mode 0600). Returns the file's path when it was created now.
    pub fn ensure_admin_token(&self) -> Result<Option<PathBuf>, KeyStoreError> {
        let path = self.dir.join(ADMIN_TOKEN_FILE);
        if path.exists() || self.list().iter().any(|k| k.admin_token) {
            return Ok(None);
        }
        let created = self.create_inner(
            NewKey {
                subject: "admin".into(),
                groups: Vec::new(),
                kind: Kind::System,
                roles: vec![Role::Admin],
                ttl: None,
                description: Some("one-time admin token written on first start".into()),
                created_by: "modelgate".into(),
            },
            true,
        )?;
        write_private(&path, format!("{}\n", created.secret).as_bytes())?;
        Ok(Some(path))
    }

    /// Writes in-memory last-used times to the file (called periodically and at shutdown).
    pub fn flush_last_used(&self) -> Result<(), KeyStoreError> {
        let Ok(snap) = self.snapshot.read().map(|s| s.clone()) else { return Ok(()) };
        let pending: Vec<(String, u64)> = snap
            .by_id
            .values()
            .filter_map(|e| {
                let used = e.last_used.load(Ordering::Relaxed);
                (used > e.record.last_used_at.unwrap_or(0)).then(|| (e.record.id.clone(), used))
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.mutate(|keys| {
            for (id, used) in &pending {
                if let Some(k) = keys.iter_mut().find(|k| &k.id == id) {
                    k.last_used_at = Some(k.last_used_at.unwrap_or(0).max(*used));
                }
            }
            Ok(())
        })
    }
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot happen with a 32-byte key.
    std::process::abort()
}

fn read_store(path: &Path) -> Result<StoreFile, KeyStoreError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| KeyStoreError::Corrupt { path: path.to_path_buf(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile { version: 1, keys: Vec::new() }),
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// The public JSON shape of a key (admin API and CLI `--json`); never the secret or its hash.
pub fn record_json(r: &KeyRecord, now: u64) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "subject": r.subject,
        "groups": r.groups,
        "kind": r.kind,
        "roles": r.roles,
        "description": r.description,
        "created_by": r.created_by,
        "created_at": rfc3339(r.created_at),
        "expires_at": r.expires_at.map(rfc3339),
        "revoked_at": r.revoked_at.map(rfc3339),
        "last_used_at": r.last_used_at.map(rfc3339),
        "status": r.status(now),
    })
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mg-keys-{tag}-{}-{}", std::process::id(), now_unix()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn new_key(subject: &str) -> NewKey {
        NewKey {
            subject: subject.into(),
            groups: vec!["users".into()],
            kind: Kind::Human,
            roles: vec![],
            ttl: None,
            description: None,
            created_by: "test".into(),
        }
    }

    #[test]
    fn created_keys_verify_and_only_their_secret_does() {
        let d = dir("verify");
        let s = KeyStore::open(&d).unwrap();
        let k = s.create(new_key("alice")).unwrap();
        assert!(k.secret.starts_with("mgk_"));
        let id = s.verify(&k.secret).unwrap();
        assert_eq!(
            (id.subject.as_str(), id.auth_method, id.credential_id.as_deref()),
            ("alice", AuthMethod::ApiKey, Some(k.record.id.as_str()))
        );
        assert_eq!(id.groups, ["users"]);
        // The store never holds the secret.
        let on_disk = fs::read_to_string(d.join(STORE_FILE)).unwrap();
        // (base64url secrets may themselves contain '_': strip the known prefix instead.)
        let secret_part = k.secret.strip_prefix(&format!("mgk_{}_", k.record.id)).unwrap();
        assert_eq!(secret_part.len(), 43);
        assert!(!on_disk.contains(secret_part));
        // Same id, wrong secret; unknown id; garbage.
        let wrong = format!("mgk_{}_{}", k.record.id, URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(s.verify(&wrong), Err(AuthError::WrongSecret));
        assert_eq!(s.verify("mgk_000000000000_abc"), Err(AuthError::UnknownKey));
        assert!(matches!(s.verify("mgk_nosecret"), Err(AuthError::Malformed(_))));
        assert!(matches!(s.verify("sk-123"), Err(AuthError::Malformed(_))));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn revocation_and_expiry_apply_across_store_instances() {
        let d = dir("revoke");
        let gateway = KeyStore::open(&d).unwrap();
        let cli = KeyStore::open(&d).unwrap();
        // The very next check after each change sees it.
        let k = cli.create(new_key("bob")).unwrap();
        assert!(gateway.verify(&k.secret).is_ok(), "a key created by another process is not seen");
        cli.revoke(&k.record.id).unwrap();
        assert_eq!(gateway.verify(&k.secret), Err(AuthError::Revoked));
        let mut short = new_key("carol");
        short.ttl = Some(Duration::ZERO);
        let e = cli.create(short).unwrap();
        assert_eq!(gateway.verify(&e.secret), Err(AuthError::KeyExpired));
        assert!(matches!(cli.revoke("nope"), Err(KeyStoreError::NotFound(_))));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn admin_token_is_written_once_with_owner_only_permissions() {
        let d = dir("admin");
        let s = KeyStore::open(&d).unwrap();
        let path = s.ensure_admin_token().unwrap().unwrap();
        assert!(s.ensure_admin_token().unwrap().is_none());
        let token = fs::read_to_string(&path).unwrap();
        let id = s.verify(token.trim()).unwrap();
        assert_eq!(id.auth_method, AuthMethod::AdminToken);
        assert!(id.has_role(Role::Auditor));
        #[cfg(unix)]
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        #[cfg(unix)]
        assert_eq!(fs::metadata(d.join(HMAC_FILE)).unwrap().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&d);
    }

    /// Per-request cost of a key check (stat of the store file, HMAC, constant-time compare).
    /// `cargo test --release -p modelgate-identity keys::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing report, not a check"]
    fn timing() {
        let d = dir("timing");
        let s = KeyStore::open(&d).unwrap();
        for i in 0..1000 {
            s.create(new_key(&format!("user{i}"))).unwrap();
        }
        let k = s.create(new_key("alice")).unwrap();
        const N: u32 = 200_000;
        for _ in 0..1000 {
            s.verify(&k.secret).unwrap();
        }
        let started = std::time::Instant::now();
        for _ in 0..N {
            s.verify(&k.secret).unwrap();
        }
        let per = started.elapsed() / N;
        println!("API key verify (1,001 keys in the store): {:.2} µs", per.as_secs_f64() * 1e6);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn last_used_is_flushed() {
        let d = dir("used");
        let s = KeyStore::open(&d).unwrap();
        let k = s.create(new_key("dan")).unwrap();
        assert!(s.list()[0].last_used_at.is_none());
        s.verify(&k.secret).unwrap();
        assert!(s.list()[0].last_used_at.is_some());
        s.flush_last_used().unwrap();
        let other = KeyStore::open(&d).unwrap();
        assert!(other.list()[0].last_used_at.is_some());
        let _ = fs::remove_dir_all(&d);
    }
}
