//! Who is calling. Every data-path and admin request is authenticated here, producing an
//! [`Identity`] that later layers (policy, audit, approvals) key on.
//!
//! Two kinds of credential: OIDC/JWT bearer tokens from configured issuers ([`oidc`]), and keys
//! the gateway issues itself ([`keys`]). Failures carry a precise internal reason
//! ([`AuthError::reason`]) that goes to the log and the audit trail, never to the caller.

use std::net::IpAddr;

use serde::Serialize;

pub mod authn;
pub mod http;
pub mod keys;
pub mod oidc;

/// Whether an identity is a person, a workload or the gateway itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A person.
    Human,
    /// A workload (CI job, service account, script).
    Service,
    /// The gateway or its local CLI.
    System,
}

impl From<config::IdentityKind> for Kind {
    fn from(k: config::IdentityKind) -> Kind {
        match k {
            config::IdentityKind::Human => Kind::Human,
            config::IdentityKind::Service => Kind::Service,
        }
    }
}

/// How the caller authenticated (SPEC section 4, `actor.auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// An OIDC/JWT bearer token.
    Oidc,
    /// A gateway-issued key.
    ApiKey,
    /// The one-time admin token.
    AdminToken,
    /// The CLI acting on a data dir.
    Local,
}

impl AuthMethod {
    /// The name used in audit events and policy context (`oidc`, `api_key`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Oidc => "oidc",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::AdminToken => "admin_token",
            AuthMethod::Local => "local",
        }
    }
}

/// Admin roles (SPEC sections 2, 6, 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every admin right.
    Admin,
    /// Reads the audit trail.
    Auditor,
    /// Decides approvals.
    Approver,
}

impl Role {
    /// Parses `admin`, `auditor` or `approver`.
    pub fn from_name(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            "approver" => Some(Role::Approver),
            _ => None,
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
        }
    }
}

/// The authenticated caller, handed to later layers and into every audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Stable subject (`sub`, or the key's subject).
    pub subject: String,
    /// Who vouches for the subject: the OIDC issuer, or `modelgate` for its own keys.
    pub issuer: String,
    /// Person, workload or system.
    pub kind: Kind,
    /// Human-readable name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Group memberships.
    pub groups: Vec<String>,
    /// How the caller authenticated.
    pub auth_method: AuthMethod,
    /// Key id or JWT `jti`; never the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Source address of the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// The caller's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Admin roles: from the key itself and from `[roles]` group mappings. Not part of the
    /// audit actor.
    #[serde(skip)]
    pub roles: Vec<Role>,
}

impl Identity {
    /// Whether the identity holds `role` (admins hold every role).
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r == role || *r == Role::Admin)
    }

    /// Adds the roles `[roles]` maps this identity's groups to.
    pub fn apply_role_map(&mut self, map: &config::RolesConfig) {
        for (role, groups) in
            [(Role::Admin, &map.admin), (Role::Auditor, &map.auditor), (Role::Approver, &map.approver)]
        {
            if !self.roles.contains(&role) && self.groups.iter().any(|g| groups.contains(g)) {
                self.roles.push(role);
            }
        }
    }
}

/// Why a credential was refused. Precise here and in logs; callers only ever see
/// "authentication failed".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented.
    #[error("no credential presented")]
    Missing,
    /// The credential could not be parsed.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// The credential is larger than any legitimate one.
    #[error("credential too large ({0} bytes)")]
    TooLarge(usize),
    /// The token's issuer is not configured.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The token's algorithm is not in the issuer's allowlist.
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// The token names a key the issuer does not publish (after a refresh).
    #[error("unknown key id")]
    UnknownKid,
    /// The issuer's keys could not be fetched and none are cached.
    #[error("issuer keys unavailable")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is past.
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("issued in the future")]
    IssuedInFuture,
    /// `aud` names none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` does not match the issuer whose key verified it.
    #[error("wrong issuer")]
    WrongIssuer,
    /// A required claim is missing or has the wrong type.
    #[error("missing or invalid claim {0}")]
    BadClaim(String),
    /// No key with this id exists.
    #[error("unknown key")]
    UnknownKey,
    /// The key id exists but the secret is wrong.
    #[error("wrong key secret")]
    WrongSecret,
    /// The key was revoked.
    #[error("revoked key")]
    Revoked,
    /// The key's expiry has passed.
    #[error("expired key")]
    KeyExpired,
}

impl AuthError {
    /// A short, stable reason code for logs, metrics and audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::TooLarge(_) => "too_large",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::BadClaim(_) => "bad_claim",
            AuthError::UnknownKey => "unknown_key",
            AuthError::WrongSecret => "wrong_secret",
            AuthError::Revoked => "revoked",
            AuthError::KeyExpired => "key_expired",
        }
    }
}
