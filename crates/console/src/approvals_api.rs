//! `/admin/v1/approvals`: list pending requests, show one, approve, deny, list and revoke
//! grants (SPEC section 7). A request the caller may not see answers 404 to show, approve and
//! deny alike. Deciding accepts any credential the data path accepts: the approvals engine
//! checks, at the moment of the decision, that the caller holds an approver group the rule
//! names, is not the requester, and has not already approved.

use std::net::SocketAddr;
use std::sync::Arc;

use audit::Actor;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use identity::{Identity, Role};
use serde::Deserialize;
use serde_json::json;

use crate::{AdminState, ApiError, authenticate};

/// `?state=pending|all` on the list.
#[derive(Deserialize)]
pub(crate) struct ListParams {
    #[serde(default)]
    state: Option<String>,
}

/// Body of approve, deny and revoke.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
}

fn engine(s: &AdminState) -> Result<&Arc<approvals::Approvals>, ApiError> {
    s.approvals
        .get()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "approvals are not running yet"))
}

fn approver(id: &Identity) -> approvals::Approver {
    approvals::Approver {
        subject: id.subject.clone(),
        groups: id.groups.clone(),
        actor: Arc::new(Actor::from_identity(id)),
        admin: id.has_role(Role::Admin),
    }
}

fn api_error(e: approvals::ApprovalError) -> ApiError {
    use approvals::ApprovalError as E;
    let (status, code) = match &e {
        E::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        E::SelfApproval | E::NotAnApprover { .. } | E::AlreadyApprovedBy | E::NotAllowedToRevoke { .. } => {
            (StatusCode::FORBIDDEN, "access_denied")
        }
        E::AlreadyDecided { .. } | E::Expired | E::GrantInactive { .. } => (StatusCode::CONFLICT, "conflict"),
        E::ReasonRequired => (StatusCode::BAD_REQUEST, "invalid_request"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    ApiError::new(status, code, e.to_string())
}

fn body(bytes: &[u8]) -> Result<DecisionBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid body: {e}")))
}

/// Whether the caller may see this request: auditors, admins and approvers see all; others see
/// what they could decide (their groups) and what they asked for themselves.
fn visible(id: &Identity, v: &approvals::View) -> bool {
    id.has_role(Role::Auditor)
        || id.has_role(Role::Approver)
        || v.requester == id.subject
        || v.required.iter().any(|r| r.approvers.iter().any(|g| id.groups.contains(g)))
}

pub(crate) async fn list(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    let pending_only = p.state.as_deref() != Some("all");
    let list = engine(&s)?.list(pending_only).map_err(api_error)?;
    let list: Vec<_> = list.into_iter().filter(|v| visible(&id, v)).collect();
    Ok(axum::Json(json!({ "approvals": list })).into_response())
}

/// The request `approval_id` when the caller may see it; 404 alike when it does not exist and
/// when they may not, so the answer does not tell them which.
fn seen(engine: &approvals::Approvals, id: &Identity, approval_id: &str) -> Result<approvals::View, ApiError> {
    match engine.get(approval_id).map_err(api_error)? {
        Some(v) if visible(id, &v) => Ok(v),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such approval request")),
    }
}

/// One request: the page `approve_url` names (webhooks, 403 `approval_required`).
pub(crate) async fn show(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(approval_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    Ok(axum::Json(seen(engine(&s)?, &id, &approval_id)?).into_response())
}

pub(crate) async fn approve(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(approval_id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    let b = body(&bytes)?;
    let engine = engine(&s)?;
    seen(engine, &id, &approval_id)?;
    let v = engine.approve(&approval_id, &approver(&id), b.reason.as_deref()).await.map_err(api_error)?;
    Ok(axum::Json(v).into_response())
}

pub(crate) async fn deny(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(approval_id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    let b = body(&bytes)?;
    let reason = b.reason.unwrap_or_default();
    let engine = engine(&s)?;
    seen(engine, &id, &approval_id)?;
    let v = engine.deny(&approval_id, &approver(&id), &reason).await.map_err(api_error)?;
    Ok(axum::Json(v).into_response())
}

pub(crate) async fn grants(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    let all = id.has_role(Role::Auditor) || id.has_role(Role::Approver);
    let list = engine(&s)?.grants().map_err(api_error)?;
    let list: Vec<_> = list.into_iter().filter(|g| all || g.subject == id.subject).collect();
    Ok(axum::Json(json!({ "grants": list })).into_response())
}

pub(crate) async fn revoke(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(grant_id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = authenticate(&s, &headers, peer).await?;
    let b = body(&bytes)?;
    let g = engine(&s)?.revoke(&grant_id, &approver(&id), b.reason.as_deref()).await.map_err(api_error)?;
    Ok(axum::Json(g).into_response())
}
