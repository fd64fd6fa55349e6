//! Route conditions (`when`, CEL) end to end: the issue's three examples through the proxy
//! and the decision listener, the request side (path parameters, headers without the
//! identity headers), errors refused as 403 `condition_failed` with a log line naming the
//! route, and `check` / `inspect` on conditions.

use std::process::Command;

use serde_json::json;

use crate::support::*;

fn routes() -> String {
    format!(
        r#"
[[routes]]
path = "/tenants/*/orders"
when = 'claims["custom:tenant"] == request.path_params[0]'
[[routes]]
path = "/staff/**"
when = 'claims.email.endsWith("@example.com")'
[[routes]]
path = "/admin"
when = '"admins" in claims["cognito:groups"] || claims.client_id == "{CLIENT}"'
[[routes]]
path = "/abc"
when = '"admins" in claims["cognito:groups"] || claims.client_id == "abc"'
[[routes]]
path = "/headers"
when = 'request.headers["x-tenant"] == claims["custom:tenant"] && !("x-auth-sub" in request.headers) && request.method == "GET" && request.host == "sidecar.test"'
"#
    )
}

fn tenant_token(tenant: &str) -> String {
    let mut c = user_access_claims(&[]);
    c["custom:tenant"] = json!(tenant);
    sign(&c)
}

#[tokio::test]
async fn the_tenant_in_the_token_must_be_the_tenant_in_the_path() {
    let env = Env::start(&routes()).await;
    let acme = tenant_token("acme");
    let r = env.get("/tenants/acme/orders", Some(&acme)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(env.upstream.hits(), 1);
    assert_eq!(env.upstream.last().uri, "/tenants/acme/orders");
    // Percent-decoded: `%61cme` is `acme` once normalised.
    let r = env.get("/tenants/%61cme/orders", Some(&acme)).await;
    assert_eq!(r.status, 200, "{r:?}");
    for (path, token) in [
        ("/tenants/globex/orders", acme.clone()),
        // No `custom:tenant` claim: an evaluation error, refused the same way.
        (
            "/tenants/acme/orders",
            sign(&user_access_claims(&["admins"])),
        ),
    ] {
        let r = env.get(path, Some(&token)).await;
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert_eq!(r.reason(), "condition_failed");
        assert!(
            r.www_authenticate()
                .starts_with("Bearer error=\"insufficient_scope\""),
            "{r:?}"
        );
        assert_eq!(r.json()["error_description"], "condition_failed");
    }
    assert_eq!(
        env.upstream.hits(),
        2,
        "refused requests never reach the upstream"
    );
    // No token at all is still 401: the condition comes after verification.
    assert_eq!(env.get("/tenants/acme/orders", None).await.status, 401);
    let m = env.metrics().await;
    assert!(
        m.contains(
            "sidecar_requests_total{outcome=\"condition_failed\",route=\"/tenants/*/orders\"} 2"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn only_example_com_emails() {
    let env = Env::start(&routes()).await;
    let mut id = id_claims();
    assert_eq!(id["email"], "alice@example.com");
    let r = env.get("/staff/x", Some(&sign(&id))).await;
    assert_eq!(r.status, 200, "{r:?}");
    for email in [
        json!("alice@example.org"),
        json!("x@example.com.evil"),
        json!(7),
    ] {
        id["email"] = email.clone();
        let r = env.get("/staff/x", Some(&sign(&id))).await;
        assert_eq!(
            (r.status, r.reason().as_str()),
            (403, "condition_failed"),
            "{email}"
        );
    }
    // An access token has no email: an error, refused.
    let r = env.get("/staff/x", Some(&sign(&access_claims("x")))).await;
    assert_eq!((r.status, r.reason().as_str()), (403, "condition_failed"));
    assert_eq!(env.upstream.hits(), 1);
}

/// The third example: a machine token has no `cognito:groups`, so the left side is an
/// error; `||` must let the right side decide.
#[tokio::test]
async fn or_absorbs_the_error_of_a_missing_claim() {
    let env = Env::start(&routes()).await;
    let machine = sign(&access_claims("x"));
    assert!(access_claims("x").get("cognito:groups").is_none());
    let r = env.get("/admin", Some(&machine)).await;
    assert_eq!(
        r.status, 200,
        "a token without groups but with the client_id: {r:?}"
    );
    // The same error with a false right side: refused.
    let r = env.get("/abc", Some(&machine)).await;
    assert_eq!((r.status, r.reason().as_str()), (403, "condition_failed"));
    // Groups decide on their own.
    let admin = sign(&user_access_claims(&["admins"]));
    assert_eq!(env.get("/abc", Some(&admin)).await.status, 200);
    let user = sign(&user_access_claims(&["users"]));
    assert_eq!(env.get("/abc", Some(&user)).await.status, 403);
    assert_eq!(env.upstream.hits(), 2);
}

#[tokio::test]
async fn the_request_side_sees_headers_but_not_identity_headers() {
    let env = Env::start(&routes()).await;
    let t = format!("Bearer {}", tenant_token("acme"));
    let call = |headers: Vec<(&'static str, &'static str)>| {
        let t = t.clone();
        let addr = env.addr();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("authorization", &t)];
            h.extend(headers);
            request(addr, "GET", "/headers", &h, "").await
        }
    };
    assert_eq!(call(vec![("x-tenant", "acme")]).await.status, 200);
    assert_eq!(call(vec![("x-tenant", "globex")]).await.status, 403);
    // A spoofed identity header is not part of request.headers (so `!(... in ...)` holds),
    // and it is stripped before forwarding as always.
    let r = call(vec![("x-tenant", "acme"), ("x-auth-sub", "spoofed")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    assert_ne!(
        seen.headers.get("x-auth-sub").map(|v| v.to_str().unwrap()),
        Some("spoofed")
    );
    assert_eq!(call(vec![]).await.status, 403);
}

#[tokio::test]
async fn the_decision_listener_applies_the_same_conditions() {
    let env = Env::start(&format!(
        "{}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"nginx\"\n",
        routes()
    ))
    .await;
    let authz = env.sidecar.authz_addr().expect("decision listener on");
    let check = |uri: &'static str, token: String| async move {
        let auth = format!("Bearer {token}");
        request(
            authz,
            "GET",
            "/_authz",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", uri),
                ("x-forwarded-host", "app.example"),
                ("authorization", &auth),
            ],
            "",
        )
        .await
    };
    assert_eq!(
        check("/tenants/acme/orders", tenant_token("acme"))
            .await
            .status,
        200
    );
    let r = check("/tenants/globex/orders", tenant_token("acme")).await;
    assert_eq!((r.status, r.reason().as_str()), (403, "condition_failed"));
    assert_eq!(check("/admin", sign(&access_claims("x"))).await.status, 200);
    assert_eq!(env.upstream.hits(), 0);
}

/// An evaluation error is a 403 and one log line that names the route and the kind of
/// error, never a claim's value.
#[tokio::test]
async fn an_evaluation_error_is_logged_with_the_route_and_no_claim_value() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), &upstream.url(), &jwks.url(), &routes());
    let p = Proc::spawn_file(&file);
    p.wait_ready().await;
    let mut c = id_claims();
    c["email"] = json!(["secret-value@example.com"]);
    let r = call(p.addr, "/staff/x", &sign(&c)).await;
    assert_eq!((r.status, r.reason().as_str()), (403, "condition_failed"));
    let (_, out) = p.stop();
    let line = out
        .lines()
        .find(|l| l.contains("condition could not be evaluated"))
        .unwrap_or_else(|| panic!("no log line:\n{out}"));
    assert!(line.contains("/staff/**"), "{line}");
    assert!(line.contains("endsWith") && line.contains("list"), "{line}");
    assert!(!out.contains("secret-value"), "{out}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn check_refuses_a_bad_condition_naming_the_route_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "http://127.0.0.1:5000",
        "http://127.0.0.1:1/jwks.json",
        "[[routes]]\npath = \"/orders/*\"\nwhen = 'claims.sub == tenant'\n[[routes]]\npath = \"/x\"\nwhen = 'claims.sub =='\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "routes[0].when: route \"/orders/*\": column 15: undeclared name \"tenant\" (declared: claims, request)"
        ),
        "{err}"
    );
    assert!(
        err.contains("routes[1].when: route \"/x\": column"),
        "{err}"
    );
    assert!(err.contains("config.toml"), "{err}");
}

#[tokio::test]
async fn inspect_shows_each_conditions_value_for_the_token_and_request() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "http://127.0.0.1:5000", &jwks.url(), &routes());
    let inspect = |args: Vec<String>| {
        let file = file.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .args(["inspect", "--config"])
                    .arg(&file)
                    .args(args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let token = tenant_token("acme");
    let out = inspect(vec![
        "--request".into(),
        "GET".into(),
        "/tenants/acme/orders".into(),
        token.clone(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("# request\nGET /tenants/acme/orders"),
        "{text}"
    );
    assert!(
        text.contains("    when claims[\"custom:tenant\"] == request.path_params[0]: true\n"),
        "{text}"
    );
    assert!(
        text.contains("    when claims.email.endsWith(\"@example.com\"): error (no such key"),
        "{text}"
    );
    let staff = text.lines().find(|l| l.starts_with("/staff/**")).unwrap();
    assert!(staff.ends_with("no: condition_failed"), "{staff}");
    let out = inspect(vec![
        "--request".into(),
        "GET".into(),
        "/tenants/globex/orders".into(),
        token.clone(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("request.path_params[0]: false\n"), "{text}");
    // Without --request: no path parameters, and a hint.
    let out = inspect(vec![token]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(give --request METHOD PATH for path_params)"),
        "{text}"
    );
}
