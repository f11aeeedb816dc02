//! `modelgate approvals list|approve|deny|revoke|grants` (SPEC section 6). Deciding needs a
//! running gateway and the approver's own credential (`--server URL --token T`); listing also
//! works on a data dir.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::token::{Target, call};

/// `modelgate approvals ...`
#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// Pending approval requests (one JSON object per line with --json).
    List {
        /// Also decided and expired ones.
        #[arg(long)]
        all: bool,
        /// One JSON object per line: {"id","state","requester","action","model","expires"}.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request, as the identity of --token.
    Approve {
        /// The approval request's id.
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending request, as the identity of --token.
    Deny {
        /// The approval request's id.
        id: String,
        /// Why (required; recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Revoke a grant before it runs out.
    Revoke {
        /// The grant's id.
        grant_id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Active grants.
    Grants {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `approvals` subcommand.
pub fn run(cmd: ApprovalsCommand, target: &Target) -> Result<()> {
    let server = target.server.as_deref().zip(target.token.as_deref());
    match (cmd, server) {
        (ApprovalsCommand::List { all, json }, None) => {
            let list = approvals::read_list(&target.data_dir()?, !all)?;
            print_list(&list.iter().map(|v| serde_json::to_value(v).unwrap_or_default()).collect::<Vec<_>>(), json);
            Ok(())
        }
        (ApprovalsCommand::Grants { json }, None) => {
            let list = approvals::read_grants(&target.data_dir()?)?;
            print_grants(&list.iter().map(|v| serde_json::to_value(v).unwrap_or_default()).collect::<Vec<_>>(), json);
            Ok(())
        }
        (_, None) => bail!("approve, deny and revoke act on a running gateway: pass --server URL --token T"),
        (cmd, Some((server, token))) => {
            let base = server.trim_end_matches('/');
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                match cmd {
                    ApprovalsCommand::List { all, json } => {
                        let q = if all { "?state=all" } else { "" };
                        let v = call("GET", &format!("{base}/admin/v1/approvals{q}"), token, None).await?;
                        print_list(v["approvals"].as_array().map(Vec::as_slice).unwrap_or_default(), json);
                    }
                    ApprovalsCommand::Grants { json } => {
                        let v = call("GET", &format!("{base}/admin/v1/approvals/grants"), token, None).await?;
                        print_grants(v["grants"].as_array().map(Vec::as_slice).unwrap_or_default(), json);
                    }
                    ApprovalsCommand::Approve { id, reason } => {
                        let url = format!("{base}/admin/v1/approvals/{id}/approve");
                        let v = call("POST", &url, token, Some(json!({ "reason": reason }))).await?;
                        println!("{}: {}", id, v["state"].as_str().unwrap_or("?"));
                    }
                    ApprovalsCommand::Deny { id, reason } => {
                        let url = format!("{base}/admin/v1/approvals/{id}/deny");
                        let v = call("POST", &url, token, Some(json!({ "reason": reason }))).await?;
                        println!("{}: {}", id, v["state"].as_str().unwrap_or("?"));
                    }
                    ApprovalsCommand::Revoke { grant_id, reason } => {
                        let url = format!("{base}/admin/v1/approvals/grants/{grant_id}/revoke");
                        call("POST", &url, token, Some(json!({ "reason": reason }))).await?;
                        println!("{grant_id}: revoked");
                    }
                }
                Ok(())
            })
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_list(list: &[Value], json: bool) {
    for v in list {
        if json {
            let line = json!({
                "id": v["id"], "state": v["state"], "requester": v["requester"],
                "action": v["action"], "model": v["model"], "expires": v["expires"],
            });
            println!("{line}");
        } else {
            println!(
                "{}  {:<9} {:<16} {:<22} {:<24} expires {}",
                s(v, "id"),
                s(v, "state"),
                s(v, "requester"),
                s(v, "action"),
                s(v, "model"),
                s(v, "expires")
            );
        }
    }
    if !json && list.is_empty() {
        println!("no approval requests");
    }
}

fn print_grants(list: &[Value], json: bool) {
    for v in list {
        if json {
            println!("{v}");
        } else {
            println!(
                "{}  {:<7} {:<16} {:<10} {:<24} expires {}",
                s(v, "id"),
                s(v, "kind"),
                s(v, "subject"),
                s(v, "action_family"),
                s(v, "model"),
                s(v, "expires")
            );
        }
    }
    if !json && list.is_empty() {
        println!("no active grants");
    }
}
