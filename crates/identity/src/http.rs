//! The outgoing HTTP client shared by the OIDC fetcher and the approval webhooks: TLS through
//! rustls on aws-lc-rs, `https://` and `http://`, HTTP/1.1, pooled connections.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled client sending bodies of type `B`.
pub type Client<B> = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, B>;

/// A TLS client config trusting `roots`.
pub fn tls_with_roots(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    Ok(builder()?.with_root_certificates(roots).with_no_client_auth())
}

/// A TLS client config trusting the system's root CAs. Without any, it trusts none (`http://`
/// still works; `https://` fails at request time) and logs `warning`, when given.
pub fn tls_with_system_roots(warning: Option<&str>) -> Result<rustls::ClientConfig, String> {
    match builder()?.with_native_roots() {
        Ok(b) => Ok(b.with_no_client_auth()),
        Err(e) => {
            if let Some(w) = warning {
                tracing::warn!(error = %e, "{w}");
            }
            tls_with_roots(rustls::RootCertStore::empty())
        }
    }
}

/// The pooled client over `tls`, each connect bounded by `connect_timeout`.
pub fn client<B>(tls: rustls::ClientConfig, connect_timeout: Duration) -> Client<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

fn builder() -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, String> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))
}

/// An error and its sources, `outer: inner: innermost` (hyper's errors say little on their own).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
