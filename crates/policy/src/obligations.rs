//! Obligations: what a policy requires of an allowed call, read from its annotations, and their
//! merge over the deciding policies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use config::{ApprovalConfig, ApprovalMode, Direction, Durability, GrantKind, MaskMode, Recording};
use serde_json::{Value, json};

/// The merged obligations of a decision's deciding permits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Obligations {
    /// Masking profiles to apply, sorted.
    pub mask: Vec<String>,
    /// Entity types (or globs) masked: the union of the profiles' `entities`, sorted.
    pub mask_entities: Vec<String>,
    /// The strictest mode of the profiles (`redact` > `pseudonymize` > `tokenize`).
    pub mask_mode: Option<MaskMode>,
    /// Where masking applies: the union of the profiles' `directions`.
    pub mask_directions: MaskDirections,
    /// Recording level: `metadata` when any policy says so (less data kept wins).
    pub recording: Option<Recording>,
    /// Durability: the strictest any policy asks for (`strict` > `balanced` > `async`).
    pub durability: Option<Durability>,
    /// Every approval requirement; each must be met. Sorted by policy id.
    pub approval: Vec<Approval>,
}

/// The directions a masking obligation covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaskDirections {
    /// The request as forwarded to the model.
    pub request: bool,
    /// The response as relayed to the caller.
    pub response: bool,
    /// The stored copy.
    pub recording: bool,
}

impl MaskDirections {
    /// The directions of a profile's `directions` list.
    pub(crate) fn of(directions: &[Direction]) -> MaskDirections {
        let mut d = MaskDirections::default();
        for dir in directions {
            match dir {
                Direction::Request => d.request = true,
                Direction::Response => d.response = true,
                Direction::Recording => d.recording = true,
            }
        }
        d
    }

    /// Every direction of either.
    fn union(self, other: MaskDirections) -> MaskDirections {
        MaskDirections {
            request: self.request || other.request,
            response: self.response || other.response,
            recording: self.recording || other.recording,
        }
    }
}

/// One approval requirement, from the policy that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The policy (rule) id that requires it.
    pub policy: Arc<str>,
    /// Groups whose members may approve.
    pub approvers: Vec<String>,
    /// Distinct people who must approve.
    pub count: u32,
    /// What an approval grants.
    pub grant: GrantKind,
    /// Length of a window grant.
    pub ttl: Option<Duration>,
    /// How long the request may wait for a decision.
    pub pending_ttl: Duration,
    /// How the caller waits.
    pub mode: ApprovalMode,
    /// In `hold` mode, how long the request is held open.
    pub hold_timeout: Duration,
}

impl Approval {
    fn from_config(policy: Arc<str>, a: &ApprovalConfig) -> Approval {
        Approval {
            policy,
            approvers: a.approvers.clone(),
            count: a.count,
            grant: a.grant,
            ttl: a.ttl,
            pending_ttl: a.pending_ttl,
            mode: a.mode,
            hold_timeout: a.hold_timeout,
        }
    }

    /// `approvers=security;count=1;grant=window;ttl=1h`, then `pending_ttl`, `mode` and
    /// `hold_timeout` when they differ from their defaults.
    fn to_compact(&self) -> String {
        let mut s =
            format!("approvers={};count={};grant={}", self.approvers.join(","), self.count, self.grant.as_str());
        if let Some(t) = self.ttl {
            s.push_str(&format!(";ttl={}", fmt_duration(t)));
        }
        if self.pending_ttl != config::default_pending_ttl() {
            s.push_str(&format!(";pending_ttl={}", fmt_duration(self.pending_ttl)));
        }
        if self.mode != ApprovalMode::Hold {
            s.push_str(&format!(";mode={}", self.mode.as_str()));
        }
        if self.hold_timeout != config::default_hold_timeout() {
            s.push_str(&format!(";hold_timeout={}", fmt_duration(self.hold_timeout)));
        }
        s
    }

    /// The structured JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "policy": &*self.policy,
            "approvers": self.approvers,
            "count": self.count,
            "grant": self.grant.as_str(),
            "ttl": self.ttl.map(fmt_duration),
            "pending_ttl": fmt_duration(self.pending_ttl),
            "mode": self.mode.as_str(),
            "hold_timeout": fmt_duration(self.hold_timeout),
        })
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Obligations {
    /// The audit form (`policy.obligations[]`): `mask:finance`, `recording:metadata`,
    /// `durability:strict`, `approval:approvers=security;count=1;grant=window;ttl=1h`.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.mask.iter().map(|m| format!("mask:{m}")).collect();
        if let Some(r) = self.recording {
            out.push(format!("recording:{}", r.as_str()));
        }
        if let Some(d) = self.durability {
            out.push(format!("durability:{}", d.as_str()));
        }
        out.extend(self.approval.iter().map(|a| format!("approval:{}", a.to_compact())));
        out
    }

    /// True when nothing is required.
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty() && self.recording.is_none() && self.durability.is_none() && self.approval.is_empty()
    }

    /// The structured JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "mask": self.mask,
            "mask_entities": self.mask_entities,
            "mask_mode": self.mask_mode.map(MaskMode::as_str),
            "recording": self.recording.map(Recording::as_str),
            "durability": self.durability.map(Durability::as_str),
            "approval": self.approval.iter().map(Approval::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The obligations one policy carries (from its annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyObligations {
    pub mask: Option<String>,
    pub recording: Option<Recording>,
    pub durability: Option<Durability>,
    pub approval: Option<ApprovalConfig>,
}

/// A masking profile as the merge needs it.
#[derive(Clone, Debug)]
pub(crate) struct ProfileSummary {
    pub entities: Vec<String>,
    pub mode: MaskMode,
    pub directions: MaskDirections,
}

/// Merges the obligations of the deciding permits (`(reported id, obligations)`), per the rule
/// in the crate docs.
pub(crate) fn merge<'a>(
    permits: impl IntoIterator<Item = (&'a Arc<str>, &'a PolicyObligations)>,
    profiles: &BTreeMap<String, ProfileSummary>,
) -> Obligations {
    let mut mask = BTreeSet::new();
    let mut entities = BTreeSet::new();
    let mut mode: Option<MaskMode> = None;
    let mut directions = MaskDirections::default();
    let mut recording: Option<Recording> = None;
    let mut durability: Option<Durability> = None;
    let mut approval: Vec<Approval> = Vec::new();
    for (id, o) in permits {
        if let Some(m) = &o.mask
            && mask.insert(m.clone())
            && let Some(p) = profiles.get(m)
        {
            entities.extend(p.entities.iter().cloned());
            mode = Some(mode.map_or(p.mode, |cur| cur.min(p.mode)));
            directions = directions.union(p.directions);
        }
        // Strictest wins: the least recording, the strictest durability (their orders).
        if let Some(r) = o.recording {
            recording = Some(recording.map_or(r, |cur| cur.max(r)));
        }
        if let Some(d) = o.durability {
            durability = Some(durability.map_or(d, |cur| cur.min(d)));
        }
        if let Some(a) = &o.approval {
            let a = Approval::from_config(id.clone(), a);
            if !approval.contains(&a) {
                approval.push(a);
            }
        }
    }
    approval.sort_by(|a, b| a.policy.cmp(&b.policy).then_with(|| a.approvers.cmp(&b.approvers)));
    Obligations {
        mask: mask.into_iter().collect(),
        mask_entities: entities.into_iter().collect(),
        mask_mode: mode,
        mask_directions: directions,
        recording,
        durability,
        approval,
    }
}
