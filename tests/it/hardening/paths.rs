//! Path and routing confusion: spellings of a protected path that might slip through a looser
//! route, request-target forms, Host tricks, CONNECT, path-override headers. (routes.rs has
//! the basic dot-segment, encoded-separator and case table.)

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

/// Sends `target` as written, with the reader's token (never an admin); returns the reply and
/// the path the upstream saw, if it saw anything.
async fn try_target(env: &Env, target: &str, token: &str) -> (Reply, Option<String>) {
    let before = env.upstream.hits();
    let r = request(
        env.addr(),
        "GET",
        target,
        &[("authorization", &bearer(token))],
        "",
    )
    .await;
    let seen = (env.upstream.hits() > before).then(|| env.upstream.last().uri);
    (r, seen)
}

#[tokio::test]
async fn spellings_of_admin_never_reach_the_upstream_as_admin_without_the_group() {
    let env = env_with(ROUTES, |t| t).await;
    let reader = sign(&user_access_claims(&["readers"]));
    // (target, expected status; 403 = the admin rule applied, 400 = refused as bad_path)
    let cases: &[(&str, u16)] = &[
        // Overlong UTF-8 for '.', '/', '\\' and 'a'.
        ("/public/%c0%ae%c0%ae/admin/x", 400),
        ("/public/%e0%80%ae%e0%80%ae/admin/x", 400),
        ("/public/%f0%80%80%ae%f0%80%80%ae/admin/x", 400),
        ("/public/..%c0%afadmin/x", 400),
        ("/public/..%c1%9cadmin/x", 400),
        ("/%c1%a1dmin/x", 400),
        ("/public/%ff/x", 400),
        ("/public/%80/x", 400),
        // Trailing dots and spaces (Windows servers drop them).
        ("/admin./x", 400),
        ("/admin../x", 400),
        ("/admin%2e/x", 400),
        ("/admin%20/x", 400),
        ("/admin%20%20/x", 400),
        ("/admin.%20/x", 400),
        ("/admin%09/x", 400),
        ("/admin/x.", 400),
        // Case, plain and escaped: the admin rule applies.
        ("/ADMIN/x", 403),
        ("/aDmIn/x", 403),
        ("/%41DMIN/x", 403),
        ("/%61%64%6d%69%6e/x", 403),
        ("/admin/X/..", 403),
        // Dot segments and slashes in escaped and mixed forms.
        ("/public/%2e%2e/admin/x", 403),
        ("/public/%2E./admin/x", 403),
        ("/public/./../admin/x", 403),
        ("///admin//x", 403),
        ("/public/..//admin/x", 403),
        ("/./admin/x", 403),
        // Escaped separators and doubled escapes.
        ("/public%2f..%2fadmin/x", 400),
        ("/public/..%2fadmin/x", 400),
        ("/public/%2e%2e%2fadmin/x", 400),
        ("/public/%252e%252e/admin/x", 400),
        ("/public/%u002e%u002e/admin/x", 400),
        ("/public/..%5cadmin/x", 400),
        ("/public\\..\\admin/x", 400),
        ("/public;/../admin/x", 400),
        ("/admin;x=1/x", 400),
        ("/admin%3bx/x", 400),
        // Query and fragment tricks: the path is what is before '?'.
        ("/admin/x?/../../public/x", 403),
        ("/admin/x?x=/public/", 403),
        ("/public/%3f/../../admin/x", 403),
        ("/public/%23/../../admin/x", 403),
    ];
    for &(target, status) in cases {
        let (r, seen) = try_target(&env, target, &reader).await;
        assert_eq!(r.status, status, "{target}: {r:?}");
        assert_eq!(seen, None, "{target} reached the upstream");
        match status {
            400 => assert_eq!(r.json()["error_description"], "bad_path", "{target}"),
            403 => assert_eq!(r.reason(), "missing_group", "{target}"),
            _ => {}
        }
    }
    // And what is forwarded is the path that was checked, in its normal form.
    let forwarded: &[(&str, &str)] = &[
        ("/public?/../admin", "/public?/../admin"),
        ("/public/x?a=/../admin/x", "/public/x?a=/../admin/x"),
        ("/public/%3f/x", "/public/%3F/x"),
        ("/public/%23/x", "/public/%23/x"),
        ("/public/a/../b", "/public/b"),
        ("/PUBLIC/x", "/PUBLIC/x"),
        ("/public/caf%c3%a9", "/public/caf%C3%A9"),
    ];
    for &(target, want) in forwarded {
        let (r, seen) = try_target(&env, target, &reader).await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert_eq!(seen.as_deref(), Some(want), "{target}");
    }
    // Non-ASCII letters are not case-folded: `/adm%C4%B1n` (dotless i) is not /admin, and
    // goes to the default rule (a token is needed, the admin rule is not applied). An
    // upstream must not fold them either (SECURITY.md).
    let (r, seen) = try_target(&env, "/adm%C4%B1n/x", &reader).await;
    assert_eq!(r.status, 200);
    assert_eq!(seen.as_deref(), Some("/adm%C4%B1n/x"));
    let r = request(env.addr(), "GET", "/adm%C4%B1n/x", &[], "").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn fragments_and_request_target_forms() {
    let env = env_with(ROUTES, |t| t).await;
    let reader = sign(&user_access_claims(&["readers"]));
    let send = |target: &'static str| {
        let addr = env.addr();
        let auth = format!("authorization: Bearer {reader}\r\n");
        async move {
            raw(
                addr,
                format!("GET {target} HTTP/1.1\r\nhost: sidecar.test\r\n{auth}connection: close\r\n\r\n").as_bytes(),
                Duration::from_secs(3),
            )
            .await
        }
    };
    // A fragment is never part of the path: refused outright or cut off before matching.
    for target in [
        "/admin/x#/../../public/x",
        "/public/x#/../../admin/x",
        "/admin#",
        "/public/x#",
    ] {
        let before = env.upstream.hits();
        let reply = send(target).await;
        let got = statuses(&reply);
        assert_eq!(got.len(), 1, "{target}: {reply}");
        if env.upstream.hits() > before {
            let uri = env.upstream.last().uri;
            assert!(uri.starts_with("/public/x"), "{target} forwarded as {uri}");
            assert!(!uri.contains('#'), "{target} forwarded as {uri}");
        } else {
            assert!(matches!(got[0], 400 | 403), "{target}: {reply}");
        }
    }
    // Absolute-form with another host: routed by its path, forwarded to our upstream only,
    // with one Host.
    let before = env.upstream.hits();
    let reply = send("http://evil.example:8080/admin/x").await;
    assert_eq!(statuses(&reply), vec![403], "{reply}");
    let reply = send("https://evil.example/public/x").await;
    assert_eq!(statuses(&reply), vec![200], "{reply}");
    assert_eq!(env.upstream.hits(), before + 1);
    let seen = env.upstream.last();
    assert_eq!(seen.uri, "/public/x");
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    // Asterisk-form and authority-form outside CONNECT are not origin-form: 400.
    for head in [
        "OPTIONS * HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        "GET evil.example:443 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        "GET admin/x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    ] {
        let before = env.upstream.hits();
        let reply = raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await;
        assert_eq!(statuses(&reply), vec![400], "{head:?}: {reply}");
        assert_eq!(env.upstream.hits(), before, "{head:?}");
    }
}

#[tokio::test]
async fn host_tricks_do_not_pick_routes_or_reach_the_upstream_twice() {
    let env = env_with(ROUTES, |t| t).await;
    let before = env.upstream.hits();
    // Host never picks a route.
    for host in ["public", "evil.example", "127.0.0.1", "public.example:80"] {
        let r = request(env.addr(), "GET", "/admin/x", &[("host", host)], "").await;
        assert_eq!(r.status, 401, "{host}");
    }
    assert_eq!(env.upstream.hits(), before);
    // Two Host headers, or an invalid one: refused (RFC 9112 §3.2).
    for head in [
        "GET /public/x HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: a.example\r\nHost: a.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: a.example/admin\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: a b\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nhost: user@a.example\r\nconnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\n\r\n",
    ] {
        let before = env.upstream.hits();
        let reply = raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await;
        assert_eq!(statuses(&reply), vec![400], "{head:?}: {reply}");
        assert_eq!(env.upstream.hits(), before, "{head:?}");
    }
    // HTTP/1.0 may leave Host out.
    let reply = raw(
        env.addr(),
        b"GET /public/x HTTP/1.0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    // A sane Host with a port is fine, and forwarded once, as sent.
    let r = request(
        env.addr(),
        "GET",
        "/public/x",
        &[("host", "app.example:8443")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert_eq!(
        seen.headers.get_all("host").iter().collect::<Vec<_>>(),
        ["app.example:8443"]
    );
    assert_eq!(seen.headers["x-forwarded-host"], "app.example:8443");
}

#[tokio::test]
async fn connect_is_refused_and_never_becomes_a_tunnel() {
    let env = env_with(ROUTES, |t| t).await;
    for target in ["evil.example:443", "127.0.0.1:22", "/admin/x"] {
        // CONNECT, then bytes that would be tunnelled, then a normal request on the same
        // connection: no tunnel, and the follow-up is checked like any request.
        let head = format!(
            "CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\nGET /admin/x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
        );
        let reply = raw(env.addr(), head.as_bytes(), Duration::from_secs(3)).await;
        let got = statuses(&reply);
        assert_eq!(got.first(), Some(&400), "{target}: {reply}");
        assert!(got.iter().skip(1).all(|s| *s == 401), "{target}: {reply}");
        assert!(!reply.contains(" 200 "), "{target}: {reply}");
    }
    let r = request(env.addr(), "CONNECT", "evil.example:443", &[], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_description"], "connect_not_supported");
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn path_override_headers_in_any_spelling_are_never_honoured() {
    let env = env_with(ROUTES, |t| t).await;
    let overrides = [
        ("X-Original-URL", "/admin/x"),
        ("x-rewrite-url", "/admin/x"),
        ("X_Original_URL", "/admin/x"),
        ("X-ORIGINAL-URI", "/admin/x"),
        ("x-forwarded-uri", "/admin/x"),
        ("X-Forwarded-Path", "/admin/x"),
        ("X-Forwarded-Prefix", "/admin"),
        ("x_rewrite_url", "/admin/x"),
    ];
    // On a public route: forwarded without them.
    let r = request(env.addr(), "GET", "/public/x", &overrides, "").await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert_eq!(seen.uri, "/public/x");
    for (k, _) in overrides {
        let canon = k.to_ascii_lowercase().replace('_', "-");
        for (name, _) in &seen.headers {
            assert_ne!(
                name.as_str().replace('_', "-"),
                canon,
                "{k} reached the upstream"
            );
        }
    }
    // On the protected route they change nothing: the path decides.
    let r = request(env.addr(), "GET", "/admin/x", &overrides, "").await;
    assert_eq!(r.status, 401);
    let reader = bearer(&sign(&user_access_claims(&["readers"])));
    let mut h = overrides.to_vec();
    h.push(("authorization", &reader));
    let r = request(env.addr(), "GET", "/admin/x", &h, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(env.upstream.hits(), 1);
}
