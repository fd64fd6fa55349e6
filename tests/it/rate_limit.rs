//! Route rate limits end to end: per caller (`sub`, `client_id`) after verification, per
//! address (`ip`, with `X-Forwarded-For` from trusted proxies) before it, the 429 with
//! `Retry-After` and the RateLimit fields, the upstream untouched, the metrics, bounded keys,
//! state across reloads, and the decision listener's answer.

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/by-sub"
rate_limit = { key = "sub", requests = 2, per = "1h" }
[[routes]]
path = "/by-client"
rate_limit = { key = "client_id", requests = 1, per = "1h", burst = 2 }
[[routes]]
path = "/by-ip"
scopes = ["x"]
rate_limit = { key = "ip", requests = 3, per = "1h" }
[[routes]]
path = "/public-by-ip"
auth = "public"
rate_limit = { key = "ip", requests = 1, per = "1h" }
[[routes]]
path = "/few-keys"
rate_limit = { key = "sub", requests = 1, per = "1h", max_keys = 2 }
"#;

fn user(sub: &str) -> String {
    let mut c = user_access_claims(&[]);
    c["sub"] = json!(sub);
    sign(&c)
}

fn retry_after(r: &Reply) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {r:?}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_and_ratelimit_fields() {
    let env = Env::start(ROUTES).await;
    let alice = user("alice");
    for _ in 0..2 {
        assert_eq!(env.get("/by-sub", Some(&alice)).await.status, 200);
    }
    let r = env.get("/by-sub", Some(&alice)).await;
    assert_eq!(r.status, 429, "{r:?}");
    // One request every 30 minutes: the next passes in at most that.
    let wait = retry_after(&r);
    assert!((1..=1800).contains(&wait), "{wait}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"route\";q=2;w=3600"));
    assert_eq!(
        r.header("ratelimit"),
        Some(format!("\"route\";r=0;t={wait}").as_str())
    );
    assert_eq!(r.json()["error"], "too_many_requests");
    assert_eq!(r.json()["error_description"], "rate_limited");
    assert_eq!(
        env.upstream.hits(),
        2,
        "the upstream never sees a limited request"
    );
    // Another caller has a limit of its own.
    assert_eq!(env.get("/by-sub", Some(&user("bob"))).await.status, 200);
    let m = env.metrics().await;
    for want in [
        "sidecar_rate_limited_total{route=\"/by-sub\"} 1",
        "sidecar_rate_limit_keys{route=\"/by-sub\"} 2",
        "sidecar_requests_total{outcome=\"rate_limited\",route=\"/by-sub\"} 1",
    ] {
        assert!(m.contains(want), "{want}:\n{m}");
    }
}

#[tokio::test]
async fn client_id_limits_count_every_token_of_the_client() {
    let env = Env::start(ROUTES).await;
    // Two users, one client: the client's burst of 2 is shared.
    assert_eq!(env.get("/by-client", Some(&user("a"))).await.status, 200);
    assert_eq!(env.get("/by-client", Some(&user("b"))).await.status, 200);
    let r = env.get("/by-client", Some(&user("c"))).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit-policy"), Some("\"route\";q=2;w=7200"));
}

/// `ip` limits apply before the token is looked at: requests without a token, and refused
/// ones, count too.
#[tokio::test]
async fn ip_limits_count_unauthenticated_and_refused_requests() {
    let env = Env::start(ROUTES).await;
    // The peer (127.0.0.1) is a trusted proxy by default, so each test client names itself.
    let from = |ip: &'static str, token: Option<String>| {
        let addr = env.addr();
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut h = vec![("x-forwarded-for", ip)];
            if let Some(a) = &auth {
                h.push(("authorization", a.as_str()));
            }
            request(addr, "GET", "/by-ip", &h, "").await
        }
    };
    let good = sign(&access_claims("x"));
    assert_eq!(from("203.0.113.1", None).await.status, 401);
    assert_eq!(
        from("203.0.113.1", Some(sign(&access_claims("y"))))
            .await
            .status,
        403
    );
    assert_eq!(
        from("203.0.113.1", Some("garbage".into())).await.status,
        401
    );
    let r = from("203.0.113.1", Some(good.clone())).await;
    assert_eq!(r.status, 429, "{r:?}");
    // The right-most untrusted address is the client: a trusted hop after it is skipped.
    assert_eq!(
        from("203.0.113.1, 127.0.0.1", Some(good.clone()))
            .await
            .status,
        429
    );
    assert_eq!(from("198.51.100.7", Some(good.clone())).await.status, 200);
    // A client cannot pick a new address by prepending one: the right-most one counts.
    assert_eq!(
        from("192.0.2.50, 203.0.113.1", Some(good)).await.status,
        429
    );
    assert_eq!(env.upstream.hits(), 1);
    // Public routes can be limited by address too.
    assert_eq!(env.get("/public-by-ip", None).await.status, 200);
    assert_eq!(env.get("/public-by-ip", None).await.status, 429);
}

#[tokio::test]
async fn an_untrusted_peer_is_its_own_address_whatever_it_forwards() {
    // No trusted proxies: X-Forwarded-For means nothing, the peer is the client.
    let env = Env::start(&format!("{ROUTES}\n[authz]\ntrusted_proxies = []\n")).await;
    let r = request(
        env.addr(),
        "GET",
        "/public-by-ip",
        &[("x-forwarded-for", "203.0.113.1")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(
        env.addr(),
        "GET",
        "/public-by-ip",
        &[("x-forwarded-for", "203.0.113.2")],
        "",
    )
    .await;
    assert_eq!(r.status, 429, "{r:?}");
}

#[tokio::test]
async fn keys_are_bounded_and_the_dropped_counted() {
    let env = Env::start(ROUTES).await;
    for i in 0..5 {
        let r = env.get("/few-keys", Some(&user(&format!("u{i}")))).await;
        assert_eq!(r.status, 200);
    }
    let m = env.metrics().await;
    let value = |name: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}:\n{m}"))
    };
    let keys = value("sidecar_rate_limit_keys{route=\"/few-keys\"}");
    assert!(keys <= 2, "{keys}");
    assert_eq!(
        value("sidecar_rate_limit_evicted_total{route=\"/few-keys\"}"),
        5 - keys
    );
    // The newest caller is still held, and limited.
    assert_eq!(env.get("/few-keys", Some(&user("u4"))).await.status, 429);
}

#[tokio::test]
async fn a_reload_keeps_the_state_of_an_unchanged_limit() {
    let env = Env::start(ROUTES).await;
    let alice = user("alice");
    for _ in 0..2 {
        assert_eq!(env.get("/by-sub", Some(&alice)).await.status, 200);
    }
    assert_eq!(env.get("/by-sub", Some(&alice)).await.status, 429);
    let text = |routes: &str| config_text(&env.upstream.url(), &env.jwks.url(), routes);
    // The same limit (the other routes changed): still limited.
    let unchanged = ROUTES.replace("max_keys = 2", "max_keys = 3");
    env.sidecar.reload(config(&text(&unchanged))).unwrap();
    assert_eq!(env.get("/by-sub", Some(&alice)).await.status, 429);
    // A new limit on the route starts afresh.
    let changed = ROUTES.replace("requests = 2, per = \"1h\"", "requests = 5, per = \"1h\"");
    assert_ne!(changed, ROUTES);
    env.sidecar.reload(config(&text(&changed))).unwrap();
    assert_eq!(env.get("/by-sub", Some(&alice)).await.status, 200);
    // The gauge counts the live limiter's keys only.
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_rate_limit_keys{route=\"/by-sub\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn the_decision_listener_limits_too() {
    for (protocol, status) in [("nginx", 403), ("traefik", 429)] {
        let env = Env::start(&format!(
            "{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"{protocol}\"\n"
        ))
        .await;
        let authz = env.sidecar.authz_addr().unwrap();
        let auth = format!("Bearer {}", user("alice"));
        let headers: Vec<(&str, &str)> = match protocol {
            "nginx" => vec![("x-original-method", "GET"), ("x-original-uri", "/by-sub")],
            _ => vec![
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/by-sub"),
                ("x-forwarded-host", "app.example"),
            ],
        };
        let mut h = headers.clone();
        h.push(("authorization", &auth));
        for _ in 0..2 {
            assert_eq!(request(authz, "GET", "/", &h, "").await.status, 200);
        }
        let r = request(authz, "GET", "/", &h, "").await;
        // nginx's auth_request passes only 401 and 403: the reason goes in X-Auth-Error.
        assert_eq!(r.status, status, "{protocol}: {r:?}");
        if protocol == "nginx" {
            assert_eq!(r.header("x-auth-error"), Some("rate_limited"));
        }
        assert!(retry_after(&r) >= 1);
        assert!(r.header("ratelimit").is_some(), "{r:?}");
        assert_eq!(env.upstream.hits(), 0);
    }
}
