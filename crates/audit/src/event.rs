//! The event model of SPEC section 4: one struct per part, serialised canonically.
//!
//! Canonical form: every struct declares its fields in the byte order of their JSON names, holds
//! no floating-point numbers, and skips absent fields, so `serde_json`'s compact output *is* the
//! RFC 8785 (JCS) form for these types. The test `canonical_serialisation_is_jcs` pins this: a
//! field added out of order fails it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `schema` of every event.
pub const SCHEMA: &str = "modelgate.audit.v1";

/// Outcome of what an event records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It worked.
    #[default]
    Success,
    /// It was attempted and failed (upstream error, timeout, client gone).
    Failure,
    /// Refused by authentication or policy.
    Denied,
    /// The gateway itself failed (audit store down, bad gateway state).
    Error,
    /// Not known: a crash cut the exchange off.
    Unknown,
}

impl Outcome {
    /// The SPEC name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
        }
    }

    /// Severity suffix of the stable code: `I`nfo, `W`arning or `E`rror.
    fn severity(self) -> char {
        match self {
            Outcome::Success => 'I',
            Outcome::Denied | Outcome::Unknown => 'W',
            Outcome::Failure | Outcome::Error => 'E',
        }
    }
}

/// `actor`: who did it. Never a credential value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `oidc`, `api_key`, `mtls`, `admin_token`, `config_file` or `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// Key id or JWT `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Group memberships.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Who vouches for the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `human`, `service` or `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<String>,
    /// Stable subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The caller's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Actor {
    /// The actor of an authenticated identity.
    pub fn from_identity(id: &identity::Identity) -> Actor {
        let kind = match id.kind {
            identity::Kind::Human => "human",
            identity::Kind::Service => "service",
            identity::Kind::System => "system",
        };
        let auth_method = id.auth_method.as_str();
        Actor {
            auth_method: Some(auth_method.into()),
            credential_id: id.credential_id.clone(),
            display: id.display.clone(),
            groups: id.groups.clone(),
            issuer: Some(id.issuer.clone()),
            kind: Some(kind.into()),
            src_ip: id.src_ip.map(|ip| ip.to_string()),
            subject: Some(id.subject.clone()),
            user_agent: id.user_agent.clone(),
        }
    }

    /// The gateway itself (lifecycle and audit-of-audit events).
    pub fn system() -> Actor {
        Actor { kind: Some("system".into()), subject: Some("modelgate".into()), ..Actor::default() }
    }

    /// The local OS user running the CLI against a data dir.
    pub fn local_user() -> Actor {
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        Actor {
            auth_method: Some("local".into()),
            kind: Some("human".into()),
            subject: Some(user),
            issuer: Some("os".into()),
            ..Actor::default()
        }
    }
}

/// `resource`: what was acted on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Model name, key id, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `model`, `token`, `config`, `audit`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The upstream the call went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// `policy`: the decision and what decided it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `allow`, `deny` or `require_approval`.
    pub decision: String,
    /// Obligations attached by the deciding policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<String>,
    /// Ids of the policies that decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Hash of the policy set in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `gen_ai`: OpenTelemetry GenAI attribute names, without their `gen_ai.` prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenAi {
    /// `chat`, `text_completion`, `embeddings`, ...
    #[serde(rename = "operation.name", skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// The upstream's flavor (`vllm`, `ollama`, ...).
    #[serde(rename = "provider.name", skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// `max_tokens` (or the flavor's equivalent) the caller asked for.
    #[serde(rename = "request.max_tokens", skip_serializing_if = "Option::is_none")]
    pub request_max_tokens: Option<u64>,
    /// The model the caller named.
    #[serde(rename = "request.model", skip_serializing_if = "Option::is_none")]
    pub request_model: Option<String>,
    /// Whether the caller asked for a stream.
    #[serde(rename = "request.stream", skip_serializing_if = "Option::is_none")]
    pub request_stream: Option<bool>,
    /// Finish reasons of the choices.
    #[serde(rename = "response.finish_reasons", default, skip_serializing_if = "Vec::is_empty")]
    pub response_finish_reasons: Vec<String>,
    /// The model the upstream says answered.
    #[serde(rename = "response.model", skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// Prompt tokens.
    #[serde(rename = "usage.input_tokens", skip_serializing_if = "Option::is_none")]
    pub usage_input_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(rename = "usage.output_tokens", skip_serializing_if = "Option::is_none")]
    pub usage_output_tokens: Option<u64>,
}

/// `content`: references to the recorded bodies and their digests (only the digests are chained).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Digest of the recorded request body (see DURABILITY.md for the exact input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    /// Where the request body is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_ref: Option<String>,
    /// Digest of the recorded response body and its chunk timing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_digest: Option<String>,
    /// Where the response body is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_ref: Option<String>,
}

impl Content {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.input_ref.is_none() && self.output_ref.is_none()
    }
}

/// `change`: what a config or admin action changed; secrets appear as changed, never by value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Hash of the state after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_hash: Option<String>,
    /// Hash of the state before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_hash: Option<String>,
    /// What changed.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::canonical::serialize_sorted")]
    pub diff: Option<Value>,
}

/// One audit event (SPEC section 4). Fields are in canonical order; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Classified action (`inference.chat`, `token.create`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Arc<Actor>>,
    /// Approval state (the approvals issue types it).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::canonical::serialize_sorted")]
    pub approval: Option<Value>,
    /// Request body bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Response body bytes sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// For config and admin changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// A caller-supplied `x-request-id`, kept but never used as the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Stable code, e.g. `MG-INF-001I`.
    pub code: String,
    /// Recorded bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Type-specific facts (recovered exchanges, gap counts, outage figures, ...).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::canonical::serialize_sorted")]
    pub details: Option<Value>,
    /// How an exchange ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// UUIDv7 of this event.
    pub event_id: String,
    /// `inference.request`, `gateway.start`, ...
    pub event_type: String,
    /// Stable id of the gateway (per data dir).
    pub gateway_id: String,
    /// GenAI attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_ai: Option<GenAi>,
    /// This event's chain hash (hex); absent from the canonical bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Whole exchange duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Masking counts per direction (the masking issue types it).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::canonical::serialize_sorted")]
    pub masking: Option<Value>,
    /// What came of it.
    pub outcome: Outcome,
    /// The policy decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The previous event's hash (hex).
    pub prev_hash: String,
    /// Why (error code or short text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the writer wrote it (RFC 3339, UTC, ms).
    pub recorded_time: String,
    /// The exchange's request id (also `x-request-id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What was acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// HTTP status sent to the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// When it happened (RFC 3339, UTC, ms).
    pub time: String,
    /// From the caller's `traceparent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Time to the first response byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// The process that wrote it.
    pub writer_id: String,
}

/// Event types and their stable codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `<family>.request`: a forwarded exchange began.
    Request(Family),
    /// `<family>.completion`: a forwarded exchange ended.
    Completion(Family),
    /// A credential was refused.
    AuthFailure,
    /// Policy refused a request.
    PolicyDenied,
    /// A gateway key was issued.
    TokenCreated,
    /// A gateway key was revoked.
    TokenRevoked,
    /// A config was loaded at start.
    ConfigLoaded,
    /// A config change was applied.
    ConfigChanged,
    /// A config change was refused.
    ConfigRejected,
    /// Someone searched the trail.
    AuditSearch,
    /// Someone read an exchange.
    AuditRead,
    /// Someone exported the trail.
    AuditExport,
    /// Someone verified the trail.
    AuditVerify,
    /// A checkpoint was exported.
    AuditCheckpoint,
    /// `async` mode dropped events.
    AuditGap,
    /// The store failed and recovered.
    AuditOutage,
    /// A gateway process started.
    GatewayStart,
    /// A gateway process stopped cleanly.
    GatewayStop,
    /// A restart found exchanges cut off by a crash.
    GatewayRecovered,
    /// A call was held for (or ticketed to) a human's approval.
    ApprovalRequested,
    /// An approver approved (one of possibly several needed approvals).
    ApprovalApproved,
    /// An approver denied, with a reason.
    ApprovalDenied,
    /// A pending approval request expired undecided.
    ApprovalExpired,
    /// A grant let a call through.
    ApprovalUsed,
    /// A grant was revoked before it ran out.
    ApprovalRevoked,
}

/// The first word of an action: the family of its request and completion events.
pub use protocols::Family;

/// The area of a family's event codes (`MG-INF-001I`).
fn code_area(f: Family) -> &'static str {
    match f {
        Family::Inference => "INF",
        Family::Model => "MDL",
        Family::Adapter => "ADP",
        Family::Server => "SRV",
        Family::Data => "DAT",
        Family::Read => "RD",
        Family::Unknown => "UNK",
    }
}

impl EventType {
    /// The `event_type` string.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Request(f) => match f {
                Family::Inference => "inference.request",
                Family::Model => "model.request",
                Family::Adapter => "adapter.request",
                Family::Server => "server.request",
                Family::Data => "data.request",
                Family::Read => "read.request",
                Family::Unknown => "unknown.request",
            },
            EventType::Completion(f) => match f {
                Family::Inference => "inference.completion",
                Family::Model => "model.completion",
                Family::Adapter => "adapter.completion",
                Family::Server => "server.completion",
                Family::Data => "data.completion",
                Family::Read => "read.completion",
                Family::Unknown => "unknown.completion",
            },
            EventType::AuthFailure => "auth.failure",
            EventType::PolicyDenied => "policy.denied",
            EventType::TokenCreated => "token.created",
            EventType::TokenRevoked => "token.revoked",
            EventType::ConfigLoaded => "config.loaded",
            EventType::ConfigChanged => "config.changed",
            EventType::ConfigRejected => "config.rejected",
            EventType::AuditSearch => "audit.search",
            EventType::AuditRead => "audit.read",
            EventType::AuditExport => "audit.export",
            EventType::AuditVerify => "audit.verify",
            EventType::AuditCheckpoint => "audit.checkpoint",
            EventType::AuditGap => "audit.gap",
            EventType::AuditOutage => "audit.outage",
            EventType::GatewayStart => "gateway.start",
            EventType::GatewayStop => "gateway.stop",
            EventType::GatewayRecovered => "gateway.recovered",
            EventType::ApprovalRequested => "approval.requested",
            EventType::ApprovalApproved => "approval.approved",
            EventType::ApprovalDenied => "approval.denied",
            EventType::ApprovalExpired => "approval.expired",
            EventType::ApprovalUsed => "approval.used",
            EventType::ApprovalRevoked => "approval.revoked",
        }
    }

    /// The stable code for this type and outcome: `MG-<AREA>-<NNN><I|W|E>`.
    pub fn code(self, outcome: Outcome) -> String {
        let (area, n) = match self {
            EventType::Request(f) => (code_area(f), 1),
            EventType::Completion(f) => (code_area(f), 2),
            EventType::AuthFailure => ("AUTH", 1),
            EventType::PolicyDenied => ("POL", 1),
            EventType::TokenCreated => ("TOK", 1),
            EventType::TokenRevoked => ("TOK", 2),
            EventType::ConfigLoaded => ("CFG", 1),
            EventType::ConfigChanged => ("CFG", 2),
            EventType::ConfigRejected => ("CFG", 3),
            EventType::AuditSearch => ("AUD", 1),
            EventType::AuditRead => ("AUD", 2),
            EventType::AuditExport => ("AUD", 3),
            EventType::AuditVerify => ("AUD", 4),
            EventType::AuditCheckpoint => ("AUD", 5),
            EventType::AuditGap => ("AUD", 6),
            EventType::AuditOutage => ("AUD", 7),
            EventType::GatewayStart => ("GW", 1),
            EventType::GatewayStop => ("GW", 2),
            EventType::GatewayRecovered => ("GW", 3),
            EventType::ApprovalRequested => ("APR", 1),
            EventType::ApprovalApproved => ("APR", 2),
            EventType::ApprovalDenied => ("APR", 3),
            EventType::ApprovalExpired => ("APR", 4),
            EventType::ApprovalUsed => ("APR", 5),
            EventType::ApprovalRevoked => ("APR", 6),
        };
        format!("MG-{area}-{n:03}{}", outcome.severity())
    }
}

impl Event {
    /// A new event of `kind` that happened now; the writer fills in the chain fields.
    pub fn new(kind: EventType, outcome: Outcome) -> Event {
        Event {
            code: kind.code(outcome),
            event_id: new_event_id(),
            event_type: kind.name().to_string(),
            outcome,
            schema: SCHEMA.to_string(),
            time: now_rfc3339(),
            ..Event::default()
        }
    }

    /// Builder-style setter for the actor.
    pub fn actor(mut self, actor: Arc<Actor>) -> Event {
        self.actor = Some(actor);
        self
    }

    /// The canonical bytes hashed by the chain: RFC 8785 JSON of the event without `hash`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(768);
        let hash = &self.hash;
        if hash.is_some() {
            let mut copy = self.clone();
            copy.hash = None;
            let _ = serde_json::to_writer(&mut out, &copy);
        } else {
            // Serialising plain data into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, self);
        }
        out
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A fresh UUIDv7 as a lower-case hyphenated string.
pub fn new_event_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    uuid_v7().hyphenated().encode_lower(&mut buf).to_string()
}

/// A fresh, time-ordered UUIDv7. The random bits come from a per-thread SplitMix64 seeded once
/// by std's hasher keys, not a `getrandom` syscall per id: ids must be unique, not secret.
pub fn uuid_v7() -> uuid::Uuid {
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
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_event() -> Event {
        Event {
            action: Some("inference.chat".into()),
            actor: Some(Arc::new(Actor {
                auth_method: Some("api_key".into()),
                credential_id: Some("k1".into()),
                display: Some("Ålice \"A\" \u{1F600}\n".into()),
                groups: vec!["ml".into(), "users".into()],
                issuer: Some("modelgate".into()),
                kind: Some("human".into()),
                src_ip: Some("127.0.0.1".into()),
                subject: Some("alice".into()),
                user_agent: Some("curl/8\u{7}".into()),
            })),
            approval: Some(serde_json::json!({"state": "approved", "id": "a1"})),
            bytes_in: Some(10),
            bytes_out: Some(20),
            change: Some(Change {
                after_hash: Some("a".into()),
                before_hash: Some("b".into()),
                diff: Some(serde_json::json!({"z": 1, "a": [1, 2]})),
            }),
            client_request_id: Some("c".into()),
            code: "MG-INF-001I".into(),
            content: Some(Content {
                input_digest: Some("d1".into()),
                input_ref: Some("c:1".into()),
                output_digest: Some("d2".into()),
                output_ref: Some("c:2".into()),
            }),
            details: Some(serde_json::json!({"b": 1, "a": {"y": true, "x": null}})),
            end: Some("completed".into()),
            event_id: "e".into(),
            event_type: "inference.request".into(),
            gateway_id: "g".into(),
            gen_ai: Some(GenAi {
                operation_name: Some("chat".into()),
                provider_name: Some("vllm".into()),
                request_max_tokens: Some(5),
                request_model: Some("m".into()),
                request_stream: Some(true),
                response_finish_reasons: vec!["stop".into()],
                response_model: Some("m2".into()),
                usage_input_tokens: Some(1),
                usage_output_tokens: Some(2),
            }),
            hash: None,
            latency_ms: Some(3),
            masking: Some(serde_json::json!({"request": {"EMAIL": 1}})),
            outcome: Outcome::Success,
            policy: Some(Policy {
                decision: "allow".into(),
                obligations: vec!["mask:default".into()],
                policies: vec!["p1".into()],
                version: Some("v".into()),
            }),
            prev_hash: "00".into(),
            reason: Some("r".into()),
            recorded_time: "t2".into(),
            request_id: Some("r1".into()),
            resource: Some(Resource { id: Some("m".into()), kind: "model".into(), upstream: Some("u".into()) }),
            schema: SCHEMA.into(),
            seq: 7,
            status_code: Some(200),
            time: "t1".into(),
            trace_id: Some("tr".into()),
            ttft_ms: Some(4),
            writer_id: "w".into(),
        }
    }

    #[test]
    fn canonical_serialisation_is_jcs() {
        let e = full_event();
        let fast = e.canonical_bytes();
        let value: Value = serde_json::from_slice(&fast).unwrap();
        let slow = crate::canonical::to_jcs(&value).unwrap();
        assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
    }

    #[test]
    fn hash_is_left_out_of_canonical_bytes() {
        let mut e = full_event();
        let without = e.canonical_bytes();
        e.hash = Some("ff".into());
        assert_eq!(e.canonical_bytes(), without);
        assert!(serde_json::to_string(&e).unwrap().contains("\"hash\":\"ff\""));
    }

    #[test]
    fn round_trips() {
        let e = full_event();
        let back: Event = serde_json::from_slice(&e.canonical_bytes()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(EventType::Request(Family::Inference).code(Outcome::Success), "MG-INF-001I");
        assert_eq!(EventType::Completion(Family::Model).code(Outcome::Failure), "MG-MDL-002E");
        assert_eq!(EventType::AuthFailure.code(Outcome::Denied), "MG-AUTH-001W");
        assert_eq!(EventType::Request(Family::of("adapter.load")).name(), "adapter.request");
    }
}
