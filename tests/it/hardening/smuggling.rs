//! Request smuggling, in hand-written bytes: conflicting framing, obfuscated
//! `Transfer-Encoding`, h2c upgrades, pipelining, keep-alive after a rejection. Each request
//! on a connection is authorised on its own, and the upstream sees exactly the requests the
//! sidecar allowed, framed one way.

use std::time::Duration;

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/admin/**"
groups_any = ["admins"]
"#;

/// A request for /admin that must never reach the upstream unchecked.
const SMUGGLED: &str = "GET /admin/x HTTP/1.1\r\nhost: t\r\nx-smuggled: 1\r\n\r\n";

/// A chunked body holding `payload` in one chunk.
fn chunked(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n0\r\n\r\n", payload.len())
}

/// Sends raw bytes; returns the statuses answered.
async fn send(env: &Env, bytes: &str) -> (Vec<u16>, String) {
    let reply = raw(env.addr(), bytes.as_bytes(), Duration::from_secs(3)).await;
    (statuses(&reply), reply)
}

/// The upstream never saw the smuggled request (or anything under /admin).
fn assert_not_smuggled(env: &Env, what: &str) {
    for s in env.upstream.seen() {
        assert!(
            !s.uri.starts_with("/admin"),
            "{what}: the upstream saw {}",
            s.uri
        );
        assert!(
            !s.headers.contains_key("x-smuggled"),
            "{what}: smuggled headers"
        );
    }
}

/// A sidecar in front of a [`RawPeer`] that answers 200 and records the exact bytes.
async fn capture_env() -> (RawPeer, Jwks, cognito_sidecar::Sidecar) {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let peer = RawPeer::start(Answer::Bytes(http_response("200 OK", "text/plain", b"ok"))).await;
    let text = config_text(&peer.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    (peer, jwks, sidecar)
}

/// The forwarded request heads, lower-cased.
fn heads(peer: &RawPeer) -> Vec<String> {
    peer.requests()
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(r).to_ascii_lowercase();
            text.split("\r\n\r\n").next().unwrap().to_string()
        })
        .collect()
}

fn count_headers(head: &str, name: &str) -> usize {
    head.lines()
        .filter(|l| l.split(':').next().unwrap().replace('_', "-") == name)
        .count()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_reframed() {
    let env = env_with(ROUTES, |t| t).await;
    let body = chunked(SMUGGLED);
    for framing in [
        "content-length: 4\r\ntransfer-encoding: chunked\r\n",
        "transfer-encoding: chunked\r\ncontent-length: 4\r\n",
        "content-length: 0\r\ntransfer-encoding: chunked\r\n",
        &format!(
            "content-length: {}\r\ntransfer-encoding: chunked\r\n",
            body.len() + 100
        ),
    ] {
        let req = format!(
            "POST /public/x HTTP/1.1\r\nhost: t\r\n{framing}connection: close\r\n\r\n{body}"
        );
        let before = env.upstream.hits();
        let (got, reply) = send(&env, &req).await;
        // Either refused, or read as chunked: one request, whose body holds the "smuggled" text.
        match got.as_slice() {
            [400] => assert_eq!(env.upstream.hits(), before, "{framing:?}"),
            [200] => assert_eq!(env.upstream.hits(), before + 1, "{framing:?}"),
            other => panic!("{framing:?}: {other:?}\n{reply}"),
        }
        assert_not_smuggled(&env, framing);
    }
    // What the upstream receives is framed exactly one way.
    let (peer, _jwks, sidecar) = capture_env().await;
    let req = format!(
        "POST /public/x HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{body}"
    );
    let reply = raw(sidecar.local_addr(), req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(statuses(&reply), vec![200], "{reply}");
    let h = &heads(&peer)[0];
    assert_eq!(
        count_headers(h, "content-length") + count_headers(h, "transfer-encoding"),
        1,
        "{h}"
    );
    let forwarded = String::from_utf8_lossy(&peer.requests()[0]).to_string();
    assert!(
        forwarded.contains(SMUGGLED),
        "the body is forwarded whole:\n{forwarded}"
    );
}

#[tokio::test]
async fn duplicate_or_malformed_content_length_is_refused() {
    let env = env_with(ROUTES, |t| t).await;
    for cl in [
        "content-length: 5\r\ncontent-length: 6\r\n",
        "content-length: 6\r\ncontent-length: 5\r\n",
        "content-length: 5, 6\r\n",
        "content-length: +5\r\n",
        "content-length: 0x5\r\n",
        "content-length: -5\r\n",
        "content-length: 5 5\r\n",
        "content-length: 5.0\r\n",
        "content-length: 99999999999999999999999\r\n",
        "content-length: \r\n",
    ] {
        let req = format!("POST /public/x HTTP/1.1\r\nhost: t\r\n{cl}\r\nhello{SMUGGLED}");
        let before = env.upstream.hits();
        let (got, reply) = send(&env, &req).await;
        assert_eq!(got, vec![400], "{cl:?}: {reply}");
        assert_eq!(env.upstream.hits(), before, "{cl:?}");
    }
    // The same length twice is one length: forwarded with a single Content-Length.
    let (peer, _jwks, sidecar) = capture_env().await;
    for cl in [
        "content-length: 5\r\ncontent-length: 5\r\n",
        "content-length: 5, 5\r\n",
    ] {
        let req =
            format!("POST /public/x HTTP/1.1\r\nhost: t\r\n{cl}connection: close\r\n\r\nhello");
        let reply = raw(sidecar.local_addr(), req.as_bytes(), Duration::from_secs(3)).await;
        let got = statuses(&reply);
        assert!(got == [200] || got == [400], "{cl:?}: {reply}");
        if got == [200] {
            let h = heads(&peer).pop().unwrap();
            assert_eq!(count_headers(&h, "content-length"), 1, "{h}");
            assert!(
                h.contains("content-length: 5\r") || h.ends_with("content-length: 5"),
                "{h}"
            );
        }
    }
    assert_not_smuggled(&env, "content-length");
}

#[tokio::test]
async fn obfuscated_transfer_encoding_is_refused_or_read_one_way() {
    let env = env_with(ROUTES, |t| t).await;
    let body = chunked(SMUGGLED);
    // (framing headers, whether the request may be accepted)
    let variants: &[(&str, bool)] = &[
        ("transfer-encoding: chunked, identity\r\n", false),
        ("transfer-encoding: xchunked\r\n", false),
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n",
            false,
        ),
        ("transfer-encoding: identity\r\n", false),
        ("transfer-encoding: chunked, chunked\r\n", true),
        ("transfer-encoding:  chunked\r\n", true),
        ("transfer-encoding:\tchunked\r\n", true),
        ("transfer-encoding: CHUNKED\r\n", true),
        ("transfer-encoding : chunked\r\n", false),
        (" transfer-encoding: chunked\r\n", false),
        ("transfer-encoding\t: chunked\r\n", false),
        ("transfer-encoding: \"chunked\"\r\n", false),
        ("transfer-encoding: chunked\r\n", true),
    ];
    for &(framing, may_accept) in variants {
        let req = format!(
            "POST /public/x HTTP/1.1\r\nhost: t\r\n{framing}connection: close\r\n\r\n{body}"
        );
        let before = env.upstream.hits();
        let (got, reply) = send(&env, &req).await;
        match got.as_slice() {
            [400] => assert_eq!(env.upstream.hits(), before, "{framing:?}"),
            [200] if may_accept => assert_eq!(env.upstream.hits(), before + 1, "{framing:?}"),
            other => panic!("{framing:?}: {other:?}\n{reply}"),
        }
        assert_not_smuggled(&env, framing);
    }
    // HTTP/1.0 has no chunked encoding.
    let req =
        format!("POST /public/x HTTP/1.0\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{body}");
    let reply = raw(env.addr(), req.as_bytes(), Duration::from_secs(3)).await;
    assert!(reply.contains(" 400 "), "{reply}");
    assert_not_smuggled(&env, "HTTP/1.0");
}

#[tokio::test]
async fn framing_header_look_alikes_never_reach_the_upstream() {
    // `Transfer_Encoding` is no framing header to the sidecar (the body is read by its
    // Content-Length), but CGI-style upstreams read `_` as `-`: forwarded, the upstream would
    // frame the body another way and read the rest as a second request.
    let (peer, _jwks, sidecar) = capture_env().await;
    let body = chunked(SMUGGLED);
    for (framing, body) in [
        (format!("content-length: {}\r\ntransfer_encoding: chunked\r\n", body.len()), body.clone()),
        (format!("content-length: {}\r\nTransfer_Encoding: chunked\r\n", body.len()), body.clone()),
        ("content_length: 50\r\n".to_string(), String::new()),
        (format!("content-length: {}\r\nproxy_connection: close\r\nkeep_alive: 1\r\nproxy_authorization: Basic eDp5\r\n", body.len()), body.clone()),
        (format!("content-length: {}\r\nx_forwarded_proto: https\r\nx_forwarded_host: evil.example\r\n", body.len()), body.clone()),
        (format!("content-length: {}\r\nhttp2_settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", body.len()), body.clone()),
    ] {
        let req = format!("POST /public/x HTTP/1.1\r\nhost: t\r\n{framing}connection: close\r\n\r\n{body}");
        let n = peer.requests().len();
        let reply = raw(sidecar.local_addr(), req.as_bytes(), Duration::from_secs(3)).await;
        let got = statuses(&reply);
        assert!(got == [200] || got == [400], "{framing:?}: {reply}");
        if got == [200] {
            let h = heads(&peer).remove(n);
            for name in ["transfer-encoding", "content-length", "proxy-connection", "keep-alive", "proxy-authorization", "http2-settings", "x-forwarded-proto", "x-forwarded-host"] {
                let look_alikes = h
                    .lines()
                    .filter(|l| {
                        let k = l.split(':').next().unwrap();
                        k.contains('_') && k.replace('_', "-") == name
                    })
                    .count();
                assert_eq!(look_alikes, 0, "{framing:?}: a look-alike of {name} was forwarded:\n{h}");
            }
        }
    }
}

#[tokio::test]
async fn h2c_upgrades_never_reach_the_upstream_as_an_upgrade() {
    let env = env_with(ROUTES, |t| t).await;
    let upgrade = "connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    // Public: answered over HTTP/1.1, forwarded as a plain request.
    let (got, reply) = send(
        &env,
        &format!("GET /public/x HTTP/1.1\r\nhost: t\r\n{upgrade}connection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(got, vec![200], "{reply}");
    assert!(!reply.contains("101"), "{reply}");
    let seen = env.upstream.last();
    for h in ["upgrade", "connection", "http2-settings"] {
        assert!(!seen.headers.contains_key(h), "{h} reached the upstream");
    }
    // HTTP2-Settings alone (not named in Connection) is connection-specific all the same.
    let (got, _) = send(
        &env,
        "GET /public/x HTTP/1.1\r\nhost: t\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got, vec![200]);
    let seen = env.upstream.last();
    assert!(!seen.headers.contains_key("upgrade"));
    assert!(!seen.headers.contains_key("http2-settings"));
    // Protected, no token: 401, not a protocol switch.
    let before = env.upstream.hits();
    let (got, reply) = send(
        &env,
        &format!("GET /admin/x HTTP/1.1\r\nhost: t\r\n{upgrade}\r\n{SMUGGLED}"),
    )
    .await;
    assert_eq!(got, vec![401, 401], "{reply}");
    assert_eq!(env.upstream.hits(), before);

    // An upstream that switches protocols when nobody asked it to: 502, and no tunnel.
    let jwks = Jwks::start(&[&KEY_A]).await;
    let peer = RawPeer::start(Answer::Stall(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n".to_vec(),
    ))
    .await;
    let text = config_text(&peer.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let mut c = Conn::open(sidecar.local_addr()).await;
    c.send(format!("GET /public/x HTTP/1.1\r\nhost: t\r\n{upgrade}\r\n").as_bytes())
        .await;
    c.send(SMUGGLED.as_bytes()).await;
    let (reply, _) = c.read_until_close(Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    assert!(!reply.contains(" 101 "), "{reply}");
    let forwarded: Vec<String> = peer
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(r).to_ascii_lowercase())
        .collect();
    assert!(
        forwarded
            .iter()
            .all(|r| !r.contains("x-smuggled") && !r.contains("upgrade: h2c")),
        "{forwarded:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_each_authorised_on_their_own() {
    let env = env_with(ROUTES, |t| t).await;
    let admin = sign(&user_access_claims(&["admins"]));
    let reader = sign(&user_access_claims(&["readers"]));
    let cases = [
        // Allowed first, unauthenticated second.
        (format!("GET /public/x HTTP/1.1\r\nhost: t\r\n\r\n{}", SMUGGLED.replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")), vec![200, 401], 1),
        // A token on the first request does not carry over to the second.
        (
            format!(
                "GET /admin/a HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {admin}\r\n\r\nGET /admin/b HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
            ),
            vec![200, 401],
            1,
        ),
        // Nor does a rejection's reason: each is checked with its own token.
        (
            format!(
                "GET /admin/a HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {reader}\r\n\r\nGET /admin/b HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {admin}\r\nconnection: close\r\n\r\n"
            ),
            vec![403, 200],
            1,
        ),
    ];
    for (bytes, want, forwarded) in cases {
        let before = env.upstream.hits();
        let (got, reply) = send(&env, &bytes).await;
        assert_eq!(got, want, "{reply}");
        assert_eq!(env.upstream.hits(), before + forwarded);
    }
    let seen: Vec<String> = env.upstream.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(seen, ["/public/x", "/admin/a", "/admin/b"]);
    assert!(env
        .upstream
        .seen()
        .iter()
        .all(|s| !s.headers.contains_key("x-smuggled")));
}

#[tokio::test]
async fn keep_alive_after_a_rejection_does_not_read_the_body_as_a_request() {
    let env = env_with(ROUTES, |t| t).await;
    let next = "GET /public/next HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
    // A smuggled /public request inside the body of a rejected /admin request.
    let inner = "GET /public/inner HTTP/1.1\r\nhost: t\r\n\r\n";
    for rejected in [
        format!("POST /admin/x HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}", inner.len()),
        format!("POST /admin/x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{}", chunked(inner)),
        format!("POST /admin/x HTTP/1.1\r\nhost: t\r\nauthorization: Bearer junk\r\ncontent-length: {}\r\n\r\n{inner}", inner.len()),
        format!("POST /public/a%2Fb HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{inner}", inner.len()),
    ] {
        let before = env.upstream.hits();
        let (got, reply) = send(&env, &format!("{rejected}{next}")).await;
        assert!(matches!(got.first(), Some(401 | 400)), "{reply}");
        // hyper either drains the unread body and serves the next request, or closes.
        assert!(got.len() <= 2 && got.get(1).is_none_or(|s| *s == 200), "{reply}");
        let seen: Vec<String> = env.upstream.seen()[before..].iter().map(|s| s.uri.clone()).collect();
        assert!(seen.iter().all(|u| u == "/public/next"), "{seen:?}");
        assert_eq!(seen.len(), got.len() - 1, "{seen:?} {got:?}");
    }
    // Expect: 100-continue on a rejected request: the answer comes without inviting the body.
    let before = env.upstream.hits();
    let mut c = Conn::open(env.addr()).await;
    c.send(b"POST /admin/x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 1000000\r\nconnection: close\r\n\r\n").await;
    let (reply, closed) = c.read_until_close(Duration::from_secs(3)).await;
    assert!(closed, "{reply}");
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(!reply.contains("100 Continue"), "{reply}");
    assert_eq!(env.upstream.hits(), before);
    assert_not_smuggled(&env, "keep-alive");
}

#[tokio::test]
async fn a_refused_websocket_upgrade_never_becomes_a_tunnel() {
    // The upstream refuses the upgrade (426): the connection stays HTTP, so what the client
    // sends next is parsed and checked as a request, never piped to the upstream.
    let jwks = Jwks::start(&[&KEY_A]).await;
    let peer = RawPeer::start(Answer::Bytes(
        b"HTTP/1.1 426 Upgrade Required\r\nsec-websocket-version: 13\r\ncontent-length: 0\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let text = config_text(&peer.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let upgrade = "GET /public/ws HTTP/1.1\r\nhost: t\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 99\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let reply = raw(
        sidecar.local_addr(),
        format!(
            "{upgrade}{}",
            SMUGGLED.replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
        )
        .as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(statuses(&reply), vec![426, 401], "{reply}");
    let forwarded: Vec<String> = peer
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(r).to_string())
        .collect();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert!(!forwarded[0].contains("x-smuggled"), "{forwarded:?}");
}
