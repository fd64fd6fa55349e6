//! One request, one identity: every configured token source is read, and when more than one
//! carries a value they must carry the same token (RFC 6750 §3.1); otherwise 400
//! `invalid_request` / `multiple_tokens` and the upstream is never called. What reaches the
//! upstream of each source is checked too.
//!
//! The sources are a table ([`SOURCES`]): a source added later joins every pair by being
//! added there.

use crate::support::*;

/// Where a test puts a token.
#[derive(Debug, Clone, Copy)]
enum Src {
    Header,
    Cookie,
    Query,
    WebSocket,
}

const SOURCES: [Src; 4] = [Src::Header, Src::Cookie, Src::Query, Src::WebSocket];

/// A WebSocket upgrade to `/ws` (the only request kind on which every source counts).
#[derive(Default)]
struct Req {
    query: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Req {
    fn put(&mut self, src: Src, token: &str) {
        match src {
            Src::Header => self
                .headers
                .push(("authorization".into(), format!("Bearer {token}"))),
            Src::Cookie => self
                .headers
                .push(("cookie".into(), format!("theme=dark; access_token={token}"))),
            Src::Query => self.query.push(format!("access_token={token}")),
            Src::WebSocket => self.headers.push((
                "sec-websocket-protocol".into(),
                format!("chat, bearer, {token}"),
            )),
        }
    }

    async fn send(&self, env: &Env) -> Reply {
        let mut target = "/ws?x=1".to_string();
        for q in &self.query {
            target = format!("{target}&{q}");
        }
        let mut headers: Vec<(&str, &str)> = vec![
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        request(env.addr(), "GET", &target, &headers, "").await
    }
}

const CONFIG: &str = r#"
[[routes]]
path = "/ws"
scopes = ["chat"]
[[routes]]
path = "/api/**"
scopes = ["chat"]
[[routes]]
path = "/public/**"
auth = "public"
[token]
cookie = "access_token"
query = "access_token"
websocket_protocol = true
"#;

fn token_for(sub: &str) -> String {
    let mut c = access_claims("chat");
    c["sub"] = serde_json::json!(sub);
    sign(&c)
}

fn expect_multiple_tokens(r: &Reply, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    assert_eq!(
        r.www_authenticate(),
        "Bearer realm=\"cognito-sidecar\", error=\"invalid_request\", error_description=\"multiple_tokens\"",
        "{what}"
    );
    assert_eq!(r.json()["error_description"], "multiple_tokens", "{what}");
}

#[tokio::test]
async fn two_sources_with_different_tokens_are_refused_for_every_pair() {
    let env = Env::start(CONFIG).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    for (i, &a) in SOURCES.iter().enumerate() {
        for &b in &SOURCES[i + 1..] {
            for (second, kind) in [
                (bob.as_str(), "another valid token"),
                ("garbage", "garbage"),
            ] {
                let mut req = Req::default();
                req.put(a, &alice);
                req.put(b, second);
                let r = req.send(&env).await;
                expect_multiple_tokens(&r, &format!("{a:?} + {b:?} ({kind})"));
            }
        }
    }
    assert_eq!(
        env.upstream.hits(),
        0,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn the_same_token_in_two_sources_is_one_token() {
    let env = Env::start(CONFIG).await;
    let alice = token_for("alice");
    let mut hits = 0;
    for (i, &a) in SOURCES.iter().enumerate() {
        for &b in &SOURCES[i + 1..] {
            let mut req = Req::default();
            req.put(a, &alice);
            req.put(b, &alice);
            let r = req.send(&env).await;
            assert_eq!(r.status, 101, "{a:?} + {b:?}: {}", r.body);
            hits += 1;
            assert_eq!(env.upstream.hits(), hits);
            let seen = env.upstream.last();
            assert_eq!(seen.headers["x-auth-sub"], "alice", "{a:?} + {b:?}");
            // The query parameter and the WebSocket protocol's token never go upstream; the
            // cookie does only because it holds the token that was verified.
            assert_eq!(seen.uri, "/ws?x=1", "{a:?} + {b:?}");
            let protocols = seen
                .headers
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string());
            assert!(
                protocols.as_deref().is_none_or(|p| !p.contains("bearer")),
                "{a:?} + {b:?}: {protocols:?}"
            );
        }
    }
}

#[tokio::test]
async fn two_values_in_one_source_are_two_tokens() {
    let env = Env::start(CONFIG).await;
    let (alice, bob) = (token_for("alice"), token_for("bob"));
    let r = request(
        env.addr(),
        "GET",
        "/api/x",
        &[(
            "cookie",
            &format!("access_token={alice}; access_token={bob}"),
        )],
        "",
    )
    .await;
    expect_multiple_tokens(&r, "two cookies");
    let r = request(
        env.addr(),
        "GET",
        &format!("/api/x?access_token={alice}&access_token={bob}"),
        &[],
        "",
    )
    .await;
    expect_multiple_tokens(&r, "two query parameters");
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn two_authorization_headers_are_refused_on_public_routes_too() {
    let env = Env::start(CONFIG).await;
    let t = token_for("alice");
    let a = format!("Bearer {t}");
    for path in ["/public/page", "/api/x"] {
        let r = request(
            env.addr(),
            "GET",
            path,
            &[
                ("authorization", &a),
                ("authorization", "Basic dXNlcjpwdw=="),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert_eq!(
            r.json()["error_description"],
            "authorization_duplicated",
            "{path}"
        );
    }
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn the_token_cookie_reaches_the_upstream_only_when_it_was_verified() {
    let env = Env::start(CONFIG).await;
    let alice = token_for("alice");
    let cookie = format!("theme=dark; access_token={alice}");
    // Verified from the cookie: it stays, with the other cookies.
    let r = request(env.addr(), "GET", "/api/x", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(env.upstream.last().headers["cookie"], cookie.as_str());
    // A public route verifies nothing: the token cookie is removed, the others are kept.
    let r = request(
        env.addr(),
        "GET",
        "/public/page",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert_eq!(seen.headers["cookie"], "theme=dark");
    assert!(identity_of(&seen).is_empty(), "{:?}", identity_of(&seen));
}
