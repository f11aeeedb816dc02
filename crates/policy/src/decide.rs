//! Deciding: evaluate the policies of the caller's slices and combine them per Cedar's semantics.
//!
//! Sliced decisions evaluate through cedar-policy-core's `Evaluator`, one policy at a time, over
//! entities built with their ancestors already closed (no transitive-closure pass, no
//! per-call response). `decide_unsliced` goes through the public `Authorizer` instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{Context, Entities, Entity, EntityId, EntityUid, Request, RestrictedExpression};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use protocols::Action;

use crate::family::is_sensitive;
use crate::load::{Meta, Policies};
use crate::obligations::{Obligations, merge};
use crate::{Decision, Effect, PrincipalKind, Query};

/// Entity types, uids and entities for the evaluation side, built once at load. The action
/// uids and entities are `Policies::action_uids` and `Policies::action_entities`, shared with
/// plain Cedar (their evaluation-side form is what those wrap).
#[derive(Debug)]
pub(crate) struct CoreParts {
    user: ast::EntityType,
    service: ast::EntityType,
    group: ast::EntityType,
    model: ast::EntityType,
    upstream: ast::EntityType,
    /// Uids of the groups with ancestors, and of those ancestors.
    group_uids: HashMap<String, ast::EntityUID>,
    /// Every known group's entity (with all its ancestors), only when some policy names a `Group`
    /// in its conditions: `principal in Group::"g"` needs only the principal's ancestors.
    group_entities: Option<HashMap<String, ast::Entity>>,
    /// The `ip` extension function's name.
    ip: ast::Name,
}

impl CoreParts {
    pub(crate) fn new(ancestors: &HashMap<String, Vec<String>>, group_literals: bool) -> Result<CoreParts, String> {
        let ty = |s: &str| ast::EntityType::from_str(s).map_err(|e| e.to_string());
        let group = ty("Group")?;
        let uid = |t: &ast::EntityType, id: &str| ast::EntityUID::from_components(t.clone(), ast::Eid::new(id), None);
        let mut group_uids: HashMap<String, ast::EntityUID> = HashMap::new();
        for (g, anc) in ancestors {
            for name in std::iter::once(g).chain(anc) {
                group_uids.entry(name.clone()).or_insert_with(|| uid(&group, name));
            }
        }
        let group_entities = group_literals.then(|| {
            group_uids
                .iter()
                .map(|(name, u)| {
                    let parents: HashSet<ast::EntityUID> =
                        ancestors.get(name).into_iter().flatten().filter_map(|a| group_uids.get(a).cloned()).collect();
                    (name.clone(), ast::Entity::new_with_attr_partial_value(u.clone(), [], HashSet::new(), parents, []))
                })
                .collect()
        });
        Ok(CoreParts {
            user: ty("User")?,
            service: ty("ServiceAccount")?,
            model: ty("Model")?,
            upstream: ty("Upstream")?,
            group,
            group_uids,
            group_entities,
            ip: ast::Name::parse_unqualified_name("ip").map_err(|e| e.to_string())?,
        })
    }

    fn group_uid(&self, name: &str) -> ast::EntityUID {
        match self.group_uids.get(name) {
            Some(u) => u.clone(),
            None => ast::EntityUID::from_components(self.group.clone(), ast::Eid::new(name), None),
        }
    }
}

impl Policies {
    /// Decides one query. Pure and lock-free: evaluates only the policies that can apply (those
    /// for any principal, for the caller's groups and their ancestors, for the caller's subject)
    /// to the action, skipping compiled rules whose conditions certainly fail.
    pub fn decide(&self, q: &Query<'_>) -> Decision {
        let action = action_index(q.action);
        let closure = self.closure(q.groups);
        let model = q.model.unwrap_or("");
        let upstream = q.upstream.unwrap_or("");
        let mut candidates: Vec<u32> = Vec::new();
        let mut take = |slices: &Vec<Vec<u32>>| {
            for &i in slices.get(action).map(Vec::as_slice).unwrap_or(&[]) {
                let fits = match self.items.get(i as usize).and_then(|it| it.filter.as_ref()) {
                    Some(f) => f.may_apply(model, upstream, q.src_ip, q.detected),
                    None => true,
                };
                if fits {
                    candidates.push(i);
                }
            }
        };
        take(&self.any);
        for g in &closure {
            if let Some(slices) = self.groups.get(*g) {
                take(slices);
            }
        }
        let subjects = match q.kind {
            PrincipalKind::User => &self.users,
            PrincipalKind::Service => &self.services,
        };
        if let Some(slices) = subjects.get(q.subject) {
            take(slices);
        }
        if candidates.is_empty() {
            return self.finish(Vec::new(), Vec::new(), Vec::new());
        }
        let mut forbids: Vec<&Meta> = Vec::new();
        let mut permits: Vec<&Meta> = Vec::new();
        // Candidates that hold by being in the caller's slices are decided without Cedar; the
        // request and its entities (the costly part) are built only for the others.
        candidates.retain(|&i| match self.items.get(i as usize) {
            Some(item) if item.unconditional => {
                if item.meta.forbid {
                    forbids.push(&item.meta)
                } else {
                    permits.push(&item.meta)
                }
                false
            }
            _ => true,
        });
        if candidates.is_empty() {
            return self.finish(forbids, permits, Vec::new());
        }
        let (request, entities) = match self.core_request(q, action, &closure) {
            Ok(r) => r,
            Err(e) => return self.failed(e),
        };
        let evaluator = Evaluator::new(request, &entities, Extensions::all_available());
        let mut errors: Vec<String> = Vec::new();
        for i in candidates {
            let Some(item) = self.items.get(i as usize) else { continue };
            let policy: &ast::Policy = item.policy.as_ref();
            let satisfied = if item.scope_implied {
                match policy.non_scope_constraints() {
                    Some(conditions) => match evaluator.interpret(conditions, policy.env()) {
                        Ok(ast::Value { value: ast::ValueKind::Lit(ast::Literal::Bool(b)), .. }) => Ok(b),
                        Ok(v) => Err(format!("type error: expected a boolean condition, got {v}")),
                        Err(e) => Err(e.to_string()),
                    },
                    None => Ok(true),
                }
            } else {
                evaluator.evaluate(policy).map_err(|e| e.to_string())
            };
            match satisfied {
                Ok(true) if item.meta.forbid => forbids.push(&item.meta),
                Ok(true) => permits.push(&item.meta),
                Ok(false) => {}
                Err(e) => errors.push(format!("error while evaluating policy `{}`: {e}", item.policy.id())),
            }
        }
        self.finish(forbids, permits, errors)
    }

    /// Plain Cedar through the public `Authorizer`: every policy in one set, no slicing, no
    /// prefilter; then the default deny for sensitive families is applied to its result (permits
    /// with an unconstrained action scope are dropped). Must equal [`Policies::decide`]; for
    /// benchmarks and equivalence tests only.
    #[doc(hidden)]
    pub fn decide_unsliced(&self, q: &Query<'_>) -> Decision {
        let sensitive = is_sensitive(q.action.family());
        let closure = self.closure(q.groups);
        let (request, entities) = match self.request(q, &closure) {
            Ok(r) => r,
            Err(e) => return self.failed(e),
        };
        let response = self.authorizer.is_authorized(&request, &self.all, &entities);
        let diagnostics = response.diagnostics();
        let mut forbids: Vec<&Meta> = Vec::new();
        let mut permits: Vec<&Meta> = Vec::new();
        for id in diagnostics.reason() {
            let item = self.by_id.get(AsRef::<str>::as_ref(id)).and_then(|i| self.items.get(*i as usize));
            match item {
                Some(item) if item.meta.forbid => forbids.push(&item.meta),
                Some(item) if !(sensitive && item.any_action_permit) => permits.push(&item.meta),
                _ => {}
            }
        }
        let errors = diagnostics.errors().map(|e| e.to_string()).collect();
        self.finish(forbids, permits, errors)
    }

    fn failed(&self, error: String) -> Decision {
        let mut d = self.finish(Vec::new(), Vec::new(), vec![error]);
        d.reason = Some("policy evaluation failed".into());
        d
    }

    /// The caller's groups and their ancestors, without duplicates.
    fn closure<'a>(&'a self, groups: &'a [String]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::with_capacity(groups.len() * 2);
        for g in groups {
            if !out.contains(&g.as_str()) {
                out.push(g);
            }
            if let Some(anc) = self.ancestors.get(g.as_str()) {
                for a in anc {
                    if !out.contains(&a.as_str()) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// Combines satisfied forbids and permits: forbid > approval > allow; nothing → deny.
    fn finish(&self, forbids: Vec<&Meta>, permits: Vec<&Meta>, errors: Vec<String>) -> Decision {
        let ids = |ms: &[&Meta]| -> Vec<Arc<str>> {
            let set: BTreeSet<&Arc<str>> = ms.iter().map(|m| &m.reported).collect();
            set.into_iter().cloned().collect()
        };
        let version = self.version.clone();
        if !forbids.is_empty() {
            let policies = ids(&forbids);
            let reason = format!("denied by {}", policies.iter().map(|p| &**p).collect::<Vec<_>>().join(", "));
            return Decision {
                effect: Effect::Deny,
                policies,
                obligations: Obligations::default(),
                version,
                errors,
                reason: Some(reason),
            };
        }
        if permits.is_empty() {
            return Decision {
                effect: Effect::Deny,
                policies: Vec::new(),
                obligations: Obligations::default(),
                version,
                errors,
                reason: Some("no rule allows this".into()),
            };
        }
        let obligations = merge(permits.iter().map(|m| (&m.reported, &m.obligations)), &self.profiles);
        let (effect, reason) = if obligations.approval.is_empty() {
            (Effect::Allow, None)
        } else {
            let by: BTreeSet<&str> = obligations.approval.iter().map(|a| &*a.policy).collect();
            (
                Effect::RequireApproval,
                Some(format!("approval required by {}", by.into_iter().collect::<Vec<_>>().join(", "))),
            )
        };
        Decision { effect, policies: ids(&permits), obligations, version, errors, reason }
    }

    /// The evaluation-side request and entities: the principal (its groups and their ancestors
    /// as ancestors), the model (in its upstream), the action (in its family group), and every
    /// known group when a policy names one in its conditions.
    fn core_request(
        &self,
        q: &Query<'_>,
        action: usize,
        closure: &[&str],
    ) -> Result<(ast::Request, CoreEntities), String> {
        let c = &self.core;
        let principal_type = match q.kind {
            PrincipalKind::User => &c.user,
            PrincipalKind::Service => &c.service,
        };
        let principal = ast::EntityUID::from_components(principal_type.clone(), ast::Eid::new(q.subject), None);
        let mut entities: Vec<ast::Entity> = Vec::with_capacity(closure.len() + 3);
        let ancestors: HashSet<ast::EntityUID> = closure.iter().map(|g| c.group_uid(g)).collect();
        entities.push(ast::Entity::new_with_attr_partial_value(principal.clone(), [], HashSet::new(), ancestors, []));
        if let Some(groups) = &c.group_entities {
            entities.extend(groups.values().cloned());
            for g in closure.iter().filter(|g| !groups.contains_key(**g)) {
                entities.push(ast::Entity::new_with_attr_partial_value(
                    c.group_uid(g),
                    [],
                    HashSet::new(),
                    HashSet::new(),
                    [],
                ));
            }
        }
        let model = q.model.unwrap_or("");
        let upstream = q.upstream.unwrap_or("");
        let model_uid = ast::EntityUID::from_components(c.model.clone(), ast::Eid::new(model), None);
        let upstream_uid = ast::EntityUID::from_components(c.upstream.clone(), ast::Eid::new(upstream), None);
        let attrs = [
            ("name".into(), ast::PartialValue::Value(ast::Value::from(model))),
            ("upstream".into(), ast::PartialValue::Value(ast::Value::from(upstream))),
        ];
        entities.push(ast::Entity::new_with_attr_partial_value(
            model_uid.clone(),
            attrs,
            HashSet::new(),
            HashSet::from([upstream_uid]),
            [],
        ));
        let action_uid = self.action_uids.get(action).map(|u| u.as_ref().clone()).ok_or("unknown action")?;
        if let Some(a) = self.action_entities.get(action) {
            entities.push(a.as_ref().clone());
        }
        let extensions = Extensions::all_available();
        let entities = CoreEntities::from_entities(
            entities,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            extensions,
        )
        .map_err(|e| e.to_string())?;

        let (secs, hour, weekday) = clock(q.time);
        let mut ctx: BTreeMap<_, ast::Value> = BTreeMap::new();
        ctx.insert("time".into(), ast::Value::from(secs));
        ctx.insert("hour".into(), ast::Value::from(hour));
        ctx.insert("weekday".into(), ast::Value::from(weekday));
        ctx.insert("auth_method".into(), ast::Value::from(q.auth_method));
        ctx.insert("stream".into(), ast::Value::from(q.stream));
        ctx.insert(
            "detected".into(),
            ast::Value::set(detected_set(q.detected).into_iter().map(ast::Value::from), None),
        );
        if let Some(ip) = q.src_ip {
            let f = extensions.func(&c.ip).map_err(|e| e.to_string())?;
            match f.call(&[ast::Value::from(ip.to_canonical().to_string())]).map_err(|e| e.to_string())? {
                ast::PartialValue::Value(v) => {
                    ctx.insert("src_ip".into(), v);
                }
                ast::PartialValue::Residual(_) => return Err("ip() gave no value".into()),
            }
        }
        if let Some(n) = q.max_tokens {
            ctx.insert("max_tokens".into(), ast::Value::from(i64::try_from(n).unwrap_or(i64::MAX)));
        }
        let request = ast::Request::new_unchecked(
            ast::EntityUIDEntry::known(principal, None),
            ast::EntityUIDEntry::known(action_uid, None),
            ast::EntityUIDEntry::known(model_uid, None),
            Some(ast::Context::Value(Arc::new(ctx))),
        );
        Ok((request, entities))
    }

    /// The Cedar request and the entities it needs: principal, its groups, the model and its
    /// upstream, the action and its family group.
    fn request(&self, q: &Query<'_>, closure: &[&str]) -> Result<(Request, Entities), String> {
        let t = &self.types;
        let group = |g: &str| EntityUid::from_type_name_and_id(t.group.clone(), EntityId::new(g));
        let principal_type = match q.kind {
            PrincipalKind::User => &t.user,
            PrincipalKind::Service => &t.service,
        };
        let principal = EntityUid::from_type_name_and_id(principal_type.clone(), EntityId::new(q.subject));
        let mut entities: Vec<Entity> = Vec::with_capacity(closure.len() + 5);
        let direct: HashSet<EntityUid> = q.groups.iter().map(|g| group(g)).collect();
        entities.push(Entity::new_no_attrs(principal.clone(), direct));
        // Every group with parents, so that group literals in conditions see the hierarchy.
        let known = self.parents.keys().map(String::as_str).filter(|g| !closure.contains(g));
        for g in closure.iter().copied().chain(known) {
            let parents: HashSet<EntityUid> =
                self.parents.get(g).map(|p| p.iter().cloned().collect()).unwrap_or_default();
            entities.push(Entity::new_no_attrs(group(g), parents));
        }
        let model = q.model.unwrap_or("");
        let upstream = q.upstream.unwrap_or("");
        let upstream_uid = EntityUid::from_type_name_and_id(t.upstream.clone(), EntityId::new(upstream));
        let model_uid = EntityUid::from_type_name_and_id(t.model.clone(), EntityId::new(model));
        let attrs = HashMap::from([
            ("name".to_string(), RestrictedExpression::new_string(model.to_string())),
            ("upstream".to_string(), RestrictedExpression::new_string(upstream.to_string())),
        ]);
        entities.push(
            Entity::new(model_uid.clone(), attrs, HashSet::from([upstream_uid.clone()])).map_err(|e| e.to_string())?,
        );
        entities.push(Entity::new_no_attrs(upstream_uid, HashSet::new()));
        let action_index = action_index(q.action);
        if let Some(a) = self.action_entities.get(action_index) {
            entities.push(a.clone());
        }
        if let Some(Some(f)) = self.family_entities.get(q.action.family() as usize) {
            entities.push(f.clone());
        }
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;

        let (secs, hour, weekday) = clock(q.time);
        let mut pairs: Vec<(String, RestrictedExpression)> = vec![
            ("time".into(), RestrictedExpression::new_long(secs)),
            ("hour".into(), RestrictedExpression::new_long(hour)),
            ("weekday".into(), RestrictedExpression::new_long(weekday)),
            ("auth_method".into(), RestrictedExpression::new_string(q.auth_method.to_string())),
            ("stream".into(), RestrictedExpression::new_bool(q.stream)),
            (
                "detected".into(),
                RestrictedExpression::new_set(
                    detected_set(q.detected).into_iter().map(RestrictedExpression::new_string),
                ),
            ),
        ];
        if let Some(ip) = q.src_ip {
            pairs.push(("src_ip".into(), RestrictedExpression::new_ip(ip.to_canonical().to_string())));
        }
        if let Some(n) = q.max_tokens {
            pairs.push(("max_tokens".into(), RestrictedExpression::new_long(i64::try_from(n).unwrap_or(i64::MAX))));
        }
        let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
        let action = self.action_uids.get(action_index).cloned().ok_or("unknown action")?;
        let request = Request::new(principal, action, model_uid, context, None).map_err(|e| e.to_string())?;
        Ok((request, entities))
    }
}

/// The action's index in `Action::ALL`.
fn action_index(action: Action) -> usize {
    // `Action::ALL` lists the actions in declaration order (a protocols test holds it to that).
    action as usize
}

/// Unix seconds, hour of day (UTC) and weekday (0 = Monday).
fn clock(time: SystemTime) -> (i64, i64, i64) {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    (secs, secs.rem_euclid(86_400) / 3600, (secs.div_euclid(86_400) + 3).rem_euclid(7))
}

/// The detected entity types, each with its `_`-prefix globs (`SECRET_AWS_KEY` adds `SECRET_*`
/// and `SECRET_AWS_*`), plus `*` when anything was found.
pub(crate) fn detected_set(detected: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in detected {
        out.insert((*d).to_string());
        for (i, _) in d.match_indices('_') {
            out.insert(format!("{}*", &d[..=i]));
        }
    }
    if !out.is_empty() {
        out.insert("*".to_string());
    }
    out
}
