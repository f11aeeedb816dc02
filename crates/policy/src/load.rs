//! Loading: compile `[[access]]`, read raw `.cedar` files, check annotations, validate against
//! the schema, slice, and hash the version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint, Schema, ValidationMode, Validator,
};
use config::{ApprovalConfig, ApprovalMode, Config, Durability, GrantKind, MaskingConfig, Recording};
use protocols::Action;
use sha2::{Digest, Sha256};

use crate::compile::{Prefilter, compile_rule};
use crate::family::{Family, is_sensitive};
use crate::obligations::{MaskDirections, PolicyObligations, ProfileSummary};
use crate::schema::SCHEMA;

/// Why a policy set could not be loaded: every problem found, each naming where
/// (`file:line:col: problem` or `access[N]: problem`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .messages.join("\n"))]
pub struct PolicyError {
    messages: Vec<String>,
}

impl PolicyError {
    /// Every problem found, in order.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    fn one(message: String) -> PolicyError {
        PolicyError { messages: vec![message] }
    }
}

/// Policies sliced by principal: per action (`Action::ALL` index), the indices into
/// `Policies::items` of the policies that can apply to it.
pub(crate) type Slices = Vec<Vec<u32>>;

/// One Cedar policy with what a decision needs to know about it.
#[derive(Debug)]
pub(crate) struct Item {
    pub policy: Policy,
    pub meta: Meta,
    /// For compiled rules, their conditions checked natively before Cedar evaluates the policy.
    pub filter: Option<Prefilter>,
    /// The slice the policy sits in implies its scope (principal, action, resource) holds, so a
    /// decision evaluates only its `when`/`unless` conditions.
    pub scope_implied: bool,
    /// `scope_implied` and without conditions: being a candidate means it holds, so a decision
    /// whose candidates are all like this builds no Cedar request at all.
    pub unconditional: bool,
    /// A permit with an unconstrained action scope (kept out of the sensitive families).
    pub any_action_permit: bool,
}

/// What a decision needs to know about one Cedar policy.
#[derive(Debug)]
pub(crate) struct Meta {
    /// The id decisions report: `@rule`, else the Cedar id.
    pub reported: Arc<str>,
    /// A `forbid`.
    pub forbid: bool,
    /// Its obligations.
    pub obligations: PolicyObligations,
}

/// Cedar entity type names, parsed once.
#[derive(Debug)]
pub(crate) struct Types {
    pub user: EntityTypeName,
    pub service: EntityTypeName,
    pub group: EntityTypeName,
    pub model: EntityTypeName,
    pub upstream: EntityTypeName,
}

/// A loaded, validated policy set, ready to decide. Immutable once built; share it (e.g. in an
/// `Arc`) between threads.
#[derive(Debug)]
pub struct Policies {
    pub(crate) version: Arc<str>,
    /// `sha256:<hex>` of each `[policy] files` entry's content, in order.
    pub(crate) file_digests: Vec<String>,
    pub(crate) needs_detection: bool,
    pub(crate) source: String,
    pub(crate) items: Vec<Item>,
    /// Cedar id → index into `items`.
    pub(crate) by_id: HashMap<String, u32>,
    pub(crate) any: Slices,
    pub(crate) groups: HashMap<String, Slices>,
    pub(crate) users: HashMap<String, Slices>,
    pub(crate) services: HashMap<String, Slices>,
    /// Direct parents of each group (`[policy] group_parents`).
    pub(crate) parents: HashMap<String, Vec<EntityUid>>,
    /// Proper ancestors of each group with parents, transitively.
    pub(crate) ancestors: HashMap<String, Vec<String>>,
    pub(crate) profiles: BTreeMap<String, ProfileSummary>,
    /// Every policy in one set: plain Cedar, for comparison.
    pub(crate) all: PolicySet,
    pub(crate) types: Types,
    /// Evaluation-side (cedar-policy-core) entities, built once.
    pub(crate) core: crate::decide::CoreParts,
    /// `Action::"<name>"` per `Action::ALL` index, for plain Cedar and (through `as_ref`, the
    /// form they wrap) for the sliced evaluator.
    pub(crate) action_uids: Vec<EntityUid>,
    /// The action entity (parent: its family group) per `Action::ALL` index, for both as above.
    pub(crate) action_entities: Vec<Entity>,
    /// The family action group entity per family index (`unknown` has none).
    pub(crate) family_entities: Vec<Option<Entity>>,
    pub(crate) authorizer: Authorizer,
}

/// Where a policy came from, for messages.
#[derive(Clone, Debug)]
enum Origin {
    /// An `[[access]]` rule (`access[3]`).
    Rule(String),
    /// A raw file: its name as configured, its text, and the policy's byte offset in it.
    File { name: Arc<str>, text: Arc<str>, offset: usize },
}

impl Origin {
    /// `access[3]` or `file:line:col` at `at` bytes into the policy (or the file, when absolute).
    fn at(&self, at: Option<usize>) -> String {
        match self {
            Origin::Rule(r) => r.clone(),
            Origin::File { name, text, offset } => {
                let (line, col) = line_col(text, at.unwrap_or(*offset));
                format!("{name}:{line}:{col}")
            }
        }
    }

    fn describe(&self) -> String {
        self.at(None)
    }
}

struct Entry {
    policy: Policy,
    origin: Origin,
    filter: Option<Prefilter>,
}

const KNOWN_ANNOTATIONS: [&str; 13] = [
    "id",
    "rule",
    "description",
    "mask",
    "recording",
    "durability",
    "approval",
    "approval_count",
    "approval_grant",
    "approval_ttl",
    "approval_pending_ttl",
    "approval_mode",
    "approval_hold_timeout",
];

impl Policies {
    /// Compiles `config`'s `[[access]]` rules, reads its `[policy] files` (relative paths from
    /// `base_dir`, the config file's directory), checks annotations and validates everything
    /// against [`SCHEMA`]. On failure, every problem found is reported.
    pub fn load(config: &Config, base_dir: &Path) -> Result<Policies, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::one(format!("schema: {e}")))?;
        let mut errors: Vec<String> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();

        let embedded = config.access.is_empty() && config.policy.files.is_empty();
        let mut compiled_text = String::new();
        for (i, rule) in config.effective_access().iter().enumerate() {
            let origin = if embedded { "embedded default rule".to_string() } else { format!("access[{i}]") };
            for c in compile_rule(i, rule, &origin) {
                compiled_text.push_str(&c.text);
                compiled_text.push('\n');
                match Policy::parse(Some(PolicyId::new(&c.id)), &c.text) {
                    Ok(p) => entries.push(Entry { policy: p, origin: Origin::Rule(c.origin), filter: Some(c.filter) }),
                    Err(e) => errors.push(format!("{}: {}", c.origin, diagnostic_text(&e))),
                }
            }
        }

        let mut files: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        for path in &config.policy.files {
            let name: Arc<str> = path.display().to_string().into();
            let full = base_dir.join(path);
            let text: Arc<str> = match std::fs::read_to_string(&full) {
                Ok(t) => t.into(),
                Err(e) => {
                    errors.push(format!("{name}: cannot read {}: {e}", full.display()));
                    continue;
                }
            };
            files.push((name.clone(), text.clone()));
            read_file(&name, &text, &mut entries, &mut errors);
        }

        // Ids must be unique across rules and files.
        let mut seen: HashMap<String, Origin> = HashMap::new();
        let mut unique: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            let id = e.policy.id().to_string();
            if let Some(other) = seen.get(&id) {
                errors.push(format!(
                    "{}: duplicate policy id \"{id}\" (also {})",
                    e.origin.describe(),
                    other.describe()
                ));
                continue;
            }
            seen.insert(id, e.origin.clone());
            unique.push(e);
        }

        let mut metas: Vec<Meta> = Vec::with_capacity(unique.len());
        for e in &unique {
            match read_annotations(&e.policy, &config.masking) {
                Ok(m) => metas.push(m),
                Err((key, msg)) => {
                    let at = match &e.origin {
                        Origin::File { text, offset, .. } => annotation_offset(text, *offset, &e.policy, &key),
                        Origin::Rule(_) => None,
                    };
                    errors.push(format!("{}: {msg}", e.origin.at(at)));
                }
            }
        }

        let all = match PolicySet::from_policies(unique.iter().map(|e| e.policy.clone())) {
            Ok(s) => s,
            Err(e) => return Err(PolicyError::one(format!("policy set: {e}"))),
        };
        let origins: HashMap<String, &Origin> = unique.iter().map(|e| (e.policy.id().to_string(), &e.origin)).collect();
        let validation = Validator::new(schema).validate(&all, ValidationMode::Strict);
        for v in validation.validation_errors() {
            let origin = origins.get(AsRef::<str>::as_ref(v.policy_id()));
            let offset = first_label(v);
            let at = match origin {
                Some(o @ Origin::File { .. }) => o.at(offset),
                Some(o) => o.describe(),
                None => v.policy_id().to_string(),
            };
            errors.push(format!("{at}: {}", diagnostic_text(v)));
        }
        for (g, _) in config.policy.group_parents.iter() {
            if reaches(g, g, &config.policy.group_parents) {
                errors.push(format!("policy.group_parents.{g}: group inheritance has a cycle through \"{g}\""));
            }
        }
        if !errors.is_empty() {
            return Err(PolicyError { messages: dedup(errors) });
        }

        let types = Types {
            user: type_name("User")?,
            service: type_name("ServiceAccount")?,
            group: type_name("Group")?,
            model: type_name("Model")?,
            upstream: type_name("Upstream")?,
        };
        let action_type = type_name("Action")?;
        let action_uid = |name: &str| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(name));
        let family_entities: Vec<Option<Entity>> = Family::ALL
            .iter()
            .map(|f| (*f != Family::Unknown).then(|| Entity::with_uid(action_uid(f.as_str()))))
            .collect();
        let action_uids: Vec<EntityUid> = Action::ALL.iter().map(|a| action_uid(a.as_str())).collect();
        let action_entities: Vec<Entity> = Action::ALL
            .iter()
            .map(|a| {
                let f = a.family();
                let parents = if f == Family::Unknown { Default::default() } else { [action_uid(f.as_str())].into() };
                Entity::new_no_attrs(action_uid(a.as_str()), parents)
            })
            .collect();

        let mut sliced = Sliced::default();
        let mut needs_detection = false;
        let mut group_literals = false;
        let mut source = String::new();
        let mut items: Vec<Item> = Vec::with_capacity(unique.len());
        for (index, (e, meta)) in unique.into_iter().zip(metas).enumerate() {
            let index = u32::try_from(index).map_err(|_| PolicyError::one("too many policies".into()))?;
            sliced.add(index, &e.policy, &types);
            let conditions = conditions_json(&e.policy);
            needs_detection |= conditions.contains("\"detected\"");
            group_literals |= conditions.contains("\"Group\"");
            source.push_str(&format!("// {}\n{}\n\n", e.origin.describe(), e.policy));
            let scope_implied = scope_implied(&e.policy, &types);
            let any_action_permit = !meta.forbid && matches!(e.policy.action_constraint(), ActionConstraint::Any);
            let unconditional = scope_implied && without_conditions(&e.policy);
            items.push(Item {
                policy: e.policy,
                meta,
                filter: e.filter,
                scope_implied,
                unconditional,
                any_action_permit,
            });
        }
        let by_id: HashMap<String, u32> =
            items.iter().zip(0u32..).map(|(item, i)| (item.policy.id().to_string(), i)).collect();

        let group_parents = &config.policy.group_parents;
        let parents: HashMap<String, Vec<EntityUid>> = group_parents
            .iter()
            .map(|(g, ps)| {
                let uids = ps
                    .iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .map(|p| EntityUid::from_type_name_and_id(types.group.clone(), EntityId::new(p)))
                    .collect();
                (g.clone(), uids)
            })
            .collect();
        let ancestors: HashMap<String, Vec<String>> =
            group_parents.keys().map(|g| (g.clone(), ancestors_of(g, group_parents))).collect();

        let mut profiles: BTreeMap<String, ProfileSummary> = BTreeMap::new();
        for name in config.masking.profile_names() {
            if let Some(p) = config.masking.profile(name) {
                let directions = MaskDirections::of(&p.directions);
                profiles.insert(name.to_string(), ProfileSummary { entities: p.entities, mode: p.mode, directions });
            }
        }

        let core = crate::decide::CoreParts::new(&ancestors, group_literals)
            .map_err(|e| PolicyError::one(format!("cedar: {e}")))?;
        let version = version(&compiled_text, &files, config);
        let file_digests = files.iter().map(|(_, text)| sha256_hex(text.as_bytes())).collect();
        Ok(Policies {
            version,
            file_digests,
            needs_detection,
            source,
            items,
            by_id,
            any: sliced.any.0,
            groups: sliced.groups.into_iter().map(|(k, b)| (k, b.0)).collect(),
            users: sliced.users.into_iter().map(|(k, b)| (k, b.0)).collect(),
            services: sliced.services.into_iter().map(|(k, b)| (k, b.0)).collect(),
            parents,
            ancestors,
            profiles,
            core,
            all,
            types,
            action_uids,
            action_entities,
            family_entities,
            authorizer: Authorizer::new(),
        })
    }

    /// The version of this policy set: `sha256:<hex>` over the schema, the compiled rules, each
    /// file's name and text, group inheritance and masking profiles.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// `sha256:<hex>` of the content of each `[policy] files` entry, in the config's order, as
    /// read for this policy set.
    pub fn file_digests(&self) -> &[String] {
        &self.file_digests
    }

    /// The number of Cedar policies.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is no policy (every call is denied).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when some policy reads `context.detected`, so detection must run before deciding.
    pub fn needs_detection(&self) -> bool {
        self.needs_detection
    }

    /// Every policy as Cedar text, each preceded by a comment naming where it came from.
    pub fn source(&self) -> String {
        self.source.clone()
    }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    EntityTypeName::from_str(name).map_err(|e| PolicyError::one(format!("entity type {name}: {e}")))
}

/// Parses one raw file into entries (ids from `@id`, else `<name>#<index>`).
fn read_file(name: &Arc<str>, text: &Arc<str>, entries: &mut Vec<Entry>, errors: &mut Vec<String>) {
    let set = match PolicySet::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            for pe in e.iter() {
                let at = first_label(pe).unwrap_or(0);
                let (line, col) = line_col(text, at);
                errors.push(format!("{name}:{line}:{col}: {}", diagnostic_text(pe)));
            }
            return;
        }
    };
    let order = |id: &PolicyId| AsRef::<str>::as_ref(id).strip_prefix("policy").and_then(|n| n.parse::<usize>().ok());
    let mut templates: Vec<_> = set.templates().collect();
    templates.sort_by_key(|t| order(t.id()));
    for t in templates {
        let src = t.to_string();
        let at = text.find(src.as_str()).unwrap_or(0);
        let (line, col) = line_col(text, at);
        errors
            .push(format!("{name}:{line}:{col}: templates (policies with ?principal or ?resource) are not supported"));
    }
    let mut policies: Vec<&Policy> = set.policies().collect();
    policies.sort_by_key(|p| order(p.id()));
    let mut cursor = 0;
    for (k, p) in policies.into_iter().enumerate() {
        let src = p.to_string();
        let offset = match text.get(cursor..).and_then(|rest| rest.find(src.as_str())) {
            Some(o) => {
                cursor += o + src.len();
                cursor - src.len()
            }
            None => cursor,
        };
        let id = match p.annotation("id") {
            Some(id) => id.to_string(),
            None => format!("{name}#{k}"),
        };
        let origin = Origin::File { name: name.clone(), text: text.clone(), offset };
        if id.trim().is_empty() {
            let at = annotation_offset(text, offset, p, "id");
            errors.push(format!("{}: @id must not be empty", origin.at(at)));
            continue;
        }
        entries.push(Entry { policy: p.new_id(PolicyId::new(&id)), origin, filter: None });
    }
}

/// Reads a policy's annotations: the reported id and its obligations. An error names the
/// annotation key.
fn read_annotations(p: &Policy, masking: &MaskingConfig) -> Result<Meta, (String, String)> {
    let mut rule: Option<String> = None;
    let mut o = PolicyObligations::default();
    let mut approval_keys: Vec<(&str, &str)> = Vec::new();
    let mut first_obligation: Option<&str> = None;
    for (key, value) in p.annotations() {
        let err = |msg: String| Err((key.to_string(), format!("@{key}({value:?}): {msg}")));
        if key.starts_with("x_") {
            continue;
        }
        if !KNOWN_ANNOTATIONS.contains(&key) {
            return Err((
                key.to_string(),
                format!(
                    "unknown annotation @{key} (known: {}; own annotations start with x_)",
                    KNOWN_ANNOTATIONS.map(|k| format!("@{k}")).join(", ")
                ),
            ));
        }
        if !matches!(key, "id" | "rule" | "description") && first_obligation.is_none() {
            first_obligation = Some(key);
        }
        match key {
            "id" | "description" => {}
            "rule" => {
                if value.trim().is_empty() {
                    return err("must not be empty".into());
                }
                rule = Some(value.to_string());
            }
            "mask" => {
                if masking.profile(value).is_none() {
                    return err(format!(
                        "no masking profile \"{value}\" (known: {})",
                        masking.profile_names().join(", ")
                    ));
                }
                o.mask = Some(value.to_string());
            }
            "recording" => match Recording::from_name(value) {
                Some(r) => o.recording = Some(r),
                None => return err("expected full or metadata".into()),
            },
            "durability" => match Durability::from_name(value) {
                Some(d) => o.durability = Some(d),
                None => return err("expected strict, balanced or async".into()),
            },
            _ => approval_keys.push((key, value)),
        }
    }
    if !approval_keys.is_empty() {
        o.approval = Some(read_approval(&approval_keys)?);
    }
    let forbid = p.effect() == cedar_policy::Effect::Forbid;
    if forbid && let Some(key) = first_obligation {
        return Err((key.to_string(), format!("@{key}: a forbid policy cannot carry obligations")));
    }
    let reported: Arc<str> = rule.unwrap_or_else(|| p.id().to_string()).into();
    Ok(Meta { reported, forbid, obligations: o })
}

fn read_approval(keys: &[(&str, &str)]) -> Result<ApprovalConfig, (String, String)> {
    let Some((_, approvers)) = keys.iter().find(|(k, _)| *k == "approval") else {
        let (k, _) = keys[0];
        return Err((k.to_string(), format!("@{k} needs @approval (the approver groups)")));
    };
    let mut a =
        ApprovalConfig::new(approvers.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect());
    for (key, value) in keys {
        let err = |msg: &str| Err((key.to_string(), format!("@{key}({value:?}): {msg}")));
        let duration = || config::parse_duration(value);
        match *key {
            "approval_count" => match value.trim().parse::<u32>() {
                Ok(n) => a.count = n,
                Err(_) => return err("expected a number"),
            },
            "approval_grant" => match GrantKind::from_name(value) {
                Some(g) => a.grant = g,
                None => return err("expected request or window"),
            },
            "approval_mode" => match ApprovalMode::from_name(value) {
                Some(m) => a.mode = m,
                None => return err("expected hold or ticket"),
            },
            "approval_ttl" => match duration() {
                Ok(d) => a.ttl = Some(d),
                Err(m) => return err(&m),
            },
            "approval_pending_ttl" => match duration() {
                Ok(d) => a.pending_ttl = d,
                Err(m) => return err(&m),
            },
            "approval_hold_timeout" => match duration() {
                Ok(d) => a.hold_timeout = d,
                Err(m) => return err(&m),
            },
            _ => {}
        }
    }
    a.check().map_err(|(k, m)| {
        let key = if k == "approvers" { "approval".to_string() } else { format!("approval_{k}") };
        (key.clone(), format!("@{key}: {m}"))
    })?;
    Ok(a)
}

/// Byte offset of `@key` in the policy's text, for messages.
fn annotation_offset(text: &str, offset: usize, p: &Policy, key: &str) -> Option<usize> {
    let src = p.to_string();
    let needle = format!("@{key}");
    let mut from = 0;
    while let Some(i) = src.get(from..)?.find(&needle) {
        let at = from + i;
        let next = src.get(at + needle.len()..)?.chars().next();
        if !next.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return text.get(offset..).map(|_| offset + at);
        }
        from = at + needle.len();
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn first_label(d: &dyn miette::Diagnostic) -> Option<usize> {
    d.labels().and_then(|mut l| l.next()).map(|l| l.offset())
}

/// A diagnostic's message, its labels' texts and its help, on one line.
fn diagnostic_text(d: &dyn miette::Diagnostic) -> String {
    let mut s = d.to_string();
    if let Some(labels) = d.labels() {
        for l in labels {
            if let Some(t) = l.label()
                && !t.is_empty()
                && !s.contains(t)
            {
                s.push_str(&format!(": {t}"));
            }
        }
    }
    if let Some(h) = d.help() {
        s.push_str(&format!(" ({h})"));
    }
    s.replace('\n', " ")
}

/// The policy's `when`/`unless` conditions as JSON text, to look for what they mention:
/// `"detected"` (an attribute or a string: over-approximates `context.detected` in any spelling)
/// and `"Group"` (an entity literal of that type).
fn conditions_json(p: &Policy) -> String {
    match p.to_json() {
        Ok(v) => v.get("conditions").map(|c| c.to_string()).unwrap_or_default(),
        Err(_) => p.to_string(),
    }
}

/// True when `to` is a proper ancestor of `from`.
fn reaches(from: &str, to: &str, parents: &BTreeMap<String, Vec<String>>) -> bool {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = vec![from];
    while let Some(g) = stack.pop() {
        for p in parents.get(g).map(Vec::as_slice).unwrap_or(&[]) {
            if p == to {
                return true;
            }
            if seen.insert(p) {
                stack.push(p);
            }
        }
    }
    false
}

/// Drops repeats: the validator reports some problems once per action a policy applies to
/// (`… in context for Action::"model.pull"`); one per place is enough.
fn dedup(messages: Vec<String>) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let m = without_action(&m);
        if seen.insert(m.clone()) {
            out.push(m);
        }
    }
    out
}

fn without_action(m: &str) -> String {
    const MARK: &str = " for Action::\"";
    match m.find(MARK) {
        Some(i) => match m[i + MARK.len()..].find('"') {
            Some(j) => format!("{}{}", &m[..i], &m[i + MARK.len() + j + 1..]),
            None => m.to_string(),
        },
        None => m.to_string(),
    }
}

fn ancestors_of(group: &str, parents: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<&str> = vec![group];
    while let Some(g) = stack.pop() {
        for p in parents.get(g).map(Vec::as_slice).unwrap_or(&[]) {
            if p != group && out.insert(p.clone()) {
                stack.push(p);
            }
        }
    }
    out.into_iter().collect()
}

fn version(compiled: &str, files: &[(Arc<str>, Arc<str>)], config: &Config) -> Arc<str> {
    let mut h = Sha256::new();
    let mut feed = |tag: &str, s: &str| {
        h.update(tag.as_bytes());
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    feed("schema", SCHEMA);
    feed("access", compiled);
    for (name, text) in files {
        feed("file", name);
        feed("text", text);
    }
    for (g, ps) in &config.policy.group_parents {
        feed("group", g);
        for p in ps {
            feed("parent", p);
        }
    }
    for (name, p) in &config.masking.profiles {
        feed("profile", name);
        for e in &p.entities {
            feed("entity", e);
        }
        feed("mode", p.mode.as_str());
        for d in &p.directions {
            feed("direction", d.as_str());
        }
    }
    hex_digest(&h.finalize()).into()
}

/// `sha256:<hex>` of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(&Sha256::digest(bytes))
}

fn hex_digest(digest: &[u8]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Policies being sorted into slices.
#[derive(Default)]
struct Sliced {
    any: Bucket,
    groups: HashMap<String, Bucket>,
    users: HashMap<String, Bucket>,
    services: HashMap<String, Bucket>,
}

struct Bucket(Slices);

impl Default for Bucket {
    fn default() -> Self {
        Bucket(vec![Vec::new(); Action::ALL.len()])
    }
}

impl Sliced {
    /// Buckets a policy by its principal scope (a group, a user, a service account, or any) and
    /// files it under every action its action scope can cover.
    fn add(&mut self, index: u32, p: &Policy, types: &Types) {
        let covered = actions_covered(p);
        let uid = match p.principal_constraint() {
            PrincipalConstraint::In(u) | PrincipalConstraint::Eq(u) | PrincipalConstraint::IsIn(_, u) => Some(u),
            PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
        };
        let bucket = match uid {
            Some(u) if *u.type_name() == types.group => self.groups.entry(u.id().unescaped().to_string()).or_default(),
            Some(u) if *u.type_name() == types.user => self.users.entry(u.id().unescaped().to_string()).or_default(),
            Some(u) if *u.type_name() == types.service => {
                self.services.entry(u.id().unescaped().to_string()).or_default()
            }
            _ => &mut self.any,
        };
        for (slot, yes) in bucket.0.iter_mut().zip(covered) {
            if yes {
                slot.push(index);
            }
        }
    }
}

/// True when being in its slice makes a policy's scope hold: its principal scope is `principal`,
/// `in` a group, or `==`/`in` a user or service account (slices are keyed by exactly these), its
/// action scope is any form (slices are per action, following Cedar's `in` over the action
/// groups), and its resource scope is unconstrained.
fn scope_implied(p: &Policy, types: &Types) -> bool {
    let principal = match p.principal_constraint() {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::In(u) => {
            let t = u.type_name();
            *t == types.group || *t == types.user || *t == types.service
        }
        PrincipalConstraint::Eq(u) => {
            let t = u.type_name();
            *t == types.user || *t == types.service
        }
        PrincipalConstraint::Is(_) | PrincipalConstraint::IsIn(..) => false,
    };
    principal && matches!(p.resource_constraint(), cedar_policy::ResourceConstraint::Any)
}

/// True when a policy has no `when`/`unless` conditions (or only a literal `true`).
fn without_conditions(p: &Policy) -> bool {
    use cedar_policy_core::ast;
    let core: &ast::Policy = p.as_ref();
    core.non_scope_constraints().is_none_or(|e| matches!(e.expr_kind(), ast::ExprKind::Lit(ast::Literal::Bool(true))))
}

/// The actions (by `Action::ALL` index) a policy can apply to, from its action scope: a named
/// action, or every action of a named family group. An unconstrained scope covers every action
/// in a `forbid` but only the non-sensitive families in a `permit` (the default deny).
fn actions_covered(p: &Policy) -> Vec<bool> {
    let mut out = vec![false; Action::ALL.len()];
    let mut mark = |uid: &EntityUid, groups: bool| {
        let name = uid.id().unescaped();
        for (i, a) in Action::ALL.iter().enumerate() {
            if a.as_str() == name || (groups && a.family().as_str() == name && *a != Action::Unknown) {
                out[i] = true;
            }
        }
    };
    match p.action_constraint() {
        ActionConstraint::Any => {
            let forbid = p.effect() == cedar_policy::Effect::Forbid;
            for (i, a) in Action::ALL.iter().enumerate() {
                out[i] = forbid || !is_sensitive(a.family());
            }
        }
        ActionConstraint::Eq(u) => mark(&u, false),
        ActionConstraint::In(us) => us.iter().for_each(|u| mark(u, true)),
    }
    out
}
