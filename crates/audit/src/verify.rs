//! `audit verify`: re-derives what the log claims from the hashed bytes (SPEC section 5,
//! DURABILITY.md "Verifying").
//!
//! 1. One read transaction fixes what is verified: the last `seq` and the stored checkpoints
//!    (so a gateway writing meanwhile cannot make a checkpoint newer than the events read look
//!    like truncation). Each checkpoint's signature is checked under the auditor's key, and its
//!    body's `seq` against its row's; an exported checkpoint (`--checkpoint`) likewise.
//! 2. The events `1..=last` are split into contiguous seq ranges, one thread each, each with its
//!    own read-only connection (rows at or below `last` never change in an honest log, so the
//!    ranges' snapshots agree). A thread streams its rows in `seq` order and checks, with no copy
//!    and no allocation per row: `seq` contiguous; the stored `prev_hash` equal to the previous
//!    row's stored `hash` (for a range's first row, the stored hash of the row before it);
//!    `hash == chain_hash(prev_hash, canonical)`; signed `(seq, hash)` pairs. Unless turned off,
//!    it parses the canonical JSON (borrowed) and compares what search and show rely on: the index
//!    columns and the JSON's own `seq` and `prev_hash`; with `content`, it re-digests the bodies.
//! 3. The first failure (lowest `seq`) is classified with a few targeted lookups: modified,
//!    deleted, inserted, reordered, index mismatch, content mismatch, bad signature, truncated.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde::de::{Deserializer, IgnoredAny, Visitor};
use serde::{Deserialize, Serialize};

use crate::canonical::{GENESIS, chain_hash, hex, unhex32};
use crate::checkpoint::{PUBLIC_KEY_FILE, SignedCheckpoint, fingerprint, parse_public_key};
use crate::store::{DB_FILE, Store, StoreError};

/// What kind of damage the first bad `seq` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The event's bytes (or its stored hash) changed, or history was rewritten.
    Modified,
    /// Events are missing.
    Deleted,
    /// Events that were never chained there were added.
    Inserted,
    /// Events are out of their chained order.
    Reordered,
    /// A column search filters on disagrees with the hashed event.
    IndexMismatch,
    /// A recorded body no longer matches its chained digest.
    ContentMismatch,
    /// A checkpoint does not verify under the trusted key.
    BadSignature,
    /// The log ends before a signed checkpoint's `seq`.
    Truncated,
}

impl FailureKind {
    /// The report name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Modified => "modified",
            FailureKind::Deleted => "deleted",
            FailureKind::Inserted => "inserted",
            FailureKind::Reordered => "reordered",
            FailureKind::IndexMismatch => "index mismatch",
            FailureKind::ContentMismatch => "content mismatch",
            FailureKind::BadSignature => "bad signature",
            FailureKind::Truncated => "truncated",
        }
    }
}

/// The first bad `seq` and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The lowest position found bad (a checkpoint's `seq` for signature failures).
    pub seq: u64,
    /// What is wrong there.
    pub kind: FailureKind,
    /// Human explanation naming the evidence.
    pub detail: String,
}

/// Work and time of one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Items processed (events, or bodies for content).
    pub items: u64,
    /// Busy time summed over the stage's threads, milliseconds.
    pub busy_ms: f64,
    /// `items / busy time`: the stage's rate on one thread.
    pub per_second: f64,
    /// Threads the stage ran on.
    pub threads: usize,
}

impl Stage {
    fn new(items: u64, busy: Duration, threads: usize) -> Stage {
        let secs = busy.as_secs_f64();
        Stage { items, busy_ms: secs * 1e3, per_second: if secs > 0.0 { items as f64 / secs } else { 0.0 }, threads }
    }
}

/// Per-stage figures (see [`Stage`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Stepping SQLite and the sequential checks (contiguity, linkage, signed pairs).
    pub read: Stage,
    /// Re-hashing canonical bytes.
    pub hash: Stage,
    /// Parsing the canonical JSON and comparing fields (absent when off).
    pub fields: Option<Stage>,
    /// Re-digesting recorded bodies (absent when off).
    pub content: Option<Stage>,
}

/// What `audit verify` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// True when nothing is wrong (warnings allowed).
    pub ok: bool,
    /// What was verified: the database file or the export directory.
    pub source: String,
    /// Whether `source` is an export (no index columns, no content).
    pub export: bool,
    /// Events checked.
    pub events: u64,
    /// Highest `seq` in the log (or export).
    pub last_seq: u64,
    /// The log's head hash as stored (hex).
    pub head_hash: String,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Highest `seq` covered by a verified checkpoint.
    pub last_signed_seq: Option<u64>,
    /// Fingerprint of the key signatures were checked against.
    pub key_fingerprint: String,
    /// Where that key came from.
    pub key_source: String,
    /// Whether index columns and the JSON's own `seq`/`prev_hash` were compared.
    pub fields_checked: bool,
    /// Recorded bodies re-digested (`None`: not asked for).
    pub content_checked: Option<u64>,
    /// The first bad `seq`.
    pub failure: Option<Failure>,
    /// Not failures: an unsigned tail, a key taken from the data itself, ...
    pub warnings: Vec<String>,
    /// Wall time, milliseconds.
    pub elapsed_ms: f64,
    /// `events / wall time`.
    pub events_per_second: f64,
    /// Per-stage figures.
    pub stages: Stages,
}

/// Verification could not run (as opposed to finding damage).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A key or checkpoint file does not hold what it should.
    #[error("{0}")]
    Malformed(String),
    /// No key to check signatures against.
    #[error("no public key: {0} is missing; pass --public-key with the key you trust")]
    NoKey(String),
}

/// How to verify.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// Compare index columns and the JSON's own `seq`/`prev_hash` (on by default).
    pub fields: bool,
    /// Re-digest recorded bodies.
    pub content: bool,
    /// The key the auditor trusts; `None`: the data dir's `audit-signing.pub`.
    pub public_key: Option<&'a VerifyingKey>,
    /// An exported checkpoint the log must still hold.
    pub checkpoint: Option<&'a SignedCheckpoint>,
    /// Threads, each checking a contiguous seq range (0: one per core).
    pub threads: usize,
    /// Called now and then with (events read, highest seq).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options { fields: true, content: false, public_key: None, checkpoint: None, threads: 0, progress: None }
    }
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("fields", &self.fields)
            .field("content", &self.content)
            .field("public_key", &self.public_key.map(fingerprint))
            .field("checkpoint", &self.checkpoint.map(|c| c.body.seq))
            .finish_non_exhaustive()
    }
}

/// Reads a base64 public key file (as `audit-signing.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, VerifyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| VerifyError::Io { path: path.display().to_string(), source })?;
    parse_public_key(&text)
        .ok_or_else(|| VerifyError::Malformed(format!("{}: not a base64 Ed25519 public key", path.display())))
}

/// Reads an exported checkpoint file ([`SignedCheckpoint`] JSON).
pub fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint, VerifyError> {
    let text = std::fs::read(path).map_err(|source| VerifyError::Io { path: path.display().to_string(), source })?;
    serde_json::from_slice(&text)
        .map_err(|e| VerifyError::Malformed(format!("{}: not a signed checkpoint: {e}", path.display())))
}

/// A signed `(seq, hash)` the log must hold.
#[derive(Clone, Debug)]
pub(crate) struct Anchor {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) what: String,
    /// Stored in the log (counts toward "signed"), or brought by the auditor.
    pub(crate) stored: bool,
}

/// Failures found so far; the lowest `(seq, rank)` wins. Rank orders explanations at the same
/// seq: the chain's own (0) before fields (1), content (2) and signatures (3).
pub(crate) struct Found {
    stop_at: AtomicU64,
    list: Mutex<Vec<(u8, Failure)>>,
}

impl Found {
    pub(crate) fn new() -> Found {
        Found { stop_at: AtomicU64::new(u64::MAX), list: Mutex::new(Vec::new()) }
    }

    pub(crate) fn add(&self, rank: u8, seq: u64, kind: FailureKind, detail: String) {
        self.stop_at.fetch_min(seq, Ordering::AcqRel);
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push((rank, Failure { seq, kind, detail }));
    }

    /// Rows above this seq need no more checking.
    pub(crate) fn stop_at(&self) -> u64 {
        self.stop_at.load(Ordering::Acquire)
    }

    pub(crate) fn first(&self) -> Option<Failure> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().min_by_key(|(rank, f)| (f.seq, *rank)).map(|(_, f)| f.clone())
    }
}

fn bytes(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        _ => &[],
    }
}

fn text(v: ValueRef<'_>) -> Option<&[u8]> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b),
        _ => None,
    }
}

fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

/// The index columns, in `SELECT` order after `time_ms`.
const TEXT_COLUMNS: [&str; 7] = ["event_type", "outcome", "request_id", "subject", "action", "model", "writer_id"];

/// A string that borrows from the input when it can (no escapes) and owns otherwise.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

fn opt<'a>(t: &'a Option<Text<'_>>) -> Option<&'a str> {
    t.as_ref().map(|t| t.0.as_ref())
}

/// The parts of a hashed event that search and show depend on, borrowed from its bytes.
#[derive(Deserialize)]
struct Hashed<'a> {
    #[serde(borrow)]
    action: Option<Text<'a>>,
    #[serde(borrow)]
    actor: Option<HashedActor<'a>>,
    #[serde(borrow)]
    content: Option<HashedContent<'a>>,
    #[serde(borrow)]
    event_type: Text<'a>,
    #[serde(borrow)]
    gen_ai: Option<HashedGenAi<'a>>,
    hash: Option<IgnoredAny>,
    #[serde(borrow)]
    outcome: Text<'a>,
    #[serde(borrow)]
    prev_hash: Text<'a>,
    #[serde(borrow)]
    request_id: Option<Text<'a>>,
    #[serde(borrow)]
    resource: Option<HashedResource<'a>>,
    seq: u64,
    #[serde(borrow)]
    time: Text<'a>,
    #[serde(borrow)]
    writer_id: Text<'a>,
}

#[derive(Deserialize)]
struct HashedActor<'a> {
    #[serde(borrow)]
    subject: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct HashedGenAi<'a> {
    #[serde(borrow, rename = "request.model")]
    request_model: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct HashedResource<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
}

#[derive(Deserialize)]
struct HashedContent<'a> {
    #[serde(borrow)]
    input_digest: Option<Text<'a>>,
    #[serde(borrow)]
    input_ref: Option<Text<'a>>,
    #[serde(borrow)]
    output_digest: Option<Text<'a>>,
    #[serde(borrow)]
    output_ref: Option<Text<'a>>,
}

impl Hashed<'_> {
    /// `time_ms` exactly as [`crate::store::IndexColumns::of`] derives it.
    fn time_ms(&self) -> i64 {
        humantime::parse_rfc3339(&self.time.0)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// The text index columns in [`TEXT_COLUMNS`] order, as the store derives them.
    fn columns(&self) -> [Option<&str>; 7] {
        let model = self
            .gen_ai
            .as_ref()
            .and_then(|g| opt(&g.request_model))
            .or_else(|| self.resource.as_ref().filter(|r| r.kind.0 == "model").and_then(|r| opt(&r.id)));
        [
            Some(self.event_type.0.as_ref()),
            Some(self.outcome.0.as_ref()),
            opt(&self.request_id),
            self.actor.as_ref().and_then(|a| opt(&a.subject)),
            opt(&self.action),
            model,
            Some(self.writer_id.0.as_ref()),
        ]
    }
}

fn shown(b: Option<&[u8]>) -> String {
    match b {
        None => "NULL".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

/// Resolves the key signatures are checked against, and says where it came from.
fn resolve_key(data_dir: &Path, given: Option<&VerifyingKey>) -> Result<(VerifyingKey, String), VerifyError> {
    if let Some(k) = given {
        return Ok((*k, "--public-key".into()));
    }
    let path = data_dir.join(PUBLIC_KEY_FILE);
    if !path.exists() {
        return Err(VerifyError::NoKey(path.display().to_string()));
    }
    Ok((read_public_key(&path)?, format!("{} (the data dir's own key)", path.display())))
}

/// Checks an exported checkpoint's signature and returns it as an anchor. Without a key given by
/// the auditor, the file's embedded key is not trusted: it must equal the data dir's key.
pub(crate) fn external_anchor(
    cp: &SignedCheckpoint,
    key: &VerifyingKey,
    key_given: bool,
    found: &Found,
) -> Option<Anchor> {
    let seq = cp.body.seq;
    if !key_given {
        let embedded = parse_public_key(&cp.public_key);
        if embedded != Some(*key) {
            let fp = embedded.map_or_else(|| "an unreadable key".to_string(), |k| fingerprint(&k));
            found.add(
                3,
                seq,
                FailureKind::BadSignature,
                format!(
                    "the checkpoint file (seq {seq}) names signing key {fp}, not this data dir's key {}: \
                     the data dir's key was replaced, or the file comes from elsewhere; pass --public-key \
                     with the key you trust",
                    fingerprint(key)
                ),
            );
            return None;
        }
    }
    if let Err(e) = cp.verify(key) {
        found.add(3, seq, FailureKind::BadSignature, format!("the checkpoint file (seq {seq}): {e}"));
        return None;
    }
    let Some(hash) = unhex32(&cp.body.hash) else {
        found.add(3, seq, FailureKind::BadSignature, format!("the checkpoint file (seq {seq}) signs a malformed hash"));
        return None;
    };
    Some(Anchor { seq, hash, what: "the checkpoint file".into(), stored: false })
}

/// Verifies the audit log in `data_dir` (see the module docs).
pub fn verify(data_dir: &Path, opts: &Options<'_>) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let (key, key_source) = resolve_key(data_dir, opts.public_key)?;
    let store = Store::open_reader(data_dir)?;
    let conn = store.conn();
    let err = |source| StoreError::Sqlite { path: store.path().to_path_buf(), source };
    // Reads of a large log go through the page cache without a copy per page.
    let _ = conn.pragma_update(None, "mmap_size", 1i64 << 40);
    let tx = conn.unchecked_transaction().map_err(err)?;
    let gateway_id: Option<String> =
        tx.query_row("SELECT value FROM meta WHERE key = 'gateway_id'", [], |r| r.get(0)).optional().map_err(err)?;
    let last_seq: u64 =
        tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get::<_, i64>(0)).map_err(err)? as u64;
    let found = Found::new();
    let mut warnings = Vec::new();
    let (mut anchors, verified) = stored_anchors(&tx, &key, &found).map_err(err)?;
    if let Some(cp) = opts.checkpoint {
        if gateway_id.as_deref().is_some_and(|g| g != cp.body.gateway_id) {
            warnings.push(format!(
                "the checkpoint file is from gateway {}, this data dir is gateway {}",
                cp.body.gateway_id,
                gateway_id.as_deref().unwrap_or("?")
            ));
        }
        anchors.extend(external_anchor(cp, &key, opts.public_key.is_some(), &found));
    }
    anchors.sort_by_key(|a| a.seq);
    for a in anchors.iter().filter(|a| a.seq == 0 && a.hash != GENESIS) {
        found.add(
            3,
            0,
            FailureKind::Modified,
            format!("{} signs seq 0 with hash {}, not the genesis value", a.what, hex(&a.hash)),
        );
    }
    for a in anchors.iter().filter(|a| a.seq > last_seq) {
        found.add(
            3,
            last_seq + 1,
            FailureKind::Truncated,
            format!(
                "the log ends at seq {last_seq} but {} signed seq {} (hash {}): events {}..={} were removed",
                a.what,
                a.seq,
                hex(&a.hash),
                last_seq + 1,
                a.seq
            ),
        );
    }

    let scan = scan(data_dir, opts, &anchors, &found, last_seq)?;
    if let Some(seq) = scan.link_break {
        let f = classify_break(&tx, seq).map_err(err)?.unwrap_or_else(|| Failure {
            seq,
            kind: FailureKind::Modified,
            detail: format!("seq {seq} is not chained to seq {}", seq - 1),
        });
        found.add(0, f.seq, f.kind, f.detail);
    }
    let head: Option<Vec<u8>> = tx
        .query_row("SELECT hash FROM events WHERE seq = ?1", [last_seq as i64], |r| r.get(0))
        .optional()
        .map_err(err)?;
    drop(tx);

    let failure = found.first();
    let last_signed_seq = anchors.iter().filter(|a| a.stored && a.seq <= last_seq).map(|a| a.seq).max();
    if failure.is_none() {
        match last_signed_seq {
            None if last_seq > 0 => warnings.push(format!(
                "no checkpoint covers this log: none of its {last_seq} events is signed (normal only before the \
                 gateway's first checkpoint)"
            )),
            Some(s) if s < last_seq => warnings.push(format!(
                "unsigned tail: the {} events after seq {s} (the last signed checkpoint) are not signed yet \
                 (normal while the gateway runs, and after a crash)",
                last_seq - s
            )),
            _ => {}
        }
    }
    if !opts.fields {
        warnings.push("index columns were not compared with the hashed events (fields check off)".into());
    }
    let elapsed = started.elapsed();
    Ok(Report {
        ok: failure.is_none(),
        source: data_dir.join(DB_FILE).display().to_string(),
        export: false,
        events: scan.events,
        last_seq,
        head_hash: head.map_or_else(|| hex(&GENESIS), |h| hex(&h)),
        checkpoints: verified,
        last_signed_seq,
        key_fingerprint: fingerprint(&key),
        key_source,
        fields_checked: opts.fields,
        content_checked: opts.content.then_some(scan.bodies),
        failure,
        warnings,
        elapsed_ms: elapsed.as_secs_f64() * 1e3,
        events_per_second: if elapsed.as_secs_f64() > 0.0 { scan.events as f64 / elapsed.as_secs_f64() } else { 0.0 },
        stages: scan.stages,
    })
}

/// Verifies every stored checkpoint's signature; returns the signed pairs and how many verified.
fn stored_anchors(conn: &Connection, key: &VerifyingKey, found: &Found) -> rusqlite::Result<(Vec<Anchor>, u64)> {
    let mut st = conn.prepare("SELECT id, seq, body, signature FROM checkpoints ORDER BY seq, id")?;
    let mut rows = st.query([])?;
    let mut anchors = Vec::new();
    let mut verified = 0;
    let public = base64_key(key);
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let col_seq = int(r.get_ref(1)?).unwrap_or(-1);
        let seq = col_seq.max(0) as u64;
        let Some(cp) = SignedCheckpoint::from_stored(bytes(r.get_ref(2)?), bytes(r.get_ref(3)?), &public) else {
            found.add(
                3,
                seq,
                FailureKind::BadSignature,
                format!("checkpoint #{id} (seq {col_seq}): its body is not a checkpoint"),
            );
            continue;
        };
        if let Err(e) = cp.verify(key) {
            found.add(
                3,
                cp.body.seq.min(seq),
                FailureKind::BadSignature,
                format!(
                    "checkpoint #{id} (seq {}, signed by {} per its body): {e}",
                    cp.body.seq, cp.body.key_fingerprint
                ),
            );
            continue;
        }
        if cp.body.seq as i64 != col_seq {
            found.add(
                3,
                cp.body.seq.min(seq),
                FailureKind::BadSignature,
                format!("checkpoint #{id}: its seq column says {col_seq} but it signs seq {}", cp.body.seq),
            );
            continue;
        }
        let Some(hash) = unhex32(&cp.body.hash) else {
            found.add(
                3,
                seq,
                FailureKind::BadSignature,
                format!("checkpoint #{id} (seq {seq}) signs a malformed hash"),
            );
            continue;
        };
        verified += 1;
        anchors.push(Anchor { seq, hash, what: format!("checkpoint #{id}"), stored: true });
    }
    Ok((anchors, verified))
}

fn base64_key(key: &VerifyingKey) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

struct Scan {
    events: u64,
    bodies: u64,
    link_break: Option<u64>,
    stages: Stages,
}

const SQL_CHAIN: &str = "SELECT seq, hash, prev_hash, canonical FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq";
const SQL_FIELDS: &str = "SELECT seq, hash, prev_hash, canonical, time_ms, event_type, outcome, request_id, subject, \
                          action, model, writer_id FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq";

/// Every `SAMPLE`th row is timed stage by stage; stage times are extrapolated from those.
const SAMPLE: u64 = 64;
/// Rows between progress reports and looks at other partitions' failures.
const PROGRESS_ROWS: u64 = 8192;
/// The smallest seq range worth a thread of its own.
#[cfg(not(test))]
const MIN_PART_ROWS: u64 = 8192;
#[cfg(test)]
const MIN_PART_ROWS: u64 = 4;

/// Time spent per stage on sampled rows.
#[derive(Clone, Copy, Debug, Default)]
struct Sampled {
    rows: u64,
    read: Duration,
    hash: Duration,
    fields: Duration,
    content: Duration,
}

/// What one partition (a contiguous seq range) found.
#[derive(Debug, Default)]
struct Part {
    events: u64,
    bodies: u64,
    link_break: Option<u64>,
    sampled: Sampled,
}

/// Splits `1..=last_seq` into contiguous ranges, one per thread; each thread steps its own
/// connection, so nothing is copied between threads.
fn scan(
    data_dir: &Path,
    opts: &Options<'_>,
    anchors: &[Anchor],
    found: &Found,
    last_seq: u64,
) -> Result<Scan, StoreError> {
    let threads =
        if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
    let threads = (threads as u64).clamp(1, last_seq.div_ceil(MIN_PART_ROWS).max(1));
    let per = last_seq.div_ceil(threads).max(1);
    let read = AtomicU64::new(0);
    let parts: Vec<Result<Part, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (lo, hi) = (i * per + 1, ((i + 1) * per).min(last_seq));
                let read = &read;
                s.spawn(move || partition(data_dir, lo, hi, opts, anchors, found, last_seq, read))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Ok(Part::default()))).collect()
    });
    let mut out = Scan { events: 0, bodies: 0, link_break: None, stages: Stages::default() };
    let mut total = Sampled::default();
    for p in parts {
        let p = p?;
        out.events += p.events;
        out.bodies += p.bodies;
        if out.link_break.is_none() {
            out.link_break = p.link_break;
        }
        total.rows += p.sampled.rows;
        total.read += p.sampled.read;
        total.hash += p.sampled.hash;
        total.fields += p.sampled.fields;
        total.content += p.sampled.content;
    }
    let scale = |d: Duration| {
        if total.rows == 0 { Duration::ZERO } else { d.mul_f64(out.events as f64 / total.rows as f64) }
    };
    let threads = threads as usize;
    out.stages = Stages {
        read: Stage::new(out.events, scale(total.read), threads),
        hash: Stage::new(out.events, scale(total.hash), threads),
        fields: opts.fields.then(|| Stage::new(out.events, scale(total.fields), threads)),
        content: opts.content.then(|| {
            let mut s = Stage::new(out.bodies, scale(total.content), threads);
            // The rate of the content stage is per body, not per event.
            s.per_second = if s.busy_ms > 0.0 { out.bodies as f64 / (s.busy_ms / 1e3) } else { 0.0 };
            s
        }),
    };
    Ok(out)
}

/// Checks the rows `lo..=hi` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn partition(
    data_dir: &Path,
    lo: u64,
    hi: u64,
    opts: &Options<'_>,
    anchors: &[Anchor],
    found: &Found,
    last_seq: u64,
    read: &AtomicU64,
) -> Result<Part, StoreError> {
    let store = Store::open_reader(data_dir)?;
    let conn = store.conn();
    let err = |source| StoreError::Sqlite { path: store.path().to_path_buf(), source };
    // Reads of a large log go through the page cache without a copy per page.
    let _ = conn.pragma_update(None, "mmap_size", 1i64 << 40);
    let tx = conn.unchecked_transaction().map_err(err)?;
    let parse = opts.fields || opts.content;
    let mut st = tx.prepare(if parse { SQL_FIELDS } else { SQL_CHAIN }).map_err(err)?;
    let mut content_st = match opts.content {
        true => Some(tx.prepare("SELECT codec, salt, data, timing FROM content WHERE id = ?1").map_err(err)?),
        false => None,
    };
    // The hash this range's first row must be chained to (unknown when that row is missing:
    // the previous range reports the gap).
    let mut head: Option<[u8; 32]> = if lo == 1 {
        Some(GENESIS)
    } else {
        tx.query_row("SELECT hash FROM events WHERE seq = ?1", [(lo - 1) as i64], |r| {
            Ok(<[u8; 32]>::try_from(bytes(r.get_ref(0)?)).ok())
        })
        .optional()
        .map_err(err)?
        .flatten()
    };
    let mut part = Part::default();
    let mut a = anchors.partition_point(|x| x.seq < lo);
    let mut expected = lo;
    let mut stopped = false;
    // After a field or content failure, the chain is still checked through the next row: its
    // link can explain the failure better (a rewritten event whose hash was recomputed).
    let mut until = u64::MAX;
    let mut rows = st.query([lo as i64, hi as i64]).map_err(err)?;
    loop {
        let sampled = expected.is_multiple_of(SAMPLE);
        let t0 = sampled.then(Instant::now);
        let Some(r) = rows.next().map_err(err)? else { break };
        let seq_raw = int(r.get_ref(0).map_err(err)?).unwrap_or(-1);
        if seq_raw != expected as i64 {
            found.add(0, expected, FailureKind::Deleted, missing(expected, seq_raw as u64));
            stopped = true;
            break;
        }
        let seq = expected;
        if seq > until {
            stopped = true;
            break;
        }
        expected += 1;
        let (Ok(hash), Ok(prev)) = (
            <[u8; 32]>::try_from(bytes(r.get_ref(1).map_err(err)?)),
            <[u8; 32]>::try_from(bytes(r.get_ref(2).map_err(err)?)),
        ) else {
            found.add(
                0,
                seq,
                FailureKind::Modified,
                format!("seq {seq}: its stored hash or prev_hash is not 32 bytes"),
            );
            stopped = true;
            break;
        };
        let canonical = bytes(r.get_ref(3).map_err(err)?);
        part.events += 1;
        if head.is_some_and(|h| h != prev) {
            // Classified after the scan, with lookups.
            part.link_break = Some(seq);
            found.stop_at.fetch_min(seq, Ordering::AcqRel);
            stopped = true;
            break;
        }
        let t1 = sampled.then(Instant::now);
        if chain_hash(&prev, canonical) != hash {
            found.add(
                0,
                seq,
                FailureKind::Modified,
                format!(
                    "seq {seq}: the stored event does not hash to its stored hash {} (its canonical bytes or its hash \
                     were changed)",
                    hex(&hash)
                ),
            );
            stopped = true;
            break;
        }
        head = Some(hash);
        while let Some(anchor) = anchors.get(a).filter(|x| x.seq <= seq) {
            if anchor.seq == seq && anchor.hash != hash {
                let good = anchors[..a].iter().rev().find(|x| x.seq < seq).map_or(0, |x| x.seq);
                found.add(
                    3,
                    seq,
                    FailureKind::Modified,
                    format!(
                        "{} signed seq {seq} with hash {}, the log holds {}: history after seq {good} up to seq {seq} \
                         was rewritten (and re-chained)",
                        anchor.what,
                        hex(&anchor.hash),
                        hex(&hash)
                    ),
                );
            }
            a += 1;
        }
        let t2 = sampled.then(Instant::now);
        let mut t3 = t2;
        if parse && until == u64::MAX {
            // One UTF-8 check of the whole event, then a parse that need not re-check strings.
            let parsed = std::str::from_utf8(canonical)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Hashed<'_>>(text).map_err(|e| e.to_string()));
            let h = match parsed {
                Ok(h) => h,
                Err(e) => {
                    found.add(
                        1,
                        seq,
                        FailureKind::Modified,
                        format!("seq {seq}: the hashed bytes are not an event: {e}"),
                    );
                    // The next link may explain this row better (a rewritten, re-hashed event).
                    until = seq + 1;
                    continue;
                }
            };
            if opts.fields
                && let Err(e) = crate::canonical::check_canonical(canonical)
            {
                found.add(
                    1,
                    seq,
                    FailureKind::Modified,
                    format!("seq {seq}: the hashed bytes are not RFC 8785 canonical JSON ({e})"),
                );
                until = seq + 1;
                continue;
            }
            if opts.fields
                && let Some((kind, detail)) = compare(r, seq, &prev, &h).map_err(err)?
            {
                found.add(1, seq, kind, detail);
                until = seq + 1;
                continue;
            }
            t3 = sampled.then(Instant::now);
            if let (Some(cst), Some(c)) = (content_st.as_mut(), &h.content) {
                for (direction, reference, digest) in
                    [("input", &c.input_ref, &c.input_digest), ("output", &c.output_ref, &c.output_digest)]
                {
                    let Some(reference) = opt(reference) else { continue };
                    part.bodies += 1;
                    if let Some(why) = check_content(cst, reference, opt(digest).unwrap_or_default()) {
                        found.add(
                            2,
                            seq,
                            FailureKind::ContentMismatch,
                            format!("seq {seq}: the {direction} body {reference}: {why}"),
                        );
                        until = seq + 1;
                    }
                }
            }
        }
        if let (Some(t0), Some(t1), Some(t2), Some(t3)) = (t0, t1, t2, t3) {
            let s = &mut part.sampled;
            s.rows += 1;
            s.read += t1 - t0;
            s.hash += t2 - t1;
            s.fields += t3 - t2;
            s.content += t3.elapsed();
        }
        if part.events % PROGRESS_ROWS == 0 {
            let n = read.fetch_add(PROGRESS_ROWS, Ordering::Relaxed) + PROGRESS_ROWS;
            if let Some(p) = opts.progress {
                p(n, last_seq);
            }
            if found.stop_at() < seq {
                stopped = true;
                break;
            }
        }
    }
    if !stopped && expected <= hi {
        found.add(0, expected, FailureKind::Deleted, missing(expected, hi + 1));
    }
    Ok(part)
}

fn missing(expected: u64, found_seq: u64) -> String {
    let n = found_seq.saturating_sub(expected);
    if n <= 1 {
        format!("seq {expected} is missing (the next event in the log is seq {found_seq})")
    } else {
        format!(
            "seq {expected}..={} are missing ({n} events; the next event in the log is seq {found_seq})",
            found_seq - 1
        )
    }
}

/// Compares one row's index columns with its hashed event.
fn compare(
    r: &rusqlite::Row<'_>,
    seq: u64,
    prev: &[u8; 32],
    h: &Hashed<'_>,
) -> rusqlite::Result<Option<(FailureKind, String)>> {
    if h.seq != seq {
        let (kind, why) = if h.seq > seq {
            (FailureKind::Deleted, "events before it were deleted and the rows renumbered")
        } else {
            (FailureKind::Inserted, "events were inserted before it and the rows renumbered")
        };
        return Ok(Some((kind, format!("the event stored at seq {seq} was hashed as seq {}: {why}", h.seq))));
    }
    if unhex32(&h.prev_hash.0).as_ref() != Some(prev) {
        return Ok(Some((
            FailureKind::Modified,
            format!("seq {seq}: its prev_hash column is {}, the hashed event says {}", hex(prev), h.prev_hash.0),
        )));
    }
    if h.hash.is_some() {
        return Ok(Some((FailureKind::Modified, format!("seq {seq}: the hashed bytes carry a hash field"))));
    }
    let want = h.time_ms();
    let time_ms = int(r.get_ref(4)?);
    if time_ms != Some(want) {
        return Ok(Some((
            FailureKind::IndexMismatch,
            format!(
                "seq {seq}: column time_ms is {}, the hashed event's time {} is {want}",
                time_ms.map_or_else(|| "NULL".into(), |t| t.to_string()),
                h.time.0
            ),
        )));
    }
    for (i, hashed) in h.columns().into_iter().enumerate() {
        let stored = text(r.get_ref(5 + i)?);
        if stored != hashed.map(str::as_bytes) {
            return Ok(Some((
                FailureKind::IndexMismatch,
                format!(
                    "seq {seq}: column {} is {}, the hashed event says {}",
                    TEXT_COLUMNS[i],
                    shown(stored),
                    shown(hashed.map(str::as_bytes))
                ),
            )));
        }
    }
    Ok(None)
}

/// Re-digests one recorded body; `Some(why)` when it does not match `digest`.
fn check_content(st: &mut rusqlite::Statement<'_>, reference: &str, digest: &str) -> Option<String> {
    let Some(id) = reference.strip_prefix("content:").and_then(|s| s.parse::<i64>().ok()) else {
        return Some("is not a content reference".into());
    };
    let got = st.query_row([id], |r| {
        let codec = String::from_utf8_lossy(bytes(r.get_ref(0)?)).into_owned();
        let body = crate::content::decode(&codec, bytes(r.get_ref(2)?));
        let timing = text(r.get_ref(3)?).map(|t| String::from_utf8_lossy(t).into_owned());
        let salt = bytes(r.get_ref(1)?);
        Ok(body.map(|b| crate::content::digest(salt, &b, timing.as_deref())))
    });
    match got {
        Err(rusqlite::Error::QueryReturnedNoRows) => Some("is missing from the content store".into()),
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(None) => Some("cannot be decompressed".into()),
        Ok(Some(d)) if d != digest => Some(format!(
            "re-digests to {d}, the chained digest is {}",
            if digest.is_empty() { "absent" } else { digest }
        )),
        Ok(Some(_)) => None,
    }
}

type Stored = ([u8; 32], [u8; 32], Vec<u8>);

fn stored_row(conn: &Connection, seq: u64) -> rusqlite::Result<Option<Stored>> {
    conn.query_row("SELECT hash, prev_hash, canonical FROM events WHERE seq = ?1", [seq as i64], |r| {
        Ok((
            <[u8; 32]>::try_from(bytes(r.get_ref(0)?)).unwrap_or_default(),
            <[u8; 32]>::try_from(bytes(r.get_ref(1)?)).unwrap_or_default(),
            bytes(r.get_ref(2)?).to_vec(),
        ))
    })
    .optional()
}

/// Explains a broken link at `seq` (its stored `prev_hash` is not the previous row's hash).
fn classify_break(conn: &Connection, seq: u64) -> rusqlite::Result<Option<Failure>> {
    let Some((hash, prev, canonical)) = stored_row(conn, seq)? else { return Ok(None) };
    let before = if seq > 1 { stored_row(conn, seq - 1)?.map_or(GENESIS, |r| r.0) } else { GENESIS };
    let f = |seq, kind, detail| Ok(Some(Failure { seq, kind, detail }));
    if chain_hash(&prev, &canonical) != hash {
        return f(seq, FailureKind::Modified, format!("seq {seq}: the stored event does not hash to its stored hash"));
    }
    let parsed: serde_json::Value = serde_json::from_slice(&canonical).unwrap_or_default();
    if parsed["prev_hash"].as_str() != Some(hex(&prev).as_str()) {
        return f(
            seq,
            FailureKind::Modified,
            format!("seq {seq}: its prev_hash column differs from the prev_hash it was hashed with"),
        );
    }
    let at: Option<i64> = conn
        .query_row("SELECT seq FROM events WHERE hash = ?1 ORDER BY seq LIMIT 1", [&prev[..]], |r| r.get(0))
        .optional()?;
    if let Some(j) = at.map(|j| j as u64) {
        if j + 1 < seq {
            return f(
                j + 1,
                FailureKind::Inserted,
                format!(
                    "seq {seq} is chained to seq {j}: the events stored at seq {}..={} are not part of the chain",
                    j + 1,
                    seq - 1
                ),
            );
        }
        if j > seq {
            return f(
                seq,
                FailureKind::Reordered,
                format!("seq {seq} is chained to the event now stored at seq {j}: rows were moved"),
            );
        }
    }
    if let Some((_, next_prev, _)) = stored_row(conn, seq + 1)?
        && seq > 1
        && next_prev == before
    {
        return f(
            seq,
            FailureKind::Inserted,
            format!("seq {} is chained to seq {}: the event at seq {seq} is not part of the chain", seq + 1, seq - 1),
        );
    }
    if let Some(hashed) = parsed["seq"].as_u64()
        && hashed != seq
    {
        return Ok(Some(if hashed > seq {
            Failure {
                seq,
                kind: FailureKind::Deleted,
                detail: format!(
                    "the event stored at seq {seq} was hashed as seq {hashed}: events before it were deleted and the \
                     rows renumbered"
                ),
            }
        } else {
            Failure {
                seq,
                kind: FailureKind::Inserted,
                detail: format!(
                    "the event stored at seq {seq} was hashed as seq {hashed}: events were inserted before it"
                ),
            }
        }));
    }
    if seq == 1 {
        return f(1, FailureKind::Modified, "seq 1 is not chained to the genesis value".into());
    }
    f(
        seq - 1,
        FailureKind::Modified,
        format!(
            "seq {seq} is chained to hash {}, which no event in the log has: the event at seq {} was replaced and \
             its hash recomputed",
            hex(&prev),
            seq - 1
        ),
    )
}

impl Report {
    /// The report as text, for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let rate = |r: f64| {
            if r >= 1e6 { format!("{:.2}M", r / 1e6) } else { format!("{:.0}k", r / 1e3) }
        };
        let _ = writeln!(s, "audit verify: {}", self.source);
        let _ = writeln!(
            s,
            "  events       {} checked; the log ends at seq {}, head {}",
            self.events, self.last_seq, self.head_hash
        );
        let st = &self.stages;
        if self.export {
            let _ = writeln!(
                s,
                "  chain        every line re-canonicalised (RFC 8785) and re-hashed in {:.3} s ({} events/s)",
                self.elapsed_ms / 1e3,
                rate(self.events_per_second)
            );
        } else {
            let _ = writeln!(
                s,
                "  chain        re-hashed in {:.3} s ({} events/s; {} thread(s), each: read {}/s, hash {}/s)",
                self.elapsed_ms / 1e3,
                rate(self.events_per_second),
                st.read.threads,
                rate(st.read.per_second),
                rate(st.hash.per_second)
            );
            match &st.fields {
                Some(f) if self.fields_checked => {
                    let _ = writeln!(
                        s,
                        "  fields       index columns and the hashed seq/prev_hash compared ({}/s per thread)",
                        rate(f.per_second)
                    );
                }
                _ => {
                    let _ = writeln!(s, "  fields       not compared");
                }
            }
            match (&self.content_checked, &st.content) {
                (Some(n), Some(c)) => {
                    let _ = writeln!(
                        s,
                        "  content      {n} recorded bodies re-digested ({} bodies/s per thread)",
                        rate(c.per_second)
                    );
                }
                _ => {
                    let _ = writeln!(s, "  content      not checked (--content re-digests recorded bodies)");
                }
            }
        }
        let _ = writeln!(
            s,
            "  checkpoints  {} verified under ed25519 {} from {}{}",
            self.checkpoints,
            self.key_fingerprint,
            self.key_source,
            self.last_signed_seq.map_or_else(String::new, |q| format!("; last signed seq {q}"))
        );
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        match &self.failure {
            None => {
                let _ = writeln!(s, "OK: every event matches its hash, its chain and its signatures");
            }
            Some(f) => {
                let _ = writeln!(s, "FAILED: first bad seq {} ({}): {}", f.seq, f.kind.as_str(), f.detail);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;

    use bytes::Bytes;
    use rusqlite::params;

    use super::*;
    use crate::checkpoint::Keypair;
    use crate::event::{Actor, Event, EventType, Family, GenAi, Outcome};
    use crate::store::IndexColumns;
    use crate::writer::{Audit, Entry, WriterConfig};
    use crate::{Recording, Resource};

    fn entry(i: usize) -> Entry {
        let completion = i % 2 == 1;
        let kind =
            if completion { EventType::Completion(Family::Inference) } else { EventType::Request(Family::Inference) };
        let mut e = Event::new(kind, Outcome::Success).actor(StdArc::new(Actor {
            subject: Some(format!("user-{}", i % 3)),
            groups: vec!["ml".into()],
            ..Actor::default()
        }));
        e.request_id = Some(format!("req-{}", i / 2));
        e.action = Some("inference.chat".into());
        if i.is_multiple_of(4) {
            e.gen_ai = Some(GenAi { request_model: Some("m\"q".into()), ..GenAi::default() });
        } else {
            e.resource = Some(Resource { id: Some("m1".into()), kind: "model".into(), upstream: None });
        }
        let (input, output) = if completion {
            let mut r = Recording::stream(1 << 20);
            r.push(&Bytes::from(format!("data: {i}\n\n")), Some(3));
            r.push(&Bytes::from_static(b"data: [DONE]\n\n"), Some(7));
            (None, Some(r))
        } else {
            (Some(Recording::whole(&Bytes::from(format!("{{\"prompt\":\"{i}\"}}")), 1 << 20)), None)
        };
        Entry { event: e, input, output }
    }

    /// A log of `n` events over two writer sessions, with checkpoints at start and stop.
    fn log(n: usize) -> testkit::TempDir {
        let dir = testkit::temp_dir("verify");
        for part in [0..n / 2, n / 2..n] {
            let (audit, _) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
            for i in part {
                audit.submit(entry(i));
            }
            audit.close(None);
        }
        dir
    }

    /// Verifies with 1, 2 and 3 threads (ranges split differently), which must agree.
    fn run(dir: &Path, content: bool) -> Report {
        let reports: Vec<Report> =
            [1, 2, 3].map(|threads| verify(dir, &Options { content, threads, ..Options::default() }).unwrap()).into();
        for r in &reports[1..] {
            assert_eq!(r.failure, reports[0].failure, "{}\n{}", r.to_text(), reports[0].to_text());
        }
        reports.into_iter().next_back().unwrap()
    }

    fn conn(dir: &Path) -> Connection {
        Connection::open(dir.join(DB_FILE)).unwrap()
    }

    fn failure(r: &Report) -> (u64, FailureKind) {
        let f = r.failure.as_ref().unwrap_or_else(|| panic!("no failure:\n{}", r.to_text()));
        (f.seq, f.kind)
    }

    fn canonical(c: &Connection, seq: u64) -> Vec<u8> {
        c.query_row("SELECT canonical FROM events WHERE seq = ?1", [seq as i64], |r| r.get(0)).unwrap()
    }

    #[test]
    fn an_untouched_log_verifies_with_content_and_threads() {
        let dir = log(40);
        for threads in [1, 2, 3] {
            let r = verify(dir.path(), &Options { content: true, threads, ..Options::default() }).unwrap();
            assert!(r.ok, "{}", r.to_text());
            assert_eq!(r.events, 40);
            assert_eq!(r.last_seq, 40);
            assert_eq!(r.content_checked, Some(40));
            assert_eq!(r.last_signed_seq, Some(40));
            assert!(r.checkpoints >= 4);
            assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        }
        crate::append_local(dir.path(), vec![Event::new(EventType::AuditVerify, Outcome::Success)]).unwrap();
        let r = run(dir.path(), false);
        assert!(r.ok);
        assert!(r.warnings.iter().any(|w| w.contains("unsigned tail")), "{:?}", r.warnings);
    }

    #[test]
    fn field_extraction_matches_the_store() {
        for i in 0..8 {
            let mut e = entry(i).event;
            e.seq = 3;
            e.prev_hash = hex(&GENESIS);
            e.writer_id = "w".into();
            let bytes = e.canonical_bytes();
            let h: Hashed<'_> = serde_json::from_slice(&bytes).unwrap();
            let cols = IndexColumns::of(&e);
            assert_eq!(h.time_ms(), cols.time_ms);
            let got = h.columns();
            assert_eq!(got[3], cols.subject.as_deref());
            assert_eq!(got[5], cols.model.as_deref());
            assert_eq!(got[0], Some(e.event_type.as_str()));
            assert_eq!(got[1], Some(e.outcome.as_str()));
        }
    }

    #[test]
    fn modified_bytes_and_columns_are_named() {
        let dir = log(30);
        let c = conn(dir.path());
        let b = String::from_utf8(canonical(&c, 7)).unwrap().replace("user-", "evil-");
        c.execute("UPDATE events SET canonical = ?1 WHERE seq = 7", [b.as_bytes()]).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (7, FailureKind::Modified));

        let dir = log(30);
        conn(dir.path()).execute("UPDATE events SET subject = 'x' WHERE seq = 9", []).unwrap();
        let r = run(dir.path(), false);
        assert_eq!(failure(&r), (9, FailureKind::IndexMismatch));
        assert!(r.failure.unwrap().detail.contains("subject"));
        let r = verify(dir.path(), &Options { fields: false, ..Options::default() }).unwrap();
        assert!(r.ok, "columns are not compared with fields off");

        // A modified event whose own hash was recomputed breaks the next link.
        let dir = log(30);
        let c = conn(dir.path());
        let b = String::from_utf8(canonical(&c, 12)).unwrap().replace("user-", "evil-");
        let prev: Vec<u8> = c.query_row("SELECT prev_hash FROM events WHERE seq = 12", [], |r| r.get(0)).unwrap();
        let h = chain_hash(&prev.try_into().unwrap(), b.as_bytes());
        c.execute("UPDATE events SET canonical = ?1, hash = ?2 WHERE seq = 12", params![b.as_bytes(), &h[..]]).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (12, FailureKind::Modified));
    }

    #[test]
    fn deletion_insertion_and_reordering_are_told_apart() {
        let dir = log(30);
        conn(dir.path()).execute("DELETE FROM events WHERE seq = 5", []).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (5, FailureKind::Deleted));

        // Deleted and renumbered.
        let dir = log(30);
        let c = conn(dir.path());
        c.execute("DELETE FROM events WHERE seq = 5", []).unwrap();
        c.execute("UPDATE events SET seq = -(seq - 1) WHERE seq > 5", []).unwrap();
        c.execute("UPDATE events SET seq = -seq WHERE seq < 0", []).unwrap();
        c.execute("DELETE FROM checkpoints", []).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (5, FailureKind::Deleted));

        // Inserted (chained correctly to its predecessor), rows after it renumbered.
        let dir = log(30);
        let c = conn(dir.path());
        c.execute("UPDATE events SET seq = -(seq + 1) WHERE seq > 10", []).unwrap();
        c.execute("UPDATE events SET seq = -seq WHERE seq < 0", []).unwrap();
        let prev: Vec<u8> = c.query_row("SELECT hash FROM events WHERE seq = 10", [], |r| r.get(0)).unwrap();
        let mut e: Event = serde_json::from_slice(&canonical(&c, 10)).unwrap();
        e.seq = 11;
        e.prev_hash = hex(&prev);
        e.event_id = "forged".into();
        let bytes = e.canonical_bytes();
        let h = chain_hash(&prev.clone().try_into().unwrap(), &bytes);
        c.execute(
            "INSERT INTO events SELECT 11, ?1, ?2, time_ms, event_type, outcome, request_id, subject, action, model, writer_id, ?3 FROM events WHERE seq = 10",
            params![&h[..], prev, bytes],
        )
        .unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (11, FailureKind::Inserted));

        // Two rows' contents swapped.
        let dir = log(30);
        let c = conn(dir.path());
        c.execute("UPDATE events SET seq = 1000 WHERE seq = 8", []).unwrap();
        c.execute("UPDATE events SET seq = 8 WHERE seq = 13", []).unwrap();
        c.execute("UPDATE events SET seq = 13 WHERE seq = 1000", []).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (8, FailureKind::Reordered));
    }

    #[test]
    fn hashed_bytes_that_are_not_canonical_are_reported() {
        // The last event rewritten with one insignificant space and re-hashed: the chain links
        // still hold, but an auditor's own canonicaliser could not reproduce these bytes.
        let dir = log(30);
        let c = conn(dir.path());
        let original = canonical(&c, 30);
        let prev: Vec<u8> = c.query_row("SELECT prev_hash FROM events WHERE seq = 30", [], |r| r.get(0)).unwrap();
        let mut bytes = b"{ ".to_vec();
        bytes.extend_from_slice(&original[1..]);
        let h = chain_hash(&prev.try_into().unwrap(), &bytes);
        c.execute("UPDATE events SET canonical = ?1, hash = ?2 WHERE seq = 30", params![bytes, &h[..]]).unwrap();
        c.execute("DELETE FROM checkpoints WHERE seq >= 30", []).unwrap();
        let r = run(dir.path(), false);
        assert_eq!(failure(&r), (30, FailureKind::Modified));
        let detail = &r.failure.as_ref().unwrap().detail;
        assert!(detail.contains("canonical"), "{detail}");
    }

    #[test]
    fn signatures_truncation_and_content() {
        let dir = log(30);
        let latest = conn(dir.path())
            .query_row("SELECT body, signature FROM checkpoints ORDER BY id DESC LIMIT 1", [], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .unwrap();
        let key = Keypair::load(dir.path()).unwrap();
        let exported = SignedCheckpoint::from_stored(&latest.0, &latest.1, &key.public_base64()).unwrap();
        let c = conn(dir.path());
        c.execute("DELETE FROM events WHERE seq > 25", []).unwrap();
        c.execute("DELETE FROM checkpoints WHERE seq > 25", []).unwrap();
        assert!(run(dir.path(), false).ok, "truncation is invisible without an exported checkpoint");
        let r = verify(dir.path(), &Options { checkpoint: Some(&exported), ..Options::default() }).unwrap();
        assert_eq!(failure(&r), (26, FailureKind::Truncated));

        // A forged signature on a stored checkpoint.
        let dir = log(30);
        let c = conn(dir.path());
        let (id, seq): (i64, i64) = c
            .query_row("SELECT id, seq FROM checkpoints WHERE seq > 0 ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        c.execute("UPDATE checkpoints SET signature = ?1 WHERE id = ?2", params![vec![7u8; 64], id]).unwrap();
        assert_eq!(failure(&run(dir.path(), false)), (seq as u64, FailureKind::BadSignature));

        // A wrong key.
        let dir = log(10);
        let other = Keypair::load_or_create(testkit::temp_dir("other-key").path()).unwrap().0;
        let other = parse_public_key(&other.public_base64()).unwrap();
        let r = verify(dir.path(), &Options { public_key: Some(&other), ..Options::default() }).unwrap();
        assert_eq!(failure(&r).1, FailureKind::BadSignature);

        // A changed body.
        let dir = log(30);
        let c = conn(dir.path());
        let (seq, reference): (i64, String) = c
            .query_row(
                "SELECT seq, json_extract(CAST(canonical AS TEXT), '$.content.output_ref') FROM events WHERE seq > 10 AND json_extract(CAST(canonical AS TEXT), '$.content.output_ref') IS NOT NULL ORDER BY seq LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let id: i64 = reference.trim_start_matches("content:").parse().unwrap();
        c.execute(
            "UPDATE content SET data = ?1 WHERE id = ?2",
            params![lz4_flex::compress_prepend_size(b"data: x\n\n"), id],
        )
        .unwrap();
        assert!(run(dir.path(), false).ok, "content is only checked when asked");
        assert_eq!(failure(&run(dir.path(), true)), (seq as u64, FailureKind::ContentMismatch));
    }
}
