//! Fetching discovery documents and key sets over HTTPS (or HTTP on loopback).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// The HTTP client of one issuer.
pub(crate) type HttpClient = crate::http::Client<Empty<Bytes>>;

/// Time allowed to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one whole fetch (connect, head and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Builds an issuer's client: TLS through rustls on aws-lc-rs, trusting the system's roots, or
/// only the CAs of `ca_file` when it is set.
pub(crate) fn client(ca_file: Option<&Path>) -> Result<HttpClient, String> {
    let tls = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {}: no certificate found", path.display()));
            }
            crate::http::tls_with_roots(roots)?
        }
        // Loopback (http://) issuers still work; https ones fail at fetch time, loudly.
        None => crate::http::tls_with_system_roots(Some("no system root CAs found; https issuers need ca_file"))?,
    };
    Ok(crate::http::client(tls, CONNECT_TIMEOUT))
}

/// Why a fetch failed. Never holds a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes or unreadable")]
    Body,
    #[error("discovery document is not valid JSON with a jwks_uri")]
    Discovery,
    #[error("discovery document names issuer {0:?}")]
    DiscoveryIssuer(String),
    #[error("discovered jwks_uri is not acceptable (https, or http on loopback): {0:?}")]
    JwksUri(String),
    #[error("{0}")]
    Jwks(#[from] super::jwks::JwksError),
}

/// GETs `uri` and returns the body of a 200 answer.
pub(crate) async fn get(client: &HttpClient, uri: &Uri) -> Result<Bytes, FetchError> {
    let req = Request::get(uri.clone())
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, concat!("modelgate/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| FetchError::Request(e.to_string()))?;
    let fetch = async {
        let resp = client.request(req).await.map_err(|e| FetchError::Request(crate::http::error_chain(&e)))?;
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES).collect().await.map_err(|_| FetchError::Body)?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The discovery URL of `issuer` (OpenID Connect Discovery 1.0 §4).
pub(crate) fn discovery_uri(issuer: &str) -> Result<Uri, String> {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("issuer {issuer:?} gives no valid discovery URL: {e}"))
}

/// Reads the `jwks_uri` from a discovery document of `issuer`, which must name `issuer` exactly.
pub(crate) fn jwks_uri_from_discovery(issuer: &str, body: &[u8]) -> Result<Uri, FetchError> {
    let doc: Discovery = serde_json::from_slice(body).map_err(|_| FetchError::Discovery)?;
    if doc.issuer != issuer {
        return Err(FetchError::DiscoveryIssuer(doc.issuer));
    }
    acceptable_uri(&doc.jwks_uri).ok_or(FetchError::JwksUri(doc.jwks_uri))
}

/// `s` as a URI if it is `https://`, or `http://` to a loopback host.
pub(crate) fn acceptable_uri(s: &str) -> Option<Uri> {
    let uri: Uri = s.parse().ok()?;
    let host = uri.host()?;
    let loopback = matches!(host, "localhost" | "[::1]" | "::1") || host.starts_with("127.");
    match uri.scheme_str()? {
        "https" => Some(uri),
        "http" if loopback => Some(uri),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_checks() {
        assert_eq!(
            discovery_uri("https://a.example/realms/x/").unwrap(),
            "https://a.example/realms/x/.well-known/openid-configuration"
        );
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"https://keys.example/jwks"}"#;
        assert_eq!(jwks_uri_from_discovery("https://a.example", doc).unwrap(), "https://keys.example/jwks");
        assert!(matches!(jwks_uri_from_discovery("https://b.example", doc), Err(FetchError::DiscoveryIssuer(_))));
        assert!(matches!(jwks_uri_from_discovery("https://a.example", b"[]"), Err(FetchError::Discovery)));
        let http = br#"{"issuer":"https://a.example","jwks_uri":"http://keys.example/jwks"}"#;
        assert!(matches!(jwks_uri_from_discovery("https://a.example", http), Err(FetchError::JwksUri(_))));
        assert!(acceptable_uri("http://127.0.0.1:9/jwks").is_some());
        assert!(acceptable_uri("http://localhost/jwks").is_some());
        assert!(acceptable_uri("http://[::1]:8/jwks").is_some());
        assert!(acceptable_uri("file:///etc/passwd").is_none());
        assert!(acceptable_uri("not a uri").is_none());
    }

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("mg-oidc-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        assert!(client(Some(&empty)).unwrap_err().contains("no certificate"));
        let missing = dir.join("missing.pem");
        assert!(client(Some(&missing)).unwrap_err().contains("missing.pem"));
        assert!(client(None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
