//! Just-in-time approvals (issue 8): a call that policy says `require_approval` is held (or
//! ticketed) until enough distinct people approve it, and the approval becomes a grant the call
//! (or its retry) redeems.
//!
//! [`Approvals`] is the engine the gateway, the admin API and the CLI share:
//! - the data path calls [`Approvals::redeem`] first (a grant already covers the call), else
//!   [`Approvals::request`] (files a request, or finds the pending one for the same call), then,
//!   in `hold` mode, [`Approvals::wait`] (one `watch` receiver per waiter, no polling) and, once
//!   approved, `redeem` again;
//! - approvers call [`Approvals::approve`] and [`Approvals::deny`], as they are authenticated
//!   *now*; anyone holding an approver group of the rule (or the grant's holder, or an admin)
//!   may [`Approvals::revoke`] a grant;
//! - the webhook notifier listens on [`Approvals::subscribe`].
//!
//! # Rules
//! - Approvals count **distinct people** (subjects), per requirement: a requirement
//!   `{approvers: [g1, g2], count: 2}` needs two different subjects each holding g1 or g2 when they
//!   decide; one person in both groups counts once, and may approve once. With several
//!   requirements every one must reach its count; one person's approval counts toward each
//!   requirement whose groups they hold.
//! - The requester (same subject) can never approve or deny their own request.
//! - A pending request expires at its `pending_ttl` (the minimum over its requirements): state
//!   `expired`, an `approval.expired` event, waiters woken. The expiry task sleeps until the next
//!   deadline and is re-armed when a request is filed.
//! - A denial needs a reason and ends the request.
//! - An approval issues a `request` grant if any requirement says `request`, else a `window`
//!   grant whose ttl is the minimum of the requirements' `ttl` and `[approvals] max_window_ttl`.
//!   A `request` grant is bound to subject, action, model and body digest, is used at most once,
//!   and stays usable for the request's `pending_ttl` (capped the same way). A `window` grant
//!   covers subject × action family × model, where the model pattern is the **exact** model the
//!   approved call named (a call naming no model matches only calls naming none).
//! - Mode: `ticket` if any requirement says so, else `hold`; `hold_timeout` is the minimum.
//!
//! # Durability and audit
//! State lives in `DATA_DIR/approvals.db` (SQLite, WAL, `synchronous=FULL`, mode 0600); pending
//! requests, their deadlines and active grants are reloaded by [`Approvals::open`], so a restart
//! loses only held connections, never a request or a grant.
//!
//! Every state change is first recorded as an `approval.*` event that is durable in the audit
//! trail (`submit_waiting`), then committed to `approvals.db`, then made visible (waiters woken,
//! grants usable). If the audit store fails closed nothing changes and the call returns
//! [`ApprovalError::AuditUnavailable`]; a record queued for retry then carries outcome `error`,
//! reason `audit_unavailable`. Decisions on one request are serialised by a per-request async
//! lock; decisions on different requests run in parallel, so their events share group commits.
//!
//! One exception is deliberate: `approval.used` for a **window** grant is queued without waiting
//! (every call through a window would otherwise pay one more fsync). The writer is FIFO, so that
//! event is durable no later than the exchange's own request record, which the gateway writes
//! after `redeem` and which `strict`/`balanced` wait for. A `request` grant's use is one-shot and
//! waits like a decision.

mod engine;
mod error;
mod events;
mod model;
mod store;
#[cfg(test)]
mod tests;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use engine::Approvals;
pub use error::ApprovalError;
pub use model::{Decision, GrantSummary, GrantView, Required, State, View};
pub use store::{DB_FILE, LIST_ALL_LIMIT};
/// A new approval request, as [`Approvals::subscribe`] announces it and the webhooks send it.
pub use webhook::Notice;

/// Settings of the engine, from the config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `[approvals] max_window_ttl`: the longest any grant lives.
    pub max_window_ttl: Duration,
    /// `[server] public_url`: the base of approve links (`{public_url}/admin/v1/approvals/{id}`).
    pub public_url: Option<String>,
}

/// The call that needs (or may use) an approval.
#[derive(Clone, Debug)]
pub struct Call<'a> {
    /// The caller's subject.
    pub subject: &'a str,
    /// The caller as authenticated (the actor of `approval.requested` and `approval.used`).
    pub actor: Arc<audit::Actor>,
    /// The classified action.
    pub action: protocols::Action,
    /// The model the call names.
    pub model: Option<&'a str>,
    /// The upstream it is routed to.
    pub upstream: Option<&'a str>,
    /// SHA-256 of the request body (what a `request` grant is bound to).
    pub body_digest: [u8; 32],
}

/// The identity deciding (or revoking), as authenticated *now*: approver groups are checked
/// against `groups` at the moment of the decision.
#[derive(Clone, Debug)]
pub struct Approver {
    /// Stable subject (compared with the requester's).
    pub subject: String,
    /// Current group memberships.
    pub groups: Vec<String>,
    /// The actor of the decision's event.
    pub actor: Arc<audit::Actor>,
    /// Holds the admin role: may revoke any grant (deciding still needs an approver group).
    pub admin: bool,
}

/// A filed (or found) approval request, as the caller needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The approval request's id.
    pub id: String,
    /// `hold` (wait for the decision) or `ticket` (403 now, retry later).
    pub mode: config::ApprovalMode,
    /// How long a `hold` waits.
    pub hold_timeout: Duration,
    /// When the request expires undecided.
    pub expires: SystemTime,
    /// `{public_url}/admin/v1/approvals/{id}`, when a public URL is configured.
    pub approve_url: Option<String>,
    /// Whether it was filed now (false: the pending request for the same call was found).
    pub fresh: bool,
}

/// A grant that let a call through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redeemed {
    /// The approval request that issued the grant.
    pub approval_id: String,
    /// The grant.
    pub grant_id: String,
    /// `request` (now used up) or `window`.
    pub kind: config::GrantKind,
}

/// How a wait for a decision ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Approved: redeem the grant now (a `request` grant may already have been used by an
    /// identical call that waited on the same request; `redeem` then returns `None`).
    Approved,
    /// Denied, with the denier's reason.
    Denied {
        /// Why.
        reason: String,
    },
    /// Expired undecided.
    Expired,
    /// Still pending after the timeout.
    TimedOut,
    /// No such request (or it could not be filed).
    Unknown,
}

/// Pending requests (or all, newest first, at most [`LIST_ALL_LIMIT`]) read straight from a data
/// dir, for the CLI when no gateway is asked. Empty when the dir has no `approvals.db`.
pub fn read_list(data_dir: &std::path::Path, pending_only: bool) -> Result<Vec<View>, ApprovalError> {
    match store::Db::open_reader(data_dir)? {
        Some(c) => Ok(store::views(&c, pending_only)?),
        None => Ok(Vec::new()),
    }
}

/// Active grants read straight from a data dir (see [`read_list`]).
pub fn read_grants(data_dir: &std::path::Path) -> Result<Vec<GrantView>, ApprovalError> {
    match store::Db::open_reader(data_dir)? {
        Some(c) => Ok(store::grant_views(&c)?),
        None => Ok(Vec::new()),
    }
}
