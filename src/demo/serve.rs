//! A tiny hyper 1 HTTP/1.1 server loop shared by the demo issuer and upstream.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body the demo servers read.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub(crate) type Resp = Response<Full<Bytes>>;

/// A running server: stops on [`Server::shutdown`] or when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, drops open connections and waits for the loop to end.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves every connection accepted on `listener` with `handler`.
pub(crate) fn spawn<F, Fut>(listener: TcpListener, handler: F) -> Server
where
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let handler = handler.clone();
                        conns.spawn(async move {
                            let service = service_fn(move |req| {
                                let fut = handler(req, peer);
                                async move { Ok::<_, Infallible>(fut.await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(TokioTimer::new())
                                .header_read_timeout(Duration::from_secs(10))
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "demo server: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        // Dropping `conns` aborts the open connections.
    });
    Server {
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// How reading a request body failed.
pub(crate) enum BodyError {
    TooLarge,
    Read,
}

/// Reads the whole body, at most [`BODY_LIMIT`] bytes.
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}

/// A JSON response with the given status and `Content-Type`.
pub(crate) fn json_with(
    status: StatusCode,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// An `application/json` response.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Resp {
    json_with(status, "application/json", body)
}

/// The `Content-Type` media type, lowercased, without parameters.
pub(crate) fn media_type(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The host to put in URLs for a bound address: loopback for an unspecified IP.
pub(crate) fn url_authority(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        other => other.to_string(),
    }
}
