//! Claim misuse: genuinely signed tokens used where they do not belong: the other token kind,
//! refresh tokens, other pools and clients, look-alike scopes and groups, claims that would
//! break or split a header. (routes.rs covers the basic rule table.)

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/machine"
scopes = ["orders/read"]
[[routes]]
path = "/admin/**"
groups_any = ["admins"]
[[routes]]
path = "/access-only"
token_use = "access"
[[routes]]
path = "/id-only"
token_use = "id"
[[routes]]
path = "/open"
[token]
cookie = "tok"
query = "tok"
[forward.headers]
"X-Auth-Sub" = "sub"
"X-Auth-Scope" = "scope"
"X-Auth-Groups" = "cognito:groups"
"X-Auth-Username" = "username"
"X-Auth-Email" = "email"
"#;

async fn env() -> Env {
    env_with(ROUTES, |t| {
        t.replace("jwks_min_refetch = \"0s\"", "jwks_min_refetch = \"1h\"")
    })
    .await
}

fn user(groups: Value) -> Value {
    let mut c = user_access_claims(&[]);
    c["cognito:groups"] = groups;
    c
}

#[tokio::test]
async fn id_and_access_tokens_where_the_other_is_required() {
    let env = env().await;
    expect_403(&env, "/access-only", &sign(&id_claims()), "wrong_token_use").await;
    expect_403(
        &env,
        "/id-only",
        &sign(&access_claims("x")),
        "wrong_token_use",
    )
    .await;
    expect_200(&env, "/access-only", &sign(&access_claims("x"))).await;
    expect_200(&env, "/id-only", &sign(&id_claims())).await;
    // An ID token with an access token's claims added is still an ID token.
    let mut hybrid = id_claims();
    hybrid["scope"] = json!("orders/read");
    hybrid["client_id"] = json!(CLIENT);
    expect_403(&env, "/access-only", &sign(&hybrid), "wrong_token_use").await;
    // token_use spelled another way is no token kind at all.
    for tu in [
        json!("Access"),
        json!("access "),
        json!(["access"]),
        json!(null),
        json!(""),
    ] {
        let mut c = access_claims("orders/read");
        c["token_use"] = tu;
        expect_401(&env, "/machine", &sign(&c), "wrong_token_use").await;
    }

    // Issuer-level: an issuer that takes access tokens only refuses ID tokens outright.
    let open = "[[routes]]\npath = \"/open\"\n";
    let env = env_with(open, |t| {
        t.replace(
            "jwks_min_refetch = \"0s\"",
            "jwks_min_refetch = \"1h\"\ntoken_use = [\"access\"]",
        )
    })
    .await;
    expect_401(&env, "/open", &sign(&id_claims()), "wrong_token_use").await;
    expect_200(&env, "/open", &sign(&access_claims("x"))).await;
    let env = env_with(open, |t| {
        t.replace(
            "jwks_min_refetch = \"0s\"",
            "jwks_min_refetch = \"1h\"\ntoken_use = [\"id\"]",
        )
    })
    .await;
    expect_401(&env, "/open", &sign(&access_claims("x")), "wrong_token_use").await;
}

#[tokio::test]
async fn refresh_tokens_and_other_jwe_shapes_are_refused_from_every_source() {
    let env = env().await;
    // A Cognito refresh token is a JWE: five parts, RSA-OAEP + A256GCM.
    let part = |n: usize| URL_SAFE_NO_PAD.encode(vec![0x5au8; n]);
    let jwe_header = b64(&json!({"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}));
    let refresh = format!(
        "{jwe_header}.{}.{}.{}.{}",
        part(256),
        part(12),
        part(1200),
        part(16)
    );
    let shapes = [
        refresh.clone(),
        format!("{jwe_header}..{}.{}.{}", part(12), part(100), part(16)),
        "a.b.c.d.e".to_string(),
        "a.b.c.d".to_string(),
        format!(
            "{}.{}",
            b64(&json!({"alg":"RS256","kid":"kid-a"})),
            b64(&access_claims("x"))
        ),
        // A genuine access token with a JWE tail glued on.
        format!(
            "{}.{}.{}",
            sign(&access_claims("orders/read")),
            part(12),
            part(16)
        ),
    ];
    for t in &shapes {
        expect_401(&env, "/open", t, "malformed").await;
        for (what, r) in [
            (
                "cookie",
                request(
                    env.addr(),
                    "GET",
                    "/open",
                    &[("cookie", &format!("tok={t}"))],
                    "",
                )
                .await,
            ),
            (
                "query",
                request(env.addr(), "GET", &format!("/open?tok={t}"), &[], "").await,
            ),
        ] {
            assert_eq!(
                (r.status, r.reason().as_str()),
                (401, "malformed"),
                "{what}: {r:?}"
            );
        }
    }
    // A JWS that says it is a refresh token.
    let mut c = access_claims("orders/read");
    c["token_use"] = json!("refresh");
    expect_401(&env, "/machine", &sign(&c), "wrong_token_use").await;
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn tokens_of_another_pool_or_issuer_are_refused() {
    // Two pools, each with its own key set: pool A (KEY_A) and pool B (KEY_B).
    let jwks_a = Jwks::start(&[&KEY_A]).await;
    let jwks_b = Jwks::start(&[&KEY_B]).await;
    let upstream = Upstream::start().await;
    let pool_b = "https://cognito-idp.local-1.amazonaws.com/local-1_OtherPool";
    let text = format!(
        "{}[[issuers]]\nname = \"b\"\nuser_pool_id = \"local-1_OtherPool\"\njwks_url = \"{}\"\njwks_min_refetch = \"1h\"\n",
        config_text(&upstream.url(), &jwks_a.url(), ROUTES)
            .replace("jwks_min_refetch = \"0s\"", "jwks_min_refetch = \"1h\""),
        jwks_b.url()
    );
    let env = Env {
        jwks: jwks_a,
        upstream,
        sidecar: cognito_sidecar::Sidecar::start(config(&text))
            .await
            .unwrap(),
    };
    env.wait_ready().await;
    let with_iss = |iss: Value| {
        let mut c = access_claims("orders/read");
        c["iss"] = iss;
        c
    };
    for iss in [
        json!(format!("{ISS}/")),
        json!(ISS.to_uppercase()),
        json!(ISS.replace("https://", "http://")),
        json!(format!(" {ISS}")),
        json!(format!("{ISS}2")),
        json!(format!("{ISS}?x=1")),
        json!(ISS.replace("local-1_TestPool", "local-1_testpool")),
        json!("https://cognito-idp.local-1.amazonaws.com/local-1_Unknown"),
        json!([ISS]),
        json!(null),
        json!(1),
    ] {
        expect_401(&env, "/open", &sign(&with_iss(iss)), "wrong_issuer").await;
    }
    // Pool B's issuer with pool A's key (and kid), and the other way round: keys never
    // cross issuers.
    expect_401(
        &env,
        "/open",
        &KEY_A.sign(&with_iss(json!(pool_b))),
        "unknown_kid",
    )
    .await;
    expect_401(
        &env,
        "/open",
        &KEY_B.sign(&with_iss(json!(ISS))),
        "unknown_kid",
    )
    .await;
    // Each pool's own tokens work.
    expect_200(&env, "/open", &KEY_A.sign(&with_iss(json!(ISS)))).await;
    let seen = expect_200(&env, "/open", &KEY_B.sign(&with_iss(json!(pool_b)))).await;
    assert_eq!(seen.headers["x-auth-sub"], CLIENT);
    assert_eq!(env.jwks.fetches(), 1);
    assert_eq!(jwks_b.fetches(), 1);
}

#[tokio::test]
async fn tokens_of_another_client_are_refused() {
    let env = env().await;
    let access = |f: &dyn Fn(&mut Value)| {
        let mut c = access_claims("orders/read");
        f(&mut c);
        sign(&c)
    };
    for t in [
        access(&|c| c["client_id"] = json!("client-b")),
        access(&|c| c["client_id"] = json!("CLIENT-A")),
        access(&|c| c["client_id"] = json!("client-a ")),
        access(&|c| c["client_id"] = json!([CLIENT])),
        access(&|c| c["client_id"] = json!(null)),
        // Access tokens name their client in client_id; aud does not count.
        access(&|c| {
            c.as_object_mut().unwrap().remove("client_id");
            c["aud"] = json!(CLIENT);
        }),
    ] {
        expect_401(&env, "/machine", &t, "wrong_client").await;
    }
    let id = |f: &dyn Fn(&mut Value)| {
        let mut c = id_claims();
        f(&mut c);
        sign(&c)
    };
    for t in [
        id(&|c| c["aud"] = json!("client-b")),
        id(&|c| c["aud"] = json!(["client-b", "client-c"])),
        // ID tokens name their client in aud; client_id does not count.
        id(&|c| {
            c["aud"] = json!("client-b");
            c["client_id"] = json!(CLIENT);
        }),
        id(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
    ] {
        expect_401(&env, "/id-only", &t, "wrong_client").await;
    }
}

#[tokio::test]
async fn look_alike_scopes_grant_nothing() {
    let env = env().await;
    for scope in [
        json!("Orders/read"),
        json!("orders/read/"),
        json!("orders/Read"),
        json!("orders/reader"),
        json!("orders\\read"),
        json!("orders/read\u{200b}"),
        json!("orders/reаd"), // Cyrillic a
        json!("x,orders/read"),
        json!("\"orders/read\""),
        json!(""),
    ] {
        let mut c = access_claims("x");
        c["scope"] = scope.clone();
        let before = env.upstream.hits();
        let r = call(env.addr(), "/machine", &sign(&c)).await;
        assert_eq!(r.status, 403, "{scope}: {r:?}");
        assert_eq!(
            r.www_authenticate(),
            "Bearer error=\"insufficient_scope\", scope=\"orders/read\", error_description=\"missing_scope\"",
            "{scope}"
        );
        assert_eq!(env.upstream.hits(), before);
    }
    // Whitespace other than a space still separates scopes (split_ascii_whitespace); the
    // token is the issuer's, and the upstream gets the claim as signed.
    let mut c = access_claims("x");
    c["scope"] = json!("a\torders/read");
    let seen = expect_200(&env, "/machine", &sign(&c)).await;
    assert_eq!(seen.headers["x-auth-scope"], "a\torders/read");
}

#[tokio::test]
async fn groups_that_are_not_an_array_of_strings_grant_nothing_and_are_not_forwarded() {
    let env = env().await;
    // Grants nothing on a group route.
    for groups in [
        json!("admins"),
        json!("readers,admins"),
        json!([["admins"]]),
        json!([{"name": "admins"}]),
        json!(["Admins", "admins ", "superadmins", "admin"]),
        json!([]),
        json!(null),
        json!({"admins": true}),
    ] {
        expect_403(&env, "/admin/x", &sign(&user(groups)), "missing_group").await;
    }
    // On a route without group rules the token is fine, but the upstream must not read a
    // group the sidecar did not grant: a bare string or non-string elements are not
    // forwarded as groups.
    let cases: [(Value, Option<&str>); 6] = [
        (json!("admins"), None),
        (json!("readers,admins"), None),
        (json!(["readers", ["admins"]]), Some("readers")),
        (json!([1, "readers", {"a": "admins"}]), Some("readers")),
        (json!(["devs,admins", "100%"]), Some("devs%2Cadmins,100%25")),
        (json!([]), Some("")),
    ];
    for (groups, want) in cases {
        let seen = expect_200(&env, "/open", &sign(&user(groups.clone()))).await;
        assert_eq!(
            seen.headers
                .get("x-auth-groups")
                .map(|v| v.to_str().unwrap()),
            want,
            "{groups}"
        );
    }
    // The same for scope: only a string is read as scopes, only a string is forwarded.
    let mut c = access_claims("x");
    c["scope"] = json!(["orders/read"]);
    expect_403(&env, "/machine", &sign(&c), "missing_scope").await;
    let seen = expect_200(&env, "/open", &sign(&c)).await;
    assert!(
        !seen.headers.contains_key("x-auth-scope"),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn claims_with_control_characters_or_commas() {
    let env = env().await;
    let evil = [
        "alice\r\nX-Auth-Groups: admins",
        "alice\nx",
        "alice\rx",
        "alice\u{0}",
        "alice\u{7f}",
        "alice\u{1b}[31m",
    ];
    for v in evil {
        for claim in ["sub", "username"] {
            let mut c = user(json!(["readers"]));
            c[claim] = json!(v);
            expect_401(&env, "/open", &sign(&c), "malformed").await;
        }
        let c = user(json!(["readers", v]));
        expect_401(&env, "/open", &sign(&c), "malformed").await;
        let mut c = access_claims("orders/read");
        c["scope"] = json!(format!("orders/read {v}"));
        expect_401(&env, "/machine", &sign(&c), "malformed").await;
    }
    // A claim that is not rendered into a header may hold anything: it only travels inside
    // the base64url claims header.
    let mut c = user(json!(["readers"]));
    c["custom:note"] = json!("line1\r\nX-Auth-Sub: admin");
    let seen = expect_200(&env, "/open", &sign(&c)).await;
    assert_eq!(
        identity_of(&seen).get("x-auth-sub").map(String::as_str),
        Some("11111111-2222-3333-4444-555555555555")
    );
    let claims = URL_SAFE_NO_PAD
        .decode(seen.headers["x-auth-claims"].as_bytes())
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["custom:note"], "line1\r\nX-Auth-Sub: admin");
    // Commas: escaped inside group elements, kept in plain strings, never a second value.
    let mut c = user(json!(["readers", "x,admins", "a%2Cb"]));
    c["username"] = json!("smith, john");
    c["email"] = json!("a@b.example, admin@b.example");
    let seen = expect_200(&env, "/open", &sign(&c)).await;
    let id: HashMap<String, String> = identity_of(&seen);
    assert_eq!(id["x-auth-groups"], "readers,x%2Cadmins,a%252Cb");
    assert_eq!(id["x-auth-username"], "smith, john");
    assert_eq!(id["x-auth-email"], "a@b.example, admin@b.example");
    for h in [
        "x-auth-groups",
        "x-auth-username",
        "x-auth-email",
        "x-auth-sub",
    ] {
        assert_eq!(seen.headers.get_all(h).iter().count(), 1, "{h}");
    }
}
