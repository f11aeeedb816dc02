//! Transports on the data listener: h2c (prior knowledge) and TLS with ALPN h2 and http/1.1.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use testkit::Flavor;
use testkit::client::read_timed;

use crate::support::*;

#[tokio::test]
async fn h2c_clients_stream_through() {
    let m = mock(Flavor::OpenAi).await;
    let gw = gateway_for(&m, "");
    let res = testkit::client::send_h2c(json_req(
        "POST",
        &format!("{}/v1/chat/completions", gw.data_url),
        &chat("m", true),
        &[],
    ))
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let got = read_timed(res.into_body()).await;
    assert!(got.error.is_none());
    assert!(got.bytes().ends_with(b"data: [DONE]\n\n"));
}

#[tokio::test]
async fn tls_clients_negotiate_h2_or_http1() {
    let m = mock(Flavor::OpenAi).await;
    let dir = testkit::temp_dir("tls");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let tls = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let up = upstream("up", &m.url(), "openai", &["*"], "");
    let gw = start(&format!("{}\n{tls}", config("", &up)));
    assert!(gw.data_url.starts_with("https://"), "{}", gw.data_url);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    for (alpn, version) in [(b"h2".as_slice(), http::Version::HTTP_2), (b"http/1.1".as_slice(), http::Version::HTTP_11)]
    {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(gw.data).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let req = http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", key_for(&gw.data_url).unwrap()))
            .body(Full::new(Bytes::from(serde_json::to_vec(&chat("m", false)).unwrap())))
            .unwrap();
        let res = if version == http::Version::HTTP_2 {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let (mut parts, body) = req.into_parts();
            parts.uri = format!("https://localhost:{}/v1/chat/completions", gw.data.port()).parse().unwrap();
            s.send_request(http::Request::from_parts(parts, body)).await.unwrap()
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            s.send_request(req).await.unwrap()
        };
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), version);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["choices"][0]["message"]["content"].is_string());
    }
}
