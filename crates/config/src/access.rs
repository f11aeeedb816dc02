//! Authorization and masking keys: `[[access]]` rules with their obligations, `[policy]` (raw
//! Cedar files, group inheritance) and `[masking]` profiles. Validation here is pure; the policy
//! crate reads the files and compiles the rules.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use protocols::Family;
use serde::{Deserialize, Deserializer};

use crate::{Config, ConfigError, Durability, Recording, de_duration, parse_duration};

/// Name of the built-in masking profile.
pub const DEFAULT_MASKING_PROFILE: &str = "default";

/// One `[[access]]` rule: who may (or may not) do which actions on which models, and under which
/// obligations. Compiled to Cedar by the policy crate.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Policy id reported in decisions and audit events; `access[N]` (N = index) when absent.
    pub id: Option<String>,
    /// Free text kept with the compiled policy.
    pub description: Option<String>,
    /// Caller groups the rule applies to (members of descendant groups too).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Caller subjects the rule applies to; with neither groups nor subjects, every caller.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Actions (`inference.chat`), families (`inference`) or `*` (non-sensitive families only when
    /// allowing: `model`, `adapter`, `server`, `data` and `unknown` must be named).
    pub actions: Vec<String>,
    /// Model name globs (`*` only); `*` also matches calls that name no model.
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    /// Upstream names the rule is limited to (empty: any).
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// `allow` (the default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
    /// CIDRs or addresses; when set, the rule applies only to callers from one of them.
    #[serde(default)]
    pub source_ips: Vec<String>,
    /// Entity types (`SECRET_AWS_ACCESS_KEY`) or globs (`SECRET_*`, `*`); when set, the rule
    /// applies only when detection found at least one of them in the request.
    #[serde(default)]
    pub detected: Vec<String>,
    /// Masking profile applied to allowed calls (`default` or a `[masking.profiles]` name).
    pub mask: Option<String>,
    /// Allowed calls wait for this approval first.
    pub require_approval: Option<ApprovalConfig>,
    /// Recording level for allowed calls (the merge keeps the least data).
    pub recording: Option<Recording>,
    /// Durability for allowed calls (the merge keeps the strictest).
    pub durability: Option<Durability>,
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}

impl AccessRule {
    /// The embedded rule used when a config has neither `[[access]]` rules nor `[policy] files`:
    /// group `users` may use `inference` on every model.
    pub fn embedded_default() -> AccessRule {
        AccessRule {
            id: Some("default".into()),
            description: Some("embedded default: group users may use inference on every model".into()),
            groups: vec!["users".into()],
            actions: vec!["inference".into()],
            models: all_models(),
            ..AccessRule::default()
        }
    }

    /// True when the rule carries an obligation (mask, approval, recording, durability).
    pub fn has_obligations(&self) -> bool {
        self.mask.is_some() || self.require_approval.is_some() || self.recording.is_some() || self.durability.is_some()
    }
}

/// Whether a rule allows or denies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Allows (a Cedar `permit`).
    #[default]
    Allow,
    /// Denies, overriding every allow (a Cedar `forbid`).
    Deny,
}

/// What an approval grants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// The one request that asked.
    #[default]
    Request,
    /// Every matching request of the caller for `ttl`.
    Window,
}

impl GrantKind {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Request => "request",
            GrantKind::Window => "window",
        }
    }

    /// Parses a config name.
    pub fn from_name(s: &str) -> Option<GrantKind> {
        [GrantKind::Request, GrantKind::Window].into_iter().find(|g| g.as_str() == s)
    }
}

/// How a caller waits for an approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The request is held open until decided or `hold_timeout`.
    #[default]
    Hold,
    /// The caller gets a ticket at once and retries when approved.
    Ticket,
}

impl ApprovalMode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Hold => "hold",
            ApprovalMode::Ticket => "ticket",
        }
    }

    /// Parses a config name.
    pub fn from_name(s: &str) -> Option<ApprovalMode> {
        [ApprovalMode::Hold, ApprovalMode::Ticket].into_iter().find(|m| m.as_str() == s)
    }
}

/// An approval requirement (SPEC section 2, "Approval requirement keys").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Groups whose members may approve.
    pub approvers: Vec<String>,
    /// Distinct people who must approve.
    #[serde(default = "one")]
    pub count: u32,
    /// What an approval grants.
    #[serde(default)]
    pub grant: GrantKind,
    /// Length of a window grant (required for `window`, not allowed for `request`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub ttl: Option<Duration>,
    /// How long a request may wait for a decision.
    #[serde(default = "default_pending_ttl", deserialize_with = "de_duration")]
    pub pending_ttl: Duration,
    /// How the caller waits.
    #[serde(default)]
    pub mode: ApprovalMode,
    /// In `hold` mode, how long the request is held open.
    #[serde(default = "default_hold_timeout", deserialize_with = "de_duration")]
    pub hold_timeout: Duration,
}

fn one() -> u32 {
    1
}

/// Default `pending_ttl`: 1h.
pub fn default_pending_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// Default `hold_timeout`: 5m.
pub fn default_hold_timeout() -> Duration {
    Duration::from_secs(300)
}

impl ApprovalConfig {
    /// A requirement with the given approvers and every other key at its default.
    pub fn new(approvers: Vec<String>) -> ApprovalConfig {
        ApprovalConfig {
            approvers,
            count: 1,
            grant: GrantKind::Request,
            ttl: None,
            pending_ttl: default_pending_ttl(),
            mode: ApprovalMode::Hold,
            hold_timeout: default_hold_timeout(),
        }
    }

    /// Checks the keys' consistency; an error names the offending key (`approvers`, `ttl`, …).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.approvers.is_empty() {
            return Err(("approvers", "at least one approver group is required".into()));
        }
        if let Some(i) = self.approvers.iter().position(|a| a.trim().is_empty()) {
            return Err(("approvers", format!("approver group {i} is empty")));
        }
        if self.count == 0 {
            return Err(("count", "must be at least 1".into()));
        }
        match (self.grant, self.ttl) {
            (GrantKind::Window, None) => return Err(("ttl", "a window grant needs a ttl".into())),
            (GrantKind::Request, Some(_)) => {
                return Err(("ttl", "ttl applies only to grant = \"window\"".into()));
            }
            (_, Some(t)) if t.is_zero() => return Err(("ttl", "must be greater than 0".into())),
            _ => {}
        }
        if self.pending_ttl.is_zero() {
            return Err(("pending_ttl", "must be greater than 0".into()));
        }
        if self.hold_timeout.is_zero() {
            return Err(("hold_timeout", "must be greater than 0".into()));
        }
        Ok(())
    }
}

/// `[policy]`: raw Cedar files and group inheritance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Raw `.cedar` policy files; relative paths are relative to the config file's directory.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Group inheritance: members of the key group are also members of the listed groups,
    /// transitively. Cycles are rejected.
    #[serde(default)]
    pub group_parents: BTreeMap<String, Vec<String>>,
}

/// `[masking]`: named masking profiles and custom detectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Custom profiles by name; `default` is built in and may not be redefined.
    #[serde(default)]
    pub profiles: BTreeMap<String, MaskingProfile>,
    /// Custom detectors by name (`[masking.custom.NAME]`); what they find is reported as the
    /// entity type NAME uppercased (`project_code` → `PROJECT_CODE`).
    #[serde(default)]
    pub custom: BTreeMap<String, CustomDetector>,
}

/// `[masking.custom.NAME]`: a custom detector, by regular expressions and/or word lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Regular expressions (Rust `regex` syntax); each match is a value. Validated at load.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Words or phrases, matched as whole words.
    #[serde(default)]
    pub words: Vec<String>,
    /// Whether patterns and words match case-sensitively (default: not).
    #[serde(default)]
    pub case_sensitive: bool,
}

/// Most custom detectors (the masking crate's `MAX_CUSTOM`).
pub const MAX_CUSTOM_DETECTORS: usize = 32;

/// Built-in entity type names a custom detector may not take.
const BUILTIN_ENTITIES: &[&str] = &[
    "CREDIT_CARD",
    "EMAIL",
    "IBAN",
    "IP_ADDRESS",
    "PERSON",
    "PHONE",
    "SECRET_ANTHROPIC_KEY",
    "SECRET_AWS_ACCESS_KEY",
    "SECRET_GENERIC",
    "SECRET_GITHUB_TOKEN",
    "SECRET_GITLAB_TOKEN",
    "SECRET_JWT",
    "SECRET_OPENAI_KEY",
    "SECRET_PRIVATE_KEY",
    "SECRET_SLACK_TOKEN",
    "STREET_ADDRESS",
    "US_SSN",
];

impl MaskingConfig {
    /// The profile of that name: a configured one, or the built-in `default`.
    pub fn profile(&self, name: &str) -> Option<MaskingProfile> {
        if name == DEFAULT_MASKING_PROFILE {
            return Some(MaskingProfile::builtin_default());
        }
        self.profiles.get(name).cloned()
    }

    /// Every profile name, the built-in `default` included, sorted.
    pub fn profile_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
        names.push(DEFAULT_MASKING_PROFILE);
        names.sort_unstable();
        names
    }
}

/// One masking profile: which entity types, how, in which directions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingProfile {
    /// Entity type names (uppercase; a trailing `*` is a prefix glob, `*` alone means all).
    pub entities: Vec<String>,
    /// How found values are replaced.
    #[serde(default)]
    pub mode: MaskMode,
    /// Where masking applies.
    #[serde(default = "all_directions")]
    pub directions: Vec<Direction>,
}

impl MaskingProfile {
    /// The built-in `default`: every entity type, redacted, in all three directions.
    pub fn builtin_default() -> MaskingProfile {
        MaskingProfile { entities: vec!["*".into()], mode: MaskMode::Redact, directions: all_directions() }
    }
}

fn all_directions() -> Vec<Direction> {
    vec![Direction::Request, Direction::Response, Direction::Recording]
}

/// How masked values are replaced. Ordered from the most to the least protective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// Replaced by the entity type (`[EMAIL]`); nothing can be recovered.
    #[default]
    Redact,
    /// Replaced by a stable fake value of the same kind.
    Pseudonymize,
    /// Replaced by a reversible token.
    Tokenize,
}

impl MaskMode {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskMode::Redact => "redact",
            MaskMode::Pseudonymize => "pseudonymize",
            MaskMode::Tokenize => "tokenize",
        }
    }
}

/// Where a masking profile applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The request as forwarded to the model.
    Request,
    /// The response as relayed to the caller.
    Response,
    /// The stored copy.
    Recording,
}

impl Direction {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
            Direction::Recording => "recording",
        }
    }
}

impl Recording {
    /// Parses a config name (`full` | `metadata`).
    pub fn from_name(s: &str) -> Option<Recording> {
        [Recording::Full, Recording::Metadata].into_iter().find(|r| r.as_str() == s)
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Recording::Full => "full",
            Recording::Metadata => "metadata",
        }
    }
}

impl Durability {
    /// Parses a config name (`strict` | `balanced` | `async`).
    pub fn from_name(s: &str) -> Option<Durability> {
        [Durability::Strict, Durability::Balanced, Durability::Async].into_iter().find(|d| d.as_str() == s)
    }
}

/// Parses an `[[access]] source_ips` entry: a CIDR (`10.0.0.0/8`) or a plain address, returned as
/// address and prefix length (a plain address is a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("\"{s}\" is not an IP address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && !p.starts_with('+') => n,
            _ => return Err(format!("\"{s}\" has an invalid prefix length (0 to {max})")),
        },
    };
    Ok((ip, len))
}

/// True for an entity type name or glob: uppercase letters, digits and `_`, optionally ending in
/// `*` (a prefix glob); `*` alone matches every type.
pub fn is_entity_pattern(s: &str) -> bool {
    let body = s.strip_suffix('*').unwrap_or(s);
    (s == "*" || !body.is_empty()) && body.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map(Some).map_err(serde::de::Error::custom)
}

/// Validates `[[access]]`, `[policy]` and `[masking]` against each other and the upstreams.
pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    validate_masking(&config.masking)?;
    validate_policy(&config.policy)?;
    for (i, rule) in config.access.iter().enumerate() {
        validate_rule(config, i, rule)?;
    }
    Ok(())
}

fn validate_custom_detectors(m: &MaskingConfig) -> Result<(), ConfigError> {
    if m.custom.len() > MAX_CUSTOM_DETECTORS {
        return Err(ConfigError::new("masking.custom", format!("at most {MAX_CUSTOM_DETECTORS} custom detectors")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, d) in &m.custom {
        let at = format!("masking.custom.{name}");
        let upper = name.to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::new(at, "custom detector names use only letters, digits or '_'"));
        }
        if BUILTIN_ENTITIES.contains(&upper.as_str()) {
            return Err(ConfigError::new(at, format!("{upper} is a built-in entity type")));
        }
        if !seen.insert(upper.clone()) {
            return Err(ConfigError::new(at, format!("another custom detector is also named {upper}")));
        }
        if d.patterns.is_empty() && d.words.is_empty() {
            return Err(ConfigError::new(at, "needs at least one of `patterns` or `words`"));
        }
        for (i, w) in d.words.iter().enumerate() {
            if w.trim().is_empty() {
                return Err(ConfigError::new(format!("{at}.words[{i}]"), "must not be empty"));
            }
        }
        for (i, p) in d.patterns.iter().enumerate() {
            let mut parser = regex_syntax::ParserBuilder::new().case_insensitive(!d.case_sensitive).build();
            match parser.parse(p) {
                Ok(hir) if hir.properties().minimum_len() == Some(0) => {
                    return Err(ConfigError::new(
                        format!("{at}.patterns[{i}]"),
                        "the pattern matches the empty string",
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(ConfigError::new(format!("{at}.patterns[{i}]"), format!("not a valid regex: {e}")));
                }
            }
        }
    }
    Ok(())
}

fn validate_masking(m: &MaskingConfig) -> Result<(), ConfigError> {
    validate_custom_detectors(m)?;
    for (name, p) in &m.profiles {
        let at = |key: &str| format!("masking.profiles.{name}.{key}");
        if name == DEFAULT_MASKING_PROFILE {
            return Err(ConfigError::new(
                format!("masking.profiles.{name}"),
                "\"default\" is built in (every entity type, redact, all directions) and cannot be redefined",
            ));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(ConfigError::new(
                format!("masking.profiles.{name}"),
                "profile names use only letters, digits, '-', '_' or '.'",
            ));
        }
        if p.entities.is_empty() {
            return Err(ConfigError::new(at("entities"), "at least one entity type is required"));
        }
        for (j, e) in p.entities.iter().enumerate() {
            if !is_entity_pattern(e) {
                return Err(ConfigError::new(
                    format!("masking.profiles.{name}.entities[{j}]"),
                    format!("\"{e}\" is not an entity type (uppercase letters, digits, '_'; a trailing '*' globs)"),
                ));
            }
        }
        if p.directions.is_empty() {
            return Err(ConfigError::new(at("directions"), "at least one direction is required"));
        }
    }
    Ok(())
}

fn validate_policy(p: &PolicyConfig) -> Result<(), ConfigError> {
    for (i, f) in p.files.iter().enumerate() {
        if f.as_os_str().is_empty() {
            return Err(ConfigError::new(format!("policy.files[{i}]"), "must not be empty"));
        }
    }
    for (group, parents) in &p.group_parents {
        let at = format!("policy.group_parents.{group}");
        if !is_name(group) {
            return Err(ConfigError::new(at, "group names must be non-empty, without spaces or control characters"));
        }
        for (j, parent) in parents.iter().enumerate() {
            if !is_name(parent) {
                return Err(ConfigError::new(
                    format!("{at}[{j}]"),
                    "group names must be non-empty, without spaces or control characters",
                ));
            }
        }
    }
    // Cycles: depth-first from every group, reporting the first cycle found as a path.
    for start in p.group_parents.keys() {
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::from([start.as_str()]);
        while let Some(&(node, next)) = stack.last() {
            let parents = p.group_parents.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if next >= parents.len() {
                stack.pop();
                continue;
            }
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            let parent = parents[next].as_str();
            if parent == start.as_str() {
                let mut path: Vec<&str> = stack.iter().map(|(n, _)| *n).collect();
                path.push(parent);
                return Err(ConfigError::new(
                    format!("policy.group_parents.{start}"),
                    format!("group inheritance has a cycle: {}", path.join(" -> ")),
                ));
            }
            // A cycle not through `start` is found when one of its members is the start.
            if seen.insert(parent) {
                stack.push((parent, 0));
            }
        }
    }
    Ok(())
}

fn validate_rule(config: &Config, i: usize, rule: &AccessRule) -> Result<(), ConfigError> {
    let at = |key: &str| format!("access[{i}].{key}");
    if let Some(id) = &rule.id {
        if !is_name(id) || id.contains('#') {
            return Err(ConfigError::new(at("id"), "must be non-empty, without spaces, control characters or '#'"));
        }
        if let Some(j) = config.access[..i].iter().position(|r| r.id.as_deref() == Some(id.as_str())) {
            return Err(ConfigError::new(at("id"), format!("duplicate id \"{id}\" (also access[{j}])")));
        }
        if id.starts_with("access[") && *id != format!("access[{i}]") {
            return Err(ConfigError::new(at("id"), "ids of the form access[N] are reserved for unnamed rules"));
        }
    }
    for (key, list) in [("groups", &rule.groups), ("subjects", &rule.subjects)] {
        for (j, g) in list.iter().enumerate() {
            if !is_name(g) {
                return Err(ConfigError::new(
                    format!("access[{i}].{key}[{j}]"),
                    "must be non-empty, without spaces or control characters",
                ));
            }
        }
    }
    if rule.actions.is_empty() {
        return Err(ConfigError::new(at("actions"), "at least one action is required (a name, a family or \"*\")"));
    }
    for (j, a) in rule.actions.iter().enumerate() {
        // A family (`inference` covers `inference.chat`, …) or an action.
        if a != "*" && Family::from_name(a).is_none() {
            let families: Vec<&str> =
                Family::ALL.iter().filter(|f| **f != Family::Unknown).map(|f| f.as_str()).collect();
            return Err(ConfigError::new(
                format!("access[{i}].actions[{j}]"),
                format!(
                    "unknown action \"{a}\": use an action (inference.chat, model.pull, …, unknown), a family ({}) or \"*\"",
                    families.join(", ")
                ),
            ));
        }
    }
    if rule.models.is_empty() {
        return Err(ConfigError::new(at("models"), "at least one model glob is required (\"*\" for all)"));
    }
    for (j, m) in rule.models.iter().enumerate() {
        let path = format!("access[{i}].models[{j}]");
        if m.is_empty() {
            return Err(ConfigError::new(path, "must not be empty"));
        }
        if m.contains('?') {
            return Err(ConfigError::new(path, "'?' is not supported in access model globs; use '*'"));
        }
    }
    for (j, u) in rule.upstreams.iter().enumerate() {
        if !config.upstreams.iter().any(|x| x.name == *u) {
            return Err(ConfigError::new(
                format!("access[{i}].upstreams[{j}]"),
                format!("no upstream is named \"{u}\""),
            ));
        }
    }
    for (j, s) in rule.source_ips.iter().enumerate() {
        parse_cidr(s).map_err(|m| ConfigError::new(format!("access[{i}].source_ips[{j}]"), m))?;
    }
    for (j, d) in rule.detected.iter().enumerate() {
        let ok = is_entity_pattern(d) && (!d.ends_with('*') || d == "*" || d.ends_with("_*"));
        if !ok {
            return Err(ConfigError::new(
                format!("access[{i}].detected[{j}]"),
                format!("\"{d}\" is not an entity type or glob (EMAIL, SECRET_AWS_ACCESS_KEY, SECRET_*, *)"),
            ));
        }
    }
    if rule.effect == Effect::Deny && rule.has_obligations() {
        let key = if rule.mask.is_some() {
            "mask"
        } else if rule.require_approval.is_some() {
            "require_approval"
        } else if rule.recording.is_some() {
            "recording"
        } else {
            "durability"
        };
        return Err(ConfigError::new(at(key), "a deny rule cannot carry obligations"));
    }
    if let Some(m) = &rule.mask
        && config.masking.profile(m).is_none()
    {
        return Err(ConfigError::new(
            at("mask"),
            format!("no masking profile \"{m}\" (known: {})", config.masking.profile_names().join(", ")),
        ));
    }
    if let Some(a) = &rule.require_approval {
        a.check().map_err(|(key, m)| ConfigError::new(format!("access[{i}].require_approval.{key}"), m))?;
    }
    Ok(())
}
