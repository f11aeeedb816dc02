//! The audit read API (SPEC section 7): `GET /admin/v1/events` (search, cursor pagination) and
//! `GET /admin/v1/exchanges/{request_id}` (one exchange, reconstructed and verified).
//!
//! Both need the `auditor` role (or `admin`), checked on every request, cursor pages included.
//! Every search page and every read is itself recorded (`audit.search`, `audit.read`): who asked,
//! the filters, how many rows came back. A refused read is recorded too, as `denied`.

use std::net::SocketAddr;
use std::sync::Arc;

use audit::search::{self, Request, SearchError, SearchService};
use audit::{Actor, Entry, Event, EventType, Outcome, Resource};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use identity::{Identity, Role};

use crate::{AdminState, ApiError, require};

/// The caller a cursor is bound to: issuer and subject of the authenticated identity.
fn caller(id: &Identity) -> String {
    format!("{}\u{0}{}", id.issuer, id.subject)
}

/// Requires the auditor role; a refusal for a missing role is recorded as a denied `what`.
async fn reader(s: &AdminState, headers: &HeaderMap, peer: SocketAddr, what: EventType) -> Result<Identity, ApiError> {
    match require(s, headers, peer, Role::Auditor).await {
        Ok(id) => Ok(id),
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            if let Ok(id) = s.auth.authenticate(headers, Some(peer.ip())).await {
                let mut ev = Event::new(what, Outcome::Denied).actor(Arc::new(Actor::from_identity(&id)));
                ev.action = Some(what.name().to_string());
                ev.status_code = Some(403);
                ev.reason = Some("role_missing".into());
                ev.resource = Some(Resource { id: None, kind: "audit".into(), upstream: None });
                s.audit.submit(Entry::event(ev));
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

fn service(s: &AdminState) -> Result<Arc<SearchService>, ApiError> {
    s.search.get().cloned().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "search_unavailable", "search is not available on this gateway")
    })
}

fn search_error(e: SearchError) -> ApiError {
    match e {
        SearchError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m),
        SearchError::Cursor(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", m),
        e @ (SearchError::Lagging(_) | SearchError::NoIndex) => {
            tracing::warn!("search refused: {e}");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "index_unavailable", format!("{e}; try again shortly"))
        }
        e => {
            tracing::error!("search failed: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the audit store could not be searched")
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the search task failed"))?
        .map_err(search_error)
}

/// `GET /admin/v1/events`: one page of a search. Query parameters: `since` (required), `until`,
/// `actor`, `group`, `model`, `action`, `outcome`, `decision`, `request_id`, `event_type`,
/// `masking`, `text`, `limit` (1–1000, default 100), `order` (`desc` | `asc`), `cursor` (a
/// `next_cursor`; it carries the filters, so the others are then ignored).
pub(crate) async fn events(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = reader(&s, &headers, peer, EventType::AuditSearch).await?;
    let Query(pairs) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let params =
        search::Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(search_error)?;
    let req = match params.cursor.clone() {
        Some(cursor) => {
            let limit = params.limit.as_ref().map(|_| params.page_size()).transpose().map_err(search_error)?;
            Request::Next { cursor, limit }
        }
        None => {
            params.page_size().map_err(search_error)?;
            Request::New(Box::new(params))
        }
    };
    let svc = service(&s)?;
    let who = caller(&id);
    let answer = blocking(move || svc.search(&who, req)).await?;
    let rows = answer.page.events.len();
    // A followed search polls: an empty continuation page is not worth a record of its own.
    if !(answer.continued && rows == 0) {
        let page = if answer.continued { 2 } else { 1 };
        let ev = search::search_event(
            Arc::new(Actor::from_identity(&id)),
            &answer.filter,
            answer.order,
            rows,
            &answer.session,
            page,
        );
        s.audit.submit(Entry::event(ev));
    }
    let mut body = String::with_capacity(64 + answer.page.events.iter().map(|h| h.json.len() + 1).sum::<usize>());
    body.push_str("{\"events\":[");
    for (i, h) in answer.page.events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&h.json);
    }
    body.push_str("],\"count\":");
    body.push_str(&rows.to_string());
    body.push_str(",\"more\":");
    body.push_str(if answer.page.more { "true" } else { "false" });
    body.push_str(",\"order\":\"");
    body.push_str(answer.order.as_str());
    body.push_str("\",\"indexed_seq\":");
    body.push_str(&answer.page.indexed.to_string());
    body.push_str(",\"next_cursor\":");
    match &answer.next_cursor {
        Some(c) => body.push_str(&serde_json::Value::String(c.clone()).to_string()),
        None => body.push_str("null"),
    }
    body.push('}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /admin/v1/exchanges/{request_id}`: the exchange reconstructed (identity, classification,
/// policy, bodies with stream timing, usage, timing, end) with each event's chain position and
/// verification status.
pub(crate) async fn exchange(
    State(s): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = reader(&s, &headers, peer, EventType::AuditRead).await?;
    let svc = service(&s)?;
    let rid = request_id.clone();
    let found = blocking(move || svc.exchange(&rid)).await?;
    let rows = found.as_ref().and_then(|v| v["events"].as_array().map(Vec::len)).unwrap_or(0);
    s.audit.submit(Entry::event(search::read_event(Arc::new(Actor::from_identity(&id)), &request_id, rows)));
    match found {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no exchange with request id {request_id}")))
        }
    }
}
