//! Hardening: the sidecar tried as an attacker would, one file per class of attack. Every
//! case asserts the status, the `WWW-Authenticate` parameters where there are any, and,
//! through the recording upstream, that nothing rejected reached it and nothing forwarded
//! carries identity the client chose.
//!
//! Helpers here: [`env_with`] (an [`Env`] with the config text edited), [`expect_401`] /
//! [`expect_403`] (status + challenge + body + upstream untouched), [`RawPeer`] (a raw TCP
//! peer that answers with exact bytes, stalls, or hangs up: a broken upstream or JWKS),
//! [`EcKey`] (P-256 keys for ES256), and [`Conn`] (one raw keep-alive connection).

#![allow(dead_code)]

mod claims;
mod dependencies;
mod exhaustion;
mod forgery;
mod paths;
mod smuggling;
mod spoofing;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// Starts JWKS (KEY_A) and the recording upstream, then the sidecar with `routes` appended
/// and the whole config text passed through `edit`; waits for `/readyz`.
pub async fn env_with(routes: &str, edit: impl FnOnce(String) -> String) -> Env {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let text = edit(config_text(&upstream.url(), &jwks.url(), routes));
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .expect("sidecar starts");
    let env = Env {
        jwks,
        upstream,
        sidecar,
    };
    env.wait_ready().await;
    env
}

/// Replaces `key = ...` in the `[listener]` (or any) table line that starts with `key`.
pub fn set_key(text: String, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        if !done && line.trim_start().starts_with(&format!("{key} =")) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(done, "no {key} in the config text");
    out
}

/// Adds `line` right after the `[table]` header.
pub fn add_to(text: String, table: &str, line: &str) -> String {
    let header = format!("[{table}]\n");
    assert!(text.contains(&header), "no [{table}] in the config text");
    text.replacen(&header, &format!("{header}{line}\n"), 1)
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `GET path` with the token: a 401 with `reason` in the challenge and the body, and the
/// upstream not called.
pub async fn expect_401(env: &Env, path: &str, token: &str, reason: &str) {
    let before = env.upstream.hits();
    let r = call(env.addr(), path, token).await;
    let what = format!("{reason} on {path}: {r:?}");
    assert_eq!(r.status, 401, "{what}");
    assert_eq!(
        r.www_authenticate(),
        format!(
            "Bearer realm=\"cognito-sidecar\", error=\"invalid_token\", error_description=\"{reason}\""
        ),
        "{what}"
    );
    assert_eq!(r.json()["error"], "invalid_token", "{what}");
    assert_eq!(r.json()["error_description"], reason, "{what}");
    assert_eq!(
        env.upstream.hits(),
        before,
        "{what}: the upstream was called"
    );
}

/// `GET path` with the token: a 403 `insufficient_scope` naming `reason`, upstream not called.
pub async fn expect_403(env: &Env, path: &str, token: &str, reason: &str) {
    let before = env.upstream.hits();
    let r = call(env.addr(), path, token).await;
    let what = format!("{reason} on {path}: {r:?}");
    assert_eq!(r.status, 403, "{what}");
    assert!(
        r.www_authenticate()
            .starts_with("Bearer error=\"insufficient_scope\""),
        "{what}"
    );
    assert_eq!(r.reason(), reason, "{what}");
    assert_eq!(r.json()["error"], "insufficient_scope", "{what}");
    assert_eq!(
        env.upstream.hits(),
        before,
        "{what}: the upstream was called"
    );
}

/// `GET path` with the token: 200, and the request the upstream saw.
pub async fn expect_200(env: &Env, path: &str, token: &str) -> Seen {
    let before = env.upstream.hits();
    let r = call(env.addr(), path, token).await;
    assert_eq!(r.status, 200, "{path}: {r:?}");
    assert_eq!(env.upstream.hits(), before + 1);
    env.upstream.last()
}

/// A counter read from `/metrics` text (`name{labels} value`), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

// === EC keys (ES256) ===

/// A P-256 key (aws-lc-rs) with its JWK.
pub struct EcKey {
    pub kid: String,
    pair: EcdsaKeyPair,
}

impl EcKey {
    pub fn generate(kid: &str) -> EcKey {
        EcKey {
            kid: kid.into(),
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key"),
        }
    }

    /// `{"kty":"EC","crv":"P-256","x","y",...}` from the public point `0x04 || x || y`.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 0x04, "uncompressed point");
        json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// The raw `r || s` signature (64 bytes) of a signing input.
    pub fn sign_input(&self, input: &str) -> Vec<u8> {
        self.pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("ES256 signing")
            .as_ref()
            .to_vec()
    }

    /// A compact ES256 token.
    pub fn sign(&self, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg":"ES256","kid":self.kid,"typ":"JWT"})),
            b64(claims)
        );
        let sig = URL_SAFE_NO_PAD.encode(self.sign_input(&input));
        format!("{input}.{sig}")
    }
}

// === A raw TCP peer ===

/// How a [`RawPeer`] answers once a request head has arrived.
#[derive(Clone)]
pub enum Answer {
    /// Hang up at once, writing nothing.
    Close,
    /// Write these bytes, then hang up.
    Bytes(Vec<u8>),
    /// Write these bytes, then keep the connection open and silent.
    Stall(Vec<u8>),
}

/// A TCP peer on 127.0.0.1 that reads one request (head and a `Content-Length` or chunked
/// body), records its exact bytes and answers with [`Answer`]: a broken, hostile or slow
/// upstream or JWKS server, or a capture of exactly what the sidecar sends.
pub struct RawPeer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    conns: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// An HTTP/1.1 response with a body and `Content-Length`.
pub fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl RawPeer {
    pub async fn start(answer: Answer) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (a, r, c, t) = (
            answer.clone(),
            requests.clone(),
            conns.clone(),
            tasks.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (a, r) = (a.clone(), r.clone());
                let task = tokio::spawn(async move { raw_conn(stream, a, r).await });
                t.lock().unwrap().push(task);
            }
        });
        tasks.lock().unwrap().push(accept);
        RawPeer {
            addr,
            answer,
            requests,
            conns,
            tasks,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Requests received, as raw bytes.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `buf` holds one complete request (head plus its body).
fn complete_request(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    if head.contains("\r\ntransfer-encoding:") {
        // Last chunk, then (possibly empty) trailers, then CRLF.
        return body.starts_with(b"0\r\n") && body.ends_with(b"\r\n\r\n")
            || find(body, b"\r\n0\r\n").is_some() && body.ends_with(b"\r\n\r\n");
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= len
}

async fn raw_conn(
    mut stream: TcpStream,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !complete_request(&buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    requests.lock().unwrap().push(buf);
    let answer = answer.lock().unwrap().clone();
    match answer {
        Answer::Close => {}
        Answer::Bytes(b) => {
            let _ = stream.write_all(&b).await;
            let _ = stream.flush().await;
        }
        Answer::Stall(b) => {
            let _ = stream.write_all(&b).await;
            let _ = stream.flush().await;
            // Stay open and silent until the peer hangs up (or the RawPeer is dropped).
            let _ = stream.read_to_end(&mut Vec::new()).await;
        }
    }
}

// === One raw connection ===

/// A raw HTTP/1.1 connection to the sidecar: write exact bytes, read what comes back.
pub struct Conn {
    pub stream: TcpStream,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads until the peer closes or `limit` passes; returns what came and whether the
    /// peer closed (EOF or reset) within the limit.
    pub async fn read_until_close(&mut self, limit: Duration) -> (String, bool) {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
                Err(_) => return (String::from_utf8_lossy(&out).into(), false),
            }
        }
    }
}

/// The status codes of every response in a raw HTTP/1.1 byte stream, in order.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}
