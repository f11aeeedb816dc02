//! The `modelgate` binary: wires config, data path and admin listener together (SPEC section 6).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod approvals_cmd;
mod audit_cmd;
mod policy_cmd;
mod reload;
mod token;

#[derive(Parser)]
#[command(name = "modelgate", version, about = "An identity-aware, auditing gateway for self-hosted model servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults when no config is given).
    Serve {
        /// Path of the TOML config.
        #[arg(long, short = 'c', env = "MODELGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Issue, list and revoke gateway keys (SPEC section 6).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
        #[command(flatten)]
        target: token::Target,
    },
    /// Verify, checkpoint and export the audit trail (SPEC sections 5 and 6).
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
        #[command(flatten)]
        target: token::Target,
    },
    /// List, approve, deny and revoke just-in-time approvals (SPEC section 6).
    Approvals {
        #[command(subcommand)]
        command: approvals_cmd::ApprovalsCommand,
        #[command(flatten)]
        target: token::Target,
    },
    /// Validate a config's policies, or explain a decision (SPEC section 6).
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
        #[command(flatten)]
        target: token::Target,
    },
    /// Write a commented example config.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "modelgate.toml")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Init { out, force } => init(&out, force),
        Command::Token { command, target } => token::run(command, &target),
        Command::Audit { command, target } => audit_cmd::run(command, &target),
        Command::Policy { command, target } => policy_cmd::run(command, &target),
        Command::Approvals { command, target } => approvals_cmd::run(command, &target),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        anyhow::bail!("{} exists; pass --force to overwrite it", out.display());
    }
    std::fs::write(out, config::EXAMPLE_CONFIG).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    println!("start the gateway with: modelgate serve --config {}", out.display());
    Ok(())
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    read_config(path).map(|(config, _, _)| config)
}

/// The config at `path` (None: the embedded defaults), the text it was read from, and that text
/// as a TOML table (for reload's diff and the config view), from one read and one parse.
fn read_config(path: Option<&Path>) -> Result<(Config, String, Option<toml::Table>)> {
    match path {
        None => Ok((Config::default(), "embedded defaults".to_string(), None)),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
            let (config, table) = Config::from_toml_with_table(&text).with_context(|| format!("in {}", p.display()))?;
            Ok((config, text, table))
        }
    }
}

fn serve(config_path: Option<&Path>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config, config_text, table) = read_config(config_path)?;
    let policies = policy::Policies::load(&config, &reload::base_dir(config_path)).map_err(policy_cmd::policy_error)?;
    // One core (a container limit or a CPU pin): a current-thread runtime, which skips the
    // work-stealing scheduler's cross-thread bookkeeping. More cores: one worker per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cores).enable_all().build()
    }
    .context("starting the runtime")?;
    runtime.block_on(run(config, policies, config_path, &config_text, table))
}

/// Opens the audit trail and writes what a start must record: `gateway.start`,
/// `config.loaded`, and `gateway.recovered` when a crash left exchanges open.
async fn open_audit(
    config: &Config,
    policies: &policy::Policies,
    config_path: Option<&Path>,
    config_text: &[u8],
) -> Result<Arc<audit::Audit>> {
    use audit::{Actor, Entry, Event, EventType, Outcome};
    let s = &config.server;
    let a = &config.audit;
    let mut wc = audit::WriterConfig::gateway(&s.data_dir);
    wc.queue_limit = a.queue_limit;
    wc.checkpoint_every = a.checkpoint_every;
    wc.checkpoint_interval = a.checkpoint_interval;
    let (trail, opened) = audit::Audit::open(wc).context("opening the audit trail")?;
    if opened.key_created {
        println!("audit signing key created: ed25519 {}", opened.fingerprint);
    } else {
        println!("audit signing key: ed25519 {}", opened.fingerprint);
    }
    let system = Arc::new(Actor::system());
    let mut start = Event::new(EventType::GatewayStart, Outcome::Success).actor(system.clone());
    start.details = Some(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "key_fingerprint": opened.fingerprint,
    }));
    trail.submit(Entry::event(start));
    let mut loaded = Event::new(EventType::ConfigLoaded, Outcome::Success).actor(system.clone());
    loaded.resource = Some(audit::Resource {
        id: Some(config_path.map_or_else(|| "embedded".to_string(), |p| p.display().to_string())),
        kind: "config".into(),
        upstream: None,
    });
    loaded.change = Some(audit::Change {
        after_hash: Some(format!(
            "sha256:{}",
            audit::canonical::hex(&<sha2::Sha256 as sha2::Digest>::digest(config_text))
        )),
        before_hash: None,
        diff: None,
    });
    loaded.details = Some(serde_json::json!({
        "durability": a.durability.as_str(),
        "recording": if a.recording == config::Recording::Full { "full" } else { "metadata" },
        "upstreams": config.upstreams.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        "policy_version": &**policies.version(),
        "policies": policies.len(),
    }));
    trail.submit(Entry::event(loaded));
    if !opened.crashed.is_empty() {
        let mut e = Event::new(EventType::GatewayRecovered, Outcome::Unknown).actor(system);
        e.end = Some("gateway_restart".into());
        e.reason = Some("exchanges left without a completion by a crash".into());
        let list: Vec<serde_json::Value> = opened
            .cut_off
            .iter()
            .map(|c| {
                serde_json::json!({
                    "request_id": c.request_id,
                    "event_type": c.event_type,
                    "action": c.action,
                    "writer_id": c.writer_id,
                    "outcome": "unknown",
                    "end": "gateway_restart",
                })
            })
            .collect();
        e.details = Some(serde_json::json!({
            "count": list.len(),
            "exchanges": list,
            "crashed_writers": opened.crashed,
        }));
        tracing::warn!(
            count = opened.cut_off.len(),
            "the previous run did not stop cleanly; exchanges it left open are listed in gateway.recovered"
        );
        let ticket = trail.submit_waiting(Entry::event(e));
        // Mark the crashed writers reported only once the event is durable.
        if ticket.await.is_ok() {
            audit::Audit::mark_recovered(&s.data_dir, &opened.crashed).context("marking crashed writers recovered")?;
        }
    }
    Ok(trail)
}

async fn run(
    config: Config,
    policies: policy::Policies,
    config_path: Option<&Path>,
    config_text: &str,
    table: Option<toml::Table>,
) -> Result<()> {
    let embedded = config_path.is_none();
    let s = &config.server;
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
    let trail = open_audit(&config, &policies, config_path, config_text.as_bytes()).await?;
    let keys = identity::keys::KeyStore::open(&s.data_dir).context("opening the key store")?;
    if let Some(path) = keys.ensure_admin_token().context("creating the admin token")? {
        // The path, never the token.
        println!("admin token written to {} (mode 0600); it is shown nowhere else", path.display());
    }
    let oidc = identity::oidc::OidcVerifier::new(&config.identity.oidc).context("setting up OIDC issuers")?;
    oidc.start();
    let auth = Arc::new(identity::authn::Authenticator::new(keys.clone(), oidc, config.roles.clone()));
    let settings = approvals::Settings {
        max_window_ttl: config.approvals.max_window_ttl,
        public_url: config.server.public_url.clone(),
    };
    let approvals = approvals::Approvals::open(&s.data_dir, trail.clone(), settings).context("opening approvals")?;
    let webhooks = approvals::webhook::Webhooks::new(&config.approvals).context("setting up approval webhooks")?;
    webhooks.start();
    let metrics = Arc::new(gateway::Metrics::with_sources(Some(trail.metrics()), Some(webhooks.metrics())));
    let webhooks = Arc::new(webhooks);
    let drain_hooks = webhooks.clone();
    let mut notices = approvals.subscribe();
    tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(n) => webhooks.notify(&n),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    tracing::warn!(missed = k, "approval notifications fell behind; some webhooks were not sent")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let mask_key = masking_key(&s.data_dir).context("loading the masking key")?;
    let gw = gateway::Gateway::build(
        &config,
        policies,
        metrics.clone(),
        auth.clone(),
        trail.clone(),
        approvals.clone(),
        mask_key,
    )?;
    let tls = s.tls.as_ref().map(gateway::tls_acceptor).transpose()?;
    let data = TcpListener::bind(s.listen).await.with_context(|| format!("binding server.listen {}", s.listen))?;
    let admin = TcpListener::bind(s.admin_listen)
        .await
        .with_context(|| format!("binding server.admin_listen {}", s.admin_listen))?;
    let data_addr = data.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let async_only = config.audit.durability == config::Durability::Async
        && config.upstreams.iter().all(|u| u.durability.is_none_or(|d| d == config::Durability::Async));
    let admin_state = console::AdminState::new(metrics, auth, trail.clone(), !async_only);
    // Search indexes are kept by a thread of their own, off the audit writer's path.
    let on_demand = config.audit.search_index == config::SearchIndex::OnDemand;
    let indexer = audit::index::Indexer::start(&s.data_dir, on_demand).context("starting the search indexer")?;
    let _ = admin_state.search.set(Arc::new(audit::search::SearchService::new(&s.data_dir, indexer.clone())));
    let _ = admin_state.gateway.set(gw.clone());
    let _ = admin_state.approvals.set(approvals.clone());
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(8);
    let _ = admin_state.reload.set(reload_tx);
    let reloader =
        reload::Reloader::new(config_path, config_text, table, &config, gw.clone(), trail.clone(), admin_state.clone());
    let reload_task = reloader.spawn(reload_rx, stop_rx.clone())?;
    let flusher = keys.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let store = flusher.clone();
            match tokio::task::spawn_blocking(move || store.flush_last_used()).await {
                Ok(Err(e)) => tracing::warn!("saving key last-used times failed: {e}"),
                Err(e) => tracing::warn!("saving key last-used times failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    });
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(console::serve(admin, admin_state.clone(), async move {
        let _ = admin_stop.wait_for(|s| *s).await;
    }));

    if embedded {
        tracing::info!(
            "no --config given: embedded defaults (upstream {}; `modelgate init` writes a config)",
            config.upstreams[0].url
        );
    }
    tracing::info!(data_dir = %s.data_dir.display(), upstreams = config.upstreams.len(), "modelgate {} started", env!("CARGO_PKG_VERSION"));
    let stop_signal = shutdown_signal()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Machine-readable lines on stdout; tests and scripts wait for them.
    println!("data listener: {scheme}://{data_addr}");
    println!("admin listener: http://{admin_addr}");
    admin_state.ready.store(true, Ordering::Release);

    let opts = gateway::ServeOptions {
        max_header_bytes: usize::try_from(s.max_header_bytes).unwrap_or(usize::MAX),
        shutdown_grace: s.shutdown_grace,
    };
    let ready = admin_state.clone();
    gateway::serve(data, tls, gw, opts, async move {
        stop_signal.await;
        ready.ready.store(false, Ordering::Release);
        tracing::info!("shutdown requested");
    })
    .await;
    // Approval notifications still being sent or retried get the same grace as open streams.
    let abandoned = drain_hooks.drain(s.shutdown_grace).await;
    if abandoned > 0 {
        tracing::warn!(deliveries = abandoned, "approval webhook deliveries still pending at shutdown are abandoned");
    }
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    let _ = reload_task.await;
    indexer.stop();
    if let Err(e) = keys.flush_last_used() {
        tracing::warn!("saving key last-used times failed: {e}");
    }
    let stop = audit::Event::new(audit::EventType::GatewayStop, audit::Outcome::Success)
        .actor(Arc::new(audit::Actor::system()));
    // Blocks this thread briefly: everything else has stopped.
    trail.close(Some(stop));
    tracing::info!("modelgate stopped");
    Ok(())
}

/// The key of `pseudonymize` masking (`DATA_DIR/masking.key`, 32 random bytes, mode 0600),
/// created on first start: the same value gives the same token under one key, across restarts.
fn masking_key(data_dir: &Path) -> Result<Arc<[u8; 32]>> {
    Ok(Arc::new(identity::keys::load_or_create_secret(&data_dir.join("masking.key"))?))
}

/// Registers SIGTERM and SIGINT handlers now (before the listener lines are printed, so a
/// signal right after start is a graceful stop, not the default kill) and returns a future that
/// resolves on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
