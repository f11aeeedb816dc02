//! `[[access]]` rules to Cedar text.

use std::fmt::Write as _;
use std::net::IpAddr;

use config::{AccessRule, Effect};

use crate::family::{NON_SENSITIVE, is_sensitive_name};

/// One Cedar policy compiled from an `[[access]]` rule.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// Cedar policy id: the rule id, or `<rule id>#<k>` when the rule has several principals.
    pub id: String,
    /// The rule's config path (`access[3]`), for error messages.
    pub origin: String,
    /// Cedar text.
    pub text: String,
    /// The rule's conditions, checked natively before Cedar evaluates the policy.
    pub filter: Prefilter,
}

/// The top-level conjuncts of a compiled rule's condition, checked natively: a decision skips
/// the policy when one is certainly false (Cedar would find the policy unsatisfied), and lets
/// Cedar evaluate it otherwise. `None` means no such conjunct.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prefilter {
    /// Model globs (`resource.name like …`).
    models: Option<Vec<String>>,
    /// Upstream names (`resource in [Upstream::…]`).
    upstreams: Option<Vec<String>>,
    /// Address ranges (`context has src_ip && context.src_ip.isInRange(…)`).
    source_ips: Option<Vec<(IpAddr, u8)>>,
    /// Entity types and globs (`context.detected.containsAny(…)`).
    detected: Option<Vec<String>>,
}

impl Prefilter {
    fn of(rule: &AccessRule) -> Prefilter {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Prefilter {
            models: (!rule.models.iter().any(|m| m == "*")).then(|| rule.models.clone()),
            upstreams: some(&rule.upstreams),
            source_ips: (!rule.source_ips.is_empty())
                .then(|| rule.source_ips.iter().filter_map(|s| config::parse_cidr(s).ok()).collect()),
            detected: some(&rule.detected),
        }
    }

    /// False when the policy certainly does not apply.
    pub(crate) fn may_apply(&self, model: &str, upstream: &str, src_ip: Option<IpAddr>, detected: &[&str]) -> bool {
        // As the compiled Cedar: `like` for a glob with a `*`, `==` otherwise.
        if let Some(globs) = &self.models
            && !globs.iter().any(|g| protocols::glob::matches(g, model))
        {
            return false;
        }
        if let Some(ups) = &self.upstreams
            && !ups.iter().any(|u| u == upstream)
        {
            return false;
        }
        if let Some(ranges) = &self.source_ips {
            let Some(ip) = src_ip else { return false };
            let ip = ip.to_canonical();
            if !ranges.iter().any(|(net, len)| in_range(ip, *net, *len)) {
                return false;
            }
        }
        if let Some(globs) = &self.detected
            && !globs.iter().any(|g| detected_matches(g, detected))
        {
            return false;
        }
        true
    }
}

/// `ip` within `net/len`, same address family only (as Cedar's `isInRange`).
fn in_range(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether `context.detected` (the detected types expanded with their `_` prefixes and `*`)
/// contains the glob.
fn detected_matches(glob: &str, detected: &[&str]) -> bool {
    if glob == "*" {
        return !detected.is_empty();
    }
    match glob.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('_') => detected.iter().any(|d| d.starts_with(prefix)),
        _ => detected.contains(&glob),
    }
}

/// Compiles one rule: one Cedar policy per principal (group, user, service account), so each has
/// a simple principal scope the slicer can bucket.
pub(crate) fn compile_rule(index: usize, rule: &AccessRule, origin: &str) -> Vec<Compiled> {
    let rule_id = rule.id.clone().unwrap_or_else(|| format!("access[{index}]"));
    let mut principals: Vec<String> = Vec::new();
    for g in &rule.groups {
        principals.push(format!("principal in Group::{}", lit(g)));
    }
    for s in &rule.subjects {
        principals.push(format!("principal == User::{}", lit(s)));
        principals.push(format!("principal == ServiceAccount::{}", lit(s)));
    }
    if principals.is_empty() {
        principals.push("principal".into());
    }
    let action = action_scope(rule);
    let conditions = conditions(rule);
    let head = annotations(&rule_id, rule);
    let verb = match rule.effect {
        Effect::Allow => "permit",
        Effect::Deny => "forbid",
    };
    let filter = Prefilter::of(rule);
    let many = principals.len() > 1;
    principals
        .iter()
        .enumerate()
        .map(|(k, principal)| {
            let id = if many { format!("{rule_id}#{k}") } else { rule_id.clone() };
            let mut text = format!("@id({})\n{head}{verb} (\n  {principal},\n  {action},\n  resource\n)", lit(&id));
            if !conditions.is_empty() {
                let _ = write!(text, "\nwhen {{\n  {}\n}}", conditions.join(" &&\n  "));
            }
            text.push_str(";\n");
            Compiled { id, origin: origin.to_string(), text, filter: filter.clone() }
        })
        .collect()
}

/// `*` in a deny rule is an unconstrained action scope (it applies to every action). In an allow
/// rule, `*` alone is unconstrained too, which the slicer limits to the non-sensitive families;
/// next to sensitive names it becomes an explicit list with `inference` and `read`.
fn action_scope(rule: &AccessRule) -> String {
    let star = rule.actions.iter().any(|a| a == "*");
    let named: Vec<&str> = rule.actions.iter().map(String::as_str).filter(|a| *a != "*").collect();
    if star && (rule.effect == Effect::Deny || named.iter().all(|a| !is_sensitive_name(a))) {
        return "action".into();
    }
    let mut list: Vec<&str> = Vec::new();
    if star {
        list.extend(NON_SENSITIVE.iter().map(|f| f.as_str()));
    }
    for a in named {
        if !list.contains(&a) {
            list.push(a);
        }
    }
    let items: Vec<String> = list.iter().map(|a| format!("Action::{}", lit(a))).collect();
    format!("action in [{}]", items.join(", "))
}

fn conditions(rule: &AccessRule) -> Vec<String> {
    let mut out = Vec::new();
    if !rule.models.iter().any(|m| m == "*") {
        let alts: Vec<String> = rule
            .models
            .iter()
            .map(|m| {
                if m.contains('*') {
                    format!("resource.name like {}", like_lit(m))
                } else {
                    format!("resource.name == {}", lit(m))
                }
            })
            .collect();
        out.push(format!("({})", alts.join(" || ")));
    }
    if !rule.upstreams.is_empty() {
        let ups: Vec<String> = rule.upstreams.iter().map(|u| format!("Upstream::{}", lit(u))).collect();
        out.push(format!("resource in [{}]", ups.join(", ")));
    }
    if !rule.source_ips.is_empty() {
        let ranges: Vec<String> = rule
            .source_ips
            .iter()
            .filter_map(|s| config::parse_cidr(s).ok())
            .map(|(ip, len)| format!("context.src_ip.isInRange(ip({}))", lit(&format!("{ip}/{len}"))))
            .collect();
        out.push(format!("(context has src_ip && ({}))", ranges.join(" || ")));
    }
    if !rule.detected.is_empty() {
        let items: Vec<String> = rule.detected.iter().map(|d| lit(d)).collect();
        out.push(format!("context.detected.containsAny([{}])", items.join(", ")));
    }
    out
}

fn annotations(rule_id: &str, rule: &AccessRule) -> String {
    let mut a = format!("@rule({})\n", lit(rule_id));
    if let Some(d) = &rule.description {
        let _ = writeln!(a, "@description({})", lit(d));
    }
    if let Some(m) = &rule.mask {
        let _ = writeln!(a, "@mask({})", lit(m));
    }
    if let Some(r) = rule.recording {
        let _ = writeln!(a, "@recording({})", lit(r.as_str()));
    }
    if let Some(d) = rule.durability {
        let _ = writeln!(a, "@durability({})", lit(d.as_str()));
    }
    if let Some(ap) = &rule.require_approval {
        let _ = writeln!(a, "@approval({})", lit(&ap.approvers.join(",")));
        let _ = writeln!(a, "@approval_count({})", lit(&ap.count.to_string()));
        let _ = writeln!(a, "@approval_grant({})", lit(ap.grant.as_str()));
        if let Some(t) = ap.ttl {
            let _ = writeln!(a, "@approval_ttl({})", lit(&humantime::format_duration(t).to_string()));
        }
        let _ = writeln!(a, "@approval_pending_ttl({})", lit(&humantime::format_duration(ap.pending_ttl).to_string()));
        let _ = writeln!(a, "@approval_mode({})", lit(ap.mode.as_str()));
        let _ =
            writeln!(a, "@approval_hold_timeout({})", lit(&humantime::format_duration(ap.hold_timeout).to_string()));
    }
    a
}

/// A Cedar `like` pattern from a model glob: `*` stays the wildcard (config rejects `?`, which
/// Cedar patterns lack), everything else is literal.
fn like_lit(s: &str) -> String {
    lit(s)
}

/// A Cedar string literal.
pub(crate) fn lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
