//! What can go wrong with an approval: one small error type whose messages are fit to show an
//! API caller (they name the rule that refused, never a secret or a body).

/// An approval operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No approval request (or grant) has this id.
    #[error("no such approval request or grant")]
    NotFound,
    /// The requester tried to decide their own request.
    #[error("you cannot approve or deny your own request")]
    SelfApproval,
    /// The decider holds none of the approver groups the rule names (checked at decision time).
    #[error("you are not an approver for this request: it needs a member of {}", .groups.join(", "))]
    NotAnApprover {
        /// The approver groups named by the request's requirements.
        groups: Vec<String>,
    },
    /// The request was already approved, denied or expired.
    #[error("the request is already {state}")]
    AlreadyDecided {
        /// `approved`, `denied` or `expired`.
        state: String,
    },
    /// This person already approved this request; approvals count distinct people.
    #[error("you have already approved this request; a second approval needs another person")]
    AlreadyApprovedBy,
    /// A denial needs a non-empty reason.
    #[error("a denial needs a reason")]
    ReasonRequired,
    /// The request's pending time ran out before the decision.
    #[error("the request expired before it was decided")]
    Expired,
    /// The grant can no longer be revoked: it was used, revoked or ran out.
    #[error("the grant is already {state}")]
    GrantInactive {
        /// `used`, `revoked`, `expired` or `revoking` (another revocation is in progress).
        state: String,
    },
    /// The caller may not revoke this grant (neither an approver of its rule, its holder nor an
    /// admin).
    #[error("you may not revoke this grant: it needs a member of {}, the grant's holder or an admin", .groups.join(", "))]
    NotAllowedToRevoke {
        /// The approver groups named by the grant's request.
        groups: Vec<String>,
    },
    /// `request` was called without any requirement.
    #[error("an approval request needs at least one requirement")]
    NoRequirements,
    /// The audit store is failing closed: nothing is decided unaudited.
    #[error("the audit store is unavailable; nothing was changed")]
    AuditUnavailable,
    /// The approvals store failed.
    #[error("approvals store: {0}")]
    Store(String),
}

impl From<rusqlite::Error> for ApprovalError {
    fn from(e: rusqlite::Error) -> Self {
        ApprovalError::Store(e.to_string())
    }
}
