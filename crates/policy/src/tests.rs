#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use config::{AccessRule, ApprovalConfig, Config, Durability, Effect as RuleEffect, GrantKind};
use protocols::Action;

use crate::compile::{compile_rule, lit};
use crate::decide::detected_set;
use crate::family::{Family, is_sensitive_name};

#[test]
fn detected_types_add_their_prefix_globs() {
    let s: Vec<String> = detected_set(&["SECRET_AWS_ACCESS_KEY", "EMAIL"]).into_iter().collect();
    assert_eq!(s, ["*", "EMAIL", "SECRET_*", "SECRET_AWS_*", "SECRET_AWS_ACCESS_*", "SECRET_AWS_ACCESS_KEY"]);
    assert!(detected_set(&[]).is_empty());
}

#[test]
fn families_and_sensitivity() {
    for a in Action::ALL {
        assert_eq!(Family::from_name(a.as_str()), Some(a.family()), "{a}");
    }
    assert_eq!(Family::from_name("model"), Some(Family::Model));
    assert_eq!(Family::from_name("model.fly"), None);
    assert_eq!(Family::from_name("models"), None);
    assert!(!is_sensitive_name("inference") && !is_sensitive_name("read.models"));
    assert!(is_sensitive_name("model.pull") && is_sensitive_name("data") && is_sensitive_name("unknown"));
    assert!(is_sensitive_name("server.config") && is_sensitive_name("adapter"));
}

#[test]
fn the_schema_names_every_action() {
    for a in Action::ALL {
        assert!(crate::SCHEMA.contains(&format!("\"{}\"", a.as_str())), "{a} missing from the schema");
    }
}

#[test]
fn rules_compile_to_readable_cedar() {
    let rule = AccessRule {
        id: Some("r".into()),
        description: Some("two \"groups\"".into()),
        groups: vec!["ml-team".into(), "ops".into()],
        actions: vec!["inference".into(), "model.pull".into()],
        models: vec!["llama-*".into(), "qwen".into()],
        upstreams: vec!["vllm".into()],
        source_ips: vec!["10.0.0.0/8".into(), "::1".into()],
        detected: vec!["SECRET_*".into()],
        durability: Some(Durability::Strict),
        require_approval: Some(ApprovalConfig {
            grant: GrantKind::Window,
            ttl: Some(std::time::Duration::from_secs(3600)),
            ..ApprovalConfig::new(vec!["security".into(), "leads".into()])
        }),
        ..AccessRule::default()
    };
    let out = compile_rule(4, &rule, "access[4]");
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].id.as_str(), out[1].id.as_str()), ("r#0", "r#1"));
    assert_eq!(
        out[0].text,
        r#"@id("r#0")
@rule("r")
@description("two \"groups\"")
@durability("strict")
@approval("security,leads")
@approval_count("1")
@approval_grant("window")
@approval_ttl("1h")
@approval_pending_ttl("1h")
@approval_mode("hold")
@approval_hold_timeout("5m")
permit (
  principal in Group::"ml-team",
  action in [Action::"inference", Action::"model.pull"],
  resource
)
when {
  (resource.name like "llama-*" || resource.name == "qwen") &&
  resource in [Upstream::"vllm"] &&
  (context has src_ip && (context.src_ip.isInRange(ip("10.0.0.0/8")) || context.src_ip.isInRange(ip("::1/128")))) &&
  context.detected.containsAny(["SECRET_*"])
};
"#
    );
    assert!(out[1].text.contains("principal in Group::\"ops\""));
}

#[test]
fn action_scopes_for_star() {
    let scope = |actions: &[&str], effect: RuleEffect| {
        let rule = AccessRule {
            actions: actions.iter().map(|a| a.to_string()).collect(),
            effect,
            subjects: vec!["s".into()],
            ..AccessRule::default()
        };
        let text = &compile_rule(0, &rule, "access[0]")[0].text;
        text.lines().find(|l| l.trim_start().starts_with("action")).unwrap().trim().to_string()
    };
    assert_eq!(scope(&["*"], RuleEffect::Allow), "action,");
    assert_eq!(scope(&["*", "read.models"], RuleEffect::Allow), "action,");
    assert_eq!(
        scope(&["*", "model"], RuleEffect::Allow),
        "action in [Action::\"inference\", Action::\"read\", Action::\"model\"],"
    );
    assert_eq!(scope(&["*", "model"], RuleEffect::Deny), "action,");
    assert_eq!(scope(&["unknown"], RuleEffect::Allow), "action in [Action::\"unknown\"],");
}

#[test]
fn literals_escape() {
    assert_eq!(lit("a\"b\\c\n*"), "\"a\\\"b\\\\c\\u{a}*\"");
}

#[test]
fn every_compiled_rule_of_the_example_config_validates() {
    let c = Config::from_toml(config::EXAMPLE_CONFIG).unwrap();
    let p = crate::Policies::load(&c, std::path::Path::new(".")).unwrap();
    assert_eq!(p.len(), 4);
    assert!(p.needs_detection());
}
