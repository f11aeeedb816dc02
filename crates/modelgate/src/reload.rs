//! Hot reload (issue 6): the config file and the `.cedar` files it names are re-read on SIGHUP,
//! on `POST /admin/v1/config/reload` and when they change on disk (polled once a second; a
//! change is applied once two polls in a row see the same file state, so a half-written file
//! is not read).
//!
//! A valid new config is swapped in atomically ([`gateway::Gateway::reload`]): exchanges in
//! flight finish under the version they started with. Each accepted change is a
//! `config.changed` event (who, before and after hashes, a diff with secrets shown only as
//! changed); an invalid one is a `config.rejected` event and the old config keeps serving.
//! Settings bound at start (listeners, data dir, TLS, identity, roles, the audit writer's own
//! settings) are reported as `restart_required` and not applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use audit::{Actor, Audit, Change, Entry, Event, EventType, Outcome, Resource};
use config::Config;
use console::AdminState;
use console::policy_api::ReloadRequest;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How often the files are polled for changes.
const POLL: Duration = Duration::from_secs(1);

/// Config paths whose changes only a restart applies.
const RESTART_ONLY: [&str; 13] = [
    "server.listen",
    "server.admin_listen",
    "server.data_dir",
    "server.tls",
    "server.max_header_bytes",
    "server.connect_timeout",
    "server.shutdown_grace",
    "identity",
    "roles",
    "audit.queue_limit",
    "audit.checkpoint_every",
    "audit.checkpoint_interval",
    "audit.search_index",
];

/// What asked for a reload.
#[derive(Clone, Debug)]
pub enum Trigger {
    /// The files changed on disk.
    File,
    /// SIGHUP.
    Signal,
    /// An admin through the admin API.
    Admin(Arc<Actor>),
}

impl Trigger {
    fn name(&self) -> &'static str {
        match self {
            Trigger::File => "file_change",
            Trigger::Signal => "sighup",
            Trigger::Admin(_) => "admin_api",
        }
    }
}

/// The config in force, as read.
struct Loaded {
    hash: String,
    flat: BTreeMap<String, Value>,
    /// The config as written, secrets hidden, for `GET /admin/v1/config`.
    view: Value,
    policy_version: Arc<str>,
    policy_files: Vec<PathBuf>,
    stamp: Stamp,
}

/// Size, modification time and inode of each watched file (`None`: unreadable).
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

/// Re-reads and swaps the config.
pub struct Reloader {
    path: Option<PathBuf>,
    base_dir: PathBuf,
    gateway: Arc<gateway::Gateway>,
    trail: Arc<Audit>,
    admin: Arc<AdminState>,
    current: Option<Loaded>,
}

impl Reloader {
    /// A reloader for the config at `path` (None: embedded defaults, nothing to reload), whose
    /// `text` (parsed as `table`) is in force now.
    pub fn new(
        path: Option<&Path>,
        text: &str,
        table: Option<toml::Table>,
        config: &Config,
        gateway: Arc<gateway::Gateway>,
        trail: Arc<Audit>,
        admin: Arc<AdminState>,
    ) -> Reloader {
        let base_dir = base_dir(path);
        let policy_files = policy_paths(config, &base_dir);
        let current = path.map(|p| {
            let policies = gateway.current().policies().clone();
            let (flat, view) = flat_and_view(table, policies.file_digests());
            Loaded {
                hash: config_hash(text),
                flat,
                view,
                policy_version: policies.version().clone(),
                stamp: stamp(p, &policy_files),
                policy_files,
            }
        });
        let r = Reloader { path: path.map(Path::to_path_buf), base_dir, gateway, trail, admin, current };
        r.publish_view();
        r
    }

    /// Runs until `stop` turns true: SIGHUP, admin requests and file polls. The SIGHUP handler
    /// is installed before this returns, so a signal right after start is a reload.
    pub fn spawn(
        mut self,
        mut requests: tokio::sync::mpsc::Receiver<ReloadRequest>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen = self.current.as_ref().map(|c| c.stamp.clone());
            loop {
                #[cfg(unix)]
                let hup_recv = hup.recv();
                #[cfg(not(unix))]
                let hup_recv = std::future::pending::<Option<()>>();
                tokio::select! {
                    res = stop.changed() => if res.is_err() || *stop.borrow() { break },
                    Some(()) = hup_recv => {
                        let _ = self.reload(Trigger::Signal).await;
                    }
                    Some(req) = requests.recv() => {
                        let out = self.reload(Trigger::Admin(req.actor)).await;
                        let _ = req.reply.send(out);
                    }
                    _ = tick.tick() => {
                        let (Some(path), Some(cur)) = (&self.path, &self.current) else { continue };
                        let now = stamp(path, &cur.policy_files);
                        if now != cur.stamp && seen.as_ref() == Some(&now) {
                            let _ = self.reload(Trigger::File).await;
                        }
                        seen = Some(now);
                    }
                }
            }
        }))
    }

    /// Re-reads the files and applies them when valid. `Ok` holds the outcome (changed or
    /// unchanged), `Err` the rejection; both as JSON for the admin API.
    pub async fn reload(&mut self, trigger: Trigger) -> Result<Value, Value> {
        let (Some(path), Some(cur)) = (self.path.clone(), self.current.as_ref()) else {
            let msg = "the gateway runs on embedded defaults; start it with --config to reload";
            return Err(json!({ "result": "rejected", "errors": [msg] }));
        };
        let (before, before_version) = (cur.hash.clone(), cur.policy_version.clone());
        // Reading, parsing and compiling (Cedar validation of a large policy set takes a while)
        // run off the async workers: a reload must not stall the data path.
        let (read_path, base_dir) = (path.clone(), self.base_dir.clone());
        let loaded = tokio::task::spawn_blocking(move || load_files(&read_path, &base_dir))
            .await
            .unwrap_or_else(|e| Err((None, vec![format!("loading the config failed: {e}")])));
        let (hash, config, table, policies, policy_files, stamp) = match loaded {
            Ok(l) => l,
            Err((attempted, errors)) => return Err(self.reject(&trigger, attempted.as_deref(), errors).await),
        };
        let version = policies.version().clone();
        if hash == before && version == before_version {
            if let Some(c) = self.current.as_mut() {
                c.stamp = stamp;
            }
            return Ok(json!({ "result": "unchanged", "config_hash": hash, "policy_version": &*version }));
        }
        let (flat, view) = flat_and_view(table, policies.file_digests());
        let diff = match &self.current {
            Some(c) => diff(&c.flat, &flat),
            None => Value::Null,
        };
        let restart: Vec<&String> = diff_paths(&diff)
            .into_iter()
            .filter(|p| {
                RESTART_ONLY
                    .iter()
                    .any(|r| p == r || p.starts_with(&format!("{r}.")) || p.starts_with(&format!("{r}[")))
            })
            .collect();
        let restart: Vec<String> = restart.into_iter().cloned().collect();
        let rules = policies.len();
        if let Err(e) = self.gateway.reload(&config, policies) {
            return Err(self.reject(&trigger, Some(&hash), vec![e.to_string()]).await);
        }
        if let Some(c) = self.current.as_mut() {
            c.hash = hash.clone();
            c.flat = flat;
            c.view = view;
            c.policy_version = version.clone();
            c.policy_files = policy_files;
            c.stamp = stamp;
        }
        self.publish_view();
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "config reloaded; these changes apply only after a restart");
        }
        tracing::info!(trigger = trigger.name(), policy_version = &*version, "config reloaded");
        let mut e = Event::new(EventType::ConfigChanged, Outcome::Success).actor(self.actor(&trigger));
        e.action = Some("config.reload".into());
        e.resource = Some(Resource { id: Some(path.display().to_string()), kind: "config".into(), upstream: None });
        e.change = Some(Change {
            before_hash: Some(before.clone()),
            after_hash: Some(hash.clone()),
            diff: Some(diff.clone()),
        });
        e.details = Some(json!({
            "trigger": trigger.name(),
            "policy_version": { "before": &*before_version, "after": &*version },
            "policies": rules,
            "restart_required": restart,
        }));
        if self.trail.submit_waiting(Entry::event(e)).await.is_err() {
            tracing::error!("the config.changed record is not durable yet; it is kept for retry");
        }
        Ok(json!({
            "result": "changed",
            "before_hash": before,
            "after_hash": hash,
            "policy_version": &*version,
            "diff": diff,
            "restart_required": restart,
        }))
    }

    /// Records a rejected config; the one in force stays.
    async fn reject(&self, trigger: &Trigger, attempted: Option<&str>, errors: Vec<String>) -> Value {
        for m in &errors {
            tracing::error!(trigger = trigger.name(), "config rejected, the previous one stays in force: {m}");
        }
        let before = self.current.as_ref().map(|c| c.hash.clone());
        let mut e = Event::new(EventType::ConfigRejected, Outcome::Failure).actor(self.actor(trigger));
        e.action = Some("config.reload".into());
        e.reason = errors.first().cloned();
        e.resource = Some(Resource {
            id: self.path.as_ref().map(|p| p.display().to_string()),
            kind: "config".into(),
            upstream: None,
        });
        e.change = Some(Change { before_hash: before.clone(), after_hash: attempted.map(str::to_string), diff: None });
        e.details = Some(json!({ "trigger": trigger.name(), "errors": errors }));
        if self.trail.submit_waiting(Entry::event(e)).await.is_err() {
            tracing::error!("the config.rejected record is not durable yet; it is kept for retry");
        }
        json!({ "result": "rejected", "errors": errors, "config_hash": before })
    }

    /// Who changed the config: the admin, or `config_file` with the file's owner.
    fn actor(&self, trigger: &Trigger) -> Arc<Actor> {
        match trigger {
            Trigger::Admin(a) => a.clone(),
            Trigger::File | Trigger::Signal => Arc::new(Actor {
                auth_method: Some("config_file".into()),
                kind: Some("human".into()),
                subject: Some(self.path.as_deref().map_or_else(|| "unknown".into(), file_owner)),
                issuer: Some("os".into()),
                ..Actor::default()
            }),
        }
    }

    /// Publishes the config in force, secrets hidden, for `GET /admin/v1/config`.
    fn publish_view(&self) {
        let view = match &self.current {
            Some(c) => json!({
                "source": self.path.as_ref().map(|p| p.display().to_string()),
                "config_hash": c.hash,
                "policy_version": &*c.policy_version,
                "config": c.view,
            }),
            None => json!({
                "source": "embedded",
                "policy_version": &**self.gateway.current().policies().version(),
                "config": Value::Null,
            }),
        };
        match self.admin.config_view.lock() {
            Ok(mut v) => *v = Arc::new(view),
            Err(p) => *p.into_inner() = Arc::new(view),
        }
    }
}

/// What a reload reads: the config text's hash, the parsed config and the text as a TOML table
/// (one parse), the compiled policy set, the Cedar files' paths and the files' state.
type Loaded_ = (String, Config, Option<toml::Table>, policy::Policies, Vec<PathBuf>, Stamp);

/// Reads and validates the config at `path` and the policy files it names (blocking). The
/// error carries the attempted config's hash, when it could be read, and the problems.
fn load_files(path: &Path, base_dir: &Path) -> Result<Loaded_, (Option<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| (None, vec![format!("reading {}: {e}", path.display())]))?;
    let hash = config_hash(&text);
    let (config, table) = Config::from_toml_with_table(&text)
        .map_err(|e| (Some(hash.clone()), vec![format!("{}: {e}", path.display())]))?;
    let policy_files = policy_paths(&config, base_dir);
    let stamp = stamp(path, &policy_files);
    let policies =
        policy::Policies::load(&config, base_dir).map_err(|e| (Some(hash.clone()), e.messages().to_vec()))?;
    Ok((hash, config, table, policies, policy_files, stamp))
}

/// The directory relative `[policy] files` are resolved against: the config file's.
pub fn base_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn policy_paths(config: &Config, base: &Path) -> Vec<PathBuf> {
    config.policy.files.iter().map(|f| if f.is_absolute() { f.clone() } else { base.join(f) }).collect()
}

/// `sha256:<hex>` of the config text.
pub fn config_hash(text: &str) -> String {
    format!("sha256:{}", audit::canonical::hex(&Sha256::digest(text.as_bytes())))
}

fn stamp(config: &Path, files: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::iter::once(config)
        .chain(files.iter().map(PathBuf::as_path))
        .map(|p| std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino())))
        .collect()
}

/// The login name owning a file, from /etc/passwd (`uid:N` when unknown).
fn file_owner(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else { return "unknown".into() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// Whether a config key names a secret value (shown in diffs only as changed). Keys naming
/// where a secret lives (`*_env`, `*_file`) are not secrets.
fn is_secret_key(key: &str) -> bool {
    let k = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    if k.ends_with("_env") || k.ends_with("_file") {
        return false;
    }
    ["secret", "password", "token", "api_key", "private", "credential"].iter().any(|s| k.contains(s))
}

/// From the config as written (None: not readable as a TOML table), both forms kept of it: for
/// diffs, `path -> value` with tables and arrays of tables flattened (`access[0].groups`), plus
/// one `policy.files[i]#content` entry per Cedar file with the hash of the content the policy
/// set was compiled from; and the view, secrets hidden.
fn flat_and_view(table: Option<toml::Table>, policy_digests: &[String]) -> (BTreeMap<String, Value>, Value) {
    let json = table.map(toml_to_json);
    let mut flat = BTreeMap::new();
    if let Some(v) = &json {
        flatten("", v, &mut flat);
    }
    for (i, d) in policy_digests.iter().enumerate() {
        flat.insert(format!("policy.files[{i}]#content"), Value::String(d.clone()));
    }
    (flat, hide_secrets(json.unwrap_or(Value::Null)))
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// `{"changed": {path: {"before","after"}}, "added": {path: value}, "removed": [path]}`, with
/// secret values replaced by `"(changed)"`, `"(set)"`.
fn diff(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> Value {
    let mut changed = serde_json::Map::new();
    let mut added = serde_json::Map::new();
    let mut removed = Vec::new();
    for (k, b) in before {
        match after.get(k) {
            None => removed.push(Value::String(k.clone())),
            Some(a) if a != b => {
                let v = if is_secret_key(k) {
                    Value::String("(changed)".into())
                } else {
                    json!({ "before": b, "after": a })
                };
                changed.insert(k.clone(), v);
            }
            Some(_) => {}
        }
    }
    for (k, a) in after {
        if !before.contains_key(k) {
            let v = if is_secret_key(k) { Value::String("(set)".into()) } else { a.clone() };
            added.insert(k.clone(), v);
        }
    }
    json!({ "changed": changed, "added": added, "removed": removed })
}

fn diff_paths(diff: &Value) -> Vec<&String> {
    let mut out = Vec::new();
    for section in ["changed", "added"] {
        if let Some(m) = diff.get(section).and_then(Value::as_object) {
            out.extend(m.keys());
        }
    }
    if let Some(a) = diff.get("removed").and_then(Value::as_array) {
        out.extend(a.iter().filter_map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        }));
    }
    out
}

fn toml_to_json(t: toml::Table) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The config with secret values replaced by `"(hidden)"`.
pub fn hide_secrets(v: Value) -> Value {
    fn walk(key: &str, v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k.clone(), walk(&k, v))).collect()),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| walk(key, v)).collect()),
            other if is_secret_key(key) => {
                let _ = other;
                Value::String("(hidden)".into())
            }
            other => other,
        }
    }
    walk("", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_paths_and_hides_secrets() {
        let flat = |text: &str| flat_and_view(toml::from_str(text).ok(), &[]).0;
        let a = flat(
            "[server]\nlisten='127.0.0.1:1'\n[[access]]\ngroups=['a']\nactions=['inference']\n[x]\napi_key='one'\n",
        );
        let b = flat(
            "[server]\nlisten='127.0.0.1:2'\n[[access]]\ngroups=['a','b']\nactions=['inference']\n[x]\napi_key='two'\nnew_password='p'\n",
        );
        let d = diff(&a, &b);
        assert_eq!(d["changed"]["server.listen"]["after"], "127.0.0.1:2");
        assert_eq!(d["changed"]["access[0].groups"]["after"], json!(["a", "b"]));
        assert_eq!(d["changed"]["x.api_key"], "(changed)");
        assert_eq!(d["added"]["x.new_password"], "(set)");
        let text = d.to_string();
        assert!(!text.contains("one") && !text.contains("two") && !text.contains("\"p\""), "{text}");
        assert!(is_secret_key("webhooks[0].hmac_secret") && !is_secret_key("upstreams[0].api_key_env"));
    }

    #[test]
    fn hidden_view_keeps_structure() {
        let v = hide_secrets(json!({"a": {"token": "t", "token_env": "T", "n": 1}}));
        assert_eq!(v, json!({"a": {"token": "(hidden)", "token_env": "T", "n": 1}}));
    }
}
