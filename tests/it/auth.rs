//! Token verification end to end: every rejection reason, key rotation, the refetch bound,
//! JWKS failures, algorithm confusion. Every rejection asserts the upstream was not called.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/weatherforecast"
scopes = ["dotnet-demo/dotnet"]
"#;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Expects a 401 with the given reason and no upstream hit.
async fn rejected(env: &Env, token: &str, reason: &str) {
    let before = env.upstream.hits();
    let r = env.get("/weatherforecast", Some(token)).await;
    assert_eq!(r.status, 401, "{reason}: {r:?}");
    assert_eq!(r.reason(), reason, "{r:?}");
    assert!(
        r.www_authenticate()
            .starts_with("Bearer realm=\"cognito-sidecar\", error=\"invalid_token\""),
        "{r:?}"
    );
    assert_eq!(r.json()["error_description"], reason);
    assert_eq!(env.upstream.hits(), before, "{reason}: upstream was called");
}

#[tokio::test]
async fn a_valid_token_is_forwarded_with_identity() {
    let env = Env::start(ROUTES).await;
    let r = env
        .get(
            "/weatherforecast",
            Some(&sign(&access_claims("dotnet-demo/dotnet"))),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    assert_eq!(seen.headers["x-auth-sub"], CLIENT);
    assert_eq!(seen.headers["x-auth-client-id"], CLIENT);
    assert_eq!(seen.headers["x-auth-scope"], "dotnet-demo/dotnet");
    assert!(!seen.headers.contains_key("x-auth-username"));
    assert!(!seen.headers.contains_key("x-auth-groups"));
    let claims = URL_SAFE_NO_PAD
        .decode(seen.headers["x-auth-claims"].as_bytes())
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["client_id"], CLIENT);
}

#[tokio::test]
async fn every_rejection_reason() {
    let env = Env::start(ROUTES).await;
    let good = access_claims("dotnet-demo/dotnet");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };

    // No token at all: a challenge without an error code.
    let r = env.get("/weatherforecast", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www_authenticate(), "Bearer realm=\"cognito-sidecar\"");
    assert_eq!(r.json()["error"], "unauthorized");

    rejected(&env, "not-a-jwt", "malformed").await;
    rejected(&env, "a.b", "malformed").await;
    rejected(&env, &format!("{}x", "a".repeat(9000)), "too_large").await;
    let h = json!({"alg":"RS256","kid":"kid-a"});
    rejected(
        &env,
        &KEY_A.sign_raw(&json!({"alg":"HS256","kid":"kid-a"}), &good),
        "alg_not_allowed",
    )
    .await;
    rejected(
        &env,
        &KEY_A.sign_raw(&json!({"alg":"RS384","kid":"kid-a"}), &good),
        "alg_not_allowed",
    )
    .await;
    rejected(
        &env,
        &KEY_A.sign_raw(&json!({"alg":"RS256","kid":"nope"}), &good),
        "unknown_kid",
    )
    .await;
    rejected(
        &env,
        &KEY_A.sign_raw(&json!({"alg":"RS256"}), &good),
        "unknown_kid",
    )
    .await;
    // Signed by a key the JWKS does not hold, under a kid it does.
    rejected(&env, &KEY_B.sign_raw(&h, &good), "bad_signature").await;
    // A valid signature over other claims.
    let t = sign(&good);
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = b64(&with("scope", json!("dotnet-demo/dotnet admin")));
    parts[1] = &forged;
    rejected(&env, &parts.join("."), "bad_signature").await;
    rejected(&env, &sign(&with("exp", json!(now() - 120))), "expired").await;
    rejected(&env, &sign(&without("exp")), "malformed").await;
    rejected(
        &env,
        &sign(&with("nbf", json!(now() + 600))),
        "not_yet_valid",
    )
    .await;
    rejected(
        &env,
        &sign(&with("iat", json!(now() + 600))),
        "not_yet_valid",
    )
    .await;
    rejected(
        &env,
        &sign(&with(
            "iss",
            json!("https://cognito-idp.local-1.amazonaws.com/other"),
        )),
        "wrong_issuer",
    )
    .await;
    rejected(&env, &sign(&without("iss")), "wrong_issuer").await;
    rejected(
        &env,
        &sign(&with("token_use", json!("refresh"))),
        "wrong_token_use",
    )
    .await;
    rejected(&env, &sign(&without("token_use")), "wrong_token_use").await;
    rejected(
        &env,
        &sign(&with("client_id", json!("client-b"))),
        "wrong_client",
    )
    .await;
    let mut id = id_claims();
    id["aud"] = json!("client-b");
    rejected(&env, &sign(&id), "wrong_client").await;
    // Inside the leeway is fine.
    let r = env
        .get(
            "/weatherforecast",
            Some(&sign(&with("exp", json!(now() - 30)))),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn wrong_audience_for_oidc_issuers() {
    let env = oidc_env().await;
    let claims =
        |aud: Value| json!({"iss":"https://login.example.com","sub":"u1","aud":aud,"exp":now()+60});
    let addr = env.addr();
    let r = call(addr, "/x", &sign(&claims(json!(["api://orders", "x"])))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(addr, "/x", &sign(&claims(json!("api://billing")))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.reason(), "wrong_audience");
    assert_eq!(env.upstream.hits(), 1);
}

#[tokio::test]
async fn forged_algorithms_are_refused() {
    let env = Env::start(ROUTES).await;
    let good = access_claims("dotnet-demo/dotnet");
    // alg none, in any spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let t = cognito_sidecar::demo::keys::unsigned(&json!({"alg": alg, "kid": "kid-a"}), &good);
        rejected(&env, &t, "malformed").await;
        let t = format!("{}sig", t);
        rejected(&env, &t, "alg_not_allowed").await;
    }
    // HS256 with the RSA public key (the JWK's modulus) as the HMAC secret.
    let secret = KEY_A.modulus().to_vec();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let input = format!(
        "{}.{}",
        b64(&json!({"alg":"HS256","kid":"kid-a"})),
        b64(&good)
    );
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    rejected(&env, &t, "alg_not_allowed").await;
    // Keys named in the header are never used.
    let t = KEY_B.sign_raw(
        &json!({"alg":"RS256","kid":"kid-a","jwk":KEY_B.jwk(),"jku":"http://127.0.0.1:1/jwks"}),
        &good,
    );
    rejected(&env, &t, "bad_signature").await;
    // Critical extensions nobody understands.
    let t = KEY_A.sign_raw(
        &json!({"alg":"RS256","kid":"kid-a","crit":["exp"],"exp":1}),
        &good,
    );
    rejected(&env, &t, "malformed").await;
    // Duplicate claims that parsers resolve differently.
    let payload = format!(
        "{{\"iss\":\"{ISS}\",\"token_use\":\"access\",\"client_id\":\"{CLIENT}\",\"exp\":{},\"scope\":\"x\",\"scope\":\"dotnet-demo/dotnet\"}}",
        now() + 60
    );
    let header = b64(&json!({"alg":"RS256","kid":"kid-a"}));
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = KEY_A.sign_input(&input);
    rejected(&env, &format!("{input}.{sig}"), "malformed").await;
}

#[tokio::test]
async fn rotation_new_kid_accepted_removed_kid_rejected_even_if_cached() {
    let env = Env::start(ROUTES).await;
    let claims = access_claims("dotnet-demo/dotnet");
    let old = sign(&claims);
    // Twice: a token is cached on its second use (admission.rs).
    for _ in 0..2 {
        assert_eq!(env.get("/weatherforecast", Some(&old)).await.status, 200);
    }
    // The pool rotates: B joins, then A leaves.
    env.jwks.set_keys(&[&KEY_A, &KEY_B]);
    let new = KEY_B.sign(&claims);
    let r = env.get("/weatherforecast", Some(&new)).await;
    assert_eq!(r.status, 200, "new kid accepted after refetch: {r:?}");
    env.jwks.set_keys(&[&KEY_B]);
    // Any unknown kid triggers a refetch; after it, the cached old token must fail.
    let probe = KEY_B.sign_raw(&json!({"alg":"RS256","kid":"probe"}), &claims);
    assert_eq!(
        env.get("/weatherforecast", Some(&probe)).await.reason(),
        "unknown_kid"
    );
    rejected(&env, &old, "unknown_kid").await;
    assert_eq!(env.get("/weatherforecast", Some(&new)).await.status, 200);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_one_fetch() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &jwks.url(), ROUTES)
        .replace("jwks_min_refetch = \"0s\"", "jwks_min_refetch = \"1h\"");
    let sidecar = start_ready(&text).await;
    let before = jwks.fetches();
    assert_eq!(before, 1);
    let addr = sidecar.local_addr();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let t = KEY_A.sign_raw(
            &json!({"alg":"RS256","kid":format!("new-{i}")}),
            &access_claims("dotnet-demo/dotnet"),
        );
        tasks.push(tokio::spawn(async move {
            request(
                addr,
                "GET",
                "/weatherforecast",
                &[("authorization", &format!("Bearer {t}"))],
                "",
            )
            .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.reason(), "unknown_kid");
    }
    // jwks_min_refetch = 1h was last reset by the start-up fetch: no refetch at all.
    assert_eq!(jwks.fetches(), 1, "the refetch bound was not kept");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let env = Env::start(ROUTES).await;
    assert_eq!(env.jwks.fetches(), 1);
    env.jwks.set_keys(&[&KEY_A, &KEY_B]);
    let addr = env.addr();
    let token = KEY_B.sign(&access_claims("dotnet-demo/dotnet"));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let t = token.clone();
        tasks.push(tokio::spawn(async move {
            request(
                addr,
                "GET",
                "/weatherforecast",
                &[("authorization", &format!("Bearer {t}"))],
                "",
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(env.jwks.fetches(), 2, "one refetch for a hundred requests");
}

#[tokio::test]
async fn jwks_down_at_start_then_recovers_without_restart() {
    let jwks = Jwks::start_with(JwksMode::Status(503)).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &jwks.url(), ROUTES);
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let admin = sidecar.admin_addr().unwrap();
    let token = sign(&access_claims("dotnet-demo/dotnet"));
    let addr = sidecar.local_addr();
    // Wait until at least one fetch failed, so this is "down", not "not tried yet".
    eventually(Duration::from_secs(5), || async { jwks.fetches() >= 1 }).await;
    let r = call(addr, "/weatherforecast", &token).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error_description"], "keys_unavailable");
    assert_eq!(get(admin, "/readyz").await.status, 503);
    assert_eq!(upstream.hits(), 0);
    jwks.set_keys(&[&KEY_A]);
    eventually(Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
    assert_eq!(call(addr, "/weatherforecast", &token).await.status, 200);
}

#[tokio::test]
async fn last_good_keys_are_kept_when_the_jwks_fails_later() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &jwks.url(), ROUTES).replace(
        "jwks_min_refetch = \"0s\"",
        "jwks_min_refetch = \"0s\"\njwks_refresh = \"1s\"",
    );
    let sidecar = start_ready(&text).await;
    let admin = sidecar.admin_addr().unwrap();
    for (i, mode) in [
        JwksMode::Status(500),
        JwksMode::Body(b"<html>oops</html>".to_vec()),
        JwksMode::Body(br#"{"keys":[]}"#.to_vec()),
        JwksMode::Body(vec![b' '; 2 * 1024 * 1024]),
    ]
    .into_iter()
    .enumerate()
    {
        let before = jwks.fetches();
        jwks.set(mode);
        // An unknown kid forces a fetch now (min_refetch is 0s); the refresh loop may add more.
        let probe = KEY_A.sign_raw(
            &json!({"alg":"RS256","kid":format!("p{i}")}),
            &access_claims("x"),
        );
        let r = request(
            sidecar.local_addr(),
            "GET",
            "/weatherforecast",
            &[("authorization", &format!("Bearer {probe}"))],
            "",
        )
        .await;
        assert_eq!(r.reason(), "unknown_kid");
        assert!(jwks.fetches() > before);
        // A fresh token (not cached) still verifies with the kept keys.
        let mut c = access_claims("dotnet-demo/dotnet");
        c["jti"] = json!(format!("fresh-{i}"));
        let r = request(
            sidecar.local_addr(),
            "GET",
            "/weatherforecast",
            &[("authorization", &format!("Bearer {}", sign(&c)))],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "mode {i}: {r:?}");
        assert_eq!(get(admin, "/readyz").await.status, 200);
    }
    let m = get(admin, "/metrics").await.body;
    assert!(
        m.contains("sidecar_jwks_fetches_total{issuer=\"test\",result=\"error\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn repeated_tokens_hit_the_cache() {
    let env = Env::start(ROUTES).await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    // A token is cached on its second use (admission.rs): two misses, then hits.
    for _ in 0..5 {
        assert_eq!(env.get("/weatherforecast", Some(&t)).await.status, 200);
    }
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_token_cache_total{result=\"hit\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_token_cache_total{result=\"miss\"} 2"),
        "{m}"
    );
    // Tokens used once in between do not push it out, and are not cached themselves.
    for scope in ["a", "b", "c"] {
        let once = sign(&access_claims(&format!("dotnet-demo/dotnet {scope}")));
        assert_eq!(env.get("/weatherforecast", Some(&once)).await.status, 200);
    }
    assert_eq!(env.get("/weatherforecast", Some(&t)).await.status, 200);
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_token_cache_total{result=\"hit\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_token_cache_total{result=\"miss\"} 5"),
        "{m}"
    );
}

#[tokio::test]
async fn token_sources_cookie_and_query() {
    let env = Env::start(&format!(
        "{ROUTES}\n[token]\ncookie = \"access_token\"\nquery = \"access_token\"\n"
    ))
    .await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let r = request(
        env.addr(),
        "GET",
        "/weatherforecast",
        &[("cookie", &format!("a=1; access_token={t}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(
        env.addr(),
        "GET",
        &format!("/weatherforecast?x=1&access_token={t}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert_eq!(
        seen.uri, "/weatherforecast?x=1",
        "token removed from the query"
    );
    // Two Authorization headers: 400, never a guess.
    let r = request(
        env.addr(),
        "GET",
        "/weatherforecast",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("authorization", "Bearer x"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.www_authenticate().contains("invalid_request"));
    // Scheme is case-insensitive.
    let r = request(
        env.addr(),
        "GET",
        "/weatherforecast",
        &[("authorization", &format!("bEaReR {t}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
}
