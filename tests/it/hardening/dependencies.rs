//! Failing dependencies: the JWKS endpoint and the upstream down, slow, broken, hostile or
//! rotating. Each is answered per the contract (503 + Retry-After, 502, 504, an aborted body)
//! and recovered from without a restart. (auth.rs has JWKS 503-at-start and 500/HTML/empty/
//! 2 MiB later; forward.rs has a refused upstream and a slow one.)

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/api/**"
"#;

fn jwks_body(keys: &[&cognito_sidecar::demo::keys::SigningKey]) -> Vec<u8> {
    cognito_sidecar::demo::keys::jwks(keys)
        .to_string()
        .into_bytes()
}

fn jwks_ok(keys: &[&cognito_sidecar::demo::keys::SigningKey]) -> Answer {
    Answer::Bytes(http_response(
        "200 OK",
        "application/json",
        &jwks_body(keys),
    ))
}

/// A sidecar whose JWKS is `jwks_url`, with extra issuer lines; waits for nothing.
async fn sidecar_with(
    upstream: &str,
    jwks_url: &str,
    issuer_extra: &str,
) -> cognito_sidecar::Sidecar {
    let text = config_text(upstream, jwks_url, ROUTES).replace(
        "jwks_min_refetch = \"0s\"",
        &format!("jwks_min_refetch = \"0s\"\n{issuer_extra}"),
    );
    cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap()
}

async fn wait_ready(admin: std::net::SocketAddr, limit: Duration) {
    eventually(limit, || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
}

/// A fresh (uncached) token from KEY_A or another key.
fn fresh(key: &cognito_sidecar::demo::keys::SigningKey, n: usize) -> String {
    let mut c = access_claims("x");
    c["jti"] = json!(format!("fresh-{n}-{}", rand_suffix()));
    key.sign(&c)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// 503 with Retry-After and no challenge, fast; the upstream not called.
async fn expect_503(addr: std::net::SocketAddr, upstream: &Upstream, token: &str) {
    let before = upstream.hits();
    let started = Instant::now();
    let r = call(addr, "/api/x", token).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.www_authenticate(), "");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(r.json()["error_description"], "keys_unavailable");
    assert_eq!(upstream.hits(), before);
}

#[tokio::test]
async fn jwks_refusing_or_garbage_at_start_is_503_then_recovers_without_restart() {
    for broken in [
        Answer::Close,
        Answer::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        Answer::Bytes(http_response("200 OK", "text/html", b"<html>login</html>")),
        Answer::Bytes(http_response("502 Bad Gateway", "text/plain", b"")),
    ] {
        let peer = RawPeer::start(broken).await;
        let upstream = Upstream::start().await;
        let sidecar = sidecar_with(&upstream.url(), &format!("{}/jwks.json", peer.url()), "").await;
        let admin = sidecar.admin_addr().unwrap();
        eventually(Duration::from_secs(5), || async {
            !peer.requests().is_empty()
        })
        .await;
        expect_503(sidecar.local_addr(), &upstream, &fresh(&KEY_A, 0)).await;
        assert_eq!(get(admin, "/readyz").await.status, 503);
        // Public routes do not need keys.
        assert_eq!(get(sidecar.local_addr(), "/public/x").await.status, 200);
        // The JWKS comes back: the refresher finds it (backoff from 0.5s), no restart.
        peer.set(jwks_ok(&[&KEY_A]));
        wait_ready(admin, Duration::from_secs(15)).await;
        assert_eq!(
            call(sidecar.local_addr(), "/api/x", &fresh(&KEY_A, 1))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn a_hanging_jwks_never_holds_requests() {
    let jwks = Jwks::start_with(JwksMode::Hang).await;
    let upstream = Upstream::start().await;
    let sidecar = sidecar_with(&upstream.url(), &jwks.url(), "jwks_timeout = \"1s\"").await;
    let admin = sidecar.admin_addr().unwrap();
    let addr = sidecar.local_addr();
    // Hanging at start: 503 at once, not after the fetch timeout.
    eventually(Duration::from_secs(5), || async { jwks.fetches() >= 1 }).await;
    for i in 0..3 {
        expect_503(addr, &upstream, &fresh(&KEY_A, i)).await;
    }
    jwks.set_keys(&[&KEY_A]);
    wait_ready(admin, Duration::from_secs(15)).await;
    assert_eq!(call(addr, "/api/x", &fresh(&KEY_A, 10)).await.status, 200);

    // Hanging later: known kids verify as fast as ever; an unknown kid waits at most about
    // the fetch timeout (plus one in flight), then is refused; the last good keys stay.
    jwks.set(JwksMode::Hang);
    let started = Instant::now();
    let probe = KEY_A.sign_raw(
        &json!({"alg":"RS256","kid":"rotated-in"}),
        &access_claims("x"),
    );
    let unknown = tokio::spawn(async move { call(addr, "/api/x", &probe).await });
    eventually(Duration::from_secs(5), || async { jwks.fetches() >= 2 }).await;
    for i in 0..5 {
        let t0 = Instant::now();
        assert_eq!(
            call(addr, "/api/x", &fresh(&KEY_A, 20 + i)).await.status,
            200
        );
        assert!(
            t0.elapsed() < Duration::from_millis(800),
            "a known kid waited {:?}",
            t0.elapsed()
        );
    }
    let r = unknown.await.unwrap();
    assert_eq!(r.reason(), "unknown_kid");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(admin, "/readyz").await.status, 200);
    // Rotation once it answers again.
    jwks.set_keys(&[&KEY_A, &KEY_B]);
    let addr2 = addr;
    eventually(Duration::from_secs(10), || async move {
        call(addr2, "/api/x", &fresh(&KEY_B, 99)).await.status == 200
    })
    .await;
}

/// A JWKS body over 1 MiB, sent chunked (no Content-Length), holding a real key.
fn oversize_chunked(keys: &[&cognito_sidecar::demo::keys::SigningKey]) -> Vec<u8> {
    let mut doc = cognito_sidecar::demo::keys::jwks(keys);
    doc["padding"] = json!("p".repeat(1536 * 1024));
    let body = doc.to_string();
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn a_jwks_failing_later_in_every_way_keeps_the_last_good_keys() {
    let peer = RawPeer::start(jwks_ok(&[&KEY_A])).await;
    let upstream = Upstream::start().await;
    let sidecar = sidecar_with(
        &upstream.url(),
        &format!("{}/jwks.json", peer.url()),
        "jwks_timeout = \"1s\"",
    )
    .await;
    let admin = sidecar.admin_addr().unwrap();
    let addr = sidecar.local_addr();
    wait_ready(admin, Duration::from_secs(10)).await;
    let oct = json!({"keys":[{"kty":"oct","kid":"kid-b","k":"c2VjcmV0"}]}).to_string();
    let keys_object = json!({"keys": {"kid-b": KEY_B.jwk()}}).to_string();
    let mut big_json = cognito_sidecar::demo::keys::jwks(&[&KEY_A, &KEY_B]);
    big_json["padding"] = json!("p".repeat(1100 * 1024));
    let modes: Vec<(&str, Answer)> = vec![
        ("reset", Answer::Close),
        (
            "non-HTTP bytes",
            Answer::Bytes(b"\x16\x03\x01\x02\x00garbage".to_vec()),
        ),
        (
            "503",
            Answer::Bytes(http_response("503 Service Unavailable", "text/plain", b"")),
        ),
        (
            "HTML",
            Answer::Bytes(http_response("200 OK", "text/html", b"<html></html>")),
        ),
        (
            "keys as an object",
            Answer::Bytes(http_response(
                "200 OK",
                "application/json",
                keys_object.as_bytes(),
            )),
        ),
        (
            "symmetric keys only",
            Answer::Bytes(http_response("200 OK", "application/json", oct.as_bytes())),
        ),
        (
            "over 1 MiB, chunked",
            Answer::Bytes(oversize_chunked(&[&KEY_A, &KEY_B])),
        ),
        (
            "over 1 MiB, Content-Length",
            Answer::Bytes(http_response(
                "200 OK",
                "application/json",
                big_json.to_string().as_bytes(),
            )),
        ),
        (
            "truncated",
            Answer::Bytes({
                let mut r =
                    http_response("200 OK", "application/json", &jwks_body(&[&KEY_A, &KEY_B]));
                r.truncate(r.len() / 2);
                r
            }),
        ),
        (
            "stalls mid-body",
            Answer::Stall({
                let mut r =
                    http_response("200 OK", "application/json", &jwks_body(&[&KEY_A, &KEY_B]));
                r.truncate(r.len() - 10);
                r
            }),
        ),
    ];
    for (i, (what, mode)) in modes.into_iter().enumerate() {
        peer.set(mode);
        let n = peer.requests().len();
        // An unknown kid forces a fetch now (jwks_min_refetch is 0s).
        let probe = KEY_A.sign_raw(
            &json!({"alg":"RS256","kid":format!("probe-{i}")}),
            &access_claims("x"),
        );
        let r = call(addr, "/api/x", &probe).await;
        assert_eq!(r.reason(), "unknown_kid", "{what}");
        assert!(peer.requests().len() > n, "{what}: no fetch");
        // The last good keys still verify, and the broken document's keys were not taken.
        assert_eq!(
            call(addr, "/api/x", &fresh(&KEY_A, i)).await.status,
            200,
            "{what}"
        );
        let r = call(addr, "/api/x", &fresh(&KEY_B, i)).await;
        assert_eq!(
            (r.status, r.reason().as_str()),
            (401, "unknown_kid"),
            "{what}"
        );
        assert_eq!(get(admin, "/readyz").await.status, 200, "{what}");
    }
    let m = get(admin, "/metrics").await.body;
    assert!(
        metric(
            &m,
            "sidecar_jwks_fetches_total{issuer=\"test\",result=\"error\"}"
        ) >= 10.0,
        "{m}"
    );
    // And a good rotated set is taken at once.
    peer.set(jwks_ok(&[&KEY_A, &KEY_B]));
    let probe = KEY_B.sign_raw(
        &json!({"alg":"RS256","kid":"probe-last"}),
        &access_claims("x"),
    );
    let _ = call(addr, "/api/x", &probe).await;
    assert_eq!(call(addr, "/api/x", &fresh(&KEY_B, 100)).await.status, 200);
}

#[tokio::test]
async fn a_kid_reused_for_new_key_material_invalidates_cached_tokens() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let sidecar = sidecar_with(&upstream.url(), &jwks.url(), "").await;
    wait_ready(sidecar.admin_addr().unwrap(), Duration::from_secs(10)).await;
    let addr = sidecar.local_addr();
    let old = sign(&access_claims("x"));
    for _ in 0..2 {
        // Verified twice: a token is cached on its second use (admission.rs).
        assert_eq!(call(addr, "/api/x", &old).await.status, 200);
    }
    // The issuer replaces the key behind kid-a (KEY_B's material, same kid).
    let mut swapped = KEY_B.jwk();
    swapped["kid"] = json!("kid-a");
    jwks.set(JwksMode::Keys(json!({"keys": [swapped]})));
    let probe = KEY_B.sign_raw(&json!({"alg":"RS256","kid":"probe"}), &access_claims("x"));
    let fetched = jwks.fetches();
    assert_eq!(call(addr, "/api/x", &probe).await.reason(), "unknown_kid");
    assert!(jwks.fetches() > fetched);
    // The cached token was signed by a key that is no longer in the set: refused.
    let before = upstream.hits();
    let r = call(addr, "/api/x", &old).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (401, "bad_signature"),
        "{r:?}"
    );
    assert_eq!(upstream.hits(), before);
    // Tokens from the new key under that kid are good.
    let new = KEY_B.sign_raw(&json!({"alg":"RS256","kid":"kid-a"}), &access_claims("y"));
    for _ in 0..2 {
        assert_eq!(call(addr, "/api/x", &new).await.status, 200); // the second use caches it
    }
    // An unchanged key set (refetched, same material) keeps the cache warm.
    let m0 = metric(
        &get(sidecar.admin_addr().unwrap(), "/metrics").await.body,
        "sidecar_token_cache_total{result=\"hit\"}",
    );
    let _ = call(addr, "/api/x", &probe).await;
    assert_eq!(call(addr, "/api/x", &new).await.status, 200);
    let m1 = metric(
        &get(sidecar.admin_addr().unwrap(), "/metrics").await.body,
        "sidecar_token_cache_total{result=\"hit\"}",
    );
    assert_eq!(m1, m0 + 1.0);
}

/// A sidecar in front of a [`RawPeer`] upstream.
async fn raw_upstream(answer: Answer) -> (RawPeer, Jwks, cognito_sidecar::Sidecar) {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let peer = RawPeer::start(answer).await;
    let text = config_text(&peer.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    (peer, jwks, sidecar)
}

fn ok_answer() -> Answer {
    Answer::Bytes(http_response("200 OK", "text/plain", b"all good"))
}

#[tokio::test]
async fn an_upstream_refusing_garbling_or_slow_is_502_or_504_then_recovers() {
    let (peer, _jwks, sidecar) = raw_upstream(Answer::Close).await;
    let addr = sidecar.local_addr();
    let cases: Vec<(&str, Answer, u16)> = vec![
        ("closes at once", Answer::Close, 502),
        (
            "SSH banner",
            Answer::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
            502,
        ),
        (
            "TLS record",
            Answer::Bytes(b"\x15\x03\x03\x00\x02\x02\x46".to_vec()),
            502,
        ),
        (
            "HTTP/0.9 body",
            Answer::Bytes(b"hello world\r\n".to_vec()),
            502,
        ),
        (
            "bad status",
            Answer::Bytes(b"HTTP/1.1 2000 OK\r\n\r\n".to_vec()),
            502,
        ),
        (
            "bad header",
            Answer::Bytes(b"HTTP/1.1 200 OK\r\nx y: z\r\n\r\n".to_vec()),
            502,
        ),
        (
            "head cut short",
            Answer::Bytes(b"HTTP/1.1 200 OK\r\ncontent-le".to_vec()),
            502,
        ),
        ("silent", Answer::Stall(Vec::new()), 504),
        (
            "status line then silence",
            Answer::Stall(b"HTTP/1.1 200 OK\r\n".to_vec()),
            504,
        ),
    ];
    for (what, answer, status) in cases {
        peer.set(answer);
        let started = Instant::now();
        let r = get(addr, "/public/x").await;
        assert_eq!(r.status, status, "{what}: {r:?}");
        let code = if status == 502 {
            "bad_gateway"
        } else {
            "gateway_timeout"
        };
        assert_eq!(r.json()["error"], code, "{what}");
        if status == 504 {
            // request_timeout is 2s in the test config.
            assert!(
                started.elapsed() >= Duration::from_millis(1900),
                "{what}: {:?}",
                started.elapsed()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            started.elapsed()
        );
        // Recovered at once, same sidecar.
        peer.set(ok_answer());
        let r = get(addr, "/public/x").await;
        assert_eq!((r.status, r.body.as_str()), (200, "all good"), "{what}");
    }
    let m = get(sidecar.admin_addr().unwrap(), "/metrics").await.body;
    assert!(
        metric(&m, "sidecar_upstream_errors_total{kind=\"reset\"}") >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "sidecar_upstream_errors_total{kind=\"timeout\"}") >= 2.0,
        "{m}"
    );
}

#[tokio::test]
async fn an_upstream_resetting_mid_response_aborts_the_client_body() {
    let (peer, _jwks, sidecar) = raw_upstream(ok_answer()).await;
    let addr = sidecar.local_addr();
    let part = vec![b'x'; 8 * 1024];
    let mut with_length = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
    with_length.extend_from_slice(&part);
    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2000\r\n".to_vec();
    chunked.extend_from_slice(&part);
    chunked.extend_from_slice(b"\r\n1000\r\nxx");
    for (what, answer) in [("content-length", with_length), ("chunked", chunked)] {
        peer.set(Answer::Bytes(answer));
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/public/x")
            .header("host", "t")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{what}: headers arrive first");
        // The body must end in an error, promptly: never look complete, never hang.
        let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{what}: the client hung on a body the upstream dropped"));
        assert!(body.is_err(), "{what}: a truncated body looked complete");
        // Recovered, same sidecar.
        peer.set(ok_answer());
        let r = get(addr, "/public/x").await;
        assert_eq!((r.status, r.body.as_str()), (200, "all good"), "{what}");
    }
}
