//! Test support: a JWKS server that can rotate, fail, stall or serve garbage; an upstream
//! that records what it receives and can hold, stream and echo WebSockets; the sidecar
//! running in-process on 127.0.0.1:0; token minting with real RSA keys; and a raw HTTP/1.1
//! client that sends request targets exactly as written.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cognito_sidecar::demo::keys::SigningKey;
use cognito_sidecar::{Config, Sidecar};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

mod binary;
pub use binary::*;

pub const POOL: &str = "local-1_TestPool";
pub const ISS: &str = "https://cognito-idp.local-1.amazonaws.com/local-1_TestPool";
pub const CLIENT: &str = "client-a";

pub static KEY_A: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate("kid-a").expect("keygen"));
pub static KEY_B: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate("kid-b").expect("keygen"));

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).boxed()
}

/// Serves a connection-per-task hyper server on 127.0.0.1:0 until dropped.
pub async fn serve<F, Fut>(handler: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

// === JWKS server ===

#[derive(Clone)]
pub enum JwksMode {
    Keys(Value),
    Status(u16),
    Body(Vec<u8>),
    /// Accept and never answer.
    Hang,
}

pub struct Jwks {
    pub addr: SocketAddr,
    mode: Arc<Mutex<JwksMode>>,
    fetches: Arc<AtomicUsize>,
    max_age: Arc<Mutex<Option<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Jwks {
    pub async fn start(keys: &[&SigningKey]) -> Jwks {
        Self::start_with(JwksMode::Keys(cognito_sidecar::demo::keys::jwks(keys))).await
    }

    pub async fn start_with(mode: JwksMode) -> Jwks {
        let mode = Arc::new(Mutex::new(mode));
        let fetches = Arc::new(AtomicUsize::new(0));
        let max_age = Arc::new(Mutex::new(None));
        let (m, f, a) = (mode.clone(), fetches.clone(), max_age.clone());
        let (addr, task) = serve(move |_req| {
            let (m, f, a) = (m.clone(), f.clone(), a.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let mode = m.lock().unwrap().clone();
                match mode {
                    JwksMode::Keys(v) => {
                        let mut r = Response::new(full(v.to_string()));
                        if let Some(s) = *a.lock().unwrap() {
                            r.headers_mut()
                                .insert("cache-control", format!("max-age={s}").parse().unwrap());
                        }
                        r
                    }
                    JwksMode::Status(s) => {
                        let mut r = Response::new(full("error"));
                        *r.status_mut() = StatusCode::from_u16(s).unwrap();
                        r
                    }
                    JwksMode::Body(b) => Response::new(full(b)),
                    JwksMode::Hang => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                }
            }
        })
        .await;
        Jwks {
            addr,
            mode,
            fetches,
            max_age,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub fn set(&self, mode: JwksMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set(JwksMode::Keys(cognito_sidecar::demo::keys::jwks(keys)));
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

// === Upstream ===

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct UpState {
    seen: Mutex<Vec<Seen>>,
    release: Notify,
    first_chunk: Notify,
    hits: AtomicUsize,
}

pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Paths:
    /// - `/hold`: waits for [`Upstream::release`], then 200;
    /// - `/upload`: reads the body, signals [`Upstream::first_chunk_seen`] on the first
    ///   frame, answers the byte count;
    /// - `/download?n=N`: one 64 KiB chunk at once, then N-1 more after [`Upstream::release`];
    /// - `/ws`: WebSocket echo;
    /// - `/status/NNN`: that status;
    /// - `/hop`: a response carrying hop-by-hop headers;
    /// - anything else: 200 with `{"method","uri","headers"}`.
    pub async fn start() -> Upstream {
        let state = Arc::new(UpState::default());
        let st = state.clone();
        let (addr, task) = serve(move |req| {
            let st = st.clone();
            async move { upstream_handle(st, req).await }
        })
        .await;
        Upstream { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw a request")
    }

    pub fn release(&self) {
        self.state.release.notify_one();
    }

    pub async fn first_chunk_seen(&self) {
        self.state.first_chunk.notified().await
    }
}

async fn upstream_handle(st: Arc<UpState>, mut req: Request<Incoming>) -> Response<BoxBody> {
    st.hits.fetch_add(1, Ordering::SeqCst);
    st.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req.headers().clone(),
    });
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/hold" => {
            st.release.notified().await;
            Response::new(full("released"))
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            let mut first = true;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(d) = frame.data_ref() {
                    total += d.len();
                    if first && !d.is_empty() {
                        first = false;
                        st.first_chunk.notify_one();
                    }
                }
            }
            Response::new(full(total.to_string()))
        }
        "/download" => {
            let n: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(2);
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            let st2 = st.clone();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                    return;
                }
                st2.release.notified().await;
                for _ in 1..n {
                    if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                        return;
                    }
                }
            });
            let stream = tokio_stream_from(rx);
            Response::new(StreamBody::new(stream).boxed())
        }
        "/ws" => {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .cloned()
                .unwrap_or_else(|| http::HeaderValue::from_static(""));
            let protocol = req.headers().get("sec-websocket-protocol").cloned();
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    use futures_util::{SinkExt, StreamExt};
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        TokioIo::new(up),
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    let (mut tx, mut rx) = ws.split();
                    while let Some(Ok(msg)) = rx.next().await {
                        if msg.is_text() || msg.is_binary() {
                            if tx.send(msg).await.is_err() {
                                break;
                            }
                        } else if msg.is_close() {
                            break;
                        }
                    }
                }
            });
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let mut r = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept);
            if let Some(p) = protocol {
                // Echo the first non-bearer protocol, like a real server choosing one.
                if let Some(first) = p.to_str().unwrap_or("").split(',').next() {
                    if !first.trim().eq_ignore_ascii_case("bearer") {
                        r = r.header("sec-websocket-protocol", first.trim());
                    }
                }
            }
            r.body(full("")).unwrap()
        }
        "/hop" => Response::builder()
            .header("connection", "x-up-secret")
            .header("x-up-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-up-visible", "1")
            .body(full("hop"))
            .unwrap(),
        p if p.starts_with("/status/") => {
            let code: u16 = p[8..].parse().unwrap_or(500);
            let mut r = Response::new(full("status"));
            *r.status_mut() = StatusCode::from_u16(code).unwrap();
            r
        }
        _ => {
            let mut headers = serde_json::Map::new();
            for (k, v) in req.headers() {
                headers.insert(
                    k.as_str().to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                );
            }
            let body = json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "headers": headers,
            });
            Response::new(full(body.to_string()))
        }
    }
}

/// An mpsc receiver as a `Stream` (without pulling in tokio-stream).
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// === Tokens ===

pub fn now() -> i64 {
    cognito_sidecar::verify::now_secs()
}

/// Claims of a Cognito client-credentials access token.
pub fn access_claims(scope: &str) -> Value {
    let now = now();
    json!({
        "sub": CLIENT,
        "token_use": "access",
        "scope": scope,
        "auth_time": now,
        "iss": ISS,
        "exp": now + 3600,
        "iat": now,
        "version": 2,
        "jti": "jti-1",
        "client_id": CLIENT,
    })
}

/// Claims of a Cognito password-flow access token for a user in `groups`.
pub fn user_access_claims(groups: &[&str]) -> Value {
    let mut c = access_claims("aws.cognito.signin.user.admin");
    c["sub"] = json!("11111111-2222-3333-4444-555555555555");
    c["username"] = json!("alice");
    c["cognito:groups"] = json!(groups);
    c
}

/// Claims of a Cognito ID token.
pub fn id_claims() -> Value {
    let now = now();
    json!({
        "sub": "11111111-2222-3333-4444-555555555555",
        "aud": CLIENT,
        "token_use": "id",
        "cognito:username": "alice",
        "email": "alice@example.com",
        "email_verified": true,
        "iss": ISS,
        "exp": now + 3600,
        "iat": now,
        "auth_time": now,
    })
}

pub fn sign(claims: &Value) -> String {
    KEY_A.sign(claims)
}

// === Sidecar ===

/// A config for tests: loopback listeners, the given upstream and JWKS, plus `extra` TOML.
pub fn config_text(upstream: &str, jwks: &str, extra: &str) -> String {
    format!(
        r#"
[listener]
address = "127.0.0.1:0"
header_read_timeout = "2s"
drain_timeout = "5s"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "{upstream}"
connect_timeout = "1s"
request_timeout = "2s"
[[issuers]]
name = "test"
user_pool_id = "{POOL}"
jwks_url = "{jwks}"
client_ids = ["{CLIENT}"]
jwks_min_refetch = "0s"
{extra}
"#
    )
}

pub fn config(text: &str) -> Config {
    Config::from_toml_str("test.toml", text, &[])
        .unwrap_or_else(|e| panic!("test config refused:\n{e}\n---\n{text}"))
}

/// Everything a typical test needs, started and ready.
pub struct Env {
    pub jwks: Jwks,
    pub upstream: Upstream,
    pub sidecar: Sidecar,
}

impl Env {
    /// Starts JWKS (serving KEY_A), upstream and the sidecar with `routes` TOML appended;
    /// waits for `/readyz`.
    pub async fn start(routes: &str) -> Env {
        let jwks = Jwks::start(&[&KEY_A]).await;
        let upstream = Upstream::start().await;
        let text = config_text(&upstream.url(), &jwks.url(), routes);
        let sidecar = Sidecar::start(config(&text)).await.expect("sidecar starts");
        let env = Env {
            jwks,
            upstream,
            sidecar,
        };
        env.wait_ready().await;
        env
    }

    pub fn addr(&self) -> SocketAddr {
        self.sidecar.local_addr()
    }

    pub fn admin(&self) -> SocketAddr {
        self.sidecar.admin_addr().expect("admin enabled")
    }

    pub async fn wait_ready(&self) {
        let admin = self.admin();
        eventually(Duration::from_secs(10), || async move {
            get(admin, "/readyz").await.status == 200
        })
        .await;
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut headers = vec![];
        let auth;
        if let Some(t) = token {
            auth = format!("Bearer {t}");
            headers.push(("authorization", auth.as_str()));
        }
        request(self.addr(), "GET", path, &headers, "").await
    }

    pub async fn metrics(&self) -> String {
        get(self.admin(), "/metrics").await.body
    }
}

/// An OIDC (non-Cognito) issuer `https://login.example.com` whose tokens need
/// `aud = api://orders`, JWKS (KEY_A), upstream and sidecar started and ready.
pub async fn oidc_env() -> Env {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let text = format!(
        r#"
[listener]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "{}"
[[issuers]]
name = "oidc"
issuer = "https://login.example.com"
jwks_url = "{}"
token_use = ["any"]
audiences = ["api://orders"]
"#,
        upstream.url(),
        jwks.url()
    );
    Env {
        sidecar: start_ready(&text).await,
        jwks,
        upstream,
    }
}

/// Polls `cond` until it is true or `limit` passes (then panics).
pub async fn eventually<F, Fut>(limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === Client ===

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn www_authenticate(&self) -> String {
        self.header("www-authenticate").unwrap_or("").to_string()
    }

    /// The `error_description` of the challenge.
    pub fn reason(&self) -> String {
        let w = self.www_authenticate();
        w.split("error_description=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_string()
    }
}

/// Sends one request on a fresh HTTP/1.1 connection, target exactly as written (with
/// `Host: sidecar.test` unless `headers` name a host).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    try_request(addr, method, target, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// Like [`request`], but a connection failure is an `Err`, not a panic.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(target);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", "sidecar.test");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], "").await
}

/// Writes raw bytes and reads until the server closes or `limit` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The identity headers (x-auth-*) an upstream request carried, lower-cased.
pub fn identity_of(seen: &Seen) -> HashMap<String, String> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-auth") || k.as_str().starts_with("x_auth"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// `GET path` with `Authorization: Bearer token` on a fresh connection.
pub async fn call(addr: SocketAddr, path: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("authorization", &auth)], "").await
}

/// Starts the sidecar with `text` and waits (bounded) until `/readyz` answers 200.
pub async fn start_ready(text: &str) -> Sidecar {
    let sidecar = Sidecar::start(config(text)).await.expect("sidecar starts");
    let admin = sidecar.admin_addr().expect("admin enabled");
    eventually(Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
    sidecar
}
