//! The policy engine: who may do what to which model, with which obligations.
//!
//! # Model
//!
//! Policies are [Cedar](https://www.cedarpolicy.com) policies validated (strict mode) against
//! [`SCHEMA`]: principals are `User::"<subject>"` or `ServiceAccount::"<subject>"`, members of
//! their `Group`s (groups nest through `[policy] group_parents`); the resource is
//! `Model::"<model>"` (`""` for a call that names none) with attributes `name` and `upstream`,
//! inside `Upstream::"<upstream>"`; actions are the classified actions of SPEC section 3, each in
//! its family's action group (`Action::"inference"`, …; `unknown` has none). The context carries
//! `src_ip` (when known), `time` (unix seconds), `hour` (0-23, UTC), `weekday` (0 = Monday),
//! `auth_method`, `stream`, `max_tokens` (when given) and `detected`: each entity type detection
//! found, plus, for every `_` in its name, the prefix up to it followed by `*`
//! (`SECRET_AWS_ACCESS_KEY` adds `SECRET_*`, `SECRET_AWS_*`, `SECRET_AWS_ACCESS_*`), plus `*`
//! when anything was found. So `detected = ["SECRET_*"]` is `context.detected.containsAny(["SECRET_*"])`.
//!
//! Policies come from `[[access]]` rules (compiled to Cedar, one policy per principal of a rule,
//! ids `<rule id>` or `<rule id>#<k>`, all reported under the rule id through `@rule`) and from
//! raw `.cedar` files (ids from `@id`, else `<file>#<index>`). With neither, the embedded rule
//! [`config::AccessRule::embedded_default`] applies. A model glob in `[[access]]` may use `*`
//! only: Cedar's `like` has no single-character wildcard, so config rejects `?`.
//!
//! Annotations: `@id`, `@rule` (the id reported in decisions), `@description`, and the
//! obligations `@mask` (a masking profile), `@recording` (`full` | `metadata`), `@durability`
//! (`strict` | `balanced` | `async`), `@approval` (comma-separated approver groups) with
//! `@approval_count`, `@approval_grant`, `@approval_ttl`, `@approval_pending_ttl`,
//! `@approval_mode`, `@approval_hold_timeout`. Own annotations must start with `x_`; any other is
//! a load error. A `forbid` may carry no obligation.
//!
//! # Decisions
//!
//! A decision follows Cedar's semantics, restricted by one rule, the **default deny for sensitive
//! families**: a `permit` whose action scope is unconstrained (`action` in Cedar, `*` in
//! `[[access]]`) applies only to the `inference` and `read` families. Actions of `model`,
//! `adapter`, `server`, `data` and `unknown` are allowed only by a permit whose action scope
//! names the action or its family. A `forbid` with an unconstrained action scope applies to
//! every action.
//!
//! - any satisfied `forbid` → [`Effect::Deny`], decided by those forbids;
//! - else any satisfied `permit` → [`Effect::Allow`], or [`Effect::RequireApproval`] when one of
//!   them carries an approval (the strictest wins: deny > require_approval > allow), decided by
//!   all satisfied permits;
//! - else [`Effect::Deny`] with no deciding policy ("no rule allows this").
//!
//! A policy whose evaluation errors is skipped (as in Cedar) and its error is reported in
//! [`Decision::errors`].
//!
//! **Merge rule** for the obligations of the deciding permits: masking profiles are the union
//! (sorted); the masked entity types are the union of those profiles' `entities` (`default` is
//! `["*"]`); the mask mode is the strictest of theirs (`redact` > `pseudonymize` > `tokenize`);
//! the masked directions are the union of theirs (`default` has all three); recording is
//! `metadata` when any says so (keeping less data wins); durability is the strictest (`strict` >
//! `balanced` > `async`); every approval requirement is kept (each must be met), sorted by
//! policy id.
//!
//! # Speed
//!
//! Plain Cedar evaluates every policy on every request (about 0.7 ms for 1,000 policies here).
//! At load, each policy is instead filed in slices keyed by principal (any; one group; one user
//! or service account: from its principal scope, other shapes count as "any") and by action
//! (from its action scope, following the action groups, with the default-deny rule above). A
//! decision looks only at the slices for "any", the caller's groups and their ancestors (closure
//! precomputed at load) and the caller's subject, for the action; compiled `[[access]]` rules
//! among them whose model, upstream, address or detection conditions certainly fail are skipped
//! by a native check of those same conditions; Cedar (cedar-policy-core's evaluator) evaluates
//! the rest against entities built per request with their ancestors already closed. When the
//! slice implies a policy's scope, only its `when`/`unless` conditions are evaluated. The result
//! equals plain Cedar over the whole set (tests compare the two on generated policies).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

mod compile;
mod decide;
mod family;
mod load;
mod obligations;
mod schema;

pub use load::{Policies, PolicyError};
pub use obligations::{Approval, MaskDirections, Obligations};
pub use schema::SCHEMA;

/// Whether the caller is a person or a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person: `User::"<subject>"`.
    User,
    /// A workload: `ServiceAccount::"<subject>"`.
    Service,
}

/// One authorization question.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// The caller's subject.
    pub subject: &'a str,
    /// Person or workload.
    pub kind: PrincipalKind,
    /// The caller's groups (their ancestors through `group_parents` are added).
    pub groups: &'a [String],
    /// The classified action.
    pub action: protocols::Action,
    /// The model the call names, if any.
    pub model: Option<&'a str>,
    /// The upstream the call routes to, if known.
    pub upstream: Option<&'a str>,
    /// The caller's address.
    pub src_ip: Option<IpAddr>,
    /// When the call is made.
    pub time: SystemTime,
    /// How the caller authenticated (`api_key`, `oidc`, …).
    pub auth_method: &'a str,
    /// Whether the call streams.
    pub stream: bool,
    /// Requested maximum tokens, if any.
    pub max_tokens: Option<u64>,
    /// Entity types detection found in the request (`SECRET_AWS_ACCESS_KEY`, `EMAIL`, …).
    pub detected: &'a [&'a str],
}

/// A decision's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Forward the call, under the obligations.
    Allow,
    /// Refuse the call (403 `access_denied`).
    Deny,
    /// Forward the call once the approvals in the obligations are given.
    RequireApproval,
}

impl Effect {
    /// `allow`, `deny` or `require_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::RequireApproval => "require_approval",
        }
    }
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub effect: Effect,
    /// Ids of the deciding policies (rule ids for `[[access]]`), sorted.
    pub policies: Vec<Arc<str>>,
    /// The merged obligations of the deciding permits (empty on deny).
    pub obligations: Obligations,
    /// The version of the policy set that decided.
    pub version: Arc<str>,
    /// Evaluation errors of policies that were skipped.
    pub errors: Vec<String>,
    /// Why, in words, for denials and approval requirements.
    pub reason: Option<String>,
}

impl Decision {
    /// `{"decision","policies","obligations":{…},"version","reason","errors"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "decision": self.effect.as_str(),
            "policies": self.policies.iter().map(|p| &**p).collect::<Vec<&str>>(),
            "obligations": self.obligations.to_json(),
            "version": &*self.version,
            "reason": self.reason,
            "errors": self.errors,
        })
    }
}

#[cfg(test)]
mod tests;
