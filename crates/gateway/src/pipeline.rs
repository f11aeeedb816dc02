//! The request pipeline: one exchange from the caller's request to the relayed response.
//!
//! The stages run in this order, each a small function that knows nothing of the others' insides:
//!
//! 1. `assign_id`     — every exchange gets a UUIDv7 request id before anything can fail;
//! 2. `authenticate`  — a gateway key or an OIDC token, or 401 ([`identity::authn::Authenticator`]);
//! 3. gateway answers — `/v1/models` and `/api/tags` are served from all upstreams ([`crate::models`]);
//! 4. `read_request`  — prefix routing, endpoint lookup, bounded body read (413) or capped upload;
//! 5. `classify`      — action, model, streaming, usage shape ([`protocols::classify`]);
//! 6. `route`         — the upstream for the model or path (404 when none);
//! 7. `authorize`     — detection (only when a policy reads it) and the policy decision; a
//!    refusal is one `policy.denied` record and a 403 (approval hold and mask slot in after it);
//! 8. `record`        — the request record, durable per the route's mode ([`crate::record`]):
//!    `strict` waits for its fsync here (503 `audit_unavailable` when the store fails closed);
//! 9. `forward`       — credentials swapped, hop-by-hop headers dropped, sent on the pooled client
//!    under the connect and first-byte timeouts (502/504); `balanced` awaits the request
//!    record's fsync before the response head goes back;
//! 10. `relay`         — the response streamed back frame by frame ([`crate::relay::RelayBody`]),
//!     recorded, and closed by the completion record (`strict`: durable before the final byte).
//!
//! Every refusal or failure after authentication is recorded too: a request record (when none
//! was written yet) and a completion with the error's status and code.
//!
//! They are plain async functions rather than boxed tower layers: the sequence is fixed, each
//! stage's output is the next one's input, and the hot path stays free of per-layer boxing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use audit::{Actor, Entry, Outcome};
use bytes::Bytes;
use config::Config;
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use identity::authn::Authenticator;
use protocols::{Action, BodyUse, Classification, Endpoint, Framing, ResponseObserver, UsageShape};

use crate::error::GatewayError;
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{ExchangeLabels, Label, Metrics};
use crate::record::{Exchange, Recorder, RequestFacts, RouteAudit, completion_event, request_entry};
use crate::relay::{CompletionSink, Finisher, RelayBody, RelayOptions};
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
///
/// What a config reload may change lives in a [`Runtime`] behind an atomic pointer: each
/// exchange loads it once and finishes under that version, however many reloads happen meanwhile.
#[derive(Debug)]
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    pub(crate) client: UpstreamClient,
    pub(crate) metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    audit: Arc<audit::Audit>,
    approvals: Arc<approvals::Approvals>,
    mask_key: Arc<[u8; 32]>,
    none: Label,
}

/// The reloadable part of the data path: routes, limits, audit settings and the policy set.
#[derive(Debug)]
pub struct Runtime {
    pub(crate) router: Router,
    pub(crate) limits: Limits,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) policy: Arc<policy::Policies>,
    /// Detection (built-in and custom types), for policy's `detected` and for masking.
    pub(crate) detector: masking::Detector,
}

impl Runtime {
    /// The policy set in force.
    pub fn policies(&self) -> &Arc<policy::Policies> {
        &self.policy
    }

    /// The upstream a model (or a model-less call) routes to, whatever the endpoint's API.
    pub fn upstream_for(&self, model: Option<&str>) -> Option<String> {
        self.router.by_model(model, None).map(|u| u.name.to_string())
    }
}

/// Building the gateway from its config failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream could not be resolved.
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
    /// A custom masking detector could not be built.
    #[error("masking.custom: {0}")]
    Masking(String),
    /// The TLS root store could not be loaded.
    #[error("loading the system's TLS roots for upstreams: {0}")]
    Roots(#[from] std::io::Error),
}

impl Gateway {
    /// Builds the data path from a validated config and its policy set: resolves upstream keys,
    /// creates the pool.
    pub fn build(
        config: &Config,
        policies: policy::Policies,
        metrics: Arc<Metrics>,
        auth: Arc<Authenticator>,
        audit: Arc<audit::Audit>,
        approvals: Arc<approvals::Approvals>,
        mask_key: Arc<[u8; 32]>,
    ) -> Result<Arc<Gateway>, BuildError> {
        let runtime = Self::runtime(config, policies, &audit)?;
        let client = upstream::client(runtime.limits.connect)?;
        let none = metrics.none();
        let runtime = ArcSwap::from_pointee(runtime);
        Ok(Arc::new(Gateway { runtime, client, metrics, auth, audit, approvals, mask_key, none }))
    }

    fn runtime(config: &Config, policies: policy::Policies, audit: &Arc<audit::Audit>) -> Result<Runtime, BuildError> {
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
        let recorder = Arc::new(Recorder::new(audit.clone(), config));
        let custom: Vec<masking::CustomSpec> = config
            .masking
            .custom
            .iter()
            .map(|(name, c)| masking::CustomSpec {
                name: name.to_ascii_uppercase(),
                patterns: c.patterns.clone(),
                words: c.words.clone(),
                case_sensitive: c.case_sensitive,
            })
            .collect();
        let detector = masking::Detector::new(&custom).map_err(|e| BuildError::Masking(e.to_string()))?;
        Ok(Runtime { router, limits, recorder, policy: Arc::new(policies), detector })
    }

    /// Swaps in a new config and policy set atomically. Exchanges already running finish under
    /// the version they started with; the upstream connection pool is kept. The connect timeout,
    /// listeners and header limit are fixed at start.
    pub fn reload(&self, config: &Config, policies: policy::Policies) -> Result<(), BuildError> {
        let runtime = Self::runtime(config, policies, &self.audit)?;
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// The runtime in force now.
    pub fn current(&self) -> Arc<Runtime> {
        self.runtime.load_full()
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
        let rt = self.runtime.load_full();
        let mut ctx = Ctx {
            start,
            id,
            upstream: self.none.clone(),
            model: self.none.clone(),
            action: Action::Unknown,
            actor: None,
            exchange: None,
            route: rt.recorder.route(None),
            refused: false,
            approval_id: None,
            detected: masking::Detected::default(),
            rt,
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
                self.record_failure(&mut ctx, &err);
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
        let caller = self.authenticate(&req, remote, ctx).await?;
        ctx.actor = Some(Arc::new(Actor::from_identity(&caller)));
        if req.method() == Method::GET && matches!(req.uri().path(), "/v1/models" | "/api/tags") {
            ctx.action = Action::ReadModels;
            let res = crate::models::answer(self, &ctx.rt, &caller, req.uri().path(), &ctx.id).await?;
            self.record_answered(ctx, req.headers(), &res);
            return Ok(res);
        }
        let incoming = self.read_request(req, ctx).await?;
        let class =
            protocols::classify(incoming.endpoint, &incoming.path, incoming.query.as_deref(), incoming.json.as_deref())
                .map_err(|e| GatewayError::malformed(format!("the request body is not valid JSON: {e}")))?;
        ctx.action = class.action;
        ctx.model = self.metrics.model_label(class.model.as_deref());
        let upstream = self.route(&incoming, &class, ctx)?;
        ctx.upstream = Label(upstream.name.clone());
        ctx.route = ctx.rt.recorder.route(Some(&upstream.name));
        let decision = self.authorize(&caller, &incoming, &class, &upstream, ctx).await?;
        let mut incoming = incoming;
        let masker = self.mask_request(&mut incoming, &decision, ctx)?;
        let mut ticket = self.record_request(&incoming, &class, &upstream, decision, masker.as_ref(), ctx).await?;
        // Boxed: its state (the upstream call, the relay setup) would otherwise sit inline in
        // every exchange's future, also while one waits for an approval.
        let res = Box::pin(self.forward(incoming, class, upstream, masker, &mut ticket, ctx)).await;
        if let Some(t) = ticket.take() {
            // `balanced`, and forwarding failed: not even an error goes back before the request
            // record is durable.
            t.await.map_err(|_| GatewayError::audit_unavailable())?;
        }
        res
    }

    /// Stages detect and authorize: the policy decision for this caller, action and model (what
    /// detection found is kept in `ctx.detected` for the records). A refusal is recorded as one
    /// `policy.denied` event (durable per the route's mode before the caller hears of it) and
    /// answered 403; an allow's obligations adjust the route's audit settings (a rule's
    /// `durability` and `recording` take precedence over the upstream's).
    async fn authorize(
        &self,
        caller: &identity::Identity,
        req: &Incoming_,
        class: &Classification,
        upstream: &Upstream,
        ctx: &mut Ctx,
    ) -> Result<policy::Decision, GatewayError> {
        let rt = ctx.rt.clone();
        if let Some(body) = &req.json
            && rt.policy.needs_detection()
        {
            ctx.detected = rt.detector.detect(body);
        }
        let query = policy::Query {
            stream: class.stream,
            max_tokens: class.max_tokens,
            ..policy_query(caller, class.action, class.model.as_deref(), Some(&upstream.name), ctx.detected.names())
        };
        let decision = rt.policy.decide(&query);
        let err = match decision.effect {
            policy::Effect::Allow => None,
            policy::Effect::RequireApproval => {
                match self.hold_for_approval(req, class, upstream, &decision, ctx).await {
                    Ok(approval_id) => {
                        ctx.approval_id = Some(approval_id);
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            policy::Effect::Deny => Some(GatewayError::access_denied(match decision.policies.first() {
                Some(_) => format!("{} is denied by policy", class.action.as_str()),
                None => format!(
                    "no policy allows {} on {}",
                    class.action.as_str(),
                    class.model.as_deref().map_or_else(|| "this endpoint".to_string(), |m| format!("\"{m}\""))
                ),
            })),
        };
        let Some(err) = err else {
            let o = &decision.obligations;
            if let Some(d) = o.durability {
                ctx.route.durability = d;
            }
            if let Some(r) = o.recording {
                ctx.route.full = r == config::Recording::Full;
            }
            return Ok(decision);
        };
        if let Some(actor) = ctx.actor.clone() {
            let facts = RequestFacts {
                request_id: &ctx.id,
                actor,
                headers: &req.parts.headers,
                class: Some(class),
                action: class.action,
                upstream: Some((&upstream.name, upstream.flavor.name())),
                body: None,
                bytes_in: req.json.as_ref().map(|b| b.len() as u64),
                policy: Some(policy_section(&decision)),
                detected: ctx.detected.names(),
            };
            let mut event = crate::record::denial_event(facts);
            event.status_code = Some(403);
            event.reason = Some(err.code.to_string());
            event.latency_ms = Some(ctx.start.elapsed().as_millis() as u64);
            // Recorded here, once: the error path must not add a request/completion pair.
            ctx.refused = true;
            if let Some(ticket) = rt.recorder.request(ctx.route, Entry::event(event)).await? {
                ticket.await.map_err(|_| GatewayError::audit_unavailable())?;
            }
        }
        Err(err)
    }

    /// The approval hold: a grant that covers this call lets it through at once; otherwise an
    /// approval request is filed (or the pending one for the same call found) and the caller
    /// waits for the decision (`hold`, without polling) or gets a ticket at once (`ticket`).
    /// Returns the approval's id when the call may go on.
    async fn hold_for_approval(
        &self,
        req: &Incoming_,
        class: &Classification,
        upstream: &Upstream,
        decision: &policy::Decision,
        ctx: &Ctx,
    ) -> Result<String, GatewayError> {
        let actor = ctx.actor.clone().unwrap_or_default();
        let subject = actor.subject.clone().unwrap_or_default();
        let body = req.json.as_deref().unwrap_or_default();
        let call = approvals::Call {
            subject: &subject,
            actor: actor.clone(),
            action: class.action,
            model: class.model.as_deref(),
            upstream: Some(&upstream.name),
            body_digest: <sha2::Sha256 as sha2::Digest>::digest(body).into(),
        };
        if let Some(r) = self.approvals.redeem(&call, &ctx.id).await {
            return Ok(r.approval_id);
        }
        let excerpt = req.json.as_deref().and_then(crate::excerpt::masked_excerpt);
        let pending = self
            .approvals
            .request(&call, &decision.obligations.approval, &ctx.id, excerpt)
            .await
            .map_err(|e| GatewayError::unavailable(format!("filing the approval request failed: {e}")))?;
        let what = format!("{} on \"{}\"", class.action.as_str(), class.model.as_deref().unwrap_or(""));
        let pending_error =
            |message: String| GatewayError::approval_pending(message, pending.id.clone(), pending.approve_url.clone());
        if pending.mode == config::ApprovalMode::Ticket {
            return Err(pending_error(format!(
                "{what} needs approval (request {}); retry once it is approved",
                pending.id
            )));
        }
        match self.approvals.wait(&pending.id, pending.hold_timeout).await {
            approvals::Outcome::Approved => match self.approvals.redeem(&call, &ctx.id).await {
                Some(r) => Ok(r.approval_id),
                None => Err(pending_error(format!("{what} was approved, but its grant is no longer usable"))),
            },
            approvals::Outcome::Denied { reason } => {
                Err(GatewayError::access_denied(format!("approval {} of {what} was denied: {reason}", pending.id)))
            }
            approvals::Outcome::Expired => {
                Err(GatewayError::approval_required(format!("approval request {} expired undecided", pending.id)))
            }
            _ => Err(pending_error(format!(
                "{what} was not approved within {:?}; the request {} stays pending: retry once it is approved",
                pending.hold_timeout, pending.id
            ))),
        }
    }

    /// The mask stage: when the decision carries a masking obligation, the request body is masked
    /// (JSON-aware) before anything else sees it, and a masker is kept for the response. Fails
    /// closed: a body that cannot be masked, or a streamed upload under a profile that masks
    /// requests, is refused; nothing goes upstream unmasked.
    fn mask_request(
        &self,
        req: &mut Incoming_,
        decision: &policy::Decision,
        ctx: &Ctx,
    ) -> Result<Option<masking::Masker>, GatewayError> {
        let Some(plan) = mask_plan(&decision.obligations) else { return Ok(None) };
        if req.upload.is_some() && plan.request {
            return Err(GatewayError::masking_failed(
                "this call streams its body, which cannot be masked; the masking profile requires it",
            ));
        }
        let mut masker = masking::Masker::with_detector(plan, self.mask_key.clone(), ctx.rt.detector.clone());
        if let Some(body) = &req.json {
            let out = masker.request_parts(body).map_err(|e| match e {
                masking::MaskError::NotJson(_) | masking::MaskError::TooDeep(_) => {
                    GatewayError::malformed(format!("{e}; it cannot be masked, so it is not forwarded"))
                }
                other => GatewayError::masking_failed(format!("masking the request failed: {other}")),
            })?;
            req.json = Some(out.upstream);
            req.record_json = Some(out.record);
        }
        Ok(Some(masker))
    }

    /// Stage 7: the request record. `strict` returns once it is durable; `balanced` returns the
    /// ticket the response waits on; `async` has queued it.
    async fn record_request(
        &self,
        req: &Incoming_,
        class: &Classification,
        upstream: &Upstream,
        decision: policy::Decision,
        masker: Option<&masking::Masker>,
        ctx: &mut Ctx,
    ) -> Result<Option<audit::Ticket>, GatewayError> {
        let Some(actor) = ctx.actor.clone() else { return Ok(None) };
        let declared = req.parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        let facts = RequestFacts {
            request_id: &ctx.id,
            actor,
            headers: &req.parts.headers,
            class: Some(class),
            action: class.action,
            upstream: Some((&upstream.name, upstream.flavor.name())),
            // The recording keeps the masked form whenever masking applies.
            body: req.record_json.as_ref().or(req.json.as_ref()),
            bytes_in: req.json.as_ref().map(|b| b.len() as u64).or(declared),
            policy: Some(policy_section(&decision)),
            detected: ctx.detected.names(),
        };
        let (mut entry, mut exchange) = request_entry(facts, ctx.route.full, ctx.rt.recorder.cap());
        if let Some(m) = masker {
            let counts = m.counts();
            entry.event.masking = Some(serde_json::json!({ "request": counts.request }));
        }
        if let Some(id) = &ctx.approval_id {
            entry.event.approval = Some(serde_json::json!({ "id": id, "state": "used" }));
            exchange.template.approval = entry.event.approval.clone();
        }
        if ctx.rt.recorder.audit().is_failed() && ctx.route.durability != audit::Durability::Async {
            // Refused before anything was queued: counted in the outage event, not recorded.
            ctx.rt.recorder.audit().note_refused();
            ctx.refused = true;
            return Err(GatewayError::audit_unavailable());
        }
        ctx.exchange = Some(exchange);
        ctx.rt.recorder.request(ctx.route, entry).await
    }

    /// Records an exchange the gateway answered itself (`/v1/models`, `/api/tags`).
    fn record_answered(&self, ctx: &mut Ctx, headers: &http::HeaderMap, res: &Response<ResponseBody>) {
        let Some(actor) = ctx.actor.clone() else { return };
        let facts = RequestFacts {
            request_id: &ctx.id,
            actor,
            headers,
            class: None,
            action: ctx.action,
            upstream: None,
            body: None,
            bytes_in: None,
            policy: None,
            detected: &[],
        };
        let (entry, exchange) = request_entry(facts, false, 0);
        ctx.rt.recorder.later(ctx.route, entry);
        let mut done = completion_event(exchange, Outcome::Success);
        done.status_code = Some(res.status().as_u16());
        done.end = Some("completed".into());
        done.latency_ms = Some(ctx.start.elapsed().as_millis() as u64);
        done.bytes_out = res.body().size_hint().exact();
        ctx.rt.recorder.later(ctx.route, Entry::event(done));
        let labels = ctx.labels(res.status().as_u16());
        self.metrics.request(&labels);
        self.metrics.duration(&labels, ctx.start.elapsed());
    }

    /// Records a refused or failed exchange: its request record when none was written yet, and
    /// a completion carrying the error.
    fn record_failure(&self, ctx: &mut Ctx, err: &GatewayError) {
        if ctx.refused || err.code == "authentication_failed" {
            return;
        }
        let Some(actor) = ctx.actor.clone() else { return };
        let exchange = match ctx.exchange.take() {
            Some(x) => x,
            None => {
                let headers = http::HeaderMap::new();
                let facts = RequestFacts {
                    request_id: &ctx.id,
                    actor,
                    headers: &headers,
                    class: None,
                    action: ctx.action,
                    upstream: None,
                    body: None,
                    bytes_in: None,
                    policy: None,
                    detected: &[],
                };
                let (entry, exchange) = request_entry(facts, false, 0);
                ctx.rt.recorder.later(ctx.route, entry);
                exchange
            }
        };
        let outcome = if err.status.is_server_error() { Outcome::Failure } else { Outcome::Denied };
        let outcome = if err.status.as_u16() == 503 { Outcome::Error } else { outcome };
        let mut done = completion_event(exchange, outcome);
        done.status_code = Some(err.status.as_u16());
        done.reason = Some(err.code.to_string());
        done.end = Some(
            match err.code {
                "upstream_timeout" => "timeout",
                "upstream_unavailable" => "upstream_error",
                _ => "completed",
            }
            .into(),
        );
        done.latency_ms = Some(ctx.start.elapsed().as_millis() as u64);
        ctx.rt.recorder.later(ctx.route, Entry::event(done));
    }

    /// Stage 2: who is calling. The precise reason for a refusal goes to the log and metrics;
    /// the caller only learns that authentication failed.
    async fn authenticate(
        &self,
        req: &Request<Incoming>,
        remote: SocketAddr,
        ctx: &Ctx,
    ) -> Result<identity::Identity, GatewayError> {
        match self.auth.authenticate(req.headers(), Some(remote.ip())).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.metrics.auth_failure(e.reason());
                ctx.rt.recorder.auth_failure(&ctx.id, req.headers(), remote, e.reason());
                tracing::info!(request_id = &*ctx.id, src_ip = %remote.ip(), reason = e.reason(), "authentication failed: {e}");
                Err(GatewayError::unauthenticated())
            }
        }
    }

    /// Stage 4: splits the request, applies prefix routing and reads the body per the endpoint.
    async fn read_request(&self, req: Request<Incoming>, ctx: &mut Ctx) -> Result<Incoming_, GatewayError> {
        let (parts, body) = req.into_parts();
        // The listener's read buffer bounds memory, but a head that arrives in one read can pass
        // it; the configured limit is enforced here, exactly.
        let head = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
            + parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
        if head as u64 > ctx.rt.limits.max_header_bytes {
            return Err(GatewayError::headers_too_large(ctx.rt.limits.max_header_bytes));
        }
        let full_path = parts.uri.path();
        let (prefixed, path) = match ctx.rt.router.by_prefix(full_path) {
            Some((u, rest)) => (Some(u.clone()), rest.to_string()),
            None => (None, full_path.to_string()),
        };
        let endpoint = protocols::lookup(&parts.method, &path)
            .filter(|e| prefixed.as_ref().is_none_or(|u| e.flavors.contains(u.flavor)));
        ctx.action = endpoint.map_or(Action::Unknown, |e| e.action);
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let query = parts.uri.query().map(str::to_string);
        let mut out = Incoming_ { parts, prefixed, path, query, endpoint, json: None, record_json: None, upload: None };
        if endpoint.is_some_and(|e| e.body == BodyUse::Json) {
            let limit = ctx.rt.limits.max_request_bytes;
            if declared.is_some_and(|n| n > limit) {
                return Err(GatewayError::too_large(limit));
            }
            out.json = Some(read_bounded(body, limit).await?);
        } else {
            let limit = ctx.rt.limits.max_upload_bytes;
            if declared.is_some_and(|n| n > limit) {
                return Err(GatewayError::too_large(limit));
            }
            out.upload = Some(body);
        }
        Ok(out)
    }

    /// Stage 5: picks the upstream.
    fn route(&self, req: &Incoming_, class: &Classification, ctx: &Ctx) -> Result<Arc<Upstream>, GatewayError> {
        if let Some(u) = &req.prefixed {
            return Ok(u.clone());
        }
        ctx.rt.router.by_model(class.model.as_deref(), req.endpoint).cloned().ok_or_else(|| match &class.model {
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
        masker: Option<masking::Masker>,
        ticket: &mut Option<audit::Ticket>,
        ctx: &mut Ctx,
    ) -> Result<Response<ResponseBody>, GatewayError> {
        let Incoming_ { parts, path, query, json, record_json, upload, .. } = req;
        let deadline = tokio::time::Instant::from_std(ctx.start) + ctx.rt.limits.total;

        // Streamed OpenAI-style calls ask the upstream for usage; the extra chunk is dropped
        // again for callers who did not ask for it.
        // A masked body has another length: the caller's Content-Length must not go upstream.
        let mut rewritten = record_json.is_some();
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
                CappedUpload::new(inc, ctx.rt.limits.max_upload_bytes, exceeded.clone()).boxed_unsync()
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
        let first_byte_by = deadline.min(tokio::time::Instant::now() + ctx.rt.limits.first_byte);
        let res = match tokio::time::timeout_at(first_byte_by, self.client.request(ureq)).await {
            Err(_) => {
                return Err(GatewayError::upstream_timeout(format!(
                    "upstream \"{}\" sent no response within {:?}",
                    upstream.name,
                    first_byte_by - tokio::time::Instant::from_std(sent)
                )));
            }
            Ok(Err(e)) => return Err(upstream_failure(&upstream, &e, &exceeded, ctx.rt.limits)),
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
        if let Some(t) = ticket.take() {
            // `balanced`: no response byte before the request record is durable.
            t.await.map_err(|_| GatewayError::audit_unavailable())?;
        }

        let framing = response_framing(&rparts.headers);
        let drop_usage = drop_usage && framing == Framing::Sse;
        let observer = (class.usage != UsageShape::None || drop_usage)
            .then(|| ResponseObserver::new(class.usage, framing, drop_usage, USAGE_COPY_CAP));
        headers::to_caller(&mut rparts.headers, drop_usage);
        let masker = masker.map(|m| m.stream(framing));
        if masker.is_some() {
            // Masking changes lengths: the body goes out chunked.
            rparts.headers.remove(header::CONTENT_LENGTH);
        }
        if let Ok(v) = HeaderValue::from_str(&ctx.id) {
            rparts.headers.insert(X_REQUEST_ID, v);
        }
        let labels = ctx.labels(rparts.status.as_u16());
        self.metrics.request(&labels);
        self.metrics.head(&labels, upstream_latency, ctx.start.elapsed().saturating_sub(upstream_latency));
        let status = rparts.status.as_u16();
        let sink = ctx.exchange.take().map(|exchange| CompletionSink {
            recorder: ctx.rt.recorder.clone(),
            route: ctx.route,
            exchange,
            status,
            output: ctx.route.full.then(|| audit::Recording::stream(ctx.rt.recorder.cap())),
            masking: None,
        });
        let finisher = Finisher::new(self.metrics.clone(), labels, ctx.start, ctx.id.clone(), sink);
        let hold_end_marker = ctx.route.durability == audit::Durability::Strict && framing != Framing::None;
        let opts = RelayOptions { idle: ctx.rt.limits.idle, deadline, framing, rewrites: drop_usage, hold_end_marker };
        let body = RelayBody::new(rbody, first, observer, masker, opts, upstream.name.clone(), finisher);
        Ok(Response::from_parts(rparts, Either::Right(body)))
    }
}

/// The per-exchange facts the error path and metrics need.
struct Ctx {
    start: Instant,
    /// The runtime this exchange started under.
    rt: Arc<Runtime>,
    id: Arc<str>,
    upstream: Label,
    model: Label,
    action: Action,
    /// Who is calling, once authenticated, as the audit actor.
    actor: Option<Arc<Actor>>,
    /// The request record's template, once it was sent.
    exchange: Option<Exchange>,
    /// The route's audit settings.
    route: RouteAudit,
    /// The approval that let this exchange through, when one was needed.
    approval_id: Option<String>,
    /// Entity types detection found in the request (when a policy needed to know), found once
    /// by `authorize`; the request record or denial carries them (`RequestFacts::detected`).
    detected: masking::Detected,
    /// Already accounted for: refused by a failing-closed store before anything was recorded,
    /// or denied by policy with its `policy.denied` event written.
    refused: bool,
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
    /// The request body as recorded, when masking made it differ from what is forwarded.
    record_json: Option<Bytes>,
    upload: Option<Incoming>,
}

/// A policy query for an authenticated caller, action and resource; the request's own facts
/// (`stream`, `max_tokens`) are left unset for the caller to fill in.
pub(crate) fn policy_query<'a>(
    caller: &'a identity::Identity,
    action: Action,
    model: Option<&'a str>,
    upstream: Option<&'a str>,
    detected: &'a [&'a str],
) -> policy::Query<'a> {
    policy::Query {
        subject: &caller.subject,
        kind: if caller.kind == identity::Kind::Service {
            policy::PrincipalKind::Service
        } else {
            policy::PrincipalKind::User
        },
        groups: &caller.groups,
        action,
        model,
        upstream,
        src_ip: caller.src_ip,
        time: std::time::SystemTime::now(),
        auth_method: caller.auth_method.as_str(),
        stream: false,
        max_tokens: None,
        detected,
    }
}

/// The masking plan of a decision's obligations: its profiles' merged directions, entity types
/// and strictest mode (merged by policy). None when no profile applies.
fn mask_plan(o: &policy::Obligations) -> Option<masking::Plan> {
    if o.mask.is_empty() {
        return None;
    }
    let mode = match o.mask_mode {
        Some(config::MaskMode::Tokenize) => masking::Mode::Tokenize,
        Some(config::MaskMode::Pseudonymize) => masking::Mode::Pseudonymize,
        _ => masking::Mode::Redact,
    };
    let policy::MaskDirections { request, response, recording } = o.mask_directions;
    let plan = masking::Plan { entities: o.mask_entities.clone(), mode, request, response, recording };
    plan.is_active().then_some(plan)
}

/// The `policy` section of an event, from a decision.
fn policy_section(d: &policy::Decision) -> audit::Policy {
    audit::Policy {
        decision: d.effect.as_str().to_string(),
        obligations: d.obligations.to_strings(),
        policies: d.policies.iter().map(|p| p.to_string()).collect(),
        version: Some(d.version.to_string()),
    }
}

/// Stage 1: a fresh, time-ordered request id (UUIDv7, see [`audit::event::uuid_v7`]).
fn assign_id() -> Arc<str> {
    let mut buf = uuid::Uuid::encode_buffer();
    Arc::from(&*audit::event::uuid_v7().hyphenated().encode_lower(&mut buf))
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
    e: &upstream::RequestError,
    exceeded: &AtomicBool,
    limits: Limits,
) -> GatewayError {
    if exceeded.load(Ordering::Relaxed) {
        return GatewayError::too_large(limits.max_upload_bytes);
    }
    match e {
        upstream::RequestError::ConnectTimeout(_) => GatewayError::upstream_timeout(format!(
            "connecting to upstream \"{}\" timed out after {:?}",
            upstream.name, limits.connect
        )),
        upstream::RequestError::Connect(_) => {
            GatewayError::upstream_unavailable(format!("upstream \"{}\" is unreachable", upstream.name))
        }
        _ => {
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                src = s.source();
            }
            GatewayError::upstream_unavailable(format!("upstream \"{}\" failed: {detail}", upstream.name))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mask_plan_reads_the_merged_obligations() {
        let mut o = policy::Obligations::default();
        assert!(super::mask_plan(&o).is_none());
        o.mask = vec!["p".into()];
        o.mask_entities = vec!["EMAIL".into()];
        o.mask_mode = Some(config::MaskMode::Tokenize);
        // A profile without a direction masks nothing.
        assert!(super::mask_plan(&o).is_none());
        o.mask_directions.response = true;
        let plan = super::mask_plan(&o).unwrap();
        assert_eq!(plan.entities, ["EMAIL"]);
        assert_eq!((plan.request, plan.response, plan.recording), (false, true, false));
        assert!(plan.mode == masking::Mode::Tokenize);
    }

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
