//! Crash durability (SPEC section 5): the gateway is killed with SIGKILL at random moments under
//! a mixed load of streamed and non-streamed calls, restarted on the same data dir, and after
//! every restart the trail must hold what its durability mode promises:
//!
//! - every mode: the chain verifies, and the exchanges the kill cut off (a request record
//!   without a completion) are listed by the next start's `gateway.recovered`, and nothing else;
//! - `strict`: every response received in full has its request and completion records, and
//!   every request the model saw has its request record;
//! - `balanced`: every response of which any byte (the head) arrived has its request record.
//!
//! The kill moments and the load's shape come from a seeded RNG: half the kills come after a
//! random delay (5-600 ms into the load), the others right after the n-th response head or the
//! n-th whole response reached a client, the moments `balanced` and `strict` guard. The seed is
//! printed at the start and named in every assertion (`MODELGATE_CRASH_SEED=N` replays a run's
//! choices; the machine's timing still varies).
//!
//! Each mode gets 20 kill cycles, as the issue asks; the three modes are separate tests, so the
//! harness runs them side by side (about 5-10 s each on two cores). A cycle costs a start of the
//! binary, the load window, `modelgate audit verify` and the checks.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use testkit::client::Http1Client;
use testkit::{Flavor, GatewayProcess, MockOptions, MockServer};
use tokio::sync::Notify;

use crate::support::{SOON, audit_events, bin, json_req};

/// Kill cycles per mode.
const CYCLES: usize = 20;
/// Concurrent clients during a cycle.
const CLIENTS: usize = 6;
/// Calls per client per cycle at most (the load is bounded even if the kill came late).
const MAX_CALLS: usize = 60;

/// A small deterministic RNG (SplitMix64): the test needs reproducible choices, not quality.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// The seed: `MODELGATE_CRASH_SEED` when set, else the clock.
pub(crate) fn seed() -> u64 {
    std::env::var("MODELGATE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// A config with the audit trail in `data_dir`, one vLLM-style upstream in front of `mock`.
pub(crate) fn audit_config(data_dir: &Path, durability: &str, mock: &MockServer, audit_extra: &str) -> String {
    let up = crate::support::upstream("up", &mock.url(), mock.flavor().name(), &["mock-*"], "");
    crate::support::config(
        &format!("data_dir = \"{}\"\n\n[audit]\ndurability = \"{durability}\"\n{audit_extra}", data_dir.display()),
        &up,
    )
}

/// A mock whose streams are paced per request (`x-mock-delay-ms`).
pub(crate) async fn paced_mock() -> MockServer {
    MockServer::start(MockOptions::new(Flavor::Vllm).with_models(&["mock-model"])).await
}

/// Starts the real binary with extra environment variables.
pub(crate) fn launch(config: &str, env: &[(&str, &str)]) -> GatewayProcess {
    GatewayProcess::start_with_env(bin(), Some(config), &[], env)
}

/// What one call saw.
#[derive(Clone, Default)]
pub(crate) struct Call {
    /// Streamed (SSE) or not.
    pub(crate) stream: bool,
    /// `x-request-id` of the response head, when a head arrived.
    pub(crate) id: Option<String>,
    /// Status of the response head.
    pub(crate) status: Option<u16>,
    /// Whether any byte of the response (its head) arrived.
    pub(crate) any_byte: bool,
    /// Body bytes received.
    pub(crate) body: Vec<u8>,
    /// Whether the body ended cleanly (every byte, including the end of a chunked body).
    pub(crate) full: bool,
    /// Why the call broke off, if it did.
    pub(crate) error: Option<String>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = if body.chars().count() > 300 {
            let tail: String = body.chars().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect();
            format!("{}…{tail}", body.chars().take(100).collect::<String>())
        } else {
            body.into_owned()
        };
        f.debug_struct("Call")
            .field("stream", &self.stream)
            .field("id", &self.id)
            .field("status", &self.status)
            .field("full", &self.full)
            .field("body_len", &self.body.len())
            .field("body", &body)
            .field("error", &self.error)
            .finish()
    }
}

impl Call {
    /// A 200 whose body arrived whole.
    pub(crate) fn ok(&self) -> bool {
        self.status == Some(200) && self.full
    }
}

/// One chat call with mock controls; never panics on a broken connection (the gateway may be
/// killed at any moment), only records what arrived.
pub(crate) async fn one_call(
    client: &Http1Client,
    url: &str,
    key: &str,
    stream: bool,
    mock: &[(&str, String)],
) -> Call {
    match send_call(client, url, key, stream, mock).await {
        (call, Some(body)) => read_rest(call, body).await,
        (call, None) => call,
    }
}

/// Sends a chat call and returns what the head said, with the body still to read.
pub(crate) async fn send_call(
    client: &Http1Client,
    url: &str,
    key: &str,
    stream: bool,
    mock: &[(&str, String)],
) -> (Call, Option<Incoming>) {
    let body = crate::support::chat("mock-model", stream);
    let bearer = format!("Bearer {key}");
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &bearer)];
    headers.extend(mock.iter().map(|(k, v)| (*k, v.as_str())));
    let req = json_req("POST", url, &body, &headers);
    let mut call = Call { stream, ..Call::default() };
    match client.request(req).await {
        Ok(res) => {
            call.any_byte = true;
            call.status = Some(res.status().as_u16());
            call.id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            (call, Some(res.into_body()))
        }
        Err(e) => {
            call.error = Some(format!("{e:?}"));
            (call, None)
        }
    }
}

/// Reads the rest of a call's body, noting whether it ended cleanly.
pub(crate) async fn read_rest(mut call: Call, mut body: Incoming) -> Call {
    loop {
        match body.frame().await {
            None => {
                call.full = true;
                return call;
            }
            Some(Err(e)) => {
                call.error = Some(format!("{e:?}"));
                return call;
            }
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    call.body.extend_from_slice(&d);
                }
            }
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub(crate) async fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Re-verifies the chain as an auditor would, without modelgate's verifier: SQLite's own
/// integrity check, then every stored event in `seq` order: contiguous `seq` from 1, `prev_hash`
/// equal to the previous event's `hash` (32 zero bytes first), `hash = SHA-256("modelgate.audit.v1"
/// || prev || canonical)`, the canonical bytes RFC 8785 JSON without `hash`, and the indexed
/// columns equal to the hashed fields. Returns the number of events.
pub(crate) fn verify_chain(data_dir: &Path) -> Result<u64, String> {
    use ::audit::canonical::{GENESIS, chain_hash, hex, to_jcs};
    let db = data_dir.join("audit.db");
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("open {}: {e}", db.display()))?;
    conn.busy_timeout(SOON).map_err(|e| e.to_string())?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("SQLite integrity check: {check}"));
    }
    let mut st = conn
        .prepare(
            "SELECT seq, hash, prev_hash, event_type, outcome, request_id, writer_id, canonical FROM events ORDER BY seq",
        )
        .map_err(|e| e.to_string())?;
    let mut rows = st.query([]).map_err(|e| e.to_string())?;
    let mut prev = GENESIS;
    let mut n = 0u64;
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        let seq: i64 = r.get(0).map_err(|e| e.to_string())?;
        let hash: Vec<u8> = r.get(1).map_err(|e| e.to_string())?;
        let prev_hash: Vec<u8> = r.get(2).map_err(|e| e.to_string())?;
        let event_type: String = r.get(3).map_err(|e| e.to_string())?;
        let outcome: String = r.get(4).map_err(|e| e.to_string())?;
        let request_id: Option<String> = r.get(5).map_err(|e| e.to_string())?;
        let writer_id: String = r.get(6).map_err(|e| e.to_string())?;
        let canonical: Vec<u8> = r.get(7).map_err(|e| e.to_string())?;
        n += 1;
        let bad = |why: String| Err(format!("seq {seq}: {why}"));
        if seq as u64 != n {
            return bad(format!("expected seq {n} (an event is missing or out of order)"));
        }
        if prev_hash[..] != prev[..] {
            return bad("prev_hash is not the previous event's hash".into());
        }
        let computed = chain_hash(&prev, &canonical);
        if hash[..] != computed[..] {
            return bad("hash does not match the canonical bytes".into());
        }
        let v: Value = serde_json::from_slice(&canonical).map_err(|e| format!("seq {seq}: not JSON: {e}"))?;
        if to_jcs(&v).map_err(|e| e.to_string())? != canonical {
            return bad("stored bytes are not RFC 8785 canonical JSON".into());
        }
        if v.get("hash").is_some() {
            return bad("canonical bytes include `hash`".into());
        }
        if v["seq"] != seq || v["prev_hash"] != hex(&prev) {
            return bad("hashed seq/prev_hash differ from the stored ones".into());
        }
        if v["event_type"] != event_type.as_str()
            || v["outcome"] != outcome.as_str()
            || v["writer_id"] != writer_id.as_str()
            || v.get("request_id").and_then(Value::as_str) != request_id.as_deref()
        {
            return bad("an indexed column differs from the hashed event".into());
        }
        prev = computed;
    }
    Ok(n)
}

/// Runs `modelgate audit verify --content --data-dir DIR` (chain, index columns, checkpoint
/// signatures and every recorded body's digest).
pub(crate) fn cli_verify(data_dir: &Path) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["audit", "verify", "--content", "--data-dir"])
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The chain verifies, by `modelgate audit verify` and by the independent check above.
pub(crate) fn assert_chain(data_dir: &Path, tag: &str) {
    let out = cli_verify(data_dir);
    assert!(
        out.status.success(),
        "{tag}: modelgate audit verify failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Err(e) = verify_chain(data_dir) {
        panic!("{tag}: the chain does not verify: {e}");
    }
}

/// The trail of a data dir, indexed for the checks.
pub(crate) struct Trail {
    pub(crate) events: Vec<Value>,
}

impl Trail {
    pub(crate) fn load(data_dir: &Path) -> Trail {
        Trail { events: audit_events(data_dir) }
    }

    fn kind(e: &Value, suffix: &str) -> bool {
        e["event_type"].as_str().is_some_and(|t| t.ends_with(suffix))
    }

    /// Request records by request id.
    pub(crate) fn requests(&self) -> HashMap<&str, &Value> {
        self.events
            .iter()
            .filter(|e| Self::kind(e, ".request"))
            .filter_map(|e| Some((e["request_id"].as_str()?, e)))
            .collect()
    }

    /// Completion records by request id.
    pub(crate) fn completions(&self) -> HashMap<&str, &Value> {
        self.events
            .iter()
            .filter(|e| Self::kind(e, ".completion"))
            .filter_map(|e| Some((e["request_id"].as_str()?, e)))
            .collect()
    }

    /// Events of one type.
    pub(crate) fn of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["event_type"] == t)
    }

    /// The writer id of the gateway process `pid` (from its `gateway.start`).
    pub(crate) fn writer_of(&self, pid: u32) -> Option<String> {
        self.of_type("gateway.start")
            .find(|e| e["details"]["pid"] == pid)
            .and_then(|e| e["writer_id"].as_str())
            .map(str::to_string)
    }
}

/// Checks the `gateway.recovered` of writer `current` against the exchanges the crashed writer
/// `crashed` left open: the same set, each entry with its request's type and action. Returns how
/// many were listed.
pub(crate) fn check_recovered(trail: &Trail, crashed: &str, current: &str, tag: &str) -> usize {
    let completions = trail.completions();
    let open: HashMap<&str, &Value> = trail
        .events
        .iter()
        .filter(|e| e["writer_id"] == crashed && Trail::kind(e, ".request"))
        .filter_map(|e| Some((e["request_id"].as_str()?, e)))
        .filter(|(id, _)| !completions.contains_key(id))
        .collect();
    let recovered: Vec<&Value> = trail.of_type("gateway.recovered").filter(|e| e["writer_id"] == current).collect();
    assert!(recovered.len() <= 1, "{tag}: {} gateway.recovered events by one start", recovered.len());
    let Some(rec) = recovered.first() else {
        assert!(
            open.is_empty(),
            "{tag}: no gateway.recovered, but the crash left {} exchange(s) open: {:?}",
            open.len(),
            open.keys().collect::<Vec<_>>()
        );
        return 0;
    };
    assert_eq!(rec["outcome"], "unknown", "{tag}: {rec}");
    assert_eq!(rec["end"], "gateway_restart", "{tag}: {rec}");
    let listed = rec["details"]["exchanges"].as_array().unwrap_or_else(|| panic!("{tag}: no exchanges[] in {rec}"));
    assert_eq!(rec["details"]["count"], listed.len(), "{tag}: {rec}");
    if let Some(writers) = rec["details"].get("crashed_writers") {
        assert!(writers.as_array().is_some_and(|w| w.iter().any(|w| w == crashed)), "{tag}: {rec}");
    }
    let mut seen = HashSet::new();
    for x in listed {
        let id = x["request_id"].as_str().unwrap_or_else(|| panic!("{tag}: entry without request_id: {x}"));
        assert!(seen.insert(id), "{tag}: {id} listed twice in {rec}");
        assert_eq!(x["writer_id"], crashed, "{tag}: {id} listed with another writer: {x}");
        assert_eq!(x["outcome"], "unknown", "{tag}: {x}");
        assert_eq!(x["end"], "gateway_restart", "{tag}: {x}");
        let req = open.get(id).unwrap_or_else(|| {
            panic!(
                "{tag}: gateway.recovered lists {id}, which is not an open exchange of the crashed writer \
                 (completion: {:?})",
                completions.get(id)
            )
        });
        assert_eq!(x["event_type"], req["event_type"], "{tag}: {x}");
        assert_eq!(x["action"], req["action"], "{tag}: {x}");
    }
    let missing: Vec<&&str> = open.keys().filter(|id| !seen.contains(**id)).collect();
    assert!(missing.is_empty(), "{tag}: exchanges cut off by the kill but not in gateway.recovered: {missing:?}");
    listed.len()
}

/// What the clients of a cycle report as it happens, for kills aimed right after an event.
#[derive(Default)]
struct Progress {
    stop: AtomicBool,
    heads: AtomicUsize,
    answers: AtomicUsize,
    changed: Notify,
}

/// When a cycle's kill comes.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// After a random delay.
    Delay(Duration),
    /// As soon as the n-th response head arrived (the moment `balanced` guards).
    Head(usize),
    /// As soon as the n-th response arrived whole (the moment `strict` guards).
    Answer(usize),
}

impl KillAt {
    fn pick(rng: &mut Rng) -> KillAt {
        match rng.range(0, 4) {
            0 => KillAt::Head(rng.range(1, 12) as usize),
            1 => KillAt::Answer(rng.range(1, 12) as usize),
            _ => KillAt::Delay(Duration::from_millis(rng.range(5, 600))),
        }
    }

    /// Waits for the moment (at most a second for an event that may not come).
    async fn wait(self, p: &Progress) {
        let (counter, n) = match self {
            KillAt::Delay(d) => return tokio::time::sleep(d).await,
            KillAt::Head(n) => (&p.heads, n),
            KillAt::Answer(n) => (&p.answers, n),
        };
        let give_up = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let changed = p.changed.notified();
            if counter.load(Ordering::SeqCst) >= n {
                return;
            }
            if tokio::time::timeout_at(give_up, changed).await.is_err() {
                return;
            }
        }
    }
}

/// One client's share of a cycle: calls until told to stop (or `MAX_CALLS`), alternating
/// randomly between streams of random length and pace and non-streamed calls.
/// How long clients may take to notice a killed gateway.
const KILL_BOUND: Duration = Duration::from_secs(60);

async fn client_loop(url: String, key: Arc<str>, seed: u64, progress: Arc<Progress>) -> Vec<Call> {
    let mut rng = Rng::new(seed);
    let client = testkit::client::http1_client();
    let mut calls = Vec::new();
    for _ in 0..MAX_CALLS {
        if progress.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = rng.range(0, 2) == 0;
        let mut mock = vec![("x-mock-tokens", rng.range(2, 30).to_string())];
        if stream {
            mock.push(("x-mock-delay-ms", rng.range(2, 30).to_string()));
        } else {
            mock.push(("x-mock-head-delay-ms", rng.range(0, 40).to_string()));
        }
        let call = match send_call(&client, &url, &key, stream, &mock).await {
            (call, Some(body)) => {
                progress.heads.fetch_add(1, Ordering::SeqCst);
                progress.changed.notify_waiters();
                let call = read_rest(call, body).await;
                if call.full {
                    progress.answers.fetch_add(1, Ordering::SeqCst);
                    progress.changed.notify_waiters();
                }
                call
            }
            (call, None) => call,
        };
        let broken = call.status.is_none();
        calls.push(call);
        if broken {
            // The gateway is gone: nothing more to learn in this cycle.
            break;
        }
    }
    calls
}

/// What the cycles added up to, to show the test exercised what it claims.
#[derive(Debug, Default)]
struct Totals {
    calls: usize,
    full: usize,
    cut_streams: usize,
    recovered: usize,
    seen_by_model: usize,
}

async fn crash_cycles(mode: &str) {
    let seed = seed();
    println!("crash test ({mode}) seed: {seed} (replay with MODELGATE_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mock = paced_mock().await;
    let data = testkit::temp_dir(&format!("crash-{mode}"));
    let cfg = audit_config(data.path(), mode, &mock, "");
    let mut gw = launch(&cfg, &[]);
    let key: Arc<str> = gw.create_key("crash-tester", &[])["secret"].as_str().unwrap().into();
    let mut totals = Totals::default();
    let mut writer = poll("the first gateway.start", SOON, || Trail::load(data.path()).writer_of(gw.pid())).await;
    for cycle in 0..CYCLES {
        let tag = format!("[{mode} seed={seed} cycle={cycle}]");
        let url = format!("{}/v1/chat/completions", gw.data_url);
        let progress = Arc::new(Progress::default());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(client_loop(url.clone(), key.clone(), rng.next(), progress.clone())))
            .collect();
        let kill_at = KillAt::pick(&mut rng);
        let tag = format!("{tag} kill at {kill_at:?}");
        kill_at.wait(&progress).await;
        gw.kill9();
        progress.stop.store(true, Ordering::SeqCst);
        let mut calls = Vec::new();
        for c in clients {
            // A SIGKILL waits for an fsync in progress (the process is in uninterruptible sleep
            // until it returns), which on a loaded disk can take seconds: a generous bound.
            let got = tokio::time::timeout(KILL_BOUND, c)
                .await
                .unwrap_or_else(|_| panic!("{tag}: a client hung after the kill"));
            calls.extend(got.unwrap());
        }

        gw = launch(&cfg, &[]);
        let current =
            poll(&format!("{tag} gateway.start of the restart"), SOON, || Trail::load(data.path()).writer_of(gw.pid()))
                .await;
        assert_chain(data.path(), &format!("{tag} after a kill -9"));
        let trail = Trail::load(data.path());
        let requests = trail.requests();
        let completions = trail.completions();
        for c in &calls {
            let Some(id) = c.id.as_deref() else { continue };
            assert_eq!(c.status, Some(200), "{tag}: {c:?}");
            assert!(c.any_byte);
            if mode != "async" {
                // `balanced` (and `strict`, whose request record precedes even the forwarding).
                assert!(requests.contains_key(id), "{tag}: a response byte arrived, no request record: {c:?}");
            }
            if mode == "strict" && c.full {
                let done = completions
                    .get(id)
                    .unwrap_or_else(|| panic!("{tag}: response received in full, no completion record: {c:?}"));
                assert_eq!(done["end"], "completed", "{tag}: {done}");
                assert_eq!(done["status_code"], 200, "{tag}: {done}");
                assert_eq!(done["bytes_out"], c.body.len(), "{tag}: {done}");
            }
        }
        if mode == "strict" {
            let seen = mock.requests();
            for r in &seen {
                let id = r.header("x-request-id").unwrap_or_else(|| panic!("{tag}: upstream request without id"));
                assert!(requests.contains_key(id), "{tag}: the model saw {id}, which has no request record");
            }
            totals.seen_by_model = seen.len();
        }
        totals.recovered += check_recovered(&trail, &writer, &current, &tag);
        totals.calls += calls.len();
        totals.full += calls.iter().filter(|c| c.full).count();
        totals.cut_streams += calls.iter().filter(|c| c.stream && c.any_byte && !c.full).count();
        writer = current;
    }
    println!("crash test ({mode}): {totals:?} in {:?}", began.elapsed());
    // The test is only worth something if the kills landed on work in flight.
    assert!(totals.full > 0, "[{mode} seed={seed}] no call completed in any cycle: {totals:?}");
    assert!(totals.recovered > 0, "[{mode} seed={seed}] no kill cut off a recorded exchange: {totals:?}");
    assert!(totals.cut_streams > 0, "[{mode} seed={seed}] no kill landed mid-stream: {totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_survives_kill_9_under_load() {
    crash_cycles("strict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_survives_kill_9_under_load() {
    crash_cycles("balanced").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_survives_kill_9_under_load() {
    crash_cycles("async").await;
}

/// The in-test verifier above must be able to fail: it catches a changed event, a removed one
/// and two swapped ones in a real gateway's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_check_catches_tampering() {
    let mock = paced_mock().await;
    let data = testkit::temp_dir("crash-tamper");
    let mut gw = launch(&audit_config(data.path(), "strict", &mock, ""), &[]);
    let key = gw.create_key("crash-tester", &[])["secret"].as_str().unwrap().to_string();
    let client = testkit::client::http1_client();
    let url = format!("{}/v1/chat/completions", gw.data_url);
    for stream in [false, true, false] {
        assert!(one_call(&client, &url, &key, stream, &[]).await.ok());
    }
    gw.kill9();
    let n = verify_chain(data.path()).unwrap_or_else(|e| panic!("an untouched store fails: {e}"));
    assert!(n >= 8, "{n} events");
    // Fold the WAL into the file, keep a copy, and start each case from it.
    let db = data.path().join("audit.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
    let pristine = std::fs::read(&db).unwrap();
    let tamper = |sql: &str| {
        std::fs::write(&db, &pristine).unwrap();
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data.path().join(format!("audit.db{ext}")));
        }
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let ours = verify_chain(data.path());
        // modelgate's own verifier agrees.
        let cli = cli_verify(data.path());
        assert_eq!(cli.status.success(), ours.is_ok(), "{sql}: {ours:?} but {cli:?}");
        ours
    };
    assert_eq!(tamper("SELECT 1").unwrap(), n, "the untouched copy");
    let changed = tamper(
        "UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), 'crash-tester', 'crash-tested') AS BLOB) \
         WHERE seq = (SELECT min(seq) FROM events WHERE event_type = 'inference.request')",
    );
    assert!(changed.unwrap_err().contains("hash does not match"), "a changed event passes");
    let removed = tamper("DELETE FROM events WHERE seq = 4");
    assert!(removed.unwrap_err().contains("seq 5"), "a removed event is not found at the next seq");
    let swapped = tamper(
        "UPDATE events SET seq = -1 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 4; UPDATE events SET seq = 4 WHERE seq = -1;",
    );
    assert!(swapped.is_err(), "two swapped events pass");
    let column = tamper("UPDATE events SET outcome = outcome || 'x' WHERE seq = 6");
    assert!(column.unwrap_err().contains("indexed column"), "a changed index column passes");
}
