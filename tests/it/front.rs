//! What every front proxy in front of the decision listener must hold, whichever it is
//! (`front_nginx.rs`, `front_envoy.rs`): the client meets the front proxy only; the upstream
//! sees only what the sidecar allowed, as whom it said, and never a refused request.

use std::net::SocketAddr;

use crate::support::*;

/// The routes both front-proxy tests run with.
pub const ROUTES: &str = r#"
[[routes]]
path = "/health"
auth = "public"
[[routes]]
path = "/api/**"
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/admin/**"
auth = "deny"
"#;

/// Checks, through the front proxy at `front`, the guarantees every front proxy must give
/// with [`ROUTES`]. `challenge_on_403`: whether the front proxy passes a 403's
/// `WWW-Authenticate` on (nginx's `auth_request` passes it only with a 401).
pub async fn front_proxy_holds(front: SocketAddr, env: &Env, challenge_on_403: bool) {
    let bearer = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));

    // No token: 401 with the sidecar's challenge, at the client.
    let r = request(front, "GET", "/api/items", &[], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"cognito-sidecar\"")
    );
    // A token without the scope: 403 insufficient_scope.
    let other = format!("Bearer {}", sign(&access_claims("other")));
    let r = request(front, "GET", "/api/items", &[("authorization", &other)], "").await;
    assert_eq!(r.status, 403, "{r:?}");
    if challenge_on_403 {
        assert!(r
            .header("www-authenticate")
            .is_some_and(|w| w.starts_with("Bearer error=\"insufficient_scope\"")));
    }
    assert_eq!(env.upstream.hits(), 0);

    // A valid token: the upstream sees the verified identity, not the client's.
    let r = request(
        front,
        "GET",
        "/api/items",
        &[
            ("authorization", &bearer),
            ("x-auth-sub", "admin"),
            ("x-auth-groups", "admins"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = identity_of(&env.upstream.last());
    assert_eq!(id.get("x-auth-sub").map(String::as_str), Some(CLIENT));
    assert_eq!(
        id.get("x-auth-scope").map(String::as_str),
        Some("dotnet-demo/dotnet")
    );
    assert!(!id.contains_key("x-auth-groups"), "{id:?}");

    // A public route: forwarded, and a client's own identity headers never arrive.
    let r = request(
        front,
        "GET",
        "/health",
        &[("x-auth-sub", "admin"), ("x-auth-claims", "e30")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let id = identity_of(&env.upstream.last());
    assert!(id.is_empty(), "{id:?}");
    let hits = env.upstream.hits();

    // Path tricks and a protected path hidden behind the query: refused, never forwarded.
    for target in [
        "/health/../admin/x",
        "/api/..%2fadmin",
        "/api%2Fitems",
        "/api/items;x=1",
        "/admin/x?/health",
    ] {
        let r = request(front, "GET", target, &[("authorization", &bearer)], "").await;
        assert!(r.status == 403 || r.status == 400, "{target}: {r:?}");
    }
    assert_eq!(
        env.upstream.hits(),
        hits,
        "a refused request reached the upstream"
    );
}
