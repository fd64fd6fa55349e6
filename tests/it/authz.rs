//! The decision listener (`[authz]`) asked the way each front proxy asks it: nginx
//! `auth_request` / ingress-nginx (`X-Original-*`), Traefik `forwardAuth`
//! (`X-Forwarded-*`) and Envoy `ext_authz` over HTTP (the check request is the original). It
//! answers, never proxies: the upstream is never called.

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/health"
auth = "public"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/admin/**"
auth = "deny"
"#;

/// A sidecar whose decision listener speaks `protocol`, with `authz_extra` in `[authz]`.
async fn env_with(protocol: &str, authz_extra: &str, extra: &str) -> (Env, std::net::SocketAddr) {
    let env = Env::start(&format!(
        "{extra}\n{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n{authz_extra}\n"
    ))
    .await;
    let authz = env.sidecar.authz_addr().expect("decision listener on");
    (env, authz)
}

/// A response header as text ("" when absent).
fn hv(r: &Reply, name: &str) -> String {
    r.header(name).unwrap_or("").to_string()
}

/// A check request as nginx's `auth_request` sends it.
async fn nginx_check(
    authz: std::net::SocketAddr,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![
        ("x-original-method", method),
        ("x-original-uri", uri),
        ("x-forwarded-host", "app.example"),
    ];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    request(authz, "GET", "/_authz", &h, "").await
}

#[tokio::test]
async fn nginx_allowed_is_200_with_the_identity_on_the_response() {
    let (env, authz) = env_with("nginx", "", "").await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let r = nginx_check(authz, "GET", "/weatherforecast?days=3", Some(&t)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "");
    assert_eq!(hv(&r, "x-auth-sub"), CLIENT);
    assert_eq!(hv(&r, "x-auth-scope"), "dotnet-demo/dotnet");
    assert!(!hv(&r, "x-auth-claims").is_empty());
    assert!(!hv(&r, "x-request-id").is_empty());
    // A public route: allowed, with no identity.
    let r = nginx_check(authz, "GET", "/health", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-auth-sub").is_none());
    assert_eq!(
        env.upstream.hits(),
        0,
        "the decision listener never proxies"
    );
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_requests_total{outcome=\"allowed\",route=\"/weatherforecast\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn nginx_refusals_are_401_and_403_with_the_reason() {
    let (env, authz) = env_with("nginx", "", "").await;
    let good = sign(&access_claims("dotnet-demo/dotnet"));
    // No token: 401 with the challenge nginx passes to the client.
    let r = nginx_check(authz, "GET", "/weatherforecast", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www_authenticate(), "Bearer realm=\"cognito-sidecar\"");
    let mut expired = access_claims("dotnet-demo/dotnet");
    expired["exp"] = json!(now() - 3600);
    let r = nginx_check(authz, "GET", "/weatherforecast", Some(&sign(&expired))).await;
    assert_eq!((r.status, r.reason()), (401, "expired".to_string()));
    let r = nginx_check(
        authz,
        "GET",
        "/weatherforecast",
        Some(&sign(&access_claims("x"))),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r
        .www_authenticate()
        .starts_with("Bearer error=\"insufficient_scope\""));
    // 400 and 405 would be 500s behind nginx: 403 with the reason in X-Auth-Error.
    for (method, uri, reason) in [
        ("POST", "/weatherforecast", "method_not_allowed"),
        ("GET", "/api%2Fx", "bad_path"),
        ("GET", "/weatherforecast;x=1", "bad_path"),
        ("GET", "/a/%00", "bad_path"),
    ] {
        let r = nginx_check(authz, method, uri, Some(&good)).await;
        assert_eq!(r.status, 403, "{method} {uri}: {r:?}");
        assert_eq!(hv(&r, "x-auth-error"), reason, "{method} {uri}");
    }
    // The original path is normalised like a proxied one; the query never matches.
    for uri in [
        "/health/../admin/x",
        "/HEALTH/%2e%2e/admin",
        "/admin?/health",
        "/admin/x#/health",
    ] {
        let r = nginx_check(authz, "GET", uri, Some(&good)).await;
        assert_eq!(r.status, 403, "{uri}: {r:?}");
    }
    // [default] auth = "required" applies to unmatched paths.
    assert_eq!(nginx_check(authz, "GET", "/other", None).await.status, 401);
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn the_original_uri_must_be_one_and_well_formed() {
    let (_env, authz) = env_with("nginx", "", "").await;
    for headers in [
        vec![("x-original-method", "GET")],
        vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "/a"),
            ("x-original-uri", "/b"),
        ],
        vec![("x-original-method", "GET"), ("x-original-uri", "*")],
        vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "app.example:443"),
        ],
        vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "weatherforecast"),
        ],
        vec![
            ("x-original-method", "GET"),
            ("x-original-url", "/weatherforecast"),
        ],
        vec![
            ("x-original-method", "GET"),
            ("x-original-url", "https://h/health"),
            ("x-original-uri", "/admin"),
        ],
    ] {
        let r = request(authz, "GET", "/_authz", &headers, "").await;
        assert_eq!(r.status, 403, "{headers:?}: {r:?}");
        assert_eq!(hv(&r, "x-auth-error"), "bad_original_uri", "{headers:?}");
    }
    let r = request(
        authz,
        "GET",
        "/_authz",
        &[("x-original-uri", "/health")],
        "",
    )
    .await;
    assert_eq!(hv(&r, "x-auth-error"), "bad_original_method");
    // Traefik answers the same 400 as the proxy would.
    let (_env, authz) = env_with("traefik", "", "").await;
    let r = request(authz, "GET", "/", &[("x-forwarded-method", "GET")], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_description"], "bad_original_uri");
}

#[tokio::test]
async fn ingress_nginx_sends_the_absolute_url() {
    let (_env, authz) = env_with("nginx", "", "").await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let auth = format!("Bearer {t}");
    let r = request(
        authz,
        "GET",
        "/_authz",
        &[
            ("host", "sidecar-authz.svc"),
            ("x-original-method", "GET"),
            ("x-original-url", "https://app.example/weatherforecast?x=1"),
            ("x-original-uri", "/weatherforecast?x=1"),
            ("authorization", &auth),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(hv(&r, "x-auth-sub"), CLIENT);
}

#[tokio::test]
async fn traefik_and_envoy_find_the_original_where_they_put_it() {
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let auth = format!("Bearer {t}");
    let (_env, authz) = env_with("traefik", "", "").await;
    for (method, status) in [("GET", 200), ("POST", 405)] {
        let headers = [
            ("x-forwarded-method", method),
            ("x-forwarded-uri", "/weatherforecast"),
            ("x-forwarded-host", "app.example"),
            ("authorization", auth.as_str()),
        ];
        let r = request(authz, "GET", "/", &headers, "").await;
        // Traefik passes any status on, 405 included.
        assert_eq!(r.status, status, "traefik {method}: {r:?}");
        if status == 200 {
            assert_eq!(hv(&r, "x-auth-sub"), CLIENT);
        }
    }

    let (_env, authz) = env_with("envoy", "path_prefix = \"/check\"", "").await;
    for (method, path, status) in [
        ("GET", "/check/weatherforecast", 200),
        ("DELETE", "/check/weatherforecast", 405),
        // Outside path_prefix.
        ("GET", "/weatherforecast", 400),
    ] {
        let r = request(authz, method, path, &[("authorization", auth.as_str())], "").await;
        assert_eq!(r.status, status, "envoy {method} {path}: {r:?}");
        if status == 200 {
            assert_eq!(hv(&r, "x-auth-sub"), CLIENT);
        }
    }
}

#[tokio::test]
async fn only_trusted_proxies_are_believed() {
    let (env, authz) = env_with("nginx", "trusted_proxies = [\"10.0.0.0/8\"]", "").await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let r = nginx_check(authz, "GET", "/health", Some(&t)).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error_description"], "untrusted_proxy");
    let m = env.metrics().await;
    assert!(m.contains("outcome=\"untrusted_proxy\""), "{m}");
}

#[tokio::test]
async fn the_token_comes_only_from_the_configured_sources() {
    let (_env, authz) = env_with("nginx", "", "").await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    // No [token] query: a token in the original query is not a token.
    let r = nginx_check(
        authz,
        "GET",
        &format!("/weatherforecast?access_token={t}"),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // With it, it is; and [token] header takes a bare token from a named header.
    let (_env, authz) = env_with(
        "nginx",
        "",
        "[token]\nquery = \"access_token\"\nheader = \"x-amzn-oidc-accesstoken\"\n",
    )
    .await;
    let r = nginx_check(
        authz,
        "GET",
        &format!("/weatherforecast?access_token={t}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        authz,
        "GET",
        "/_authz",
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/weatherforecast"),
            ("x-amzn-oidc-accesstoken", &t),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Two sources that disagree: refused.
    let other = sign(&access_claims("other"));
    let r = nginx_check(
        authz,
        "GET",
        &format!("/weatherforecast?access_token={other}"),
        Some(&t),
    )
    .await;
    assert_eq!(
        (r.status, hv(&r, "x-auth-error")),
        (403, "multiple_tokens".to_string())
    );
}

#[tokio::test]
async fn without_an_upstream_the_sidecar_answers_decisions_only() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let proxy_port = free_port();
    let text = config_text(
        "",
        &jwks.url(),
        &format!("{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"nginx\"\n"),
    )
    .replace(
        "address = \"127.0.0.1:0\"\nheader_read_timeout",
        &format!("address = \"127.0.0.1:{proxy_port}\"\nheader_read_timeout"),
    );
    let c = config(&text);
    assert!(c.decision_only());
    let sidecar = cognito_sidecar::server::Sidecar::start(c).await.unwrap();
    let authz = sidecar.authz_addr().unwrap();
    assert_eq!(sidecar.proxy_addr(), None);
    assert_eq!(sidecar.local_addr(), authz);
    // Nothing listens where a proxy would: nothing can be forwarded.
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{proxy_port}").parse().unwrap();
    assert!(tokio::net::TcpStream::connect(proxy).await.is_err());
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let admin = sidecar.admin_addr().unwrap();
    eventually(std::time::Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
    let r = nginx_check(authz, "GET", "/weatherforecast", Some(&t)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(hv(&r, "x-auth-sub"), CLIENT);
    assert_eq!(
        nginx_check(authz, "GET", "/weatherforecast", None)
            .await
            .status,
        401
    );
    sidecar.shutdown().await;

    // Without [authz] address, [upstream] url stays required, and the error says why.
    let Err(e) = cognito_sidecar::config::Config::from_toml_str(
        "sidecar.toml",
        &config_text("", &jwks.url(), ""),
        &[],
    ) else {
        panic!("no upstream and no decision listener accepted")
    };
    let msg = e.to_string();
    assert!(
        msg.contains("sidecar.toml")
            && msg.contains("upstream.url")
            && msg.contains("[authz] address"),
        "{msg}"
    );
}

/// A sidecar whose decision listener is the Unix socket `sock` (decision-only).
fn unix_config(sock: &std::path::Path, jwks: &str) -> String {
    config_text(
        "",
        jwks,
        &format!("{ROUTES}\n[authz]\naddress = \"unix:{}\"\n", sock.display()),
    )
}

#[tokio::test]
async fn the_unix_socket_replaces_only_a_stale_socket_and_is_removed_at_shutdown() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("authz.sock");

    // A socket file nobody listens on (a sidecar that was killed): replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let sidecar = cognito_sidecar::server::Sidecar::start(config(&unix_config(&sock, &jwks.url())))
        .await
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "the default mode lets only the sidecar's user connect"
    );
    // A live socket is never taken over.
    let Err(e) =
        cognito_sidecar::server::Sidecar::start(config(&unix_config(&sock, &jwks.url()))).await
    else {
        panic!("a second sidecar took over a live socket")
    };
    assert!(e.to_string().contains("in use"), "{e:#}");
    // The first one still answers on it.
    assert!(tokio::net::UnixStream::connect(&sock).await.is_ok());
    sidecar.shutdown().await;
    assert!(!sock.exists(), "the socket file outlived the sidecar");

    // Any other file at the path is never removed.
    std::fs::write(&sock, b"not a socket").unwrap();
    let Err(e) =
        cognito_sidecar::server::Sidecar::start(config(&unix_config(&sock, &jwks.url()))).await
    else {
        panic!("a regular file was replaced by the socket")
    };
    assert!(e.to_string().contains("is not a socket"), "{e:#}");
    assert_eq!(std::fs::read(&sock).unwrap(), b"not a socket");
}

#[test]
fn unix_socket_config_errors_name_the_key() {
    for (authz, key) in [
        ("address = \"unix:relative.sock\"", "authz.address"),
        ("address = \"unix:\"", "authz.address"),
        (
            "address = \"unix:/run/a.sock\"\nsocket_mode = \"0666\"",
            "authz.socket_mode",
        ),
        (
            "address = \"unix:/run/a.sock\"\nsocket_mode = \"rw\"",
            "authz.socket_mode",
        ),
    ] {
        let text = config_text(
            "",
            "http://127.0.0.1:1/jwks",
            &format!("[authz]\n{authz}\n"),
        );
        let Err(e) = cognito_sidecar::config::Config::from_toml_str("sidecar.toml", &text, &[])
        else {
            panic!("{authz} accepted")
        };
        let msg = e.to_string();
        assert!(
            msg.contains("sidecar.toml") && msg.contains(key),
            "{authz}: {msg}"
        );
    }
}
