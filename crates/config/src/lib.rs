//! modelgate's configuration: the TOML schema of SPEC section 2, its embedded defaults, and pure
//! validation. Parsing and validation do no I/O; resolving secrets (`*_env`, `*_file`) and binding
//! sockets happen where the config is built into running parts (the gateway).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use protocols::Flavor;
use serde::{Deserialize, Deserializer};

mod access;
mod example;
mod units;

pub use access::{
    AccessRule, ApprovalConfig, ApprovalMode, DEFAULT_MASKING_PROFILE, Direction, Effect, GrantKind, MaskMode,
    MaskingConfig, MaskingProfile, PolicyConfig, default_hold_timeout, default_pending_ttl, is_entity_pattern,
    parse_cidr,
};
pub use example::EXAMPLE_CONFIG;
pub use units::{parse_duration, parse_size};

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, data directory, limits and timeouts.
    #[serde(default)]
    pub server: ServerConfig,
    /// The model servers behind the gateway, in routing order.
    #[serde(default = "default_upstreams")]
    pub upstreams: Vec<UpstreamConfig>,
    /// How callers prove who they are.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Groups mapped to admin roles.
    #[serde(default)]
    pub roles: RolesConfig,
    /// The audit trail: durability and recording.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[[access]]` rules, compiled to Cedar by the policy crate. When a config has no rules and
    /// no `[policy] files`, the embedded default rule applies ([`AccessRule::embedded_default`]:
    /// group `users` may use `inference` on every model), as on a zero-config start.
    #[serde(default)]
    pub access: Vec<AccessRule>,
    /// `[policy]`: raw Cedar files and group inheritance.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[masking]`: masking profiles named by rules.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// `[approvals]`: limits and notification webhooks for just-in-time approvals.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
}

/// When an exchange's audit records must be durable (SPEC section 5). Ordered strictest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The request record is fsync'd before forwarding; the completion before the final byte.
    #[default]
    Strict,
    /// Forwarding starts at once; no response byte before the request record is fsync'd; the
    /// completion follows by group commit.
    Balanced,
    /// Best effort with a bounded queue; drops are counted in `audit.gap`.
    Async,
}

impl Durability {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Balanced => "balanced",
            Durability::Async => "async",
        }
    }
}

/// What of an exchange is recorded beside the chain. Ordered most recorded first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recording {
    /// Request and response bodies (streams with chunk timing), compressed.
    #[default]
    Full,
    /// Events only.
    Metadata,
}

/// `[audit]`: durability, recording and the writer's bounds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Default durability mode; an upstream may override it.
    pub durability: Durability,
    /// Default recording level; an upstream may override it.
    pub recording: Recording,
    /// Per body and direction, bytes recorded before the recording is cut (marked truncated).
    #[serde(deserialize_with = "de_size")]
    pub max_recorded_bytes: u64,
    /// Records queued for the writer before `strict`/`balanced` callers wait and `async` drops.
    pub queue_limit: usize,
    /// A signed checkpoint after this many events...
    pub checkpoint_every: u64,
    /// ...or after this long with new events, whichever comes first.
    #[serde(deserialize_with = "de_duration")]
    pub checkpoint_interval: Duration,
    /// When the search index is kept up to date.
    pub search_index: SearchIndex,
}

/// When the search index (`search.db`) follows the audit log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchIndex {
    /// A background thread indexes new events as they arrive: searches are fast at any time.
    #[default]
    Background,
    /// Events are indexed when a search needs them: no indexing CPU under load, but the first
    /// search after a busy period waits for the backlog (and answers 503 past 5 s).
    OnDemand,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            durability: Durability::Strict,
            recording: Recording::Full,
            max_recorded_bytes: 1024 * 1024,
            queue_limit: 65_536,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(30),
            search_index: SearchIndex::Background,
        }
    }
}

/// `[identity]`: OIDC issuers and gateway-issued keys.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Trusted OIDC/JWT issuers (`[[identity.oidc]]`).
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
}

/// Whether an identity is a person or a workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// A person.
    #[default]
    Human,
    /// A workload: CI job, service account, batch process.
    Service,
}

/// One `[[identity.oidc]]` issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer URL, matched exactly against `iss`; `http://` only for loopback (development).
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// JWKS URL; when absent it is discovered from `{issuer}/.well-known/openid-configuration`.
    pub jwks_uri: Option<String>,
    /// Allowed signature algorithms (asymmetric only).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway", deserialize_with = "de_duration")]
    pub leeway: Duration,
    /// Claim (name or JSON Pointer) holding the subject.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claim (name or JSON Pointer) holding the display name; falls back to `name`,
    /// `preferred_username`, `email`.
    pub display_claim: Option<String>,
    /// Claim (name or JSON Pointer) holding the groups (an array of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Kind of every identity from this issuer, unless `service_claim` says otherwise.
    #[serde(default)]
    pub kind: IdentityKind,
    /// Claim (name or JSON Pointer) that marks a service identity when its value is one of
    /// `service_values` (e.g. Kubernetes `/kubernetes.io/namespace` present, or `token_use`).
    pub service_claim: Option<String>,
    /// Values of `service_claim` that mean "service"; empty means "present at all".
    #[serde(default)]
    pub service_values: Vec<String>,
    /// How long fetched keys are used before a background refresh.
    #[serde(default = "default_jwks_ttl", deserialize_with = "de_duration")]
    pub jwks_cache_ttl: Duration,
    /// Least time between two JWKS fetches (floods of unknown `kid`s cause one fetch per cooldown).
    #[serde(default = "default_jwks_cooldown", deserialize_with = "de_duration")]
    pub jwks_refresh_cooldown: Duration,
    /// PEM bundle of extra CAs for an IdP behind a private CA.
    pub ca_file: Option<PathBuf>,
}

/// `[roles]`: groups (from OIDC or key groups) mapped to admin roles.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// Groups whose members have every admin right.
    #[serde(default)]
    pub admin: Vec<String>,
    /// Groups whose members may read the audit trail.
    #[serde(default)]
    pub auditor: Vec<String>,
    /// Groups whose members may decide approvals.
    #[serde(default)]
    pub approver: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"].map(String::from).to_vec()
}

/// Algorithms an issuer may allow: asymmetric only, so a public key can never be used as an
/// HMAC secret.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_subject_claim() -> String {
    "sub".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_jwks_cooldown() -> Duration {
    Duration::from_secs(10)
}

/// `[server]`: listeners, data directory, limits and timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data-path listener (HTTP/1.1 and h2c; TLS when `[server.tls]` is set).
    pub listen: SocketAddr,
    /// Admin listener: `/healthz`, `/readyz`, `/metrics` and the admin API.
    pub admin_listen: SocketAddr,
    /// Where the gateway keeps its state; created on start.
    pub data_dir: PathBuf,
    /// Base URL under which callers reach this gateway (used for links in later features).
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes or with a unit ("16MiB"); more gives 413.
    #[serde(deserialize_with = "de_size")]
    pub max_request_bytes: u64,
    /// Largest streamed upload (multipart files, Ollama blobs), which is relayed unbuffered.
    #[serde(deserialize_with = "de_size")]
    pub max_upload_bytes: u64,
    /// Largest request head (request line and headers) read, in bytes or with a unit.
    #[serde(deserialize_with = "de_size")]
    pub max_header_bytes: u64,
    /// Time allowed to open a TCP connection to an upstream.
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Time allowed from forwarding a request to the upstream's first response byte.
    #[serde(deserialize_with = "de_duration")]
    pub first_byte_timeout: Duration,
    /// Longest silence allowed between two chunks of a streamed response.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Longest a whole exchange may take, first request byte to last response byte.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, how long running exchanges may continue before they are cut.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// TLS on the data listener.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: certificate chain and private key, PEM.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// One `[[upstreams]]` entry: a model server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique name, used in metrics, logs and audit events.
    pub name: String,
    /// Base URL, `http://` or `https://`, optionally with a path prefix.
    pub url: String,
    /// Wire flavor: openai | vllm | ollama | llamacpp | tgi | triton.
    #[serde(deserialize_with = "de_flavor")]
    pub flavor: Flavor,
    /// Model name globs (`*`, `?`) this upstream serves; `*` also matches model-less calls.
    #[serde(default)]
    pub models: Vec<String>,
    /// Requests whose path starts with this prefix go here, with the prefix removed.
    pub prefix: Option<String>,
    /// Takes model-less calls that no prefix claims.
    #[serde(default)]
    pub default: bool,
    /// Environment variable holding the upstream's API key, sent as a bearer token.
    pub api_key_env: Option<String>,
    /// File holding the upstream's API key, sent as a bearer token.
    pub api_key_file: Option<PathBuf>,
    /// For streamed OpenAI-style calls, ask the upstream for usage figures
    /// (`stream_options.include_usage`) and drop the extra chunk if the caller did not ask.
    #[serde(default = "yes")]
    pub stream_usage: bool,
    /// Durability of this upstream's exchanges, overriding `[audit] durability`.
    pub durability: Option<Durability>,
    /// Recording of this upstream's exchanges, overriding `[audit] recording`.
    pub recording: Option<Recording>,
}

/// `[approvals]`: limits of approval grants and who is notified of pending requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// Longest lifetime of a `window` grant, whatever a rule's `ttl` says.
    #[serde(deserialize_with = "de_duration")]
    pub max_window_ttl: Duration,
    /// Outgoing webhooks, each for the approvers of one group.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig { max_window_ttl: Duration::from_secs(24 * 3600), webhooks: Vec::new() }
    }
}

impl ApprovalsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_window_ttl.is_zero() {
            return Err(ConfigError::new("approvals.max_window_ttl", "must be greater than 0"));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::new(
                    format!("approvals.webhooks[{i}].url"),
                    "must start with http:// or https://",
                ));
            }
            if w.group.is_empty() {
                return Err(ConfigError::new(format!("approvals.webhooks[{i}].group"), "must name an approver group"));
            }
            if w.secret_env.is_some() == w.secret_file.is_some() {
                return Err(ConfigError::new(
                    format!("approvals.webhooks[{i}]"),
                    "needs exactly one of secret_env or secret_file (the HMAC signing secret)",
                ));
            }
        }
        Ok(())
    }
}

/// One `[[approvals.webhooks]]` entry: where pending requests for a group's approvers are posted,
/// signed with HMAC-SHA256, in a shape Slack and Teams incoming webhooks can show.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The approver group whose pending requests go here.
    pub group: String,
    /// The receiver's URL.
    pub url: String,
    /// Environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// File holding the signing secret.
    pub secret_file: Option<PathBuf>,
}

/// A configuration problem, naming the key's path.
#[derive(Debug, thiserror::Error)]
#[error("config error at `{path}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `upstreams[1].flavor`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: PathBuf::from("./modelgate-data"),
            public_url: None,
            max_request_bytes: 16 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            max_header_bytes: 96 * 1024,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            upstreams: default_upstreams(),
            identity: IdentityConfig::default(),
            roles: RolesConfig::default(),
            audit: AuditConfig::default(),
            access: Vec::new(),
            policy: PolicyConfig::default(),
            masking: MaskingConfig::default(),
            approvals: ApprovalsConfig::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// The embedded default upstream: a local Ollama.
fn default_upstreams() -> Vec<UpstreamConfig> {
    vec![UpstreamConfig {
        name: "ollama".into(),
        url: "http://127.0.0.1:11434".into(),
        flavor: Flavor::Ollama,
        models: vec!["*".into()],
        prefix: None,
        default: true,
        api_key_env: None,
        api_key_file: None,
        stream_usage: true,
        durability: None,
        recording: None,
    }]
}

impl Config {
    /// The access rules in force: the configured ones, or the embedded default when there are
    /// neither `[[access]]` rules nor `[policy] files`.
    pub fn effective_access(&self) -> std::borrow::Cow<'_, [AccessRule]> {
        if self.access.is_empty() && self.policy.files.is_empty() {
            std::borrow::Cow::Owned(vec![AccessRule::embedded_default()])
        } else {
            std::borrow::Cow::Borrowed(&self.access)
        }
    }

    /// Parses and validates TOML text. Pure: no file or network access.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_document(parse_document(text)?)
    }

    /// [`Config::from_toml`], plus the text as a TOML table (as written: no defaults filled in)
    /// from the same parse; the table is None when a value does not fit one (an integer beyond
    /// `i64`, which a `u64` setting accepts).
    pub fn from_toml_with_table(text: &str) -> Result<(Config, Option<toml::Table>), ConfigError> {
        let document = parse_document(text)?;
        let table = toml::Table::deserialize(toml::Deserializer::from(document.clone())).ok();
        Ok((Config::from_document(document)?, table))
    }

    /// Deserializes (errors name the key's path) and validates a parsed document.
    fn from_document(document: toml::Spanned<toml::de::DeTable<'_>>) -> Result<Config, ConfigError> {
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::from(document)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::new(path, inner.message().trim_end())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot: uniqueness, URL shapes, consistent routing keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_request_bytes == 0 {
            return Err(ConfigError::new("server.max_request_bytes", "must be greater than 0"));
        }
        if s.max_header_bytes < 8192 {
            return Err(ConfigError::new("server.max_header_bytes", "must be at least 8KiB"));
        }
        for (key, d) in [
            ("server.connect_timeout", s.connect_timeout),
            ("server.first_byte_timeout", s.first_byte_timeout),
            ("server.idle_timeout", s.idle_timeout),
            ("server.request_timeout", s.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        if let Some(url) = &s.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new("server.public_url", "must start with http:// or https://"));
        }
        if self.upstreams.is_empty() {
            return Err(ConfigError::new("upstreams", "at least one upstream is required"));
        }
        let mut defaults = 0;
        for (i, u) in self.upstreams.iter().enumerate() {
            let at = |key: &str| format!("upstreams[{i}].{key}");
            if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(ConfigError::new(
                    at("name"),
                    "must be non-empty and use only letters, digits, '-', '_' or '.'",
                ));
            }
            if self.upstreams[..i].iter().any(|o| o.name == u.name) {
                return Err(ConfigError::new(at("name"), format!("duplicate upstream name \"{}\"", u.name)));
            }
            parse_upstream_url(&u.url).map_err(|m| ConfigError::new(at("url"), m))?;
            for (j, m) in u.models.iter().enumerate() {
                if m.is_empty() {
                    return Err(ConfigError::new(format!("upstreams[{i}].models[{j}]"), "must not be empty"));
                }
            }
            if let Some(p) = &u.prefix {
                if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') {
                    return Err(ConfigError::new(at("prefix"), "must start with '/', and not end with '/'"));
                }
                if self.upstreams[..i].iter().any(|o| o.prefix.as_deref() == Some(p)) {
                    return Err(ConfigError::new(at("prefix"), format!("prefix \"{p}\" is used by another upstream")));
                }
            }
            if u.default {
                defaults += 1;
                if defaults > 1 {
                    return Err(ConfigError::new(at("default"), "only one upstream may be the default"));
                }
            }
            if u.api_key_env.is_some() && u.api_key_file.is_some() {
                return Err(ConfigError::new(at("api_key_file"), "set api_key_env or api_key_file, not both"));
            }
            if u.models.is_empty() && u.prefix.is_none() && !u.default {
                return Err(ConfigError::new(
                    at("models"),
                    "an upstream needs models, a prefix or default = true to receive traffic",
                ));
            }
        }
        for (i, o) in self.identity.oidc.iter().enumerate() {
            let at = |key: &str| format!("identity.oidc[{i}].{key}");
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| o.issuer.strip_prefix(p).is_some_and(|r| r.is_empty() || r.starts_with([':', '/'])));
            if !(o.issuer.starts_with("https://") || loopback) {
                return Err(ConfigError::new(at("issuer"), "must be https:// (http:// only for loopback issuers)"));
            }
            if self.identity.oidc[..i].iter().any(|p| p.issuer == o.issuer) {
                return Err(ConfigError::new(at("issuer"), format!("issuer \"{}\" is configured twice", o.issuer)));
            }
            if o.audiences.is_empty() {
                return Err(ConfigError::new(at("audiences"), "at least one audience is required"));
            }
            if o.algorithms.is_empty() {
                return Err(ConfigError::new(at("algorithms"), "at least one algorithm is required"));
            }
            for (j, a) in o.algorithms.iter().enumerate() {
                if !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()) {
                    return Err(ConfigError::new(
                        format!("identity.oidc[{i}].algorithms[{j}]"),
                        format!("\"{a}\" is not allowed; use one of {}", ASYMMETRIC_ALGORITHMS.join(", ")),
                    ));
                }
            }
            if o.leeway > Duration::from_secs(300) {
                return Err(ConfigError::new(at("leeway"), "must be at most 5m"));
            }
            if let Some(u) = &o.jwks_uri
                && !(u.starts_with("https://") || (loopback && u.starts_with("http://")))
            {
                return Err(ConfigError::new(at("jwks_uri"), "must be https:// (http:// only for loopback issuers)"));
            }
        }
        if self.audit.queue_limit == 0 {
            return Err(ConfigError::new("audit.queue_limit", "must be greater than 0"));
        }
        if self.audit.checkpoint_every == 0 {
            return Err(ConfigError::new("audit.checkpoint_every", "must be greater than 0"));
        }
        if self.audit.checkpoint_interval.is_zero() {
            return Err(ConfigError::new("audit.checkpoint_interval", "must be greater than 0"));
        }
        if let Some(tls) = &s.tls {
            if tls.cert_file.as_os_str().is_empty() {
                return Err(ConfigError::new("server.tls.cert_file", "must not be empty"));
            }
            if tls.key_file.as_os_str().is_empty() {
                return Err(ConfigError::new("server.tls.key_file", "must not be empty"));
            }
        }
        self.approvals.validate()?;
        access::validate(self)
    }
}

/// An upstream base URL split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]` as written.
    pub authority: String,
    /// Path prefix without a trailing slash ("" when none).
    pub base_path: String,
}

/// Parses an upstream URL (`http(s)://host[:port][/base]`), without query or fragment.
pub fn parse_upstream_url(url: &str) -> Result<UpstreamUrl, String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else {
        return Err(format!("\"{url}\" must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.contains(|c: char| c.is_whitespace()) {
        return Err(format!("\"{url}\" needs a host (and no user info)"));
    }
    if path.contains('?') || path.contains('#') {
        return Err(format!("\"{url}\" must not have a query or fragment"));
    }
    Ok(UpstreamUrl { scheme, authority: authority.to_string(), base_path: path.trim_end_matches('/').to_string() })
}

/// Parses TOML text into a document (a parse error names no key: its message shows the line).
fn parse_document(text: &str) -> Result<toml::Spanned<toml::de::DeTable<'_>>, ConfigError> {
    toml::de::DeTable::parse(text).map_err(|e| ConfigError::new("", e.to_string().trim_end()))
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_flavor<'de, D: Deserializer<'de>>(d: D) -> Result<Flavor, D::Error> {
    let s = String::deserialize(d)?;
    Flavor::from_name(&s).ok_or_else(|| {
        let names: Vec<&str> = Flavor::ALL.iter().map(|f| f.name()).collect();
        serde::de::Error::custom(format!("unknown flavor \"{s}\", expected one of {}", names.join(", ")))
    })
}

#[cfg(test)]
mod tests;
