//! The request pipeline: one exchange from the caller's request to the relayed response.
//!
//! The stages run in this order, each a small function that knows nothing of the others' insides:
//!
//! 1. `assign_id`     — every exchange gets a UUIDv7 request id before anything can fail;
//! 2. `authenticate`  — a gateway key or an OIDC token, or 401 ([`identity::authn::Authenticator`]);
//! 3. gateway answers — `/v1/models` and `/api/tags` are served from all upstreams ([`crate::models`]);
//! 4. `read_request`  — prefix routing, endpoint lookup, bounded body read (413) or capped upload;
//! 5. `classify`      — action, model, streaming, usage shape ([`protocols::classify`]);
//!    (detect, authorize, approval hold, mask and record slot in here, in that order)
//! 6. `route`         — the upstream for the model or path (404 when none);
//! 7. `forward`       — credentials swapped, hop-by-hop headers dropped, sent on the pooled client
//!    under the connect and first-byte timeouts (502/504);
//! 8. `relay`         — the response streamed back frame by frame ([`crate::relay::RelayBody`]).
//!
//! They are plain async functions rather than boxed tower layers: the sequence is fixed, each
//! stage's output is the next one's input, and the hot path stays free of per-layer boxing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use config::Config;
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use identity::Identity;
use identity::authn::Authenticator;
use protocols::{Action, BodyUse, Classification, Endpoint, Framing, ResponseObserver, UsageShape};

use crate::error::GatewayError;
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{ExchangeLabels, Label, Metrics};
use crate::relay::{Finisher, RelayBody, RelayOptions};
use crate::route::Router;
use crate::upload::{CappedUpload, read_bounded};
use crate::upstream::{self, Upstream, UpstreamBody, UpstreamClient};

/// The body of every data-path response: a gateway-made one or the relayed upstream's.
pub type ResponseBody = Either<Full<Bytes>, RelayBody>;

/// Largest non-streamed response body copied for usage extraction.
const USAGE_COPY_CAP: usize = 4 << 20;

/// Limits and timeouts of the data path.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Buffered JSON bodies.
    pub max_request_bytes: u64,
    /// Streamed uploads.
    pub max_upload_bytes: u64,
    /// Request line and headers.
    pub max_header_bytes: u64,
    /// TCP connect to an upstream.
    pub connect: Duration,
    /// Request sent to first response byte.
    pub first_byte: Duration,
    /// Between two streamed chunks.
    pub idle: Duration,
    /// The whole exchange.
    pub total: Duration,
}

/// Everything the data path shares across requests.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) router: Router,
    pub(crate) client: UpstreamClient,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    auth: Arc<Authenticator>,
    none: Label,
}

/// Building the gateway from its config failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream could not be resolved.
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// The TLS root store could not be loaded.
    #[error("loading the system's TLS roots for upstreams: {0}")]
    Roots(#[from] std::io::Error),
}

impl Gateway {
    /// Builds the data path from a validated config: resolves upstream keys, creates the pool.
    pub fn build(config: &Config, metrics: Arc<Metrics>, auth: Arc<Authenticator>) -> Result<Arc<Gateway>, BuildError> {
        let s = &config.server;
        let limits = Limits {
            max_request_bytes: s.max_request_bytes,
            max_upload_bytes: s.max_upload_bytes,
            max_header_bytes: s.max_header_bytes,
            connect: s.connect_timeout,
            first_byte: s.first_byte_timeout,
            idle: s.idle_timeout,
            total: s.request_timeout,
        };
        let router = Router::new(upstream::build_all(config)?);
        let client = upstream::client(limits.connect)?;
        let none = metrics.none();
        Ok(Arc::new(Gateway { router, client, metrics, limits, auth, none }))
    }

    /// The metrics this gateway records.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one request. Never fails: every error becomes a SPEC section 8 response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let start = Instant::now();
        let id = assign_id();
        let mut ctx = Ctx {
            start,
            id,
            upstream: self.none.clone(),
            model: self.none.clone(),
            action: Action::Unknown,
            caller: None,
        };
        let res = match self.exchange(req, remote, &mut ctx).await {
            Ok(res) => res,
            Err(err) => {
                let status = err.status.as_u16();
                self.metrics.error(&ctx.upstream, &ctx.model, ctx.action.as_str(), err.code);
                let labels = ctx.labels(status);
                self.metrics.request(&labels);
                self.metrics.duration(&labels, start.elapsed());
                tracing::info!(
                    request_id = &*ctx.id,
                    upstream = &*ctx.upstream.0,
                    status,
                    code = err.code,
                    "{}",
                    err.message
                );
                err.to_response(&ctx.id, |b| Either::Left(Full::new(b)))
            }
        };
        Ok(res)
    }

    async fn exchange(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        ctx.caller = Some(self.authenticate(&req, remote, ctx).await?);
        if req.method() == Method::GET && matches!(req.uri().path(), "/v1/models" | "/api/tags") {
            return crate::models::answer(self, req.uri().path(), &ctx.id).await;
        }
        let incoming = self.read_request(req).await?;
        let class =
            protocols::classify(incoming.endpoint, &incoming.path, incoming.query.as_deref(), incoming.json.as_deref())
                .map_err(|e| GatewayError::malformed(format!("the request body is not valid JSON: {e}")))?;
        ctx.action = class.action;
        ctx.model = self.metrics.model_label(class.model.as_deref());
        let upstream = self.route(&incoming, &class)?;
        ctx.upstream = Label(upstream.name.clone());
        self.forward(incoming, class, upstream, ctx).await
    }

    /// Stage 2: who is calling. The precise reason for a refusal goes to the log and metrics;
    /// the caller only learns that authentication failed.
    async fn authenticate(
        &self,
        req: &Request<Incoming>,
        remote: SocketAddr,
        ctx: &Ctx,
    ) -> Result<Identity, GatewayError> {
        match self.auth.authenticate(req.headers(), Some(remote.ip())).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.metrics.auth_failure(e.reason());
                tracing::info!(request_id = &*ctx.id, src_ip = %remote.ip(), reason = e.reason(), "authentication failed: {e}");
                Err(GatewayError::unauthenticated())
            }
        }
    }

    /// Stage 4: splits the request, applies prefix routing and reads the body per the endpoint.
    async fn read_request(&self, req: Request<Incoming>) -> Result<Incoming_, GatewayError> {
        let (parts, body) = req.into_parts();
        // The listener's read buffer bounds memory, but a head that arrives in one read can pass
        // it; the configured limit is enforced here, exactly.
        let head = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
            + parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
        if head as u64 > self.limits.max_header_bytes {
            return Err(GatewayError::headers_too_large(self.limits.max_header_bytes));
        }
        let full_path = parts.uri.path();
        let (prefixed, path) = match self.router.by_prefix(full_path) {
            Some((u, rest)) => (Some(u.clone()), rest.to_string()),
            None => (None, full_path.to_string()),
        };
        let endpoint = protocols::lookup(&parts.method, &path)
            .filter(|e| prefixed.as_ref().is_none_or(|u| e.flavors.contains(u.flavor)));
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let query = parts.uri.query().map(str::to_string);
        let mut out = Incoming_ { parts, prefixed, path, query, endpoint, json: None, upload: None };
        if endpoint.is_some_and(|e| e.body == BodyUse::Json) {
            let limit = self.limits.max_request_bytes;
            if declared.is_some_and(|n| n > limit) {
                return Err(GatewayError::too_large(limit));
            }
            out.json = Some(read_bounded(body, limit).await?);
        } else {
            let limit = self.limits.max_upload_bytes;
            if declared.is_some_and(|n| n > limit) {
                return Err(GatewayError::too_large(limit));
            }
            out.upload = Some(body);
        }
        Ok(out)
    }

    /// Stage 5: picks the upstream.
    fn route(&self, req: &Incoming_, class: &Classification) -> Result<Arc<Upstream>, GatewayError> {
        if let Some(u) = &req.prefixed {
            return Ok(u.clone());
        }
        self.router.by_model(class.model.as_deref(), req.endpoint).cloned().ok_or_else(|| match &class.model {
            Some(m) => GatewayError::no_route(format!("no upstream serves model \"{m}\"")),
            None => {
                GatewayError::no_route(format!("no upstream takes {} {} without a model", req.parts.method, req.path))
            }
        })
    }

    /// Stages 6 and 7: sends upstream and relays the response.
    async fn forward(
        &self,
        req: Incoming_,
        class: Classification,
        upstream: Arc<Upstream>,
        ctx: &mut Ctx,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let Incoming_ { parts, path, query, json, upload, .. } = req;
        let deadline = tokio::time::Instant::from_std(ctx.start) + self.limits.total;

        // Streamed OpenAI-style calls ask the upstream for usage; the extra chunk is dropped
        // again for callers who did not ask for it.
        let mut rewritten = false;
        let mut drop_usage = false;
        let mut json = json;
        if class.stream
            && upstream.stream_usage
            && protocols::accepts_stream_options(&path)
            && let Some(body) = json.as_deref().and_then(protocols::ensure_stream_usage)
        {
            json = Some(Bytes::from(body));
            rewritten = true;
            drop_usage = !class.caller_wants_usage;
        }

        let uri = upstream
            .uri(&path, query.as_deref())
            .map_err(|e| GatewayError::malformed(format!("cannot forward this path: {e}")))?;
        let exceeded = Arc::new(AtomicBool::new(false));
        let body: UpstreamBody = match (json, upload) {
            (Some(b), _) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
            (None, Some(inc)) if !inc.is_end_stream() => {
                CappedUpload::new(inc, self.limits.max_upload_bytes, exceeded.clone()).boxed_unsync()
            }
            _ => Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync(),
        };
        let mut ureq = Request::new(body);
        *ureq.method_mut() = parts.method;
        *ureq.uri_mut() = uri;
        *ureq.headers_mut() = parts.headers;
        let h = ureq.headers_mut();
        headers::to_upstream(h, rewritten);
        if let Ok(v) = HeaderValue::from_str(&ctx.id) {
            h.insert(X_REQUEST_ID, v);
        }
        if let Some(auth) = &upstream.auth {
            h.insert(header::AUTHORIZATION, auth.clone());
        }

        let sent = Instant::now();
        let first_byte_by = deadline.min(tokio::time::Instant::now() + self.limits.first_byte);
        let res = match tokio::time::timeout_at(first_byte_by, self.client.request(ureq)).await {
            Err(_) => {
                return Err(GatewayError::upstream_timeout(format!(
                    "upstream \"{}\" sent no response within {:?}",
                    upstream.name,
                    first_byte_by - tokio::time::Instant::from_std(sent)
                )));
            }
            Ok(Err(e)) => return Err(upstream_failure(&upstream, &e, &exceeded, self.limits)),
            Ok(Ok(res)) => res,
        };
        let (mut rparts, mut rbody) = res.into_parts();
        // The head is held until the first body frame, so that an upstream that answers its head
        // and then stalls still gets a clean 504 rather than a broken stream.
        let first = if rbody.is_end_stream() {
            None
        } else {
            match tokio::time::timeout_at(first_byte_by, rbody.frame()).await {
                Err(_) => {
                    return Err(GatewayError::upstream_timeout(format!(
                        "upstream \"{}\" sent no response body within first_byte_timeout",
                        upstream.name
                    )));
                }
                Ok(None) => None,
                Ok(Some(Err(e))) => {
                    return Err(GatewayError::upstream_unavailable(format!(
                        "upstream \"{}\" broke off the response: {e}",
                        upstream.name
                    )));
                }
                Ok(Some(Ok(f))) => Some(f),
            }
        };
        let upstream_latency = sent.elapsed();

        let framing = response_framing(&rparts.headers);
        let drop_usage = drop_usage && framing == Framing::Sse;
        let observer = (class.usage != UsageShape::None || drop_usage)
            .then(|| ResponseObserver::new(class.usage, framing, drop_usage, USAGE_COPY_CAP));
        headers::to_caller(&mut rparts.headers, drop_usage);
        if let Ok(v) = HeaderValue::from_str(&ctx.id) {
            rparts.headers.insert(X_REQUEST_ID, v);
        }
        let labels = ctx.labels(rparts.status.as_u16());
        self.metrics.request(&labels);
        self.metrics.head(&labels, upstream_latency, ctx.start.elapsed().saturating_sub(upstream_latency));
        let finisher = Finisher::new(self.metrics.clone(), labels, ctx.start, ctx.id.clone());
        let opts = RelayOptions { idle: self.limits.idle, deadline, framing, rewrites: drop_usage };
        let body = RelayBody::new(rbody, first, observer, opts, upstream.name.clone(), finisher);
        Ok(Response::from_parts(rparts, Either::Right(body)))
    }
}

/// The per-exchange facts the error path and metrics need.
struct Ctx {
    start: Instant,
    id: Arc<str>,
    upstream: Label,
    model: Label,
    action: Action,
    /// Who is calling, once authenticated; later layers (policy, audit) key on it.
    caller: Option<Identity>,
}

impl Ctx {
    fn labels(&self, status: u16) -> ExchangeLabels {
        ExchangeLabels {
            upstream: self.upstream.clone(),
            model: self.model.clone(),
            action: self.action.as_str(),
            status,
        }
    }
}

/// A request after stage 3.
struct Incoming_ {
    parts: http::request::Parts,
    prefixed: Option<Arc<Upstream>>,
    path: String,
    query: Option<String>,
    endpoint: Option<&'static Endpoint>,
    json: Option<Bytes>,
    upload: Option<Incoming>,
}

/// Stage 1: a fresh, time-ordered request id (UUIDv7). The random bits come from a per-thread
/// SplitMix64 seeded once by std's hasher keys, not a `getrandom` syscall per request: request
/// ids must be unique, not secret.
fn assign_id() -> Arc<str> {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
            h.finish()
        });
    }
    let next = || {
        STATE.with(|s| {
            let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next().to_le_bytes());
    random[8..].copy_from_slice(&next().to_le_bytes()[..2]);
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*id.hyphenated().encode_lower(&mut buf))
}

/// The framing of a response, from its content type.
fn response_framing(h: &http::HeaderMap) -> Framing {
    let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return Framing::None };
    let ct = ct.trim_start();
    if ct.starts_with("text/event-stream") {
        Framing::Sse
    } else if ct.starts_with("application/x-ndjson")
        || ct.starts_with("application/jsonl")
        || ct.starts_with("application/ndjson")
    {
        Framing::Ndjson
    } else {
        Framing::None
    }
}

/// Maps a client error to 413, 502 or 504.
fn upstream_failure(
    upstream: &Upstream,
    e: &hyper_util::client::legacy::Error,
    exceeded: &AtomicBool,
    limits: Limits,
) -> GatewayError {
    if exceeded.load(Ordering::Relaxed) {
        return GatewayError::too_large(limits.max_upload_bytes);
    }
    let timed_out = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut found = false;
        while let Some(s) = src {
            if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
                found = true;
                break;
            }
            src = s.source();
        }
        found
    };
    if e.is_connect() && timed_out {
        return GatewayError::upstream_timeout(format!(
            "connecting to upstream \"{}\" timed out after {:?}",
            upstream.name, limits.connect
        ));
    }
    if e.is_connect() {
        return GatewayError::upstream_unavailable(format!("upstream \"{}\" is unreachable", upstream.name));
    }
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    GatewayError::upstream_unavailable(format!("upstream \"{}\" failed: {detail}", upstream.name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_v7_unique_and_time_ordered() {
        let ids: Vec<_> = (0..10_000).map(|_| super::assign_id()).collect();
        let parsed: Vec<uuid::Uuid> = ids.iter().map(|s| uuid::Uuid::parse_str(s).unwrap()).collect();
        assert!(parsed.iter().all(|u| u.get_version_num() == 7));
        let mut set = std::collections::HashSet::new();
        assert!(parsed.iter().all(|u| set.insert(*u)), "duplicate request id");
        let ts: Vec<u64> = parsed.iter().map(|u| u.get_timestamp().unwrap().to_unix().0).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "ids not time-ordered by millisecond");
    }
}
