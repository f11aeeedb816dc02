//! The engine: pending requests and active grants in memory (loaded from `approvals.db` at
//! open), decisions serialised per request, and the expiry task.
//!
//! Memory per pending request is one `Slot`: the record behind a `tokio::sync::Mutex` (the
//! per-request decision lock) and a `watch` channel its waiters subscribe to. A waiter costs one
//! `watch::Receiver`; nothing polls.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use audit::{Actor, Audit, Entry, EventType, Outcome as AuditOutcome};
use config::GrantKind;
use protocols::Action;
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};

use crate::error::ApprovalError;
use crate::events::{self, Subject};
use crate::model::{Decision, GrantRec, GrantView, Record, State, Terms, View, ms, now_ms, rfc3339, system_time};
use crate::store::{self, Db};
use crate::{Approver, Call, Notice, Outcome, Pending, Redeemed, Settings};

/// Notices kept for slow subscribers before they lag.
const NOTICE_CAPACITY: usize = 256;

/// How long a failed expiry (audit store down) waits before it is tried again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

/// What a request grant is bound to; also the key that finds the pending request for a call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    subject: String,
    action: Action,
    model: Option<String>,
    digest: [u8; 32],
}

impl CallKey {
    fn of(c: &Call<'_>) -> CallKey {
        CallKey {
            subject: c.subject.to_string(),
            action: c.action,
            model: c.model.map(str::to_string),
            digest: c.body_digest,
        }
    }

    fn of_record(r: &Record) -> CallKey {
        CallKey { subject: r.subject.clone(), action: r.action, model: r.model.clone(), digest: r.digest }
    }
}

/// What a window grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WindowKey {
    subject: String,
    family: &'static str,
    model: Option<String>,
}

impl WindowKey {
    fn of(c: &Call<'_>) -> WindowKey {
        WindowKey {
            subject: c.subject.to_string(),
            family: c.action.family().as_str(),
            model: c.model.map(str::to_string),
        }
    }
}

/// What waiters see.
#[derive(Clone, Debug)]
enum Status {
    Pending,
    Approved,
    Denied(Arc<str>),
    Expired,
    /// Filing failed: the request never existed.
    Gone,
}

impl Status {
    fn outcome(&self) -> Option<Outcome> {
        match self {
            Status::Pending => None,
            Status::Approved => Some(Outcome::Approved),
            Status::Denied(r) => Some(Outcome::Denied { reason: r.to_string() }),
            Status::Expired => Some(Outcome::Expired),
            Status::Gone => Some(Outcome::Unknown),
        }
    }
}

/// A pending request in memory.
struct Slot {
    id: String,
    key: CallKey,
    expires_ms: u64,
    /// The decision lock and the record it guards.
    held: tokio::sync::Mutex<Held>,
    status: watch::Sender<Status>,
}

struct Held {
    rec: Record,
    /// False until filing is durable (and for good when filing failed).
    live: bool,
}

impl Slot {
    fn new(rec: Record, live: bool) -> Slot {
        let (status, _) = watch::channel(Status::Pending);
        Slot {
            id: rec.id.clone(),
            key: CallKey::of_record(&rec),
            expires_ms: rec.expires_ms,
            held: tokio::sync::Mutex::new(Held { rec, live }),
            status,
        }
    }
}

/// A usable grant in memory, with what its events need.
#[derive(Debug)]
struct Active {
    grant: GrantRec,
    /// The `approval` section of the approval that issued it.
    section: Value,
    /// The approver groups of that approval (who may revoke).
    groups: Vec<String>,
    /// The exchange that asked for it.
    requested_by: String,
    upstream: Option<String>,
}

impl Active {
    fn new(grant: GrantRec, r: &Record) -> Active {
        Active {
            section: events::section(r, Some(&grant)),
            groups: r.approver_groups(),
            requested_by: r.request_id.clone(),
            upstream: r.upstream.clone(),
            grant,
        }
    }

    fn call_key(&self) -> Option<CallKey> {
        let g = &self.grant;
        g.digest.map(|digest| CallKey { subject: g.subject.clone(), action: g.action, model: g.model.clone(), digest })
    }

    fn window_key(&self) -> WindowKey {
        let g = &self.grant;
        WindowKey { subject: g.subject.clone(), family: g.action.family().as_str(), model: g.model.clone() }
    }
}

#[derive(Default)]
struct Mem {
    pending: HashMap<String, Arc<Slot>>,
    /// The pending request filed for a call.
    by_call: HashMap<CallKey, String>,
    /// (when, id): the expiry task's schedule. Entries of decided requests are left to lapse.
    deadlines: BTreeSet<(u64, String)>,
    grants: HashMap<String, Arc<Active>>,
    request_grants: HashMap<CallKey, Vec<String>>,
    window_grants: HashMap<WindowKey, Vec<String>>,
}

impl Mem {
    fn add_pending(&mut self, slot: Arc<Slot>) {
        self.by_call.insert(slot.key.clone(), slot.id.clone());
        self.deadlines.insert((slot.expires_ms, slot.id.clone()));
        self.pending.insert(slot.id.clone(), slot);
    }

    /// The pending request filed for this call, unless its time ran out.
    fn live_pending(&self, key: &CallKey, now: u64) -> Option<&Arc<Slot>> {
        self.by_call.get(key).and_then(|id| self.pending.get(id)).filter(|s| s.expires_ms > now)
    }

    fn remove_pending(&mut self, slot: &Slot) {
        self.pending.remove(&slot.id);
        if self.by_call.get(&slot.key) == Some(&slot.id) {
            self.by_call.remove(&slot.key);
        }
        self.deadlines.remove(&(slot.expires_ms, slot.id.clone()));
    }

    fn add_grant(&mut self, a: Arc<Active>) {
        let id = a.grant.id.clone();
        match a.call_key() {
            Some(k) if a.grant.kind == GrantKind::Request => self.request_grants.entry(k).or_default().push(id.clone()),
            _ => self.window_grants.entry(a.window_key()).or_default().push(id.clone()),
        }
        self.grants.insert(id, a);
    }

    fn remove_grant(&mut self, id: &str) -> Option<Arc<Active>> {
        let a = self.grants.remove(id)?;
        let unlist = |ids: &mut Vec<String>| ids.retain(|x| x != id);
        match a.call_key() {
            Some(k) if a.grant.kind == GrantKind::Request => {
                if let Some(ids) = self.request_grants.get_mut(&k) {
                    unlist(ids);
                    if ids.is_empty() {
                        self.request_grants.remove(&k);
                    }
                }
            }
            _ => {
                let k = a.window_key();
                if let Some(ids) = self.window_grants.get_mut(&k) {
                    unlist(ids);
                    if ids.is_empty() {
                        self.window_grants.remove(&k);
                    }
                }
            }
        }
        Some(a)
    }

    /// Takes (removes) an unexpired request grant for exactly this call.
    fn take_request(&mut self, key: &CallKey, now: u64) -> Option<Arc<Active>> {
        let ids = self.request_grants.get(key)?.clone();
        for id in ids {
            let live = self.grants.get(&id).is_some_and(|a| a.grant.expires_ms > now);
            let a = self.remove_grant(&id);
            if live {
                return a;
            }
        }
        None
    }

    /// An unexpired window grant covering this call.
    fn find_window(&mut self, key: &WindowKey, now: u64) -> Option<Arc<Active>> {
        let ids = self.window_grants.get(key)?.clone();
        for id in ids {
            match self.grants.get(&id) {
                Some(a) if a.grant.expires_ms > now => return Some(a.clone()),
                _ => {
                    self.remove_grant(&id);
                }
            }
        }
        None
    }

    /// Drops grants that ran out.
    fn prune(&mut self, now: u64) {
        let stale: Vec<String> =
            self.grants.iter().filter(|(_, a)| a.grant.expires_ms <= now).map(|(id, _)| id.clone()).collect();
        for id in stale {
            self.remove_grant(&id);
        }
    }
}

/// The approvals engine. `Send + Sync`; share it as `Arc<Approvals>`.
pub struct Approvals {
    db: Arc<Db>,
    audit: Arc<Audit>,
    settings: Settings,
    mem: Mutex<Mem>,
    /// Re-arms the expiry task (a request was filed, or an expiry must be retried).
    wake: Arc<Notify>,
    notices: broadcast::Sender<Notice>,
    system: Arc<Actor>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Drop for Approvals {
    fn drop(&mut self) {
        // Lets the expiry task see the engine is gone and end.
        self.wake.notify_one();
    }
}

impl Approvals {
    /// Opens `DATA_DIR/approvals.db` (WAL, `synchronous=FULL`, mode 0600), loads pending
    /// requests and active grants, and starts the expiry task (`tokio::spawn`: call inside a
    /// runtime). Each state change is recorded through `audit` before it is reported done.
    pub fn open(data_dir: &Path, audit: Arc<Audit>, settings: Settings) -> Result<Arc<Approvals>, ApprovalError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| ApprovalError::Store("approvals must be opened inside a tokio runtime".into()))?;
        let db = Db::open(data_dir)?;
        let now = now_ms();
        let (pending, grants) = db.read(|c| {
            let pending = store::pending(c)?;
            let mut grants = Vec::new();
            for g in store::active_grants(c, now)? {
                let r = store::approval(c, &g.approval_id)?;
                grants.push((g, r));
            }
            Ok((pending, grants))
        })?;
        let mut mem = Mem::default();
        for r in pending {
            mem.add_pending(Arc::new(Slot::new(r, true)));
        }
        for (g, r) in grants {
            match r {
                Some(r) => mem.add_grant(Arc::new(Active::new(g, &r))),
                None => tracing::warn!(grant = %g.id, "approvals store: grant without its request; ignored"),
            }
        }
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        let wake = Arc::new(Notify::new());
        let this = Arc::new(Approvals {
            db,
            audit,
            settings,
            mem: Mutex::new(mem),
            wake: wake.clone(),
            notices,
            system: Arc::new(Actor::system()),
        });
        handle.spawn(expiry_loop(Arc::downgrade(&this), wake));
        Ok(this)
    }

    /// New approval requests, as they are filed (after `approval.requested` is durable). For the
    /// webhook notifier: each receiver gets every notice; one that falls more than 256 behind
    /// gets `RecvError::Lagged` and misses the oldest. Nothing blocks on a slow receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A grant that lets this call through now: an approved `request` grant for this exact call
    /// (same subject, action, model and body digest), consumed here atomically (two concurrent
    /// redeems can't both use it), or a `window` grant for (subject, action family, model).
    /// Records `approval.used` (request_id = `exchange_request_id`, the approval section with
    /// requester, approvers and reasons, the grant, and `requested_by`). `None` also when the
    /// audit store is failing closed (nothing is let through unaudited).
    pub async fn redeem(&self, call: &Call<'_>, exchange_request_id: &str) -> Option<Redeemed> {
        match self.try_redeem(call, exchange_request_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(request_id = exchange_request_id, "approval grant not redeemed: {e}");
                None
            }
        }
    }

    /// [`Approvals::redeem`], telling why no grant could be used when it failed.
    pub async fn try_redeem(
        &self,
        call: &Call<'_>,
        exchange_request_id: &str,
    ) -> Result<Option<Redeemed>, ApprovalError> {
        if self.audit.is_failed() {
            return Err(ApprovalError::AuditUnavailable);
        }
        let now = now_ms();
        let claimed = {
            let mut m = self.mem();
            match m.take_request(&CallKey::of(call), now) {
                Some(a) => Some(a),
                None => m.find_window(&WindowKey::of(call), now),
            }
        };
        let Some(active) = claimed else { return Ok(None) };
        let mut grant = active.grant.clone();
        let one_shot = grant.kind == GrantKind::Request;
        if one_shot {
            grant.used_ms = Some(now);
            grant.used_by = Some(exchange_request_id.to_string());
            let (id, by) = (grant.id.clone(), exchange_request_id.to_string());
            match self.write(move |tx| store::use_grant(tx, &id, now, &by)).await {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.mem().add_grant(active);
                    return Err(e);
                }
            }
        }
        let mut section = active.section.clone();
        section["grant"] = events::grant_section(&grant);
        let e = events::event(
            EventType::ApprovalUsed,
            AuditOutcome::Success,
            call.actor.clone(),
            exchange_request_id,
            Subject { action: call.action, model: call.model, upstream: call.upstream },
            None,
            section,
        );
        if one_shot {
            if let Err(err) = self.record(e).await {
                // Not let through: give the one-shot grant back.
                let (id, by) = (grant.id.clone(), exchange_request_id.to_string());
                if let Err(e) = self.write(move |tx| store::unuse_grant(tx, &id, &by)).await {
                    tracing::error!(grant = %grant.id, "giving back an unused request grant failed: {e}");
                } else {
                    self.mem().add_grant(active.clone());
                }
                return Err(err);
            }
        } else {
            // FIFO writer: durable no later than the exchange's own request record (crate docs).
            self.audit.submit(Entry::event(e));
        }
        Ok(Some(Redeemed { approval_id: grant.approval_id, grant_id: grant.id, kind: grant.kind }))
    }

    /// Files an approval request for this call, or returns the still-pending one filed for the
    /// same subject, action, model and body digest (`fresh: false`). Records
    /// `approval.requested` (request_id = `exchange_request_id`; the approval section holds the
    /// id, state, requirements, grant kind, mode, expiry and the masked excerpt; a repeat carries
    /// `"repeat": true`). `requirements` come from the policy decision; every one must be met.
    pub async fn request(
        &self,
        call: &Call<'_>,
        requirements: &[policy::Approval],
        exchange_request_id: &str,
        excerpt: Option<String>,
    ) -> Result<Pending, ApprovalError> {
        let terms = Terms::of(requirements, self.settings.max_window_ttl).ok_or(ApprovalError::NoRequirements)?;
        let key = CallKey::of(call);
        // A few rounds at most: a round only repeats when a concurrent filing for the same call
        // failed, or the request found was denied or expired meanwhile.
        for _ in 0..4 {
            if self.audit.is_failed() {
                return Err(ApprovalError::AuditUnavailable);
            }
            let now = now_ms();
            let existing = self.mem().live_pending(&key, now).cloned();
            if let Some(slot) = existing {
                let rec = {
                    let held = slot.held.lock().await;
                    if !held.live || matches!(held.rec.state, State::Denied | State::Expired) {
                        continue;
                    }
                    held.rec.clone()
                };
                self.record(events::requested(&rec, call.actor.clone(), exchange_request_id, true)).await?;
                return Ok(self.pending_of(&rec, false));
            }
            let rec = Record {
                id: audit::event::new_event_id(),
                state: State::Pending,
                subject: call.subject.to_string(),
                requester: call.actor.clone(),
                action: call.action,
                model: call.model.map(str::to_string),
                upstream: call.upstream.map(str::to_string),
                digest: call.body_digest,
                terms: terms.clone(),
                created_ms: now,
                expires_ms: now.saturating_add(ms(terms.pending_ttl)),
                request_id: exchange_request_id.to_string(),
                excerpt: excerpt.clone(),
                approvals: Vec::new(),
                denial: None,
                decided_ms: None,
            };
            let slot = Arc::new(Slot::new(rec.clone(), false));
            // Fresh and unshared: the lock is free. Held until filing is durable, so nobody
            // decides (or joins) a request that might never exist.
            let Ok(mut held) = slot.held.try_lock() else { continue };
            {
                let mut m = self.mem();
                if m.live_pending(&key, now).is_some() {
                    continue;
                }
                m.add_pending(slot.clone());
            }
            self.wake.notify_one();
            let e = events::requested(&rec, call.actor.clone(), exchange_request_id, false);
            let filed = match self.record(e).await {
                Ok(()) => {
                    let r = rec.clone();
                    self.write(move |tx| store::insert_approval(tx, &r)).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = filed {
                self.mem().remove_pending(&slot);
                slot.status.send_replace(Status::Gone);
                return Err(e);
            }
            held.live = true;
            drop(held);
            let _ = self.notices.send(self.notice_of(&rec));
            return Ok(self.pending_of(&rec, true));
        }
        Err(ApprovalError::Store("could not file the approval request: concurrent filings kept failing".into()))
    }

    /// Waits until the request is decided or `timeout` passes. No polling: the waiter holds one
    /// `watch` receiver of the request. A request decided earlier answers at once from the store.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Outcome {
        let rx = self.mem().pending.get(id).map(|s| s.status.subscribe());
        let Some(mut rx) = rx else { return self.final_outcome(id) };
        let decided = async {
            loop {
                if let Some(o) = rx.borrow_and_update().outcome() {
                    return o;
                }
                if rx.changed().await.is_err() {
                    return rx.borrow().outcome().unwrap_or(Outcome::Unknown);
                }
            }
        };
        tokio::time::timeout(timeout, decided).await.unwrap_or(Outcome::TimedOut)
    }

    fn final_outcome(&self, id: &str) -> Outcome {
        match self.db.read(|c| store::approval(c, id)) {
            Ok(Some(r)) => match r.state {
                State::Approved => Outcome::Approved,
                State::Denied => Outcome::Denied { reason: r.denial.and_then(|d| d.reason).unwrap_or_default() },
                State::Expired => Outcome::Expired,
                State::Pending => Outcome::Unknown,
            },
            Ok(None) => Outcome::Unknown,
            Err(e) => {
                tracing::warn!("reading approval {id}: {e}");
                Outcome::Unknown
            }
        }
    }

    /// Approves as `approver`. Refused for the requester, for someone holding none of the
    /// request's approver groups now, for a second approval by the same person, and once the
    /// request is decided or expired. When every requirement reaches its count of distinct
    /// people, the request is approved, its grant issued and its waiters woken.
    pub async fn approve(&self, id: &str, approver: &Approver, reason: Option<&str>) -> Result<View, ApprovalError> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
        let slot = self.slot(id)?;
        let mut held = slot.held.lock().await;
        let groups = self.check_decider(&slot, &mut held, approver).await?;
        if held.rec.approvals.iter().any(|d| d.by == approver.subject) {
            return Err(ApprovalError::AlreadyApprovedBy);
        }
        let now = now_ms();
        let mut next = held.rec.clone();
        next.approvals.push(Decision {
            by: approver.subject.clone(),
            display: approver.actor.display.clone(),
            groups,
            reason: reason.clone(),
            time: rfc3339(now),
        });
        let grant = if next.satisfied() {
            next.state = State::Approved;
            next.decided_ms = Some(now);
            Some(next.grant_at(audit::event::new_event_id(), now, self.settings.max_window_ttl))
        } else {
            None
        };
        self.decide(&slot, &mut held, next, grant.as_ref(), approver.actor.clone(), reason).await?;
        Ok(View::of(&held.rec, grant.as_ref()))
    }

    /// Denies as `approver`, with a reason (required, non-empty). Ends the request; waiters get
    /// `Denied`. The same checks as [`Approvals::approve`] apply.
    pub async fn deny(&self, id: &str, approver: &Approver, reason: &str) -> Result<View, ApprovalError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApprovalError::ReasonRequired);
        }
        let slot = self.slot(id)?;
        let mut held = slot.held.lock().await;
        let groups = self.check_decider(&slot, &mut held, approver).await?;
        let now = now_ms();
        let mut next = held.rec.clone();
        next.state = State::Denied;
        next.decided_ms = Some(now);
        next.denial = Some(Decision {
            by: approver.subject.clone(),
            display: approver.actor.display.clone(),
            groups,
            reason: Some(reason.to_string()),
            time: rfc3339(now),
        });
        self.decide(&slot, &mut held, next, None, approver.actor.clone(), Some(reason.to_string())).await?;
        Ok(View::of(&held.rec, None))
    }

    /// Revokes a grant before it runs out (`approval.revoked`; request_id = the exchange that
    /// asked for the approval). Allowed to anyone holding one of the approval's approver groups
    /// now, to the grant's holder, and to an admin (`by.admin`).
    pub async fn revoke(
        &self,
        grant_id: &str,
        by: &Approver,
        reason: Option<&str>,
    ) -> Result<GrantView, ApprovalError> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
        let now = now_ms();
        let taken = {
            let mut m = self.mem();
            match m.grants.get(grant_id).cloned() {
                Some(a) if a.grant.expires_ms > now => {
                    let allowed =
                        by.admin || by.subject == a.grant.subject || by.groups.iter().any(|g| a.groups.contains(g));
                    if !allowed {
                        return Err(ApprovalError::NotAllowedToRevoke { groups: a.groups.clone() });
                    }
                    m.remove_grant(grant_id);
                    Some(a)
                }
                Some(_) => {
                    m.remove_grant(grant_id);
                    None
                }
                None => None,
            }
        };
        let Some(active) = taken else {
            return match self.db.read(|c| store::grant(c, grant_id))? {
                None => Err(ApprovalError::NotFound),
                Some(g) => {
                    let state = match g.state(now) {
                        // In memory it is not usable: being used or revoked right now.
                        "active" => "being changed",
                        s => s,
                    };
                    Err(ApprovalError::GrantInactive { state: state.into() })
                }
            };
        };
        let mut grant = active.grant.clone();
        grant.revoked_ms = Some(now);
        grant.revoked_by = Some(by.subject.clone());
        grant.revoke_reason = reason.clone();
        let mut section = active.section.clone();
        section["grant"] = events::grant_section(&grant);
        let e = events::event(
            EventType::ApprovalRevoked,
            AuditOutcome::Success,
            by.actor.clone(),
            &active.requested_by,
            Subject { action: grant.action, model: grant.model.as_deref(), upstream: active.upstream.as_deref() },
            reason.clone(),
            section,
        );
        if let Err(e) = self.record(e).await {
            self.mem().add_grant(active);
            return Err(e);
        }
        let (id, who) = (grant.id.clone(), by.subject.clone());
        self.write(move |tx| store::revoke_grant(tx, &id, now, &who, reason.as_deref())).await?;
        Ok(GrantView::of(&grant, now))
    }

    /// Approval requests: the pending ones (oldest first), or all (newest first, at most
    /// [`crate::LIST_ALL_LIMIT`]).
    pub fn list(&self, pending_only: bool) -> Result<Vec<View>, ApprovalError> {
        self.db.read(|c| store::views(c, pending_only))
    }

    /// Active grants (neither used, revoked nor run out).
    pub fn grants(&self) -> Result<Vec<GrantView>, ApprovalError> {
        self.db.read(store::grant_views)
    }

    /// One approval request (what `approve_url` shows).
    pub fn get(&self, id: &str) -> Result<Option<View>, ApprovalError> {
        self.db.read(|c| store::approval(c, id)?.map(|r| store::view(c, &r)).transpose())
    }

    fn mem(&self) -> MutexGuard<'_, Mem> {
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending request `id`, or why there is none to decide.
    fn slot(&self, id: &str) -> Result<Arc<Slot>, ApprovalError> {
        if let Some(s) = self.mem().pending.get(id) {
            return Ok(s.clone());
        }
        match self.db.read(|c| store::approval(c, id))? {
            None => Err(ApprovalError::NotFound),
            Some(r) => Err(ApprovalError::AlreadyDecided { state: r.state.as_str().into() }),
        }
    }

    /// Checks that `who` may decide the request now; returns the approver groups they hold.
    async fn check_decider(&self, slot: &Slot, held: &mut Held, who: &Approver) -> Result<Vec<String>, ApprovalError> {
        if !held.live {
            return Err(ApprovalError::NotFound);
        }
        if held.rec.state != State::Pending {
            return Err(ApprovalError::AlreadyDecided { state: held.rec.state.as_str().into() });
        }
        if now_ms() >= held.rec.expires_ms {
            self.expire_held(slot, held).await?;
            return Err(ApprovalError::Expired);
        }
        if who.subject == held.rec.subject {
            return Err(ApprovalError::SelfApproval);
        }
        let groups = held.rec.counted_groups(&who.groups);
        if groups.is_empty() {
            return Err(ApprovalError::NotAnApprover { groups: held.rec.approver_groups() });
        }
        Ok(groups)
    }

    /// Expires a pending request whose time ran out (the caller holds its decision lock).
    async fn expire_held(&self, slot: &Slot, held: &mut Held) -> Result<(), ApprovalError> {
        let mut next = held.rec.clone();
        next.state = State::Expired;
        next.decided_ms = Some(now_ms());
        self.decide(slot, held, next, None, self.system.clone(), Some("pending_ttl elapsed undecided".into())).await
    }

    /// The closing steps of a decision (the caller holds the request's decision lock): records
    /// its event durably (by `actor`, with `reason`), writes `next` and the grant it issued to
    /// the store, and makes `next` the request. When `next` has ended (approved, denied or
    /// expired), the request leaves the pending list, its grant becomes usable and its waiters
    /// are woken. `next` still pending is an approval that does not yet meet every requirement.
    async fn decide(
        &self,
        slot: &Slot,
        held: &mut Held,
        next: Record,
        grant: Option<&GrantRec>,
        actor: Arc<Actor>,
        reason: Option<String>,
    ) -> Result<(), ApprovalError> {
        let (kind, outcome, ended) = match next.state {
            State::Pending => (EventType::ApprovalApproved, AuditOutcome::Success, None),
            State::Approved => (EventType::ApprovalApproved, AuditOutcome::Success, Some(Status::Approved)),
            State::Denied => (
                EventType::ApprovalDenied,
                AuditOutcome::Denied,
                Some(Status::Denied(Arc::from(reason.as_deref().unwrap_or_default()))),
            ),
            State::Expired => (EventType::ApprovalExpired, AuditOutcome::Failure, Some(Status::Expired)),
        };
        let section = events::section(&next, grant);
        self.record(events::event(kind, outcome, actor, &next.request_id, Subject::of(&next), reason, section)).await?;
        let (r, g) = (next.clone(), grant.cloned());
        self.write(move |tx| store::update_approval(tx, &r, g.as_ref())).await?;
        held.rec = next;
        if let Some(status) = ended {
            {
                let mut m = self.mem();
                m.remove_pending(slot);
                if let Some(g) = grant {
                    m.add_grant(Arc::new(Active::new(g.clone(), &held.rec)));
                }
            }
            slot.status.send_replace(status);
        }
        Ok(())
    }

    /// The expiry task's work for one due request.
    async fn expire_one(&self, id: &str) {
        let slot = self.mem().pending.get(id).cloned();
        let Some(slot) = slot else { return };
        let mut held = slot.held.lock().await;
        if !held.live || held.rec.state != State::Pending {
            return;
        }
        if now_ms() < held.rec.expires_ms {
            self.mem().deadlines.insert((held.rec.expires_ms, slot.id.clone()));
            self.wake.notify_one();
            return;
        }
        if let Err(e) = self.expire_held(&slot, &mut held).await {
            tracing::warn!(approval = %slot.id, "expiring an approval request failed, retrying: {e}");
            self.mem().deadlines.insert((now_ms().saturating_add(ms(EXPIRY_RETRY)), slot.id.clone()));
            self.wake.notify_one();
        }
    }

    /// Takes the due deadlines (spawning their expiry) and returns how long until the next.
    fn expire_due(self: &Arc<Self>) -> Option<Duration> {
        let now = now_ms();
        let (due, next) = {
            let mut m = self.mem();
            m.prune(now);
            let mut due = Vec::new();
            while m.deadlines.first().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, id)) = m.deadlines.pop_first() {
                    due.push(id);
                }
            }
            (due, m.deadlines.first().map(|(t, _)| *t))
        };
        for id in due {
            let me = self.clone();
            tokio::spawn(async move { me.expire_one(&id).await });
        }
        next.map(|t| Duration::from_millis(t.saturating_sub(now).max(1)))
    }

    /// Records an event durably before a state change is made; refuses at once while the audit
    /// store fails closed.
    async fn record(&self, e: audit::Event) -> Result<(), ApprovalError> {
        if self.audit.is_failed() {
            return Err(ApprovalError::AuditUnavailable);
        }
        self.audit
            .submit_waiting_or(Entry::event(e), AuditOutcome::Error, "audit_unavailable")
            .await
            .map_err(|_| ApprovalError::AuditUnavailable)
    }

    /// One write transaction on a blocking thread (its fsync never stalls a runtime worker).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ApprovalError> {
        let db = self.db.clone();
        let r = match tokio::task::spawn_blocking(move || db.write(f)).await {
            Ok(r) => r,
            Err(e) => Err(ApprovalError::Store(format!("store task failed: {e}"))),
        };
        if let Err(e) = &r {
            // The change's event may already be durable; the change itself is not made.
            tracing::error!("approvals store write failed: {e}");
        }
        r
    }

    fn approve_url(&self, id: &str) -> Option<String> {
        self.settings.public_url.as_deref().map(|u| format!("{}/admin/v1/approvals/{id}", u.trim_end_matches('/')))
    }

    fn pending_of(&self, r: &Record, fresh: bool) -> Pending {
        Pending {
            id: r.id.clone(),
            mode: r.terms.mode,
            hold_timeout: r.terms.hold_timeout,
            expires: system_time(r.expires_ms),
            approve_url: self.approve_url(&r.id),
            fresh,
        }
    }

    fn notice_of(&self, r: &Record) -> Notice {
        Notice {
            id: r.id.clone(),
            requester: r.subject.clone(),
            requester_display: r.requester.display.clone(),
            action: r.action.as_str().to_string(),
            model: r.model.clone(),
            upstream: r.upstream.clone(),
            excerpt: r.excerpt.clone(),
            approvers: r.approver_groups(),
            // One number for possibly several requirements: their sum never understates how
            // many people must act (one person in several groups may count for more than one).
            count: r.terms.required.iter().map(|q| q.count).sum(),
            approve_url: self.approve_url(&r.id),
            expires: system_time(r.expires_ms),
        }
    }
}

/// Sleeps until the next pending deadline (or until re-armed), expires what is due, repeats.
/// Holds only a weak reference while asleep; ends once the engine is dropped.
async fn expiry_loop(engine: Weak<Approvals>, wake: Arc<Notify>) {
    loop {
        let next = match engine.upgrade() {
            Some(e) => e.expire_due(),
            None => return,
        };
        match next {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
