//! `modelgate policy validate|check` (SPEC section 6): offline on a config, or against a
//! running gateway's policy in force (`--server`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use config::Config;
use console::policy_api::{self, CheckRequest};
use serde_json::Value;

use crate::token::{Target, call};

/// `modelgate policy ...`
// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a config, its `[[access]]` rules and its `.cedar` files against the schema, offline.
    Validate {
        /// Also print the policy set as Cedar (the `[[access]]` rules compiled).
        #[arg(long)]
        print: bool,
    },
    /// The decision, obligations and deciding policies for a call, without sending anything.
    Check {
        /// The caller's subject.
        #[arg(long)]
        subject: String,
        /// The caller's groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The caller is a service identity.
        #[arg(long)]
        service: bool,
        /// The classified action (`inference.chat`, `model.pull`, ...).
        #[arg(long)]
        action: String,
        /// The model (omit for model-less calls).
        #[arg(long)]
        model: Option<String>,
        /// The upstream (default: the one the model routes to).
        #[arg(long)]
        upstream: Option<String>,
        /// The caller's address.
        #[arg(long)]
        src_ip: Option<IpAddr>,
        /// How the caller authenticated: api_key (default) or oidc.
        #[arg(long)]
        auth_method: Option<String>,
        /// The request streams.
        #[arg(long)]
        stream: bool,
        /// The requested max_tokens.
        #[arg(long)]
        max_tokens: Option<u64>,
        /// Entity types found in the request, comma-separated (e.g. SECRET_AWS_ACCESS_KEY).
        #[arg(long, value_delimiter = ',')]
        detected: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `policy` subcommand.
pub fn run(cmd: PolicyCommand, target: &Target) -> Result<()> {
    match cmd {
        PolicyCommand::Validate { print } => validate(target.config.as_deref(), print),
        PolicyCommand::Check {
            subject,
            groups,
            service,
            action,
            model,
            upstream,
            src_ip,
            auth_method,
            stream,
            max_tokens,
            detected,
            json,
        } => {
            let req = CheckRequest {
                subject,
                groups,
                kind: Some(if service { "service" } else { "human" }.into()),
                action,
                model,
                upstream,
                src_ip,
                auth_method,
                stream,
                max_tokens,
                detected,
            };
            let out = match (&target.server, &target.token) {
                (Some(server), Some(token)) => remote_check(server, token, &req)?,
                _ => {
                    let (config, base) = load(target.config.as_deref())?;
                    let policies = policy::Policies::load(&config, &base).map_err(policy_error)?;
                    policy_api::check(&policies, &req, |m| gateway::route::upstream_for_config(&config, m))
                        .map_err(anyhow::Error::msg)?
                }
            };
            print_decision(&out, json);
            Ok(())
        }
    }
}

fn remote_check(server: &str, token: &str, req: &CheckRequest) -> Result<Value> {
    let body = serde_json::to_value(req)?;
    let url = format!("{}/admin/v1/policy/check", server.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(call("POST", &url, token, Some(body)))
}

/// The config (embedded defaults without one) and the directory its relative paths start from.
fn load(path: Option<&Path>) -> Result<(Config, PathBuf)> {
    Ok((crate::load_config(path)?, crate::reload::base_dir(path)))
}

/// A policy set that failed to load, as the CLI reports it.
pub(crate) fn policy_error(e: policy::PolicyError) -> anyhow::Error {
    anyhow::anyhow!("the policy set is invalid:\n  {}", e.messages().join("\n  "))
}

fn validate(path: Option<&Path>, print: bool) -> Result<()> {
    let (config, base) = load(path)?;
    let policies = policy::Policies::load(&config, &base).map_err(policy_error)?;
    if print {
        println!("{}", policies.source());
    }
    let name = path.map_or_else(|| "embedded defaults".to_string(), |p| p.display().to_string());
    println!("{name}: valid; {} policies; version {}", policies.len(), policies.version());
    if config.access.is_empty() && config.policy.files.is_empty() {
        println!(
            "note: no [[access]] rules and no [policy] files: the default rule applies (group `users` may use `inference` on every model)"
        );
    }
    Ok(())
}

fn print_decision(v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("decision: {}", s("decision"));
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let policies = list("policies");
    println!("policies: {}", if policies.is_empty() { "(none)".into() } else { policies.join(", ") });
    let obligations = match &v["obligations"] {
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>(),
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        _ => Vec::new(),
    };
    println!("obligations: {}", if obligations.is_empty() { "(none)".into() } else { obligations.join("; ") });
    if let Some(r) = v["reason"].as_str() {
        println!("reason: {r}");
    }
    if let Some(u) = v["upstream"].as_str() {
        println!("upstream: {u}");
    }
    println!("version: {}", s("version"));
    if v["errors"].as_array().is_some_and(|a| !a.is_empty()) {
        println!("errors: {}", v["errors"]);
    }
}
