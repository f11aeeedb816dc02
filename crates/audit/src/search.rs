//! Search and reconstruction over the audit trail (SPEC sections 6 and 7): `audit search|show|
//! tail` and `GET /admin/v1/events`, `GET /admin/v1/exchanges/{request_id}`.
//!
//! A query picks its candidates from the search index (`index.rs`) and *re-checks every filter
//! but the full text on the hashed bytes it returns*: each result is the event's `canonical`
//! column, re-parsed, with its stored `hash` added, exactly what `audit verify` checks. The index
//! narrows, never decides.
//!
//! Plans (results in chain order, newest first unless `order=asc`):
//! - a time window becomes a `seq` range through the index's `blocks` (largest time seen up to
//!   each block of seqs, and the largest backwards time skew seen);
//! - with full text or any of actor, group, model, action, outcome, decision, event type or
//!   masking type: one FTS5 `MATCH` of the words and the filters' tag tokens over that `rowid`
//!   range, walked newest first, so the intersection is done inside the index;
//! - with only a request id: the events table's `request_id` index;
//! - with only a time window: the events table itself, by `seq`.
//!
//! Pagination is by position (`seq`), carried in an opaque cursor bound by HMAC to the caller,
//! the filters and a per-process key.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::canonical::{GENESIS, chain_hash, hex};
use crate::event::{Actor, Event, EventType, Outcome, Resource};
use crate::index::{self, BLOCK, INDEX_FILE, Indexer, Lagging, kind, tag};
use crate::store::{IndexColumns, Store, StoreError};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1_000;
/// Slack added to the largest observed time skew when bounding `until` by seq.
const SKEW_MARGIN_MS: i64 = 60_000;
/// How long a gateway search waits for the indexer to reach the log's head.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// A search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The request is malformed (a filter, the page size, the order).
    #[error("{0}")]
    Invalid(String),
    /// The cursor is not valid for this caller (another caller's, altered, or from another run).
    #[error("{0}")]
    Cursor(String),
    /// The index is behind the log.
    #[error(transparent)]
    Lagging(#[from] Lagging),
    /// The index is not there yet.
    #[error("the search index has not been built yet")]
    NoIndex,
    /// SQLite refused.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The audit store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index could not be brought up to date.
    #[error(transparent)]
    Index(#[from] index::IndexError),
}

/// Result order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest (highest seq) first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl Order {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Desc => "desc",
            Order::Asc => "asc",
        }
    }
}

/// The filters of a search, with times resolved to Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Events at or after this time.
    pub since_ms: i64,
    /// Events before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// `actor.subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// One of `actor.groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `gen_ai.request.model`, else a model resource's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// An action (`inference.chat`) or a family (`inference`, `inference.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `outcome`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `policy.decision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// `request_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// An event type (`inference.request`) or a family (`inference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// A masking entity type (`EMAIL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<String>,
    /// Words that must all occur in the recorded prompt or response text or the key fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Names of the query parameters (API) and flags (CLI) of a search.
pub const PARAMS: [&str; 15] = [
    "since",
    "until",
    "actor",
    "group",
    "model",
    "action",
    "outcome",
    "decision",
    "request_id",
    "event_type",
    "masking",
    "text",
    "limit",
    "order",
    "cursor",
];

/// A search as the API and the CLI receive it: unparsed strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// RFC 3339, or a duration before now (`24h`, `7d`). Required.
    pub since: Option<String>,
    /// RFC 3339, `now`, or a duration before now.
    pub until: Option<String>,
    /// See [`Filter`].
    pub actor: Option<String>,
    /// See [`Filter`].
    pub group: Option<String>,
    /// See [`Filter`].
    pub model: Option<String>,
    /// See [`Filter`].
    pub action: Option<String>,
    /// See [`Filter`].
    pub outcome: Option<String>,
    /// See [`Filter`].
    pub decision: Option<String>,
    /// See [`Filter`].
    pub request_id: Option<String>,
    /// See [`Filter`].
    pub event_type: Option<String>,
    /// See [`Filter`].
    pub masking: Option<String>,
    /// See [`Filter`].
    pub text: Option<String>,
    /// Page size, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// A `next_cursor` from an earlier page: it carries the filters and the order.
    pub cursor: Option<String>,
}

impl Params {
    /// Builds parameters from `name=value` pairs; an unknown name is an error.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Params, SearchError> {
        let mut p = Params::default();
        for (k, v) in pairs {
            let v = (!v.is_empty()).then(|| v.to_string());
            let slot = match k {
                "since" => &mut p.since,
                "until" => &mut p.until,
                "actor" => &mut p.actor,
                "group" => &mut p.group,
                "model" => &mut p.model,
                "action" => &mut p.action,
                "outcome" => &mut p.outcome,
                "decision" => &mut p.decision,
                "request_id" => &mut p.request_id,
                "event_type" => &mut p.event_type,
                "masking" => &mut p.masking,
                "text" => &mut p.text,
                "limit" => &mut p.limit,
                "order" => &mut p.order,
                "cursor" => &mut p.cursor,
                other => {
                    return Err(SearchError::Invalid(format!(
                        "unknown parameter \"{other}\" (known: {})",
                        PARAMS.join(", ")
                    )));
                }
            };
            *slot = v;
        }
        Ok(p)
    }

    /// The `name=value` pairs that are set.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("since", &self.since),
            ("until", &self.until),
            ("actor", &self.actor),
            ("group", &self.group),
            ("model", &self.model),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("decision", &self.decision),
            ("request_id", &self.request_id),
            ("event_type", &self.event_type),
            ("masking", &self.masking),
            ("text", &self.text),
            ("limit", &self.limit),
            ("order", &self.order),
            ("cursor", &self.cursor),
        ];
        all.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))).collect()
    }

    /// The page size asked for.
    pub fn page_size(&self) -> Result<usize, SearchError> {
        match &self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) => match l.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(SearchError::Invalid(format!("limit must be a number from 1 to {MAX_LIMIT}, not \"{l}\""))),
            },
        }
    }

    /// Resolves times against `now` and checks every value.
    pub fn resolve(&self, now: SystemTime) -> Result<(Filter, Order), SearchError> {
        let invalid = SearchError::Invalid;
        let time = |name: &str, v: &str| {
            crate::export::parse_time(v, now).map(millis).map_err(|e| invalid(format!("{name}: {e}")))
        };
        let since = self
            .since
            .as_deref()
            .ok_or_else(|| invalid("since is required (RFC 3339, or a duration before now such as 24h or 7d)".into()))
            .and_then(|s| time("since", s))?;
        let until = self.until.as_deref().map(|u| time("until", u)).transpose()?;
        if let Some(u) = until
            && u <= since
        {
            return Err(invalid("until must be later than since".into()));
        }
        let one_of = |name: &str, v: &Option<String>, allowed: &[&str]| -> Result<Option<String>, SearchError> {
            match v {
                Some(x) if !allowed.contains(&x.as_str()) => {
                    Err(invalid(format!("{name} must be one of {}, not \"{x}\"", allowed.join(", "))))
                }
                other => Ok(other.clone()),
            }
        };
        let outcome = one_of("outcome", &self.outcome, &["success", "failure", "denied", "error", "unknown"])?;
        let decision = one_of("decision", &self.decision, &["allow", "deny", "require_approval"])?;
        let order = match self.order.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(o) => return Err(invalid(format!("order must be asc or desc, not \"{o}\""))),
        };
        if let Some(t) = &self.text
            && words(t).is_empty()
        {
            return Err(invalid(format!("text \"{t}\" has no words to search for")));
        }
        let filter = Filter {
            since_ms: since,
            until_ms: until,
            actor: self.actor.clone(),
            group: self.group.clone(),
            model: self.model.clone(),
            action: self.action.clone(),
            outcome,
            decision,
            request_id: self.request_id.clone(),
            event_type: self.event_type.clone(),
            masking: self.masking.clone(),
            text: self.text.clone(),
        };
        Ok((filter, order))
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    crate::export::format_time(t)
}

impl Filter {
    /// The filters as recorded in `audit.search` events (times in RFC 3339).
    pub fn to_details(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("since_ms");
            m.remove("until_ms");
            m.insert("since".into(), Value::String(rfc3339_ms(self.since_ms)));
            if let Some(u) = self.until_ms {
                m.insert("until".into(), Value::String(rfc3339_ms(u)));
            }
        }
        v
    }

    fn tags(&self) -> Vec<String> {
        let mut t = Vec::new();
        if let Some(a) = &self.actor {
            t.push(tag(kind::SUBJECT, a));
        }
        if let Some(g) = &self.group {
            t.push(tag(kind::GROUP, g));
        }
        if let Some(m) = &self.model {
            t.push(tag(kind::MODEL, m));
        }
        if let Some(a) = &self.action {
            match family_of(a) {
                Some(f) => t.push(tag(kind::ACTION_FAMILY, f)),
                None => t.push(tag(kind::ACTION, a)),
            }
        }
        if let Some(e) = &self.event_type {
            match family_of(e) {
                Some(f) => t.push(tag(kind::EVENT_FAMILY, f)),
                None => t.push(tag(kind::EVENT_TYPE, e)),
            }
        }
        if let Some(o) = &self.outcome {
            t.push(tag(kind::OUTCOME, o));
        }
        if let Some(d) = &self.decision {
            t.push(tag(kind::DECISION, d));
        }
        if let Some(m) = &self.masking {
            t.push(tag(kind::MASKING, m));
        }
        t
    }

    /// The FTS5 query: tags and quoted words, all required.
    fn match_expr(&self) -> Option<String> {
        let mut terms = self.tags();
        if let Some(text) = &self.text {
            for (w, prefix) in words(text) {
                terms.push(format!("\"{}\"{}", w.replace('"', "\"\""), if prefix { "*" } else { "" }));
            }
        }
        (!terms.is_empty()).then(|| terms.join(" AND "))
    }

    fn matches(&self, p: &Probe, exclude_session: Option<&str>) -> bool {
        let time_ms = humantime::parse_rfc3339(&p.time)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        if time_ms < self.since_ms || self.until_ms.is_some_and(|u| time_ms >= u) {
            return false;
        }
        let subject = p.actor.as_ref().and_then(|a| a.subject.as_deref());
        if self.actor.as_deref().is_some_and(|a| subject != Some(a)) {
            return false;
        }
        if let Some(g) = &self.group
            && !p.actor.as_ref().is_some_and(|a| a.groups.iter().any(|x| x == g))
        {
            return false;
        }
        if let Some(m) = &self.model {
            let model = p
                .gen_ai
                .as_ref()
                .and_then(|g| g.request_model.as_deref())
                .or_else(|| p.resource.as_ref().filter(|r| r.kind == "model").and_then(|r| r.id.as_deref()));
            if model != Some(m.as_str()) {
                return false;
            }
        }
        if let Some(a) = &self.action
            && !p.action.as_deref().is_some_and(|x| name_matches(a, x))
        {
            return false;
        }
        if let Some(e) = &self.event_type
            && !name_matches(e, &p.event_type)
        {
            return false;
        }
        if self.outcome.as_deref().is_some_and(|o| o != p.outcome) {
            return false;
        }
        if let Some(d) = &self.decision
            && p.policy.as_ref().map(|x| x.decision.as_str()) != Some(d.as_str())
        {
            return false;
        }
        if self.request_id.is_some() && p.request_id != self.request_id {
            return false;
        }
        if let Some(m) = &self.masking
            && !p.masking.as_ref().is_some_and(|x| index::masking_types(x).iter().any(|t| t == m))
        {
            return false;
        }
        if let Some(s) = exclude_session
            && p.event_type.starts_with("audit.")
            && p.details.as_ref().and_then(|d| d.get("session")).and_then(Value::as_str) == Some(s)
        {
            return false;
        }
        true
    }

    fn plan(&self) -> Plan {
        if self.text.is_some() || !self.tags().is_empty() {
            Plan::Fts
        } else if self.request_id.is_some() {
            Plan::Request
        } else {
            Plan::Scan
        }
    }
}

/// `inference`, `inference.*` → `Some("inference")`; `inference.chat` → `None`.
fn family_of(name: &str) -> Option<&str> {
    if let Some(f) = name.strip_suffix(".*") {
        return Some(f);
    }
    (!name.contains('.')).then_some(name)
}

fn name_matches(filter: &str, value: &str) -> bool {
    match family_of(filter) {
        Some(f) => value == f || value.strip_prefix(f).is_some_and(|rest| rest.starts_with('.')),
        None => value == filter,
    }
}

/// The words of a text query, as the index's tokenizer splits text (letters and digits; any
/// other character separates), each with whether it ended in `*` (a prefix query).
pub fn words(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push((std::mem::take(&mut cur), c == '*'));
        }
    }
    if !cur.is_empty() {
        out.push((cur, false));
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    Fts,
    Request,
    Scan,
}

/// The fields a filter reads, parsed from the hashed bytes.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    actor: Option<ProbeActor>,
    #[serde(default)]
    details: Option<Value>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(default)]
    gen_ai: Option<ProbeGenAi>,
    #[serde(default)]
    masking: Option<Value>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(default)]
    policy: Option<ProbePolicy>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    resource: Option<ProbeResource>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ProbeActor {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct ProbeGenAi {
    #[serde(rename = "request.model", default)]
    request_model: Option<String>,
}

#[derive(Deserialize)]
struct ProbeResource {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct ProbePolicy {
    decision: String,
}

/// One search result: an event as stored, `hash` included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Its position in the chain.
    pub seq: u64,
    /// The SPEC section 4 JSON: the hashed bytes with `"hash"` added.
    pub json: String,
}

impl Hit {
    /// The event as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// The hashed bytes with the stored hash added as the last member.
pub fn with_hash(canonical: &[u8], hash: &[u8]) -> String {
    let text = String::from_utf8_lossy(canonical);
    match text.strip_suffix('}') {
        Some(body) if body.len() > 1 => format!("{body},\"hash\":\"{}\"}}", hex(hash)),
        _ => {
            let mut v: Value = serde_json::from_slice(canonical).unwrap_or(Value::Null);
            v["hash"] = Value::String(hex(hash));
            v.to_string()
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The events, in the query's order.
    pub events: Vec<Hit>,
    /// Whether more events match after this page.
    pub more: bool,
    /// Where the next page starts (exclusive): after the last event returned when `more`;
    /// for an oldest-first query without `until`, also when the page is the last one so far,
    /// so that it can be followed as new events arrive.
    pub position: Option<u64>,
    /// The index's high-water seq the query saw.
    pub indexed: u64,
}

/// A query: filters, order, where to start and how many.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// The filters.
    pub filter: &'a Filter,
    /// The order.
    pub order: Order,
    /// Start after this seq (`asc`) or before it (`desc`).
    pub position: Option<u64>,
    /// Page size.
    pub limit: usize,
    /// Leave out the `audit.search` events this search session recorded itself (so that a
    /// followed search does not feed on its own records).
    pub exclude_session: Option<&'a str>,
}

/// Read connections to a data dir's audit store and search index.
#[derive(Debug)]
pub struct Searcher {
    dir: PathBuf,
    events: Store,
    index: Option<Connection>,
}

impl Searcher {
    /// Opens read connections on `data_dir` (the index's is opened when first needed).
    pub fn open(data_dir: &Path) -> Result<Searcher, SearchError> {
        Ok(Searcher { dir: data_dir.to_path_buf(), events: Store::open_reader(data_dir)?, index: None })
    }

    /// The events' head seq.
    pub fn head(&self) -> Result<u64, SearchError> {
        Ok(self.events.head()?.seq)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn open_index(&mut self) -> Result<(), SearchError> {
        if self.index.is_none() {
            let path = self.index_path();
            if !path.exists() {
                return Err(SearchError::NoIndex);
            }
            let conn = index::open_conn(&path, false).map_err(|source| SearchError::Sqlite { path, source })?;
            self.index = Some(conn);
        }
        Ok(())
    }

    fn ix(&self) -> Result<&Connection, SearchError> {
        self.index.as_ref().ok_or(SearchError::NoIndex)
    }

    fn ierr(&self) -> impl Fn(rusqlite::Error) -> SearchError + '_ {
        index_error(&self.dir)
    }

    fn eerr(&self) -> impl Fn(rusqlite::Error) -> SearchError + '_ {
        store_error(self.events.path())
    }

    /// The seq range a time window covers, up to `head` (see the module docs).
    fn seq_range(&self, f: &Filter, head: u64) -> Result<(u64, u64, u64), SearchError> {
        let conn = self.ix()?;
        let (indexed, skew) = index::indexed(conn).map_err(self.ierr())?;
        let first_block = |t: i64| -> rusqlite::Result<Option<i64>> {
            conn.query_row("SELECT block FROM blocks WHERE tmax >= ?1 ORDER BY tmax, block LIMIT 1", [t], |r| r.get(0))
                .optional()
        };
        let lo = match first_block(f.since_ms).map_err(self.ierr())? {
            Some(b) => b.max(0) as u64 * BLOCK + 1,
            None => indexed + 1,
        };
        let hi = match f.until_ms {
            Some(u) => match first_block(u.saturating_add(skew).saturating_add(SKEW_MARGIN_MS)).map_err(self.ierr())? {
                Some(b) => ((b.max(0) as u64 + 1) * BLOCK).min(head),
                None => head,
            },
            None => head,
        };
        Ok((lo, hi, indexed))
    }

    /// Runs one page of a query. The index should be caught up first (the gateway's indexer,
    /// or [`index::Index::catch_up`] on a data dir): events past the index's high-water mark are
    /// only found by queries that do not need it.
    pub fn search(&mut self, q: &Query<'_>) -> Result<Page, SearchError> {
        let plan = q.filter.plan();
        let events_head = self.head()?;
        self.open_index()?;
        let (indexed, _) = index::indexed(self.ix()?).map_err(self.ierr())?;
        let head = if plan == Plan::Fts { indexed.min(events_head) } else { events_head };
        let (mut lo, mut hi, indexed) = self.seq_range(q.filter, head)?;
        match (q.order, q.position) {
            (Order::Desc, Some(p)) => hi = hi.min(p.saturating_sub(1)),
            (Order::Asc, Some(p)) => lo = lo.max(p + 1),
            _ => {}
        }
        let mut page = Page { indexed, ..Page::default() };
        let want = q.limit.max(1);
        if lo <= hi {
            let mut fetch = self
                .events
                .conn()
                .prepare_cached("SELECT hash, canonical FROM events WHERE seq = ?1")
                .map_err(self.eerr())?;
            let mut consider = |seq: u64, hash: &[u8], canonical: &[u8]| -> bool {
                let Ok(probe) = serde_json::from_slice::<Probe>(canonical) else {
                    tracing::warn!(seq, "search: the stored event is not readable");
                    return false;
                };
                if q.filter.matches(&probe, q.exclude_session) {
                    page.events.push(Hit { seq, json: with_hash(canonical, hash) });
                }
                page.events.len() > want
            };
            let desc = q.order == Order::Desc;
            match plan {
                Plan::Fts => {
                    let expr = q.filter.match_expr().unwrap_or_default();
                    let conn = self.index.as_ref().ok_or(SearchError::NoIndex)?;
                    let sql = if desc {
                        "SELECT rowid FROM fts WHERE fts MATCH ?1 AND rowid BETWEEN ?2 AND ?3 ORDER BY rowid DESC"
                    } else {
                        "SELECT rowid FROM fts WHERE fts MATCH ?1 AND rowid BETWEEN ?2 AND ?3 ORDER BY rowid ASC"
                    };
                    let (ierr, eerr) = (index_error(&self.dir), store_error(self.events.path()));
                    let mut st = conn.prepare_cached(sql).map_err(&ierr)?;
                    let mut rows = st.query(params![expr, lo as i64, hi as i64]).map_err(&ierr)?;
                    while let Some(r) = rows.next().map_err(&ierr)? {
                        let seq: i64 = r.get(0).map_err(&ierr)?;
                        let row = fetch
                            .query_row([seq], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))
                            .optional()
                            .map_err(&eerr)?;
                        if let Some((hash, canonical)) = row
                            && consider(seq as u64, &hash, &canonical)
                        {
                            break;
                        }
                    }
                }
                Plan::Request | Plan::Scan => {
                    let dir = if desc { "DESC" } else { "ASC" };
                    let by_request = if plan == Plan::Request { "request_id = ?3 AND" } else { "" };
                    let sql = format!(
                        "SELECT seq, hash, canonical FROM events WHERE {by_request} seq BETWEEN ?1 AND ?2 ORDER BY seq {dir}"
                    );
                    let eerr = store_error(self.events.path());
                    let mut st = self.events.conn().prepare_cached(&sql).map_err(&eerr)?;
                    let mut rows = match &q.filter.request_id {
                        Some(rid) if plan == Plan::Request => st.query(params![lo as i64, hi as i64, rid]),
                        _ => st.query(params![lo as i64, hi as i64]),
                    }
                    .map_err(&eerr)?;
                    while let Some(r) = rows.next().map_err(&eerr)? {
                        let seq: i64 = r.get(0).map_err(&eerr)?;
                        let hash = r.get_ref(1).map_err(&eerr)?.as_blob().unwrap_or_default();
                        let canonical = r.get_ref(2).map_err(&eerr)?.as_blob().unwrap_or_default();
                        if consider(seq as u64, hash, canonical) {
                            break;
                        }
                    }
                }
            }
        }
        if page.events.len() > want {
            page.events.truncate(want);
            page.more = true;
            page.position = page.events.last().map(|h| h.seq);
        } else if q.order == Order::Asc && q.filter.until_ms.is_none() {
            // Caught up: the next page starts after what this one scanned.
            let top = page.events.last().map_or(0, |h| h.seq).max(hi).max(q.position.unwrap_or(0));
            page.position = Some(top);
        }
        Ok(page)
    }

    /// The whole exchange of `request_id`, reconstructed and verified (`None` when no event
    /// carries that request id).
    pub fn exchange(&mut self, request_id: &str) -> Result<Option<Value>, SearchError> {
        exchange(self.events.conn(), &self.dir, request_id).map_err(self.eerr())
    }
}

/// Maps an index error; FTS5's complaints about a query are the caller's (400), not ours.
fn index_error(dir: &Path) -> impl Fn(rusqlite::Error) -> SearchError + '_ {
    move |source| {
        if let rusqlite::Error::SqliteFailure(_, Some(msg)) = &source
            && msg.starts_with("fts5")
        {
            return SearchError::Invalid(format!("the text query is not supported: {msg}"));
        }
        SearchError::Sqlite { path: dir.join(INDEX_FILE), source }
    }
}

fn store_error(path: &Path) -> impl Fn(rusqlite::Error) -> SearchError + '_ {
    move |source| SearchError::Store(StoreError::Sqlite { path: path.to_path_buf(), source })
}

// ---------------------------------------------------------------------------------------------
// Reconstruction

struct Row {
    seq: u64,
    hash: Vec<u8>,
    prev: Vec<u8>,
    time_ms: i64,
    cols: [Option<String>; 6],
    canonical: Vec<u8>,
}

const EXCHANGE_COLUMNS: [&str; 6] = ["event_type", "outcome", "request_id", "subject", "action", "model"];

fn exchange(conn: &Connection, dir: &Path, request_id: &str) -> rusqlite::Result<Option<Value>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, hash, prev_hash, time_ms, event_type, outcome, request_id, subject, action, model, canonical
         FROM events WHERE request_id = ?1 ORDER BY seq",
    )?;
    let rows: Vec<Row> = st
        .query_map([request_id], |r| {
            Ok(Row {
                seq: r.get::<_, i64>(0)? as u64,
                hash: r.get(1)?,
                prev: r.get(2)?,
                time_ms: r.get(3)?,
                cols: [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
                canonical: r.get(10)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut content =
        conn.prepare_cached("SELECT codec, salt, size, truncated, data, timing FROM content WHERE id = ?1")?;
    let mut prev_of = conn.prepare_cached("SELECT hash FROM events WHERE seq = ?1")?;
    let mut events_out = Vec::new();
    let mut parsed: Vec<Event> = Vec::new();
    let mut all_ok = true;
    let mut bodies: [Option<Value>; 2] = [None, None];
    for row in &rows {
        let mut problems: Vec<String> = Vec::new();
        let hash: Option<[u8; 32]> = row.hash.as_slice().try_into().ok();
        let prev: Option<[u8; 32]> = row.prev.as_slice().try_into().ok();
        match (hash, prev) {
            (Some(h), Some(p)) => {
                if chain_hash(&p, &row.canonical) != h {
                    problems.push("the stored bytes do not hash to the stored hash (modified)".into());
                }
                let expected_prev: Option<Vec<u8>> = if row.seq == 1 {
                    Some(GENESIS.to_vec())
                } else {
                    prev_of.query_row([(row.seq - 1) as i64], |r| r.get(0)).optional()?
                };
                match expected_prev {
                    Some(e) if e == p => {}
                    Some(_) => problems.push(format!("prev_hash is not the hash of seq {}", row.seq - 1)),
                    None => problems.push(format!("seq {} is missing (deleted)", row.seq - 1)),
                }
            }
            _ => problems.push("the stored hash or prev_hash is not 32 bytes".into()),
        }
        let event: Option<Event> = match serde_json::from_slice::<Event>(&row.canonical) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!("the stored event is not readable: {e}"));
                None
            }
        };
        if let Some(e) = &event {
            if e.seq != row.seq {
                problems.push(format!("the event was hashed as seq {}", e.seq));
            }
            if e.prev_hash != hex(&row.prev) {
                problems.push("the hashed prev_hash differs from the stored one".into());
            }
            let cols = IndexColumns::of(e);
            let want: [Option<&str>; 6] = [
                Some(e.event_type.as_str()),
                Some(e.outcome.as_str()),
                e.request_id.as_deref(),
                cols.subject.as_deref(),
                e.action.as_deref(),
                cols.model.as_deref(),
            ];
            if cols.time_ms != row.time_ms {
                problems.push("index column time_ms differs from the hashed event".into());
            }
            for (i, w) in want.iter().enumerate() {
                if row.cols[i].as_deref() != *w {
                    problems.push(format!("index column {} differs from the hashed event", EXCHANGE_COLUMNS[i]));
                }
            }
            if let Some(c) = &e.content {
                for (slot, (reference, digest)) in
                    [(&c.input_ref, &c.input_digest), (&c.output_ref, &c.output_digest)].into_iter().enumerate()
                {
                    let Some(reference) = reference else { continue };
                    let body = body_json(&mut content, reference, digest.as_deref().unwrap_or(""), slot == 0)?;
                    if body.get("verified") == Some(&Value::Bool(false)) {
                        problems.push(format!(
                            "recorded {} body: {}",
                            if slot == 0 { "request" } else { "response" },
                            body["problem"].as_str().unwrap_or("does not match its digest")
                        ));
                    }
                    bodies[slot] = Some(body);
                }
            }
        }
        all_ok &= problems.is_empty();
        let mut ev = serde_json::from_str::<Value>(&with_hash(&row.canonical, &row.hash)).unwrap_or(Value::Null);
        if ev.is_null() {
            ev = json!({"canonical": String::from_utf8_lossy(&row.canonical)});
        }
        events_out.push(json!({
            "seq": row.seq,
            "hash": hex(&row.hash),
            "prev_hash": hex(&row.prev),
            "event_type": row.cols[0],
            "verified": problems.is_empty(),
            "problems": problems,
            "event": ev,
        }));
        if let Some(e) = event {
            parsed.push(e);
        }
    }
    let last_seq = rows.last().map_or(0, |r| r.seq);
    let checkpoint = covering_checkpoint(conn, dir, last_seq)?;
    let request = parsed.iter().find(|e| e.event_type.ends_with(".request")).or(parsed.first());
    let done = parsed.iter().rev().find(|e| e.event_type.ends_with(".completion"));
    let last = parsed.last();
    let from_gen = |f: &dyn Fn(&crate::event::GenAi) -> Option<Value>| -> Value {
        done.and_then(|e| e.gen_ai.as_ref())
            .and_then(f)
            .or_else(|| request.and_then(|e| e.gen_ai.as_ref()).and_then(f))
            .unwrap_or(Value::Null)
    };
    let mut out = serde_json::Map::new();
    out.insert("request_id".into(), json!(request_id));
    if let Some(r) = request {
        out.insert("identity".into(), serde_json::to_value(&r.actor).unwrap_or(Value::Null));
        let cols = IndexColumns::of(r);
        out.insert(
            "classification".into(),
            json!({
                "action": r.action,
                "model": cols.model,
                "stream": r.gen_ai.as_ref().and_then(|g| g.request_stream),
                "operation": r.gen_ai.as_ref().and_then(|g| g.operation_name.clone()),
                "provider": r.gen_ai.as_ref().and_then(|g| g.provider_name.clone()),
                "max_tokens": r.gen_ai.as_ref().and_then(|g| g.request_max_tokens),
                "upstream": r.resource.as_ref().and_then(|x| x.upstream.clone()),
                "client_request_id": r.client_request_id,
                "trace_id": r.trace_id,
            }),
        );
    }
    if let Some(p) = parsed.iter().rev().find_map(|e| e.policy.as_ref()) {
        out.insert("policy".into(), serde_json::to_value(p).unwrap_or(Value::Null));
    }
    if let Some(a) = parsed.iter().rev().find_map(|e| e.approval.as_ref()) {
        out.insert("approval".into(), a.clone());
    }
    if let Some(m) = parsed.iter().rev().find_map(|e| e.masking.as_ref()) {
        out.insert("masking".into(), m.clone());
    }
    if let Some(l) = done.or(last) {
        out.insert("outcome".into(), json!(l.outcome.as_str()));
        out.insert("status_code".into(), json!(l.status_code));
        out.insert("end".into(), json!(l.end));
        out.insert("reason".into(), json!(l.reason));
    }
    out.insert(
        "usage".into(),
        json!({
            "input_tokens": from_gen(&|g| g.usage_input_tokens.map(Value::from)),
            "output_tokens": from_gen(&|g| g.usage_output_tokens.map(Value::from)),
            "response_model": from_gen(&|g| g.response_model.clone().map(Value::from)),
            "finish_reasons": from_gen(&|g| (!g.response_finish_reasons.is_empty()).then(|| json!(g.response_finish_reasons))),
        }),
    );
    out.insert(
        "timing".into(),
        json!({
            "started": request.map(|e| e.time.clone()),
            "ended": done.map(|e| e.time.clone()),
            "latency_ms": done.and_then(|e| e.latency_ms),
            "ttft_ms": done.and_then(|e| e.ttft_ms),
            "bytes_in": done.and_then(|e| e.bytes_in).or(request.and_then(|e| e.bytes_in)),
            "bytes_out": done.and_then(|e| e.bytes_out),
        }),
    );
    let [req_body, res_body] = bodies;
    out.insert("request".into(), req_body.unwrap_or(Value::Null));
    out.insert("response".into(), res_body.unwrap_or(Value::Null));
    out.insert(
        "chain".into(),
        json!({
            "verified": all_ok,
            "first_seq": rows.first().map(|r| r.seq),
            "last_seq": last_seq,
            "checkpoint": checkpoint,
        }),
    );
    out.insert("events".into(), Value::Array(events_out));
    Ok(Some(Value::Object(out)))
}

/// A recorded body as `show` presents it: text (or base64), the reassembled stream with its
/// chunk timing, the extracted prompt or answer, and whether it re-digests to its chained digest.
fn body_json(
    st: &mut rusqlite::CachedStatement<'_>,
    reference: &str,
    digest: &str,
    request: bool,
) -> rusqlite::Result<Value> {
    let Some(id) = reference.strip_prefix("content:").and_then(|s| s.parse::<i64>().ok()) else {
        return Ok(json!({"ref": reference, "verified": false, "problem": "not a content reference"}));
    };
    type ContentRow = (String, Vec<u8>, i64, bool, Vec<u8>, Option<String>);
    let row: Option<ContentRow> =
        st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).optional()?;
    let Some((codec, salt, size, truncated, data, timing)) = row else {
        return Ok(json!({"ref": reference, "verified": false, "problem": "missing from the content store (erased?)"}));
    };
    let Some(body) = crate::content::decode(&codec, &data) else {
        return Ok(json!({"ref": reference, "verified": false, "problem": "cannot be decompressed"}));
    };
    let again = crate::content::digest(&salt, &body, timing.as_deref());
    let verified = again == digest;
    let mut v = json!({
        "ref": reference,
        "size": size,
        "truncated": truncated,
        "digest": digest,
        "verified": verified,
    });
    if !verified {
        v["problem"] = json!(format!("re-digests to {again}"));
    }
    match std::str::from_utf8(&body) {
        Ok(t) => v["body"] = json!(t),
        Err(_) => v["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&body)),
    }
    let mut text = String::new();
    index::extract_text(&body, request, &mut text, index::MAX_TEXT);
    if !text.trim().is_empty() {
        v["text"] = json!(text.trim());
    }
    if let Some(t) = &timing {
        let marks: Vec<(u64, u64)> = serde_json::from_str(t).unwrap_or_default();
        let mut chunks = Vec::with_capacity(marks.len());
        for (i, (off, ms)) in marks.iter().enumerate() {
            let start = (*off as usize).min(body.len());
            let end = marks.get(i + 1).map_or(body.len(), |n| (n.0 as usize).min(body.len()));
            let piece = &body[start..end.max(start)];
            chunks.push(json!({"offset": off, "at_ms": ms, "data": String::from_utf8_lossy(piece)}));
        }
        v["stream"] = json!({"chunks": chunks.len(), "first_ms": marks.first().map(|m| m.1), "last_ms": marks.last().map(|m| m.1)});
        v["chunks"] = Value::Array(chunks);
    }
    Ok(v)
}

/// The first stored checkpoint at or after `seq`: whether its signature verifies under the data
/// dir's public key and whether the hash it signs is the log's at that seq. (The link from the
/// exchange to the checkpoint is what `audit verify` re-hashes.)
fn covering_checkpoint(conn: &Connection, dir: &Path, seq: u64) -> rusqlite::Result<Value> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, body, signature FROM checkpoints WHERE seq >= ?1 ORDER BY seq, id LIMIT 1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((cp_seq, body, sig)) = row else {
        return Ok(json!({"covered": false, "note": "no checkpoint signs this part of the log yet"}));
    };
    let public = std::fs::read_to_string(dir.join(crate::checkpoint::PUBLIC_KEY_FILE)).unwrap_or_default();
    let key = crate::checkpoint::parse_public_key(&public);
    let cp = crate::checkpoint::SignedCheckpoint::from_stored(&body, &sig, public.trim());
    let signature = match (&cp, &key) {
        (Some(c), Some(k)) => {
            if c.verify(k).is_ok() {
                "valid"
            } else {
                "invalid"
            }
        }
        (None, _) => "unreadable",
        (_, None) => "no public key in the data dir",
    };
    let at: Option<Vec<u8>> =
        conn.query_row("SELECT hash FROM events WHERE seq = ?1", [cp_seq], |r| r.get(0)).optional()?;
    let matches = cp.as_ref().is_some_and(|c| at.as_deref().is_some_and(|h| hex(h) == c.body.hash));
    Ok(json!({
        "covered": true,
        "seq": cp_seq,
        "time": cp.as_ref().map(|c| c.body.time.clone()),
        "key_fingerprint": cp.as_ref().map(|c| c.body.key_fingerprint.clone()),
        "signature": signature,
        "matches_log": matches,
    }))
}

// ---------------------------------------------------------------------------------------------
// Cursors

/// The key cursors are authenticated with (random per process: cursors do not outlive it).
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    /// A fresh random key.
    pub fn random() -> CursorKey {
        let mut k = [0u8; 32];
        if getrandom::fill(&mut k).is_err() {
            let mut h = Sha256::new();
            h.update(crate::event::new_event_id().as_bytes());
            h.update(std::process::id().to_le_bytes());
            k.copy_from_slice(&h.finalize());
        }
        CursorKey(k)
    }

    fn mac(&self, caller: &str, payload: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let pad = |b: u8| -> [u8; 64] { block.map(|x| x ^ b) };
        let mut inner = Sha256::new();
        inner.update(pad(0x36));
        inner.update(b"modelgate.cursor.v1\0");
        inner.update((caller.len() as u64).to_be_bytes());
        inner.update(caller.as_bytes());
        inner.update(payload);
        let mut outer = Sha256::new();
        outer.update(pad(0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// What a cursor carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// The search session (recorded in its `audit.search` events).
    pub session: String,
    /// The order.
    pub order: Order,
    /// Where the next page starts.
    pub position: u64,
    /// The page size.
    pub limit: usize,
    /// The filters, times resolved.
    pub filter: Filter,
}

/// Encodes a cursor for `caller`.
pub fn encode_cursor(key: &CursorKey, caller: &str, state: &CursorState) -> String {
    let payload = serde_json::to_vec(state).unwrap_or_default();
    let mac = key.mac(caller, &payload);
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(mac))
}

/// Decodes a cursor, refusing one issued to another caller, by another process, or altered.
pub fn decode_cursor(key: &CursorKey, caller: &str, cursor: &str) -> Result<CursorState, SearchError> {
    let bad = || {
        SearchError::Cursor(
            "the cursor is not valid for this caller: it was issued to another caller or by an earlier run of \
             the gateway, or altered; start the search again"
                .into(),
        )
    };
    let (p, m) = cursor.split_once('.').ok_or_else(bad)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
    let mac = URL_SAFE_NO_PAD.decode(m).map_err(|_| bad())?;
    let want = key.mac(caller, &payload);
    // Constant time: compare every byte.
    if mac.len() != want.len() || mac.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(bad());
    }
    serde_json::from_slice(&payload).map_err(|_| bad())
}

/// A fresh search session id.
pub fn new_session() -> String {
    let id = crate::event::uuid_v7();
    hex(&id.as_bytes()[8..])
}

// ---------------------------------------------------------------------------------------------
// Audit of the audit

/// An `audit.search` event: who searched, the filters, the order, how many rows came back.
pub fn search_event(actor: Arc<Actor>, filter: &Filter, order: Order, rows: usize, session: &str, page: u64) -> Event {
    let mut e = Event::new(EventType::AuditSearch, Outcome::Success).actor(actor);
    e.action = Some("audit.search".into());
    e.resource = Some(Resource { id: None, kind: "audit".into(), upstream: None });
    e.details = Some(json!({
        "filters": filter.to_details(),
        "order": order.as_str(),
        "rows": rows,
        "session": session,
        "page": page,
    }));
    e
}

/// An `audit.read` event: who read which exchange, and how many of its events came back.
pub fn read_event(actor: Arc<Actor>, request_id: &str, events: usize) -> Event {
    let outcome = if events > 0 { Outcome::Success } else { Outcome::Failure };
    let mut e = Event::new(EventType::AuditRead, outcome).actor(actor);
    e.action = Some("audit.read".into());
    // The exchange's id goes in the resource, not in `request_id`: reading an exchange must not
    // become part of it.
    e.resource = Some(Resource { id: Some(request_id.to_string()), kind: "exchange".into(), upstream: None });
    e.details = Some(json!({"request_id": request_id, "rows": events}));
    if events == 0 {
        e.reason = Some("not_found".into());
    }
    e
}

// ---------------------------------------------------------------------------------------------
// The gateway's service

/// A search as the API receives it.
#[derive(Clone, Debug)]
pub enum Request {
    /// A first page.
    New(Box<Params>),
    /// A next page: the cursor and an optional new page size.
    Next {
        /// The `next_cursor` of the previous page.
        cursor: String,
        /// Page size for this page (default: the cursor's).
        limit: Option<usize>,
    },
}

/// One page as the API answers it.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The page.
    pub page: Page,
    /// The cursor of the next page.
    pub next_cursor: Option<String>,
    /// The filters in force.
    pub filter: Filter,
    /// The order in force.
    pub order: Order,
    /// The search session.
    pub session: String,
    /// Whether this page continued a cursor.
    pub continued: bool,
}

/// Searches a data dir for the gateway's admin API: pooled read connections, waits for the
/// background indexer, and issues and checks cursors.
#[derive(Debug)]
pub struct SearchService {
    dir: PathBuf,
    indexer: Arc<Indexer>,
    key: CursorKey,
    /// Idle searchers, with the index generation they were opened in.
    pool: Mutex<Vec<(u64, Searcher)>>,
}

impl SearchService {
    /// A service over `data_dir`, fed by `indexer`.
    pub fn new(data_dir: &Path, indexer: Arc<Indexer>) -> SearchService {
        SearchService { dir: data_dir.to_path_buf(), indexer, key: CursorKey::random(), pool: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on a pooled searcher; with `indexed`, once the index has reached the log's head.
    fn with<T>(
        &self,
        indexed: bool,
        f: impl FnOnce(&mut Searcher) -> Result<T, SearchError>,
    ) -> Result<T, SearchError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (mut generation, mut s) = match pooled {
            Some(p) => p,
            None => (self.indexer.generation(), Searcher::open(&self.dir)?),
        };
        if indexed {
            let head = s.head()?;
            self.indexer.wait_for(head, CATCH_UP_WAIT)?;
        }
        let now = self.indexer.generation();
        if now != generation {
            // The index file was replaced: this searcher still reads the old one.
            (generation, s) = (now, Searcher::open(&self.dir)?);
        }
        let r = f(&mut s);
        if r.is_ok() {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 4 {
                pool.push((generation, s));
            }
        }
        r
    }

    /// Runs one page for `caller` (a stable name of the authenticated identity).
    pub fn search(&self, caller: &str, req: Request) -> Result<Answer, SearchError> {
        let (state, continued) = match req {
            Request::New(p) => {
                let limit = p.page_size()?;
                let (filter, order) = p.resolve(SystemTime::now())?;
                (CursorState { session: new_session(), order, position: 0, limit, filter }, false)
            }
            Request::Next { cursor, limit } => {
                let mut st = decode_cursor(&self.key, caller, &cursor)?;
                if let Some(l) = limit {
                    st.limit = l;
                }
                (st, true)
            }
        };
        let q = Query {
            filter: &state.filter,
            order: state.order,
            position: continued.then_some(state.position),
            limit: state.limit,
            exclude_session: continued.then_some(state.session.as_str()),
        };
        let page = self.with(true, |s| s.search(&q))?;
        let next_cursor =
            page.position.map(|position| encode_cursor(&self.key, caller, &CursorState { position, ..state.clone() }));
        Ok(Answer { page, next_cursor, filter: state.filter, order: state.order, session: state.session, continued })
    }

    /// The reconstructed exchange of `request_id`.
    pub fn exchange(&self, request_id: &str) -> Result<Option<Value>, SearchError> {
        self.with(false, |s| s.exchange(request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_the_tokenizer() {
        assert_eq!(
            words("Project-Aurora  aur* x"),
            vec![("Project".into(), false), ("Aurora".into(), false), ("aur".into(), true), ("x".into(), false)]
        );
        assert!(words(" - ").is_empty());
    }

    #[test]
    fn families_match_their_members_only() {
        assert!(name_matches("inference", "inference.chat"));
        assert!(name_matches("inference.*", "inference.request"));
        assert!(!name_matches("inference", "inferences.chat"));
        assert!(name_matches("inference.chat", "inference.chat"));
        assert!(!name_matches("inference.chat", "inference.chat2"));
    }

    #[test]
    fn params_resolve_and_refuse() {
        let now = SystemTime::now();
        let p = Params::from_pairs([("since", "24h"), ("actor", "alice"), ("order", "asc")]).unwrap();
        let (f, o) = p.resolve(now).unwrap();
        assert_eq!(o, Order::Asc);
        assert_eq!(f.actor.as_deref(), Some("alice"));
        assert!((millis(now) - f.since_ms - 86_400_000).abs() < 5);
        assert!(Params::from_pairs([("subject", "x")]).is_err());
        assert!(Params::default().resolve(now).is_err(), "since is required");
        let bad = Params::from_pairs([("since", "1h"), ("outcome", "great")]).unwrap();
        assert!(bad.resolve(now).is_err());
        let lim = Params::from_pairs([("limit", "1001")]).unwrap();
        assert!(lim.page_size().is_err());
    }

    #[test]
    fn cursors_are_bound_to_the_caller() {
        let key = CursorKey::random();
        let st = CursorState {
            session: "s".into(),
            order: Order::Desc,
            position: 42,
            limit: 2,
            filter: Filter { since_ms: 1, actor: Some("a".into()), ..Filter::default() },
        };
        let c = encode_cursor(&key, "issuer|alice", &st);
        assert_eq!(decode_cursor(&key, "issuer|alice", &c).unwrap(), st);
        assert!(decode_cursor(&key, "issuer|bob", &c).is_err());
        assert!(decode_cursor(&CursorKey::random(), "issuer|alice", &c).is_err());
        let (p, m) = c.split_once('.').unwrap();
        let mut payload = URL_SAFE_NO_PAD.decode(p).unwrap();
        let i = payload.iter().position(|b| *b == b'4').unwrap();
        payload[i] = b'1';
        assert!(decode_cursor(&key, "issuer|alice", &format!("{}.{m}", URL_SAFE_NO_PAD.encode(payload))).is_err());
    }

    /// Events with times jittered around a ramp (so time and seq disagree by up to 10 s),
    /// across several index blocks; every query, paged in both orders, must equal a scan.
    #[test]
    fn queries_match_a_brute_force_scan() {
        use crate::event::{GenAi, Policy};
        let dir = testkit::temp_dir("search-unit");
        let base: i64 = 1_700_000_000_000;
        let rng = std::cell::Cell::new(0x1234_5678_u64);
        let next = || {
            let mut x = rng.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rng.set(x);
            x
        };
        let mut events = Vec::new();
        for i in 0..900i64 {
            let r = next();
            let kind = if r % 3 == 0 {
                EventType::Completion(crate::Family::Inference)
            } else {
                EventType::Request(crate::Family::Inference)
            };
            let outcome = if r % 11 == 0 { Outcome::Failure } else { Outcome::Success };
            let mut e = Event::new(kind, outcome);
            let jitter = (next() % 10_000) as i64 - 5_000;
            e.time = rfc3339_ms(base + i * 1_000 + jitter);
            e.actor = Some(Arc::new(Actor {
                subject: Some(format!("user{}", r % 5)),
                groups: vec![format!("g{}", r % 2)],
                ..Actor::default()
            }));
            e.action = Some(["inference.chat", "inference.embedding", "adapter.load"][(r / 7 % 3) as usize].into());
            e.gen_ai = Some(GenAi { request_model: Some(format!("m{}", r / 5 % 3)), ..GenAi::default() });
            e.request_id = Some(format!("req{}", i / 2));
            e.reason = Some(format!("w{} w{}", r / 13 % 7, r / 17 % 5));
            if r % 4 == 0 {
                e.policy = Some(Policy { decision: "allow".into(), ..Policy::default() });
            }
            if r % 9 == 0 {
                e.masking = Some(json!({"request": {"EMAIL": 1}}));
            }
            events.push(e);
        }
        let stored = crate::append_local(dir.path(), events).unwrap();
        let mut ix = index::Index::open(dir.path()).unwrap();
        assert_eq!(ix.catch_up(None, |_| {}).unwrap().seq, 900);
        let mut s = Searcher::open(dir.path()).unwrap();
        let all: Vec<Value> = stored.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        let words =
            |e: &Value| -> Vec<String> { e["reason"].as_str().unwrap_or("").split(' ').map(str::to_string).collect() };
        let mut nonempty = 0;
        for round in 0..120u64 {
            let r = next();
            let since = base + (r % 900) as i64 * 1_000 - 3_000;
            let until = (r % 3 != 0).then(|| since + 1_000 * (next() % 400) as i64 + 1);
            let pick = |n: u64| next() % n == 0;
            let f = Filter {
                since_ms: since,
                until_ms: until,
                actor: pick(2).then(|| format!("user{}", next() % 5)),
                group: pick(4).then(|| format!("g{}", next() % 2)),
                model: pick(3).then(|| format!("m{}", next() % 3)),
                action: pick(3).then(|| {
                    ["inference", "adapter.load", "inference.*", "inference.chat"][(next() % 4) as usize].into()
                }),
                outcome: pick(5).then(|| "failure".into()),
                decision: pick(6).then(|| "allow".into()),
                request_id: pick(8).then(|| format!("req{}", next() % 450)),
                event_type: pick(5).then(|| ["inference", "inference.request"][(next() % 2) as usize].into()),
                masking: pick(8).then(|| "EMAIL".into()),
                text: pick(3).then(|| format!("w{}", next() % 7)),
            };
            let expect: Vec<u64> = all
                .iter()
                .filter(|e| {
                    let t = humantime::parse_rfc3339(e["time"].as_str().unwrap()).unwrap();
                    let t = millis(t);
                    t >= f.since_ms
                        && f.until_ms.is_none_or(|u| t < u)
                        && f.actor.as_ref().is_none_or(|a| e["actor"]["subject"] == a.as_str())
                        && f.group.as_ref().is_none_or(|g| e["actor"]["groups"][0] == g.as_str())
                        && f.model.as_ref().is_none_or(|m| e["gen_ai"]["request.model"] == m.as_str())
                        && f.action.as_ref().is_none_or(|a| name_matches(a, e["action"].as_str().unwrap()))
                        && f.outcome.as_ref().is_none_or(|o| e["outcome"] == o.as_str())
                        && f.decision.as_ref().is_none_or(|d| e["policy"]["decision"] == d.as_str())
                        && f.request_id.as_ref().is_none_or(|x| e["request_id"] == x.as_str())
                        && f.event_type.as_ref().is_none_or(|x| name_matches(x, e["event_type"].as_str().unwrap()))
                        && f.masking.as_ref().is_none_or(|_| e.get("masking").is_some())
                        && f.text.as_ref().is_none_or(|w| words(e).contains(w))
                })
                .map(|e| e["seq"].as_u64().unwrap())
                .rev()
                .collect();
            for (order, limit) in [(Order::Desc, 1000), (Order::Desc, 7), (Order::Asc, 5)] {
                let mut got = Vec::new();
                let mut position = None;
                loop {
                    let q = Query { filter: &f, order, position, limit, exclude_session: None };
                    let page = s.search(&q).unwrap();
                    got.extend(page.events.iter().map(|h| h.seq));
                    if !page.more {
                        break;
                    }
                    position = page.position;
                }
                if order == Order::Asc {
                    got.reverse();
                }
                assert_eq!(got, expect, "round {round}: {f:?} {order:?} by {limit}");
            }
            nonempty += usize::from(!expect.is_empty());
        }
        assert!(nonempty > 30, "only {nonempty} queries found anything");
    }

    #[test]
    fn the_hash_is_spliced_into_the_hashed_bytes() {
        let j = with_hash(br#"{"a":1,"seq":2}"#, &[0xab; 32]);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["seq"], 2);
    }
}
