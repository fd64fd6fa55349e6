//! gRPC through the sidecar: a real gRPC server (tonic's server-side call handling, on
//! hyper's HTTP/2 server) behind the sidecar with `protocol = "h2c"`, and a real gRPC
//! client (tonic over h2c). All four call kinds with their trailers, the refusals as the
//! client sees them (status code and message), `grpc-timeout`, a dead upstream, a stream
//! that outlives `request_timeout`; and `TE` with a plain HTTP/1.1 client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use crate::support::*;

/// The one message of the test service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
}

fn msg(text: &str) -> Msg {
    Msg { text: text.into() }
}

/// A `tower_service::Service` from a closure: tonic's call kinds are implemented for those.
struct Handler<F>(F);

impl<F, Req, Resp, Fut> tower_service::Service<Req> for Handler<F>
where
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>>,
{
    type Response = Resp;
    type Error = Status;
    type Future = Fut;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Req) -> Fut {
        (self.0)(req)
    }
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

fn meta(r: &tonic::metadata::MetadataMap, name: &str) -> String {
    r.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// The gRPC server `echo.Echo`:
/// - `Unary`: `"<text>|sub=<x-auth-sub>|te=<te>"` (what the sidecar forwarded);
/// - `Collect` (client streaming): the texts joined by `,`;
/// - `Count` (server streaming): text `"n/ms"`: messages `1`..`n`, `ms` apart;
/// - `Chat` (bidi): each text upper-cased;
/// - `Fail` (server streaming): one message, then ABORTED with trailer `x-detail: 42`;
/// - `Slow`: never answers;
/// - `Forbidden`: would answer, if the sidecar let anything through.
///
/// Every call that reaches it is counted.
struct GrpcServer {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    async fn start() -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                        c.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(echo(req).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GrpcServer { addr, calls, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn echo(req: http::Request<Incoming>) -> http::Response<tonic::body::Body> {
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
    match req.uri().path() {
        "/echo.Echo/Unary" | "/echo.Echo/Forbidden" => {
            let te = req
                .headers()
                .get("te")
                .map_or("-".to_string(), |v| v.to_str().unwrap().to_string());
            let h = Handler(move |r: tonic::Request<Msg>| {
                let sub = meta(r.metadata(), "x-auth-sub");
                let text = format!("{}|sub={sub}|te={te}", r.get_ref().text);
                async move { Ok(tonic::Response::new(msg(&text))) }
            });
            grpc.unary(h, req).await
        }
        "/echo.Echo/Collect" => {
            let h = Handler(|r: tonic::Request<tonic::Streaming<Msg>>| async move {
                let mut s = r.into_inner();
                let mut all = Vec::new();
                while let Some(m) = s.message().await? {
                    all.push(m.text);
                }
                Ok(tonic::Response::new(msg(&all.join(","))))
            });
            grpc.client_streaming(h, req).await
        }
        "/echo.Echo/Count" => {
            let h = Handler(|r: tonic::Request<Msg>| async move {
                let (n, ms) = r
                    .get_ref()
                    .text
                    .split_once('/')
                    .and_then(|(n, ms)| Some((n.parse::<u32>().ok()?, ms.parse::<u64>().ok()?)))
                    .ok_or_else(|| Status::invalid_argument("want n/ms"))?;
                let s = async_stream(n, Duration::from_millis(ms));
                Ok(tonic::Response::new(s))
            });
            grpc.server_streaming(h, req).await
        }
        "/echo.Echo/Chat" => {
            let h = Handler(|r: tonic::Request<tonic::Streaming<Msg>>| async move {
                let s: MsgStream = Box::pin(
                    r.into_inner()
                        .map(|m| m.map(|m| msg(&m.text.to_uppercase()))),
                );
                Ok(tonic::Response::new(s))
            });
            grpc.streaming(h, req).await
        }
        "/echo.Echo/Fail" => {
            let h = Handler(|_r: tonic::Request<Msg>| async move {
                let mut md = tonic::metadata::MetadataMap::new();
                md.insert("x-detail", "42".parse().unwrap());
                let end = Status::with_metadata(Code::Aborted, "nope", md);
                let s: MsgStream = Box::pin(tokio_stream::iter([Ok(msg("first")), Err(end)]));
                Ok(tonic::Response::new(s))
            });
            grpc.server_streaming(h, req).await
        }
        "/echo.Echo/Slow" => std::future::pending().await,
        _ => Status::unimplemented("no such method").into_http(),
    }
}

/// `n` messages `1`..`n`, `every` apart (the first at once).
fn async_stream(n: u32, every: Duration) -> MsgStream {
    Box::pin(
        tokio_stream::StreamExt::throttle(tokio_stream::iter(1..=n), every)
            .map(|i| Ok(msg(&i.to_string()))),
    )
}

const ROUTES: &str = r#"
[[routes]]
path = "/echo.Echo/Forbidden"
auth = "deny"
[[routes]]
path = "/echo.Echo/*"
scopes = ["echo/call"]
"#;

/// JWKS, the gRPC server, and the sidecar in front of it over h2c, with `request_timeout`.
async fn grpc_env(request_timeout: &str) -> (Jwks, GrpcServer, cognito_sidecar::Sidecar) {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let server = GrpcServer::start().await;
    let text = config_text(&server.url(), &jwks.url(), ROUTES)
        .replace("[upstream]\n", "[upstream]\nprotocol = \"h2c\"\n")
        .replace(
            "request_timeout = \"2s\"",
            &format!("request_timeout = \"{request_timeout}\""),
        );
    let sidecar = start_ready(&text).await;
    (jwks, server, sidecar)
}

async fn client(addr: SocketAddr) -> tonic::client::Grpc<Channel> {
    let ch = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("h2c connection to the sidecar");
    tonic::client::Grpc::new(ch)
}

fn call_with<T>(m: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

async fn unary(
    g: &mut tonic::client::Grpc<Channel>,
    path: &'static str,
    r: tonic::Request<Msg>,
) -> Result<Msg, Status> {
    g.ready().await.unwrap();
    g.unary(r, PathAndQuery::from_static(path), ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}

/// A unary call by hand over HTTP/2 (prior knowledge), with `grpc-timeout`: the response's
/// status and headers (a trailers-only answer carries `grpc-status` there).
async fn h2_call(
    addr: SocketAddr,
    path: &str,
    token: &str,
    timeout: &str,
) -> (u16, http::HeaderMap) {
    let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    // One message, uncompressed: flag 0, length 3, field 1 = "x".
    let frame = bytes::Bytes::from_static(&[0, 0, 0, 0, 3, 0x0a, 1, b'x']);
    let req = http::Request::post(format!("http://sidecar.test{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(frame))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

fn token() -> String {
    sign(&access_claims("echo/call"))
}

#[tokio::test]
async fn all_four_call_kinds_pass_with_their_trailers() {
    let (_jwks, server, sidecar) = grpc_env("2s").await;
    let t = token();
    let mut g = client(sidecar.local_addr()).await;

    // Unary: the identity header and `te: trailers` reached the server.
    let m = unary(&mut g, "/echo.Echo/Unary", call_with(msg("hi"), Some(&t)))
        .await
        .expect("unary call");
    assert_eq!(m.text, format!("hi|sub={CLIENT}|te=trailers"));

    // Client streaming.
    g.ready().await.unwrap();
    let up = tokio_stream::iter(["a", "b", "c"].map(msg));
    let m: Msg = g
        .client_streaming(
            call_with(up, Some(&t)),
            PathAndQuery::from_static("/echo.Echo/Collect"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .expect("client streaming call")
        .into_inner();
    assert_eq!(m.text, "a,b,c");

    // Server streaming: every message, then the OK status from the trailers.
    g.ready().await.unwrap();
    let mut s = g
        .server_streaming(
            call_with(msg("5/0"), Some(&t)),
            PathAndQuery::from_static("/echo.Echo/Count"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .expect("server streaming call")
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.message().await.expect("stream ends with status OK") {
        got.push(m.text);
    }
    assert_eq!(got, ["1", "2", "3", "4", "5"]);
    assert!(s.trailers().await.is_ok());

    // Bidirectional: answers interleave with the requests.
    g.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(4);
    let mut s = g
        .streaming(
            call_with(tokio_stream::wrappers::ReceiverStream::new(rx), Some(&t)),
            PathAndQuery::from_static("/echo.Echo/Chat"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .expect("bidi call")
        .into_inner();
    for word in ["one", "two", "three"] {
        tx.send(msg(word)).await.unwrap();
        let m = s.message().await.unwrap().expect("an answer per message");
        assert_eq!(m.text, word.to_uppercase());
    }
    drop(tx);
    assert!(s.message().await.unwrap().is_none(), "ends with status OK");

    // A status and custom metadata in the trailers, after a message.
    g.ready().await.unwrap();
    let mut s = g
        .server_streaming(
            call_with(msg(""), Some(&t)),
            PathAndQuery::from_static("/echo.Echo/Fail"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .expect("call starts")
        .into_inner();
    assert_eq!(s.message().await.unwrap().unwrap().text, "first");
    let end = s.message().await.expect_err("the server's status");
    assert_eq!(end.code(), Code::Aborted);
    assert_eq!(end.message(), "nope");
    assert_eq!(meta(end.metadata(), "x-detail"), "42");
    assert_eq!(server.calls(), 5);
}

#[tokio::test]
async fn refused_calls_get_the_grpc_status_and_never_reach_the_server() {
    let (_jwks, server, sidecar) = grpc_env("2s").await;
    let mut g = client(sidecar.local_addr()).await;

    let e = unary(&mut g, "/echo.Echo/Unary", call_with(msg("x"), None))
        .await
        .expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert_eq!(e.message(), "missing");
    assert!(meta(e.metadata(), "www-authenticate").starts_with("Bearer realm="));

    let expired = {
        let mut c = access_claims("echo/call");
        c["exp"] = serde_json::json!(now() - 3600);
        sign(&c)
    };
    let e = unary(
        &mut g,
        "/echo.Echo/Unary",
        call_with(msg("x"), Some(&expired)),
    )
    .await
    .expect_err("expired token");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(e.message(), "expired");

    let other = sign(&access_claims("other/scope"));
    let e = unary(
        &mut g,
        "/echo.Echo/Unary",
        call_with(msg("x"), Some(&other)),
    )
    .await
    .expect_err("scope missing");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(e.message(), "missing_scope");
    assert!(meta(e.metadata(), "www-authenticate").contains("insufficient_scope"));

    let e = unary(
        &mut g,
        "/echo.Echo/Forbidden",
        call_with(msg("x"), Some(&token())),
    )
    .await
    .expect_err("route denied");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(e.message(), "denied");

    // A malformed grpc-timeout is refused, strictly.
    let mut r = call_with(msg("x"), Some(&token()));
    r.metadata_mut()
        .insert("grpc-timeout", "soon".parse().unwrap());
    let e = unary(&mut g, "/echo.Echo/Unary", r)
        .await
        .expect_err("bad grpc-timeout");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "bad_grpc_timeout");

    assert_eq!(server.calls(), 0, "no refused call reached the server");
    // The client still works on the same connection.
    let m = unary(
        &mut g,
        "/echo.Echo/Unary",
        call_with(msg("ok"), Some(&token())),
    )
    .await
    .unwrap();
    assert!(m.text.starts_with("ok|"));
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn grpc_timeout_is_the_deadline_and_a_long_stream_is_not_cut() {
    let (_jwks, server, sidecar) = grpc_env("1s").await;
    let t = token();
    let mut g = client(sidecar.local_addr()).await;

    // The server never answers: the call's own deadline, shorter than request_timeout.
    // (Sent by a plain HTTP/2 client: tonic's client would enforce the same deadline
    // itself, first.)
    let began = Instant::now();
    let (status, headers) = h2_call(sidecar.local_addr(), "/echo.Echo/Slow", &t, "100m").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["grpc-status"], "4",
        "DEADLINE_EXCEEDED: {headers:?}"
    );
    assert_eq!(headers["grpc-message"], "upstream_timeout");
    assert!(
        began.elapsed() < Duration::from_millis(900),
        "grpc-timeout, not request_timeout: {:?}",
        began.elapsed()
    );
    // Without one, request_timeout.
    let e = unary(&mut g, "/echo.Echo/Slow", call_with(msg("x"), Some(&t)))
        .await
        .expect_err("request_timeout");
    assert_eq!(e.code(), Code::DeadlineExceeded);

    // A stream whose head came at once and that lasts longer than request_timeout.
    g.ready().await.unwrap();
    let began = Instant::now();
    let mut s = g
        .server_streaming(
            call_with(msg("8/200"), Some(&t)),
            PathAndQuery::from_static("/echo.Echo/Count"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .expect("stream starts")
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.expect("never cut") {
        n += 1;
        assert_eq!(m.text, n.to_string());
    }
    assert_eq!(n, 8);
    assert!(
        began.elapsed() > Duration::from_secs(1),
        "outlived request_timeout"
    );
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn a_dead_upstream_is_unavailable() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = config_text(&format!("http://{dead}"), &jwks.url(), ROUTES)
        .replace("[upstream]\n", "[upstream]\nprotocol = \"h2c\"\n");
    let sidecar = start_ready(&text).await;
    let mut g = client(sidecar.local_addr()).await;
    let e = unary(
        &mut g,
        "/echo.Echo/Unary",
        call_with(msg("x"), Some(&token())),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(e.message(), "upstream_unavailable");
}

#[tokio::test]
async fn te_trailers_alone_reaches_an_http1_upstream() {
    let env = Env::start("[[routes]]\npath = \"/**\"\nauth = \"public\"\n").await;
    for (te, want) in [
        ("trailers", Some("trailers")),
        ("TRAILERS", Some("trailers")),
        ("gzip, trailers", Some("trailers")),
        ("gzip", None),
        ("deflate;q=0.5", None),
    ] {
        let r = request(
            env.addr(),
            "GET",
            "/te",
            &[("te", te), ("connection", "te")],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        let seen = env.upstream.last();
        let got: Vec<_> = seen.headers.get_all("te").iter().collect();
        match want {
            Some(w) => assert_eq!(got, [w], "{te}"),
            None => assert!(got.is_empty(), "{te}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn a_grpc_refusal_over_http1_is_trailers_only_too_but_not_for_grpc_web() {
    let env = Env::start("").await;
    let r = request(
        env.addr(),
        "POST",
        "/echo.Echo/Unary",
        &[
            ("content-type", "application/grpc+proto"),
            ("te", "trailers"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(r.header("grpc-status"), Some("16"));
    assert_eq!(r.header("grpc-message"), Some("missing"));
    assert!(r.www_authenticate().starts_with("Bearer realm="));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.body, "");
    // gRPC-Web clients read the HTTP status: the usual answer.
    let r = request(
        env.addr(),
        "POST",
        "/echo.Echo/Unary",
        &[("content-type", "application/grpc-web+proto")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.header("grpc-status").is_none());
    // The outcome in the metrics is still the reason.
    let m = env.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.contains("missing") && !l.starts_with('#')),
        "{m}"
    );
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn grpc_method_routes_match_and_cannot_be_dodged() {
    let env = Env::start(ROUTES).await;
    let t = token();
    for p in [
        "/echo.Echo/Forbidden",
        "/ECHO.ECHO/FORBIDDEN",
        "/echo.Echo//Forbidden",
        "/x/../echo.Echo/Forbidden",
        "/echo.Echo/%46orbidden",
        "/echo.Echo/Forbidden/",
    ] {
        let r = call(env.addr(), p, &t).await;
        assert_eq!(r.status, 403, "{p}");
    }
    let r = call(env.addr(), "/echo.Echo/Unary", &t).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.upstream.last().uri, "/echo.Echo/Unary");
    let other = sign(&access_claims("other/scope"));
    assert_eq!(
        call(env.addr(), "/echo.Echo/Unary", &other).await.status,
        403
    );
    assert_eq!(env.upstream.hits(), 1);
}
