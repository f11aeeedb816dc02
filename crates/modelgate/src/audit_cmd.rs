//! `modelgate audit verify|checkpoint|export|search|show|tail|reindex` (SPEC sections 5 and 6;
//! DURABILITY.md).
//!
//! These act on a data dir (the gateway may be running: they read a snapshot and append as a
//! writer of their own), except `checkpoint --server`, which asks a running gateway, and
//! `verify --export`, which needs nothing but the export directory. `search`, `show` and `tail`
//! work both ways, with the same results: on a data dir they first bring its search index up to
//! date and record their own `audit.search`/`audit.read` event before printing anything; with
//! `--server URL --token T` the gateway's admin API answers (and records).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use audit::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, Keypair, SignedCheckpoint, parse_public_key};
use audit::index::Index;
use audit::search::{self, MAX_LIMIT, Params, Query, Searcher};
use audit::store::{DB_FILE, Store};
use audit::verify::{Options, Report};
use audit::{Actor, Event, EventType, Outcome, Resource};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::token::Target;

/// `audit` subcommands.
// Parsed once per run: the size of the search filters does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Re-hash the log, check its chain, index columns and signed checkpoints; exits non-zero
    /// naming the first bad seq.
    Verify {
        /// The public key (base64, as in `audit-signing.pub`) signatures must verify under
        /// (default: the data dir's own, which someone with write access could replace).
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// A checkpoint exported earlier (`audit checkpoint --out`) that the log must still
        /// hold: detects truncation and rewritten history.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Also re-digest every recorded body against the digest chained in its event.
        #[arg(long)]
        content: bool,
        /// Do not compare index columns with the hashed events (chain and signatures only).
        #[arg(long)]
        no_fields: bool,
        /// Verify an export directory (`audit export --out`) offline instead of a data dir.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Sign the log's head now and write the checkpoint to FILE, to keep off the box (with
    /// `--server`: the running gateway's latest checkpoint).
    Checkpoint {
        /// Where to write the signed checkpoint (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write events (with hashes), checkpoints and the public key of a time range to a
    /// directory that verifies offline.
    Export {
        /// Start: RFC 3339, or a duration before now (24h, 7d). Default: the first event.
        #[arg(long)]
        since: Option<String>,
        /// End (exclusive): RFC 3339, `now`, or a duration before now. Default: the last event.
        #[arg(long)]
        until: Option<String>,
        /// The directory to write (created; must not hold an export already).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Search the trail, newest first: a readable table, or one event per line (`--json`, the
    /// stored event with its hash) or CSV (`--csv`).
    Search {
        #[command(flatten)]
        filters: SearchFilters,
        /// How many events to print (the pages are fetched as needed).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// `desc` (newest first, default) or `asc`.
        #[arg(long, default_value = "desc", value_parser = ["asc", "desc"])]
        order: String,
        /// One JSON event per line (SPEC section 4 shape, `hash` included).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header line.
        #[arg(long)]
        csv: bool,
    },
    /// Show one exchange reconstructed: identity, classification, policy, the recorded request
    /// and response (streams reassembled, with timing), usage, timing, how it ended, and its
    /// events' chain positions, each re-verified.
    Show {
        /// The exchange's request id (`x-request-id`).
        request_id: String,
        /// The reconstruction as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest events, oldest of them first; with `--follow`, keep printing new ones.
    Tail {
        /// How many of the latest events to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Keep printing events as they are written (Ctrl-C stops).
        #[arg(long, short = 'f')]
        follow: bool,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index (`search.db`) from the events and recorded bodies.
    Reindex,
}

/// The filters of `audit search` (SPEC section 6).
#[derive(Args, Debug, Clone, Default)]
pub struct SearchFilters {
    /// Start: RFC 3339, or a duration before now (24h, 7d).
    #[arg(long, default_value = "24h")]
    since: String,
    /// End (exclusive): RFC 3339, `now`, or a duration before now.
    #[arg(long)]
    until: Option<String>,
    /// The actor's subject.
    #[arg(long)]
    actor: Option<String>,
    /// One of the actor's groups.
    #[arg(long)]
    group: Option<String>,
    /// The model.
    #[arg(long)]
    model: Option<String>,
    /// An action (`inference.chat`) or a family (`inference`).
    #[arg(long)]
    action: Option<String>,
    /// success, failure, denied, error or unknown.
    #[arg(long)]
    outcome: Option<String>,
    /// The policy decision: allow, deny or require_approval.
    #[arg(long)]
    decision: Option<String>,
    /// The exchange's request id.
    #[arg(long)]
    request_id: Option<String>,
    /// An event type (`inference.request`) or a family (`inference`).
    #[arg(long)]
    event_type: Option<String>,
    /// A masking entity type (`EMAIL`).
    #[arg(long)]
    masking: Option<String>,
    /// Words that must all occur in the recorded prompt or response or the key fields
    /// (`word*` matches a prefix).
    #[arg(long)]
    text: Option<String>,
}

impl SearchFilters {
    fn params(&self, order: &str) -> Params {
        Params {
            since: Some(self.since.clone()),
            until: self.until.clone(),
            actor: self.actor.clone(),
            group: self.group.clone(),
            model: self.model.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            decision: self.decision.clone(),
            request_id: self.request_id.clone(),
            event_type: self.event_type.clone(),
            masking: self.masking.clone(),
            text: self.text.clone(),
            order: Some(order.to_string()),
            ..Params::default()
        }
    }
}

/// Runs an `audit` command.
pub fn run(cmd: AuditCommand, target: &Target) -> Result<()> {
    match cmd {
        AuditCommand::Verify { public_key, checkpoint, content, no_fields, export, threads, json } => {
            let key = public_key
                .as_deref()
                .map(|p| audit::verify::read_public_key(p).with_context(|| "reading --public-key".to_string()))
                .transpose()?;
            let cp = checkpoint
                .as_deref()
                .map(|p| audit::verify::read_checkpoint(p).with_context(|| "reading --checkpoint".to_string()))
                .transpose()?;
            if let Some(dir) = export {
                let report = audit::export::verify_export(&dir, key.as_ref(), cp.as_ref())?;
                return finish(&report, json);
            }
            if target.server.is_some() {
                bail!(
                    "audit verify reads the data dir itself (it must not trust the server it checks): run it where \
                     the data dir is, or verify an export with --export"
                );
            }
            let dir = data_dir(target)?;
            let opts = Options {
                fields: !no_fields,
                content,
                public_key: key.as_ref(),
                checkpoint: cp.as_ref(),
                threads: threads.unwrap_or(0),
                progress: None,
            };
            let shown = Mutex::new(None::<Instant>);
            let bar = |done: u64, total: u64| progress(&shown, done, total);
            let report = if std::io::stderr().is_terminal() {
                let r = audit::verify::verify(&dir, &Options { progress: Some(&bar), ..opts });
                if shown.lock().map(|s| s.is_some()).unwrap_or(false) {
                    eprint!("\r{:78}\r", "");
                }
                r
            } else {
                audit::verify::verify(&dir, &opts)
            };
            let report = report?;
            record_verify(&dir, &report, content, cp.as_ref());
            finish(&report, json)
        }
        AuditCommand::Checkpoint { out } => match &target.server {
            Some(url) => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let url = format!("{}/admin/v1/checkpoints/latest", url.trim_end_matches('/'));
                let v =
                    rt.block_on(crate::token::call("GET", &url, target.token.as_deref().unwrap_or_default(), None))?;
                let cp: SignedCheckpoint =
                    serde_json::from_value(v).with_context(|| format!("{url} did not answer a signed checkpoint"))?;
                let key = parse_public_key(&cp.public_key).context("the checkpoint's public key is malformed")?;
                cp.verify(&key).context("the server's checkpoint does not verify under its own key")?;
                write_checkpoint(&out, &cp)?;
                println!(
                    "checkpoint of seq {} (hash {}) signed by ed25519 {} written to {}",
                    cp.body.seq,
                    cp.body.hash,
                    cp.body.key_fingerprint,
                    out.display()
                );
                Ok(())
            }
            None => {
                let dir = data_dir(target)?;
                let cp = checkpoint_local(&dir, &out)?;
                println!(
                    "checkpoint of seq {} (hash {}) signed by ed25519 {} written to {}",
                    cp.body.seq,
                    cp.body.hash,
                    cp.body.key_fingerprint,
                    out.display()
                );
                Ok(())
            }
        },
        AuditCommand::Export { since, until, out, json } => {
            if target.server.is_some() {
                bail!("audit export reads the data dir: run it where the data dir is");
            }
            let dir = data_dir(target)?;
            let now = SystemTime::now();
            let parse = |t: &Option<String>, flag: &str| {
                t.as_deref()
                    .map(|t| audit::export::parse_time(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                    .transpose()
            };
            let (from, to) = (parse(&since, "since")?, parse(&until, "until")?);
            let summary = audit::export::export(&dir, from, to, &out)?;
            let rfc = |t: Option<SystemTime>| t.map(audit::export::format_time);
            let mut e = local_event(EventType::AuditExport, Outcome::Success);
            e.details = Some(json!({
                "since": since, "until": until, "since_time": rfc(from), "until_time": rfc(to),
                "events": summary.events, "first_seq": summary.first_seq, "last_seq": summary.last_seq,
                "checkpoints": summary.checkpoints, "out": out.display().to_string(),
            }));
            audit::append_local(&dir, vec![e]).context("recording the audit.export event")?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                let range = match (summary.first_seq, summary.last_seq) {
                    (Some(a), Some(b)) => format!("seq {a}..={b}"),
                    _ => "no events in that window".into(),
                };
                println!(
                    "exported {} events ({range}) and {} checkpoints to {}; verify with: modelgate audit verify \
                     --export {} --public-key KEY",
                    summary.events,
                    summary.checkpoints,
                    out.display(),
                    out.display()
                );
            }
            Ok(())
        }
        AuditCommand::Search { filters, limit, order, json, csv } => {
            let params = filters.params(&order);
            let events = match &target.server {
                Some(url) => {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(search_remote(url, target.token.as_deref().unwrap_or_default(), &params, limit))?
                }
                None => search_local(&data_dir(target)?, &params, limit)?,
            };
            let format = if json {
                Format::Json
            } else if csv {
                Format::Csv
            } else {
                Format::Table
            };
            print_events(&events, format, true);
            Ok(())
        }
        AuditCommand::Show { request_id, json } => {
            let v = match &target.server {
                Some(url) => {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let url = format!("{}/admin/v1/exchanges/{}", url.trim_end_matches('/'), encode(&request_id));
                    rt.block_on(crate::token::call("GET", &url, target.token.as_deref().unwrap_or_default(), None))?
                }
                None => {
                    let dir = data_dir(target)?;
                    let found = Searcher::open(&dir)?.exchange(&request_id)?;
                    let rows = found.as_ref().and_then(|v| v["events"].as_array().map(Vec::len)).unwrap_or(0);
                    let e = search::read_event(Arc::new(Actor::local_user()), &request_id, rows);
                    audit::append_local(&dir, vec![e]).context("recording the audit.read event")?;
                    found.with_context(|| format!("no exchange with request id {request_id}"))?
                }
            };
            if json {
                println!("{v}");
            } else {
                print_exchange(&v);
            }
            Ok(())
        }
        AuditCommand::Tail { lines, follow, json } => {
            let format = if json { Format::Json } else { Format::Table };
            match &target.server {
                Some(url) => {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(tail_remote(url, target.token.as_deref().unwrap_or_default(), lines, follow, format))
                }
                None => tail_local(&data_dir(target)?, lines, follow, format),
            }
        }
        AuditCommand::Reindex => {
            if target.server.is_some() {
                bail!("audit reindex rebuilds the data dir's search index: run it where the data dir is");
            }
            let dir = data_dir(target)?;
            let started = Instant::now();
            let mut index = Index::open(&dir)?;
            index.reset()?;
            let p = catch_up(&mut index, true)?;
            index.optimize()?;
            println!(
                "rebuilt the search index {} from {} events in {:.1} s",
                index.path().display(),
                p.seq,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// Brings the data dir's search index up to the log's head, showing progress on stderr when
/// that takes a while (a first build, a rebuild).
fn catch_up(index: &mut Index, always: bool) -> Result<audit::index::Progress> {
    let started = Instant::now();
    let first = index.progress()?;
    let behind = first.head.saturating_sub(first.seq);
    let loud = always || behind > 50_000;
    if loud && behind > 0 {
        eprintln!("modelgate: indexing {behind} events for search ({})", index.path().display());
    }
    let mut shown = Instant::now();
    let p = index.catch_up(None, |p| {
        if loud && shown.elapsed().as_millis() >= 500 {
            shown = Instant::now();
            eprint!("\r  indexed {}/{} events", p.seq, p.head);
        }
    })?;
    if loud && behind > 0 {
        eprintln!("\r  indexed {} events in {:.1} s", p.seq - first.seq, started.elapsed().as_secs_f64());
    }
    Ok(p)
}

/// Runs a search on a data dir: catches the index up, pages until `limit`, records
/// `audit.search` as the local OS user.
fn search_local(dir: &Path, params: &Params, limit: usize) -> Result<Vec<Value>> {
    let (filter, order) = params.resolve(SystemTime::now())?;
    let mut index = Index::open(dir).with_context(|| format!("opening the search index in {}", dir.display()))?;
    catch_up(&mut index, false)?;
    drop(index);
    let mut s = Searcher::open(dir)?;
    let mut out: Vec<Value> = Vec::new();
    let mut position = None;
    while out.len() < limit {
        let q = Query {
            filter: &filter,
            order,
            position,
            limit: (limit - out.len()).min(MAX_LIMIT),
            exclude_session: None,
        };
        let page = s.search(&q)?;
        out.extend(page.events.iter().map(search::Hit::value));
        if !page.more {
            break;
        }
        position = page.position;
    }
    let e = search::search_event(Arc::new(Actor::local_user()), &filter, order, out.len(), &search::new_session(), 1);
    audit::append_local(dir, vec![e]).context("recording the audit.search event")?;
    Ok(out)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

/// One page from a running gateway: `(events, more, next_cursor)`.
async fn page_remote(base: &str, token: &str, pairs: &[(&str, &str)]) -> Result<(Vec<Value>, bool, Option<String>)> {
    let url = format!("{}/admin/v1/events?{}", base.trim_end_matches('/'), query_string(pairs));
    let v = crate::token::call("GET", &url, token, None).await?;
    let events = v["events"].as_array().cloned().unwrap_or_default();
    Ok((events, v["more"].as_bool().unwrap_or(false), v["next_cursor"].as_str().map(str::to_string)))
}

/// Runs a search on a running gateway, following its cursors until `limit`.
async fn search_remote(base: &str, token: &str, params: &Params, limit: usize) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while out.len() < limit {
        let size = (limit - out.len()).min(MAX_LIMIT).to_string();
        let mut pairs: Vec<(&str, &str)> = match &cursor {
            Some(c) => vec![("cursor", c.as_str())],
            None => params.pairs(),
        };
        pairs.push(("limit", &size));
        let (events, more, next) = page_remote(base, token, &pairs).await?;
        out.extend(events);
        match next {
            Some(c) if more => cursor = Some(c),
            _ => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

const EPOCH: &str = "1970-01-01T00:00:00Z";
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(500);

fn seq_of(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or(0)
}

/// Waits between polls of a followed tail.
fn pause(d: std::time::Duration) {
    std::thread::park_timeout(d);
}

fn tail_local(dir: &Path, lines: usize, follow: bool, format: Format) -> Result<()> {
    let mut index = Index::open(dir).with_context(|| format!("opening the search index in {}", dir.display()))?;
    catch_up(&mut index, false)?;
    let params = Params { since: Some(EPOCH.into()), ..Params::default() };
    let (filter, _) = params.resolve(SystemTime::now())?;
    let mut s = Searcher::open(dir)?;
    let latest = s.search(&Query {
        filter: &filter,
        order: search::Order::Desc,
        position: None,
        limit: lines.clamp(1, MAX_LIMIT),
        exclude_session: None,
    })?;
    let mut shown: Vec<Value> = latest.events.iter().rev().map(search::Hit::value).collect();
    if lines == 0 {
        shown.clear();
    }
    let mut last = shown.last().map_or_else(|| s.head(), |v| Ok(seq_of(v)))?;
    let mut e = local_event(EventType::AuditSearch, Outcome::Success);
    e.action = Some("audit.search".into());
    e.details = Some(json!({"tail": lines, "follow": follow, "rows": shown.len(), "filters": filter.to_details()}));
    audit::append_local(dir, vec![e]).context("recording the audit.search event")?;
    print_events(&shown, format, true);
    if !follow {
        return Ok(());
    }
    let mut out = std::io::stdout();
    loop {
        pause(FOLLOW_POLL);
        catch_up(&mut index, false)?;
        loop {
            let page = s.search(&Query {
                filter: &filter,
                order: search::Order::Asc,
                position: Some(last),
                limit: MAX_LIMIT,
                exclude_session: None,
            })?;
            let events: Vec<Value> = page.events.iter().map(search::Hit::value).collect();
            print_events(&events, format, false);
            let _ = out.flush();
            if let Some(v) = events.last() {
                last = seq_of(v);
            }
            if !page.more {
                break;
            }
        }
    }
}

async fn tail_remote(base: &str, token: &str, lines: usize, follow: bool, format: Format) -> Result<()> {
    let size = lines.clamp(1, MAX_LIMIT).to_string();
    let (latest, _, _) = page_remote(base, token, &[("since", EPOCH), ("limit", &size)]).await?;
    // Newest first: the newest event is where following starts, shown or not (`-n 0`).
    let newest = latest.first().cloned();
    let shown: Vec<Value> = if lines == 0 { Vec::new() } else { latest.into_iter().rev().collect() };
    print_events(&shown, format, true);
    if !follow {
        return Ok(());
    }
    let mut last = newest.as_ref().map_or(0, seq_of);
    // Follow from a minute before the newest event (events are chained in commit order but
    // stamped when they happen), skipping what is older than it.
    let since = newest
        .as_ref()
        .and_then(|v| v["time"].as_str())
        .and_then(|t| audit::export::parse_time(t, SystemTime::now()).ok())
        .and_then(|t| t.checked_sub(std::time::Duration::from_secs(60)))
        .map_or_else(|| EPOCH.to_string(), audit::export::format_time);
    let max = MAX_LIMIT.to_string();
    let mut cursor: Option<String> = None;
    let mut out = std::io::stdout();
    loop {
        let pairs: Vec<(&str, &str)> = match &cursor {
            Some(c) => vec![("cursor", c.as_str()), ("limit", &max)],
            None => vec![("since", &since), ("order", "asc"), ("limit", &max)],
        };
        let (events, more, next) = page_remote(base, token, &pairs).await?;
        let fresh: Vec<Value> = events.into_iter().filter(|v| seq_of(v) > last).collect();
        print_events(&fresh, format, false);
        let _ = out.flush();
        if let Some(v) = fresh.last() {
            last = seq_of(v);
        }
        if next.is_some() {
            cursor = next;
        }
        if !more {
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

fn model_of(v: &Value) -> &str {
    let m = field(v, &["gen_ai", "request.model"]);
    if !m.is_empty() {
        return m;
    }
    if v["resource"]["type"] == "model" { field(v, &["resource", "id"]) } else { "" }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Prints events as a table (with a header when `header`), JSON lines or CSV.
fn print_events(events: &[Value], format: Format, header: bool) {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for v in events {
                let _ = writeln!(out, "{v}");
            }
        }
        Format::Csv => {
            if header {
                let _ = writeln!(out, "time,seq,event_type,outcome,actor,action,model,status_code,request_id,hash");
            }
            for v in events {
                let status = v["status_code"].as_u64().map(|s| s.to_string()).unwrap_or_default();
                let cells = [
                    field(v, &["time"]),
                    &v["seq"].as_u64().unwrap_or(0).to_string(),
                    field(v, &["event_type"]),
                    field(v, &["outcome"]),
                    field(v, &["actor", "subject"]),
                    field(v, &["action"]),
                    model_of(v),
                    &status,
                    field(v, &["request_id"]),
                    field(v, &["hash"]),
                ]
                .map(csv_cell);
                let _ = writeln!(out, "{}", cells.join(","));
            }
        }
        Format::Table => {
            if header {
                let _ = writeln!(
                    out,
                    "{:<24} {:>8} {:<22} {:<8} {:<24} {:<22} {:<20} {:>6} REQUEST ID",
                    "TIME", "SEQ", "EVENT", "OUTCOME", "ACTOR", "ACTION", "MODEL", "STATUS"
                );
            }
            for v in events {
                let status = v["status_code"].as_u64().map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                let dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
                let _ = writeln!(
                    out,
                    "{:<24} {:>8} {:<22} {:<8} {:<24} {:<22} {:<20} {:>6} {}",
                    field(v, &["time"]),
                    v["seq"].as_u64().unwrap_or(0),
                    field(v, &["event_type"]),
                    field(v, &["outcome"]),
                    dash(field(v, &["actor", "subject"])),
                    dash(field(v, &["action"])),
                    dash(model_of(v)),
                    status,
                    dash(field(v, &["request_id"])),
                );
            }
            if header && events.is_empty() {
                let _ = writeln!(out, "(no events)");
            }
        }
    }
}

/// Prints a reconstructed exchange for people.
fn print_exchange(v: &Value) {
    let s = |x: &Value| match x {
        Value::Null => "-".to_string(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    println!("exchange {}", s(&v["request_id"]));
    let id = &v["identity"];
    println!(
        "  who:        {} ({}, {}, via {}){}",
        s(&id["subject"]),
        s(&id["kind"]),
        s(&id["issuer"]),
        s(&id["auth_method"]),
        id["groups"]
            .as_array()
            .map(|g| format!(" groups {}", g.iter().map(s).collect::<Vec<_>>().join(",")))
            .unwrap_or_default()
    );
    let c = &v["classification"];
    println!(
        "  what:       {} on {} (stream {}, upstream {}, provider {})",
        s(&c["action"]),
        s(&c["model"]),
        s(&c["stream"]),
        s(&c["upstream"]),
        s(&c["provider"])
    );
    if let Some(p) = v.get("policy") {
        println!("  policy:     {p}");
    }
    println!(
        "  outcome:    {} (status {}, end {}{})",
        s(&v["outcome"]),
        s(&v["status_code"]),
        s(&v["end"]),
        v["reason"].as_str().map(|r| format!(", reason {r}")).unwrap_or_default()
    );
    let t = &v["timing"];
    println!(
        "  timing:     started {}, ended {}, latency {} ms, first byte {} ms",
        s(&t["started"]),
        s(&t["ended"]),
        s(&t["latency_ms"]),
        s(&t["ttft_ms"])
    );
    let u = &v["usage"];
    println!("  usage:      {} input tokens, {} output tokens", s(&u["input_tokens"]), s(&u["output_tokens"]));
    for (name, b) in [("request", &v["request"]), ("response", &v["response"])] {
        if b.is_null() {
            println!("  {name}:    (not recorded)");
            continue;
        }
        println!(
            "  {name}:{} {} bytes{}, digest {} ({})",
            if name == "request" { "    " } else { "   " },
            s(&b["size"]),
            if b["truncated"] == true { " (truncated)" } else { "" },
            s(&b["digest"]),
            if b["verified"] == true { "verified" } else { "NOT VERIFIED" }
        );
        if let Some(chunks) = b["chunks"].as_array() {
            println!(
                "              streamed in {} chunks, first at {} ms, last at {} ms",
                chunks.len(),
                s(&b["stream"]["first_ms"]),
                s(&b["stream"]["last_ms"])
            );
        }
        if let Some(text) = b["text"].as_str() {
            for line in text.lines().take(20) {
                println!("      | {line}");
            }
        } else if let Some(body) = b["body"].as_str() {
            for line in body.lines().take(20) {
                println!("      | {line}");
            }
        }
    }
    // The approval story: who asked, who decided and why, the grant that let the call through.
    for e in v["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let ev = &e["event"];
        let Some(kind) = ev["event_type"].as_str().and_then(|t| t.strip_prefix("approval.")) else { continue };
        let a = &ev["approval"];
        let grant = &a["grant"];
        println!(
            "  approval:   {kind:<9} {} by {}{}{}",
            s(&a["id"]),
            s(&ev["actor"]["subject"]),
            ev["reason"].as_str().map(|r| format!(": \"{r}\"")).unwrap_or_default(),
            if grant.is_object() {
                format!(" (grant {} {}, until {})", s(&grant["kind"]), s(&grant["id"]), s(&grant["expires"]))
            } else if kind == "requested" {
                format!(" (requester {})", s(&a["requester"]))
            } else {
                String::new()
            }
        );
        // The grant's use carries the whole approval: who asked, who approved and why.
        if kind == "used" {
            let approvers: Vec<String> = a["approvers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| match p["reason"].as_str() {
                    Some(r) => format!("{} (\"{r}\")", s(&p["subject"])),
                    None => s(&p["subject"]),
                })
                .collect();
            println!(
                "              requested by {} in exchange {}; approved by {}",
                s(&a["requester"]),
                s(&a["requested_by"]),
                if approvers.is_empty() { "-".to_string() } else { approvers.join(", ") }
            );
        }
    }
    let chain = &v["chain"];
    println!(
        "  chain:      {} (seq {}..{}); checkpoint: {}",
        if chain["verified"] == true { "verified" } else { "NOT VERIFIED" },
        s(&chain["first_seq"]),
        s(&chain["last_seq"]),
        match &chain["checkpoint"] {
            cp if cp["covered"] == true => format!(
                "seq {} signed {} (signature {}, {} the log)",
                s(&cp["seq"]),
                s(&cp["time"]),
                s(&cp["signature"]),
                if cp["matches_log"] == true { "matches" } else { "DOES NOT MATCH" }
            ),
            _ => "none yet covers it".to_string(),
        }
    );
    for e in v["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "    seq {:>8} {:<22} {}  hash {}",
            s(&e["seq"]),
            s(&e["event_type"]),
            if e["verified"] == true { "ok " } else { "BAD" },
            s(&e["hash"])
        );
        for p in e["problems"].as_array().map(Vec::as_slice).unwrap_or_default() {
            println!("        problem: {}", s(p));
        }
    }
}

/// The data dir, which must hold an audit log already (never created by a reader).
fn data_dir(target: &Target) -> Result<PathBuf> {
    let dir = target.data_dir()?;
    if !dir.join(DB_FILE).exists() {
        bail!("{} holds no audit log ({DB_FILE}); pass --data-dir or --config", dir.display());
    }
    Ok(dir)
}

fn local_event(kind: EventType, outcome: Outcome) -> Event {
    let mut e = Event::new(kind, outcome).actor(Arc::new(Actor::local_user()));
    e.resource = Some(Resource { id: None, kind: "audit".into(), upstream: None });
    e
}

/// Prints the report; a mismatch is an error naming the first bad seq (non-zero exit).
fn finish(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.to_text());
    }
    match &report.failure {
        None => Ok(()),
        Some(f) => bail!("audit verify failed: first bad seq {} ({})", f.seq, f.kind.as_str()),
    }
}

/// Appends `audit.verify` after verifying; its own event can never fail the run it records.
fn record_verify(dir: &Path, report: &Report, content: bool, cp: Option<&SignedCheckpoint>) {
    let outcome = if report.ok { Outcome::Success } else { Outcome::Failure };
    let mut e = local_event(EventType::AuditVerify, outcome);
    e.reason = report.failure.as_ref().map(|f| f.kind.as_str().to_string());
    e.details = Some(json!({
        "events": report.events,
        "last_seq": report.last_seq,
        "head_hash": report.head_hash,
        "checkpoints": report.checkpoints,
        "last_signed_seq": report.last_signed_seq,
        "key_fingerprint": report.key_fingerprint,
        "fields": report.fields_checked,
        "content": content,
        "checkpoint_file_seq": cp.map(|c| c.body.seq),
        "first_bad_seq": report.failure.as_ref().map(|f| f.seq),
        "warnings": report.warnings.len(),
    }));
    if let Err(err) = audit::append_local(dir, vec![e]) {
        eprintln!("modelgate: warning: could not record the audit.verify event: {err}");
    }
}

/// Appends `audit.checkpoint`, signs the new head with the data dir's key, stores the
/// checkpoint and writes it to `out`.
fn checkpoint_local(dir: &Path, out: &Path) -> Result<SignedCheckpoint> {
    let key = Keypair::load(dir)
        .with_context(|| format!("loading the signing key in {} (run as the gateway's user)", dir.display()))?;
    let mut e = local_event(EventType::AuditCheckpoint, Outcome::Success);
    e.details = Some(json!({ "out": out.display().to_string(), "key_fingerprint": key.fingerprint() }));
    let stored = audit::append_local(dir, vec![e]).context("recording the audit.checkpoint event")?;
    let Some(head) = stored.into_iter().next() else { bail!("the audit.checkpoint event was not stored") };
    let body = CheckpointBody {
        gateway_id: head.gateway_id.clone(),
        hash: head.hash.clone().unwrap_or_default(),
        key_fingerprint: key.fingerprint(),
        schema: CHECKPOINT_SCHEMA.into(),
        seq: head.seq,
        time: audit::event::now_rfc3339(),
        writer_id: head.writer_id.clone(),
    };
    let cp = key.sign(body);
    Store::open_writer(dir)?.insert_checkpoint(cp.body.seq, &cp.body.canonical_bytes(), &cp.signature_bytes())?;
    write_checkpoint(out, &cp)?;
    Ok(cp)
}

fn write_checkpoint(out: &Path, cp: &SignedCheckpoint) -> Result<()> {
    let mut text = serde_json::to_string_pretty(cp)?;
    text.push('\n');
    let mut f = std::fs::File::create(out).with_context(|| format!("writing {}", out.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    f.sync_all().with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Draws a plain-text progress bar on stderr (called only when stderr is a terminal), at most
/// ten times a second.
fn progress(shown: &Mutex<Option<Instant>>, done: u64, total: u64) {
    let Ok(mut last) = shown.lock() else { return };
    if last.is_some_and(|t| t.elapsed().as_millis() < 100) || total < 100_000 {
        return;
    }
    *last = Some(Instant::now());
    let frac = (done as f64 / total.max(1) as f64).min(1.0);
    let filled = (frac * 40.0) as usize;
    eprint!(
        "\r  verifying [{}{}] {:>3.0}% {done}/{total} events",
        "#".repeat(filled),
        ".".repeat(40 - filled),
        frac * 100.0
    );
}
