//! The README's `## Behaviour` table, row by row, where the other suites leave a gap: what a
//! public route does with bad and good tokens, the exact `deny`, 405, duplicated
//! `Authorization` and `bad_host` answers, `X-Request-Id` on every kind of answer, rejection
//! reasons as metrics labels, the 403 scope hint, and a SIGHUP reload of a file that parses
//! but fails validation. Every refusal also asserts that the upstream was not called.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::HeaderMap;
use serde_json::{json, Value};

use crate::hardening::{env_with, expect_401, metric, set_key};
use crate::support::*;

const ROUTES: &str = r#"
[default]
auth = "required"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/get-only"
methods = ["GET"]
[[routes]]
path = "/post-put"
methods = ["PUT", "POST"]
[[routes]]
path = "/scoped"
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/all-scopes"
scopes = ["a/read", "a/write"]
[[routes]]
path = "/any-scope"
scopes_any = ["a/read", "a/write"]
[[routes]]
path = "/group"
groups_any = ["admins"]
[[routes]]
path = "/id-only"
token_use = "id"
[[routes]]
path = "/client-b-only"
client_ids = ["client-b"]
[[routes]]
path = "/blocked/**"
auth = "deny"
"#;

// === Tokens that fail verification ===

fn expired_token() -> String {
    let mut c = access_claims("dotnet-demo/dotnet");
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    c["auth_time"] = json!(now() - 7200);
    sign(&c)
}

fn wrong_issuer_token() -> String {
    let mut c = access_claims("dotnet-demo/dotnet");
    c["iss"] = json!("https://cognito-idp.local-1.amazonaws.com/local-1_OtherPool");
    sign(&c)
}

/// A token for `kid-a` whose signature was made with KEY_B.
fn bad_signature_token() -> String {
    KEY_B.sign_raw(
        &json!({"alg": "RS256", "kid": "kid-a", "typ": "JWT"}),
        &access_claims("dotnet-demo/dotnet"),
    )
}

// === Small helpers ===

/// The value of `sidecar_requests_total{outcome, route}` (0 when absent).
fn requests_total(metrics: &str, route: &str, outcome: &str) -> f64 {
    metric(
        metrics,
        &format!("sidecar_requests_total{{outcome=\"{outcome}\",route=\"{route}\"}}"),
    )
}

/// Whether `id` has the 8-4-4-4-12 hex form of a UUID.
fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An error answer's `X-Request-Id` header, checked equal to its body's `request_id`.
fn request_id_of(r: &Reply, what: &str) -> String {
    let id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no X-Request-Id: {r:?}"))
        .to_string();
    assert_eq!(r.json()["request_id"], id.as_str(), "{what}: {r:?}");
    id
}

/// Parses a raw HTTP/1.1 answer with a `Content-Length` body (the first one in `raw`).
fn parse_raw(raw: &str) -> Reply {
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let mut headers = HeaderMap::new();
    for l in lines {
        let (k, v) = l.split_once(':').expect("header line");
        headers.append(
            http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(rest.len());
    Reply {
        status,
        headers,
        body: rest.get(..len).unwrap_or(rest).to_string(),
    }
}

// === R6: public routes ===

#[tokio::test]
async fn public_route_forwards_a_bad_token_without_identity() {
    let env = Env::start(ROUTES).await;
    let bad = [
        ("expired", expired_token()),
        ("malformed", "garbage.not-a.jwt".to_string()),
        ("malformed", "x".to_string()),
        ("wrong_issuer", wrong_issuer_token()),
        ("bad_signature", bad_signature_token()),
    ];
    for (reason, token) in &bad {
        // The token really is refused where a token is checked...
        expect_401(&env, "/scoped", token, reason).await;
        // ... and on the public route it is not checked at all: forwarded, no identity.
        let before = env.upstream.hits();
        let r = call(env.addr(), "/public/x", token).await;
        assert_eq!(r.status, 200, "{reason}: {r:?}");
        assert_eq!(env.upstream.hits(), before + 1, "{reason}");
        let seen = env.upstream.last();
        assert_eq!(seen.uri, "/public/x");
        assert_eq!(identity_of(&seen), Default::default(), "{reason}");
        assert!(!seen.headers.contains_key("x-auth-claims"), "{reason}");
    }
    // Also with spoofed identity headers alongside the bad token.
    let before = env.upstream.hits();
    let auth = format!("Bearer {}", expired_token());
    let r = request(
        env.addr(),
        "GET",
        "/public/y",
        &[
            ("authorization", &auth),
            ("x-auth-sub", "admin"),
            ("x-auth-groups", "admins"),
            ("x-auth-claims", "eyJzdWIiOiJhZG1pbiJ9"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.upstream.hits(), before + 1);
    assert_eq!(identity_of(&env.upstream.last()), Default::default());
    let m = env.metrics().await;
    assert_eq!(requests_total(&m, "/public/**", "forwarded"), 6.0, "{m}");
    assert_eq!(requests_total(&m, "/public/**", "expired"), 0.0, "{m}");
}

#[tokio::test]
async fn public_route_injects_no_identity_for_a_valid_token() {
    let env = Env::start(ROUTES).await;
    let token = sign(&user_access_claims(&["admins"]));
    let auth = format!("Bearer {token}");
    let spoofed = [
        ("authorization", auth.as_str()),
        ("x-auth-sub", "someone-else"),
        ("X-Auth-Client-Id", "client-b"),
        ("x-auth-scope", "dotnet-demo/dotnet"),
        ("x-auth-username", "root"),
        ("x-auth-claims", "eyJzdWIiOiJhZG1pbiJ9"),
    ];
    // Where the token is checked, the same token yields identity headers (control).
    let r = request(env.addr(), "GET", "/group", &spoofed, "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = identity_of(&env.upstream.last());
    assert_eq!(
        id.get("x-auth-sub").map(String::as_str),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(id.get("x-auth-groups").map(String::as_str), Some("admins"));
    assert!(id.contains_key("x-auth-claims"), "{id:?}");

    // On the public route: forwarded, spoofed copies stripped, nothing injected.
    for path in ["/public/x", "/public/a/b"] {
        let before = env.upstream.hits();
        let r = request(env.addr(), "GET", path, &spoofed, "").await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(env.upstream.hits(), before + 1, "{path}");
        let seen = env.upstream.last();
        assert_eq!(seen.uri, path);
        assert_eq!(identity_of(&seen), Default::default(), "{path}");
    }
    // Spoofed X-Auth-Sub with no token at all: stripped too.
    let before = env.upstream.hits();
    let r = request(
        env.addr(),
        "GET",
        "/public/z",
        &[("X-Auth-Sub", "admin"), ("x_auth_sub", "admin")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.upstream.hits(), before + 1);
    assert_eq!(identity_of(&env.upstream.last()), Default::default());
}

// === R5: auth = "deny" ===

#[tokio::test]
async fn deny_route_is_403_denied_without_a_challenge_and_counted() {
    let env = Env::start(ROUTES).await;
    let admin = sign(&user_access_claims(&["admins"]));
    let expired = expired_token();
    let cases: [(&str, Option<&str>); 4] = [
        ("/blocked/x", Some(&admin)),
        ("/blocked", None),
        ("/blocked/a/b", Some(&expired)),
        ("/blocked/x", Some("garbage")),
    ];
    for (path, token) in cases {
        let r = env.get(path, token).await;
        let what = format!("{path} with {token:?}: {r:?}");
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.header("www-authenticate"), None, "{what}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        let id = request_id_of(&r, &what);
        assert!(is_uuid(&id), "{what}");
        assert_eq!(
            r.json(),
            json!({"error": "forbidden", "error_description": "denied", "request_id": id}),
            "{what}"
        );
    }
    assert_eq!(
        env.upstream.hits(),
        0,
        "a denied request reached the upstream"
    );
    let m = env.metrics().await;
    assert_eq!(requests_total(&m, "/blocked/**", "denied"), 4.0, "{m}");
    assert_eq!(requests_total(&m, "/blocked/**", "forwarded"), 0.0, "{m}");
}

// === R7: two Authorization headers ===

const DUPLICATED: &str = "Bearer realm=\"cognito-sidecar\", error=\"invalid_request\", error_description=\"authorization_duplicated\"";

fn expect_duplicated(r: &Reply, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r:?}");
    assert_eq!(r.www_authenticate(), DUPLICATED, "{what}: {r:?}");
    let id = request_id_of(r, what);
    assert_eq!(
        r.json(),
        json!({"error": "invalid_request", "error_description": "authorization_duplicated", "request_id": id}),
        "{what}"
    );
}

#[tokio::test]
async fn two_authorization_headers_are_400_authorization_duplicated() {
    let env = Env::start(ROUTES).await;
    let good = sign(&access_claims("dotnet-demo/dotnet"));
    let good_auth = format!("Bearer {good}");
    // The token alone is accepted (control).
    assert_eq!(call(env.addr(), "/scoped", &good).await.status, 200);
    let before = env.upstream.hits();
    let pairs: [(&str, &str); 4] = [
        (&good_auth, "Bearer x"),
        (&good_auth, &good_auth),
        ("Bearer x", &good_auth),
        ("", &good_auth),
    ];
    for (first, second) in pairs {
        for path in ["/scoped", "/unlisted"] {
            let r = request(
                env.addr(),
                "GET",
                path,
                &[("authorization", first), ("authorization", second)],
                "",
            )
            .await;
            expect_duplicated(&r, &format!("{path} with {first:?} and {second:?}"));
        }
    }
    // Two spellings of the name are still two Authorization headers.
    for names in [
        ("Authorization", "authorization"),
        ("AUTHORIZATION", "Authorization"),
    ] {
        let head = format!(
            "GET /scoped HTTP/1.1\r\nhost: t\r\n{}: {good_auth}\r\n{}: {good_auth}\r\nconnection: close\r\n\r\n",
            names.0, names.1
        );
        let r = parse_raw(&raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await);
        expect_duplicated(&r, &format!("{names:?}"));
    }
    assert_eq!(
        env.upstream.hits(),
        before,
        "a duplicated Authorization was forwarded"
    );
    let m = env.metrics().await;
    assert_eq!(
        requests_total(&m, "/scoped", "authorization_duplicated"),
        6.0,
        "{m}"
    );
}

// === R4: 405 ===

#[tokio::test]
async fn method_not_in_the_route_is_405_with_the_exact_allow_and_no_fall_through() {
    // `[default] auth = "public"`: falling through to the default would forward (200).
    let env = Env::start(&ROUTES.replace(
        "[default]\nauth = \"required\"",
        "[default]\nauth = \"public\"",
    ))
    .await;
    let token = sign(&access_claims("dotnet-demo/dotnet"));
    assert_eq!(call(env.addr(), "/get-only", &token).await.status, 200);
    assert_eq!(get(env.addr(), "/unlisted").await.status, 200);
    let before = env.upstream.hits();
    let auth = format!("Bearer {token}");
    let cases = [
        ("POST", "/get-only", "GET, HEAD"),
        ("DELETE", "/get-only", "GET, HEAD"),
        ("PUT", "/get-only", "GET, HEAD"),
        ("OPTIONS", "/get-only", "GET, HEAD"),
        ("GET", "/post-put", "POST, PUT"),
        ("HEAD", "/post-put", "POST, PUT"),
        ("PATCH", "/post-put", "POST, PUT"),
    ];
    for (method, path, allow) in cases {
        for headers in [vec![], vec![("authorization", auth.as_str())]] {
            let r = request(env.addr(), method, path, &headers, "").await;
            let what = format!("{method} {path} (token: {}): {r:?}", !headers.is_empty());
            assert_eq!(r.status, 405, "{what}");
            assert_eq!(r.header("allow"), Some(allow), "{what}");
            assert_eq!(r.header("www-authenticate"), None, "{what}");
            if method != "HEAD" {
                let id = request_id_of(&r, &what);
                assert_eq!(
                    r.json(),
                    json!({"error": "method_not_allowed", "error_description": "method_not_allowed", "request_id": id}),
                    "{what}"
                );
            }
        }
    }
    assert_eq!(env.upstream.hits(), before, "a 405 reached the upstream");
}

// === R16: bad_host ===

#[tokio::test]
async fn bad_host_is_400_bad_host_in_the_body() {
    let env = Env::start(ROUTES).await;
    for head in [
        "GET /public/x HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: a.example\r\nHost: a.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: a.example/admin\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: user@a.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nconnection: close\r\n\r\n",
    ] {
        let r = parse_raw(&raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await);
        let what = format!("{head:?}: {r:?}");
        assert_eq!(r.status, 400, "{what}");
        assert_eq!(r.header("www-authenticate"), None, "{what}");
        let id = request_id_of(&r, &what);
        assert_eq!(
            r.json(),
            json!({"error": "invalid_request", "error_description": "bad_host", "request_id": id}),
            "{what}"
        );
    }
    // Through an ordinary client too: two Host headers on a fresh connection.
    let r = request(
        env.addr(),
        "GET",
        "/public/x",
        &[("host", "a.example"), ("host", "b.example")],
        "",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error_description"], "bad_host");
    assert_eq!(env.upstream.hits(), 0, "a bad Host reached the upstream");
    let m = env.metrics().await;
    assert_eq!(requests_total(&m, "-", "bad_host"), 6.0, "{m}");
}

// === R17: X-Request-Id on every answer ===

/// Sends `method target` twice, once with no id and once with a sane one, and checks the
/// answer's status, that the id is made (UUID) or echoed, and that it is the body's.
async fn check_ids(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    status: u16,
) {
    let r = request(addr, method, target, headers, "").await;
    let what = format!("{method} {target}");
    assert_eq!(r.status, status, "{what}: {r:?}");
    let made = request_id_of(&r, &what);
    assert!(is_uuid(&made), "{what}: made id {made:?}");
    let again = request(addr, method, target, headers, "").await;
    assert_ne!(
        request_id_of(&again, &what),
        made,
        "{what}: the same id twice"
    );

    let sent = format!("req-{status}.{}:A_b/c+d=e@f", method.to_lowercase());
    let mut with_id = headers.to_vec();
    with_id.push(("x-request-id", &sent));
    let r = request(addr, method, target, &with_id, "").await;
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(request_id_of(&r, &what), sent, "{what}: sane id not echoed");

    // An id that is not sane is replaced, in the header and the body.
    let mut with_bad = headers.to_vec();
    with_bad.push(("x-request-id", "has spaces and \"quotes\""));
    let r = request(addr, method, target, &with_bad, "").await;
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(is_uuid(&request_id_of(&r, &what)), "{what}: {r:?}");
}

#[tokio::test]
async fn every_refusal_carries_the_request_id_of_its_body() {
    let env = Env::start(ROUTES).await;
    let addr = env.addr();
    let reader = format!("Bearer {}", sign(&user_access_claims(&["readers"])));
    let expired = format!("Bearer {}", expired_token());
    check_ids(addr, "GET", "/unlisted", &[], 401).await;
    check_ids(addr, "GET", "/scoped", &[("authorization", &expired)], 401).await;
    check_ids(addr, "GET", "/scoped", &[("authorization", &reader)], 403).await;
    check_ids(addr, "GET", "/blocked/x", &[], 403).await;
    check_ids(addr, "POST", "/get-only", &[], 405).await;
    check_ids(addr, "GET", "/a%2Fb", &[], 400).await;
    check_ids(
        addr,
        "GET",
        "/scoped",
        &[("authorization", &reader), ("authorization", "Bearer x")],
        400,
    )
    .await;
    check_ids(
        addr,
        "GET",
        "/public/x",
        &[("host", "a"), ("host", "b")],
        400,
    )
    .await;
    assert_eq!(env.upstream.hits(), 0, "a refusal reached the upstream");
}

#[tokio::test]
async fn upstream_failures_and_missing_keys_carry_the_request_id_of_their_body() {
    const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\nauth = \"public\"\n";
    // 502: nothing listening upstream.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let jwks = Jwks::start(&[&KEY_A]).await;
    let sidecar = start_ready(&config_text(
        &format!("http://{dead}"),
        &jwks.url(),
        PUBLIC_ALL,
    ))
    .await;
    check_ids(sidecar.local_addr(), "GET", "/x", &[], 502).await;

    // 504: an upstream that never answers, with a short request_timeout.
    let env = env_with(PUBLIC_ALL, |t| set_key(t, "request_timeout", "\"300ms\"")).await;
    check_ids(env.addr(), "GET", "/hold", &[], 504).await;
    assert_eq!(
        env.upstream.hits(),
        4,
        "each /hold reached the upstream once"
    );

    // 503: the JWKS has never answered with keys.
    let down = Jwks::start_with(JwksMode::Status(500)).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &down.url(), "");
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .expect("sidecar starts");
    let token = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    check_ids(
        sidecar.local_addr(),
        "GET",
        "/x",
        &[("authorization", &token)],
        503,
    )
    .await;
    assert_eq!(upstream.hits(), 0, "a 503 reached the upstream");
    let m = get(sidecar.admin_addr().unwrap(), "/metrics").await.body;
    assert_eq!(
        requests_total(&m, "default", "keys_unavailable"),
        4.0,
        "{m}"
    );
}

// === Rejection reasons as metrics labels ===

#[tokio::test]
async fn rejection_reasons_are_counted_as_metrics_outcomes() {
    let env = Env::start(ROUTES).await;
    let addr = env.addr();
    let reader = sign(&user_access_claims(&["readers"]));
    let machine = sign(&access_claims("dotnet-demo/dotnet"));
    for _ in 0..2 {
        assert_eq!(call(addr, "/scoped", &expired_token()).await.status, 401);
    }
    assert_eq!(call(addr, "/unlisted", &expired_token()).await.status, 401);
    assert_eq!(
        call(addr, "/scoped", &bad_signature_token()).await.status,
        401
    );
    assert_eq!(
        call(addr, "/scoped", &wrong_issuer_token()).await.status,
        401
    );
    assert_eq!(call(addr, "/scoped", "garbage").await.status, 401);
    let mut c = access_claims("dotnet-demo/dotnet");
    c["nbf"] = json!(now() + 3600);
    assert_eq!(call(addr, "/scoped", &sign(&c)).await.status, 401);
    let mut c = access_claims("dotnet-demo/dotnet");
    c["token_use"] = json!("refresh");
    assert_eq!(call(addr, "/scoped", &sign(&c)).await.status, 401);
    let mut c = access_claims("dotnet-demo/dotnet");
    c["client_id"] = json!("client-z");
    assert_eq!(call(addr, "/scoped", &sign(&c)).await.status, 401);
    let unknown_kid = KEY_B.sign(&access_claims("dotnet-demo/dotnet"));
    assert_eq!(call(addr, "/scoped", &unknown_kid).await.status, 401);
    let hs256 = format!(
        "{}sig",
        cognito_sidecar::demo::keys::unsigned(
            &json!({"alg": "HS256", "kid": "kid-a"}),
            &access_claims("dotnet-demo/dotnet")
        )
    );
    assert_eq!(call(addr, "/scoped", &hs256).await.status, 401);
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(3000),
        "c".repeat(3000)
    );
    assert_eq!(call(addr, "/scoped", &huge).await.status, 401);
    assert_eq!(get(addr, "/scoped").await.status, 401);
    for _ in 0..3 {
        assert_eq!(call(addr, "/scoped", &reader).await.status, 403);
    }
    assert_eq!(call(addr, "/group", &machine).await.status, 403);
    assert_eq!(call(addr, "/id-only", &machine).await.status, 403);
    assert_eq!(call(addr, "/client-b-only", &machine).await.status, 403);
    assert_eq!(get(addr, "/public/%2e%2e%2fx").await.status, 400);
    assert_eq!(get(addr, "/a%2Fb").await.status, 400);
    assert_eq!(
        request(addr, "POST", "/get-only", &[], "").await.status,
        405
    );
    assert_eq!(env.upstream.hits(), 0, "a refusal reached the upstream");
    assert_eq!(call(addr, "/scoped", &machine).await.status, 200);

    let m = env.metrics().await;
    for (route, outcome, n) in [
        ("/scoped", "expired", 2.0),
        ("default", "expired", 1.0),
        ("/scoped", "bad_signature", 1.0),
        ("/scoped", "wrong_issuer", 1.0),
        ("/scoped", "malformed", 1.0),
        ("/scoped", "not_yet_valid", 1.0),
        ("/scoped", "wrong_token_use", 1.0),
        ("/scoped", "wrong_client", 1.0),
        ("/scoped", "unknown_kid", 1.0),
        ("/scoped", "alg_not_allowed", 1.0),
        ("/scoped", "too_large", 1.0),
        ("/scoped", "missing", 1.0),
        ("/scoped", "missing_scope", 3.0),
        ("/group", "missing_group", 1.0),
        ("/id-only", "wrong_token_use", 1.0),
        ("/client-b-only", "wrong_client", 1.0),
        ("-", "bad_path", 2.0),
        ("-", "method_not_allowed", 1.0),
        ("/scoped", "forwarded", 1.0),
    ] {
        assert_eq!(
            requests_total(&m, route, outcome),
            n,
            "sidecar_requests_total{{route={route:?}, outcome={outcome:?}}}:\n{m}"
        );
    }
}

// === R3: the scope hint of a 403 ===

#[tokio::test]
async fn forbidden_challenge_names_every_needed_scope_and_only_scopes() {
    let env = Env::start(ROUTES).await;
    let reader = sign(&user_access_claims(&["readers"]));
    let only_read = sign(&access_claims("a/read"));
    let machine = sign(&access_claims("dotnet-demo/dotnet"));
    let cases = [
        (
            "/any-scope",
            &machine,
            "Bearer error=\"insufficient_scope\", scope=\"a/read a/write\", error_description=\"missing_scope\"",
            "missing_scope",
        ),
        (
            "/all-scopes",
            &only_read,
            "Bearer error=\"insufficient_scope\", scope=\"a/read a/write\", error_description=\"missing_scope\"",
            "missing_scope",
        ),
        (
            "/scoped",
            &reader,
            "Bearer error=\"insufficient_scope\", scope=\"dotnet-demo/dotnet\", error_description=\"missing_scope\"",
            "missing_scope",
        ),
        // Routes that need no scope: no scope= parameter at all.
        (
            "/group",
            &machine,
            "Bearer error=\"insufficient_scope\", error_description=\"missing_group\"",
            "missing_group",
        ),
        (
            "/id-only",
            &machine,
            "Bearer error=\"insufficient_scope\", error_description=\"wrong_token_use\"",
            "wrong_token_use",
        ),
        (
            "/client-b-only",
            &machine,
            "Bearer error=\"insufficient_scope\", error_description=\"wrong_client\"",
            "wrong_client",
        ),
    ];
    for (path, token, challenge, reason) in cases {
        let r = call(env.addr(), path, token).await;
        let what = format!("{path}: {r:?}");
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.www_authenticate(), challenge, "{what}");
        let id = request_id_of(&r, &what);
        assert_eq!(
            r.json(),
            json!({"error": "insufficient_scope", "error_description": reason, "request_id": id}),
            "{what}"
        );
    }
    assert_eq!(env.upstream.hits(), 0, "a 403 reached the upstream");
    // Either scope of a scopes_any route is enough; both are needed on a scopes route.
    assert_eq!(call(env.addr(), "/any-scope", &only_read).await.status, 200);
    let both = sign(&access_claims("a/write a/read"));
    assert_eq!(call(env.addr(), "/all-scopes", &both).await.status, 200);
    assert_eq!(env.upstream.hits(), 2);
}

// === R2: wrong_audience, in full ===

#[tokio::test]
async fn wrong_audience_is_a_full_invalid_token_challenge() {
    let env = oidc_env().await;
    let claims = |aud: Value| json!({"iss": "https://login.example.com", "sub": "u1", "aud": aud, "exp": now() + 60});
    for aud in [
        json!("api://billing"),
        json!(["api://billing", "api://orders2"]),
        json!([]),
        json!("API://ORDERS"),
    ] {
        expect_401(&env, "/x", &sign(&claims(aud)), "wrong_audience").await;
    }
    let mut no_aud = claims(json!("x"));
    no_aud.as_object_mut().unwrap().remove("aud");
    expect_401(&env, "/x", &sign(&no_aud), "wrong_audience").await;
    assert_eq!(env.upstream.hits(), 0);
    let r = call(env.addr(), "/x", &sign(&claims(json!("api://orders")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.upstream.hits(), 1);
    let m = env.metrics().await;
    assert_eq!(requests_total(&m, "default", "wrong_audience"), 5.0, "{m}");
}

// === R20: SIGHUP with a file that parses but fails validation ===

/// The config text for the binary: [`config_text`] on two free loopback ports, passed
/// through `edit`; returns it with the two addresses.
fn binary_config(
    upstream: &str,
    jwks: &str,
    routes: &str,
    edit: impl FnOnce(String) -> String,
) -> (String, SocketAddr, SocketAddr) {
    let (addr, admin) = (free_addr(), free_addr());
    let text = config_text(upstream, jwks, routes)
        .replacen("127.0.0.1:0", &addr.to_string(), 1)
        .replacen("127.0.0.1:0", &admin.to_string(), 1);
    (edit(text), addr, admin)
}

fn write(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
}

#[tokio::test]
async fn sighup_refuses_a_file_that_parses_but_fails_validation() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let (good, addr, admin) = binary_config(
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/open\"\nauth = \"public\"\n",
        |t| t,
    );
    write(&file, &good);
    let p = Proc::spawn(&file, addr, admin);
    p.wait_ready().await;
    assert_eq!(get(p.addr, "/open").await.status, 200);

    // Each file would turn /open into a deny route if any of it were taken.
    let denied = good.replace("auth = \"public\"", "auth = \"deny\"");
    let invalid = [
        (
            "unknown key",
            denied.replace("[upstream]\n", "[upstream]\nbogus_key = 1\n"),
        ),
        (
            "bad duration",
            set_key(denied.clone(), "request_timeout", "\"soon\""),
        ),
        (
            "shadowed route",
            format!("{denied}[[routes]]\npath = \"/open\"\nauth = \"public\"\n"),
        ),
        (
            "rules on a route that is not required",
            denied.replace("auth = \"deny\"", "auth = \"deny\"\nscopes = [\"a/b\"]"),
        ),
    ];
    for (n, (what, text)) in invalid.iter().enumerate() {
        write(&file, text);
        p.hup();
        let want = format!("sidecar_config_reloads_total{{result=\"error\"}} {}", n + 1);
        let admin = p.admin;
        eventually(Duration::from_secs(10), || {
            let want = want.clone();
            async move { get(admin, "/metrics").await.body.contains(&want) }
        })
        .await;
        let before = upstream.hits();
        let r = get(p.addr, "/open").await;
        assert_eq!(
            r.status, 200,
            "{what}: the old config must keep serving: {r:?}"
        );
        assert_eq!(upstream.hits(), before + 1, "{what}");
    }
    let m = get(p.admin, "/metrics").await.body;
    assert!(
        !m.contains("sidecar_config_reloads_total{result=\"ok\"} 1"),
        "a refused file was counted as reloaded:\n{m}"
    );
    // A valid file is still taken afterwards.
    write(&file, &denied);
    p.hup();
    let addr = p.addr;
    eventually(Duration::from_secs(10), || async move {
        get(addr, "/open").await.status == 403
    })
    .await;
    let (code, out) = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("reload refused").count(), 4, "{out}");
    assert!(out.contains("config reloaded"), "{out}");
}

/// Starts the binary on `text` (written to a file in `dir`) and waits until it is ready.
async fn run_binary(dir: &Path, text: &str, addr: SocketAddr, admin: SocketAddr) -> Proc {
    let file = dir.join("config.toml");
    write(&file, text);
    let p = Proc::spawn(&file, addr, admin);
    p.wait_ready().await;
    p
}

/// One keep-alive HTTP/1.1 client connection.
async fn keep_alive(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// `GET path` on a kept connection: status and body.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    path: &str,
) -> (u16, String) {
    use http_body_util::BodyExt;
    sender.ready().await.expect("connection still open");
    let req = http::Request::get(path)
        .header("host", "admin.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

// === R21: SIGINT and the drain ===

#[tokio::test]
async fn sigint_drains_with_readyz_503_and_stops_accepting() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (text, addr, admin) = binary_config(
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\nauth = \"public\"\n",
        |t| set_key(t, "request_timeout", "\"30s\""),
    );
    let p = run_binary(dir.path(), &text, addr, admin).await;
    // A probe connection opened before the signal.
    let mut probe = keep_alive(admin).await;
    assert_eq!(get_on(&mut probe, "/readyz").await.0, 200);
    let inflight = tokio::spawn(async move { get(addr, "/hold").await });
    eventually(Duration::from_secs(5), || async { upstream.hits() == 1 }).await;

    p.signal("-INT");
    // Not ready, on the connection the probe already had ...
    let mut answer = (0, String::new());
    for _ in 0..500 {
        answer = get_on(&mut probe, "/readyz").await;
        if answer.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        answer,
        (503, "draining\n".to_string()),
        "/readyz while draining"
    );
    // ... and on a new connection, as a Kubernetes or ECS probe opens one.
    let r = get(admin, "/readyz").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "draining\n"),
        "new probe while draining"
    );
    // ... and no new connections on the proxy listener, while a request is in flight.
    eventually(Duration::from_secs(5), || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(!inflight.is_finished(), "the in-flight request was cut");
    upstream.release();
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "released");
    let (code, out) = tokio::task::spawn_blocking(move || p.wait()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SIGINT"), "{out}");
    assert!(out.contains("all connections drained"), "{out}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn drain_timeout_cuts_what_is_still_in_flight_and_exits_zero() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (text, addr, admin) = binary_config(
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\nauth = \"public\"\n",
        |t| {
            let t = set_key(t, "request_timeout", "\"30s\"");
            set_key(t, "drain_timeout", "\"1s\"")
        },
    );
    let p = run_binary(dir.path(), &text, addr, admin).await;
    // Never released: only the drain timeout ends it.
    let inflight = tokio::spawn(async move { try_request(addr, "GET", "/hold", &[], "").await });
    eventually(Duration::from_secs(5), || async { upstream.hits() == 1 }).await;
    let started = std::time::Instant::now();
    let (code, out) = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before drain_timeout"
    );
    assert!(took < Duration::from_secs(10), "exited after {took:?}");
    assert!(out.contains("SIGTERM"), "{out}");
    assert!(out.contains("drain timeout"), "{out}");
    let cut = tokio::time::timeout(Duration::from_secs(5), inflight)
        .await
        .expect("the in-flight request ended with the process")
        .unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| r.status != 200),
        "the held request was answered 200: {cut:?}"
    );
}

// === R17: one log line per answer ===

#[tokio::test]
async fn every_request_writes_one_access_log_line_with_its_outcome() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (text, addr, admin) = binary_config(
        &upstream.url(),
        &jwks.url(),
        &format!("{ROUTES}\n[token]\nquery = \"access_token\"\n[log]\nformat = \"json\"\n"),
        |t| t,
    );
    let p = run_binary(dir.path(), &text, addr, admin).await;
    let machine = sign(&access_claims("dotnet-demo/dotnet"));
    let reader = sign(&user_access_claims(&["readers"]));
    let expired = expired_token();
    let bearer = |t: &str| format!("Bearer {t}");
    let query_target = format!("/public/../scoped?x=1&access_token={machine}");
    // (request id, method, target, authorization, status)
    let requests: Vec<(&str, &str, &str, Option<String>, u16)> = vec![
        (
            "rid-forwarded",
            "GET",
            "/scoped",
            Some(bearer(&machine)),
            200,
        ),
        ("rid-query", "GET", &query_target, None, 200),
        ("rid-missing", "GET", "/unlisted", None, 401),
        ("rid-expired", "GET", "/scoped", Some(bearer(&expired)), 401),
        ("rid-scope", "GET", "/scoped", Some(bearer(&reader)), 403),
        (
            "rid-denied",
            "GET",
            "/blocked/x",
            Some(bearer(&machine)),
            403,
        ),
        ("rid-method", "POST", "/get-only", None, 405),
        ("rid-path", "GET", "/a%2Fb", None, 400),
    ];
    for (rid, method, target, auth, status) in &requests {
        let mut headers = vec![("x-request-id", *rid)];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let r = request(addr, method, target, &headers, "").await;
        assert_eq!(r.status, *status, "{rid}: {r:?}");
        assert_eq!(r.header("x-request-id"), Some(*rid));
    }
    assert_eq!(upstream.hits(), 2);
    assert_eq!(
        upstream.last().uri,
        "/scoped?x=1",
        "the query token is removed"
    );
    let (code, out) = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");

    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request" && v.get("request_id").is_some())
        .collect();
    let uuid = "11111111-2222-3333-4444-555555555555";
    // (request id, method, path, route, status, outcome, sub)
    let expect = [
        (
            "rid-forwarded",
            "GET",
            "/scoped",
            "/scoped",
            200,
            "forwarded",
            Some(CLIENT),
        ),
        (
            "rid-query",
            "GET",
            "/scoped",
            "/scoped",
            200,
            "forwarded",
            Some(CLIENT),
        ),
        (
            "rid-missing",
            "GET",
            "/unlisted",
            "default",
            401,
            "missing",
            None,
        ),
        (
            "rid-expired",
            "GET",
            "/scoped",
            "/scoped",
            401,
            "expired",
            None,
        ),
        (
            "rid-scope",
            "GET",
            "/scoped",
            "/scoped",
            403,
            "missing_scope",
            Some(uuid),
        ),
        (
            "rid-denied",
            "GET",
            "/blocked/x",
            "/blocked/**",
            403,
            "denied",
            None,
        ),
        (
            "rid-method",
            "POST",
            "/get-only",
            "-",
            405,
            "method_not_allowed",
            None,
        ),
        ("rid-path", "GET", "-", "-", 400, "bad_path", None),
    ];
    assert_eq!(
        lines.len(),
        expect.len(),
        "one access line per request:\n{out}"
    );
    for (rid, method, path, route, status, outcome, sub) in expect {
        let mine: Vec<&Value> = lines.iter().filter(|v| v["request_id"] == rid).collect();
        assert_eq!(mine.len(), 1, "{rid}: {mine:?}\n{out}");
        let l = mine[0];
        let what = format!("{rid}: {l}");
        assert_eq!(l["method"], method, "{what}");
        assert_eq!(l["path"], path, "{what}");
        assert_eq!(l["route"], route, "{what}");
        assert_eq!(l["status"], status, "{what}");
        assert_eq!(l["outcome"], outcome, "{what}");
        assert!(l["latency_us"].is_u64(), "{what}");
        assert_eq!(l["sub"].as_str(), sub, "{what}");
        if sub == Some(CLIENT) {
            assert_eq!(l["client_id"], CLIENT, "{what}");
            assert_eq!(l["jti"], "jti-1", "{what}");
        }
    }
    // Tokens are never logged, nor the query that carried one.
    for t in [&machine, &reader, &expired] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!out.contains(signature), "a token reached the log:\n{out}");
    }
    assert!(
        !out.contains("access_token="),
        "the query was logged:\n{out}"
    );
}

// === R18: preflight = "forward" ===

#[tokio::test]
async fn forwarded_preflight_is_still_denied_method_checked_and_stripped() {
    let env = Env::start(&ROUTES.replace(
        "[default]\nauth = \"required\"",
        "[default]\nauth = \"required\"\npreflight = \"forward\"",
    ))
    .await;
    let origin = ("origin", "https://app.example");
    let acrm = ("access-control-request-method", "GET");
    // A preflight on a protected route: forwarded without a token, spoofed identity
    // stripped, nothing injected.
    let r = request(
        env.addr(),
        "OPTIONS",
        "/scoped",
        &[
            origin,
            acrm,
            ("x-auth-sub", "admin"),
            ("X_Auth_Groups", "admins"),
            ("x-auth-claims", "eyJzdWIiOiJhZG1pbiJ9"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.upstream.hits(), 1);
    let seen = env.upstream.last();
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(identity_of(&seen), Default::default());

    // Not a preflight without Origin: checked like any request.
    let r = request(env.addr(), "OPTIONS", "/scoped", &[acrm], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.www_authenticate(), "Bearer realm=\"cognito-sidecar\"");
    // A deny route stays denied, and a method-restricted route still answers 405.
    let r = request(env.addr(), "OPTIONS", "/blocked/x", &[origin, acrm], "").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error_description"], "denied");
    let r = request(env.addr(), "OPTIONS", "/get-only", &[origin, acrm], "").await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        env.upstream.hits(),
        1,
        "a refused preflight reached the upstream"
    );
}

// === R19: WebSocket upgrades are checked like any request ===

/// A WebSocket upgrade request's head, with `extra` header lines.
fn upgrade_head(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nhost: t\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends an upgrade and returns the answer's head (up to the blank line).
async fn upgrade(addr: SocketAddr, head: &str) -> (String, crate::hardening::Conn) {
    use tokio::io::AsyncReadExt;
    let mut c = crate::hardening::Conn::open(addr).await;
    c.send(head.as_bytes()).await;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match tokio::time::timeout(left, c.stream.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&b[..n]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), c)
}

#[tokio::test]
async fn websocket_upgrades_are_checked_and_stripped_like_any_request() {
    let env = Env::start(
        "[[routes]]\npath = \"/ws\"\nscopes = [\"chat\"]\n[token]\ncookie = \"session\"\nquery = \"access_token\"\n",
    )
    .await;
    let chat = sign(&access_claims("chat"));
    let other = sign(&access_claims("dotnet-demo/dotnet"));
    // A valid token without the route's scope: 403, no tunnel.
    let (head, _c) = upgrade(
        env.addr(),
        &upgrade_head("/ws", &format!("authorization: Bearer {other}\r\n")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains(
            "www-authenticate: bearer error=\"insufficient_scope\", scope=\"chat\", error_description=\"missing_scope\""
        ),
        "{head}"
    );
    // An expired token in the cookie: 401 expired.
    let (head, _c) = upgrade(
        env.addr(),
        &upgrade_head("/ws", &format!("cookie: session={}\r\n", expired_token())),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("error_description=\"expired\""), "{head}");
    assert_eq!(
        env.upstream.hits(),
        0,
        "a refused upgrade reached the upstream"
    );

    // The cookie and query sources work for upgrades; spoofed identity is replaced.
    let spoof = "x-auth-sub: admin\r\nX_Auth_Scope: admin/all\r\nx-auth-groups: admins\r\n";
    for (target, extra) in [
        (
            "/ws".to_string(),
            format!("cookie: session={chat}\r\n{spoof}"),
        ),
        (format!("/ws?access_token={chat}"), spoof.to_string()),
        (
            "/ws".to_string(),
            format!("authorization: Bearer {chat}\r\n{spoof}"),
        ),
    ] {
        let before = env.upstream.hits();
        let (head, _c) = upgrade(env.addr(), &upgrade_head(&target, &extra)).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{target}: {head}");
        assert_eq!(env.upstream.hits(), before + 1);
        let seen = env.upstream.last();
        assert_eq!(seen.uri, "/ws", "{target}: the query token is removed");
        let id = identity_of(&seen);
        assert_eq!(
            id.get("x-auth-sub").map(String::as_str),
            Some(CLIENT),
            "{id:?}"
        );
        assert_eq!(
            id.get("x-auth-scope").map(String::as_str),
            Some("chat"),
            "{id:?}"
        );
        assert!(!id.contains_key("x-auth-groups"), "{id:?}");
        assert!(!id.contains_key("x_auth_scope"), "{id:?}");
    }
}

// === R14: hop-by-hop headers, the ones no other test sends ===

#[tokio::test]
async fn hop_by_hop_headers_and_look_alikes_are_removed_both_ways() {
    use crate::hardening::{Answer, RawPeer};
    // Request side, through the recording upstream.
    let env = Env::start("[[routes]]\npath = \"/**\"\nauth = \"public\"\n").await;
    let r = request(
        env.addr(),
        "GET",
        "/req",
        &[
            ("proxy-connection", "keep-alive"),
            ("trailer", "x-checksum"),
            ("te", "gzip"), // `te: trailers` alone passes (grpc.rs)
            ("x-request-id", "rid-1"),
            ("x_request_id", "spoofed"),
            ("X_Request_ID", "spoofed"),
            ("x_forwarded_for", "10.0.0.1"),
            ("content_length", "5"),
            ("x-kept", "1"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    for gone in [
        "proxy-connection",
        "trailer",
        "te",
        "x_request_id",
        "x_forwarded_for",
        "content_length",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(
        seen.headers
            .get_all("x-request-id")
            .iter()
            .collect::<Vec<_>>(),
        ["rid-1"]
    );
    assert_eq!(seen.headers["x-kept"], "1");

    // Response side, from an upstream that sends every hop-by-hop header and look-alike.
    let body = b"ok";
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close, x-named\r\nx-named: 1\r\nkeep-alive: timeout=5\r\n\
         proxy-connection: keep-alive\r\nproxy-authenticate: Basic realm=\"up\"\r\n\
         trailer: x-checksum\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\
         te: trailers\r\ntransfer_encoding: chunked\r\ncontent_length: 5\r\n\
         keep_alive: 1\r\nproxy_connection: 1\r\nx_request_id: spoofed\r\n\
         x_forwarded_proto: https\r\nx-up-visible: 1\r\n\r\nok",
        body.len()
    );
    let peer = RawPeer::start(Answer::Bytes(answer.into_bytes())).await;
    let jwks = Jwks::start(&[&KEY_A]).await;
    let sidecar = start_ready(&config_text(
        &peer.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\nauth = \"public\"\n",
    ))
    .await;
    let r = request(
        sidecar.local_addr(),
        "GET",
        "/resp",
        &[("x-request-id", "rid-2")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "ok");
    for gone in [
        "x-named",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "http2-settings",
        "te",
        "transfer_encoding",
        "content_length",
        "keep_alive",
        "proxy_connection",
        "x_request_id",
        "x_forwarded_proto",
    ] {
        assert!(
            !r.headers.contains_key(gone),
            "{gone} reached the client: {r:?}"
        );
    }
    assert_eq!(r.header("x-up-visible"), Some("1"));
    assert_eq!(
        r.headers.get_all("x-request-id").iter().collect::<Vec<_>>(),
        ["rid-2"]
    );
    assert_eq!(peer.requests().len(), 1);
}

// === R8: a periodic refresh that fails keeps the last good keys ===

#[tokio::test]
async fn a_failing_periodic_jwks_refresh_keeps_the_last_good_keys() {
    let env = env_with("", |t| {
        crate::hardening::add_to(t, "[issuers]", "jwks_refresh = \"1s\"")
    })
    .await;
    let first = call(env.addr(), "/x", &sign(&access_claims("a"))).await;
    assert_eq!(first.status, 200, "{first:?}");
    let fetched = env.jwks.fetches();
    env.jwks.set(JwksMode::Status(500));
    // No unknown kid is ever sent: only the periodic refresh fetches.
    let admin = env.admin();
    eventually(Duration::from_secs(10), || async move {
        let m = get(admin, "/metrics").await.body;
        metric(
            &m,
            "sidecar_jwks_fetches_total{issuer=\"test\",result=\"error\"}",
        ) >= 2.0
    })
    .await;
    assert!(env.jwks.fetches() >= fetched + 2);
    assert_eq!(get(admin, "/readyz").await.status, 200);
    // A token never seen before (not cached) still verifies against the kept keys.
    let mut c = access_claims("a");
    c["jti"] = json!("jti-after-the-failures");
    let r = call(env.addr(), "/x", &sign(&c)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let m = env.metrics().await;
    assert_eq!(metric(&m, "sidecar_jwks_keys{issuer=\"test\"}"), 1.0, "{m}");
    assert_eq!(env.upstream.hits(), 2);
}

// === R20: what a SIGHUP reload changes, and what it keeps until restart ===

#[tokio::test]
async fn sighup_applies_new_headers_issuers_and_upstream_but_keeps_the_listener() {
    const OTHER_POOL: &str = "local-1_OtherPool";
    let other_iss = format!("https://cognito-idp.local-1.amazonaws.com/{OTHER_POOL}");
    let jwks = Jwks::start(&[&KEY_A]).await;
    let old_up = Upstream::start().await;
    let new_up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = "[[routes]]\npath = \"/open\"\nauth = \"public\"\n";
    let (text, addr, admin) = binary_config(&old_up.url(), &jwks.url(), routes, |t| t);
    let p = run_binary(dir.path(), &text, addr, admin).await;

    let token = sign(&access_claims("a"));
    let mut other = access_claims("a");
    other["iss"] = json!(other_iss);
    let other = sign(&other);
    // The old config: the default headers, one issuer, the old upstream.
    let r = call(addr, "/x", &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = old_up.last();
    assert_eq!(seen.headers["x-auth-sub"], CLIENT);
    assert!(seen.headers.contains_key("x-auth-claims"));
    assert!(!seen.headers.contains_key("x-caller"));
    let r = call(addr, "/x", &other).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.reason(), "wrong_issuer");

    // The new file: other headers, the first issuer narrowed to client-b, a second issuer,
    // another upstream, and another listener address (which needs a restart).
    let moved = free_addr();
    let new_text = text
        .replace(&old_up.url(), &new_up.url())
        .replace(&addr.to_string(), &moved.to_string())
        .replace(
            &format!("client_ids = [\"{CLIENT}\"]"),
            "client_ids = [\"client-b\"]",
        )
        + &format!(
            "[[issuers]]\nname = \"other\"\nuser_pool_id = \"{OTHER_POOL}\"\njwks_url = \"{}\"\nclient_ids = [\"{CLIENT}\"]\n[forward]\nclaims_header = \"X-All-Claims\"\n[forward.headers]\n\"X-Caller\" = \"sub\"\n",
            jwks.url()
        );
    write(&dir.path().join("config.toml"), &new_text);
    p.hup();
    eventually(Duration::from_secs(10), || async move {
        get(admin, "/metrics")
            .await
            .body
            .contains("sidecar_config_reloads_total{result=\"ok\"} 1")
    })
    .await;
    // The listener stays where it was.
    assert!(
        tokio::net::TcpStream::connect(moved).await.is_err(),
        "the listener moved without a restart"
    );
    // The first issuer now takes only client-b.
    let before = (old_up.hits(), new_up.hits());
    let r = call(addr, "/x", &token).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.reason(), "wrong_client");
    assert_eq!((old_up.hits(), new_up.hits()), before);
    // The new issuer is trusted, and the request goes to the new upstream with the new
    // headers.
    let r = call(addr, "/x", &other).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(old_up.hits(), before.0, "the old upstream was called");
    assert_eq!(new_up.hits(), before.1 + 1);
    let seen = new_up.last();
    assert_eq!(seen.headers["x-caller"], CLIENT, "{seen:?}");
    assert!(seen.headers.contains_key("x-all-claims"), "{seen:?}");
    assert!(!seen.headers.contains_key("x-auth-claims"), "{seen:?}");
    // Spoofed copies of the new header are stripped too.
    let r = request(addr, "GET", "/open", &[("x-caller", "admin")], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!new_up.last().headers.contains_key("x-caller"));

    let (code, out) = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("config reloaded"), "{out}");
    assert!(out.contains("take effect on restart only"), "{out}");
}
