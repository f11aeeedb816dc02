//! The table-driven decision suite: `cases.json` over `cases.toml` and `extra.cedar`, plus load
//! errors and the context and merge details the table does not show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::{Config, MaskMode};
use policy::{Decision, Effect, Policies, PrincipalKind, Query};
use protocols::Action;
use serde_json::Value;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn load_cases() -> (Policies, Value) {
    let dir = tests_dir();
    let text = std::fs::read_to_string(dir.join("cases.toml")).unwrap();
    let config = Config::from_toml(&text).unwrap();
    let policies = Policies::load(&config, &dir).unwrap_or_else(|e| panic!("{e}"));
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    (policies, cases)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

/// Owned parts of a case's query.
struct Case {
    name: String,
    subject: String,
    kind: PrincipalKind,
    groups: Vec<String>,
    action: Action,
    model: Option<String>,
    upstream: Option<String>,
    src_ip: Option<IpAddr>,
    detected: Vec<String>,
    stream: bool,
    time: SystemTime,
}

impl Case {
    fn from_json(c: &Value, time: SystemTime) -> Case {
        let s = |k: &str| c[k].as_str().map(String::from);
        Case {
            name: s("name").unwrap(),
            subject: s("subject").unwrap(),
            kind: match c["kind"].as_str().unwrap() {
                "user" => PrincipalKind::User,
                "service" => PrincipalKind::Service,
                k => panic!("kind {k}"),
            },
            groups: strings(&c["groups"]),
            action: Action::from_name(c["action"].as_str().unwrap()).unwrap(),
            model: s("model"),
            upstream: s("upstream"),
            src_ip: s("src_ip").map(|ip| ip.parse().unwrap()),
            detected: strings(&c["detected"]),
            stream: c["stream"].as_bool().unwrap(),
            time,
        }
    }

    fn decide_with(&self, f: impl Fn(&Query<'_>) -> Decision) -> Decision {
        let detected: Vec<&str> = self.detected.iter().map(String::as_str).collect();
        let q = Query {
            subject: &self.subject,
            kind: self.kind,
            groups: &self.groups,
            action: self.action,
            model: self.model.as_deref(),
            upstream: self.upstream.as_deref(),
            src_ip: self.src_ip,
            time: self.time,
            auth_method: "api_key",
            stream: self.stream,
            max_tokens: None,
            detected: &detected,
        };
        f(&q)
    }
}

fn all_cases(cases: &Value) -> Vec<(Case, Value)> {
    let time = UNIX_EPOCH + Duration::from_secs(cases["time"].as_u64().unwrap());
    cases["cases"].as_array().unwrap().iter().map(|c| (Case::from_json(c, time), c["expect"].clone())).collect()
}

#[test]
fn the_case_table_decides_as_expected() {
    let (policies, cases) = load_cases();
    let mut failures = Vec::new();
    let table = all_cases(&cases);
    assert!(table.len() >= 60, "the table shrank: {}", table.len());
    for (case, expect) in &table {
        let d = case.decide_with(|q| policies.decide(q));
        let got_policies: Vec<String> = d.policies.iter().map(|p| p.to_string()).collect();
        let mut problems = Vec::new();
        if d.effect.as_str() != expect["decision"].as_str().unwrap() {
            problems.push(format!("decision {} (want {})", d.effect.as_str(), expect["decision"]));
        }
        if got_policies != strings(&expect["policies"]) {
            problems.push(format!("policies {got_policies:?} (want {})", expect["policies"]));
        }
        if d.obligations.to_strings() != strings(&expect["obligations"]) {
            problems.push(format!("obligations {:?} (want {})", d.obligations.to_strings(), expect["obligations"]));
        }
        if let Some(e) = expect.get("mask_entities")
            && d.obligations.mask_entities != strings(e)
        {
            problems.push(format!("mask_entities {:?} (want {e})", d.obligations.mask_entities));
        }
        if let Some(m) = expect.get("mask_mode")
            && d.obligations.mask_mode.map(MaskMode::as_str) != m.as_str()
        {
            problems.push(format!("mask_mode {:?} (want {m})", d.obligations.mask_mode));
        }
        if !d.errors.is_empty() {
            problems.push(format!("errors {:?}", d.errors));
        }
        if d.version != *policies.version() {
            problems.push("version".into());
        }
        if d.effect == Effect::Deny && d.policies.is_empty() && d.reason.as_deref() != Some("no rule allows this") {
            problems.push(format!("reason {:?}", d.reason));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn the_case_table_covers_every_family_and_outcome() {
    let (_, cases) = load_cases();
    let mut seen = std::collections::BTreeSet::new();
    for (case, expect) in all_cases(&cases) {
        seen.insert((case.action.family().as_str(), expect["decision"].as_str().unwrap().to_string()));
    }
    for family in ["inference", "model", "adapter", "server", "data", "read", "unknown"] {
        for effect in ["allow", "deny", "require_approval"] {
            assert!(seen.contains(&(family, effect.to_string())), "no {family} × {effect} case");
        }
    }
}

/// Slicing, the native prefilter and scope skipping are optimisations: decisions must equal
/// plain Cedar over the whole set (with the default deny applied to its result).
#[test]
fn slicing_agrees_with_plain_cedar() {
    let (policies, cases) = load_cases();
    let table = all_cases(&cases);
    for (case, _) in &table {
        let sliced = case.decide_with(|q| policies.decide(q));
        let plain = case.decide_with(|q| policies.decide_unsliced(q));
        assert_eq!(sliced, plain, "{}", case.name);
    }
    let groups =
        ["users", "ml-team", "interns", "finance", "finance-analysts", "contractors", "ops", "power", "platform"];
    let models = [None, Some("llama-3-8b"), Some("llama-3-70b"), Some("finance-q3"), Some("qwen2")];
    let detections: [&[&str]; 3] = [&[], &["IBAN"], &["SECRET_JWT", "EMAIL"]];
    let ips: [Option<IpAddr>; 3] = [None, Some("192.168.1.1".parse().unwrap()), Some("10.20.0.9".parse().unwrap())];
    let mut checked = 0;
    for action in Action::ALL {
        for g in 0..groups.len() {
            for model in models {
                for detected in detections {
                    for (k, src_ip) in ips.into_iter().enumerate() {
                        let gs = vec![groups[g].to_string(), groups[(g + 3) % groups.len()].to_string()];
                        let q = Query {
                            subject: ["someone", "ci-bot", "batch-runner"][k],
                            kind: if k == 2 { PrincipalKind::Service } else { PrincipalKind::User },
                            groups: &gs,
                            action,
                            model,
                            upstream: Some(if model.is_some_and(|m| m.starts_with("llama")) {
                                "vllm"
                            } else {
                                "ollama"
                            }),
                            src_ip,
                            time: table[0].0.time,
                            auth_method: "oidc",
                            stream: k == 1,
                            max_tokens: Some(100),
                            detected,
                        };
                        assert_eq!(
                            policies.decide(&q),
                            policies.decide_unsliced(&q),
                            "{action} {gs:?} {model:?} {detected:?} {src_ip:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 8000);
}

/// The same over generated rules and raw policies of every principal, action and resource
/// shape, including group literals in conditions (which need group entities).
#[test]
fn slicing_agrees_with_plain_cedar_on_generated_policies() {
    let mut toml = String::from(
        "[policy]\nfiles = ['raw.cedar']\ngroup_parents = { g0 = ['g5'], g1 = ['g5', 'g6'], g5 = ['g7'], g2 = ['g8'] }\n",
    );
    let actions = [
        "'inference'",
        "'inference.chat'",
        "'*'",
        "'model'",
        "'model.pull', 'read'",
        "'data', 'unknown'",
        "'*', 'adapter'",
        "'server.config'",
    ];
    let models = ["'*'", "'llama-*'", "'*-8b', 'qwen'", "'llama-3-70b'"];
    for i in 0..120usize {
        let r = i.wrapping_mul(2_654_435_761) >> 3;
        toml.push_str("[[access]]\n");
        match r % 5 {
            0 => {}
            1 => toml.push_str(&format!("subjects = ['u{}']\n", r % 3)),
            _ => toml.push_str(&format!("groups = ['g{}', 'g{}']\n", r % 9, (r / 9) % 9)),
        }
        toml.push_str(&format!(
            "actions = [{}]\nmodels = [{}]\n",
            actions[(r / 7) % actions.len()],
            models[(r / 11) % models.len()]
        ));
        if (r / 13) % 6 == 0 {
            toml.push_str("source_ips = ['10.0.0.0/8', '::1']\n");
        }
        if (r / 17) % 5 == 0 {
            toml.push_str("detected = ['SECRET_*', 'EMAIL']\n");
        }
        if (r / 19) % 7 == 0 {
            toml.push_str("upstreams = ['ollama']\n");
        }
        if (r / 23) % 6 == 0 {
            toml.push_str("effect = 'deny'\n");
        } else if (r / 29) % 4 == 0 {
            toml.push_str("mask = 'default'\n");
        } else if (r / 31) % 5 == 0 {
            toml.push_str("require_approval = { approvers = ['security'] }\n");
        }
    }
    let raw = r#"
permit (principal is User, action, resource) when { principal in Group::"g3" };
permit (principal is ServiceAccount in Group::"g4", action in Action::"model", resource);
permit (principal == Group::"g1", action, resource);
permit (principal, action == Action::"inference", resource);
permit (principal, action in [Action::"data.upload", Action::"read"], resource in Upstream::"ollama");
permit (principal, action, resource == Model::"qwen") when { Group::"g0" in Group::"g7" && principal in Group::"g7" };
permit (principal in Group::"g8", action == Action::"read.other", resource) when { Group::"g1" in Group::"g6" };
forbid (principal in Group::"g6", action, resource) unless { context.stream };
permit (principal in User::"u1", action == Action::"unknown", resource) when { resource.name == "" };
permit (principal, action, resource is Model) when { context has max_tokens && context.max_tokens > 50 && context.hour >= 0 };
forbid (principal == ServiceAccount::"u2", action in Action::"inference", resource) when { context.detected.contains("*") };
"#;
    let dir = temp_dir();
    std::fs::write(dir.join("raw.cedar"), raw).unwrap();
    let config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let policies = Policies::load(&config, &dir).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut outcomes = std::collections::BTreeMap::new();
    let group_sets: [&[&str]; 7] =
        [&[], &["g0"], &["g1", "g3"], &["g2", "g4"], &["g6"], &["g5", "g8"], &["g3", "g4", "g0"]];
    for action in Action::ALL {
        for (gi, gs) in group_sets.iter().enumerate() {
            let gs: Vec<String> = gs.iter().map(|g| g.to_string()).collect();
            for model in [None, Some("llama-3-8b"), Some("llama-3-70b"), Some("qwen"), Some("mistral")] {
                for (k, detected) in [&[][..], &["SECRET_GITHUB_TOKEN"][..], &["EMAIL"][..]].into_iter().enumerate() {
                    let q = Query {
                        subject: ["u0", "u1", "u2"][(gi + k) % 3],
                        kind: if (gi + k) % 2 == 0 { PrincipalKind::User } else { PrincipalKind::Service },
                        groups: &gs,
                        action,
                        model,
                        upstream: Some(if k == 1 { "vllm" } else { "ollama" }),
                        src_ip: [None, Some("10.1.2.3".parse().unwrap()), Some("::1".parse().unwrap())]
                            [(gi + 2 * k) % 3],
                        time: UNIX_EPOCH + Duration::from_secs(1_736_164_800),
                        auth_method: "api_key",
                        stream: gi % 2 == 1,
                        max_tokens: [None, Some(10), Some(100)][k],
                        detected,
                    };
                    let sliced = policies.decide(&q);
                    assert_eq!(sliced, policies.decide_unsliced(&q), "{action} {gs:?} {model:?} {detected:?}");
                    *outcomes.entry(sliced.effect.as_str()).or_insert(0) += 1;
                }
            }
        }
    }
    // The generated set must exercise every outcome, or the comparison proves little.
    assert!(outcomes.len() == 3 && outcomes.values().all(|n| *n > 100), "{outcomes:?}");
}

fn query<'a>(groups: &'a [String], action: Action, model: Option<&'a str>) -> Query<'a> {
    Query {
        subject: "alice",
        kind: PrincipalKind::User,
        groups,
        action,
        model,
        upstream: Some("ollama"),
        src_ip: None,
        time: UNIX_EPOCH + Duration::from_secs(1_736_164_800),
        auth_method: "api_key",
        stream: false,
        max_tokens: None,
        detected: &[],
    }
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("modelgate-policy-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh directory with the given files, and a config naming them in `[policy] files`.
fn with_files(extra_toml: &str, files: &[(&str, &str)]) -> (Config, PathBuf) {
    let dir = temp_dir();
    let mut names = Vec::new();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
        names.push(format!("{name:?}"));
    }
    let toml = format!("{extra_toml}\n[policy]\nfiles = [{}]\n", names.join(", "));
    (Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}")), dir)
}

fn load_error(extra_toml: &str, files: &[(&str, &str)]) -> Vec<String> {
    let (config, dir) = with_files(extra_toml, files);
    let r = Policies::load(&config, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(_) => panic!("loaded: {files:?}"),
        Err(e) => {
            assert_eq!(e.to_string(), e.messages().join("\n"));
            e.messages().to_vec()
        }
    }
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let text = "permit (principal, action, resource);\n\npermit (principal, action, resource)\n  when { resource.name == \"x\" ;\n";
    let m = load_error("", &[("bad.cedar", text)]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].starts_with("bad.cedar:4:"), "{m:?}");
}

#[test]
fn schema_violations_name_file_line_and_problem() {
    let text = "@id(\"ok\")\npermit (principal, action, resource);\n\n@id(\"typo\")\npermit (principal, action in Action::\"inference\", resource)\nwhen { resource.nme == \"x\" };\n";
    let m = load_error("", &[("typo.cedar", text)]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].starts_with("typo.cedar:6:8:"), "{m:?}");
    assert!(m[0].contains("nme"), "{m:?}");
    // Unknown actions, entity types and unguarded optional attributes too.
    let m = load_error(
        "",
        &[(
            "more.cedar",
            "permit (principal, action == Action::\"inference.chatt\", resource);\npermit (principal in Team::\"x\", action, resource);\npermit (principal, action, resource) when { context.src_ip.isLoopback() };\n",
        )],
    );
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].starts_with("more.cedar:1:30: ") && m[0].contains("inference.chatt"), "{m:?}");
    assert!(m[1].starts_with("more.cedar:2:") && m[1].contains("Team"), "{m:?}");
    assert!(m[2].starts_with("more.cedar:3:") && m[2].contains("src_ip"), "{m:?}");
}

#[test]
fn annotation_errors_name_the_annotation() {
    let cases: [(&str, &str, &str); 9] = [
        (
            "permit (principal, action, resource);\n@mask(\"default\") @obligation(\"x\")\npermit (principal, action, resource);\n",
            "a.cedar:2:18",
            "unknown annotation @obligation",
        ),
        ("@mask(\"nope\")\npermit (principal, action, resource);\n", "a.cedar:1:1", "no masking profile \"nope\""),
        (
            "\n  @recording(\"some\")\npermit (principal, action, resource);\n",
            "a.cedar:2:3",
            "expected full or metadata",
        ),
        (
            "@durability(\"eventually\")\npermit (principal, action, resource);\n",
            "a.cedar:1:1",
            "strict, balanced or async",
        ),
        (
            "@mask(\"default\")\nforbid (principal, action, resource);\n",
            "a.cedar:1:1",
            "forbid policy cannot carry obligations",
        ),
        ("@approval_count(\"2\")\npermit (principal, action, resource);\n", "a.cedar:1:1", "needs @approval"),
        (
            "@approval(\"security\")\n@approval_grant(\"window\")\npermit (principal, action, resource);\n",
            "a.cedar:1:1",
            "window grant needs a ttl",
        ),
        (
            "@approval(\"security\")\n@approval_count(\"two\")\npermit (principal, action, resource);\n",
            "a.cedar:2:1",
            "expected a number",
        ),
        ("@approval(\" , \")\npermit (principal, action, resource);\n", "a.cedar:1:1", "at least one approver"),
    ];
    for (text, at, needle) in cases {
        let m = load_error("", &[("a.cedar", text)]);
        assert_eq!(m.len(), 1, "{text}: {m:?}");
        assert!(m[0].starts_with(&format!("{at}: ")), "{text}: {m:?}");
        assert!(m[0].contains(needle), "{text}: {m:?}");
    }
    // Own annotations are fine with the x_ prefix.
    let (config, dir) =
        with_files("", &[("ok.cedar", "@x_ticket(\"SEC-1\")\npermit (principal, action, resource);\n")]);
    assert_eq!(Policies::load(&config, &dir).unwrap().len(), 1);
}

#[test]
fn other_load_errors() {
    // Duplicate ids, across a rule and a file.
    let m = load_error(
        "[[access]]\nid = 'a'\nactions = ['inference']\n",
        &[("d.cedar", "@id(\"a\")\npermit (principal, action, resource);\n")],
    );
    assert!(m[0].starts_with("d.cedar:1:1: duplicate policy id \"a\" (also access[0])"), "{m:?}");
    // Templates.
    let m = load_error("", &[("t.cedar", "\npermit (principal == ?principal, action, resource);\n")]);
    assert!(m[0].starts_with("t.cedar:2:1: templates"), "{m:?}");
    // Missing file.
    let (mut config, dir) = with_files("", &[]);
    config.policy.files = vec!["missing.cedar".into()];
    let e = Policies::load(&config, &dir).unwrap_err();
    assert!(e.messages()[0].starts_with("missing.cedar: cannot read"), "{e}");
    // Every problem is reported, not only the first.
    let m = load_error(
        "",
        &[("one.cedar", "permit (principal, action, resource) when { resource.nme };\n"), ("two.cedar", "permit (")],
    );
    assert_eq!(m.len(), 2, "{m:?}");
}

#[test]
fn config_errors_come_first() {
    // A mask naming a missing profile and a group cycle are config errors with key paths.
    let e = Config::from_toml("[[access]]\nactions = ['inference']\nmask = 'finance'\n").unwrap_err();
    assert_eq!(e.path, "access[0].mask");
    let e = Config::from_toml("[policy]\ngroup_parents = { a = ['b'], b = ['a'] }\n").unwrap_err();
    assert_eq!(e.path, "policy.group_parents.a");
    assert!(e.message.contains("a -> b -> a"), "{e}");
    // A config built in code skips validation: loading must still terminate on a cycle.
    let mut c = Config::default();
    c.policy.group_parents.insert("a".into(), vec!["b".into()]);
    c.policy.group_parents.insert("b".into(), vec!["a".into()]);
    c.access = vec![config::AccessRule {
        groups: vec!["b".into()],
        actions: vec!["inference".into()],
        ..config::AccessRule::embedded_default()
    }];
    let e = Policies::load(&c, Path::new(".")).unwrap_err();
    assert_eq!(
        e.messages(),
        [
            "policy.group_parents.a: group inheritance has a cycle through \"a\"",
            "policy.group_parents.b: group inheritance has a cycle through \"b\""
        ]
    );
}

#[test]
fn the_embedded_default_rule() {
    let p = Policies::load(&Config::default(), Path::new("/nonexistent")).unwrap();
    assert_eq!(p.len(), 1);
    assert!(!p.needs_detection());
    let users = vec!["users".to_string()];
    let d = p.decide(&query(&users, Action::InferenceChat, Some("llama3")));
    assert_eq!((d.effect, d.policies.len()), (Effect::Allow, 1));
    assert_eq!(&*d.policies[0], "default");
    assert!(d.obligations.is_empty());
    assert_eq!(p.decide(&query(&users, Action::ModelPull, Some("llama3"))).effect, Effect::Deny);
    assert_eq!(p.decide(&query(&users, Action::ReadModels, None)).effect, Effect::Deny);
    assert_eq!(p.decide(&query(&[], Action::InferenceChat, Some("llama3"))).effect, Effect::Deny);
    assert!(p.source().contains("principal in Group::\"users\""), "{}", p.source());
}

#[test]
fn versions_follow_the_content() {
    let (a, _) = load_cases();
    let (b, _) = load_cases();
    assert_eq!(a.version(), b.version());
    assert!(a.version().starts_with("sha256:") && a.version().len() == 7 + 64);
    let (c1, d1) = with_files("", &[("v.cedar", "permit (principal, action, resource);\n")]);
    let (c2, d2) = with_files("", &[("v.cedar", "permit (principal, action, resource);\n\n")]);
    let v1 = Policies::load(&c1, &d1).unwrap();
    let v2 = Policies::load(&c2, &d2).unwrap();
    assert_ne!(v1.version(), v2.version());
    let mut c3 = c1.clone();
    c3.policy.group_parents.insert("x".into(), vec!["y".into()]);
    assert_ne!(Policies::load(&c3, &d1).unwrap().version(), v1.version());
    assert!(a.needs_detection());
    assert!(!v1.needs_detection());
    assert_eq!(a.len(), 21, "{}", a.source());
    assert!(!a.is_empty());
    let src = a.source();
    assert!(src.contains("// access[6]\n@id(\"ci-embed#0\")"), "{src}");
    assert!(src.contains("// extra.cedar:"), "{src}");
    assert!(src.contains("context.src_ip.isInRange(ip(\"10.20.0.0/16\"))"), "{src}");
}

#[test]
fn context_carries_time_tokens_auth_and_stream() {
    let text = r#"
@id("weekday-noon")
permit (principal, action == Action::"inference.chat", resource)
when { context.weekday == 0 && context.hour == 12 && context.time == 1736164800 };

@id("small-requests")
permit (principal, action == Action::"inference.completion", resource)
when { context has max_tokens && context.max_tokens <= 1000 && context.auth_method == "oidc" && context.stream };
"#;
    let (config, dir) = with_files("", &[("ctx.cedar", text)]);
    let p = Policies::load(&config, &dir).unwrap();
    let mut q = query(&[], Action::InferenceChat, Some("m"));
    // 2025-01-06T12:00:00Z was a Monday.
    assert_eq!(p.decide(&q).effect, Effect::Allow);
    q.time += Duration::from_secs(3600);
    assert_eq!(p.decide(&q).effect, Effect::Deny);
    q.time += Duration::from_secs(6 * 86_400 + 82_800);
    q.action = Action::InferenceCompletion;
    assert_eq!(p.decide(&q).effect, Effect::Deny);
    q.max_tokens = Some(500);
    q.auth_method = "oidc";
    assert_eq!(p.decide(&q).effect, Effect::Deny);
    q.stream = true;
    assert_eq!(p.decide(&q).policies.iter().map(|s| &**s).collect::<Vec<_>>(), ["small-requests"]);
    q.max_tokens = Some(5000);
    assert_eq!(p.decide(&q).effect, Effect::Deny);
}

#[test]
fn detection_globs_and_ipv4_mapped_addresses() {
    let toml = "[[access]]\nactions = ['inference']\ndetected = ['SECRET_AWS_*']\neffect = 'deny'\n[[access]]\nactions = ['inference']\nsource_ips = ['10.0.0.0/8']\n";
    let p = Policies::load(&Config::from_toml(toml).unwrap(), Path::new(".")).unwrap();
    assert!(p.needs_detection());
    let mut q = query(&[], Action::InferenceChat, Some("m"));
    q.src_ip = Some("::ffff:10.1.2.3".parse().unwrap());
    assert_eq!(p.decide(&q).effect, Effect::Allow);
    let found = ["SECRET_AWS_ACCESS_KEY"];
    q.detected = &found;
    assert_eq!(p.decide(&q).effect, Effect::Deny);
    let found = ["SECRET_GITHUB_TOKEN"];
    q.detected = &found;
    assert_eq!(p.decide(&q).effect, Effect::Allow);
    q.src_ip = Some("11.0.0.1".parse().unwrap());
    assert_eq!(p.decide(&q).effect, Effect::Deny);
}

#[test]
fn model_names_are_escaped() {
    let toml = r#"
[[access]]
id = "odd"
actions = ["inference"]
models = ["we\"ird\\*", "exact\"name"]
"#;
    let p = Policies::load(&Config::from_toml(toml).unwrap(), Path::new(".")).unwrap();
    for (model, effect) in [
        ("we\"ird\\x", Effect::Allow),
        ("we\"ird\\", Effect::Allow),
        ("weird\\x", Effect::Deny),
        ("exact\"name", Effect::Allow),
        ("exact\"name2", Effect::Deny),
        ("", Effect::Deny),
    ] {
        assert_eq!(p.decide(&query(&[], Action::InferenceChat, Some(model))).effect, effect, "{model}");
    }
}

#[test]
fn evaluation_errors_skip_the_policy_and_are_reported() {
    let text = r#"
@id("overflow")
forbid (principal, action, resource) when { context.time * 9223372036854775807 > 0 };
@id("fine")
permit (principal, action in Action::"inference", resource);
"#;
    let (config, dir) = with_files("", &[("e.cedar", text)]);
    let p = Policies::load(&config, &dir).unwrap();
    let d = p.decide(&query(&[], Action::InferenceChat, Some("m")));
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(d.errors[0].contains("overflow"), "{:?}", d.errors);
}

#[test]
fn decisions_serialise() {
    let (policies, cases) = load_cases();
    let table = all_cases(&cases);
    let (case, _) = table.iter().find(|(c, _)| c.name == "IBAN in the prompt requires approval").unwrap();
    let d = case.decide_with(|q| policies.decide(q));
    let j = d.to_json();
    assert_eq!(j["decision"], "require_approval");
    assert_eq!(j["policies"].as_array().unwrap().len(), 4);
    assert_eq!(j["version"], **policies.version());
    assert_eq!(j["reason"], "approval required by iban-approval");
    assert_eq!(j["errors"], serde_json::json!([]));
    let o = &j["obligations"];
    assert_eq!(o["mask"], serde_json::json!(["finance", "pii"]));
    assert_eq!(o["mask_mode"], "pseudonymize");
    assert_eq!(o["recording"], "metadata");
    assert_eq!(o["durability"], "strict");
    assert_eq!(
        o["approval"],
        serde_json::json!([{
            "policy": "iban-approval", "approvers": ["compliance"], "count": 1, "grant": "request", "ttl": null,
            "pending_ttl": "1h", "mode": "hold", "hold_timeout": "5m"
        }])
    );
    let (deny, _) = table.iter().find(|(c, _)| c.name == "secret beats approval").unwrap();
    let d = deny.decide_with(|q| policies.decide(q));
    assert_eq!(d.reason.as_deref(), Some("denied by no-secrets"));
    assert!(d.obligations.is_empty());
    assert_eq!(d.to_json()["obligations"]["approval"], serde_json::json!([]));
}

#[test]
fn policies_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policies>();
    assert_send_sync::<Decision>();
}

#[test]
fn group_literals_see_the_whole_hierarchy() {
    let text =
        "permit (principal, action == Action::\"inference.chat\", resource) when { Group::\"a\" in Group::\"c\" };\n";
    let (config, dir) = with_files("", &[("g.cedar", text)]);
    let mut config = config;
    config.policy.group_parents.insert("a".into(), vec!["b".into()]);
    config.policy.group_parents.insert("b".into(), vec!["c".into()]);
    let p = Policies::load(&config, &dir).unwrap();
    let q = query(&[], Action::InferenceChat, Some("m"));
    assert_eq!(p.decide(&q).effect, Effect::Allow);
    assert_eq!(p.decide_unsliced(&q).effect, Effect::Allow);
    config.policy.group_parents.remove("b");
    let p = Policies::load(&config, &dir).unwrap();
    assert_eq!(p.decide(&q).effect, Effect::Deny);
}

#[test]
fn masking_directions_are_the_union_of_the_profiles() {
    let mut toml = String::from(
        r#"
[masking.profiles.inbound]
entities = ["EMAIL"]
directions = ["request"]
[masking.profiles.stored]
entities = ["PHONE"]
mode = "tokenize"
directions = ["recording"]
"#,
    );
    // Group `a` masks with `inbound`, `b` with `stored`, `c` with `default`, `d` not at all.
    for (group, mask) in [("a", Some("inbound")), ("b", Some("stored")), ("c", Some("default")), ("d", None)] {
        toml.push_str(&format!("[[access]]\nid = \"{group}\"\ngroups = [\"{group}\"]\nactions = [\"inference\"]\n"));
        if let Some(m) = mask {
            toml.push_str(&format!("mask = \"{m}\"\n"));
        }
    }
    let p = Policies::load(&Config::from_toml(&toml).unwrap(), Path::new(".")).unwrap();
    let dirs = |groups: &[&str]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let q = query(&groups, Action::InferenceChat, Some("m"));
        let d = p.decide(&q);
        assert_eq!(d, p.decide_unsliced(&q));
        let m = d.obligations.mask_directions;
        (m.request, m.response, m.recording)
    };
    assert_eq!(dirs(&["a"]), (true, false, false));
    assert_eq!(dirs(&["b"]), (false, false, true));
    assert_eq!(dirs(&["a", "b"]), (true, false, true));
    // The built-in `default` masks every direction.
    assert_eq!(dirs(&["c"]), (true, true, true));
    assert_eq!(dirs(&["b", "c"]), (true, true, true));
    // No masking obligation, or no decision to allow: no direction.
    assert_eq!(dirs(&["d"]), (false, false, false));
    assert_eq!(dirs(&[]), (false, false, false));
}
