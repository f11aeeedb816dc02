//! Search and reconstruction (issue 5): real traffic from several identities, models and actions
//! through the gateway, then every filter, their combinations, full text, pagination in both
//! orders, `audit show`, `audit tail --follow`, the CLI on the data dir and against the running
//! gateway, roles and cursor binding, the audit of the audit, and a rebuilt index.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::client::{read_body, read_json, read_timed, send, with_bearer, with_header};
use testkit::{Flavor, GatewayProcess, MockOptions, MockServer};

use crate::support::*;

struct World {
    _mock: MockServer,
    data: testkit::TempDir,
    gw: GatewayProcess,
    /// Auditor key (subject `audra`).
    auditor: String,
    /// The admin token (subject `admin`).
    admin: String,
    alice: String,
    /// Request ids by name.
    ids: std::collections::HashMap<&'static str, String>,
    /// Every event in the trail once the traffic is recorded (searches come after).
    trail: Vec<Value>,
    /// Just after the last traffic event: queries end here, so the searches' own events
    /// stay out of them.
    until: String,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn key(gw: &GatewayProcess, subject: &str, extra: &[&str]) -> String {
    gw.create_key(subject, extra)["secret"].as_str().unwrap().to_string()
}

fn rid<B>(res: &http::Response<B>) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_string()
}

async fn post(gw: &GatewayProcess, path: &str, body: &Value, secret: &str, headers: &[(&str, &str)]) -> String {
    let auth = format!("Bearer {secret}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(headers);
    let res = send(json_req("POST", &format!("{}{path}", gw.data_url), body, &h)).await;
    let id = rid(&res);
    read_timed(res.into_body()).await;
    id
}

/// Waits until the exchange's last record is in the trail.
fn wait_recorded(data: &std::path::Path, id: &str) {
    eventually(&format!("the completion of {id}"), || {
        exchange_events(data, id)
            .iter()
            .any(|e| e["event_type"].as_str().is_some_and(|t| t.ends_with(".completion")))
            .then_some(())
    });
}

fn plus_ms(time: &str, ms: u64) -> String {
    let t = ::audit::export::parse_time(time, std::time::SystemTime::now()).unwrap();
    ::audit::export::format_time(t + Duration::from_millis(ms))
}

async fn world() -> World {
    let mock =
        MockServer::start(MockOptions::new(Flavor::Vllm).with_models(&["mock-model", "mock-embed", "other-model"]))
            .await;
    let data = testkit::temp_dir("search");
    let up = upstream("up", &mock.url(), "vllm", &["*"], "");
    let gw =
        start(&config(&format!("data_dir = \"{}\"\n\n[audit]\ndurability = \"strict\"", data.path().display()), &up));
    let alice = key(&gw, "alice", &["--groups", "ml-team,users"]);
    let bob = key(&gw, "bob", &["--groups", "users"]);
    let carol = key(&gw, "carol", &["--service", "--groups", "batch"]);
    let auditor = key(&gw, "audra", &["--role", "auditor"]);
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap().trim().to_string();

    let mut ids = std::collections::HashMap::new();
    let chat_body = |model: &str, text: &str, stream: bool| json!({"model": model, "messages": [{"role": "user", "content": text}], "stream": stream});
    ids.insert(
        "a1",
        post(
            &gw,
            "/v1/chat/completions",
            &chat_body("mock-model", "Project Aurora launch checklist", false),
            &alice,
            &[],
        )
        .await,
    );
    ids.insert(
        "a2",
        post(&gw, "/v1/chat/completions", &chat_body("other-model", "weather forecast for Paris", true), &alice, &[])
            .await,
    );
    ids.insert(
        "b1",
        post(&gw, "/v1/embeddings", &json!({"model": "mock-embed", "input": "aurora borealis photos"}), &bob, &[])
            .await,
    );
    ids.insert(
        "b2",
        post(
            &gw,
            "/v1/chat/completions",
            &chat_body("mock-model", "quarterly revenue numbers", false),
            &bob,
            &[("x-mock-status", "500")],
        )
        .await,
    );
    ids.insert(
        "c1",
        post(&gw, "/v1/completions", &json!({"model": "other-model", "prompt": "zebra crossing safety"}), &carol, &[])
            .await,
    );
    ids.insert(
        "a3",
        post(
            &gw,
            "/v1/load_lora_adapter",
            &json!({"lora_name": "sql-adapter", "lora_path": "/adapters/sql"}),
            &alice,
            &[],
        )
        .await,
    );
    for id in ids.values() {
        wait_recorded(data.path(), id);
    }
    let trail = audit_events(data.path());
    let last = trail.iter().filter_map(|e| e["time"].as_str()).max().unwrap().to_string();
    let until = plus_ms(&last, 1);
    // Past `until` before anything else is recorded.
    eventually("the clock to pass the last event", || {
        let now = ::audit::export::format_time(std::time::SystemTime::now());
        (now > until).then_some(())
    });
    World { _mock: mock, data, gw, auditor, admin, alice, ids, trail, until }
}

impl World {
    /// One API page: (status, body).
    async fn get(&self, path_query: &str, token: &str) -> (u16, Value) {
        let res = send(with_bearer(testkit::client::get(&format!("{}{path_query}", self.gw.admin_url)), token)).await;
        let (status, v) = read_json(res).await;
        (status.as_u16(), v)
    }

    fn query(&self, filters: &[(&str, &str)]) -> String {
        let mut q = format!("since=1h&until={}", enc(&self.until));
        for (k, v) in filters {
            q.push_str(&format!("&{k}={}", enc(v)));
        }
        q
    }

    /// Every page of a search as the auditor: the events in the order served.
    async fn search(&self, filters: &[(&str, &str)], limit: usize, order: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let (status, mut page) = self
            .get(&format!("/admin/v1/events?{}&limit={limit}&order={order}", self.query(filters)), &self.auditor)
            .await;
        assert_eq!(status, 200, "{page}");
        loop {
            let events = page["events"].as_array().unwrap().clone();
            assert!(events.len() <= limit);
            assert_eq!(page["count"], events.len());
            out.extend(events);
            if page["more"] != true {
                break;
            }
            let cursor = page["next_cursor"].as_str().unwrap().to_string();
            let (status, next) =
                self.get(&format!("/admin/v1/events?cursor={}&limit={limit}", enc(&cursor)), &self.auditor).await;
            assert_eq!(status, 200, "{next}");
            page = next;
        }
        out
    }

    /// The trail's events (before `until`) that `pred` selects, newest first.
    fn expect(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .trail
            .iter()
            .filter(|e| e["time"].as_str().unwrap() < self.until.as_str())
            .filter(|e| pred(e))
            .cloned()
            .collect();
        v.reverse();
        v
    }

    fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let out = self.gw.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn cli_server(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &self.gw.admin_url, "--token", &self.auditor]);
        self.cli(&all)
    }
}

fn seqs(v: &[Value]) -> Vec<u64> {
    v.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn request_ids(v: &[Value]) -> std::collections::BTreeSet<String> {
    v.iter().filter_map(|e| e["request_id"].as_str().map(str::to_string)).collect()
}

fn set(ids: &[&str]) -> std::collections::BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn is_type(e: &Value, suffix: &str) -> bool {
    e["event_type"].as_str().is_some_and(|t| t.ends_with(suffix))
}

#[tokio::test]
async fn each_filter_full_text_and_pagination_return_exactly_the_expected_exchanges() {
    let w = world().await;
    let (a1, a2, a3, b1, b2, c1) = (w.id("a1"), w.id("a2"), w.id("a3"), w.id("b1"), w.id("b2"), w.id("c1"));

    // Every result is the stored event, hash included, exactly as the trail holds it.
    let all = w.search(&[], 1000, "desc").await;
    assert_eq!(all, w.expect(|e| e["time"].as_str().unwrap() >= "1970"), "a time window alone returns every event");

    let subject = |s: &'static str| move |e: &Value| e["actor"]["subject"] == s;
    // (filters, which stored events they select, the request ids that come back)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Box<dyn Fn(&Value) -> bool + 'a>, Option<Vec<&'a str>>);
    let cases: Vec<Case> = vec![
        (vec![("actor", "alice")], Box::new(subject("alice")), Some(vec![a1, a2, a3])),
        (
            vec![("actor", "alice"), ("event_type", "inference.request")],
            Box::new(|e| e["actor"]["subject"] == "alice" && e["event_type"] == "inference.request"),
            Some(vec![a1, a2]),
        ),
        (
            vec![("group", "ml-team")],
            Box::new(|e| e["actor"]["groups"].as_array().is_some_and(|g| g.contains(&json!("ml-team")))),
            Some(vec![a1, a2, a3]),
        ),
        (
            vec![("group", "users"), ("action", "inference")],
            Box::new(|e| {
                e["actor"]["groups"].as_array().is_some_and(|g| g.contains(&json!("users")))
                    && e["action"].as_str().is_some_and(|a| a.starts_with("inference."))
            }),
            Some(vec![a1, a2, b1, b2]),
        ),
        (
            vec![("model", "other-model")],
            Box::new(|e| e["gen_ai"]["request.model"] == "other-model"),
            Some(vec![a2, c1]),
        ),
        (vec![("model", "mock-embed")], Box::new(|e| e["gen_ai"]["request.model"] == "mock-embed"), Some(vec![b1])),
        (vec![("action", "adapter.load")], Box::new(|e| e["action"] == "adapter.load"), Some(vec![a3])),
        (vec![("action", "adapter")], Box::new(|e| e["action"] == "adapter.load"), Some(vec![a3])),
        (vec![("action", "inference.completion")], Box::new(|e| e["action"] == "inference.completion"), Some(vec![c1])),
        (
            vec![("action", "inference.*"), ("actor", "carol")],
            Box::new(|e| e["actor"]["subject"] == "carol" && e["action"] == "inference.completion"),
            Some(vec![c1]),
        ),
        (
            vec![("outcome", "failure")],
            Box::new(|e| e["outcome"] == "failure"),
            None, // b2's completion, checked below
        ),
        (vec![("event_type", "token")], Box::new(|e| e["event_type"] == "token.created"), Some(vec![])),
        (vec![("request_id", a2)], Box::new(move |e| e["request_id"] == a2), Some(vec![a2])),
        (
            vec![("request_id", b1), ("event_type", "inference.completion")],
            Box::new(move |e| e["request_id"] == b1 && e["event_type"] == "inference.completion"),
            Some(vec![b1]),
        ),
        (vec![("decision", "allow")], Box::new(|e| e["policy"]["decision"] == "allow"), None),
        // Fields later issues fill: no event has them yet.
        (vec![("masking", "EMAIL")], Box::new(|_| false), Some(vec![])),
        // Full text: the recorded prompt (request events) and answer (completion events).
        (
            vec![("text", "aurora")],
            Box::new(move |e| is_type(e, ".request") && (e["request_id"] == a1 || e["request_id"] == b1)),
            Some(vec![a1, b1]),
        ),
        (
            vec![("text", "AURORA launch")],
            Box::new(move |e| is_type(e, ".request") && e["request_id"] == a1),
            Some(vec![a1]),
        ),
        (
            vec![("text", "aur*")],
            Box::new(move |e| is_type(e, ".request") && (e["request_id"] == a1 || e["request_id"] == b1)),
            Some(vec![a1, b1]),
        ),
        (
            vec![("text", "aurora"), ("actor", "bob")],
            Box::new(move |e| is_type(e, ".request") && e["request_id"] == b1),
            Some(vec![b1]),
        ),
        (
            vec![("text", "aurora"), ("model", "mock-model")],
            Box::new(move |e| is_type(e, ".request") && e["request_id"] == a1),
            Some(vec![a1]),
        ),
        // The adapter's name in the request body, and in the server's plain-text answer.
        (vec![("text", "sql-adapter")], Box::new(move |e| e["request_id"] == a3), Some(vec![a3])),
        (
            // The mock's streamed answer, reassembled from its deltas.
            vec![("text", "mock model says"), ("actor", "alice"), ("model", "other-model")],
            Box::new(move |e| is_type(e, ".completion") && e["request_id"] == a2),
            Some(vec![a2]),
        ),
        (vec![("text", "nonexistentword")], Box::new(|_| false), Some(vec![])),
    ];
    for (filters, pred, ids) in &cases {
        let got = w.search(filters, 1000, "desc").await;
        let want = w.expect(pred);
        assert_eq!(seqs(&got), seqs(&want), "{filters:?}");
        assert_eq!(got, want, "{filters:?}: the stored events, hash included");
        if let Some(ids) = ids {
            assert_eq!(request_ids(&got), set(ids), "{filters:?}");
        }
    }
    let failed = w.search(&[("outcome", "failure")], 100, "desc").await;
    assert!(request_ids(&failed).contains(b2), "{failed:?}");
    assert!(failed.iter().all(|e| e["outcome"] == "failure"));

    // A time window: [a2's request, b1's request) for everyone.
    let t_a2 = w.trail.iter().find(|e| e["request_id"] == a2).unwrap()["time"].as_str().unwrap().to_string();
    let t_b1 = w.trail.iter().find(|e| e["request_id"] == b1).unwrap()["time"].as_str().unwrap().to_string();
    let (status, page) = w
        .get(
            &format!("/admin/v1/events?since={}&until={}&action=inference&limit=1000", enc(&t_a2), enc(&t_b1)),
            &w.auditor,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let want = w.expect(|e| {
        let t = e["time"].as_str().unwrap();
        t >= t_a2.as_str() && t < t_b1.as_str() && e["action"].as_str().is_some_and(|a| a.starts_with("inference."))
    });
    assert_eq!(page["events"].as_array().unwrap(), &want);
    assert!(request_ids(&want).contains(a2) && !request_ids(&want).contains(b1));

    // Pagination: pages of 1 and 2, both orders, give the same events as one page.
    for filters in [vec![("actor", "alice")], vec![("text", "aurora")], vec![]] {
        let whole = w.search(&filters, 1000, "desc").await;
        assert!(whole.len() >= 2, "{filters:?}");
        for size in [1, 2] {
            assert_eq!(w.search(&filters, size, "desc").await, whole, "{filters:?} pages of {size}");
            let mut asc = w.search(&filters, size, "asc").await;
            asc.reverse();
            assert_eq!(asc, whole, "{filters:?} pages of {size}, oldest first");
        }
    }

    // Bad requests are JSON errors.
    for (q, code) in [
        ("action=inference".to_string(), "invalid_request"),
        (format!("{}&outcome=great", w.query(&[])), "invalid_request"),
        (format!("{}&limit=1001", w.query(&[])), "invalid_request"),
        (format!("{}&subject=alice", w.query(&[])), "invalid_request"),
        ("cursor=garbage".to_string(), "invalid_cursor"),
    ] {
        let (status, v) = w.get(&format!("/admin/v1/events?{q}"), &w.auditor).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], code, "{q}");
    }

    // Roles: alice has no auditor role; the admin has every role.
    let (status, v) = w.get(&format!("/admin/v1/events?{}", w.query(&[])), &w.alice).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "access_denied");
    let (status, _) = w.get(&format!("/admin/v1/exchanges/{a1}"), &w.alice).await;
    assert_eq!(status, 403);
    let (status, _) = w.get(&format!("/admin/v1/events?{}", w.query(&[])), &w.admin).await;
    assert_eq!(status, 200);
    let (status, _) = w.get(&format!("/admin/v1/events?{}", w.query(&[])), "mgk_nope_nope").await;
    assert_eq!(status, 401);

    // A cursor is bound to its caller: the admin cannot use the auditor's, nor an altered one.
    let (_, page) = w.get(&format!("/admin/v1/events?{}&limit=1", w.query(&[("actor", "alice")])), &w.auditor).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (status, v) = w.get(&format!("/admin/v1/events?cursor={}", enc(&cursor)), &w.admin).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_cursor");
    let mut altered = cursor.clone().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    let (status, _) =
        w.get(&format!("/admin/v1/events?cursor={}", enc(&String::from_utf8(altered).unwrap())), &w.auditor).await;
    assert_eq!(status, 400);
    // The rightful caller can, and authorisation is checked again on that page: a revoked
    // auditor key is refused even with its own cursor.
    let (status, _) = w.get(&format!("/admin/v1/events?cursor={}", enc(&cursor)), &w.auditor).await;
    assert_eq!(status, 200);
    let temp = w.gw.create_key("temp-auditor", &["--role", "auditor"]);
    let temp_secret = temp["secret"].as_str().unwrap();
    let (_, page) = w.get(&format!("/admin/v1/events?{}&limit=1", w.query(&[("actor", "alice")])), temp_secret).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    w.cli(&["token", "revoke", temp["id"].as_str().unwrap()]);
    let (status, _) = w.get(&format!("/admin/v1/events?cursor={}", enc(&cursor)), temp_secret).await;
    assert_eq!(status, 401);

    // The CLI: the same results from the data dir and from the running gateway.
    let until = w.until.clone();
    for args in [
        vec!["--actor", "alice"],
        vec!["--text", "aurora"],
        vec!["--model", "other-model", "--action", "inference"],
        vec!["--group", "users", "--outcome", "failure"],
        vec![],
    ] {
        let mut full = vec!["audit", "search", "--since", "1h", "--until", &until, "--json"];
        full.extend_from_slice(&args);
        let local = json_lines(&w.cli(&full));
        let remote = json_lines(&w.cli_server(&full));
        assert_eq!(local, remote, "{args:?}");
        let filters: Vec<(&str, &str)> = args.chunks(2).map(|c| (c[0].trim_start_matches("--"), c[1])).collect();
        assert_eq!(local, w.search(&filters, 1000, "desc").await, "{args:?}");
    }
    // --limit is exact, paging as needed; --csv and the table.
    let all_local = json_lines(&w.cli(&["audit", "search", "--since", "1h", "--until", &until, "--json"]));
    for limit in ["1", "3"] {
        let args = ["audit", "search", "--since", "1h", "--until", &until, "--json", "--limit", limit];
        let n: usize = limit.parse().unwrap();
        assert_eq!(json_lines(&w.cli(&args)), all_local[..n].to_vec());
        assert_eq!(json_lines(&w.cli_server(&args)), all_local[..n].to_vec());
    }
    let csv = w.cli(&["audit", "search", "--since", "1h", "--until", &until, "--csv", "--actor", "alice"]);
    let csv = String::from_utf8_lossy(&csv.stdout).to_string();
    assert!(csv.starts_with("time,seq,event_type,outcome,actor,action,model,status_code,request_id,hash\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + w.expect(subject("alice")).len());
    let table = w.cli_server(&["audit", "search", "--since", "1h", "--until", &until, "--actor", "alice"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.starts_with("TIME"), "{table}");
    for id in [a1, a2, a3] {
        assert!(table.contains(id), "{table}");
    }

    // The audit of the audit: who searched, for what, and how many rows came back.
    let records = eventually("the audit.search records", || {
        let evs: Vec<Value> =
            audit_events(w.data.path()).into_iter().filter(|e| e["event_type"] == "audit.search").collect();
        evs.iter().any(|e| e["actor"]["subject"] == "alice").then_some(evs)
    });
    let denied = records.iter().find(|e| e["actor"]["subject"] == "alice").unwrap();
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["status_code"], 403);
    let by_auditor = records
        .iter()
        .find(|e| {
            e["actor"]["subject"] == "audra"
                && e["details"]["filters"]["text"] == "aurora"
                && e["details"]["filters"]["actor"] == "bob"
        })
        .unwrap_or_else(|| panic!("no audit.search by audra for text aurora + actor bob in {records:?}"));
    assert_eq!(by_auditor["details"]["rows"], 1);
    assert_eq!(by_auditor["details"]["filters"]["until"], w.until.as_str());
    assert_eq!(by_auditor["outcome"], "success");
    let local = records.iter().find(|e| e["actor"]["auth_method"] == "local").unwrap();
    assert!(local["details"]["rows"].is_u64(), "{local}");
}

#[tokio::test]
async fn show_reconstructs_an_exchange_with_its_chain_position_and_verification() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("search-show");
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let gw = start(&config(&format!("data_dir = \"{}\"", data.path().display()), &up));
    let alice = key(&gw, "alice", &["--groups", "ml-team"]);
    let auditor = key(&gw, "audra", &["--role", "auditor"]);
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "stream me the answer"}], "stream": true});
    let res = send(with_header(
        json_req(
            "POST",
            &format!("{}/v1/chat/completions", gw.data_url),
            &body,
            &[("authorization", &format!("Bearer {alice}"))],
        ),
        "x-mock-tokens",
        "6",
    ))
    .await;
    assert_eq!(res.status(), 200);
    let id = rid(&res);
    let answer = read_timed(res.into_body()).await.bytes();
    wait_recorded(data.path(), &id);

    let res =
        send(with_bearer(testkit::client::get(&format!("{}/admin/v1/exchanges/{id}", gw.admin_url)), &auditor)).await;
    let (status, x) = read_json(res).await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(x["request_id"], id.as_str());
    assert_eq!(x["identity"]["subject"], "alice");
    assert_eq!(x["identity"]["groups"], json!(["ml-team"]));
    assert_eq!(x["classification"]["action"], "inference.chat");
    assert_eq!(x["classification"]["model"], "mock-model");
    assert_eq!(x["classification"]["stream"], true);
    assert_eq!(x["classification"]["upstream"], "up");
    assert_eq!(x["outcome"], "success");
    assert_eq!(x["end"], "completed");
    assert_eq!(x["status_code"], 200);
    assert_eq!(x["usage"]["output_tokens"], 6);
    assert!(x["timing"]["latency_ms"].is_u64() && x["timing"]["ttft_ms"].is_u64(), "{}", x["timing"]);
    // The bodies as recorded: the request byte for byte, the stream as the caller got it, in
    // chunks with their timing, and the answer reassembled from its deltas.
    assert_eq!(x["request"]["body"], serde_json::to_string(&body).unwrap().as_str());
    assert_eq!(x["request"]["verified"], true);
    assert!(x["request"]["text"].as_str().unwrap().contains("stream me the answer"));
    assert_eq!(x["response"]["body"], String::from_utf8_lossy(&answer).as_ref());
    assert_eq!(x["response"]["verified"], true);
    let chunks = x["response"]["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 6, "{chunks:?}");
    let joined: String = chunks.iter().map(|c| c["data"].as_str().unwrap()).collect();
    assert_eq!(joined.as_bytes(), &answer[..]);
    assert!(chunks.windows(2).all(|p| p[0]["at_ms"].as_u64() <= p[1]["at_ms"].as_u64()));
    assert_eq!(x["response"]["text"], "Hello from the mock model.");
    // The chain: both records, re-hashed against their neighbours, verified.
    let events = x["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_type"], "inference.request");
    assert_eq!(events[1]["event_type"], "inference.completion");
    let trail = exchange_events(data.path(), &id);
    for (e, stored) in events.iter().zip(&trail) {
        assert_eq!(e["verified"], true, "{e}");
        assert_eq!(e["seq"], stored["seq"]);
        assert_eq!(e["hash"], stored["hash"]);
        assert_eq!(e["event"], *stored);
    }
    assert_eq!(x["chain"]["verified"], true);

    // The data dir and the server show the same exchange.
    let local: Value = serde_json::from_slice(&gw.cli(&["audit", "show", &id, "--json"]).stdout).unwrap();
    let out = gw.cli(&["audit", "show", &id, "--json", "--server", &gw.admin_url, "--token", &auditor]);
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["request_id", "identity", "classification", "request", "response", "usage", "timing", "events", "outcome"]
    {
        assert_eq!(local[k], x[k], "{k}");
        assert_eq!(remote[k], x[k], "{k}");
    }
    let text = String::from_utf8_lossy(&gw.cli(&["audit", "show", &id]).stdout).to_string();
    assert!(text.contains("alice") && text.contains("inference.chat") && text.contains("verified"), "{text}");
    assert!(text.contains("Hello from the mock model"), "{text}");

    // Unknown: 404; each read is recorded (`audit.read`, never under the exchange's own id).
    let res =
        send(with_bearer(testkit::client::get(&format!("{}/admin/v1/exchanges/nope", gw.admin_url)), &auditor)).await;
    assert_eq!(res.status(), 404);
    let reads = eventually("the audit.read records", || {
        let r: Vec<Value> = audit_events(data.path()).into_iter().filter(|e| e["event_type"] == "audit.read").collect();
        r.iter().any(|e| e["resource"]["id"] == "nope").then_some(r)
    });
    assert!(reads.iter().all(|e| e.get("request_id").is_none()));
    assert!(
        reads.iter().any(|e| e["actor"]["subject"] == "audra"
            && e["resource"]["id"] == id.as_str()
            && e["details"]["rows"] == 2)
    );
    assert!(reads.iter().any(|e| e["actor"]["auth_method"] == "local" && e["resource"]["id"] == id.as_str()));
    assert!(reads.iter().any(|e| e["resource"]["id"] == "nope" && e["outcome"] == "failure"));
    assert_eq!(exchange_events(data.path(), &id).len(), 2, "reading an exchange does not add to it");

    // After a clean stop a signed checkpoint covers it; an altered recorded body fails its check.
    let mut gw = gw;
    gw.signal_term();
    assert!(gw.wait_exit(SOON).is_some_and(|s| s.success()));
    let shown: Value = serde_json::from_slice(&gw.cli(&["audit", "show", &id, "--json"]).stdout).unwrap();
    let cp = &shown["chain"]["checkpoint"];
    assert_eq!(cp["covered"], true, "{cp}");
    assert_eq!(cp["signature"], "valid");
    assert_eq!(cp["matches_log"], true);
    let input_ref = trail[0]["content"]["input_ref"].as_str().unwrap().trim_start_matches("content:").to_string();
    let db = rusqlite::Connection::open(data.join("audit.db")).unwrap();
    db.execute(
        "UPDATE content SET codec = 'none', data = ?1 WHERE id = ?2",
        rusqlite::params![b"{\"model\":\"mock-model\",\"messages\":[]}".to_vec(), input_ref.parse::<i64>().unwrap()],
    )
    .unwrap();
    drop(db);
    let shown: Value = serde_json::from_slice(&gw.cli(&["audit", "show", &id, "--json"]).stdout).unwrap();
    assert_eq!(shown["request"]["verified"], false);
    assert_eq!(shown["events"][0]["verified"], false);
    assert_eq!(shown["chain"]["verified"], false);
    assert_eq!(shown["events"][1]["verified"], true);
}

/// A child process whose stdout is collected as it comes.
struct Follower {
    child: std::process::Child,
    out: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    fn start(gw: &GatewayProcess, args: &[&str]) -> Follower {
        let mut child = Command::new(bin())
            .args(args)
            .current_dir(&gw.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().unwrap();
        let buf = out.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        Follower { child, out, reader: Some(reader) }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[tokio::test]
async fn tail_prints_the_latest_events_and_follows_new_ones_on_the_data_dir_and_the_server() {
    let mock = mock(Flavor::OpenAi).await;
    let data = testkit::temp_dir("search-tail");
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let gw = start(&config(&format!("data_dir = \"{}\"", data.path().display()), &up));
    let auditor = key(&gw, "audra", &["--role", "auditor"]);
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let res = send(json_req("POST", &url, &chat("mock-model", false), &[])).await;
    let first = rid(&res);
    read_body(res.into_body()).await;
    wait_recorded(data.path(), &first);

    // Without --follow: the latest N, oldest of them first, the same from both sides.
    let local = json_lines(&gw.cli(&["audit", "tail", "-n", "3", "--json"]));
    assert_eq!(local.len(), 3);
    assert!(seqs(&local).windows(2).all(|p| p[0] < p[1]));
    let remote =
        json_lines(&gw.cli(&["audit", "tail", "-n", "3", "--json", "--server", &gw.admin_url, "--token", &auditor]));
    assert_eq!(remote.len(), 3);
    // (The local tail recorded its own audit.search in between.)
    assert!(seqs(&remote)[0] >= seqs(&local)[0]);

    let config = gw.dir.join("modelgate.toml");
    let config = config.to_str().unwrap();
    let local = Follower::start(&gw, &["audit", "tail", "--follow", "--json", "-n", "1", "--config", config]);
    let remote = Follower::start(
        &gw,
        &["audit", "tail", "--follow", "--json", "-n", "1", "--server", &gw.admin_url, "--token", &auditor],
    );
    eventually("both tails to start", || (!local.text().is_empty() && !remote.text().is_empty()).then_some(()));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = send(json_req("POST", &url, &chat("mock-model", true), &[])).await;
        ids.push(rid(&res));
        read_body(res.into_body()).await;
    }
    for f in [&local, &remote] {
        let lines = eventually("the new exchanges in the followed tail", || {
            let text = f.text();
            let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            ids.iter().all(|id| lines.iter().filter(|e| e["request_id"] == id.as_str()).count() == 2).then_some(lines)
        });
        let s = seqs(&lines);
        assert!(s.windows(2).all(|p| p[0] < p[1]), "in chain order, no repeats: {s:?}");
    }
    // The followed server search does not feed on its own records: the records of its
    // continuation pages never come back to it, however often it polls.
    let remote_lines: Vec<Value> = remote.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let own: Vec<&Value> =
        remote_lines.iter().filter(|e| e["event_type"] == "audit.search" && e["actor"]["subject"] == "audra").collect();
    assert!(own.iter().all(|e| e["details"]["page"] == 1), "{own:?}");
    assert!(own.len() <= 2, "{own:?}");
}

#[tokio::test]
async fn a_missing_or_damaged_index_is_rebuilt_from_the_events() {
    let w = world().await;
    let (a1, b1) = (w.id("a1").to_string(), w.id("b1").to_string());
    let until = w.until.clone();
    let args = ["audit", "search", "--since", "1h", "--until", &until, "--json", "--text", "aurora"];
    let before = json_lines(&w.cli(&args));
    assert_eq!(request_ids(&before), set(&[&a1, &b1]));
    let mut w = w;
    w.gw.signal_term();
    assert!(w.gw.wait_exit(SOON).is_some_and(|s| s.success()));
    let index = w.data.join("search.db");
    assert!(index.exists());

    // Deleted: rebuilt on the next search.
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", index.display()));
    }
    assert_eq!(json_lines(&w.cli(&args)), before);

    // Overwritten with garbage: moved aside and rebuilt.
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", index.display()));
    }
    std::fs::write(&index, vec![0x5a; 64 * 1024]).unwrap();
    assert_eq!(json_lines(&w.cli(&args)), before);
    assert!(w.data.join("search.db.damaged").exists());

    // Emptied behind the high-water mark's back (rows lost): `audit reindex` restores them.
    let db = rusqlite::Connection::open(&index).unwrap();
    db.execute("INSERT INTO fts(fts) VALUES ('delete-all')", []).unwrap();
    drop(db);
    assert!(json_lines(&w.cli(&args)).is_empty(), "a damaged index misses, it never invents");
    let out = w.cli(&["audit", "reindex"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rebuilt the search index"), "{out:?}");
    assert_eq!(json_lines(&w.cli(&args)), before);

    // Indexing picks up where it stopped: a restarted gateway serves the same results.
    let restarted =
        GatewayProcess::start(bin(), Some(&std::fs::read_to_string(w.gw.dir.join("modelgate.toml")).unwrap()), &[]);
    let res = send(with_bearer(
        testkit::client::get(&format!(
            "{}/admin/v1/events?since=1h&until={}&text=aurora&limit=1000",
            restarted.admin_url,
            enc(&until)
        )),
        &w.auditor,
    ))
    .await;
    let (status, page) = read_json(res).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap(), &before);
}
