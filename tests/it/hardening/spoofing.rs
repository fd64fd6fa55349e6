//! Header spoofing: identity the client chose must never reach the upstream, whatever the
//! spelling, count, folding, protocol or outcome. (routes.rs has the basic spoof list.)

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/admin/**"
methods = ["GET"]
groups_any = ["admins"]
[[routes]]
path = "/blocked"
auth = "deny"
[[routes]]
path = "/me"
[forward]
claims_header = "X-Auth-Claims"
[forward.headers]
"X-Auth-Sub" = "sub"
"X-Auth-Groups" = "cognito:groups"
"X-Auth-Username" = "username"
"X-User-Email" = "email"
"#;

const SUB: &str = "11111111-2222-3333-4444-555555555555";

/// Every spelling of every identity header a client might try.
fn spoofs() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for name in [
        "X-Auth-Sub",
        "X-Auth-Groups",
        "X-Auth-Username",
        "X-User-Email",
        "X-Auth-Claims",
    ] {
        for spelled in [
            name.to_string(),
            name.to_lowercase(),
            name.to_uppercase(),
            name.replace('-', "_"),
            name.to_lowercase().replace('-', "_"),
            name.to_uppercase().replacen('-', "_", 1),
        ] {
            out.push((spelled, "evil"));
        }
    }
    out.push(("x-auth-groups".into(), "admins"));
    out.push(("x-auth-groups".into(), "admins,root"));
    out
}

/// The identity headers an upstream request carried: the configured ones and every
/// look-alike (any case, `_` for `-`).
fn identity(seen: &Seen) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in &seen.headers {
        let canon = k.as_str().replace('_', "-");
        if canon.starts_with("x-auth-") || canon.starts_with("x-user-") {
            out.entry(k.as_str().to_string())
                .or_default()
                .push(v.to_str().unwrap_or("<bytes>").to_string());
        }
    }
    out
}

async fn send(env: &Env, method: &str, path: &str, token: Option<&str>) -> Reply {
    let auth;
    let spoofs = spoofs();
    let mut headers: Vec<(&str, &str)> = spoofs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    if let Some(t) = token {
        auth = bearer(t);
        headers.push(("authorization", &auth));
    }
    request(env.addr(), method, path, &headers, "").await
}

#[tokio::test]
async fn identity_headers_in_any_spelling_never_reach_the_upstream() {
    let env = env_with(ROUTES, |t| t).await;
    let reader = sign(&user_access_claims(&["readers"]));
    let admin = sign(&user_access_claims(&["admins"]));

    // Public: all stripped, none injected.
    let r = send(&env, "GET", "/public/x", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(identity(&env.upstream.last()), HashMap::new());

    // Protected: exactly the verified identity, one value each.
    let r = send(&env, "GET", "/me", Some(&reader)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = identity(&env.upstream.last());
    let mut names: Vec<&String> = id.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "x-auth-claims",
            "x-auth-groups",
            "x-auth-sub",
            "x-auth-username"
        ],
        "{id:?}"
    );
    assert_eq!(id["x-auth-sub"], [SUB]);
    assert_eq!(id["x-auth-groups"], ["readers"]);
    assert_eq!(id["x-auth-username"], ["alice"]);
    assert_ne!(id["x-auth-claims"], ["evil"]);

    // Rejected in every way: nothing reaches the upstream.
    let before = env.upstream.hits();
    for (method, path, token, status) in [
        ("GET", "/me", None, 401),
        ("GET", "/me", Some("junk"), 401),
        ("GET", "/admin/x", Some(reader.as_str()), 403),
        ("DELETE", "/admin/x", Some(admin.as_str()), 405),
        ("GET", "/blocked", Some(admin.as_str()), 403),
        ("GET", "/public/a%2Fb", None, 400),
    ] {
        let r = send(&env, method, path, token).await;
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
    }
    assert_eq!(
        env.upstream.hits(),
        before,
        "a rejected request reached the upstream"
    );
}

#[tokio::test]
async fn identity_headers_named_in_connection_are_still_injected() {
    let env = env_with(ROUTES, |t| t).await;
    let reader = bearer(&sign(&user_access_claims(&["readers"])));
    // Listing the injected names as hop-by-hop must not remove what the sidecar adds, and
    // must not shield the client's own copies from stripping.
    let r = request(
        env.addr(),
        "GET",
        "/me",
        &[
            ("authorization", &reader),
            (
                "connection",
                "X-Auth-Sub, x-auth-groups, X-Auth-Claims, x_auth_username",
            ),
            ("x-auth-sub", "evil"),
            ("x_auth_username", "root"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let id = identity(&env.upstream.last());
    assert_eq!(id["x-auth-sub"], [SUB]);
    assert_eq!(id["x-auth-groups"], ["readers"]);
    assert_eq!(id["x-auth-username"], ["alice"]);
    assert!(!id.contains_key("x_auth_username"));
    assert!(!env.upstream.last().headers.contains_key("connection"));
}

#[tokio::test]
async fn obs_folded_identity_headers_are_refused_or_stripped() {
    let env = env_with(ROUTES, |t| t).await;
    let token = sign(&user_access_claims(&["readers"]));
    let heads = [
        "GET /public/x HTTP/1.1\r\nhost: t\r\nX-Auth-Sub: a\r\n b\r\n\r\n".to_string(),
        "GET /public/x HTTP/1.1\r\nhost: t\r\nX-Foo: a\r\n X-Auth-Sub: evil\r\n\r\n".to_string(),
        "GET /public/x HTTP/1.1\r\nhost: t\r\nX-Foo: a\r\n\tX-Auth-Sub: evil\r\n\r\n".to_string(),
        format!("GET /me HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\nX-Auth-Sub: a\r\n b\r\n\r\n"),
        format!("GET /me HTTP/1.1\r\nhost: t\r\nX-Auth-Sub: a\r\n authorization: Bearer {token}\r\n\r\n"),
        "GET /public/x HTTP/1.1\r\nhost: t\r\nX-Auth-Sub : evil\r\n\r\n".to_string(),
        "GET /public/x HTTP/1.1\r\nhost: t\r\n X-Auth-Sub: evil\r\n\r\n".to_string(),
        "GET /public/x HTTP/1.1\r\nhost: t\r\nX-Auth-Sub\t: evil\r\n\r\n".to_string(),
        "GET /public/x HTTP/1.1\r\nhost: t\nX-Auth-Sub: evil\n\n".to_string(),
    ];
    for head in &heads {
        let before = env.upstream.hits();
        let reply = raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await;
        let got = statuses(&reply);
        let what = format!("{head:?} -> {got:?}");
        assert_eq!(got.len(), 1, "{what}");
        if got[0] == 200 {
            assert_eq!(env.upstream.hits(), before + 1, "{what}");
            let id = identity(&env.upstream.last());
            for (k, v) in &id {
                assert!(
                    k == "x-auth-claims"
                        || v.iter()
                            .all(|v| !v.contains("evil") && v != "a b" && v != "a"),
                    "{what}: {k}: {v:?}"
                );
            }
            if head.starts_with("GET /me") {
                assert_eq!(id["x-auth-sub"], [SUB], "{what}");
            }
        } else {
            assert_eq!(got[0], 400, "{what}");
            assert_eq!(env.upstream.hits(), before, "{what}");
        }
    }
}

#[tokio::test]
async fn identity_headers_in_chunked_trailers_never_reach_the_upstream() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let peer = RawPeer::start(Answer::Bytes(http_response("200 OK", "text/plain", b"ok"))).await;
    let text = config_text(&peer.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let token = sign(&user_access_claims(&["readers"]));
    for (path, auth) in [
        ("/public/x", String::new()),
        ("/me", format!("authorization: Bearer {token}\r\n")),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: t\r\n{auth}transfer-encoding: chunked\r\ntrailer: X-Auth-Sub, X-Auth-Groups\r\nte: trailers\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Auth-Sub: admin\r\nX-Auth-Groups: admins\r\nx_auth_sub: admin\r\n\r\n"
        );
        let n = peer.requests().len();
        let reply = raw(sidecar.local_addr(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(statuses(&reply), vec![200], "{path}: {reply}");
        let got = peer.requests();
        assert_eq!(got.len(), n + 1, "{path}");
        let seen = String::from_utf8_lossy(&got[n]).to_ascii_lowercase();
        assert!(
            !seen.contains("admin"),
            "{path}: client identity reached the upstream:\n{seen}"
        );
        assert!(!seen.contains("x_auth"), "{path}:\n{seen}");
        if path == "/me" {
            assert_eq!(seen.matches("x-auth-sub:").count(), 1, "{seen}");
            assert!(seen.contains(&format!("x-auth-sub: {SUB}")), "{seen}");
        }
        assert!(
            seen.contains("hello"),
            "the body itself is forwarded:\n{seen}"
        );
    }
}

#[tokio::test]
async fn http2_requests_are_stripped_and_checked_like_http1() {
    let env = env_with(ROUTES, |t| t).await;
    let stream = TcpStream::connect(env.addr()).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c prior knowledge");
    tokio::spawn(conn);
    let build = |path: &str, token: Option<&str>| {
        let mut b = http::Request::get(format!("http://sidecar.test{path}"));
        for (k, v) in spoofs() {
            b = b.header(k.to_lowercase(), v);
        }
        if let Some(t) = token {
            b = b.header("authorization", bearer(t));
        }
        b.body(Empty::<Bytes>::new()).unwrap()
    };
    let r = h2.send_request(build("/public/x", None)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(identity(&env.upstream.last()), HashMap::new());
    let before = env.upstream.hits();
    let r = h2.send_request(build("/me", None)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"cognito-sidecar\""
    );
    let r = h2
        .send_request(build(
            "/ADMIN/x",
            Some(&sign(&user_access_claims(&["readers"]))),
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(env.upstream.hits(), before);
    let r = h2
        .send_request(build("/me", Some(&sign(&user_access_claims(&["readers"])))))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.into_body().collect().await;
    let id = identity(&env.upstream.last());
    assert_eq!(id["x-auth-sub"], [SUB]);
    assert_eq!(id["x-auth-groups"], ["readers"]);
}

#[tokio::test]
async fn method_override_headers_are_stripped() {
    // A route that allows GET only must not become a DELETE upstream (ASP.NET Core's
    // UseHttpMethodOverride, Express method-override, ... read these headers).
    let env = env_with(ROUTES, |t| t).await;
    let admin = bearer(&sign(&user_access_claims(&["admins"])));
    let overrides = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("x_http_method_override", "DELETE"),
    ];
    for (k, v) in overrides {
        let r = request(
            env.addr(),
            "GET",
            "/admin/x",
            &[("authorization", &admin), (k, v)],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        let seen = env.upstream.last();
        assert_eq!(seen.method, "GET");
        for (name, _) in &seen.headers {
            assert!(
                !name.as_str().replace('_', "-").contains("method"),
                "{k} reached the upstream as {name}"
            );
        }
    }
    // The method itself is what the route checked.
    let r = request(
        env.addr(),
        "DELETE",
        "/admin/x",
        &[("authorization", &admin)],
        "",
    )
    .await;
    assert_eq!(r.status, 405);
}
