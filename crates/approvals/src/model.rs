//! The data of approvals and grants, the pure rules over them (combining requirements, counting
//! distinct approvers), and their API views.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit::Actor;
use config::{ApprovalMode, GrantKind};
use protocols::Action;
use serde::{Deserialize, Serialize};

/// Where an approval request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for decisions.
    Pending,
    /// Every requirement reached its count; a grant was issued.
    Approved,
    /// Someone denied it, with a reason.
    Denied,
    /// Its `pending_ttl` ran out undecided.
    Expired,
}

impl State {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<State> {
        [State::Pending, State::Approved, State::Denied, State::Expired].into_iter().find(|st| st.as_str() == s)
    }
}

/// One requirement as a request keeps it: who may approve and how many distinct people must.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Required {
    /// Groups whose members may approve.
    pub approvers: Vec<String>,
    /// Distinct people (holding one of `approvers`) who must approve.
    pub count: u32,
    /// The policy (rule) that set the requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl Required {
    /// Whether someone holding `groups` counts toward this requirement.
    pub(crate) fn counts(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.approvers.contains(g))
    }

    /// How many distinct people among `approvals` count toward this requirement.
    pub(crate) fn distinct(&self, approvals: &[Decision]) -> u32 {
        let people: BTreeSet<&str> =
            approvals.iter().filter(|d| self.counts(&d.groups)).map(|d| d.by.as_str()).collect();
        u32::try_from(people.len()).unwrap_or(u32::MAX)
    }
}

/// One person's decision (an approval, or the denial).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The decider's subject.
    pub by: String,
    /// The decider's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The approver groups the decider held at the moment of the decision (only those the
    /// request names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (RFC 3339, UTC, ms).
    pub time: String,
}

/// The combined terms of every requirement of one call (each must be met).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Terms {
    pub required: Vec<Required>,
    /// `request` if any requirement says so, else `window`.
    pub grant: GrantKind,
    /// For a window: min of the requirements' `ttl` and `max_window_ttl`.
    pub window_ttl: Duration,
    /// Min of the requirements' `pending_ttl`.
    pub pending_ttl: Duration,
    /// `ticket` if any requirement says so, else `hold`.
    pub mode: ApprovalMode,
    /// Min of the requirements' `hold_timeout`.
    pub hold_timeout: Duration,
}

impl Terms {
    /// Combines a decision's requirements; `None` when there are none.
    pub fn of(reqs: &[policy::Approval], max_window_ttl: Duration) -> Option<Terms> {
        let first = reqs.first()?;
        let mut t = Terms {
            required: Vec::with_capacity(reqs.len()),
            grant: GrantKind::Window,
            window_ttl: max_window_ttl,
            pending_ttl: first.pending_ttl,
            mode: ApprovalMode::Hold,
            hold_timeout: first.hold_timeout,
        };
        for r in reqs {
            t.required.push(Required {
                approvers: r.approvers.clone(),
                count: r.count.max(1),
                policy: Some(r.policy.to_string()),
            });
            if r.grant == GrantKind::Request {
                t.grant = GrantKind::Request;
            }
            if let Some(ttl) = r.ttl {
                t.window_ttl = t.window_ttl.min(ttl);
            }
            t.pending_ttl = t.pending_ttl.min(r.pending_ttl);
            if r.mode == ApprovalMode::Ticket {
                t.mode = ApprovalMode::Ticket;
            }
            t.hold_timeout = t.hold_timeout.min(r.hold_timeout);
        }
        Some(t)
    }
}

/// An approval request with everything it needs to be decided, shown and audited.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub id: String,
    pub state: State,
    /// The requester's subject (never allowed to decide).
    pub subject: String,
    /// The requester as authenticated when asking.
    pub requester: Arc<Actor>,
    pub action: Action,
    pub model: Option<String>,
    pub upstream: Option<String>,
    /// SHA-256 of the request body the approval is for.
    pub digest: [u8; 32],
    /// The combined requirements, grant kind, ttls and mode.
    pub terms: Terms,
    pub created_ms: u64,
    /// When it expires undecided.
    pub expires_ms: u64,
    /// The exchange that asked.
    pub request_id: String,
    /// The masked excerpt of the prompt shown to approvers.
    pub excerpt: Option<String>,
    pub approvals: Vec<Decision>,
    pub denial: Option<Decision>,
    pub decided_ms: Option<u64>,
}

impl Record {
    /// Whether every requirement has its count of distinct approvers.
    pub fn satisfied(&self) -> bool {
        self.terms.required.iter().all(|r| r.distinct(&self.approvals) >= r.count)
    }

    /// Every approver group any requirement names, deduplicated, in order.
    pub fn approver_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in self.terms.required.iter().flat_map(|r| r.approvers.iter()) {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        out
    }

    /// The groups of `held` that some requirement names.
    pub fn counted_groups(&self, held: &[String]) -> Vec<String> {
        self.approver_groups().into_iter().filter(|g| held.contains(g)).collect()
    }

    /// The grant an approval issues now.
    pub fn grant_at(&self, id: String, now_ms: u64, max_window_ttl: Duration) -> GrantRec {
        let t = &self.terms;
        let (digest, ttl) = match t.grant {
            // A request grant stays usable as long as a request could have waited for its
            // decision (so a ticket holder has time to retry), within the window cap.
            GrantKind::Request => (Some(self.digest), t.pending_ttl.min(max_window_ttl)),
            GrantKind::Window => (None, t.window_ttl.min(max_window_ttl)),
        };
        GrantRec {
            id,
            approval_id: self.id.clone(),
            kind: t.grant,
            subject: self.subject.clone(),
            action: self.action,
            model: self.model.clone(),
            digest,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(ms(ttl)),
            used_ms: None,
            used_by: None,
            revoked_ms: None,
            revoked_by: None,
            revoke_reason: None,
        }
    }
}

/// A grant: what an approval lets through.
///
/// A `request` grant is bound to the subject, the exact action, the model and the body digest,
/// and is used at most once. A `window` grant covers the subject × the action's family × the
/// model: the model pattern is the exact model the approved call named (a call naming no model
/// matches only calls naming none), until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantRec {
    pub id: String,
    pub approval_id: String,
    pub kind: GrantKind,
    pub subject: String,
    pub action: Action,
    pub model: Option<String>,
    pub digest: Option<[u8; 32]>,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub used_ms: Option<u64>,
    /// The exchange a request grant let through.
    pub used_by: Option<String>,
    pub revoked_ms: Option<u64>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

impl GrantRec {
    /// `active`, `used`, `revoked` or `expired`.
    pub fn state(&self, now_ms: u64) -> &'static str {
        if self.revoked_ms.is_some() {
            "revoked"
        } else if self.used_ms.is_some() {
            "used"
        } else if now_ms >= self.expires_ms {
            "expired"
        } else {
            "active"
        }
    }
}

/// A grant as an approval view shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSummary {
    /// The grant's id (what `revoke` takes).
    pub id: String,
    /// `request` or `window`.
    pub kind: String,
    /// When it runs out (RFC 3339).
    pub expires: String,
    /// Whether a request grant was used.
    pub used: bool,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// An approval request as the admin API, the CLI and the console show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The approval request's id.
    pub id: String,
    /// `pending`, `approved`, `denied` or `expired`.
    pub state: State,
    /// The requester's subject.
    pub requester: String,
    /// The requester's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_display: Option<String>,
    /// The classified action (`inference.chat`, ...).
    pub action: String,
    /// The model the call named.
    pub model: Option<String>,
    /// The upstream it was routed to.
    pub upstream: Option<String>,
    /// When a pending request expires (RFC 3339).
    pub expires: String,
    /// When it was filed (RFC 3339).
    pub created: String,
    /// When it was decided or expired (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    /// `hold` or `ticket`.
    pub mode: String,
    /// The grant an approval issues: `request` or `window`.
    pub grant_kind: String,
    /// Every requirement; each must reach its count.
    pub required: Vec<Required>,
    /// The approvals so far.
    pub approvals: Vec<Decision>,
    /// The denial, when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Decision>,
    /// The grant, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantSummary>,
    /// The exchange (request id) that asked.
    pub requested_by: String,
    /// The masked prompt excerpt shown to approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

impl View {
    pub(crate) fn of(r: &Record, grant: Option<&GrantRec>) -> View {
        View {
            id: r.id.clone(),
            state: r.state,
            requester: r.subject.clone(),
            requester_display: r.requester.display.clone(),
            action: r.action.as_str().to_string(),
            model: r.model.clone(),
            upstream: r.upstream.clone(),
            expires: rfc3339(r.expires_ms),
            created: rfc3339(r.created_ms),
            decided: r.decided_ms.map(rfc3339),
            mode: r.terms.mode.as_str().to_string(),
            grant_kind: r.terms.grant.as_str().to_string(),
            required: r.terms.required.clone(),
            approvals: r.approvals.clone(),
            denial: r.denial.clone(),
            grant: grant.map(|g| GrantSummary {
                id: g.id.clone(),
                kind: g.kind.as_str().to_string(),
                expires: rfc3339(g.expires_ms),
                used: g.used_ms.is_some(),
                revoked: g.revoked_ms.is_some(),
            }),
            requested_by: r.request_id.clone(),
            excerpt: r.excerpt.clone(),
        }
    }
}

/// A grant as the admin API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The grant's id.
    pub id: String,
    /// The approval request that issued it.
    pub approval_id: String,
    /// `request` or `window`.
    pub kind: String,
    /// Whose calls it lets through.
    pub subject: String,
    /// The exact action (what a `request` grant is bound to).
    pub action: String,
    /// The action family (what a `window` grant covers).
    pub action_family: String,
    /// The model (exact name; `null` for calls naming none).
    pub model: Option<String>,
    /// When it was issued (RFC 3339).
    pub created: String,
    /// When it runs out (RFC 3339).
    pub expires: String,
    /// `active`, `used`, `revoked` or `expired`.
    pub state: String,
    /// Whether a request grant was used.
    pub used: bool,
    /// The exchange a request grant let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
}

impl GrantView {
    pub(crate) fn of(g: &GrantRec, now_ms: u64) -> GrantView {
        GrantView {
            id: g.id.clone(),
            approval_id: g.approval_id.clone(),
            kind: g.kind.as_str().to_string(),
            subject: g.subject.clone(),
            action: g.action.as_str().to_string(),
            action_family: g.action.family().to_string(),
            model: g.model.clone(),
            created: rfc3339(g.created_ms),
            expires: rfc3339(g.expires_ms),
            state: g.state(now_ms).to_string(),
            used: g.used_ms.is_some(),
            used_by: g.used_by.clone(),
            revoked: g.revoked_ms.is_some(),
            revoked_by: g.revoked_by.clone(),
            revoke_reason: g.revoke_reason.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A `now_ms` value as a `SystemTime`.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(UNIX_EPOCH)
}

/// A `now_ms` value as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(approvers: &[&str], count: u32, grant: GrantKind, ttl: Option<u64>) -> policy::Approval {
        policy::Approval {
            policy: Arc::from("p"),
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            count,
            grant,
            ttl: ttl.map(Duration::from_secs),
            pending_ttl: Duration::from_secs(3600),
            mode: ApprovalMode::Hold,
            hold_timeout: Duration::from_secs(300),
        }
    }

    fn decision(by: &str, groups: &[&str]) -> Decision {
        Decision {
            by: by.into(),
            display: None,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            reason: None,
            time: String::new(),
        }
    }

    #[test]
    fn terms_take_the_strictest_of_every_requirement() {
        let mut a = req(&["sec"], 1, GrantKind::Window, Some(7200));
        a.pending_ttl = Duration::from_secs(60);
        let mut b = req(&["ops"], 2, GrantKind::Window, Some(600));
        b.mode = ApprovalMode::Ticket;
        b.hold_timeout = Duration::from_secs(30);
        let t = Terms::of(&[a.clone(), b.clone()], Duration::from_secs(3600)).unwrap();
        assert_eq!(t.grant, GrantKind::Window);
        assert_eq!(t.window_ttl, Duration::from_secs(600));
        assert_eq!(t.pending_ttl, Duration::from_secs(60));
        assert_eq!(t.mode, ApprovalMode::Ticket);
        assert_eq!(t.hold_timeout, Duration::from_secs(30));
        assert_eq!(t.required.len(), 2);
        // The config cap wins over a longer rule ttl.
        let t = Terms::of(&[req(&["sec"], 1, GrantKind::Window, Some(7200))], Duration::from_secs(60)).unwrap();
        assert_eq!(t.window_ttl, Duration::from_secs(60));
        // One request requirement makes the grant a request grant.
        let t = Terms::of(&[a, req(&["x"], 1, GrantKind::Request, None)], Duration::from_secs(60)).unwrap();
        assert_eq!(t.grant, GrantKind::Request);
        assert_eq!(t.mode, ApprovalMode::Hold);
        assert!(Terms::of(&[], Duration::from_secs(1)).is_none());
    }

    #[test]
    fn one_person_in_two_groups_counts_once() {
        let r = Required { approvers: vec!["g1".into(), "g2".into()], count: 2, policy: None };
        assert_eq!(r.distinct(&[decision("carol", &["g1", "g2"])]), 1);
        assert_eq!(r.distinct(&[decision("carol", &["g1"]), decision("carol", &["g2"])]), 1);
        assert_eq!(r.distinct(&[decision("carol", &["g1"]), decision("dave", &["g2"])]), 2);
        assert_eq!(r.distinct(&[decision("carol", &["g1"]), decision("erin", &["other"])]), 1);
    }
}
