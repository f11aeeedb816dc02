//! The data listener: accepts TCP (and TLS) connections and serves HTTP/1.1 and HTTP/2 (h2c by
//! prior knowledge, h2 by ALPN) on them, with graceful shutdown.

use std::future::Future;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use config::TlsConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::Gateway;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loading the TLS certificate or key failed.
#[derive(Debug, thiserror::Error)]
#[error("server.tls: {0}")]
pub struct TlsError(String);

/// Builds a TLS acceptor (ALPN h2, http/1.1) from PEM files, on aws-lc-rs.
pub fn tls_acceptor(c: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certs_pem = std::fs::read(&c.cert_file)
        .map_err(|e| TlsError(format!("cannot read cert_file {}: {e}", c.cert_file.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_reader_iter(BufReader::new(&certs_pem[..]))
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("cert_file {}: {e}", c.cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("cert_file {} holds no certificate", c.cert_file.display())));
    }
    let key_pem = std::fs::read(&c.key_file)
        .map_err(|e| TlsError(format!("cannot read key_file {}: {e}", c.key_file.display())))?;
    let key = PrivateKeyDer::from_pem_reader(BufReader::new(&key_pem[..]))
        .map_err(|e| TlsError(format!("key_file {}: {e}", c.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("certificate and key do not fit: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Listener settings.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Largest request head read.
    pub max_header_bytes: usize,
    /// How long running exchanges may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Serves the data path on a bound listener until `shutdown` resolves, then stops accepting and
/// lets open connections finish for up to the grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: Arc<Gateway>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(opts.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gw = gateway.clone();
        let svc = service_fn(move |req| gw.clone().handle(req, remote));
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%remote, "connection ended: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%remote, "TLS handshake failed: {e}"),
                        Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), svc).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%remote, "connection ended: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!("data listener closed; letting open exchanges finish (up to {:?})", opts.shutdown_grace);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => tracing::warn!("shutdown grace period over; cutting remaining connections"),
    }
}
