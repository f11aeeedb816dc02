//! The `approval.*` audit events and their `approval` section.
//!
//! Every event carries the whole story so far, so that `audit show` of either exchange (the one
//! that asked, or the one a grant let through) tells it: the request's id and state, the
//! requester, each approver with their reason and time, the requirements, the grant, and
//! `requested_by`, the exchange that asked.

use std::sync::Arc;

use audit::{Actor, Event, EventType, Outcome, Resource};
use protocols::Action;
use serde_json::{Map, Value, json};

use crate::model::{GrantRec, Record, rfc3339};

/// The `approval` section of an event about `r` (and the grant it issued, if any).
pub(crate) fn section(r: &Record, grant: Option<&GrantRec>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("state".into(), json!(r.state.as_str()));
    m.insert("requester".into(), json!(r.subject));
    m.insert(
        "approvers".into(),
        Value::Array(
            r.approvals
                .iter()
                .map(|d| {
                    let mut a = Map::new();
                    a.insert("subject".into(), json!(d.by));
                    if let Some(reason) = &d.reason {
                        a.insert("reason".into(), json!(reason));
                    }
                    a.insert("time".into(), json!(d.time));
                    if !d.groups.is_empty() {
                        a.insert("groups".into(), json!(d.groups));
                    }
                    Value::Object(a)
                })
                .collect(),
        ),
    );
    m.insert(
        "required".into(),
        Value::Array(
            r.terms
                .required
                .iter()
                .map(|q| {
                    let mut a = Map::new();
                    a.insert("approvers".into(), json!(q.approvers));
                    a.insert("count".into(), json!(q.count));
                    if let Some(p) = &q.policy {
                        a.insert("policy".into(), json!(p));
                    }
                    Value::Object(a)
                })
                .collect(),
        ),
    );
    m.insert("grant_kind".into(), json!(r.terms.grant.as_str()));
    m.insert("mode".into(), json!(r.terms.mode.as_str()));
    m.insert("expires".into(), json!(rfc3339(r.expires_ms)));
    m.insert("requested_by".into(), json!(r.request_id));
    if let Some(d) = &r.denial {
        let mut a = Map::new();
        a.insert("subject".into(), json!(d.by));
        if let Some(reason) = &d.reason {
            a.insert("reason".into(), json!(reason));
        }
        a.insert("time".into(), json!(d.time));
        m.insert("denial".into(), Value::Object(a));
    }
    if let Some(g) = grant {
        m.insert("grant".into(), grant_section(g));
    }
    Value::Object(m)
}

/// `{"id","kind","expires"}` of a grant, plus what happened to it.
pub(crate) fn grant_section(g: &GrantRec) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(g.id));
    m.insert("kind".into(), json!(g.kind.as_str()));
    m.insert("expires".into(), json!(rfc3339(g.expires_ms)));
    if let Some(by) = &g.used_by {
        m.insert("used_by".into(), json!(by));
    }
    if let Some(by) = &g.revoked_by {
        m.insert("revoked_by".into(), json!(by));
    }
    Value::Object(m)
}

/// The `approval.requested` event of `r`, recorded for the exchange `request_id` that asked: a
/// fresh request carries the masked excerpt; a `repeat` (the same call found the request still
/// pending) carries `"repeat": true` instead.
pub(crate) fn requested(r: &Record, actor: Arc<Actor>, request_id: &str, repeat: bool) -> Event {
    let mut approval = section(r, None);
    if repeat {
        approval["repeat"] = Value::Bool(true);
    } else if let Some(x) = &r.excerpt {
        approval["excerpt"] = Value::String(x.clone());
    }
    event(EventType::ApprovalRequested, Outcome::Success, actor, request_id, Subject::of(r), None, approval)
}

/// What an event is about: the action and the model/upstream it touched.
pub(crate) struct Subject<'a> {
    pub action: Action,
    pub model: Option<&'a str>,
    pub upstream: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// What the approval request itself was about.
    pub fn of(r: &'a Record) -> Subject<'a> {
        Subject { action: r.action, model: r.model.as_deref(), upstream: r.upstream.as_deref() }
    }
}

/// An `approval.*` event.
pub(crate) fn event(
    kind: EventType,
    outcome: Outcome,
    actor: Arc<Actor>,
    request_id: &str,
    about: Subject<'_>,
    reason: Option<String>,
    approval: Value,
) -> Event {
    let mut e = Event::new(kind, outcome).actor(actor);
    e.request_id = Some(request_id.to_string());
    e.action = Some(about.action.as_str().to_string());
    e.resource = Some(Resource {
        id: about.model.map(str::to_string),
        kind: if about.model.is_some() { "model".into() } else { "endpoint".into() },
        upstream: about.upstream.map(str::to_string),
    });
    e.reason = reason;
    e.approval = Some(approval);
    e
}
