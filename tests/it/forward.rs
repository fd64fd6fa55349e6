//! Forwarding: streaming both ways, hop-by-hop hygiene, X-Forwarded-*, X-Request-Id,
//! upstream failures, WebSocket tunnelling, graceful drain.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::support::*;

const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\nauth = \"public\"\n";

#[tokio::test]
async fn upload_streams_to_the_upstream_before_the_body_ends() {
    let env = Env::start(PUBLIC_ALL).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let body = StreamBody::new(futures_util::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    }));
    let stream = TcpStream::connect(env.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/upload")
        .header("host", "t")
        .body(body)
        .unwrap();
    let resp = tokio::spawn(async move { sender.send_request(req).await });
    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    // The upstream sees the first chunk while the client still holds the rest back.
    tokio::time::timeout(Duration::from_secs(5), env.upstream.first_chunk_seen())
        .await
        .expect("first chunk reached the upstream before the upload finished");
    for _ in 0..63 {
        tx.send(Ok(Frame::data(chunk.clone()))).await.unwrap();
    }
    drop(tx);
    let resp = resp.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (64 * 256 * 1024).to_string());
}

#[tokio::test]
async fn download_streams_to_the_client_before_the_upstream_finishes() {
    let env = Env::start(PUBLIC_ALL).await;
    let stream = TcpStream::connect(env.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/download?n=16")
        .header("host", "t")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The first chunk arrives while the upstream is still holding the other fifteen.
    let mut got = 0;
    while got < 64 * 1024 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first chunk arrived before the upstream finished")
            .unwrap()
            .unwrap();
        got += frame.data_ref().map_or(0, |d| d.len());
    }
    env.upstream.release();
    while let Some(f) = body.frame().await {
        got += f.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(got, 16 * 64 * 1024);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let env = Env::start(PUBLIC_ALL).await;
    let r = request(
        env.addr(),
        "GET",
        "/hop",
        &[
            ("connection", "keep-alive, X-Client-Secret"),
            ("x-client-secret", "s3cret"),
            ("keep-alive", "timeout=5"),
            ("te", "deflate"), // `te: trailers` alone passes (grpc.rs)
            ("proxy-authorization", "Basic eDp5"),
            ("upgrade", "h2c"),
            ("x-kept", "1"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    for h in [
        "x-client-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} reached the upstream");
    }
    assert_eq!(seen.headers["x-kept"], "1");
    // And on the way back.
    assert!(r.headers.get("x-up-secret").is_none());
    assert!(r.headers.get("keep-alive").is_none());
    assert_eq!(r.header("x-up-visible"), Some("1"));
}

#[tokio::test]
async fn forwarded_headers_and_request_id() {
    let env = Env::start(PUBLIC_ALL).await;
    let r = request(
        env.addr(),
        "GET",
        "/echo",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-request-id", "abc-123"),
        ],
        "",
    )
    .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let seen = env.upstream.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "sidecar.test");
    assert_eq!(seen.headers["host"], "sidecar.test");
    assert_eq!(seen.headers["x-request-id"], "abc-123");

    // Made when absent (or unusable), and the same id goes both ways.
    let r = request(
        env.addr(),
        "GET",
        "/echo",
        &[("x-request-id", "has spaces")],
        "",
    )
    .await;
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(env.upstream.last().headers["x-request-id"], id.as_str());

    // Error answers carry it in the body too.
    let r = request(env.addr(), "GET", "/a%2Fb", &[("x-request-id", "r-9")], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["request_id"], "r-9");
    assert_eq!(r.header("x-request-id"), Some("r-9"));
}

#[tokio::test]
async fn upstream_refusing_is_502_and_slow_is_504() {
    // A port with nothing listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let jwks = Jwks::start(&[&KEY_A]).await;
    let text = config_text(&format!("http://{dead}"), &jwks.url(), PUBLIC_ALL);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let r = get(sidecar.local_addr(), "/x").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");

    let env = Env::start(PUBLIC_ALL).await;
    let started = std::time::Instant::now();
    let r = get(env.addr(), "/hold").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "gateway_timeout");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_upstream_errors_total{kind=\"timeout\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let env = Env::start(
        "[[routes]]\npath = \"/ws\"\nscopes = [\"chat\"]\n[token]\nwebsocket_protocol = true\n",
    )
    .await;
    // Without a token the upgrade is refused and never reaches the upstream.
    let url = format!("ws://{}/ws", env.addr());
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(env.upstream.hits(), 0);

    let token = sign(&access_claims("chat"));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo, Message::text("hello"));
    ws.close(None).await.unwrap();
    let seen = env.upstream.last();
    assert_eq!(seen.headers["x-auth-sub"], CLIENT);

    // The browser way: the token rides in Sec-WebSocket-Protocol and is not forwarded.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "bearer");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    let seen = env.upstream.last();
    assert!(!seen.headers.contains_key("sec-websocket-protocol"));
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let env = Env::start(PUBLIC_ALL).await;
    let addr = env.addr();
    let inflight = tokio::spawn(async move { get(addr, "/hold").await });
    eventually(Duration::from_secs(5), || async {
        env.upstream.hits() == 1
    })
    .await;
    let Env {
        jwks: _jwks,
        upstream,
        sidecar,
    } = env;
    let stopping = tokio::spawn(sidecar.shutdown());
    // New connections are refused once the listener is closed.
    eventually(Duration::from_secs(5), || async move {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    upstream.release();
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "released");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown finished after the drain")
        .unwrap();
}

#[tokio::test]
async fn keep_alive_connection_serves_requests_after_a_rejection() {
    let env = Env::start("[[routes]]\npath = \"/open\"\nauth = \"public\"\n").await;
    let reply = raw(
        env.addr(),
        b"GET /closed HTTP/1.1\r\nhost: t\r\n\r\nGET /open HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let first = reply.find("HTTP/1.1 401").expect("first answered 401");
    let second = reply.find("HTTP/1.1 200").expect("second answered 200");
    assert!(first < second, "{reply}");
    assert_eq!(env.upstream.hits(), 1);
}
