//! The admin listener (its own address, loopback by default):
//! - `GET /healthz`: 200 while the process serves;
//! - `GET /readyz`: 200 once every issuer's keys are loaded, 503 before that and while
//!   draining;
//! - `GET /metrics`: Prometheus text.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

fn text(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, ctype)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

/// Answers one admin request.
pub fn respond(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let state = shared.state.load();
            let pending: Vec<&str> = state
                .verifier
                .issuers()
                .iter()
                .filter(|i| !i.keys.is_loaded())
                .map(|i| i.cfg.name.as_str())
                .collect();
            if shared.ready() {
                text(StatusCode::OK, "text/plain", "ready\n")
            } else if pending.is_empty() {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("waiting for signing keys: {}\n", pending.join(", ")),
                )
            }
        }
        "/metrics" => {
            let state = shared.state.load();
            for issuer in state.verifier.issuers() {
                if let Some(set) = issuer.keys.current() {
                    let age = set.fetched_at.elapsed().unwrap_or_default().as_secs_f64();
                    shared
                        .metrics
                        .jwks_age
                        .with_label_values(&[issuer.keys.name()])
                        .set(age);
                }
            }
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                shared.metrics.render(),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Serves the admin listener until cancelled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let shared = Arc::clone(&shared);
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let resp = respond(&shared, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
