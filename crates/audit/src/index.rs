//! The search index: a derived, rebuildable file (`search.db`) beside `audit.db`, kept by an
//! *indexer* that tails the `events` table by `seq`. The audit writer never touches it, so the
//! hot path pays nothing for search.
//!
//! What it holds:
//! - `fts`: an FTS5 table (contentless, `detail=none`), one row per event with `rowid = seq`: the
//!   prompt and response text extracted from the recorded bodies, key fields of the event, and
//!   one *tag* token per filterable value (`actor.subject`, groups, model, action and its family,
//!   event type and its family, outcome, policy decision, masking entity types). A tag is a
//!   prefix and 16 hex digits of a SHA-256 of the value, so one `MATCH` intersects full text with
//!   any filters, walking `rowid` (= `seq`) ranges newest first.
//! - `blocks`: for every run of [`BLOCK`] seqs, the largest event time seen up to its end, so a
//!   time window maps onto a `seq` range (see `search::seq_range`).
//! - `meta`: the high-water `seq` and its hash (so a replaced or rewound `audit.db` is noticed and
//!   the index rebuilt), the largest time skew seen, and the index format version.
//!
//! The index is never evidence: search re-checks every filter but the text against the hashed
//! bytes it returns. A missing, damaged or outdated `search.db` is rebuilt from `events` and
//! `content`; `modelgate audit reindex` rebuilds on demand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::hex;
use crate::event::Outcome;
use crate::store::{Store, StoreError, model_of, time_ms};

/// File name of the search index inside the data dir.
pub const INDEX_FILE: &str = "search.db";
/// Format version of the index; a different stored version is rebuilt.
pub const INDEX_VERSION: &str = "1";
/// Seqs per time block.
pub const BLOCK: u64 = 256;
/// Events indexed per transaction.
pub const BATCH: usize = 2_000;
/// Index segments FTS5 lets pile up on a level before it merges them.
const AUTOMERGE: i64 = 8;
/// Most text indexed per event (bytes of extracted text).
pub const MAX_TEXT: usize = 64 * 1024;

const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(block INTEGER PRIMARY KEY, tmax INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS blocks_tmax ON blocks(tmax);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    body, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 2'
);
";

/// Indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite refused.
    #[error("search index {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The audit store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IndexError {
    /// Whether the index file itself is damaged (it is then rebuilt).
    pub fn is_damage(&self) -> bool {
        match self {
            IndexError::Sqlite { source, .. } => is_damage(source),
            IndexError::Store(_) => false,
        }
    }
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// A tag token: `zq`, a one-letter kind and 16 hex digits of SHA-256(kind, value).
pub fn tag(kind: char, value: &str) -> String {
    let mut h = Sha256::new();
    h.update([kind as u8, 0]);
    h.update(value.as_bytes());
    let d = h.finalize();
    format!("zq{kind}{}", hex(&d[..8]))
}

/// Tags computed before, per kind and value. The values repeat (a few subjects, groups, models,
/// actions, event types), and hashing them again for every event was a fifth of the indexer's
/// time.
#[derive(Debug, Default)]
struct TagCache(HashMap<char, HashMap<String, String>>);

impl TagCache {
    /// Most values kept per kind before the cache starts over.
    const MAX: usize = 4096;

    fn get(&mut self, kind: char, value: &str) -> &str {
        let m = self.0.entry(kind).or_default();
        if !m.contains_key(value) {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(value.to_owned(), tag(kind, value));
        }
        m.get(value).map_or("", String::as_str)
    }
}

/// Tag kinds.
pub mod kind {
    /// `actor.subject`.
    pub const SUBJECT: char = 's';
    /// One of `actor.groups`.
    pub const GROUP: char = 'g';
    /// The model (`store::IndexColumns` derivation).
    pub const MODEL: char = 'm';
    /// `action`, exactly.
    pub const ACTION: char = 'a';
    /// The first word of `action`.
    pub const ACTION_FAMILY: char = 'f';
    /// `event_type`, exactly.
    pub const EVENT_TYPE: char = 't';
    /// The first word of `event_type`.
    pub const EVENT_FAMILY: char = 'e';
    /// `outcome`.
    pub const OUTCOME: char = 'o';
    /// `policy.decision`.
    pub const DECISION: char = 'd';
    /// A masking entity type.
    pub const MASKING: char = 'k';
}

/// The first word of a dotted name (`inference.chat` → `inference`).
pub fn family(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Masking entity types named by an event's `masking` field: the keys of each direction's
/// object (`{"request": {"EMAIL": 2}}` → `EMAIL`), or the `type`/`entity` of listed objects.
pub fn masking_types(masking: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Value::Object(dirs) = masking else { return out };
    for v in dirs.values() {
        match v {
            Value::Object(m) => out.extend(m.keys().cloned()),
            Value::Array(items) => {
                for i in items {
                    let t = i.get("type").or_else(|| i.get("entity")).and_then(Value::as_str);
                    if let Some(t) = t {
                        out.push(t.to_string());
                    } else if let Some(s) = i.as_str() {
                        out.push(s.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the indexer knows of the index at the last commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last indexed `seq` (0: nothing yet).
    pub seq: u64,
    /// The events table's head when last looked at.
    pub head: u64,
    /// How many times this handle replaced a damaged index file (readers holding the old file
    /// must reopen).
    pub replaced: u64,
}

/// A read-write handle on the index (the indexer, `audit reindex`, and the CLI catching up
/// before it searches a data dir).
#[derive(Debug)]
pub struct Index {
    conn: Connection,
    path: PathBuf,
    events: Store,
    replaced: u64,
    tags: TagCache,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
    move |source| IndexError::Sqlite { path: path.to_path_buf(), source }
}

/// Opens (creating when needed) the index file with the index's settings.
pub(crate) fn open_conn(path: &Path, write: bool) -> rusqlite::Result<Connection> {
    let conn = if write {
        Connection::open(path)?
    } else {
        Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?
    };
    conn.busy_timeout(Duration::from_secs(10))?;
    if write {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // The index is derived data: a crash may lose the last batches (they are re-indexed
        // from the high-water mark, which commits with them) but never corrupts it in WAL mode.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.pragma_update(None, "cache_size", -32_768)?;
    Ok(conn)
}

fn create(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_conn(path, true)?;
    conn.execute_batch(SCHEMA_SQL)?;
    let version: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| r.get(0)).optional()?;
    match version.as_deref() {
        Some(INDEX_VERSION) => {}
        Some(other) => {
            tracing::info!(found = other, want = INDEX_VERSION, "search index format changed; rebuilding it");
            conn.execute_batch(
                "BEGIN IMMEDIATE; DROP TABLE IF EXISTS fts; DROP TABLE IF EXISTS blocks; DELETE FROM meta; COMMIT;",
            )?;
            conn.execute_batch(SCHEMA_SQL)?;
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('version', ?1)", [INDEX_VERSION])?;
        }
        None => {
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('version', ?1)", [INDEX_VERSION])?;
        }
    }
    // FTS5 merges index segments once `automerge` of them pile up on a level (default 4).
    // Merging at 8 cut the background indexer's CPU by ~7% at the same search latency
    // (BENCHMARKS 5). FTS5 keeps the setting in the index, so it is written only when missing
    // (indexes made before): writing it takes the write lock, which a search opening the index
    // from the CLI must not wait for behind a busy indexer.
    let automerge: Option<i64> =
        conn.query_row("SELECT v FROM fts_config WHERE k = 'automerge'", [], |r| r.get(0)).optional()?;
    if automerge != Some(AUTOMERGE) {
        conn.execute(&format!("INSERT INTO fts(fts, rank) VALUES ('automerge', {AUTOMERGE})"), [])?;
    }
    restrict_mode(path);
    Ok(conn)
}

/// Moves a damaged index file aside (`search.db.damaged`), with its WAL, so a fresh one can be
/// built; the events it was derived from are untouched.
fn move_aside(path: &Path) {
    let aside = path.with_extension("db.damaged");
    let _ = std::fs::remove_file(&aside);
    if let Err(e) = std::fs::rename(path, &aside) {
        tracing::warn!("moving the damaged search index aside: {e}");
        let _ = std::fs::remove_file(path);
    }
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
}

/// The stored state of the index.
#[derive(Clone, Debug, Default)]
struct Meta {
    seq: u64,
    hash: String,
    tmax: i64,
    skew: i64,
    gateway_id: String,
}

fn read_meta(conn: &Connection) -> rusqlite::Result<Meta> {
    let get = |k: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0)).optional()
    };
    let num = |k: &str| -> rusqlite::Result<i64> { Ok(get(k)?.and_then(|v| v.parse().ok()).unwrap_or(0)) };
    Ok(Meta {
        seq: num("seq")?.max(0) as u64,
        hash: get("hash")?.unwrap_or_default(),
        tmax: num("tmax")?,
        skew: num("skew_ms")?,
        gateway_id: get("gateway_id")?.unwrap_or_default(),
    })
}

fn write_meta(conn: &Connection, m: &Meta) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
    st.execute(params!["seq", m.seq.to_string()])?;
    st.execute(params!["hash", m.hash])?;
    st.execute(params!["tmax", m.tmax.to_string()])?;
    st.execute(params!["skew_ms", m.skew.to_string()])?;
    st.execute(params!["gateway_id", m.gateway_id])?;
    Ok(())
}

/// The indexed high-water `seq` and the largest time skew, read from an index connection.
pub(crate) fn indexed(conn: &Connection) -> rusqlite::Result<(u64, i64)> {
    let m = read_meta(conn)?;
    Ok((m.seq, m.skew))
}

impl Index {
    /// Opens the index of `data_dir`, creating it (empty) when missing and rebuilding it when
    /// damaged or of another format. The audit store must exist.
    pub fn open(data_dir: &Path) -> Result<Index, IndexError> {
        let events = Store::open_reader(data_dir)?;
        let path = data_dir.join(INDEX_FILE);
        let conn = match create(&path) {
            Ok(c) => c,
            Err(e) if is_damage(&e) => {
                tracing::warn!("the search index {} is damaged ({e}); rebuilding it from the events", path.display());
                move_aside(&path);
                create(&path).map_err(sql(&path))?
            }
            Err(e) => return Err(sql(&path)(e)),
        };
        Ok(Index { conn, path, events, replaced: 0, tags: TagCache::default() })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last indexed `seq` and the events' head.
    pub fn progress(&self) -> Result<Progress, IndexError> {
        let m = read_meta(&self.conn).map_err(sql(&self.path))?;
        Ok(Progress { seq: m.seq, head: self.events.head()?.seq, replaced: self.replaced })
    }

    /// Empties the index so that it is rebuilt from the first event.
    pub fn reset(&mut self) -> Result<(), IndexError> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql(&path))?;
        clear(&tx).map_err(sql(&path))?;
        tx.commit().map_err(sql(&path))
    }

    /// Merges the full-text index's segments into one (after a bulk build; queries read fewer
    /// segments afterwards).
    pub fn optimize(&self) -> Result<(), IndexError> {
        self.conn.execute("INSERT INTO fts(fts) VALUES ('optimize')", []).map_err(sql(&self.path))?;
        Ok(())
    }

    /// Indexes events until the index reaches the head it finds (or `max` events, when given),
    /// one transaction per [`BATCH`]. `progress` is called after each batch. A damaged index
    /// file is moved aside and rebuilt.
    pub fn catch_up(&mut self, max: Option<u64>, mut progress: impl FnMut(Progress)) -> Result<Progress, IndexError> {
        let mut done = 0u64;
        loop {
            let batch = match max {
                Some(m) if done >= m => return self.progress(),
                Some(m) => BATCH.min((m - done) as usize),
                None => BATCH,
            };
            // Nothing new (the usual case for an idle indexer): no write transaction at all.
            let head = self.events.head()?;
            let indexed = read_meta(&self.conn);
            if let Ok(m) = &indexed
                && m.seq == head.seq
                && m.hash == hex(&head.hash)
            {
                return Ok(Progress { seq: m.seq, head: head.seq, replaced: self.replaced });
            }
            let step = match self.step(batch) {
                Err(e) if e.is_damage() => {
                    tracing::warn!("the search index is damaged ({e}); rebuilding it from the events");
                    let path = self.path.clone();
                    // Close our handle on the damaged file before replacing it.
                    let old = std::mem::replace(&mut self.conn, Connection::open_in_memory().map_err(sql(&path))?);
                    drop(old);
                    move_aside(&path);
                    self.conn = create(&path).map_err(sql(&path))?;
                    self.replaced += 1;
                    continue;
                }
                other => other?,
            };
            done += step.0 as u64;
            progress(step.1);
            if step.0 < batch {
                return Ok(step.1);
            }
        }
    }

    /// One batch: returns how many events it indexed and the progress after it.
    fn step(&mut self, batch: usize) -> Result<(usize, Progress), IndexError> {
        let path = self.path.clone();
        let err = sql(&path);
        let events = self.events.conn();
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&err)?;
        let mut m = read_meta(&tx).map_err(&err)?;
        let store_err =
            |source| IndexError::Store(StoreError::Sqlite { path: self.events.path().to_path_buf(), source });
        // One read transaction for the whole batch: without it every content lookup began and
        // ended its own, taking and releasing SQLite's shared-memory locks (fcntl) each time,
        // ~15% of indexing.
        let _snapshot = events.unchecked_transaction().map_err(store_err)?;
        // The events the index was built from must still be there: a replaced or rewound
        // audit.db (restored from a backup, another data dir copied in) means starting over.
        let gateway_id: String = events
            .query_row("SELECT value FROM meta WHERE key = 'gateway_id'", [], |r| r.get(0))
            .optional()
            .map_err(store_err)?
            .unwrap_or_default();
        let still_there = m.seq == 0
            || events
                .query_row("SELECT hash FROM events WHERE seq = ?1", [m.seq as i64], |r| r.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(store_err)?
                .is_some_and(|h| hex(&h) == m.hash);
        if !still_there || (m.seq > 0 && m.gateway_id != gateway_id) {
            tracing::warn!(
                indexed = m.seq,
                "the search index does not match the audit store (replaced or rewound); rebuilding it"
            );
            clear(&tx).map_err(&err)?;
            m = Meta::default();
        }
        m.gateway_id = gateway_id;
        let mut rows = Vec::with_capacity(batch);
        {
            let mut st = events
                .prepare_cached("SELECT seq, hash, canonical FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(store_err)?;
            let mut q = st.query(params![m.seq as i64, batch as i64]).map_err(store_err)?;
            while let Some(r) = q.next().map_err(store_err)? {
                let seq: i64 = r.get(0).map_err(store_err)?;
                let hash: Vec<u8> = r.get(1).map_err(store_err)?;
                let canonical: Vec<u8> = r.get(2).map_err(store_err)?;
                rows.push((seq as u64, hash, canonical));
            }
        }
        let n = rows.len();
        {
            let mut ins = tx.prepare_cached("INSERT INTO fts(rowid, body) VALUES (?1, ?2)").map_err(&err)?;
            let mut blk =
                tx.prepare_cached("INSERT OR REPLACE INTO blocks(block, tmax) VALUES (?1, ?2)").map_err(&err)?;
            let mut content =
                events.prepare_cached("SELECT codec, data FROM content WHERE id = ?1").map_err(store_err)?;
            let mut block: Option<u64> = None;
            let mut text = String::with_capacity(4096);
            for (seq, hash, canonical) in &rows {
                let b = (seq - 1) / BLOCK;
                if let Some(prev) = block
                    && prev != b
                {
                    blk.execute(params![prev as i64, m.tmax]).map_err(&err)?;
                }
                block = Some(b);
                text.clear();
                match serde_json::from_slice::<Doc>(canonical) {
                    Ok(e) => {
                        let t = time_ms(&e.time);
                        if t > 0 {
                            m.skew = m.skew.max(m.tmax - t);
                            m.tmax = m.tmax.max(t);
                        }
                        document(&e, &mut content, &mut self.tags, &mut text);
                    }
                    Err(e) => tracing::warn!(seq, "search index: the stored event is not readable ({e})"),
                }
                ins.execute(params![*seq as i64, text]).map_err(&err)?;
                m.seq = *seq;
                m.hash = hex(hash);
            }
            if let Some(b) = block {
                blk.execute(params![b as i64, m.tmax]).map_err(&err)?;
            }
        }
        write_meta(&tx, &m).map_err(&err)?;
        tx.commit().map_err(&err)?;
        let head = if n < batch { m.seq.max(self.events.head()?.seq) } else { self.events.head()?.seq };
        Ok((n, Progress { seq: m.seq, head, replaced: self.replaced }))
    }
}

fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("INSERT INTO fts(fts) VALUES ('delete-all')", [])?;
    conn.execute("DELETE FROM blocks", [])?;
    conn.execute("DELETE FROM meta WHERE key != 'version'", [])?;
    Ok(())
}

/// What the index reads of a stored event. Deserialising a whole `Event` (every id, hash and
/// section as owned values) was about a quarter of indexing; the fields left out are skipped
/// without being built.
#[derive(serde::Deserialize)]
struct Doc {
    time: String,
    event_type: String,
    outcome: Outcome,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    actor: Option<DocActor>,
    #[serde(default)]
    gen_ai: Option<DocGenAi>,
    #[serde(default)]
    resource: Option<DocResource>,
    #[serde(default)]
    policy: Option<DocPolicy>,
    #[serde(default)]
    masking: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    details: Option<Value>,
    #[serde(default)]
    content: Option<DocContent>,
}

#[derive(serde::Deserialize)]
struct DocActor {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    display: Option<String>,
}

#[derive(serde::Deserialize)]
struct DocGenAi {
    #[serde(rename = "request.model", default)]
    request_model: Option<String>,
}

#[derive(serde::Deserialize)]
struct DocResource {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct DocPolicy {
    decision: String,
}

#[derive(serde::Deserialize)]
struct DocContent {
    #[serde(default)]
    input_ref: Option<String>,
    #[serde(default)]
    output_ref: Option<String>,
}

/// The text indexed for one event: its tags, key fields, and the text of its recorded bodies.
fn document(e: &Doc, content: &mut rusqlite::CachedStatement<'_>, cache: &mut TagCache, out: &mut String) {
    let mut tags = String::with_capacity(256);
    let mut push_tag = |kind: char, value: &str| {
        tags.push(' ');
        tags.push_str(cache.get(kind, value));
    };
    let model = model_of(
        e.gen_ai.as_ref().and_then(|g| g.request_model.as_deref()),
        e.resource.as_ref().map(|r| (r.kind.as_str(), r.id.as_deref())),
    );
    if let Some(a) = &e.actor {
        if let Some(s) = &a.subject {
            push_tag(kind::SUBJECT, s);
            push_text(out, s);
        }
        for g in &a.groups {
            push_tag(kind::GROUP, g);
        }
        if let Some(d) = &a.display {
            push_text(out, d);
        }
    }
    if let Some(m) = model {
        push_tag(kind::MODEL, m);
        push_text(out, m);
    }
    if let Some(a) = &e.action {
        push_tag(kind::ACTION, a);
        push_tag(kind::ACTION_FAMILY, family(a));
        push_text(out, a);
    }
    push_tag(kind::EVENT_TYPE, &e.event_type);
    push_tag(kind::EVENT_FAMILY, family(&e.event_type));
    push_text(out, &e.event_type);
    push_tag(kind::OUTCOME, e.outcome.as_str());
    if let Some(p) = &e.policy {
        push_tag(kind::DECISION, &p.decision);
    }
    if let Some(m) = &e.masking {
        for t in masking_types(m) {
            push_tag(kind::MASKING, &t);
        }
    }
    if let Some(r) = &e.resource
        && let Some(id) = &r.id
        && model != Some(id.as_str())
    {
        push_text(out, id);
    }
    for s in [&e.reason, &e.end].into_iter().flatten() {
        push_text(out, s);
    }
    if let Some(d) = &e.details {
        let mut budget = 4096usize;
        strings(d, &mut |s| {
            if budget > 0 {
                budget = budget.saturating_sub(s.len());
                push_text(out, s);
            }
        });
    }
    out.push_str(&tags);
    out.push('\n');
    if let Some(c) = &e.content {
        for (reference, input) in [(&c.input_ref, true), (&c.output_ref, false)] {
            let Some(id) =
                reference.as_deref().and_then(|r| r.strip_prefix("content:")).and_then(|s| s.parse::<i64>().ok())
            else {
                continue;
            };
            let body = content
                .query_row([id], |r| {
                    let codec: String = r.get(0)?;
                    let data = r.get_ref(1)?;
                    Ok(crate::content::decode(&codec, data.as_blob().unwrap_or_default()))
                })
                .optional();
            if let Ok(Some(Some(body))) = body {
                let start = out.len();
                extract_text(&body, input, out, MAX_TEXT);
                if out.len() > start {
                    out.push('\n');
                }
            }
        }
    }
}

fn push_text(out: &mut String, s: &str) {
    out.push(' ');
    out.push_str(s);
}

/// Calls `f` on every string inside `v`.
fn strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, f)),
        Value::Object(o) => o.values().for_each(|x| strings(x, f)),
        _ => {}
    }
}

/// JSON keys whose string values are prompt or response text, in every flavor's shapes
/// (OpenAI chat, completions, responses and embeddings, Ollama, TGI, llama.cpp, rerank).
const TEXT_KEYS: [&str; 17] = [
    "content",
    "text",
    "prompt",
    "input",
    "inputs",
    "system",
    "instructions",
    "response",
    "generated_text",
    "query",
    "documents",
    "output_text",
    "suffix",
    "text_input",
    "reasoning_content",
    "thinking",
    "arguments",
];

/// Keys whose top-level string values are not worth indexing (ids, object kinds, encodings).
const SKIP_KEYS: [&str; 6] = ["id", "object", "encoding_format", "system_fingerprint", "created", "image"];

/// Appends the human-readable text of a recorded body to `out` (at most `cap` bytes): the
/// prompt and message contents of a JSON request (and, for requests, its other top-level
/// strings, such as an adapter's name and path), the answer of a JSON response, the deltas of
/// an SSE or NDJSON stream joined as the caller read them, or the body itself when it is
/// plain UTF-8 text. Binary bodies add nothing.
pub fn extract_text(body: &[u8], request: bool, out: &mut String, cap: usize) {
    let limit = out.len() + cap;
    let trimmed = body.trim_ascii_start();
    let first = trimmed.first().copied();
    if matches!(first, Some(b'{' | b'[')) {
        if let Some((pre, text)) = walk_json(trimmed, true, request, cap) {
            push_capped(out, &pre, limit);
            push_capped(out, &text, limit);
            return;
        }
        // Several JSON documents, one per line: NDJSON.
        let mut any = false;
        for line in trimmed.split(|b| *b == b'\n') {
            if let Some((_, text)) = walk_json(line.trim_ascii(), false, false, cap) {
                any = true;
                push_capped(out, &text, limit);
            }
            if out.len() >= limit {
                break;
            }
        }
        if any {
            return;
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        // Possibly cut at the recording cap mid-character.
        if let Err(e) = std::str::from_utf8(body)
            && e.error_len().is_none()
            && let Ok(t) = std::str::from_utf8(&body[..e.valid_up_to()])
        {
            plain_or_sse(t, out, limit);
        }
        return;
    };
    plain_or_sse(text, out, limit);
}

fn plain_or_sse(text: &str, out: &mut String, limit: usize) {
    if text.starts_with("data:") || text.contains("\ndata:") || text.starts_with("event:") {
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" || data.is_empty() {
                continue;
            }
            match walk_json(data.as_bytes(), false, false, limit.saturating_sub(out.len())) {
                Some((_, t)) => push_capped(out, &t, limit),
                None => push_capped(out, data, limit),
            }
            if out.len() >= limit {
                break;
            }
        }
        return;
    }
    if text.chars().take(512).any(|c| c.is_control() && !c.is_whitespace()) {
        return;
    }
    push_capped(out, text, limit);
}

/// Walks one JSON document without building it (no `Value`, no maps): the strings under text
/// keys, and for a request (`top`) also the top level's other strings, which name adapters,
/// files and the like. Returns (top-level strings, text), or `None` when `json` is not exactly
/// one document. `separate` puts a space before each piece (whole bodies); stream deltas are
/// joined as they come.
fn walk_json(json: &[u8], separate: bool, top: bool, cap: usize) -> Option<(String, String)> {
    use serde::de::DeserializeSeed;
    let mut pre = String::new();
    let mut text = String::new();
    let mut de = serde_json::Deserializer::from_slice(json);
    let node = Node { text: &mut text, pre: top.then_some(&mut pre), separate, is_text: false, to_pre: false, cap };
    node.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some((pre, text))
}

/// One JSON value in [`walk_json`]: `is_text` when its key is a text key (arrays pass their
/// key on), `to_pre` when it is a top-level member of a request whose string counts too.
struct Node<'a> {
    text: &'a mut String,
    pre: Option<&'a mut String>,
    separate: bool,
    is_text: bool,
    to_pre: bool,
    cap: usize,
}

impl Node<'_> {
    fn string(self, s: &str) {
        if self.to_pre
            && let Some(pre) = self.pre
        {
            pre.push(' ');
            pre.push_str(s);
        }
        if self.is_text && self.text.len() < self.cap {
            if self.separate {
                self.text.push(' ');
            }
            self.text.push_str(s);
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.string(s);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Node { text, separate, is_text, cap, .. } = self;
        while seq
            .next_element_seed(Node { text: &mut *text, pre: None, separate, is_text, to_pre: false, cap })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Only the top level's own members go to `pre`, not those of objects nested in them.
        let Node { text, pre, separate, cap, to_pre, .. } = self;
        let mut pre = if to_pre { None } else { pre };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let k: &str = &key;
            let is_text = TEXT_KEYS.contains(&k);
            let to_pre = pre.is_some() && !is_text && !SKIP_KEYS.contains(&k);
            let child_pre = if to_pre { pre.as_deref_mut() } else { None };
            map.next_value_seed(Node { text: &mut *text, pre: child_pre, separate, is_text, to_pre, cap })?;
        }
        Ok(())
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s.to_owned()))
    }
}

fn push_capped(out: &mut String, s: &str, limit: usize) {
    let room = limit.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
    } else {
        let mut end = room;
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&s[..end]);
    }
}

/// Owner-only permissions on the index file (it holds prompt words).
fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// How often an idle indexer looks for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct State {
    seq: u64,
    generation: u64,
    want: u64,
    stop: bool,
    error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The index is behind the events and did not catch up in time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the search index is behind the audit log (indexed up to seq {indexed}, the log is at seq {wanted}){}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
pub struct Lagging {
    /// Indexed up to this seq.
    pub indexed: u64,
    /// The seq waited for.
    pub wanted: u64,
    /// The indexer's last error, if it is failing.
    pub error: Option<String>,
}

/// The gateway's background indexer: a thread with its own connections that tails the events
/// and keeps the index current, so that searches find it caught up.
#[derive(Debug)]
pub struct Indexer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Indexer {
    /// Starts the indexer thread on `data_dir` (whose audit store must exist). `on_demand`: it
    /// indexes only when a search asks for it ([`Indexer::wait_for`]), not as events arrive,
    /// so a gateway under load spends no CPU on indexing until someone searches.
    pub fn start(data_dir: &Path, on_demand: bool) -> std::io::Result<Arc<Indexer>> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), cv: Condvar::new() });
        let dir = data_dir.to_path_buf();
        let s = shared.clone();
        let handle =
            std::thread::Builder::new().name("audit-indexer".into()).spawn(move || run(&dir, &s, on_demand))?;
        Ok(Arc::new(Indexer { shared, thread: Mutex::new(Some(handle)) }))
    }

    /// The last indexed seq.
    pub fn indexed(&self) -> u64 {
        self.shared.lock().seq
    }

    /// Changes whenever the index file is replaced (a damaged one rebuilt): connections opened
    /// before read the old file and must be reopened.
    pub fn generation(&self) -> u64 {
        self.shared.lock().generation
    }

    /// Asks the indexer to reach `seq` and waits up to `timeout` for it.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> Result<u64, Lagging> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        if st.seq >= seq {
            return Ok(st.seq);
        }
        st.want = st.want.max(seq);
        self.shared.cv.notify_all();
        loop {
            if st.seq >= seq {
                return Ok(st.seq);
            }
            let now = Instant::now();
            if now >= deadline || st.stop {
                return Err(Lagging { indexed: st.seq, wanted: seq, error: st.error.clone() });
            }
            st = self.shared.cv.wait_timeout(st, deadline - now).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Stops the thread (after its current batch) and waits for it.
    pub fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(dir: &Path, shared: &Shared, on_demand: bool) {
    let mut index: Option<Index> = None;
    // Replacements by earlier handles (an index reopened after an error).
    let mut base = 0u64;
    loop {
        {
            let mut st = shared.lock();
            // On demand: sleep until a search wants more than is indexed.
            while on_demand && !st.stop && st.want <= st.seq {
                st = shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.stop {
                return;
            }
        }
        if index.is_none() {
            match Index::open(dir) {
                Ok(i) => {
                    // A fresh handle may have replaced the file too: readers reopen.
                    base += 1;
                    shared.lock().generation = base;
                    index = Some(i);
                }
                Err(e) => {
                    tracing::warn!("opening the search index: {e}");
                    fail(shared, e.to_string(), Duration::from_secs(2));
                    continue;
                }
            }
        }
        let Some(ix) = index.as_mut() else { continue };
        let result = ix.catch_up(None, |p| {
            let mut st = shared.lock();
            st.seq = p.seq;
            st.generation = base + p.replaced;
            st.error = None;
            drop(st);
            shared.cv.notify_all();
        });
        match result {
            Ok(p) => {
                let mut st = shared.lock();
                st.seq = p.seq;
                st.generation = base + p.replaced;
                st.error = None;
                shared.cv.notify_all();
                if st.stop {
                    return;
                }
                if st.want <= st.seq {
                    let _ = shared.cv.wait_timeout(st, POLL_INTERVAL);
                }
            }
            Err(e) => {
                tracing::warn!("search indexing failed: {e}");
                if let Some(i) = index.take() {
                    base += i.replaced;
                }
                fail(shared, e.to_string(), Duration::from_secs(1));
            }
        }
    }
}

fn fail(shared: &Shared, error: String, pause: Duration) {
    let mut st = shared.lock();
    st.error = Some(error);
    shared.cv.notify_all();
    if !st.stop {
        let _ = shared.cv.wait_timeout(st, pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automerge_is_set_once_and_reopening_writes_nothing() {
        let dir = testkit::temp_dir("index-automerge");
        let path = dir.join("search.db");
        drop(create(&path).unwrap());
        let reader = Connection::open(&path).unwrap();
        let setting = |c: &Connection| -> i64 {
            c.query_row("SELECT v FROM fts_config WHERE k = 'automerge'", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(setting(&reader), AUTOMERGE);
        let version = |c: &Connection| -> i64 { c.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap() };
        let before = version(&reader);
        drop(create(&path).unwrap());
        assert_eq!(version(&reader), before, "a second open must not write to the index");
        // An index made with FTS5's default gets the setting on its next open.
        reader.execute("INSERT INTO fts(fts, rank) VALUES ('automerge', 4)", []).unwrap();
        drop(create(&path).unwrap());
        assert_eq!(setting(&reader), AUTOMERGE);
        assert_ne!(version(&reader), before);
    }

    fn text(body: &str, request: bool) -> String {
        let mut s = String::new();
        extract_text(body.as_bytes(), request, &mut s, MAX_TEXT);
        s
    }

    #[test]
    fn walking_equals_extracting_from_a_parsed_value() {
        // The extraction as it was, over a parsed `Value`: the reference the walk must match.
        fn collect(v: &Value, separate: bool, key: &str, out: &mut String) {
            match v {
                Value::String(s) if TEXT_KEYS.contains(&key) => {
                    if separate {
                        out.push(' ');
                    }
                    out.push_str(s);
                }
                Value::Array(a) => a.iter().for_each(|x| collect(x, separate, key, out)),
                Value::Object(o) => o.iter().for_each(|(k, x)| collect(x, separate, k, out)),
                _ => {}
            }
        }
        fn reference(body: &str, request: bool) -> String {
            let v: Value = serde_json::from_str(body).unwrap();
            let mut out = String::new();
            if let (true, Value::Object(top)) = (request, &v) {
                for (k, x) in top {
                    if let Value::String(s) = x
                        && !TEXT_KEYS.contains(&k.as_str())
                        && !SKIP_KEYS.contains(&k.as_str())
                    {
                        out.push(' ');
                        out.push_str(s);
                    }
                }
            }
            collect(&v, true, "", &mut out);
            out
        }
        let bodies = [
            r#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"project aurora"}]}],"stream":true}"#,
            r#"{"model":"m","nested":{"name":"not top","content":"deep"},"list":["a","b"],"prompt":["p1","p2"],"lora_name":"x","id":"skip me"}"#,
            r#"{"id":"chatcmpl-1","choices":[{"message":{"role":"assistant","content":"Hello \"there\"\n","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]}}],"usage":{"prompt_tokens":3}}"#,
            r#"[{"input":"first"},{"input":["second","third"]},"loose"]"#,
            r#"{"esc\u0061ped":"key","input":"x\u00e9y"}"#,
            r#"{}"#,
        ];
        // The same words; their order follows the document in the walk, and the reference's
        // follows serde_json's map (sorted unless a dependency turns on `preserve_order`).
        let words = |s: &str| {
            let mut w: Vec<String> = s.split_whitespace().map(str::to_string).collect();
            w.sort();
            w
        };
        for b in bodies {
            for request in [true, false] {
                let (pre, text) = walk_json(b.as_bytes(), true, request, MAX_TEXT).unwrap();
                let walked = format!("{pre}{text}");
                let want = reference(b, request);
                assert_eq!(words(&walked), words(&want), "{b} (request: {request})");
                assert_eq!(walked.len(), want.len());
            }
        }
        assert!(walk_json(b"{\"a\":1}\n{\"b\":2}", true, true, MAX_TEXT).is_none());
        assert!(walk_json(b"{\"a\":", true, true, MAX_TEXT).is_none());
    }

    #[test]
    fn extracts_prompts_and_answers() {
        let req = r#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"project aurora"}]}],"stream":true}"#;
        let t = text(req, true);
        assert!(t.contains("be brief") && t.contains("project aurora") && t.contains('m'), "{t}");
        assert!(!t.contains("user") && !t.contains("system "), "{t}");
        let res = r#"{"id":"chatcmpl-123","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"Hello there"}}]}"#;
        let t = text(res, false);
        assert_eq!(t.trim(), "Hello there");
        let sse = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo world\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(text(sse, false), "Hello world");
        let nd = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n{\"message\":{\"content\":\" you\"},\"done\":true}\n";
        assert_eq!(text(nd, false), "Hi you");
        let adapter = r#"{"lora_name":"sql-adapter","lora_path":"/adapters/sql"}"#;
        let t = text(adapter, true);
        assert!(t.contains("sql-adapter") && t.contains("/adapters/sql"), "{t}");
        assert_eq!(text("plain words here", true), "plain words here");
        let mut s = String::new();
        extract_text(&[0xff, 0x00, 0x12], true, &mut s, MAX_TEXT);
        assert!(s.is_empty());
    }

    #[test]
    fn text_is_capped_on_a_char_boundary() {
        let mut s = String::new();
        extract_text("ééééé".as_bytes(), true, &mut s, 5);
        assert_eq!(s, "éé");
    }

    #[test]
    fn masking_types_of_either_shape() {
        let m = serde_json::json!({"request": {"EMAIL": 2, "PHONE": 1}, "response": [{"type": "IBAN"}]});
        assert_eq!(masking_types(&m), vec!["EMAIL", "IBAN", "PHONE"]);
    }

    #[test]
    fn the_light_view_reads_what_the_event_holds() {
        use crate::event::{Actor, Content, Event, EventType, GenAi, Policy, Resource};
        use crate::store::IndexColumns;
        let mut e = Event::new(EventType::PolicyDenied, Outcome::Denied).actor(std::sync::Arc::new(Actor {
            subject: Some("al\"ice".into()),
            groups: vec!["ops".into(), "users".into()],
            display: Some("Alice\nA.".into()),
            ..Actor::default()
        }));
        e.action = Some("inference.chat".into());
        e.gen_ai = Some(GenAi { request_model: Some("llama-3".into()), ..GenAi::default() });
        e.resource = Some(Resource { id: Some("llama-3".into()), kind: "model".into(), upstream: Some("u".into()) });
        e.policy = Some(Policy { decision: "deny".into(), ..Policy::default() });
        e.masking = Some(serde_json::json!({"request": {"EMAIL": 1}}));
        e.reason = Some("no rule".into());
        e.end = Some("denied".into());
        e.details = Some(serde_json::json!({"detected": ["EMAIL"]}));
        e.content = Some(Content {
            input_ref: Some("content:7".into()),
            output_ref: Some("content:8".into()),
            ..Content::default()
        });
        let d: Doc = serde_json::from_slice(&e.canonical_bytes()).unwrap();
        let cols = IndexColumns::of(&e);
        assert_eq!(time_ms(&d.time), cols.time_ms);
        assert!(cols.time_ms > 0);
        let model = model_of(
            d.gen_ai.as_ref().and_then(|g| g.request_model.as_deref()),
            d.resource.as_ref().map(|r| (r.kind.as_str(), r.id.as_deref())),
        );
        assert_eq!(model, cols.model.as_deref());
        let a = d.actor.as_ref().unwrap();
        assert_eq!(a.subject, cols.subject);
        assert_eq!(a.groups, ["ops", "users"]);
        assert_eq!(a.display.as_deref(), Some("Alice\nA."));
        assert_eq!((d.event_type.as_str(), d.outcome), ("policy.denied", Outcome::Denied));
        assert_eq!(d.action.as_deref(), e.action.as_deref());
        assert_eq!(d.policy.map(|p| p.decision).as_deref(), Some("deny"));
        assert_eq!(d.masking, e.masking);
        assert_eq!((d.reason, d.end), (e.reason.clone(), e.end.clone()));
        assert_eq!(d.details, e.details);
        let c = d.content.unwrap();
        assert_eq!((c.input_ref.as_deref(), c.output_ref.as_deref()), (Some("content:7"), Some("content:8")));
        // Without gen_ai the model comes from a model resource, and only from one.
        e.gen_ai = None;
        let d: Doc = serde_json::from_slice(&e.canonical_bytes()).unwrap();
        let r = d.resource.as_ref().map(|r| (r.kind.as_str(), r.id.as_deref()));
        assert_eq!(model_of(None, r), Some("llama-3"));
        assert_eq!(model_of(None, Some(("token", Some("k1")))), None);
    }

    #[test]
    fn tags_are_distinct_per_kind() {
        assert_ne!(tag(kind::SUBJECT, "alice"), tag(kind::GROUP, "alice"));
        assert_eq!(tag(kind::SUBJECT, "alice").len(), 19);
    }
}
