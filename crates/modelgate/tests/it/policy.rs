//! Policy through the real binary (issue 6): denials that never reach the upstream and are
//! recorded with their deciding policy, hot reload under load by file change and SIGHUP,
//! rejected configs, the admin explain endpoint, and the policy-filtered model list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};
use testkit::{Flavor, GatewayProcess};

use crate::support::*;

const RULES_V1: &str = r#"
[[access]]
id = "users-chat"
groups = ["users"]
actions = ["inference"]
models = ["mock-model"]

[[access]]
id = "no-embed-model"
effect = "deny"
actions = ["inference"]
models = ["mock-embed"]
"#;

fn data_dir(gw: &GatewayProcess) -> std::path::PathBuf {
    gw.dir.join("modelgate-data")
}

/// Replaces the config file atomically (write beside it, then rename), as editors and config
/// management tools do.
fn write_config(gw: &GatewayProcess, text: &str) {
    let path = gw.config_path().unwrap();
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn chat_status(gw: &GatewayProcess, model: &str) -> (u16, String, Bytes) {
    let (s, h, b) =
        call(json_req("POST", &format!("{}/v1/chat/completions", gw.data_url), &chat(model, false), &[])).await;
    let rid = h.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (s, rid, b)
}

async fn admin(gw: &GatewayProcess, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = gw.admin_token();
    let auth = format!("Bearer {token}");
    let url = format!("{}{path}", gw.admin_url);
    let req = match body {
        Some(b) => json_req(method, &url, &b, &[("authorization", &auth)]),
        None => {
            let mut r = json_req(method, &url, &Value::Null, &[("authorization", &auth)]);
            *r.body_mut() = http_body_util::Full::new(Bytes::new());
            r
        }
    };
    let (s, _, b) = call(req).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn events_of(gw: &GatewayProcess, event_type: &str) -> Vec<Value> {
    audit_events(&data_dir(gw)).into_iter().filter(|e| e["event_type"] == event_type).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_never_reaches_the_upstream_and_is_recorded_with_its_policy() {
    let mock = mock(Flavor::OpenAi).await;
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let gw = start(&config("", &format!("{up}\n{RULES_V1}")));

    let (s, allowed_id, _) = chat_status(&gw, "mock-model").await;
    assert_eq!(s, 200);
    let seen = mock.requests().len();
    assert_eq!(seen, 1);

    // A forbid rule decides.
    let (s, denied_id, body) = chat_status(&gw, "mock-embed").await;
    assert_eq!((s, error_code(&body).as_str()), (403, "access_denied"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["request_id"], denied_id.as_str());
    // No rule allows it.
    let (s, unpermitted_id, body) = chat_status(&gw, "another-model").await;
    assert_eq!((s, error_code(&body).as_str()), (403, "access_denied"));
    // Unknown paths and admin actions are denied unless a rule names them.
    let (s, _, body) =
        call(json_req("POST", &format!("{}/v1/something/new", gw.data_url), &json!({"model": "mock-model"}), &[]))
            .await;
    assert_eq!((s, error_code(&body).as_str()), (403, "access_denied"));
    assert_eq!(mock.requests().len(), seen, "a denied call reached the upstream");

    // The denial is one policy.denied event with its deciding policy and the policy version.
    let ev = exchange_events(&data_dir(&gw), &denied_id);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let e = &ev[0];
    assert_eq!(e["event_type"], "policy.denied");
    assert_eq!(e["outcome"], "denied");
    assert_eq!(e["status_code"], 403);
    assert_eq!(e["reason"], "access_denied");
    assert_eq!(e["actor"]["subject"], "tester");
    assert_eq!(e["action"], "inference.chat");
    assert_eq!(e["resource"]["id"], "mock-embed");
    assert_eq!(e["policy"]["decision"], "deny");
    assert_eq!(e["policy"]["policies"], json!(["no-embed-model"]));
    let version = e["policy"]["version"].as_str().unwrap().to_string();
    assert!(version.starts_with("sha256:") && version.len() > 20, "{version}");

    let ev = exchange_events(&data_dir(&gw), &unpermitted_id);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["policy"]["decision"], "deny");
    assert!(ev[0]["policy"].get("policies").is_none_or(|p| p.as_array().unwrap().is_empty()));

    // The allowed exchange's records carry the allow and the rule that allowed it.
    let ev = exchange_events(&data_dir(&gw), &allowed_id);
    assert_eq!(ev[0]["event_type"], "inference.request");
    assert_eq!(ev[0]["policy"]["decision"], "allow");
    assert_eq!(ev[0]["policy"]["policies"], json!(["users-chat"]));
    assert_eq!(ev[0]["policy"]["version"], version.as_str());

    // The model list only shows what the caller may use.
    let (s, _, body) = call(get(&format!("{}/v1/models", gw.data_url))).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["mock-model"], "{v}");
}

/// Answers of the load loop that were not 200: status and body.
type Failures = Arc<std::sync::Mutex<Vec<(u16, String)>>>;

/// Sends chat calls from `workers` tasks until `stop`; counts answers by status.
fn start_load(
    gw: &GatewayProcess,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, Failures, Vec<tokio::task::JoinHandle<()>>) {
    let ok = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("{}/v1/chat/completions", gw.data_url);
    let tasks = (0..workers)
        .map(|_| {
            let (ok, bad, stop, url) = (ok.clone(), bad.clone(), stop.clone(), url.clone());
            tokio::spawn(async move {
                // Bounded: at most 20,000 calls per worker.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (s, _, b) = call(json_req("POST", &url, &chat("mock-model", false), &[])).await;
                    if s == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        bad.lock().unwrap().push((s, String::from_utf8_lossy(&b).into_owned()));
                    }
                }
            })
        })
        .collect();
    (ok, bad, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_by_file_change_and_sighup_fails_no_request() {
    let mock = mock(Flavor::OpenAi).await;
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let v1 = config("", &format!("{up}\n{RULES_V1}"));
    let gw = start(&v1);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad, tasks) = start_load(&gw, 4, stop.clone());
    eventually("load running", || (ok.load(Ordering::Relaxed) > 20).then_some(()));

    // 1. By file change: drop the forbid, allow the embedding model too.
    let v2 = v1
        .replace("id = \"no-embed-model\"\neffect = \"deny\"", "id = \"embed-ok\"")
        .replace("models = [\"mock-embed\"]", "models = [\"mock-embed\"]\ngroups = [\"users\"]");
    assert_ne!(v1, v2);
    write_config(&gw, &v2);
    let changed = eventually("config.changed by file", || {
        events_of(&gw, "config.changed").into_iter().find(|e| e["details"]["trigger"] == "file_change")
    });
    assert_eq!(changed["outcome"], "success");
    assert_eq!(changed["actor"]["auth_method"], "config_file");
    assert!(changed["actor"]["subject"].is_string());
    let (before, after) = (&changed["change"]["before_hash"], &changed["change"]["after_hash"]);
    assert!(before.as_str().unwrap().starts_with("sha256:") && before != after);
    let diff = changed["change"]["diff"].to_string();
    assert!(diff.contains("access[1].id") && diff.contains("embed-ok"), "{diff}");
    assert_ne!(changed["details"]["policy_version"]["before"], changed["details"]["policy_version"]["after"]);
    let at_file_change = ok.load(Ordering::Relaxed);
    assert_eq!(chat_status(&gw, "mock-embed").await.0, 200, "the new rule is in force");

    // 2. By SIGHUP, before the file poll could see it: back to v1.
    write_config(&gw, &v1);
    gw.signal_hup();
    let changed = eventually("config.changed by SIGHUP", || {
        events_of(&gw, "config.changed").into_iter().find(|e| e["details"]["trigger"] == "sighup")
    });
    assert_eq!(changed["change"]["after_hash"], before.clone());
    assert_eq!(chat_status(&gw, "mock-embed").await.0, 403, "the forbid is back");
    eventually("load after both reloads", || (ok.load(Ordering::Relaxed) > at_file_change + 20).then_some(()));

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let bad = bad.lock().unwrap();
    assert!(bad.is_empty(), "requests failed during reloads: {:?}", &bad[..bad.len().min(5)]);
    assert!(ok.load(Ordering::Relaxed) > 40);
    // A poll after SIGHUP must not apply the same change again.
    assert_eq!(events_of(&gw, "config.changed").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_rejected_and_the_old_one_keeps_serving() {
    let mock = mock(Flavor::OpenAi).await;
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let v1 = config("", &format!("{up}\n{RULES_V1}"));
    let gw = start(&v1);

    // A typo in an action, through the admin API: 422 naming the key; config.rejected by the admin.
    write_config(
        &gw,
        &v1.replace(
            "actions = [\"inference\"]\nmodels = [\"mock-model\"]",
            "actions = [\"inference.chatt\"]\nmodels = [\"mock-model\"]",
        ),
    );
    let (s, v) = admin(&gw, "POST", "/admin/v1/config/reload", None).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["result"], "rejected");
    assert!(v["errors"].to_string().contains("access[0].actions[0]"), "{v}");
    let rejected = eventually("config.rejected", || events_of(&gw, "config.rejected").into_iter().next());
    assert_eq!(rejected["outcome"], "failure");
    assert_eq!(rejected["actor"]["auth_method"], "admin_token");
    assert_eq!(rejected["details"]["trigger"], "admin_api");
    assert!(rejected["reason"].as_str().unwrap().contains("inference.chatt"));
    assert_eq!(chat_status(&gw, "mock-model").await.0, 200, "the old config keeps serving");
    assert_eq!(chat_status(&gw, "mock-embed").await.0, 403, "the old rules stay in force");

    // A Cedar file with a syntax error, by SIGHUP: rejected with file and line.
    std::fs::write(
        gw.dir.join("extra.cedar"),
        "permit(\n  principal,\n  action == Action::\"inference.chat\"\n  resource\n);\n",
    )
    .unwrap();
    let with_file = format!("{v1}\n[policy]\nfiles = [\"extra.cedar\"]\n");
    write_config(&gw, &with_file);
    gw.signal_hup();
    let rejected = eventually("second config.rejected", || {
        events_of(&gw, "config.rejected").into_iter().find(|e| e["details"]["trigger"] == "sighup")
    });
    let errors = rejected["details"]["errors"].to_string();
    assert!(errors.contains("extra.cedar:"), "{errors}");
    assert_eq!(chat_status(&gw, "mock-model").await.0, 200);

    // Fixed: accepted through the admin API, recorded with the admin as who.
    std::fs::write(gw.dir.join("extra.cedar"), "@id(\"embed-by-file\")\npermit(principal in Group::\"users\", action == Action::\"inference.chat\", resource)\nwhen { resource.name == \"mock-embed\" };\n").unwrap();
    let fixed = with_file.replace(
        "id = \"no-embed-model\"\neffect = \"deny\"",
        "id = \"no-embed-model-gone\"\neffect = \"deny\"\ngroups = [\"nobody\"]",
    );
    write_config(&gw, &fixed);
    let (s, v) = admin(&gw, "POST", "/admin/v1/config/reload", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], "changed");
    let changed = eventually("config.changed by admin", || {
        events_of(&gw, "config.changed").into_iter().find(|e| e["details"]["trigger"] == "admin_api")
    });
    assert_eq!(changed["actor"]["auth_method"], "admin_token");
    assert!(changed["change"]["diff"].to_string().contains("policy.files[0]#content"));
    let (s, _, _) = chat_status(&gw, "mock-embed").await;
    assert_eq!(s, 200, "the Cedar file's permit is in force");
    // Reloading the same files again changes nothing and records nothing.
    let (s, v) = admin(&gw, "POST", "/admin/v1/config/reload", None).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("unchanged")));

    // The explain endpoint agrees with what the data path just did.
    let (s, v) = admin(
        &gw,
        "POST",
        "/admin/v1/policy/check",
        Some(json!({"subject": "tester", "groups": ["users"], "action": "inference.chat", "model": "mock-embed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["policies"], json!(["embed-by-file"]));
    // The config in force, as the admin API shows it.
    let (s, v) = admin(&gw, "GET", "/admin/v1/config", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["policy_version"], changed["details"]["policy_version"]["after"]);
    assert_eq!(v["config"]["policy"]["files"], json!(["extra.cedar"]));
}

/// The live request that classifies as `action`, or None when the gateway cannot be made to
/// see the case's inputs (gateway-answered listings, actions whose model comes from a path).
fn live_request(
    action: &str,
    model: Option<&str>,
    prompt: &str,
    stream: bool,
) -> Option<(&'static str, &'static str, Value)> {
    let m = model.map_or(Value::Null, |m| json!(m));
    let with_model = |mut v: Value| {
        if let Some(m) = model {
            v["model"] = json!(m);
        }
        v
    };
    Some(match action {
        "inference.chat" => (
            "POST",
            "/v1/chat/completions",
            with_model(json!({"messages": [{"role": "user", "content": prompt}], "stream": stream})),
        ),
        "inference.completion" => ("POST", "/v1/completions", with_model(json!({"prompt": prompt, "stream": stream}))),
        "inference.embedding" => ("POST", "/v1/embeddings", with_model(json!({"input": prompt}))),
        "inference.other" if model.is_none() => ("POST", "/v1/moderations", json!({"input": prompt})),
        "model.pull" => ("POST", "/api/pull", json!({"model": m, "stream": stream})),
        "model.delete" => ("DELETE", "/api/delete", json!({"model": m})),
        "adapter.load" => {
            ("POST", "/v1/load_lora_adapter", json!({"lora_name": m, "lora_path": "/adapters/a", "note": prompt}))
        }
        "server.config" if model.is_none() => ("POST", "/reset_prefix_cache", Value::Null),
        "data.batch" if model.is_none() => (
            "POST",
            "/v1/batches",
            json!({"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h", "stream": stream, "metadata": {"note": prompt}}),
        ),
        "data.finetune" if model.is_none() => {
            ("POST", "/v1/fine_tuning/jobs", json!({"training_file": "file-1", "suffix": prompt}))
        }
        "read.other" => ("POST", "/api/show", json!({"model": m, "note": prompt})),
        "unknown" if model.is_none() => ("POST", "/v1/not/a/known/endpoint", json!({"note": prompt})),
        _ => return None,
    })
}

/// Replays the policy crate's decision suite (crates/policy/tests/cases.json) through the live
/// gateway and through `modelgate policy check`: for every case the gateway can be made to see,
/// the CLI given the same inputs must decide what the gateway decided, with the same deciding
/// policies and obligations; and where the gateway saw exactly the case's inputs, both must
/// match the suite's expectation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_answers_what_the_live_gateway_does() {
    let suite_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/tests");
    let suite: Value = serde_json::from_slice(&std::fs::read(suite_dir.join("cases.json")).unwrap()).unwrap();
    let vllm = mock(Flavor::Vllm).await;
    let ollama = mock(Flavor::Ollama).await;
    // Approvals in ticket mode, so that a require_approval case answers at once instead of
    // holding the connection (both the gateway and the CLI read this same config).
    let scratch = testkit::temp_dir("policy-suite");
    let cedar = scratch.join("extra.cedar");
    let cedar_text: String =
        std::fs::read_to_string(suite_dir.join("extra.cedar"))
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("@approval(") {
                    format!("{l}\n@approval_mode(\"ticket\")\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    std::fs::write(&cedar, cedar_text).unwrap();
    let toml: String = std::fs::read_to_string(suite_dir.join("cases.toml"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("require_approval = { ") && !l.contains("mode =") {
                format!("{}\n", l.replacen("{ ", "{ mode = \"ticket\", ", 1))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let toml = toml
        .replace("http://127.0.0.1:9001", &vllm.url())
        .replace("http://127.0.0.1:9002", &ollama.url())
        .replace("files = [\"extra.cedar\"]", &format!("files = [{:?}]", cedar.display().to_string()));
    assert!(toml.contains(&vllm.url()) && toml.contains(&ollama.url()) && toml.contains("[[access]]"));
    assert!(!toml.lines().any(|l| l.starts_with("require_approval") && !l.contains("ticket")));
    let gw = start(&config("", &toml));

    let mut keys: std::collections::HashMap<String, String> = Default::default();
    let (mut replayed, mut exact) = (0, 0);
    for case in suite["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case["src_ip"].as_str().is_some_and(|ip| ip != "127.0.0.1") {
            continue; // the live caller is 127.0.0.1
        }
        let action = case["action"].as_str().unwrap();
        let model = case["model"].as_str();
        let prompt = case["prompt"].as_str().unwrap_or("hello");
        let stream = case["stream"].as_bool().unwrap_or(false);
        let Some((method, path, body)) = live_request(action, model, prompt, stream) else { continue };
        let subject = case["subject"].as_str().unwrap();
        let mut groups: Vec<&str> = case["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
        if groups.is_empty() {
            groups.push("no-such-group");
        }
        let service = case["kind"] == "service";
        let key_id = format!("{subject}|{}|{service}", groups.join(","));
        let key = keys
            .entry(key_id)
            .or_insert_with(|| {
                let g = groups.join(",");
                let mut args = vec!["--groups", g.as_str()];
                if service {
                    args.push("--service");
                }
                gw.create_key(subject, &args)["secret"].as_str().unwrap().to_string()
            })
            .clone();
        let auth = format!("Bearer {key}");
        let mut req = json_req(method, &format!("{}{path}", gw.data_url), &body, &[("authorization", &auth)]);
        if body.is_null() {
            *req.body_mut() = http_body_util::Full::new(Bytes::new());
        }
        let (status, headers, resp) = call(req).await;
        let rid = headers["x-request-id"].to_str().unwrap().to_string();
        let events = exchange_events(&data_dir(&gw), &rid);
        let Some(live) = events.iter().find(|e| e.get("policy").is_some()) else {
            panic!("{name}: no policy decision recorded ({status}): {events:#?}")
        };
        if live["action"] != action {
            continue; // this request did not classify as the case's action
        }
        let decision = live["policy"]["decision"].as_str().unwrap();
        match decision {
            "allow" => assert_ne!(status, 403, "{name}"),
            "deny" => assert_eq!((status, error_code(&resp).as_str()), (403, "access_denied"), "{name}"),
            _ => assert_eq!((status, error_code(&resp).as_str()), (403, "approval_required"), "{name}"),
        }
        // The same inputs through the CLI, offline on the same config.
        let upstream = live["resource"]["upstream"].as_str().unwrap_or("").to_string();
        let live_stream = live["gen_ai"]["request.stream"].as_bool().unwrap_or(false);
        let detected: Vec<&str> = live["details"]["detected"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let g = groups.join(",");
        let d = detected.join(",");
        let mut args = vec![
            "policy",
            "check",
            "--json",
            "--subject",
            subject,
            "--groups",
            &g,
            "--action",
            action,
            "--src-ip",
            "127.0.0.1",
        ];
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        if !upstream.is_empty() {
            args.extend(["--upstream", &upstream]);
        }
        if service {
            args.push("--service");
        }
        if live_stream {
            args.push("--stream");
        }
        if !d.is_empty() {
            args.extend(["--detected", &d]);
        }
        let out = gw.cli(&args);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        let live_policies = live["policy"].get("policies").cloned().unwrap_or(json!([]));
        let live_obligations = live["policy"].get("obligations").cloned().unwrap_or(json!([]));
        assert_eq!(cli["decision"], decision, "{name}: CLI {cli} vs live {}", live["policy"]);
        assert_eq!(cli["policies"], live_policies, "{name}");
        assert_eq!(cli["obligation_strings"], live_obligations, "{name}: {cli}");
        assert_eq!(cli["version"], live["policy"]["version"], "{name}");
        replayed += 1;
        // Where the gateway saw exactly the case's inputs, both match the suite.
        let case_detected: Vec<&str> = case["detected"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        if upstream == case["upstream"].as_str().unwrap_or("") && live_stream == stream && detected == case_detected {
            assert_eq!(decision, case["expect"]["decision"], "{name}: live vs suite");
            assert_eq!(live_policies, case["expect"]["policies"], "{name}: live vs suite");
            exact += 1;
        }
    }
    eprintln!("policy suite replayed: {replayed} cases through both, {exact} with the suite's exact inputs");
    assert!(
        replayed >= 30 && exact >= 20,
        "too few cases replayed: {replayed} ({exact} with the suite's exact inputs)"
    );
    // Nothing denied or held reached a mock: every request the mocks saw was allowed.
    let allowed = audit_events(&data_dir(&gw))
        .iter()
        .filter(|e| e["event_type"].as_str().is_some_and(|t| t.ends_with(".request")))
        .count();
    assert_eq!(vllm.requests().len() + ollama.requests().len(), allowed);
}

#[test]
fn policy_validate_names_file_and_line_and_serve_refuses_an_invalid_policy() {
    let dir = testkit::temp_dir("policy-validate");
    let cfg = dir.join("modelgate.toml");
    // No [[access]] rules: the Cedar file is the whole policy.
    let base = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
    std::fs::write(&cfg, format!("{base}\n[policy]\nfiles = [\"rules.cedar\"]\n")).unwrap();
    // A schema violation on line 3: `resource.nme` is not an attribute of Model.
    std::fs::write(
        dir.join("rules.cedar"),
        "@id(\"typo\")\npermit(principal, action == Action::\"inference.chat\", resource)\nwhen { resource.nme == \"x\" };\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin()).args(args).arg("--config").arg(&cfg).current_dir(dir.path()).output().unwrap()
    };
    let out = run(&["policy", "validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("rules.cedar:3:") && err.contains("nme"), "{err}");
    // `serve` refuses to start on it, with the same message.
    let out = run(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rules.cedar:3:"), "{err}");

    std::fs::write(
        dir.join("rules.cedar"),
        "@id(\"fine\")\npermit(principal, action == Action::\"inference.chat\", resource)\nwhen { resource.name == \"x\" };\n",
    )
    .unwrap();
    let out = run(&["policy", "validate", "--print"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("valid;") && text.contains("sha256:") && text.contains("\"fine\""), "{text}");
    // Explained offline, in the text form of SPEC section 6.
    let out =
        run(&["policy", "check", "--subject", "a", "--groups", "g", "--action", "inference.chat", "--model", "x"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decision: allow") && text.contains("policies: fine"), "{text}");
    let out =
        run(&["policy", "check", "--subject", "a", "--groups", "g", "--action", "inference.chat", "--model", "y"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("decision: deny"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_against_a_running_gateway_uses_the_policy_in_force() {
    let mock = mock(Flavor::OpenAi).await;
    let up = upstream("up", &mock.url(), "openai", &["*"], "");
    let gw = start(&config("", &format!("{up}\n{RULES_V1}")));
    let token = gw.admin_token();
    let out = gw.cli(&[
        "policy",
        "check",
        "--server",
        &gw.admin_url,
        "--token",
        &token,
        "--subject",
        "tester",
        "--groups",
        "users",
        "--action",
        "inference.chat",
        "--model",
        "mock-embed",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["policies"], json!(["no-embed-model"]));
    assert_eq!(v["upstream"], "up");
    // The live gateway agrees.
    let (s, rid, _) = chat_status(&gw, "mock-embed").await;
    assert_eq!(s, 403);
    assert_eq!(exchange_events(&data_dir(&gw), &rid)[0]["policy"]["version"], v["version"]);
    // A caller without a role may not ask.
    let key = gw.create_key("nobody", &["--groups", "users"]);
    let out = gw.cli(&[
        "policy",
        "check",
        "--server",
        &gw.admin_url,
        "--token",
        key["secret"].as_str().unwrap(),
        "--subject",
        "x",
        "--action",
        "inference.chat",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
}
