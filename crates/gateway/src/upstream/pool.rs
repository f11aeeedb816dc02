//! The upstream client: an HTTP/1.1 keep-alive pool over `hyper::client::conn::http1`.
//!
//! Each upstream origin (`scheme://authority`) gets a [`Host`] with a stack of idle connections
//! behind one mutex, the only lock a request takes (twice: to pop a connection and to push it
//! back). A request pops the newest idle connection, or connects, hands the request to it and
//! waits for the response head. The connection goes back on the stack as soon as hyper says it
//! is idle again:
//!
//! - at once, by the request itself, when the whole response arrived with its head (the usual
//!   non-streamed answer): the body is then already in the response's channel;
//! - otherwise by the connection's own task, the one that drives hyper's dispatcher anyway, right
//!   after the poll in which the body ended. No task is spawned per request to wait for this.
//!
//! Cancellation is hyper's: a response body dropped half-read, or a request future dropped before
//! its head arrived (caller gone, first-byte timeout), closes the connection, so it never becomes
//! idle and never returns to the pool.
//!
//! A pooled connection that turns out to be dead before the request was written (hyper hands the
//! request back) is retried once on a fresh connection. A request that was written is never
//! retried: it may not be idempotent.
//!
//! Idle connections older than [`IDLE_TIMEOUT`] are closed when the pool next looks at them; an
//! upstream that closes an idle connection first is noticed by its connection task.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt as _;

use super::{BodyError, UpstreamBody};

/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream origin; one more going idle is closed.
const MAX_IDLE_PER_HOST: usize = 1024;

/// TCP (nodelay, keep-alive) wrapped in TLS for `https` upstreams.
pub(super) type Connector = HttpsConnector<HttpConnector>;
type Io = MaybeHttpsStream<TokioIo<TcpStream>>;
type Sender = http1::SendRequest<UpstreamBody>;

/// Why a request to an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request URI is not an absolute `http` or `https` URI.
    #[error("the upstream URI is not an absolute http(s) URI")]
    Uri,
    /// Connecting (name resolution, TCP, TLS) took longer than the connect timeout.
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// Connecting failed.
    #[error("connect error")]
    Connect(#[source] BodyError),
    /// The exchange failed on an established connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// The pooled keep-alive client used for every upstream (HTTP/1.1, TLS through rustls).
#[derive(Clone)]
pub struct UpstreamClient {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    connect_timeout: Duration,
    h1: http1::Builder,
    /// One entry per origin ever requested: the configured upstreams, so a short list.
    hosts: RwLock<Vec<Arc<Host>>>,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connect_timeout", &self.shared.connect_timeout)
            .field("hosts", &read(&self.shared.hosts).len())
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// A client connecting through `connector`, each connect bounded by `connect_timeout`.
    pub(super) fn new(connector: Connector, connect_timeout: Duration) -> UpstreamClient {
        UpstreamClient {
            shared: Arc::new(Shared {
                connector,
                connect_timeout,
                h1: http1::Builder::new(),
                hosts: RwLock::new(Vec::new()),
            }),
        }
    }

    /// Sends a request with an absolute `http(s)` URI upstream and waits for the response head.
    ///
    /// Dropping the returned future, or the response body before its end, closes the connection.
    pub async fn request(&self, mut req: Request<UpstreamBody>) -> Result<Response<Incoming>, RequestError> {
        let host = self.host(req.uri())?;
        host.prepare(&mut req);
        if let Some(conn) = host.checkout() {
            match conn.send(&host, req).await {
                Ok(res) => return Ok(res),
                Err(mut e) => match e.take_message() {
                    // Never written: the idle connection was closed under us. One fresh try.
                    Some(unsent) => req = unsent,
                    None => return Err(RequestError::Http(e.into_error())),
                },
            }
        }
        // Boxed: connecting is rare, and its state would otherwise sit in every request's future.
        let conn = Box::pin(self.connect(&host)).await?;
        conn.send(&host, req).await.map_err(|e| RequestError::Http(e.into_error()))
    }

    /// The pool of the request's origin, created on first use.
    fn host(&self, uri: &Uri) -> Result<Arc<Host>, RequestError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(RequestError::Uri),
        };
        let authority = uri.authority().ok_or(RequestError::Uri)?;
        let find = |hosts: &[Arc<Host>]| hosts.iter().find(|h| h.https == https && h.authority == *authority).cloned();
        if let Some(host) = find(&read(&self.shared.hosts)) {
            return Ok(host);
        }
        let mut hosts = self.shared.hosts.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(host) = find(&hosts) {
            return Ok(host);
        }
        let host = Arc::new(Host::new(https, authority)?);
        hosts.push(host.clone());
        Ok(host)
    }

    /// A new connection to `host`, its dispatcher running on its own task.
    async fn connect(&self, host: &Arc<Host>) -> Result<Pooled, RequestError> {
        let limit = self.shared.connect_timeout;
        let connecting = async {
            let io: Io = self.shared.connector.clone().oneshot(host.connect_uri.clone()).await.map_err(|e| {
                // The connector's own per-address timeout surfaces as an io `TimedOut`.
                if chain_has_timeout(&*e) { RequestError::ConnectTimeout(limit) } else { RequestError::Connect(e) }
            })?;
            self.shared.h1.handshake::<_, UpstreamBody>(io).await.map_err(|e| RequestError::Connect(e.into()))
        };
        let (tx, conn) =
            tokio::time::timeout(limit, connecting).await.map_err(|_| RequestError::ConnectTimeout(limit))??;
        let link = Arc::new(Link::default());
        tokio::spawn(ConnTask { conn, link: link.clone(), host: host.clone() });
        Ok(Pooled { tx, link })
    }
}

/// Whether an error or one of its sources is an io `TimedOut`.
fn chain_has_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        src = s.source();
    }
    false
}

/// The connections of one upstream origin.
struct Host {
    https: bool,
    authority: Authority,
    /// Where the connector connects (`scheme://authority/`).
    connect_uri: Uri,
    /// `Host` header for requests that carry none: the host, and the port unless the default.
    host_header: HeaderValue,
    /// Idle connections, oldest first: popped from the back, expired from the front.
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    conn: Pooled,
    since: Instant,
}

impl Host {
    fn new(https: bool, authority: &Authority) -> Result<Host, RequestError> {
        let connect_uri = Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| RequestError::Uri)?;
        let default_port = if https { 443 } else { 80 };
        let host_header = match authority.port_u16() {
            Some(port) if port != default_port => HeaderValue::from_str(&format!("{}:{port}", authority.host())),
            _ => HeaderValue::from_str(authority.host()),
        }
        .map_err(|_| RequestError::Uri)?;
        Ok(Host { https, authority: authority.clone(), connect_uri, host_header, idle: Mutex::new(VecDeque::new()) })
    }

    /// Turns an absolute-URI request into what goes on an HTTP/1.1 connection: origin-form
    /// target (authority-form for `CONNECT`), a `Host` header.
    fn prepare(&self, req: &mut Request<UpstreamBody>) {
        *req.version_mut() = Version::HTTP_11;
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host_header.clone());
        }
        let target = if req.method() == Method::CONNECT {
            Uri::from(self.authority.clone())
        } else {
            match req.uri().path_and_query() {
                Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
                _ => Uri::default(),
            }
        };
        *req.uri_mut() = target;
    }

    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Pooled> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while idle.front().is_some_and(|e| now.saturating_duration_since(e.since) >= IDLE_TIMEOUT) {
            idle.pop_front();
        }
        // An idle connection that is not ready was closed (by the upstream, or on an error).
        while let Some(e) = idle.pop_back() {
            if e.conn.tx.is_ready() {
                return Some(e.conn);
            }
        }
        None
    }

    /// Hands back a connection whose response head arrived: onto the stack if it is idle
    /// already, else to its connection task, which stacks it when the exchange is over.
    fn release(&self, conn: Pooled) {
        let Pooled { tx, link } = conn;
        if tx.is_ready() {
            self.push_idle(Pooled { tx, link });
        } else if !tx.is_closed()
            && let Some(tx) = link.park(tx)
        {
            self.push_idle(Pooled { tx, link });
        }
    }

    fn push_idle(&self, conn: Pooled) {
        let entry = Idle { conn, since: Instant::now() };
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_PER_HOST {
            idle.push_back(entry);
        }
    }

    #[cfg(test)]
    fn idle_len(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// A connection's sending half, checked out of the pool or just connected.
struct Pooled {
    tx: Sender,
    link: Arc<Link>,
}

impl Pooled {
    /// Sends the request and waits for the response head; then the connection goes back to
    /// the pool (now or when idle). On an error it is dropped: hyper has closed it.
    async fn send(
        mut self,
        host: &Host,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>> {
        let res = self.tx.try_send_request(req).await?;
        host.release(self);
        Ok(res)
    }
}

/// Where a busy connection's sender waits until its connection task sees the exchange end.
#[derive(Default)]
struct Link {
    /// Set while `slot` holds a sender: the connection task only locks the slot then.
    parked: AtomicBool,
    slot: Mutex<Option<Sender>>,
}

impl Link {
    /// Parks the sender of a busy connection. Gives it back if the connection went idle in the
    /// meantime, since its task may then not be polled again.
    fn park(&self, tx: Sender) -> Option<Sender> {
        let mut slot = lock(&self.slot);
        // SeqCst pairs with `unpark_if_ready`'s load, which the connection task makes after the
        // poll in which hyper marks the connection idle (a SeqCst store): either that load sees
        // this flag, or `is_ready` below sees the idle state.
        self.parked.store(true, Ordering::SeqCst);
        if tx.is_ready() {
            self.parked.store(false, Ordering::SeqCst);
            return Some(tx);
        }
        *slot = Some(tx);
        None
    }

    /// The parked sender, once its connection is idle again.
    fn unpark_if_ready(&self) -> Option<Sender> {
        if !self.parked.load(Ordering::SeqCst) {
            return None;
        }
        let mut slot = lock(&self.slot);
        if slot.as_ref().is_some_and(Sender::is_ready) {
            self.parked.store(false, Ordering::SeqCst);
            return slot.take();
        }
        None
    }
}

/// Drives one connection's dispatcher and stacks the connection when a parked exchange ends.
struct ConnTask {
    conn: http1::Connection<Io, UpstreamBody>,
    link: Arc<Link>,
    host: Arc<Host>,
}

impl Future for ConnTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Poll::Ready(done) = Pin::new(&mut this.conn).poll(cx) {
            if let Err(e) = done {
                tracing::debug!(upstream = %this.host.authority, "upstream connection closed: {e}");
            }
            return Poll::Ready(());
        }
        if let Some(tx) = this.link.unpark_if_ready() {
            this.host.push_idle(Pooled { tx, link: this.link.clone() });
        }
        Poll::Pending
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
