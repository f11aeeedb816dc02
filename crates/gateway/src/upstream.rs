//! Upstreams as the data path sees them, and the pooled client that reaches them (`pool`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use config::{Config, UpstreamConfig};
use http::HeaderValue;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use protocols::Flavor;

mod pool;

pub use pool::{RequestError, UpstreamClient};

/// Request bodies sent upstream: buffered JSON or a streamed upload.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BodyError>;
/// Errors from a streamed request body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// One configured model server, resolved for the data path.
#[derive(Debug)]
pub struct Upstream {
    /// Configured name.
    pub name: Arc<str>,
    /// Wire flavor.
    pub flavor: Flavor,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]`.
    pub authority: String,
    /// Base path prefixed to every forwarded path ("" when none).
    pub base_path: String,
    /// Model globs.
    pub models: Vec<String>,
    /// Path prefix that routes here (removed before forwarding).
    pub prefix: Option<String>,
    /// Takes model-less calls.
    pub default: bool,
    /// Whether a glob is `*` (matches model-less calls too).
    pub wildcard: bool,
    /// `Authorization` value injected upstream, marked sensitive.
    pub auth: Option<HeaderValue>,
    /// Ask for usage on streamed OpenAI-style calls.
    pub stream_usage: bool,
}

/// Building upstreams failed (a secret could not be read).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The `api_key_env` variable is not set.
    #[error("upstream \"{upstream}\": environment variable {var} (api_key_env) is not set")]
    MissingEnv {
        /// Upstream name.
        upstream: String,
        /// Variable name.
        var: String,
    },
    /// The `api_key_file` could not be read.
    #[error("upstream \"{upstream}\": cannot read api_key_file {path}: {source}")]
    KeyFile {
        /// Upstream name.
        upstream: String,
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The key holds characters not allowed in a header.
    #[error("upstream \"{upstream}\": the API key is not a valid header value")]
    BadKey {
        /// Upstream name.
        upstream: String,
    },
    /// The URL is invalid.
    #[error("upstream \"{upstream}\": {message}")]
    Url {
        /// Upstream name.
        upstream: String,
        /// Problem.
        message: String,
    },
}

impl Upstream {
    /// Resolves one configured upstream, reading its key from the environment or a file.
    pub fn build(c: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let url = config::parse_upstream_url(&c.url)
            .map_err(|message| UpstreamError::Url { upstream: c.name.clone(), message })?;
        let key = if let Some(var) = &c.api_key_env {
            Some(
                std::env::var(var)
                    .map_err(|_| UpstreamError::MissingEnv { upstream: c.name.clone(), var: var.clone() })?,
            )
        } else if let Some(path) = &c.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|source| UpstreamError::KeyFile {
                upstream: c.name.clone(),
                path: path.display().to_string(),
                source,
            })?;
            Some(text.trim().to_string())
        } else {
            None
        };
        let auth = match key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| UpstreamError::BadKey { upstream: c.name.clone() })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Upstream {
            name: Arc::from(c.name.as_str()),
            flavor: c.flavor,
            scheme: url.scheme,
            authority: url.authority,
            base_path: url.base_path,
            wildcard: c.models.iter().any(|m| m == "*"),
            models: c.models.clone(),
            prefix: c.prefix.clone(),
            default: c.default,
            auth,
            stream_usage: c.stream_usage,
        })
    }

    /// Whether one of this upstream's globs matches `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|g| protocols::glob::matches_with_question(g, model))
    }

    /// The absolute URI for a path (already stripped of any gateway prefix) and query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<http::Uri, http::Error> {
        let mut s = String::with_capacity(
            self.scheme.len()
                + 3
                + self.authority.len()
                + self.base_path.len()
                + path.len()
                + query.map_or(0, |q| q.len() + 1),
        );
        s.push_str(self.scheme);
        s.push_str("://");
        s.push_str(&self.authority);
        s.push_str(&self.base_path);
        s.push_str(path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        Ok(http::Uri::try_from(s)?)
    }
}

/// Builds all upstreams of a config.
pub fn build_all(config: &Config) -> Result<Vec<Arc<Upstream>>, UpstreamError> {
    config.upstreams.iter().map(|u| Upstream::build(u).map(Arc::new)).collect()
}

/// Builds the shared keep-alive client (HTTP/1.1 to upstreams, TLS through rustls and aws-lc-rs).
pub fn client(connect_timeout: Duration) -> Result<UpstreamClient, std::io::Error> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(UpstreamClient::new(https, connect_timeout))
}
