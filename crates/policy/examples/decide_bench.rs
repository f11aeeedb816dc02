//! Decision latency with 10 and 1,000 `[[access]]` rules: sliced (`Policies::decide`) and plain
//! Cedar over the whole set (`decide_unsliced`), for a caller in 3 groups.
//!
//! `cargo run --release -p modelgate-policy --example decide_bench [decisions] [sliced]`
//! (`sliced`: skip plain Cedar, e.g. for profiling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use config::{AccessRule, ApprovalConfig, Config, Effect as RuleEffect, GrantKind};
use policy::{Effect, Policies, PrincipalKind, Query};
use protocols::Action;

const ACTION_SETS: [&[&str]; 10] = [
    &["inference"],
    &["inference.chat"],
    &["read"],
    &["model.pull"],
    &["adapter"],
    &["data"],
    &["server"],
    &["inference.embedding", "inference.rerank"],
    &["model"],
    &["*"],
];
const MODEL_SETS: [&[&str]; 5] = [&["llama-*"], &["qwen*", "mistral-*"], &["*"], &["llama-3-70b"], &["*-8b"]];

/// A deterministic pseudo-random number per rule (splitmix64).
fn mix(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` rules over `min(n, 100)` groups (`g0`…), each rule drawing its action set (10 kinds, the
/// sensitive families included), model globs, effect (1 in 10 denies: of a secret in the prompt,
/// or of `*-70b`), network condition (1 in 7), mask (1 in 5 allows) and approval (1 in 13 allows)
/// at random; 1 in 100 rules is for everyone. Groups `g0`…`g49` inherit from `g50`…`g99`.
fn config(n: usize) -> Config {
    let groups = n.min(100);
    let mut c = Config::default();
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let r = mix(i);
        let pick = |shift: u32, m: u64| ((r >> shift) % m) as usize;
        let deny = pick(0, 10) == 9;
        let mut rule = AccessRule {
            id: Some(format!("r{i}")),
            groups: if pick(8, 100) == 0 { vec![] } else { vec![format!("g{}", pick(16, groups as u64))] },
            actions: ACTION_SETS[pick(24, 10)].iter().map(|a| a.to_string()).collect(),
            models: MODEL_SETS[pick(32, 5)].iter().map(|m| m.to_string()).collect(),
            effect: if deny { RuleEffect::Deny } else { RuleEffect::Allow },
            ..AccessRule::default()
        };
        if pick(40, 7) == 0 {
            rule.source_ips = vec![format!("10.{}.0.0/16", pick(44, 8))];
        }
        if !deny && pick(48, 5) == 0 {
            rule.mask = Some("default".into());
        }
        if !deny && pick(52, 13) == 0 {
            rule.require_approval = Some(ApprovalConfig {
                grant: GrantKind::Window,
                ttl: Some(Duration::from_secs(3600)),
                ..ApprovalConfig::new(vec!["security".into()])
            });
        }
        if deny {
            // Denies are targeted: a secret in the prompt, or the large models.
            if pick(56, 2) == 0 {
                rule.detected = vec!["SECRET_*".into()];
            } else {
                rule.models = vec!["*-70b".into()];
            }
        }
        rules.push(rule);
    }
    c.access = rules;
    let mut parents = BTreeMap::new();
    for k in 0..groups / 2 {
        parents.insert(format!("g{k}"), vec![format!("g{}", k + groups / 2)]);
    }
    c.policy.group_parents = parents;
    c.validate().unwrap();
    c
}

fn percentiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)] as f64 / 1000.0;
    (at(0.50), at(0.99), *samples.last().unwrap() as f64 / 1000.0)
}

fn run(name: &str, policies: &Policies, decisions: usize, unsliced: bool) {
    let groups: Vec<String> = ["g1", "g4", "g7"].map(String::from).to_vec();
    // Mostly inference, as on a real gateway; every action now and then.
    let actions: Vec<Action> = [Action::InferenceChat; 10]
        .into_iter()
        .chain([Action::InferenceCompletion; 3])
        .chain([Action::InferenceEmbedding; 3])
        .chain([Action::ReadModels; 2])
        .chain(Action::ALL)
        .collect();
    let models = [Some("llama-3-8b"), Some("llama-3-70b"), Some("qwen2"), None, Some("mistral-7b")];
    let ips: [Option<IpAddr>; 3] = [Some("10.3.1.1".parse().unwrap()), Some("192.168.1.1".parse().unwrap()), None];
    let detected: [&[&str]; 2] = [&[], &["SECRET_AWS_ACCESS_KEY"]];
    let now = SystemTime::now();
    let mut samples = Vec::with_capacity(decisions);
    let mut counts = [0usize; 3];
    for i in 0..decisions {
        let q = Query {
            subject: "alice",
            kind: PrincipalKind::User,
            groups: &groups,
            action: actions[i % actions.len()],
            model: models[i % models.len()],
            upstream: Some("ollama"),
            src_ip: ips[i % ips.len()],
            time: now,
            auth_method: "oidc",
            stream: i % 2 == 0,
            max_tokens: Some(512),
            detected: detected[usize::from(i % 50 == 0)],
        };
        let start = Instant::now();
        let d = if unsliced { policies.decide_unsliced(&q) } else { policies.decide(&q) };
        samples.push(start.elapsed().as_nanos() as u64);
        counts[match black_box(&d).effect {
            Effect::Allow => 0,
            Effect::Deny => 1,
            Effect::RequireApproval => 2,
        }] += 1;
    }
    let (p50, p99, max) = percentiles(samples);
    println!(
        "{name:<34} {decisions:>7} decisions  p50 {p50:>8.2} µs  p99 {p99:>8.2} µs  max {max:>9.2} µs  (allow {}, deny {}, approval {})",
        counts[0], counts[1], counts[2]
    );
}

fn main() {
    let decisions: usize = std::env::args().nth(1).map_or(200_000, |s| s.parse().unwrap());
    let only_sliced = std::env::args().nth(2).is_some_and(|a| a == "sliced");
    for n in [10, 1000] {
        let c = config(n);
        let start = Instant::now();
        let p = Policies::load(&c, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
        println!("{n} rules: {} Cedar policies, loaded in {:.1} ms", p.len(), start.elapsed().as_secs_f64() * 1000.0);
        run(&format!("{n} rules, sliced (decide)"), &p, decisions, false);
        let plain = if n > 100 { decisions / 100 } else { decisions };
        if only_sliced {
            continue;
        }
        run(&format!("{n} rules, plain Cedar (unsliced)"), &p, plain, true);
    }
}
