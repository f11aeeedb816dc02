//! Outgoing webhooks that tell an approver group about a pending approval request.
//!
//! Each configured `[[approvals.webhooks]]` entry receives the requests whose approver groups
//! include its `group`. The body is one JSON object that Slack (`text`, `blocks`) and Teams
//! (a legacy `MessageCard`) incoming webhooks can both show, plus a structured `modelgate` object
//! for programs. Every POST is signed:
//!
//! ```text
//! x-modelgate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//! x-modelgate-delivery: <uuid, the same across retries>
//! ```
//!
//! [`Webhooks::notify`] never blocks and never fails: it puts the deliveries on a bounded queue
//! (dropping them, counted and logged, when it is full). The task started by [`Webhooks::start`]
//! sends them, several at a time, each retried with exponential backoff on its own.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, mpsc};

/// Header carrying the timestamp and HMAC signature of a delivery.
pub const SIGNATURE_HEADER: &str = "x-modelgate-signature";
/// Header carrying the delivery id, the same on every attempt of one delivery.
pub const DELIVERY_HEADER: &str = "x-modelgate-delivery";
/// The `modelgate.event` of a pending-request notification.
pub const EVENT_REQUESTED: &str = "approval.requested";

/// Default first retry delay.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Default longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default attempts per delivery: waits of 0.5, 1, 2, … 32, 60 s, about two minutes in all.
const ATTEMPTS: u32 = 8;
/// Default time allowed for one attempt (connect, send, response head and body).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to open a TCP connection (within the attempt timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of deliveries waiting to be sent before new ones are dropped.
const QUEUE: usize = 1024;
/// Default number of deliveries being sent (or waiting to retry) at once.
const IN_FLIGHT: usize = 32;
/// Largest response body read (and discarded) so the connection can be reused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest excerpt shown, in characters.
const MAX_EXCERPT_CHARS: usize = 1500;
/// Longest other user-provided value shown, in characters.
const MAX_FIELD_CHARS: usize = 200;
/// The Teams card's accent color (amber: waiting for a decision).
const THEME_COLOR: &str = "E8A317";

type HttpClient = identity::http::Client<Full<Bytes>>;

/// What a notification says about one pending approval request. Never a secret or an unmasked
/// body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Approval request id.
    pub id: String,
    /// Who asked (the subject).
    pub requester: String,
    /// The requester's display name, when the identity provider gave one.
    pub requester_display: Option<String>,
    /// The action asked for, e.g. `chat`.
    pub action: String,
    /// The model asked for, if the call names one.
    pub model: Option<String>,
    /// The upstream the call would go to, if known.
    pub upstream: Option<String>,
    /// The start of the prompt, already masked.
    pub excerpt: Option<String>,
    /// Approver groups, any of which may decide.
    pub approvers: Vec<String>,
    /// Number of distinct approvers needed.
    pub count: u32,
    /// Where an approver reviews the request (under `[server] public_url`), if configured.
    pub approve_url: Option<String>,
    /// When the pending request expires.
    pub expires: SystemTime,
}

/// The delivery totals read at one moment (the series of [`WebhookMetrics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Deliveries answered with a 2xx status.
    pub delivered: u64,
    /// Failed attempts followed by another attempt.
    pub retried: u64,
    /// Deliveries given up: a 3xx/4xx answer (other than 408 and 429), or every attempt failed.
    pub failed: u64,
    /// Deliveries never attempted because the queue was full.
    pub dropped: u64,
}

/// A webhook that could not be set up, naming its configuration key.
#[derive(Debug, thiserror::Error)]
#[error("config error at `{path}`: {message}")]
pub struct WebhookError {
    /// Key path of the offending entry, e.g. `approvals.webhooks[1]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl WebhookError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> WebhookError {
        WebhookError { path: path.into(), message: message.into() }
    }
}

/// One configured webhook with its resolved secret.
struct Hook {
    group: String,
    url: Uri,
    /// Host of the URL, for logs: the path of a Slack or Teams URL is itself a credential.
    host: String,
    secret: Vec<u8>,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook").field("group", &self.group).field("host", &self.host).finish_non_exhaustive()
    }
}

/// One delivery: a notice's body for one webhook.
struct Job {
    hook: usize,
    approval: String,
    delivery: String,
    body: Bytes,
}

/// The label of a delivery total: `("result", "delivered" | "retried" | "failed" | "dropped")`.
type ResultLabel = [(&'static str, &'static str); 1];

/// The delivery totals as Prometheus series, `approval_webhook_deliveries{result}`: the
/// notifier counts into them directly, so a registry they are registered with (see
/// [`WebhookMetrics::register`]) reads them exactly when scraped.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    /// The family registered; each total below is one of its series (the same value).
    deliveries: Family<ResultLabel, Gauge>,
    delivered: Gauge,
    retried: Gauge,
    failed: Gauge,
    dropped: Gauge,
}

impl Default for WebhookMetrics {
    fn default() -> WebhookMetrics {
        let deliveries = Family::<ResultLabel, Gauge>::default();
        // Every series exists from the start, at 0.
        let total = |result| deliveries.get_or_create(&[("result", result)]).clone();
        let (delivered, retried, failed, dropped) =
            (total("delivered"), total("retried"), total("failed"), total("dropped"));
        WebhookMetrics { deliveries, delivered, retried, failed, dropped }
    }
}

impl WebhookMetrics {
    /// Registers the delivery totals as `approval_webhook_deliveries`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "approval_webhook_deliveries",
            "Approval webhook deliveries since start, by result (delivered, retried, failed, dropped)",
            self.deliveries.clone(),
        );
    }
}

/// A total's value (never negative: totals only grow).
fn total(g: &Gauge) -> u64 {
    u64::try_from(g.get()).unwrap_or(0)
}

#[derive(Default, Debug)]
struct Counters {
    /// Delivered, retried, failed and dropped.
    totals: WebhookMetrics,
    /// Deliveries queued or being sent (retries included).
    pending: AtomicU64,
    /// Signalled whenever `pending` drops to zero.
    idle: tokio::sync::Notify,
}

impl Counters {
    /// One delivery is over (sent, given up on, or dropped before it was queued).
    fn finished(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// Retry and concurrency settings.
#[derive(Clone, Copy, Debug)]
struct Settings {
    initial: Duration,
    max: Duration,
    attempts: u32,
    timeout: Duration,
    in_flight: usize,
}

/// What the delivery task needs.
#[derive(Debug)]
struct Worker {
    hooks: Arc<[Hook]>,
    client: HttpClient,
    stats: Arc<Counters>,
    settings: Settings,
}

/// The configured approval webhooks: a bounded queue of deliveries and the task sending them.
pub struct Webhooks {
    hooks: Arc<[Hook]>,
    /// Built only when some webhook is configured.
    client: Option<HttpClient>,
    stats: Arc<Counters>,
    settings: Settings,
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhooks")
            .field("hooks", &self.hooks)
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Resolves each webhook's URL and secret (`secret_env` or `secret_file`, the file's content
    /// trimmed); errors name the key path `approvals.webhooks[i]`.
    pub fn new(config: &config::ApprovalsConfig) -> Result<Webhooks, WebhookError> {
        let mut hooks = Vec::with_capacity(config.webhooks.len());
        for (i, w) in config.webhooks.iter().enumerate() {
            let path = format!("approvals.webhooks[{i}]");
            let url: Uri =
                w.url.parse().map_err(|e| WebhookError::new(format!("{path}.url"), format!("not a valid URL: {e}")))?;
            if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
                return Err(WebhookError::new(format!("{path}.url"), "must be an http:// or https:// URL with a host"));
            }
            let secret = match (&w.secret_env, &w.secret_file) {
                (Some(var), None) => std::env::var(var)
                    .map_err(|_| {
                        WebhookError::new(&path, format!("environment variable {var} (secret_env) is not set"))
                    })?
                    .into_bytes(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| WebhookError::new(&path, format!("cannot read secret_file {}: {e}", file.display())))?
                    .trim()
                    .as_bytes()
                    .to_vec(),
                _ => return Err(WebhookError::new(&path, "needs exactly one of secret_env or secret_file")),
            };
            if secret.is_empty() {
                return Err(WebhookError::new(&path, "the signing secret is empty"));
            }
            let host = url.host().unwrap_or_default().to_owned();
            hooks.push(Hook { group: w.group.clone(), url, host, secret });
        }
        let client = if hooks.is_empty() {
            None
        } else {
            let any_https = hooks.iter().any(|h| h.url.scheme_str() == Some("https"));
            Some(client(any_https).map_err(|e| WebhookError::new("approvals.webhooks", e))?)
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok(Webhooks {
            hooks: hooks.into(),
            client,
            stats: Arc::default(),
            settings: Settings {
                initial: INITIAL_BACKOFF,
                max: MAX_BACKOFF,
                attempts: ATTEMPTS,
                timeout: ATTEMPT_TIMEOUT,
                in_flight: IN_FLIGHT,
            },
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Replaces the retry schedule: waits of `initial`, doubling up to `max`, between at most
    /// `attempts` attempts (at least 1). Defaults: 0.5 s, 60 s, 8. Call before [`Webhooks::start`].
    pub fn with_backoff(mut self, initial: Duration, max: Duration, attempts: u32) -> Webhooks {
        self.settings.initial = initial;
        self.settings.max = max.max(initial);
        self.settings.attempts = attempts.max(1);
        self
    }

    /// Replaces the time allowed for one attempt (default 10 s). Call before [`Webhooks::start`].
    pub fn with_timeout(mut self, timeout: Duration) -> Webhooks {
        self.settings.timeout = timeout;
        self
    }

    /// Replaces the queue size (default 1024 deliveries) and the number of deliveries sent or
    /// retried at once (default 32). Call before [`Webhooks::notify`] and [`Webhooks::start`]:
    /// deliveries already queued are forgotten.
    pub fn with_limits(mut self, queue: usize, in_flight: usize) -> Webhooks {
        let (tx, rx) = mpsc::channel(queue.max(1));
        self.tx = tx;
        self.rx = Mutex::new(Some(rx));
        self.settings.in_flight = in_flight.max(1);
        self
    }

    /// Whether no webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Queues deliveries to every webhook whose group is among `notice.approvers`. Never blocks
    /// and never fails the caller: when the queue is full, the delivery is dropped with a warning
    /// log (and counted in [`WebhookStats::dropped`]).
    pub fn notify(&self, notice: &Notice) {
        let mut body: Option<Bytes> = None;
        for (i, hook) in self.hooks.iter().enumerate() {
            if !notice.approvers.contains(&hook.group) {
                continue;
            }
            let body = body.get_or_insert_with(|| Bytes::from(payload(notice).to_string())).clone();
            let job = Job { hook: i, approval: notice.id.clone(), delivery: uuid::Uuid::now_v7().to_string(), body };
            self.stats.pending.fetch_add(1, Ordering::AcqRel);
            if self.tx.try_send(job).is_err() {
                self.stats.finished();
                self.stats.totals.dropped.inc();
                tracing::warn!(
                    approval = %notice.id,
                    group = %hook.group,
                    host = %hook.host,
                    "approval webhook queue is full; notification dropped"
                );
            }
        }
    }

    /// Starts the delivery task (call inside a tokio runtime; later calls do nothing). Deliveries
    /// are sent several at a time, each retried with exponential backoff on its own: 2xx is
    /// delivered; a 3xx or 4xx answer other than 408 and 429 gives up; anything else (5xx, 408,
    /// 429 honouring `Retry-After`, connection errors, timeouts) is retried.
    pub fn start(&self) {
        // No webhook (and no client): nothing is ever queued.
        let Some(client) = &self.client else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("approval webhooks not started: no tokio runtime");
            return;
        };
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let worker = Arc::new(Worker {
            hooks: self.hooks.clone(),
            client: client.clone(),
            stats: self.stats.clone(),
            settings: self.settings,
        });
        runtime.spawn(dispatch(rx, worker));
    }

    /// Waits until every queued delivery was sent or given up on, at most `within` (a graceful
    /// stop lets retries under way finish); returns how many were still pending then.
    pub async fn drain(&self, within: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = self.stats.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let pending = self.stats.pending.load(Ordering::Acquire);
            if pending == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.stats.pending.load(Ordering::Acquire);
            }
        }
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            delivered: total(&self.stats.totals.delivered),
            retried: total(&self.stats.totals.retried),
            failed: total(&self.stats.totals.failed),
            dropped: total(&self.stats.totals.dropped),
        }
    }

    /// The delivery totals as Prometheus series, to register with the `/metrics` registry.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.stats.totals
    }
}

/// Builds the HTTP client: rustls on aws-lc-rs with the system's root CAs, `https://` and `http://`.
fn client(need_roots: bool) -> Result<HttpClient, String> {
    // http:// receivers still work without roots; https ones fail at delivery time, loudly.
    let warning = need_roots.then_some("no system root CAs found; https approval webhooks will fail");
    Ok(identity::http::client(identity::http::tls_with_system_roots(warning)?, CONNECT_TIMEOUT))
}

/// Takes deliveries off the queue while fewer than `in_flight` are running, each in its own task.
async fn dispatch(mut rx: mpsc::Receiver<Job>, worker: Arc<Worker>) {
    let slots = Arc::new(Semaphore::new(worker.settings.in_flight));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(job) = rx.recv().await else { return };
        let worker = worker.clone();
        tokio::spawn(async move {
            worker.deliver(job).await;
            worker.stats.finished();
            drop(slot);
        });
    }
}

/// The result of one attempt.
enum Outcome {
    Delivered,
    Retry { why: String, after: Option<Duration> },
    GiveUp(String),
}

impl Worker {
    /// Sends one delivery, retrying with backoff, and counts the result.
    async fn deliver(&self, job: Job) {
        let Some(hook) = self.hooks.get(job.hook) else { return };
        let s = self.settings;
        let mut attempt = 1;
        loop {
            let outcome = match tokio::time::timeout(s.timeout, self.attempt(hook, &job)).await {
                Ok(o) => o,
                Err(_) => Outcome::Retry { why: format!("timed out after {:?}", s.timeout), after: None },
            };
            match outcome {
                Outcome::Delivered => {
                    self.stats.totals.delivered.inc();
                    tracing::debug!(
                        approval = %job.approval, group = %hook.group, host = %hook.host, attempt,
                        "approval webhook delivered"
                    );
                    return;
                }
                Outcome::GiveUp(why) => {
                    self.stats.totals.failed.inc();
                    tracing::warn!(
                        approval = %job.approval, group = %hook.group, host = %hook.host, delivery = %job.delivery,
                        attempt, error = %why, "approval webhook refused; giving up"
                    );
                    return;
                }
                Outcome::Retry { why, after } => {
                    if attempt >= s.attempts {
                        self.stats.totals.failed.inc();
                        tracing::warn!(
                            approval = %job.approval, group = %hook.group, host = %hook.host, delivery = %job.delivery,
                            attempts = attempt, error = %why, "approval webhook failed; giving up"
                        );
                        return;
                    }
                    let wait = backoff(s.initial, s.max, attempt).max(after.unwrap_or_default().min(s.max));
                    self.stats.totals.retried.inc();
                    tracing::debug!(
                        approval = %job.approval, group = %hook.group, host = %hook.host, attempt, error = %why,
                        ?wait, "approval webhook attempt failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One signed POST.
    async fn attempt(&self, hook: &Hook, job: &Job) -> Outcome {
        let t = unix_seconds(SystemTime::now());
        let request = Request::post(hook.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            .header(SIGNATURE_HEADER, sign(&hook.secret, t, &job.body))
            .header(DELIVERY_HEADER, job.delivery.as_str())
            .body(Full::new(job.body.clone()));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Outcome::GiveUp(format!("cannot build request: {e}")),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry { why: identity::http::error_chain(&e), after: None },
        };
        let status = response.status();
        let after = retry_after(response.headers().get(header::RETRY_AFTER));
        // Read the (small) answer so the connection can be reused; its content does not matter.
        let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await;
        classify(status, after)
    }
}

/// What an answer's status means for the delivery.
fn classify(status: StatusCode, after: Option<Duration>) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::Retry { why: format!("answered HTTP {status}"), after }
    } else if status.is_client_error() || status.is_redirection() {
        Outcome::GiveUp(format!("answered HTTP {status}"))
    } else {
        Outcome::Retry { why: format!("answered HTTP {status}"), after }
    }
}

/// The wait after failed attempt number `attempt` (1-based): `initial` doubling, capped at `max`.
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    initial.saturating_mul(factor).min(max)
}

/// A `Retry-After` given in seconds.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the error branch cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `x-modelgate-signature` value of `body` sent at unix time `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", audit::canonical::hex(&tag))
}

/// Whether `header` (an `x-modelgate-signature` value) signs `body` with `secret`, at a time
/// within `tolerance` of `now` (unix seconds, either side). Any of several `v1=` values may match
/// (for secret rotation); comparison is constant-time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance: Duration) -> bool {
    let mut t: Option<u64> = None;
    let mut tags: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { return false };
        match key {
            "t" => match value.parse() {
                Ok(v) if t.is_none() => t = Some(v),
                _ => return false,
            },
            "v1" => {
                if let Some(tag) = unhex32(value) {
                    tags.push(tag);
                }
            }
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let expected = mac(secret, t, body).finalize().into_bytes();
    // Check every candidate so timing does not tell which one matched.
    tags.iter().fold(subtle::Choice::from(0), |ok, tag| ok | tag[..].ct_eq(&expected[..])).into()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Escapes Slack mrkdwn control characters (`&`, `<`, `>`) so user text cannot form links or
/// mentions.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` characters, marked with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A user-provided value, shortened and escaped for display.
fn shown(s: &str) -> String {
    esc(&cut(s, MAX_FIELD_CHARS))
}

/// The JSON body posted for `notice`: Slack `text` and `blocks`, a Teams `MessageCard`, and the
/// structured `modelgate` object (`event: "approval.requested"`, every notice field, `expires`
/// in RFC 3339). User-provided text is escaped for Slack mrkdwn in the display parts.
pub fn payload(notice: &Notice) -> Value {
    let who = match &notice.requester_display {
        Some(d) if !d.is_empty() && *d != notice.requester => {
            format!("{} ({})", shown(d), shown(&notice.requester))
        }
        _ => shown(&notice.requester),
    };
    let action = shown(&notice.action);
    let model = notice.model.as_deref().map_or_else(|| "—".to_owned(), shown);
    let upstream = notice.upstream.as_deref().map_or_else(|| "—".to_owned(), shown);
    let groups: Vec<String> = notice.approvers.iter().map(|g| shown(g)).collect();
    let needed = format!(
        "{} {} from {}",
        notice.count,
        if notice.count == 1 { "approval" } else { "approvals" },
        if groups.is_empty() { "—".to_owned() } else { groups.join(", ") }
    );
    let expires_rfc = humantime::format_rfc3339_seconds(notice.expires).to_string();
    let expires_unix = unix_seconds(notice.expires);
    let excerpt = notice.excerpt.as_deref().filter(|e| !e.trim().is_empty()).map(|e| esc(&cut(e, MAX_EXCERPT_CHARS)));
    let id = shown(&notice.id);
    let url = notice.approve_url.as_deref().filter(|u| !u.is_empty());

    let review = match url {
        Some(u) => format!("Review: {}", esc(u)),
        None => format!("Decide with `modelgate approvals approve {id}`"),
    };
    let text = format!("Approval needed: {who} requests {action} on model {model} ({needed}). {review}");
    let headline = format!("*{who}* requests *{action}* on model *{model}*");

    let field = |name: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")});
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("Approval needed: {headline}")}}),
        json!({"type": "section", "fields": [
            field("Requester", &who),
            field("Action", &action),
            field("Model", &model),
            field("Upstream", &upstream),
            field("Approvers needed", &needed),
            field("Expires", &format!("<!date^{expires_unix}^{{date_short_pretty}} {{time}}|{expires_rfc}>")),
        ]}),
    ];
    if let Some(e) = &excerpt {
        let quoted: Vec<String> = e.lines().map(|l| format!(">{l}")).collect();
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": quoted.join("\n")}}));
    }
    if let Some(u) = url {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "action_id": "review",
            "style": "primary",
            "text": {"type": "plain_text", "text": "Review"},
            "url": u,
        }]}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("modelgate approval `{id}`")},
    ]}));

    let facts = json!([
        {"name": "Requester", "value": who},
        {"name": "Action", "value": action},
        {"name": "Model", "value": model},
        {"name": "Upstream", "value": upstream},
        {"name": "Approvers needed", "value": needed},
        {"name": "Expires", "value": expires_rfc},
        {"name": "Approval id", "value": id},
    ]);
    let mut section =
        json!({"activityTitle": format!("Approval needed: {headline}"), "facts": facts, "markdown": true});
    if let Some(e) = &excerpt {
        section["text"] = Value::String(e.clone());
    }
    let mut body = json!({
        "text": text,
        "blocks": blocks,
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": format!("Approval needed: {who} requests {action}"),
        "themeColor": THEME_COLOR,
        "title": "modelgate: approval needed",
        "sections": [section],
        "modelgate": {
            "event": EVENT_REQUESTED,
            "id": notice.id,
            "requester": notice.requester,
            "requester_display": notice.requester_display,
            "action": notice.action,
            "model": notice.model,
            "upstream": notice.upstream,
            "excerpt": notice.excerpt,
            "approvers": notice.approvers,
            "count": notice.count,
            "approve_url": notice.approve_url,
            "expires": expires_rfc,
        },
    });
    if let Some(u) = url {
        body["potentialAction"] = json!([{
            "@type": "OpenUri",
            "name": "Review",
            "targets": [{"os": "default", "uri": u}],
        }]);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const TOL: Duration = Duration::from_secs(300);

    fn notice() -> Notice {
        Notice {
            id: "apr_0123".into(),
            requester: "alice".into(),
            requester_display: Some("Alice <Admin> & co".into()),
            action: "chat".into(),
            model: Some("gpt-4o".into()),
            upstream: Some("openai".into()),
            excerpt: Some("line one\nwith <@U123> and [EMAIL]".into()),
            approvers: vec!["ml-leads".into(), "security".into()],
            count: 2,
            approve_url: Some("https://gw.example/approvals/apr_0123".into()),
            expires: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn sign_then_verify() {
        let body = br#"{"a":1}"#;
        let h = sign(SECRET, 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="), "{h}");
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify(SECRET, &h, body, 1_700_000_000, TOL));
        assert!(verify(SECRET, &h, body, 1_700_000_299, TOL));
        assert!(verify(SECRET, &h, body, 1_699_999_800, TOL));
    }

    #[test]
    fn verify_rejects_tampering_wrong_secret_and_stale() {
        let body = br#"{"a":1}"#;
        let t = 1_700_000_000;
        let h = sign(SECRET, t, body);
        assert!(!verify(SECRET, &h, br#"{"a":2}"#, t, TOL), "tampered body");
        assert!(!verify(b"other", &h, body, t, TOL), "wrong secret");
        assert!(!verify(SECRET, &h, body, t + 301, TOL), "stale timestamp");
        assert!(!verify(SECRET, &h, body, t - 301, TOL), "future timestamp");
        // The timestamp is signed: moving it breaks the signature.
        let moved = h.replacen("t=1700000000", "t=1700000001", 1);
        assert!(!verify(SECRET, &moved, body, t, TOL), "moved timestamp");
        // Malformed headers.
        assert!(!verify(SECRET, "", body, t, TOL));
        assert!(!verify(SECRET, &h.replace("v1=", "v0="), body, t, TOL));
        assert!(!verify(SECRET, &format!("{h},t=1"), body, t, TOL));
        assert!(!verify(SECRET, &h[..h.len() - 2], body, t, TOL));
        // A rotated secret: either listed signature may match.
        let other = sign(b"old", t, body);
        let both = format!("{h},{}", other.split_once(',').unwrap().1);
        assert!(verify(b"old", &both, body, t, TOL));
        assert!(verify(SECRET, &both, body, t, TOL));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.The quick brown fox") computed independently (openssl dgst -hmac).
        let h = sign(b"key", 1, b"The quick brown fox");
        assert_eq!(h, format!("t=1,v1={}", "1ef269d2a2a1f8d397e0e25c3e3013fb5687509234565e6e49ea45a138768457"));
    }

    #[test]
    fn payload_shape() {
        let p = payload(&notice());
        // Slack
        let text = p["text"].as_str().unwrap();
        assert!(text.contains("alice") && text.contains("chat") && text.contains("gpt-4o"), "{text}");
        assert!(text.contains("https://gw.example/approvals/apr_0123"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        let blocks = p["blocks"].as_array().unwrap();
        let fields = blocks[1]["fields"].as_array().unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f["text"].as_str().unwrap().split('\n').next().unwrap()).collect();
        assert_eq!(names, ["*Requester*", "*Action*", "*Model*", "*Upstream*", "*Approvers needed*", "*Expires*"]);
        assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
        assert_eq!(fields[4]["text"], "*Approvers needed*\n2 approvals from ml-leads, security");
        assert!(fields[5]["text"].as_str().unwrap().contains("2023-11-14T22:13:20Z"));
        let quote = blocks[2]["text"]["text"].as_str().unwrap();
        assert_eq!(quote, ">line one\n>with &lt;@U123&gt; and [EMAIL]");
        let button = &blocks[3]["elements"][0];
        assert_eq!(blocks[3]["type"], "actions");
        assert_eq!(button["type"], "button");
        assert_eq!(button["text"]["text"], "Review");
        assert_eq!(button["url"], "https://gw.example/approvals/apr_0123");
        // Escaping of user text.
        let requester = fields[0]["text"].as_str().unwrap();
        assert_eq!(requester, "*Requester*\nAlice &lt;Admin&gt; &amp; co (alice)");
        assert!(!p["blocks"].to_string().contains("<@U123>"));
        assert!(!text.contains("<Admin>"));
        // Teams
        assert_eq!(p["@type"], "MessageCard");
        assert_eq!(p["@context"], "https://schema.org/extensions");
        assert!(p["summary"].as_str().unwrap().contains("alice"));
        assert!(p["themeColor"].is_string());
        let section = &p["sections"][0];
        assert!(section["activityTitle"].as_str().unwrap().contains("chat"));
        assert_eq!(section["facts"][2], json!({"name": "Model", "value": "gpt-4o"}));
        assert_eq!(section["text"], "line one\nwith &lt;@U123&gt; and [EMAIL]");
        assert_eq!(
            p["potentialAction"],
            json!([{"@type": "OpenUri", "name": "Review",
                    "targets": [{"os": "default", "uri": "https://gw.example/approvals/apr_0123"}]}])
        );
        // Structured
        let m = &p["modelgate"];
        assert_eq!(m["event"], "approval.requested");
        assert_eq!(m["id"], "apr_0123");
        assert_eq!(m["requester"], "alice");
        assert_eq!(m["requester_display"], "Alice <Admin> & co");
        assert_eq!(m["excerpt"], "line one\nwith <@U123> and [EMAIL]");
        assert_eq!(m["approvers"], json!(["ml-leads", "security"]));
        assert_eq!(m["count"], 2);
        assert_eq!(m["expires"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn payload_without_optional_parts() {
        let n = Notice {
            requester_display: None,
            model: None,
            upstream: None,
            excerpt: None,
            approve_url: None,
            count: 1,
            ..notice()
        };
        let p = payload(&n);
        assert!(p.get("potentialAction").is_none());
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
        assert_eq!(blocks.len(), 3, "headline, fields, context");
        assert!(p["text"].as_str().unwrap().contains("modelgate approvals approve apr_0123"));
        assert_eq!(p["blocks"][1]["fields"][4]["text"], "*Approvers needed*\n1 approval from ml-leads, security");
        assert!(p["sections"][0].get("text").is_none());
        assert_eq!(p["modelgate"]["model"], Value::Null);
    }

    #[test]
    fn long_values_are_cut_on_char_boundaries() {
        let n = Notice { excerpt: Some("é".repeat(5000)), action: "ü".repeat(500), ..notice() };
        let p = payload(&n);
        let quote = p["blocks"][2]["text"]["text"].as_str().unwrap();
        assert_eq!(quote.chars().count(), 1 + MAX_EXCERPT_CHARS + 1);
        assert!(quote.ends_with('…'));
        assert_eq!(p["modelgate"]["action"].as_str().unwrap().chars().count(), 500, "structured part is whole");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_millis(500);
        let m = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=9).map(|a| backoff(s, m, a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        assert_eq!(backoff(s, m, u32::MAX), m);
    }

    #[test]
    fn status_classes() {
        assert!(matches!(classify(StatusCode::OK, None), Outcome::Delivered));
        assert!(matches!(classify(StatusCode::NO_CONTENT, None), Outcome::Delivered));
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, None), Outcome::Retry { .. }));
        assert!(matches!(classify(StatusCode::REQUEST_TIMEOUT, None), Outcome::Retry { .. }));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, None), Outcome::Retry { .. }));
        assert!(matches!(classify(StatusCode::BAD_REQUEST, None), Outcome::GiveUp(_)));
        assert!(matches!(classify(StatusCode::NOT_FOUND, None), Outcome::GiveUp(_)));
        assert!(matches!(classify(StatusCode::FOUND, None), Outcome::GiveUp(_)));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("7"))), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
    }

    #[test]
    fn totals_are_registered_series_read_at_scrape_time() {
        let none = Webhooks::new(&config::ApprovalsConfig::default()).unwrap();
        assert!(none.client.is_none(), "no webhook, no HTTP client");
        let dir = std::env::temp_dir().join(format!("mg-webhook-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s").unwrap();
        let hook = config::WebhookConfig {
            group: "ml-leads".into(),
            url: "http://127.0.0.1:9/h".into(),
            secret_env: None,
            secret_file: Some(file),
        };
        let cfg = config::ApprovalsConfig { webhooks: vec![hook], ..Default::default() };
        // Not started, room for one delivery: the second notice is dropped.
        let hooks = Webhooks::new(&cfg).unwrap().with_limits(1, 1);
        assert!(hooks.client.is_some());
        let mut registry = Registry::default();
        hooks.metrics().register(&mut registry);
        let scrape = || {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            text
        };
        let text = scrape();
        for result in ["delivered", "retried", "failed", "dropped"] {
            assert!(text.contains(&format!("approval_webhook_deliveries{{result=\"{result}\"}} 0")), "{text}");
        }
        hooks.notify(&notice());
        hooks.notify(&notice());
        assert_eq!(hooks.stats(), WebhookStats { dropped: 1, ..Default::default() });
        assert!(scrape().contains(r#"approval_webhook_deliveries{result="dropped"} 1"#), "{}", scrape());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_resolves_secrets_and_names_the_entry() {
        let dir = std::env::temp_dir().join(format!("mg-webhook-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let hook = |url: &str, env: Option<&str>, file: Option<&std::path::Path>| config::WebhookConfig {
            group: "ml-leads".into(),
            url: url.into(),
            secret_env: env.map(Into::into),
            secret_file: file.map(Into::into),
        };
        let cfg = |hooks| config::ApprovalsConfig { webhooks: hooks, ..Default::default() };
        let ok = Webhooks::new(&cfg(vec![hook("http://127.0.0.1:9/h", None, Some(&file))])).unwrap();
        assert_eq!(ok.hooks[0].secret, b"from-file");
        assert!(!format!("{ok:?}").contains("from-file"), "Debug shows no secret");
        let e = Webhooks::new(&cfg(vec![
            hook("http://127.0.0.1:9/h", None, Some(&file)),
            hook("http://127.0.0.1:9/h", Some("MODELGATE_TEST_UNSET_WEBHOOK_SECRET"), None),
        ]))
        .unwrap_err();
        assert_eq!(e.path, "approvals.webhooks[1]");
        assert!(e.message.contains("MODELGATE_TEST_UNSET_WEBHOOK_SECRET"), "{e}");
        let e = Webhooks::new(&cfg(vec![hook("http://127.0.0.1:9/h", None, Some(&dir.join("missing")))])).unwrap_err();
        assert_eq!(e.path, "approvals.webhooks[0]");
        assert!(e.message.contains("missing"), "{e}");
        let e = Webhooks::new(&cfg(vec![hook("ftp://x/h", None, Some(&file))])).unwrap_err();
        assert_eq!(e.path, "approvals.webhooks[0].url");
        let e = Webhooks::new(&cfg(vec![hook("http://x/h", None, None)])).unwrap_err();
        assert_eq!(e.path, "approvals.webhooks[0]");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
