//! What real Cognito pools send: ID tokens carrying a `scope` claim, access tokens with
//! scopes added by a pre token generation trigger, customised claims of every JSON kind,
//! and non-ASCII claim values for strict upstreams.

use std::sync::{Arc, Mutex};

use http::{Response, StatusCode};
use serde_json::json;

use crate::support::*;

const WEATHER: &str = r#"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/any"
scopes_any = ["dotnet-demo/dotnet", "other/scope"]
"#;

#[tokio::test]
async fn an_id_token_scope_claim_grants_no_scope() {
    let env = Env::start(WEATHER).await;
    for claim in ["scope", "scp"] {
        let mut c = id_claims();
        c[claim] = json!("dotnet-demo/dotnet");
        let t = sign(&c);
        for path in ["/weatherforecast", "/any"] {
            let r = call(env.addr(), path, &t).await;
            assert_eq!(r.status, 403, "{claim} on {path}: {}", r.body);
            assert_eq!(r.reason(), "missing_scope", "{claim} on {path}");
        }
    }
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn a_trigger_added_scope_in_a_user_access_token_satisfies_scopes() {
    let env = Env::start(WEATHER).await;
    let mut c = user_access_claims(&["readers"]);
    c["scope"] = json!("aws.cognito.signin.user.admin dotnet-demo/dotnet");
    let r = call(env.addr(), "/weatherforecast", &sign(&c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.upstream.last().headers["x-auth-scope"],
        "aws.cognito.signin.user.admin dotnet-demo/dotnet"
    );
}

#[tokio::test]
async fn customised_claims_render_unambiguously() {
    let env = Env::start(
        r#"
[[routes]]
path = "/**"
[forward.headers]
"X-Auth-Sub" = "sub"
"X-Auth-Roles" = "roles"
"X-Auth-Level" = "level"
"X-Auth-Ratio" = "ratio"
"X-Auth-Admin" = "is_admin"
"X-Auth-Meta" = "meta"
"X-Auth-Tenant" = "custom:tenant"
"#,
    )
    .await;
    let mut c = user_access_claims(&[]);
    c["roles"] = json!(["a,b", "50%", "c"]);
    c["level"] = json!(3);
    c["ratio"] = json!(0.5);
    c["is_admin"] = json!(false);
    c["meta"] = json!({"team": "blue"});
    c["custom:tenant"] = json!("t-1");
    let r = call(env.addr(), "/x", &sign(&c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = identity_of(&env.upstream.last());
    assert_eq!(id["x-auth-roles"], "a%2Cb,50%25,c");
    assert_eq!(id["x-auth-level"], "3");
    assert_eq!(id["x-auth-ratio"], "0.5");
    assert_eq!(id["x-auth-admin"], "false");
    assert_eq!(id["x-auth-meta"], r#"{"team":"blue"}"#);
    assert_eq!(id["x-auth-tenant"], "t-1");
}

/// An upstream that, like ASP.NET Core's Kestrel, refuses a request with a header value
/// outside ASCII (400), and otherwise records the `X-Auth-Username` it got.
async fn strict_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let (addr, _task) = serve(move |req| {
        let g = Arc::clone(&g);
        async move {
            if req
                .headers()
                .values()
                .any(|v| v.as_bytes().iter().any(|b| *b >= 0x80))
            {
                let mut r = Response::new(full("non-ASCII header value"));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
            let name = req
                .headers()
                .get("x-auth-username")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            g.lock().unwrap().push(name);
            Response::new(full("ok"))
        }
    })
    .await;
    (format!("http://{addr}"), got)
}

#[tokio::test]
async fn non_ascii_claims_reach_a_strict_upstream_percent_encoded() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let (upstream, got) = strict_upstream().await;
    let sidecar = start_ready(&config_text(
        &upstream,
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\n",
    ))
    .await;
    for (name, sent) in [
        ("José Müller", "Jos%C3%A9 M%C3%BCller"),
        ("100% Zoë", "100%25 Zo%C3%AB"),
        ("plain name", "plain name"),
    ] {
        let mut c = user_access_claims(&[]);
        c["username"] = json!(name);
        let r = call(sidecar.local_addr(), "/x", &sign(&c)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let last = got.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, sent, "{name}");
        let decoded = percent_encoding::percent_decode_str(&last)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, name, "decoding gives the claim back");
    }
}
