//! Explain and reload: `POST /admin/v1/policy/check`, `POST /admin/v1/config/reload` and
//! `GET /admin/v1/config`. The check shares [`check`] with the offline `modelgate policy check`,
//! so both answer exactly what the live data path decides for the same inputs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use audit::Actor;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use identity::Role;
use protocols::Action;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AdminState, ApiError, require};

/// The inputs of a policy check: who, what, on which model, and the request's context.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The caller's subject.
    pub subject: String,
    /// The caller's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `human` (default) or `service`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A classified action (`inference.chat`, `model.pull`, ...).
    pub action: String,
    /// The model; absent for model-less calls.
    #[serde(default)]
    pub model: Option<String>,
    /// The upstream; when absent, the one the model routes to.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The caller's address.
    #[serde(default)]
    pub src_ip: Option<IpAddr>,
    /// `oidc` or `api_key` (default).
    #[serde(default)]
    pub auth_method: Option<String>,
    /// Whether the request streams.
    #[serde(default)]
    pub stream: bool,
    /// The requested `max_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Entity types detection found in the request (`SECRET_AWS_ACCESS_KEY`, ...).
    #[serde(default)]
    pub detected: Vec<String>,
}

/// Decides a check request without sending anything upstream. `upstream_for` names the upstream
/// a model routes to, as the data path would route it.
pub fn check(
    policies: &policy::Policies,
    req: &CheckRequest,
    upstream_for: impl Fn(Option<&str>) -> Option<String>,
) -> Result<Value, String> {
    let action = Action::from_name(&req.action).ok_or_else(|| format!("unknown action \"{}\"", req.action))?;
    let kind = match req.kind.as_deref() {
        None | Some("human") | Some("user") => policy::PrincipalKind::User,
        Some("service") => policy::PrincipalKind::Service,
        Some(other) => return Err(format!("unknown kind \"{other}\" (human or service)")),
    };
    let auth_method = match req.auth_method.as_deref() {
        None => "api_key",
        Some(m @ ("oidc" | "api_key" | "admin_token" | "local")) => m,
        Some(other) => return Err(format!("unknown auth_method \"{other}\"")),
    };
    let upstream = req.upstream.clone().or_else(|| upstream_for(req.model.as_deref()));
    let detected: Vec<&str> = req.detected.iter().map(String::as_str).collect();
    let q = policy::Query {
        subject: &req.subject,
        kind,
        groups: &req.groups,
        action,
        model: req.model.as_deref(),
        upstream: upstream.as_deref(),
        src_ip: req.src_ip,
        time: std::time::SystemTime::now(),
        auth_method,
        stream: req.stream,
        max_tokens: req.max_tokens,
        detected: &detected,
    };
    let decision = policies.decide(&q);
    let mut out = decision.to_json();
    if let Some(o) = out.as_object_mut() {
        o.insert("upstream".into(), json!(upstream));
        o.insert("action".into(), json!(action.as_str()));
        // The obligations as audit events carry them (`policy.obligations[]`).
        o.insert("obligation_strings".into(), json!(decision.obligations.to_strings()));
    }
    Ok(out)
}

/// A reload asked for through the admin API, answered by the binary's reloader.
#[derive(Debug)]
pub struct ReloadRequest {
    /// Who asked.
    pub actor: Arc<Actor>,
    /// Where the outcome goes: `Ok` with the outcome's JSON, `Err` with the rejection's.
    pub reply: tokio::sync::oneshot::Sender<Result<Value, Value>>,
}

pub(crate) async fn policy_check(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require(&s, &headers, peer, Role::Auditor).await?;
    let req: CheckRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid body: {e}")))?;
    let Some(gw) = s.gateway.get() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the data path is not running yet"));
    };
    let rt = gw.current();
    let out = check(rt.policies(), &req, |m| rt.upstream_for(m))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e))?;
    Ok(axum::Json(out).into_response())
}

pub(crate) async fn config_reload(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let admin = require(&s, &headers, peer, Role::Admin).await?;
    let Some(tx) = s.reload.get() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "reloading is not available yet"));
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    let req = ReloadRequest { actor: Arc::new(Actor::from_identity(&admin)), reply };
    let unavailable = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the reloader stopped");
    tx.send(req).await.map_err(|_| unavailable())?;
    match rx.await.map_err(|_| unavailable())? {
        Ok(v) => Ok(axum::Json(v).into_response()),
        Err(v) => Ok((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(v)).into_response()),
    }
}

pub(crate) async fn config_get(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&s, &headers, peer, Role::Auditor).await?;
    let view = s.config_view.lock().map(|v| v.clone()).unwrap_or_else(|p| p.into_inner().clone());
    Ok(axum::Json((*view).clone()).into_response())
}
