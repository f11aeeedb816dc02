//! `modelgate audit verify|checkpoint|export` (SPEC sections 5 and 6; DURABILITY.md).
//!
//! These act on a data dir (the gateway may be running: they read a snapshot and append as a
//! writer of their own), except `checkpoint --server`, which asks a running gateway, and
//! `verify --export`, which needs nothing but the export directory.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use audit::checkpoint::{CHECKPOINT_SCHEMA, CheckpointBody, Keypair, SignedCheckpoint, parse_public_key};
use audit::store::{DB_FILE, Store};
use audit::verify::{Options, Report};
use audit::{Actor, Event, EventType, Outcome, Resource};
use clap::Subcommand;
use serde_json::json;

use crate::token::Target;

/// `audit` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Re-hash the log, check its chain, index columns and signed checkpoints; exits non-zero
    /// naming the first bad seq.
    Verify {
        /// The public key (base64, as in `audit-signing.pub`) signatures must verify under
        /// (default: the data dir's own, which someone with write access could replace).
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// A checkpoint exported earlier (`audit checkpoint --out`) that the log must still
        /// hold: detects truncation and rewritten history.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Also re-digest every recorded body against the digest chained in its event.
        #[arg(long)]
        content: bool,
        /// Do not compare index columns with the hashed events (chain and signatures only).
        #[arg(long)]
        no_fields: bool,
        /// Verify an export directory (`audit export --out`) offline instead of a data dir.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Sign the log's head now and write the checkpoint to FILE, to keep off the box (with
    /// `--server`: the running gateway's latest checkpoint).
    Checkpoint {
        /// Where to write the signed checkpoint (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write events (with hashes), checkpoints and the public key of a time range to a
    /// directory that verifies offline.
    Export {
        /// Start: RFC 3339, or a duration before now (24h, 7d). Default: the first event.
        #[arg(long)]
        since: Option<String>,
        /// End (exclusive): RFC 3339, `now`, or a duration before now. Default: the last event.
        #[arg(long)]
        until: Option<String>,
        /// The directory to write (created; must not hold an export already).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `audit` command.
pub fn run(cmd: AuditCommand, target: &Target) -> Result<()> {
    match cmd {
        AuditCommand::Verify { public_key, checkpoint, content, no_fields, export, threads, json } => {
            let key = public_key
                .as_deref()
                .map(|p| audit::verify::read_public_key(p).with_context(|| "reading --public-key".to_string()))
                .transpose()?;
            let cp = checkpoint
                .as_deref()
                .map(|p| audit::verify::read_checkpoint(p).with_context(|| "reading --checkpoint".to_string()))
                .transpose()?;
            if let Some(dir) = export {
                let report = audit::export::verify_export(&dir, key.as_ref(), cp.as_ref())?;
                return finish(&report, json);
            }
            if target.server.is_some() {
                bail!(
                    "audit verify reads the data dir itself (it must not trust the server it checks): run it where \
                     the data dir is, or verify an export with --export"
                );
            }
            let dir = data_dir(target)?;
            let opts = Options {
                fields: !no_fields,
                content,
                public_key: key.as_ref(),
                checkpoint: cp.as_ref(),
                threads: threads.unwrap_or(0),
                progress: None,
            };
            let shown = Mutex::new(None::<Instant>);
            let bar = |done: u64, total: u64| progress(&shown, done, total);
            let report = if std::io::stderr().is_terminal() {
                let r = audit::verify::verify(&dir, &Options { progress: Some(&bar), ..opts });
                if shown.lock().map(|s| s.is_some()).unwrap_or(false) {
                    eprint!("\r{:78}\r", "");
                }
                r
            } else {
                audit::verify::verify(&dir, &opts)
            };
            let report = report?;
            record_verify(&dir, &report, content, cp.as_ref());
            finish(&report, json)
        }
        AuditCommand::Checkpoint { out } => match &target.server {
            Some(url) => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let url = format!("{}/admin/v1/checkpoints/latest", url.trim_end_matches('/'));
                let v =
                    rt.block_on(crate::token::call("GET", &url, target.token.as_deref().unwrap_or_default(), None))?;
                let cp: SignedCheckpoint =
                    serde_json::from_value(v).with_context(|| format!("{url} did not answer a signed checkpoint"))?;
                let key = parse_public_key(&cp.public_key).context("the checkpoint's public key is malformed")?;
                cp.verify(&key).context("the server's checkpoint does not verify under its own key")?;
                write_checkpoint(&out, &cp)?;
                println!(
                    "checkpoint of seq {} (hash {}) signed by ed25519 {} written to {}",
                    cp.body.seq,
                    cp.body.hash,
                    cp.body.key_fingerprint,
                    out.display()
                );
                Ok(())
            }
            None => {
                let dir = data_dir(target)?;
                let cp = checkpoint_local(&dir, &out)?;
                println!(
                    "checkpoint of seq {} (hash {}) signed by ed25519 {} written to {}",
                    cp.body.seq,
                    cp.body.hash,
                    cp.body.key_fingerprint,
                    out.display()
                );
                Ok(())
            }
        },
        AuditCommand::Export { since, until, out, json } => {
            if target.server.is_some() {
                bail!("audit export reads the data dir: run it where the data dir is");
            }
            let dir = data_dir(target)?;
            let now = SystemTime::now();
            let parse = |t: &Option<String>, flag: &str| {
                t.as_deref()
                    .map(|t| audit::export::parse_time(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                    .transpose()
            };
            let (from, to) = (parse(&since, "since")?, parse(&until, "until")?);
            let summary = audit::export::export(&dir, from, to, &out)?;
            let rfc = |t: Option<SystemTime>| t.map(audit::export::format_time);
            let mut e = local_event(EventType::AuditExport, Outcome::Success);
            e.details = Some(json!({
                "since": since, "until": until, "since_time": rfc(from), "until_time": rfc(to),
                "events": summary.events, "first_seq": summary.first_seq, "last_seq": summary.last_seq,
                "checkpoints": summary.checkpoints, "out": out.display().to_string(),
            }));
            audit::append_local(&dir, vec![e]).context("recording the audit.export event")?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                let range = match (summary.first_seq, summary.last_seq) {
                    (Some(a), Some(b)) => format!("seq {a}..={b}"),
                    _ => "no events in that window".into(),
                };
                println!(
                    "exported {} events ({range}) and {} checkpoints to {}; verify with: modelgate audit verify \
                     --export {} --public-key KEY",
                    summary.events,
                    summary.checkpoints,
                    out.display(),
                    out.display()
                );
            }
            Ok(())
        }
    }
}

/// The data dir, which must hold an audit log already (never created by a reader).
fn data_dir(target: &Target) -> Result<PathBuf> {
    let dir = target.data_dir()?;
    if !dir.join(DB_FILE).exists() {
        bail!("{} holds no audit log ({DB_FILE}); pass --data-dir or --config", dir.display());
    }
    Ok(dir)
}

fn local_event(kind: EventType, outcome: Outcome) -> Event {
    let mut e = Event::new(kind, outcome).actor(Arc::new(Actor::local_user()));
    e.resource = Some(Resource { id: None, kind: "audit".into(), upstream: None });
    e
}

/// Prints the report; a mismatch is an error naming the first bad seq (non-zero exit).
fn finish(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.to_text());
    }
    match &report.failure {
        None => Ok(()),
        Some(f) => bail!("audit verify failed: first bad seq {} ({})", f.seq, f.kind.as_str()),
    }
}

/// Appends `audit.verify` after verifying; its own event can never fail the run it records.
fn record_verify(dir: &Path, report: &Report, content: bool, cp: Option<&SignedCheckpoint>) {
    let outcome = if report.ok { Outcome::Success } else { Outcome::Failure };
    let mut e = local_event(EventType::AuditVerify, outcome);
    e.reason = report.failure.as_ref().map(|f| f.kind.as_str().to_string());
    e.details = Some(json!({
        "events": report.events,
        "last_seq": report.last_seq,
        "head_hash": report.head_hash,
        "checkpoints": report.checkpoints,
        "last_signed_seq": report.last_signed_seq,
        "key_fingerprint": report.key_fingerprint,
        "fields": report.fields_checked,
        "content": content,
        "checkpoint_file_seq": cp.map(|c| c.body.seq),
        "first_bad_seq": report.failure.as_ref().map(|f| f.seq),
        "warnings": report.warnings.len(),
    }));
    if let Err(err) = audit::append_local(dir, vec![e]) {
        eprintln!("modelgate: warning: could not record the audit.verify event: {err}");
    }
}

/// Appends `audit.checkpoint`, signs the new head with the data dir's key, stores the
/// checkpoint and writes it to `out`.
fn checkpoint_local(dir: &Path, out: &Path) -> Result<SignedCheckpoint> {
    let key = Keypair::load(dir)
        .with_context(|| format!("loading the signing key in {} (run as the gateway's user)", dir.display()))?;
    let mut e = local_event(EventType::AuditCheckpoint, Outcome::Success);
    e.details = Some(json!({ "out": out.display().to_string(), "key_fingerprint": key.fingerprint() }));
    let stored = audit::append_local(dir, vec![e]).context("recording the audit.checkpoint event")?;
    let Some(head) = stored.into_iter().next() else { bail!("the audit.checkpoint event was not stored") };
    let body = CheckpointBody {
        gateway_id: head.gateway_id.clone(),
        hash: head.hash.clone().unwrap_or_default(),
        key_fingerprint: key.fingerprint(),
        schema: CHECKPOINT_SCHEMA.into(),
        seq: head.seq,
        time: audit::event::now_rfc3339(),
        writer_id: head.writer_id.clone(),
    };
    let cp = key.sign(body);
    Store::open_writer(dir)?.insert_checkpoint(cp.body.seq, &cp.body.canonical_bytes(), &cp.signature_bytes())?;
    write_checkpoint(out, &cp)?;
    Ok(cp)
}

fn write_checkpoint(out: &Path, cp: &SignedCheckpoint) -> Result<()> {
    let mut text = serde_json::to_string_pretty(cp)?;
    text.push('\n');
    let mut f = std::fs::File::create(out).with_context(|| format!("writing {}", out.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    f.sync_all().with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Draws a plain-text progress bar on stderr (called only when stderr is a terminal), at most
/// ten times a second.
fn progress(shown: &Mutex<Option<Instant>>, done: u64, total: u64) {
    let Ok(mut last) = shown.lock() else { return };
    if last.is_some_and(|t| t.elapsed().as_millis() < 100) || total < 100_000 {
        return;
    }
    *last = Some(Instant::now());
    let frac = (done as f64 / total.max(1) as f64).min(1.0);
    let filled = (frac * 40.0) as usize;
    eprint!(
        "\r  verifying [{}{}] {:>3.0}% {done}/{total} events",
        "#".repeat(filled),
        ".".repeat(40 - filled),
        frac * 100.0
    );
}
