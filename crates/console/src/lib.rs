//! The admin listener: health, readiness and metrics, and the admin API of SPEC section 7
//! (`/admin/v1/...`). It never shares a socket with the data path.
//!
//! Fail-closed: every route under `/admin/v1/` authenticates the caller and checks its role;
//! the only open routes are the constant list in [`OPEN_ROUTES`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use audit::{Actor, Audit, Entry, Event, EventType, Outcome, Resource};
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use gateway::Metrics;
use identity::authn::Authenticator;
use identity::keys::{self, NewKey};
use identity::{Identity, Kind, Role};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

mod approvals_api;
mod audit_api;
pub mod policy_api;

/// Routes served without authentication: liveness, readiness and Prometheus scraping.
pub const OPEN_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// What the admin listener serves from.
#[derive(Debug)]
pub struct AdminState {
    /// The data path's metrics.
    pub metrics: Arc<Metrics>,
    /// Authenticates admin callers.
    pub auth: Arc<Authenticator>,
    /// Set once the data listener serves, cleared when shutdown begins.
    pub ready: AtomicBool,
    /// The audit trail: admin actions and refusals are recorded; readiness follows its health.
    pub audit: Arc<Audit>,
    /// Whether any route fails closed (`strict`/`balanced`); when all are `async`, a failing
    /// store does not make the gateway unready, as it keeps serving.
    pub fails_closed: bool,
    /// Audit search and reconstruction (`/admin/v1/events`, `/admin/v1/exchanges/...`), set
    /// once the search indexer runs.
    pub search: std::sync::OnceLock<Arc<audit::search::SearchService>>,
    /// The data path, for policy checks against the runtime in force.
    pub gateway: std::sync::OnceLock<Arc<gateway::Gateway>>,
    /// Where `POST /admin/v1/config/reload` sends its request.
    pub reload: std::sync::OnceLock<tokio::sync::mpsc::Sender<policy_api::ReloadRequest>>,
    /// The approvals engine (`/admin/v1/approvals/...`).
    pub approvals: std::sync::OnceLock<Arc<approvals::Approvals>>,
    /// The config in force, secrets hidden (`GET /admin/v1/config`).
    pub config_view: std::sync::Mutex<Arc<serde_json::Value>>,
}

impl AdminState {
    /// New state, not ready yet.
    pub fn new(
        metrics: Arc<Metrics>,
        auth: Arc<Authenticator>,
        audit: Arc<Audit>,
        fails_closed: bool,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics,
            auth,
            ready: AtomicBool::new(false),
            audit,
            fails_closed,
            search: std::sync::OnceLock::new(),
            gateway: std::sync::OnceLock::new(),
            reload: std::sync::OnceLock::new(),
            approvals: std::sync::OnceLock::new(),
            config_view: std::sync::Mutex::new(Arc::new(serde_json::Value::Null)),
        })
    }

    /// Records an admin action and waits until it is durable (or the store failed; the record
    /// is then kept for the retry and the failure logged).
    async fn record(&self, event: Event) {
        if self.audit.submit_waiting(Entry::event(event)).await.is_err() {
            tracing::error!("an admin action's audit record is not durable yet; it is kept for retry");
        }
    }
}

/// The admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(OPEN_ROUTES[0], get(healthz))
        .route(OPEN_ROUTES[1], get(readyz))
        .route(OPEN_ROUTES[2], get(metrics))
        .route("/admin/v1/tokens", get(list_tokens).post(create_token))
        .route("/admin/v1/tokens/{id}", delete(revoke_token))
        .route("/admin/v1/checkpoints/latest", get(latest_checkpoint))
        .route("/admin/v1/events", get(audit_api::events))
        .route("/admin/v1/exchanges/{request_id}", get(audit_api::exchange))
        .route("/admin/v1/policy/check", post(policy_api::policy_check))
        .route("/admin/v1/config/reload", post(policy_api::config_reload))
        .route("/admin/v1/config", get(policy_api::config_get))
        .route("/admin/v1/approvals", get(approvals_api::list))
        .route("/admin/v1/approvals/grants", get(approvals_api::grants))
        .route("/admin/v1/approvals/grants/{id}/revoke", post(approvals_api::revoke))
        .route("/admin/v1/approvals/{id}", get(approvals_api::show))
        .route("/admin/v1/approvals/{id}/approve", post(approvals_api::approve))
        .route("/admin/v1/approvals/{id}/deny", post(approvals_api::deny))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the admin listener until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("admin listener failed: {e}");
    }
}

/// An admin API error, JSON-shaped like the data path's.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = gateway::error::error_type(self.status.as_u16());
        let body = json!({"error": {"message": self.message, "type": kind, "code": self.code}}).to_string();
        let mut res = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"modelgate-admin\""));
        }
        res
    }
}

/// Authenticates the caller and checks `role`; the reason for a refusal goes to the log only.
async fn require(state: &AdminState, headers: &HeaderMap, peer: SocketAddr, role: Role) -> Result<Identity, ApiError> {
    let id = authenticate(state, headers, peer).await?;
    if !id.has_role(role) {
        tracing::info!(subject = %id.subject, role = role.name(), "admin request refused: role missing");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("the {} role is required", role.name()),
        ));
    }
    Ok(id)
}

/// Authenticates the caller with any credential the data path accepts; refusals are recorded.
async fn authenticate(state: &AdminState, headers: &HeaderMap, peer: SocketAddr) -> Result<Identity, ApiError> {
    let id = match state.auth.authenticate(headers, Some(peer.ip())).await {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(reason = e.reason(), src_ip = %peer.ip(), "admin authentication failed: {e}");
            let mut ev = Event::new(EventType::AuthFailure, Outcome::Denied).actor(Arc::new(Actor {
                src_ip: Some(peer.ip().to_string()),
                user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
                ..Actor::default()
            }));
            ev.status_code = Some(401);
            ev.reason = Some(e.reason().to_string());
            ev.resource = Some(Resource { id: None, kind: "admin_api".into(), upstream: None });
            state.audit.submit(Entry::event(ev));
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "authentication_failed", "authentication failed"));
        }
    };
    Ok(id)
}

async fn healthz() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    if s.fails_closed && s.audit.is_failed() {
        let body = r#"{"status":"not_ready","reason":"audit_unavailable"}"#;
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], body)
    } else if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"ready"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"not_ready"}"#)
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

async fn list_tokens(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&s, &headers, peer, Role::Admin).await?;
    let now = keys::now_unix();
    let list: Vec<serde_json::Value> = s.auth.keys().list().iter().map(|r| keys::record_json(r, now)).collect();
    Ok(axum::Json(json!({ "tokens": list })).into_response())
}

/// Body of `POST /admin/v1/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    subject: String,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    service: bool,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

async fn create_token(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let admin = require(&s, &headers, peer, Role::Admin).await?;
    let req: CreateToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid body: {e}")))?;
    let roles = req
        .roles
        .iter()
        .map(|r| {
            Role::from_name(r).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("unknown role \"{r}\""))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = req
        .ttl
        .as_deref()
        .map(config::parse_duration)
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    let new = NewKey {
        subject: req.subject,
        groups: req.groups.unwrap_or_else(|| vec![keys::DEFAULT_GROUP.to_string()]),
        kind: if req.service { Kind::Service } else { Kind::Human },
        roles,
        ttl,
        description: req.description,
        created_by: admin.subject.clone(),
    };
    // The store locks, writes and fsyncs a file: off the async workers.
    let store = s.auth.keys().clone();
    let created = tokio::task::spawn_blocking(move || store.create(new))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key store failed"))?
        .map_err(|e| match e {
            keys::KeyStoreError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            other => {
                tracing::error!("creating a key failed: {other}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key store failed")
            }
        })?;
    tracing::info!(by = %admin.subject, id = %created.record.id, subject = %created.record.subject, "key created");
    s.record(token_event(EventType::TokenCreated, &admin, &created.record)).await;
    let mut v = keys::record_json(&created.record, keys::now_unix());
    v["secret"] = json!(created.secret);
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn revoke_token(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = require(&s, &headers, peer, Role::Admin).await?;
    let store = s.auth.keys().clone();
    let revoke_id = id.clone();
    let r = tokio::task::spawn_blocking(move || store.revoke(&revoke_id))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key store failed"))?
        .map_err(|e| match e {
            keys::KeyStoreError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no key with id {id}"))
            }
            other => {
                tracing::error!("revoking a key failed: {other}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key store failed")
            }
        })?;
    tracing::info!(by = %admin.subject, id = %r.id, "key revoked");
    s.record(token_event(EventType::TokenRevoked, &admin, &r)).await;
    Ok(axum::Json(keys::record_json(&r, keys::now_unix())).into_response())
}

/// A `token.created` or `token.revoked` event: who did it to which key (never the secret).
pub fn token_event(kind: EventType, by: &Identity, key: &keys::KeyRecord) -> Event {
    let mut e = Event::new(kind, Outcome::Success).actor(Arc::new(Actor::from_identity(by)));
    e.action = Some(if kind == EventType::TokenCreated { "token.create" } else { "token.revoke" }.into());
    e.resource = Some(Resource { id: Some(key.id.clone()), kind: "token".into(), upstream: None });
    e.details = Some(json!({
        "subject": key.subject,
        "groups": key.groups,
        "roles": key.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
    }));
    e
}

async fn latest_checkpoint(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&s, &headers, peer, Role::Auditor).await?;
    match s.audit.latest_checkpoint() {
        Some(c) => Ok(axum::Json(c).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no checkpoint yet")),
    }
}
