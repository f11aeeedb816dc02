//! `modelgate token create|list|revoke`: against the data dir, or a running gateway's admin API.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use identity::keys::{self, KeyStore, NewKey};
use identity::{Kind, Role};
use serde_json::{Value, json};

/// Where a state-changing command acts.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The data dir to act on (default: the config's `server.data_dir`, else ./modelgate-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Config file whose `server.data_dir` to use.
    #[arg(long, short = 'c', global = true, env = "MODELGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A running gateway's admin URL (e.g. http://127.0.0.1:8081) instead of the data dir.
    #[arg(long, global = true, requires = "token")]
    pub server: Option<String>,
    /// Credential for `--server`: an admin key or token.
    #[arg(long, global = true, env = "MODELGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Target {
    /// The data dir this command acts on.
    pub fn data_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                Ok(config::Config::from_toml(&text).with_context(|| format!("in {}", p.display()))?.server.data_dir)
            }
            None => Ok(config::ServerConfig::default().data_dir),
        }
    }
}

/// `token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a key; its secret is printed once.
    Create {
        /// Subject the key authenticates as.
        #[arg(long)]
        subject: String,
        /// Groups, comma-separated (default: users).
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
        /// Admin role: auditor, approver or admin (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The key is for a workload, not a person.
        #[arg(long)]
        service: bool,
        /// Lifetime, e.g. 30d or 12h (default: never expires).
        #[arg(long)]
        ttl: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Print one JSON object ({"id","secret",...}).
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it fails on its next use.
    Revoke {
        /// The key id.
        id: String,
    },
}

/// Runs a `token` command.
pub fn run(cmd: TokenCommand, target: &Target) -> Result<()> {
    match &target.server {
        Some(url) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(remote(cmd, url, target.token.as_deref().unwrap_or_default()))
        }
        None => local(cmd, &target.data_dir()?),
    }
}

fn parse_roles(roles: &[String]) -> Result<Vec<Role>> {
    roles
        .iter()
        .map(|r| Role::from_name(r).with_context(|| format!("unknown role \"{r}\" (auditor, approver, admin)")))
        .collect()
}

fn local_user() -> String {
    format!(
        "local:{}",
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into())
    )
}

/// Appends a token event to the data dir's audit trail as the local OS user (its own writer).
fn record_local(dir: &Path, kind: audit::EventType, key: &keys::KeyRecord) -> Result<()> {
    let who = identity::Identity {
        subject: local_user().trim_start_matches("local:").to_string(),
        issuer: "os".into(),
        kind: Kind::Human,
        display: None,
        groups: Vec::new(),
        auth_method: identity::AuthMethod::Local,
        credential_id: None,
        src_ip: None,
        user_agent: None,
        roles: Vec::new(),
    };
    audit::append_local(dir, vec![console::token_event(kind, &who, key)])
        .with_context(|| format!("recording the change in the audit trail of {}", dir.display()))?;
    Ok(())
}

fn local(cmd: TokenCommand, dir: &Path) -> Result<()> {
    let store = KeyStore::open(dir).with_context(|| format!("opening the key store in {}", dir.display()))?;
    let now = keys::now_unix();
    match cmd {
        TokenCommand::Create { subject, groups, roles, service, ttl, description, json } => {
            let new = NewKey {
                subject,
                groups: groups.unwrap_or_else(|| vec![keys::DEFAULT_GROUP.to_string()]),
                kind: if service { Kind::Service } else { Kind::Human },
                roles: parse_roles(&roles)?,
                ttl: ttl.as_deref().map(config::parse_duration).transpose().map_err(anyhow::Error::msg)?,
                description,
                created_by: local_user(),
            };
            let created = store.create(new)?;
            record_local(dir, audit::EventType::TokenCreated, &created.record)?;
            let mut v = keys::record_json(&created.record, now);
            v["secret"] = json!(created.secret);
            print_created(&v, json);
        }
        TokenCommand::List { json } => {
            let list: Vec<Value> = store.list().iter().map(|r| keys::record_json(r, now)).collect();
            print_list(&list, json);
        }
        TokenCommand::Revoke { id } => {
            let r = store.revoke(&id)?;
            record_local(dir, audit::EventType::TokenRevoked, &r)?;
            println!("revoked key {} ({})", r.id, r.subject);
        }
    }
    Ok(())
}

async fn remote(cmd: TokenCommand, base: &str, token: &str) -> Result<()> {
    let base = base.trim_end_matches('/');
    match cmd {
        TokenCommand::Create { subject, groups, roles, service, ttl, description, json } => {
            parse_roles(&roles)?;
            let body = json!({"subject": subject, "groups": groups, "roles": roles, "service": service, "ttl": ttl, "description": description});
            let v = call("POST", &format!("{base}/admin/v1/tokens"), token, Some(body)).await?;
            print_created(&v, json);
        }
        TokenCommand::List { json } => {
            let v = call("GET", &format!("{base}/admin/v1/tokens"), token, None).await?;
            let list = v["tokens"].as_array().cloned().unwrap_or_default();
            print_list(&list, json);
        }
        TokenCommand::Revoke { id } => {
            let v = call("DELETE", &format!("{base}/admin/v1/tokens/{id}"), token, None).await?;
            println!("revoked key {} ({})", v["id"].as_str().unwrap_or(&id), v["subject"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// One admin API call; errors carry the server's message.
pub async fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> Result<Value> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes))?;
    let res = client.request(req).await.with_context(|| format!("calling {url}"))?;
    let status = res.status();
    let body = res.into_body().collect().await.context("reading the answer")?.to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let msg =
            v["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(&body).into());
        bail!("{url}: {status}: {msg}");
    }
    Ok(v)
}

fn print_created(v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    println!(
        "created key {} for {} (groups: {}; roles: {}; expires: {})",
        v["id"].as_str().unwrap_or("?"),
        v["subject"].as_str().unwrap_or("?"),
        join(&v["groups"]),
        join(&v["roles"]),
        v["expires_at"].as_str().unwrap_or("never"),
    );
    println!("secret (shown once, store it now): {}", v["secret"].as_str().unwrap_or("?"));
}

fn join(v: &Value) -> String {
    let items: Vec<&str> = v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

fn print_list(list: &[Value], json: bool) {
    if json {
        for v in list {
            println!("{v}");
        }
        return;
    }
    println!(
        "{:<18} {:<20} {:<16} {:<8} {:<14} {:<8} {:<21} {:<21}",
        "ID", "SUBJECT", "GROUPS", "KIND", "ROLES", "STATUS", "EXPIRES", "LAST USED"
    );
    for v in list {
        println!(
            "{:<18} {:<20} {:<16} {:<8} {:<14} {:<8} {:<21} {:<21}",
            v["id"].as_str().unwrap_or("?"),
            v["subject"].as_str().unwrap_or("?"),
            join(&v["groups"]),
            v["kind"].as_str().unwrap_or("?"),
            join(&v["roles"]),
            v["status"].as_str().unwrap_or("?"),
            v["expires_at"].as_str().unwrap_or("never"),
            v["last_used_at"].as_str().unwrap_or("-"),
        );
    }
}
