//! TLS: terminating on the listener (rustls, HTTP/1.1 and HTTP/2 by ALPN) and an https
//! upstream trusted through `upstream.ca_file`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

struct Pki {
    dir: tempfile::TempDir,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    Pki {
        cert_der: ck.cert.der().clone(),
        key_der: ck.signing_key.serialize_der(),
        dir,
    }
}

fn client_config(pki: &Pki, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.cert_der.clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    c
}

#[tokio::test]
async fn listener_terminates_tls_with_http1_and_http2() {
    let pki = pki();
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let extra = "[[routes]]\npath = \"/**\"\nauth = \"public\"\n";
    let text = config_text(&upstream.url(), &jwks.url(), extra).replacen(
        "header_read_timeout = \"2s\"",
        &format!(
            "header_read_timeout = \"2s\"\ntls = {{ cert = {:?}, key = {:?} }}",
            pki.dir.path().join("cert.pem"),
            pki.dir.path().join("key.pem")
        ),
        1,
    );
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&pki, &[alpn])));
        let tcp = TcpStream::connect(sidecar.local_addr()).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let req = http::Request::get(format!(
            "https://localhost:{}/tls-check",
            sidecar.local_addr().port()
        ))
        .header("x-marker", "1")
        .body(Empty::<Bytes>::new())
        .unwrap();
        let status = if alpn == b"h2" {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let r = s.send_request(req).await.unwrap();
            let st = r.status();
            r.into_body().collect().await.unwrap();
            st
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let (mut parts, body) = req.into_parts();
            parts.uri = "/tls-check".parse().unwrap();
            parts.headers.insert("host", "localhost".parse().unwrap());
            let r = s
                .send_request(http::Request::from_parts(parts, body))
                .await
                .unwrap();
            let st = r.status();
            r.into_body().collect().await.unwrap();
            st
        };
        assert_eq!(status, 200);
        let seen = upstream.last();
        assert_eq!(seen.uri, "/tls-check");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn https_upstream_trusted_by_ca_file() {
    let pki = pki();
    // A TLS upstream with the self-signed certificate.
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![pki.cert_der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(format!(
                                "tls upstream saw {}",
                                req.uri().path()
                            ))),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let jwks = Jwks::start(&[&KEY_A]).await;
    let routes = "[[routes]]\npath = \"/**\"\nauth = \"public\"\n";
    // Without the CA the certificate is not trusted: 502.
    let text = config_text(&format!("https://localhost:{port}"), &jwks.url(), routes);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    assert_eq!(get(sidecar.local_addr(), "/x").await.status, 502);
    // With it, forwarded.
    let text = text.replace(
        "request_timeout = \"2s\"",
        &format!(
            "request_timeout = \"2s\"\nca_file = {:?}",
            pki.dir.path().join("cert.pem")
        ),
    );
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let r = get(sidecar.local_addr(), "/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "tls upstream saw /x");
}

/// A TLS upstream offering `alpn`, answering with the HTTP version it was spoken to in.
async fn tls_upstream(pki: &Pki, alpn: &[&[u8]]) -> u16 {
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![pki.cert_der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
    )
    .unwrap();
    server_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(format!(
                                "{:?} {}",
                                req.version(),
                                req.uri()
                            ))),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn auto_speaks_what_alpn_agrees_with_an_https_upstream() {
    let pki = pki();
    let jwks = Jwks::start(&[&KEY_A]).await;
    let routes = "[[routes]]\npath = \"/**\"\nauth = \"public\"\n";
    for (alpn, want) in [
        (
            &[&b"h2"[..], b"http/1.1"][..],
            "HTTP/2.0 https://sidecar.test/x?q=1",
        ),
        (&[&b"http/1.1"[..]][..], "HTTP/1.1 /x?q=1"),
        (&[][..], "HTTP/1.1 /x?q=1"),
    ] {
        let port = tls_upstream(&pki, alpn).await;
        let text = config_text(&format!("https://localhost:{port}"), &jwks.url(), routes)
            .replace("[upstream]\n", "[upstream]\nprotocol = \"auto\"\n")
            .replace(
                "request_timeout = \"2s\"",
                &format!(
                    "request_timeout = \"2s\"\nca_file = {:?}",
                    pki.dir.path().join("cert.pem")
                ),
            );
        let sidecar = cognito_sidecar::Sidecar::start(config(&text))
            .await
            .unwrap();
        // Twice: the second request takes the connection (or the protocol) the first found.
        for _ in 0..2 {
            let r = get(sidecar.local_addr(), "/x?q=1").await;
            assert_eq!(r.status, 200, "{alpn:?}: {r:?}");
            assert_eq!(r.body, want, "{alpn:?}");
        }
    }
}
