//! The writer: one thread per process that owns the store's write connection, takes everything
//! queued since its last commit, appends it in one transaction and commits once (group commit).
//!
//! Producers never touch SQLite. They push onto a mutex-guarded vector the thread swaps out
//! whole, and, when they must wait for durability, hold a [`Ticket`] the thread resolves after
//! the commit's fsync. Three ways in, matching SPEC section 5:
//! - [`Audit::durable`]: `strict`/`balanced` records. Refused at once while the store fails
//!   closed; waits for room when the queue is over its bound.
//! - [`Audit::submit`]: records that must not be lost but nobody waits for (completions in
//!   `balanced`, lifecycle and admin events). Never refused; kept for retry during an outage.
//! - [`Audit::best_effort`]: `async` records, dropped when the queue is full and counted in the
//!   next `audit.gap` event.
//!
//! On a write or fsync error the batch is rolled back, its tickets fail (callers get 503), its
//! records are kept, and the store is marked failed. The thread retries every
//! [`RETRY_INTERVAL`]; the first successful commit carries the kept records and an
//! `audit.outage` event with how many calls were refused and for how long.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Notify, oneshot};

use crate::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, KeyError, Keypair, SignedCheckpoint};
use crate::content::{Recording, encode};
use crate::event::{Actor, Event, EventType, Outcome, now_rfc3339};
use crate::metrics::AuditMetrics;
use crate::store::{ContentRow, Store, StoreError};

/// How long a failed store waits before the next attempt.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// Environment variable naming a fault-injection file (tests): while it holds `full`, the store
/// refuses to grow (SQLite's own `SQLITE_FULL`); while it holds `fsync`, every commit fails as
/// if fsync had.
pub const FAULTS_ENV: &str = "MODELGATE_AUDIT_FAULTS";

/// The store is failing closed: nothing may proceed unaudited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the audit store is unavailable")]
pub struct Unavailable;

/// One record for the writer: the event and the bodies recorded with it.
#[derive(Debug)]
pub struct Entry {
    /// The event; the writer fills `seq`, `prev_hash`, `hash`, `recorded_time`, `gateway_id`,
    /// `writer_id` and `content`.
    pub event: Event,
    /// Request body to store.
    pub input: Option<Recording>,
    /// Response body to store.
    pub output: Option<Recording>,
}

impl Entry {
    /// A record without bodies.
    pub fn event(event: Event) -> Entry {
        Entry { event, input: None, output: None }
    }
}

/// Resolves once the record is durable, or fails when its commit did.
#[derive(Debug)]
pub struct Ticket(oneshot::Receiver<Result<(), Unavailable>>);

impl Future for Ticket {
    type Output = Result<(), Unavailable>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.unwrap_or(Err(Unavailable)))
    }
}

/// Settings of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The data dir holding `audit.db` and the signing key.
    pub data_dir: PathBuf,
    /// Records queued before `durable` waits and `best_effort` drops.
    pub queue_limit: usize,
    /// A checkpoint after this many events...
    pub checkpoint_every: u64,
    /// ...or this long after the last one, whichever comes first (when there are new events).
    pub checkpoint_interval: Duration,
    /// `gateway` or `cli`.
    pub kind: &'static str,
}

impl WriterConfig {
    /// Defaults for a gateway writing into `data_dir`.
    pub fn gateway(data_dir: &Path) -> WriterConfig {
        WriterConfig {
            data_dir: data_dir.to_path_buf(),
            queue_limit: 65_536,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(30),
            kind: "gateway",
        }
    }
}

/// Opening the audit trail failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key could not be loaded or created.
    #[error("audit signing key: {0}")]
    Key(#[from] KeyError),
    /// The writer thread could not start.
    #[error("starting the audit writer: {0}")]
    Thread(std::io::Error),
}

/// An exchange a crash cut off, found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutOff {
    /// Its request id.
    pub request_id: String,
    /// Its request event's type.
    pub event_type: String,
    /// Its action.
    pub action: Option<String>,
    /// The crashed writer.
    pub writer_id: String,
}

/// What opening found.
#[derive(Debug)]
pub struct Opened {
    /// The signing key's fingerprint.
    pub fingerprint: String,
    /// Whether the key was created now (first start).
    pub key_created: bool,
    /// Exchanges left without a completion by crashed writers.
    pub cut_off: Vec<CutOff>,
    /// Gateway writers that neither stopped cleanly nor were reported yet (crashed runs), even
    /// when they left no exchange open.
    pub crashed: Vec<String>,
}

struct Item {
    entry: Box<Entry>,
    done: Option<oneshot::Sender<Result<(), Unavailable>>>,
    /// What the record says instead when its durability wait fails (outcome, reason).
    if_refused: Option<(Outcome, &'static str)>,
}

/// How long the writer lets a batch that nobody waits for (`async` records, `balanced`
/// completions, lifecycle events) grow before committing it. Committing each such record at once
/// made most commits one or two events: every commit rewrites the tail pages it touches, so
/// tiny commits multiplied the bytes written and the fsyncs. A record with a waiter commits at
/// once and takes the lingering ones along.
pub const LINGER: Duration = Duration::from_millis(5);

/// Queued records that end a linger early.
const WAKE_AT: usize = 1_024;

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// How many of `items` someone waits for.
    waited: usize,
    /// When the oldest of `items` was queued.
    since: Option<Instant>,
    stop: bool,
}

impl Queue {
    /// Queues an item; returns whether the writer must be woken now.
    fn enqueue(&mut self, item: Item) -> bool {
        let first = self.items.is_empty();
        if first {
            self.since = Some(Instant::now());
        }
        let waited = item.done.is_some();
        self.waited += usize::from(waited);
        self.items.push(item);
        waited || first || self.items.len() >= WAKE_AT
    }

    /// Takes everything queued.
    fn take(&mut self) -> Vec<Item> {
        self.waited = 0;
        self.since = None;
        std::mem::take(&mut self.items)
    }

    /// How much longer a batch nobody waits for may linger, if it may.
    fn linger(&self) -> Option<Duration> {
        if self.stop || self.waited > 0 || self.items.len() >= WAKE_AT {
            return None;
        }
        let left = LINGER.checked_sub(self.since?.elapsed())?;
        (!left.is_zero()).then_some(left)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    thread: OnceLock<Thread>,
    space: Notify,
    limit: usize,
    failed: AtomicBool,
    refused: AtomicU64,
    gap: AtomicU64,
    metrics: AuditMetrics,
    latest: Mutex<Option<SignedCheckpoint>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The audit trail of one process: the handle producers append through.
pub struct Audit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    gateway_id: String,
    writer_id: String,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("writer_id", &self.writer_id).finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens the store, loads (or creates) the signing key, registers this process as a writer,
    /// finds exchanges cut off by earlier crashes, and starts the writer thread.
    pub fn open(cfg: WriterConfig) -> Result<(Arc<Audit>, Opened), OpenError> {
        let store = Store::open_writer(&cfg.data_dir)?;
        let (key, key_created) = Keypair::load_or_create(&cfg.data_dir)?;
        let gateway_id = store.meta_or_init("gateway_id", crate::event::new_event_id)?;
        let writer_id = crate::event::new_event_id();
        let head = store.head()?;
        store.register_writer(&writer_id, cfg.kind, head.seq, &now_rfc3339())?;
        let mut cut_off = Vec::new();
        let mut crashed = Vec::new();
        if cfg.kind == "gateway" {
            for (w, from) in store.crashed_writers(&writer_id)? {
                crashed.push(w.clone());
                for (request_id, event_type, action) in store.open_exchanges(&w, from)? {
                    cut_off.push(CutOff { request_id, event_type, action, writer_id: w.clone() });
                }
            }
        }
        let latest = store
            .latest_checkpoint()?
            .and_then(|(body, sig)| SignedCheckpoint::from_stored(&body, &sig, &key.public_base64()));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            thread: OnceLock::new(),
            space: Notify::new(),
            limit: cfg.queue_limit.max(1),
            failed: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            gap: AtomicU64::new(0),
            metrics: AuditMetrics::default(),
            latest: Mutex::new(latest),
        });
        let faults = std::env::var_os(FAULTS_ENV).map(PathBuf::from);
        let fingerprint = key.fingerprint();
        let mut w = WriterThread {
            store,
            key,
            shared: shared.clone(),
            gateway_id: gateway_id.clone(),
            writer_id: writer_id.clone(),
            every: cfg.checkpoint_every.max(1),
            interval: cfg.checkpoint_interval,
            faults,
            injected_full: false,
            kept: Vec::new(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            outage: None,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run())
            .map_err(OpenError::Thread)?;
        let _ = shared.thread.set(handle.thread().clone());
        let audit = Arc::new(Audit { shared, thread: Mutex::new(Some(handle)), gateway_id, writer_id });
        Ok((audit, Opened { fingerprint, key_created, cut_off, crashed }))
    }

    /// Marks crashed writers reported (after their `gateway.recovered` event is durable).
    pub fn mark_recovered(data_dir: &Path, writers: &[String]) -> Result<(), StoreError> {
        let store = Store::open_writer(data_dir)?;
        for w in writers {
            store.mark_recovered(w)?;
        }
        Ok(())
    }

    /// This gateway's stable id.
    pub fn gateway_id(&self) -> &str {
        &self.gateway_id
    }

    /// This process's writer id.
    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// The writer's metrics.
    pub fn metrics(&self) -> &AuditMetrics {
        &self.shared.metrics
    }

    /// Whether the store is failing closed now.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// The newest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.shared.latest.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues a record that must be durable before the caller proceeds (`strict`, `balanced`).
    /// Refused at once while the store fails closed; waits while the queue is over its bound.
    pub async fn durable(&self, entry: Entry) -> Result<Ticket, Unavailable> {
        let mut entry = Some(Box::new(entry));
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                if self.is_failed() {
                    self.shared.refused.fetch_add(1, Ordering::Relaxed);
                    self.shared.metrics.refused.inc();
                    return Err(Unavailable);
                }
                let mut q = self.shared.lock();
                if q.items.len() < self.shared.limit
                    && let Some(entry) = entry.take()
                {
                    let (tx, rx) = oneshot::channel();
                    q.enqueue(Item { entry, done: Some(tx), if_refused: None });
                    let depth = q.items.len();
                    drop(q);
                    self.shared.metrics.queue_depth.set(depth as i64);
                    self.shared.wake();
                    return Ok(Ticket(rx));
                }
            }
            notified.await;
        }
    }

    /// Counts a call refused before it was queued (the store was failing closed).
    pub fn note_refused(&self) {
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.refused.inc();
    }

    /// Queues a record nobody waits for but that must not be lost.
    pub fn submit(&self, entry: Entry) {
        self.push(Item { entry: Box::new(entry), done: None, if_refused: None });
    }

    /// Queues a record and returns a ticket for it, without the fail-fast and bound of
    /// [`Audit::durable`] (a `strict` completion whose exchange is already under way).
    pub fn submit_waiting(&self, entry: Entry) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.push(Item { entry: Box::new(entry), done: Some(tx), if_refused: None });
        Ticket(rx)
    }

    /// Like [`Audit::submit_waiting`]; when the wait fails, the record is kept for the retry
    /// with `outcome` and `reason` instead of its own (the caller was refused, so a record saying
    /// "success" would be false).
    pub fn submit_waiting_or(&self, entry: Entry, outcome: Outcome, reason: &'static str) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.push(Item { entry: Box::new(entry), done: Some(tx), if_refused: Some((outcome, reason)) });
        Ticket(rx)
    }

    /// Queues an `async` record; drops it (counted in `audit.gap`) when the queue is full.
    pub fn best_effort(&self, entry: Entry) {
        let mut q = self.shared.lock();
        if q.items.len() >= self.shared.limit {
            drop(q);
            self.shared.gap.fetch_add(1, Ordering::Relaxed);
            self.shared.metrics.gap.inc();
            return;
        }
        let wake = q.enqueue(Item { entry: Box::new(entry), done: None, if_refused: None });
        let depth = q.items.len();
        drop(q);
        self.shared.metrics.queue_depth.set(depth as i64);
        if wake {
            self.shared.wake();
        }
    }

    fn push(&self, item: Item) {
        let mut q = self.shared.lock();
        let wake = q.enqueue(item);
        let depth = q.items.len();
        drop(q);
        self.shared.metrics.queue_depth.set(depth as i64);
        if wake {
            self.shared.wake();
        }
    }

    /// Writes `last` (the `gateway.stop` event), drains the queue, signs a final checkpoint and
    /// stops the thread. Blocks until done.
    pub fn close(&self, last: Option<Event>) {
        if let Some(e) = last {
            self.submit(Entry::event(e));
        }
        self.shared.lock().stop = true;
        self.shared.wake();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Outage {
    since: Instant,
    started: String,
    error: String,
    refused_at_start: u64,
    next_try: Instant,
}

struct WriterThread {
    store: Store,
    key: Keypair,
    shared: Arc<Shared>,
    gateway_id: String,
    writer_id: String,
    every: u64,
    interval: Duration,
    faults: Option<PathBuf>,
    injected_full: bool,
    /// Records of failed commits, retried first.
    kept: Vec<Item>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    outage: Option<Outage>,
}

impl WriterThread {
    fn run(&mut self) {
        self.checkpoint();
        loop {
            let (mut batch, stop) = {
                let mut q = self.shared.lock();
                if let Some(left) = q.linger().filter(|_| self.outage.is_none()) {
                    drop(q);
                    std::thread::park_timeout(left);
                    continue;
                }
                (q.take(), q.stop)
            };
            if !batch.is_empty() {
                self.shared.metrics.queue_depth.set(0);
                self.shared.space.notify_waiters();
            }
            if let Some(next_try) = self.outage.as_ref().map(|o| o.next_try) {
                let now = Instant::now();
                if now < next_try && !stop {
                    self.kept.append(&mut batch);
                    self.trim_kept();
                    std::thread::park_timeout(next_try - now);
                    continue;
                }
            }
            let mut items = std::mem::take(&mut self.kept);
            items.append(&mut batch);
            let gap = self.shared.gap.swap(0, Ordering::Relaxed);
            if gap > 0 {
                let mut e = Event::new(EventType::AuditGap, Outcome::Failure).actor(Arc::new(Actor::system()));
                e.reason = Some("async_queue_full".into());
                e.details = Some(json!({ "dropped": gap }));
                items.push(Item { entry: Box::new(Entry::event(e)), done: None, if_refused: None });
            }
            let outage_event = self.outage.as_ref().map(|o| {
                let refused = self.shared.refused.load(Ordering::Relaxed).saturating_sub(o.refused_at_start);
                let mut e = Event::new(EventType::AuditOutage, Outcome::Error).actor(Arc::new(Actor::system()));
                e.reason = Some(o.error.clone());
                e.details = Some(json!({
                    "started": o.started,
                    "ended": now_rfc3339(),
                    "duration_ms": o.since.elapsed().as_millis() as u64,
                    "refused": refused,
                }));
                e
            });
            let has_outage = outage_event.is_some();
            if let Some(e) = outage_event {
                items.push(Item { entry: Box::new(Entry::event(e)), done: None, if_refused: None });
            }
            if items.is_empty() {
                if stop {
                    self.finish();
                    return;
                }
                if self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval {
                    self.checkpoint();
                }
                let wait = if self.since_checkpoint > 0 {
                    self.interval.saturating_sub(self.last_checkpoint.elapsed())
                } else {
                    Duration::from_secs(3600)
                };
                std::thread::park_timeout(wait.max(Duration::from_millis(1)));
                continue;
            }
            self.commit(items, gap, has_outage);
            if stop && self.outage.is_none() && self.shared.lock().items.is_empty() {
                self.finish();
                return;
            }
            if stop && self.outage.is_some() {
                // Shutting down with a failing store: one last try after the retry pause, then
                // whatever is still kept is lost with the process (the log says how much).
                std::thread::park_timeout(RETRY_INTERVAL);
                let items = std::mem::take(&mut self.kept);
                if !items.is_empty() {
                    self.commit(items, 0, false);
                }
                if !self.kept.is_empty() {
                    tracing::error!(records = self.kept.len(), "audit store still failing at shutdown; records lost");
                }
                self.finish();
                return;
            }
            if self.since_checkpoint >= self.every
                || (self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval)
            {
                self.checkpoint();
            }
        }
    }

    fn fault(&mut self) -> Option<String> {
        let path = self.faults.as_ref()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let text = text.trim();
        let full = text == "full";
        if full != self.injected_full {
            if let Err(e) = self.store.set_full(full) {
                tracing::warn!("fault injection: {e}");
            }
            self.injected_full = full;
        }
        (text == "fsync").then(|| "fsync failed: Input/output error (os error 5)".to_string())
    }

    fn commit(&mut self, mut items: Vec<Item>, gap: u64, has_outage: bool) {
        let fault = self.fault();
        let started = Instant::now();
        let recorded = now_rfc3339();
        let (gw, wr) = (self.gateway_id.clone(), self.writer_id.clone());
        let n = items.len();
        let result = {
            let mut iter = items.iter_mut().map(|i| {
                let Entry { event, input, output } = &mut *i.entry;
                (event, input.as_ref(), output.as_ref())
            });
            self.store.append_with_content(&mut iter, &recorded, &gw, &wr, fault.as_deref())
        };
        let shared = self.shared.clone();
        let m = &shared.metrics;
        match result {
            Ok(done) => {
                m.commit_seconds.observe(started.elapsed().as_secs_f64());
                m.fsync_seconds.observe(done.commit.as_secs_f64());
                m.batch_events.observe(n as f64);
                m.events.inc_by(n as u64);
                for i in &mut items {
                    if let Some(tx) = i.done.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                self.since_checkpoint += n as u64;
                if let Some(o) = self.outage.take() {
                    tracing::warn!(duration_ms = o.since.elapsed().as_millis() as u64, "audit store recovered");
                    self.shared.failed.store(false, Ordering::Release);
                    m.fail_closed.set(0);
                }
            }
            Err(e) => {
                tracing::error!("audit write failed, failing closed: {e}");
                // Fail closed before any ticket fails: a caller refused now must find the store
                // failed (`/readyz` 503, new calls refused) once its 503 arrives, and a new
                // outage counts this batch's refusals too.
                let now = Instant::now();
                match &mut self.outage {
                    Some(o) => o.next_try = now + RETRY_INTERVAL,
                    None => {
                        self.outage = Some(Outage {
                            since: now,
                            started: now_rfc3339(),
                            error: e.to_string(),
                            refused_at_start: self.shared.refused.load(Ordering::Relaxed),
                            next_try: now + RETRY_INTERVAL,
                        });
                        self.shared.failed.store(true, Ordering::Release);
                        m.fail_closed.set(1);
                    }
                }
                for i in &mut items {
                    if let Some(tx) = i.done.take() {
                        if let Some((outcome, reason)) = i.if_refused.take() {
                            let e = &mut i.entry.event;
                            e.outcome = outcome;
                            e.reason = Some(reason.to_string());
                            e.code = recode(&e.code, outcome);
                        }
                        self.shared.refused.fetch_add(1, Ordering::Relaxed);
                        m.refused.inc();
                        let _ = tx.send(Err(Unavailable));
                    }
                }
                // The generated gap and outage events are made afresh on the next try.
                if has_outage {
                    items.pop();
                }
                if gap > 0 {
                    items.retain(|i| i.entry.event.event_type != "audit.gap");
                    self.shared.gap.fetch_add(gap, Ordering::Relaxed);
                }
                self.kept = items;
                self.trim_kept();
            }
        }
    }

    /// Keeps at most the queue bound of failed records; the rest become a gap.
    fn trim_kept(&mut self) {
        if self.kept.len() > self.shared.limit {
            let lost = (self.kept.len() - self.shared.limit) as u64;
            self.kept.truncate(self.shared.limit);
            self.shared.gap.fetch_add(lost, Ordering::Relaxed);
            self.shared.metrics.gap.inc_by(lost);
        }
    }

    fn checkpoint(&mut self) {
        let head = match self.store.head() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("audit checkpoint skipped: {e}");
                return;
            }
        };
        let body = CheckpointBody {
            gateway_id: self.gateway_id.clone(),
            hash: crate::canonical::hex(&head.hash),
            key_fingerprint: self.key.fingerprint(),
            schema: CHECKPOINT_SCHEMA.into(),
            seq: head.seq,
            time: now_rfc3339(),
            writer_id: self.writer_id.clone(),
        };
        let signed = self.key.sign(body);
        match self.store.insert_checkpoint(head.seq, &signed.body.canonical_bytes(), &signed.signature_bytes()) {
            Ok(()) => {
                *self.shared.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(signed);
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
                self.shared.metrics.checkpoints.inc();
            }
            Err(e) => tracing::warn!("audit checkpoint failed: {e}"),
        }
    }

    fn finish(&mut self) {
        self.checkpoint();
        if let Err(e) = self.store.mark_stopped(&self.writer_id) {
            tracing::warn!("marking the audit writer stopped: {e}");
        }
    }
}

impl Store {
    /// Appends events with their recorded bodies, filling the writer-owned fields.
    fn append_with_content<'e>(
        &mut self,
        items: &mut dyn Iterator<Item = (&'e mut Event, Option<&'e Recording>, Option<&'e Recording>)>,
        recorded: &str,
        gateway_id: &str,
        writer_id: &str,
        fault: Option<&str>,
    ) -> Result<crate::store::Appended, StoreError> {
        let mut recs: Vec<(Option<&Recording>, Option<&Recording>)> = Vec::new();
        let events: Vec<&mut Event> = items
            .map(|(e, i, o)| {
                recs.push((i, o));
                e
            })
            .collect();
        let mut idx = 0usize;
        self.append(
            events,
            |e, content| {
                let (input, output) = recs.get(idx).copied().unwrap_or((None, None));
                idx += 1;
                e.recorded_time = recorded.to_string();
                e.gateway_id = gateway_id.to_string();
                e.writer_id = writer_id.to_string();
                for (rec, direction) in [(input, "input"), (output, "output")] {
                    let Some(r) = rec else { continue };
                    let enc = encode(r);
                    let row = ContentRow {
                        request_id: e.request_id.as_deref(),
                        direction,
                        codec: "lz4",
                        salt: &enc.salt,
                        size: enc.size,
                        truncated: enc.truncated,
                        data: &enc.data,
                        timing: enc.timing.as_deref(),
                    };
                    let reference = content.insert(&row)?;
                    let c = e.content.get_or_insert_with(Default::default);
                    if direction == "input" {
                        c.input_ref = Some(reference);
                        c.input_digest = Some(enc.digest);
                    } else {
                        c.output_ref = Some(reference);
                        c.output_digest = Some(enc.digest);
                    }
                }
                Ok(())
            },
            fault,
        )
    }
}

/// Appends events as a short-lived writer of its own (the CLI acting on a data dir): one
/// transaction, continuing the chain from the head it finds. Returns the events as stored.
pub fn append_local(data_dir: &Path, events: Vec<Event>) -> Result<Vec<Event>, StoreError> {
    let mut store = Store::open_writer(data_dir)?;
    let gateway_id = store.meta_or_init("gateway_id", crate::event::new_event_id)?;
    let writer_id = crate::event::new_event_id();
    store.register_writer(&writer_id, "cli", store.head()?.seq, &now_rfc3339())?;
    let mut events = events;
    let recorded = now_rfc3339();
    store.append(
        events.iter_mut(),
        |e, _| {
            e.recorded_time = recorded.clone();
            e.gateway_id = gateway_id.clone();
            e.writer_id = writer_id.clone();
            Ok(())
        },
        None,
    )?;
    store.mark_stopped(&writer_id)?;
    Ok(events)
}

/// A stable code with the severity suffix of another outcome (`MG-INF-002I` → `MG-INF-002E`).
fn recode(code: &str, outcome: Outcome) -> String {
    let fresh = EventType::AuditGap.code(outcome);
    match (code.get(..code.len().saturating_sub(1)), fresh.chars().last()) {
        (Some(stem), Some(sev)) if !stem.is_empty() => format!("{stem}{sev}"),
        _ => code.to_string(),
    }
}
