//! Engine tests against real SQLite files and a real audit writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::store::Store;
use audit::{Actor, Audit, WriterConfig};
use config::{ApprovalMode, GrantKind};
use protocols::Action;
use serde_json::Value;
use sha2::Digest;

use crate::{ApprovalError, Approvals, Approver, Call, Outcome, Settings, State};

struct Env {
    dir: testkit::TempDir,
    audit: Arc<Audit>,
    ap: Arc<Approvals>,
}

fn settings() -> Settings {
    Settings { max_window_ttl: Duration::from_secs(3600), public_url: Some("https://gw.example/".into()) }
}

fn env() -> Env {
    let dir = testkit::temp_dir("approvals");
    let (audit, _) = Audit::open(WriterConfig::gateway(dir.path())).unwrap();
    let ap = Approvals::open(dir.path(), audit.clone(), settings()).unwrap();
    Env { dir, audit, ap }
}

impl Env {
    /// Drops the engine (as a process exit would) and opens the store again.
    async fn restart(&mut self) {
        let weak = Arc::downgrade(&self.ap);
        let fresh = Approvals::open(self.dir.path(), self.audit.clone(), settings()).unwrap();
        self.ap = fresh;
        // The old engine is gone once its in-flight tasks are.
        testkit::wait_for_async("old engine dropped", Duration::from_secs(5), || weak.upgrade().is_none()).await;
    }

    /// The state of approval request `id`, as the store has it.
    fn state(&self, id: &str) -> State {
        self.ap.list(false).unwrap().into_iter().find(|v| v.id == id).unwrap_or_else(|| panic!("no request {id}")).state
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        let s = Store::open_reader(self.dir.path()).unwrap();
        let mut st = s.conn().prepare("SELECT canonical FROM events WHERE event_type = ?1 ORDER BY seq").unwrap();
        st.query_map([kind], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|b| serde_json::from_slice(&b.unwrap()).unwrap())
            .collect()
    }
}

fn actor(subject: &str) -> Arc<Actor> {
    Arc::new(Actor { subject: Some(subject.into()), display: Some(format!("{subject} (display)")), ..Actor::default() })
}

fn person(subject: &str, groups: &[&str]) -> Approver {
    Approver {
        subject: subject.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        actor: actor(subject),
        admin: false,
    }
}

fn digest(body: &str) -> [u8; 32] {
    sha2::Sha256::digest(body.as_bytes()).into()
}

fn call<'a>(subject: &'a str, action: Action, model: Option<&'a str>, body: &str) -> Call<'a> {
    Call { subject, actor: actor(subject), action, model, upstream: Some("up1"), body_digest: digest(body) }
}

fn req(approvers: &[&str], count: u32, grant: GrantKind) -> policy::Approval {
    policy::Approval {
        policy: Arc::from("rule-1"),
        approvers: approvers.iter().map(|s| s.to_string()).collect(),
        count,
        grant,
        ttl: (grant == GrantKind::Window).then(|| Duration::from_secs(600)),
        pending_ttl: Duration::from_secs(3600),
        mode: ApprovalMode::Hold,
        hold_timeout: Duration::from_secs(300),
    }
}

fn chat<'a>(subject: &'a str, body: &str) -> Call<'a> {
    call(subject, Action::InferenceChat, Some("m1"), body)
}

#[tokio::test]
async fn self_approval_is_refused() {
    let e = env();
    let p = e.ap.request(&chat("alice", "b"), &[req(&["sec"], 1, GrantKind::Request)], "x1", None).await.unwrap();
    assert!(p.fresh);
    assert_eq!(p.approve_url.as_deref(), Some(format!("https://gw.example/admin/v1/approvals/{}", p.id).as_str()));
    // Alice holds the approver group, but she asked.
    let alice = person("alice", &["sec"]);
    assert!(matches!(e.ap.approve(&p.id, &alice, Some("me")).await, Err(ApprovalError::SelfApproval)));
    assert!(matches!(e.ap.deny(&p.id, &alice, "no").await, Err(ApprovalError::SelfApproval)));
    assert_eq!(e.state(&p.id), State::Pending);
    assert!(e.events("approval.approved").is_empty());
}

#[tokio::test]
async fn one_person_in_two_groups_counts_once_and_approves_once() {
    let e = env();
    let c = chat("alice", "b");
    let p = e.ap.request(&c, &[req(&["g1", "g2"], 2, GrantKind::Request)], "x1", None).await.unwrap();
    let carol = person("carol", &["g1", "g2"]);
    let v = e.ap.approve(&p.id, &carol, Some("looks fine")).await.unwrap();
    assert_eq!(v.state, State::Pending, "one person in both groups is one approval");
    assert!(matches!(e.ap.approve(&p.id, &carol, None).await, Err(ApprovalError::AlreadyApprovedBy)));
    assert_eq!(e.ap.wait(&p.id, Duration::from_millis(50)).await, Outcome::TimedOut);
    assert!(e.ap.redeem(&c, "x2").await.is_none());
    let dave = person("dave", &["g2"]);
    let v = e.ap.approve(&p.id, &dave, Some("ok")).await.unwrap();
    assert_eq!(v.state, State::Approved);
    assert_eq!(v.approvals.iter().map(|d| d.by.as_str()).collect::<Vec<_>>(), ["carol", "dave"]);
    assert_eq!(v.grant.as_ref().unwrap().kind, "request");
    assert_eq!(e.ap.wait(&p.id, Duration::from_secs(5)).await, Outcome::Approved);
    assert!(matches!(
        e.ap.approve(&p.id, &person("erin", &["g1"]), None).await,
        Err(ApprovalError::AlreadyDecided { state }) if state == "approved"
    ));
}

#[tokio::test]
async fn every_requirement_must_reach_its_count() {
    let e = env();
    let reqs = [req(&["sec"], 1, GrantKind::Window), req(&["legal"], 1, GrantKind::Window)];
    let p = e.ap.request(&chat("alice", "b"), &reqs, "x1", None).await.unwrap();
    assert_eq!(e.ap.approve(&p.id, &person("carol", &["sec"]), None).await.unwrap().state, State::Pending);
    assert_eq!(e.ap.approve(&p.id, &person("dave", &["sec"]), None).await.unwrap().state, State::Pending);
    assert_eq!(e.ap.approve(&p.id, &person("erin", &["legal"]), None).await.unwrap().state, State::Approved);
    // One person holding both groups counts toward each requirement.
    let p = e.ap.request(&chat("alice", "other"), &reqs, "x2", None).await.unwrap();
    let v = e.ap.approve(&p.id, &person("frank", &["sec", "legal", "users"]), None).await.unwrap();
    assert_eq!(v.state, State::Approved);
    assert_eq!(v.approvals[0].groups, ["sec", "legal"], "only the approver groups that counted are kept");
}

#[tokio::test]
async fn approver_groups_are_checked_when_deciding() {
    let e = env();
    let p = e.ap.request(&chat("alice", "b"), &[req(&["sec"], 1, GrantKind::Request)], "x1", None).await.unwrap();
    // Dave was in `sec` when the request was filed, but no longer is as he decides.
    let dave_now = person("dave", &["users"]);
    match e.ap.approve(&p.id, &dave_now, None).await {
        Err(ApprovalError::NotAnApprover { groups }) => assert_eq!(groups, ["sec"]),
        other => panic!("expected NotAnApprover, got {other:?}"),
    }
    assert!(matches!(e.ap.deny(&p.id, &dave_now, "no").await, Err(ApprovalError::NotAnApprover { .. })));
    assert_eq!(e.state(&p.id), State::Pending);
    let v = e.ap.approve(&p.id, &person("dave", &["sec"]), None).await.unwrap();
    assert_eq!(v.state, State::Approved);
    assert!(matches!(e.ap.approve("nope", &dave_now, None).await, Err(ApprovalError::NotFound)));
}

#[tokio::test]
async fn a_denial_needs_a_reason_and_ends_the_request() {
    let e = env();
    let p = e.ap.request(&chat("alice", "b"), &[req(&["sec"], 2, GrantKind::Request)], "x1", None).await.unwrap();
    let carol = person("carol", &["sec"]);
    assert!(matches!(e.ap.deny(&p.id, &carol, "").await, Err(ApprovalError::ReasonRequired)));
    assert!(matches!(e.ap.deny(&p.id, &carol, "  \n").await, Err(ApprovalError::ReasonRequired)));
    let ap = e.ap.clone();
    let id = p.id.clone();
    let waiter = tokio::spawn(async move { ap.wait(&id, Duration::from_secs(30)).await });
    let v = e.ap.deny(&p.id, &carol, "not for customer data").await.unwrap();
    assert_eq!(v.state, State::Denied);
    assert_eq!(v.denial.unwrap().reason.as_deref(), Some("not for customer data"));
    let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert_eq!(got, Outcome::Denied { reason: "not for customer data".into() });
    // Decided: a later wait answers from the store; nobody can approve it any more.
    assert_eq!(
        e.ap.wait(&p.id, Duration::from_secs(1)).await,
        Outcome::Denied { reason: "not for customer data".into() }
    );
    assert!(matches!(
        e.ap.approve(&p.id, &person("dave", &["sec"]), None).await,
        Err(ApprovalError::AlreadyDecided { state }) if state == "denied"
    ));
    let ev = e.events("approval.denied");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["reason"], "not for customer data");
    assert_eq!(ev[0]["outcome"], "denied");
    assert_eq!(ev[0]["actor"]["subject"], "carol");
    assert_eq!(ev[0]["request_id"], "x1");
    // A denied call asking again files a new request.
    let again = e.ap.request(&chat("alice", "b"), &[req(&["sec"], 1, GrantKind::Request)], "x9", None).await.unwrap();
    assert!(again.fresh);
    assert_ne!(again.id, p.id);
}

#[tokio::test]
async fn a_held_waiter_is_released_by_the_approval() {
    let e = env();
    let c = chat("alice", "b");
    let p = e.ap.request(&c, &[req(&["sec"], 1, GrantKind::Request)], "x1", None).await.unwrap();
    assert_eq!(p.mode, ApprovalMode::Hold);
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let (ap, id) = (e.ap.clone(), p.id.clone());
        waiters.push(tokio::spawn(async move { ap.wait(&id, Duration::from_secs(30)).await }));
    }
    // Let the waiters subscribe before deciding (they would answer from the store otherwise,
    // which is right too, but not what this test is about).
    tokio::task::yield_now().await;
    let started = Instant::now();
    e.ap.approve(&p.id, &person("carol", &["sec"]), Some("go")).await.unwrap();
    for w in waiters {
        assert_eq!(w.await.unwrap(), Outcome::Approved);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = e.ap.redeem(&c, "x1").await.unwrap();
    assert_eq!(r.approval_id, p.id);
    assert_eq!(r.kind, GrantKind::Request);
}

#[tokio::test]
async fn pending_requests_expire_wake_waiters_and_rearm() {
    let e = env();
    // A long deadline first: the expiry task sleeps an hour...
    let long = e.ap.request(&chat("alice", "long"), &[req(&["sec"], 1, GrantKind::Request)], "x0", None).await.unwrap();
    // ...and must be re-armed by a request that expires sooner.
    let mut short = req(&["sec"], 1, GrantKind::Request);
    short.pending_ttl = Duration::from_millis(300);
    let mut other = req(&["ops"], 1, GrantKind::Request);
    other.pending_ttl = Duration::from_secs(120);
    let p = e.ap.request(&chat("alice", "b"), &[short, other], "x1", None).await.unwrap();
    let expires_in = p.expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(expires_in <= Duration::from_millis(300), "pending_ttl is the minimum of the requirements");
    let started = Instant::now();
    assert_eq!(e.ap.wait(&p.id, Duration::from_secs(20)).await, Outcome::Expired);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.state(&p.id), State::Expired);
    let ev = e.events("approval.expired");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["approval"]["id"], p.id.as_str());
    assert_eq!(ev[0]["actor"]["kind"], "system");
    assert_eq!(ev[0]["request_id"], "x1");
    assert!(matches!(
        e.ap.approve(&p.id, &person("carol", &["sec"]), None).await,
        Err(ApprovalError::AlreadyDecided { state }) if state == "expired"
    ));
    assert_eq!(e.state(&long.id), State::Pending);
    assert_eq!(e.ap.list(true).unwrap().iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), [long.id.as_str()]);
}

#[tokio::test]
async fn a_decision_after_the_deadline_expires_the_request() {
    let e = env();
    let mut r = req(&["sec"], 1, GrantKind::Request);
    r.pending_ttl = Duration::from_millis(1);
    let p = e.ap.request(&chat("alice", "b"), &[r], "x1", None).await.unwrap();
    // Whichever comes first, the expiry task or the decision, the request ends expired.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match e.ap.approve(&p.id, &person("carol", &["sec"]), None).await {
            Err(ApprovalError::Expired) => break,
            Err(ApprovalError::AlreadyDecided { state }) if state == "expired" => break,
            other => assert!(Instant::now() < deadline, "unexpected {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(e.state(&p.id), State::Expired);
    assert_eq!(e.events("approval.expired").len(), 1);
}

#[tokio::test]
async fn a_request_grant_is_used_once_and_only_by_its_call() {
    let e = env();
    let c = chat("alice", "body-1");
    let p =
        e.ap.request(&c, &[req(&["sec"], 1, GrantKind::Request)], "x1", Some("hello [EMAIL]".into())).await.unwrap();
    e.ap.approve(&p.id, &person("carol", &["sec"]), Some("fine")).await.unwrap();
    // Another body, another subject, another action or model: not this call.
    assert!(e.ap.redeem(&chat("alice", "body-2"), "y1").await.is_none());
    assert!(e.ap.redeem(&chat("bob", "body-1"), "y2").await.is_none());
    assert!(e.ap.redeem(&call("alice", Action::InferenceCompletion, Some("m1"), "body-1"), "y3").await.is_none());
    assert!(e.ap.redeem(&call("alice", Action::InferenceChat, Some("m2"), "body-1"), "y4").await.is_none());
    // Two concurrent redeems of the exact call: one wins.
    let (a, b) = tokio::join!(e.ap.redeem(&c, "x2"), e.ap.redeem(&c, "x3"));
    assert!(a.is_some() != b.is_some(), "exactly one redeem may use a request grant: {a:?} {b:?}");
    let winner = if a.is_some() { "x2" } else { "x3" };
    assert!(e.ap.redeem(&c, "x4").await.is_none(), "a request grant is used at most once");
    assert!(e.ap.grants().unwrap().is_empty());

    let used = e.events("approval.used");
    assert_eq!(used.len(), 1);
    let u = &used[0];
    assert_eq!(u["request_id"], winner);
    assert_eq!(u["actor"]["subject"], "alice");
    assert_eq!(u["action"], "inference.chat");
    assert_eq!(u["resource"]["id"], "m1");
    assert_eq!(u["resource"]["upstream"], "up1");
    let a = &u["approval"];
    assert_eq!(a["id"], p.id.as_str());
    assert_eq!(a["state"], "approved");
    assert_eq!(a["requester"], "alice");
    assert_eq!(a["requested_by"], "x1");
    assert_eq!(a["approvers"][0]["subject"], "carol");
    assert_eq!(a["approvers"][0]["reason"], "fine");
    assert_eq!(a["grant"]["kind"], "request");
    assert_eq!(a["grant"]["used_by"], winner);

    let requested = e.events("approval.requested");
    assert_eq!(requested.len(), 1);
    let r = &requested[0];
    assert_eq!(r["request_id"], "x1");
    assert_eq!(r["approval"]["state"], "pending");
    assert_eq!(r["approval"]["excerpt"], "hello [EMAIL]");
    assert_eq!(r["approval"]["required"][0]["approvers"][0], "sec");
    assert_eq!(r["approval"]["required"][0]["count"], 1);
    assert_eq!(r["approval"]["grant_kind"], "request");
    let approved = e.events("approval.approved");
    assert_eq!(approved[0]["actor"]["subject"], "carol");
    assert_eq!(approved[0]["reason"], "fine");
    assert_eq!(approved[0]["request_id"], "x1");
    assert!(approved[0]["approval"]["grant"]["id"].is_string());
}

#[tokio::test]
async fn a_window_grant_covers_the_family_and_the_exact_model() {
    let e = env();
    let c = chat("alice", "first");
    let mut r = req(&["sec"], 1, GrantKind::Window);
    r.ttl = Some(Duration::from_secs(86_400));
    let p = e.ap.request(&c, &[r], "x1", None).await.unwrap();
    let v = e.ap.approve(&p.id, &person("carol", &["sec"]), None).await.unwrap();
    assert_eq!(v.grant.as_ref().unwrap().kind, "window");
    let g = e.ap.grants().unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(
        (g[0].action_family.as_str(), g[0].model.as_deref(), g[0].subject.as_str()),
        ("inference", Some("m1"), "alice")
    );
    // The ttl is capped by max_window_ttl (1h here), not the rule's 24h.
    let created = humantime::parse_rfc3339(&g[0].created).unwrap();
    let expires = humantime::parse_rfc3339(&g[0].expires).unwrap();
    assert_eq!(expires.duration_since(created).unwrap(), Duration::from_secs(3600));

    assert!(e.ap.redeem(&c, "x1").await.is_some());
    assert!(e.ap.redeem(&c, "x2").await.is_some(), "a window is not used up");
    assert!(e.ap.redeem(&call("alice", Action::InferenceEmbedding, Some("m1"), "other"), "x3").await.is_some());
    assert!(e.ap.redeem(&call("alice", Action::InferenceChat, Some("m2"), "first"), "n1").await.is_none());
    assert!(e.ap.redeem(&call("alice", Action::InferenceChat, None, "first"), "n2").await.is_none());
    assert!(e.ap.redeem(&call("alice", Action::ModelLoad, Some("m1"), "first"), "n3").await.is_none());
    assert!(e.ap.redeem(&chat("bob", "first"), "n4").await.is_none());
    // `used` is queued, not awaited, for windows: poll for it.
    let dir = e.dir.path().to_path_buf();
    let count = move || {
        let s = Store::open_reader(&dir).unwrap();
        s.conn()
            .query_row("SELECT count(*) FROM events WHERE event_type = 'approval.used'", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    testkit::wait_for_async("three approval.used events", Duration::from_secs(10), || count() == 3).await;
    let used = e.events("approval.used");
    assert_eq!(used.iter().map(|u| u["request_id"].as_str().unwrap()).collect::<Vec<_>>(), ["x1", "x2", "x3"]);
    assert_eq!(used[2]["action"], "inference.embedding");
}

#[tokio::test]
async fn grants_can_be_revoked_early() {
    let e = env();
    let c = chat("alice", "b");
    let p = e.ap.request(&c, &[req(&["sec"], 1, GrantKind::Window)], "x1", None).await.unwrap();
    let v = e.ap.approve(&p.id, &person("carol", &["sec"]), None).await.unwrap();
    let gid = v.grant.unwrap().id;
    assert!(e.ap.redeem(&c, "x2").await.is_some());
    // Neither an approver of the rule nor the holder.
    assert!(matches!(
        e.ap.revoke(&gid, &person("mallory", &["users"]), None).await,
        Err(ApprovalError::NotAllowedToRevoke { .. })
    ));
    assert!(e.ap.redeem(&c, "x3").await.is_some(), "a refused revocation changes nothing");
    let g = e.ap.revoke(&gid, &person("dave", &["sec"]), Some("incident")).await.unwrap();
    assert!(g.revoked);
    assert_eq!(g.revoked_by.as_deref(), Some("dave"));
    assert!(e.ap.redeem(&c, "x4").await.is_none());
    assert!(e.ap.grants().unwrap().is_empty());
    assert!(matches!(
        e.ap.revoke(&gid, &person("dave", &["sec"]), None).await,
        Err(ApprovalError::GrantInactive { state }) if state == "revoked"
    ));
    assert!(matches!(e.ap.revoke("nope", &person("dave", &["sec"]), None).await, Err(ApprovalError::NotFound)));
    let ev = e.events("approval.revoked");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["actor"]["subject"], "dave");
    assert_eq!(ev[0]["reason"], "incident");
    assert_eq!(ev[0]["request_id"], "x1");
    assert_eq!(ev[0]["approval"]["grant"]["revoked_by"], "dave");
    // Revoked stays revoked across a restart.
    let mut e = e;
    e.restart().await;
    assert!(e.ap.redeem(&c, "x5").await.is_none());
}

#[tokio::test]
async fn an_admin_revokes_any_grant_and_others_may_not() {
    let e = env();
    let c = chat("alice", "b");
    let p = e.ap.request(&c, &[req(&["sec"], 1, GrantKind::Window)], "x1", None).await.unwrap();
    let gid = e.ap.approve(&p.id, &person("carol", &["sec"]), None).await.unwrap().grant.unwrap().id;
    // Neither admin, approver of the rule nor holder: refused, naming who may.
    match e.ap.revoke(&gid, &person("mallory", &["ops"]), None).await {
        Err(ApprovalError::NotAllowedToRevoke { groups }) => assert_eq!(groups, ["sec"]),
        other => panic!("expected NotAllowedToRevoke, got {other:?}"),
    }
    assert!(e.ap.redeem(&c, "x2").await.is_some(), "a refused revocation changes nothing");
    // An admin holding none of the approval's approver groups may.
    let root = Approver { admin: true, ..person("root", &["ops"]) };
    let g = e.ap.revoke(&gid, &root, Some("offboarding")).await.unwrap();
    assert!(g.revoked);
    assert_eq!(g.revoked_by.as_deref(), Some("root"));
    assert!(e.ap.redeem(&c, "x3").await.is_none());
    let ev = e.events("approval.revoked");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["actor"]["subject"], "root");
    // Being an admin does not make one an approver.
    let p = e.ap.request(&chat("alice", "other"), &[req(&["sec"], 1, GrantKind::Window)], "x4", None).await.unwrap();
    assert!(matches!(e.ap.approve(&p.id, &root, None).await, Err(ApprovalError::NotAnApprover { .. })));
}

#[tokio::test]
async fn the_same_call_finds_its_pending_request() {
    let e = env();
    let c = chat("alice", "b");
    let reqs = [req(&["sec"], 1, GrantKind::Request)];
    let (a, b) = tokio::join!(e.ap.request(&c, &reqs, "x1", None), e.ap.request(&c, &reqs, "x2", None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    assert!(a.fresh != b.fresh, "one files, the other joins");
    let third = e.ap.request(&chat("alice", "other body"), &reqs, "x3", None).await.unwrap();
    assert_ne!(third.id, a.id);
    assert_eq!(e.ap.list(true).unwrap().len(), 2);
    let requested = e.events("approval.requested");
    assert_eq!(requested.len(), 3, "a repeat is recorded for its own exchange");
    assert_eq!(requested.iter().filter(|r| r["approval"]["repeat"] == true).count(), 1);
    assert!(matches!(e.ap.request(&c, &[], "x4", None).await, Err(ApprovalError::NoRequirements)));
}

#[tokio::test]
async fn mode_and_hold_timeout_combine_over_requirements() {
    let e = env();
    let mut a = req(&["sec"], 1, GrantKind::Window);
    a.hold_timeout = Duration::from_secs(90);
    let mut b = req(&["ops"], 1, GrantKind::Window);
    b.mode = ApprovalMode::Ticket;
    let p = e.ap.request(&chat("alice", "b"), &[a, b], "x1", None).await.unwrap();
    assert_eq!(p.mode, ApprovalMode::Ticket);
    assert_eq!(p.hold_timeout, Duration::from_secs(90));
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut e = env();
    let reqs = [req(&["sec"], 1, GrantKind::Request)];
    let pending_call = chat("alice", "pending");
    let approved_call = chat("alice", "approved");
    let window_call = chat("bob", "window");
    let pending = e.ap.request(&pending_call, &reqs, "x1", None).await.unwrap();
    let approved = e.ap.request(&approved_call, &reqs, "x2", None).await.unwrap();
    e.ap.approve(&approved.id, &person("carol", &["sec"]), Some("ok")).await.unwrap();
    let window = e.ap.request(&window_call, &[req(&["sec"], 1, GrantKind::Window)], "x3", None).await.unwrap();
    e.ap.approve(&window.id, &person("carol", &["sec"]), None).await.unwrap();
    let mut short = req(&["sec"], 1, GrantKind::Request);
    short.pending_ttl = Duration::from_millis(700);
    let expiring = e.ap.request(&chat("alice", "expiring"), &[short], "x4", None).await.unwrap();

    e.restart().await;

    // Pending is still pending, and the same call finds it.
    assert_eq!(e.state(&pending.id), State::Pending);
    let again = e.ap.request(&pending_call, &reqs, "x5", None).await.unwrap();
    assert_eq!((again.id.as_str(), again.fresh), (pending.id.as_str(), false));
    // The expiry is re-armed from the store.
    assert_eq!(e.ap.wait(&expiring.id, Duration::from_secs(20)).await, Outcome::Expired);
    // The approved request's grant is still redeemable, once.
    let r = e.ap.redeem(&approved_call, "x6").await.unwrap();
    assert_eq!(r.approval_id, approved.id);
    assert!(e.ap.redeem(&approved_call, "x7").await.is_none());
    assert!(e.ap.redeem(&window_call, "x8").await.is_some());
    // A pending request can be decided after the restart, and a used grant stays used.
    let v = e.ap.approve(&pending.id, &person("dave", &["sec"]), None).await.unwrap();
    assert_eq!(v.state, State::Approved);
    e.restart().await;
    assert!(e.ap.redeem(&approved_call, "x9").await.is_none());
    assert!(e.ap.redeem(&pending_call, "x10").await.is_some());
    // The CLI reads the same store without a running engine.
    let all = crate::read_list(e.dir.path(), false).unwrap();
    assert_eq!(all.len(), 4);
    let grants = crate::read_grants(e.dir.path()).unwrap();
    assert_eq!(grants.iter().map(|g| g.kind.as_str()).collect::<Vec<_>>(), ["window"]);
}

#[tokio::test]
async fn the_store_is_private() {
    let e = env();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(e.dir.path().join(crate::DB_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(crate::read_list(&e.dir.path().join("missing"), true).unwrap().is_empty());
}

#[tokio::test]
async fn new_requests_are_announced() {
    let e = env();
    let mut rx = e.ap.subscribe();
    let reqs = [req(&["sec", "ops"], 2, GrantKind::Request), req(&["legal"], 1, GrantKind::Request)];
    let p = e.ap.request(&chat("alice", "b"), &reqs, "x1", Some("excerpt".into())).await.unwrap();
    let n = rx.try_recv().unwrap();
    assert_eq!(n.id, p.id);
    assert_eq!(n.requester, "alice");
    assert_eq!(n.requester_display.as_deref(), Some("alice (display)"));
    assert_eq!(n.action, "inference.chat");
    assert_eq!(n.model.as_deref(), Some("m1"));
    assert_eq!(n.upstream.as_deref(), Some("up1"));
    assert_eq!(n.excerpt.as_deref(), Some("excerpt"));
    assert_eq!(n.approvers, ["sec", "ops", "legal"]);
    assert_eq!(n.count, 3);
    assert_eq!(n.approve_url, p.approve_url);
    assert_eq!(n.expires, p.expires);
    // A repeat of the same call is not announced again.
    e.ap.request(&chat("alice", "b"), &reqs, "x2", None).await.unwrap();
    assert!(rx.try_recv().is_err());
}
