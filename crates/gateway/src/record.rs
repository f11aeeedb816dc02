//! The record layer: turns what the pipeline learned about an exchange into audit events, and
//! decides per route how durable they must be before the exchange may go on (SPEC section 5).
//!
//! Two records per exchange: `<family>.request`, written before the exchange counts, and
//! `<family>.completion`, written when the response is over (see [`crate::relay::Finisher`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use audit::{Actor, Audit, Durability, Entry, Event, EventType, Family, GenAi, Outcome, Recording, Resource};
use bytes::Bytes;
use config::Config;
use http::HeaderMap;
use protocols::{Action, Classification};

use crate::error::GatewayError;
use crate::headers::X_REQUEST_ID;

/// Audit settings of one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteAudit {
    /// When records must be durable.
    pub durability: Durability,
    /// Whether bodies are recorded.
    pub full: bool,
}

/// The data path's handle on the audit trail.
#[derive(Debug)]
pub struct Recorder {
    audit: Arc<Audit>,
    default: RouteAudit,
    routes: HashMap<Arc<str>, RouteAudit>,
    cap: u64,
}

impl Recorder {
    /// Settings from `[audit]` and the upstreams' overrides.
    pub fn new(audit: Arc<Audit>, config: &Config) -> Recorder {
        let a = &config.audit;
        let default = RouteAudit { durability: a.durability, full: a.recording == config::Recording::Full };
        let routes = config
            .upstreams
            .iter()
            .map(|u| {
                let r = RouteAudit {
                    durability: u.durability.unwrap_or(default.durability),
                    full: u.recording.map_or(default.full, |r| r == config::Recording::Full),
                };
                (Arc::from(u.name.as_str()), r)
            })
            .collect();
        Recorder { audit, default, routes, cap: a.max_recorded_bytes }
    }

    /// The audit trail.
    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// Settings for an upstream (the defaults when none was chosen).
    pub fn route(&self, upstream: Option<&str>) -> RouteAudit {
        upstream.and_then(|u| self.routes.get(u)).copied().unwrap_or(self.default)
    }

    /// Largest body recorded per direction.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Records a refused credential. Never waits: the caller is refused either way.
    pub fn auth_failure(&self, request_id: &str, headers: &HeaderMap, remote: SocketAddr, reason: &'static str) {
        let mut e = Event::new(EventType::AuthFailure, Outcome::Denied).actor(Arc::new(Actor {
            src_ip: Some(remote.ip().to_string()),
            user_agent: header(headers, http::header::USER_AGENT),
            ..Actor::default()
        }));
        e.request_id = Some(request_id.to_string());
        e.status_code = Some(401);
        e.reason = Some(reason.to_string());
        facts_from_headers(&mut e, headers);
        self.audit.submit(Entry::event(e));
    }

    /// Sends the request record per the route's durability: `strict` waits here until it is
    /// durable; `balanced` returns the ticket to await before the first response byte; `async`
    /// queues it best effort.
    pub async fn request(&self, route: RouteAudit, entry: Entry) -> Result<Option<audit::Ticket>, GatewayError> {
        match route.durability {
            Durability::Strict => {
                let ticket = self.audit.durable(entry).await.map_err(|_| GatewayError::audit_unavailable())?;
                ticket.await.map_err(|_| GatewayError::audit_unavailable())?;
                Ok(None)
            }
            Durability::Balanced => {
                self.audit.durable(entry).await.map(Some).map_err(|_| GatewayError::audit_unavailable())
            }
            Durability::Async => {
                self.audit.best_effort(entry);
                Ok(None)
            }
        }
    }

    /// Sends a record nobody waits for, per the route's durability.
    pub fn later(&self, route: RouteAudit, entry: Entry) {
        match route.durability {
            Durability::Async => self.audit.best_effort(entry),
            _ => self.audit.submit(entry),
        }
    }
}

/// What the request record says, kept to build the completion from.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request event as sent (its common fields seed the completion).
    pub template: Event,
    /// The family of the action.
    pub family: Family,
}

/// The facts of a request, for its record.
#[derive(Debug)]
pub struct RequestFacts<'a> {
    /// The exchange id.
    pub request_id: &'a str,
    /// Who.
    pub actor: Arc<Actor>,
    /// The caller's headers (client request id, traceparent).
    pub headers: &'a HeaderMap,
    /// The classification, when the request got that far.
    pub class: Option<&'a Classification>,
    /// The action, also when classification failed.
    pub action: Action,
    /// The upstream chosen, when one was.
    pub upstream: Option<(&'a str, &'static str)>,
    /// The request body, when buffered.
    pub body: Option<&'a Bytes>,
    /// Declared or read body length.
    pub bytes_in: Option<u64>,
    /// The policy decision, once authorization ran.
    pub policy: Option<audit::Policy>,
    /// Entity types detection found in the request (empty when none, or detection did not run).
    pub detected: &'a [&'static str],
}

/// Builds the request record (with what detection found as `details.detected`) and the
/// template of its completion.
pub fn request_entry(f: RequestFacts<'_>, full: bool, cap: u64) -> (Entry, Exchange) {
    let family = f.action.family();
    let mut e = Event::new(EventType::Request(family), Outcome::Success).actor(f.actor);
    e.request_id = Some(f.request_id.to_string());
    e.action = Some(f.action.as_str().to_string());
    facts_from_headers(&mut e, f.headers);
    let model = f.class.and_then(|c| c.model.clone());
    e.resource = Some(Resource {
        id: model.clone(),
        kind: if model.is_some() { "model".into() } else { "endpoint".into() },
        upstream: f.upstream.map(|(u, _)| u.to_string()),
    });
    if let Some(c) = f.class {
        e.gen_ai = Some(GenAi {
            operation_name: operation(f.action).map(str::to_string),
            provider_name: f.upstream.map(|(_, flavor)| flavor.to_string()),
            request_max_tokens: c.max_tokens,
            request_model: model,
            request_stream: Some(c.stream),
            ..GenAi::default()
        });
    }
    e.bytes_in = f.bytes_in;
    e.policy = f.policy;
    let template = e.clone();
    // The request record's own detail: the completion does not repeat it.
    if !f.detected.is_empty() {
        e.details = Some(serde_json::json!({ "detected": f.detected }));
    }
    let input = f.body.filter(|_| full).map(|b| Recording::whole(b, cap));
    (Entry { event: e, input, output: None }, Exchange { template, family })
}

/// The one `policy.denied` event of a request that policy refused (no body is recorded).
pub fn denial_event(f: RequestFacts<'_>) -> Event {
    let (entry, _) = request_entry(f, false, 0);
    let mut e = entry.event;
    let fresh = Event::new(EventType::PolicyDenied, Outcome::Denied);
    e.code = fresh.code;
    e.event_type = fresh.event_type;
    e.outcome = Outcome::Denied;
    e
}

/// A completion event from its exchange's template (taken, not copied: an exchange completes once).
pub fn completion_event(x: Exchange, outcome: Outcome) -> Event {
    let mut e = x.template;
    let fresh = Event::new(EventType::Completion(x.family), outcome);
    e.code = fresh.code;
    e.event_id = fresh.event_id;
    e.event_type = fresh.event_type;
    e.time = fresh.time;
    e.outcome = outcome;
    e.bytes_in = None;
    e.content = None;
    e
}

/// The GenAI operation name of an action.
fn operation(a: Action) -> Option<&'static str> {
    Some(match a.as_str() {
        "inference.chat" => "chat",
        "inference.completion" => "text_completion",
        "inference.embedding" => "embeddings",
        "inference.rerank" => "rerank",
        "inference.other" => "generate_content",
        _ => return None,
    })
}

fn header(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// `client_request_id` from the caller's `x-request-id`, `trace_id` from `traceparent`.
fn facts_from_headers(e: &mut Event, h: &HeaderMap) {
    e.client_request_id = header(h, X_REQUEST_ID).map(|s| s.chars().take(128).collect());
    e.trace_id = h
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_and_client_ids_come_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        h.insert("x-request-id", "client-1".parse().unwrap());
        let mut e = Event::default();
        facts_from_headers(&mut e, &h);
        assert_eq!(e.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(e.client_request_id.as_deref(), Some("client-1"));
        h.insert("traceparent", "garbage".parse().unwrap());
        facts_from_headers(&mut e, &h);
        assert_eq!(e.trace_id, None);
    }
}
