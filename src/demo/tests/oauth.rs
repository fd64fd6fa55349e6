//! The client credentials grant on `/oauth2/token`: the token it issues and
//! every refusal, through `crate::token` and as raw requests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{client, get_json, jwks, loopback, oauth_error, raw_client, test_config, verify};
use crate::demo::issuer;
use crate::token;

#[tokio::test]
async fn client_credentials_flow_issues_verifiable_cognito_shaped_token() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let secret = m2m.client_secret.as_deref().unwrap();
    assert_eq!(m2m.client_id.len(), 26);
    assert_eq!(secret.len(), 51);
    // The iss is the pool's Cognito issuer; the keys are on loopback.
    assert_eq!(
        h.issuer_url(),
        "https://cognito-idp.local-1.amazonaws.com/local-1_DemoPool"
    );
    assert!(h.jwks_url().starts_with("http://127.0.0.1:"));
    assert!(h
        .jwks_url()
        .ends_with("/local-1_DemoPool/.well-known/jwks.json"));

    // Trailing slash on the domain is accepted.
    let t = token::client_credentials(
        &format!("{}/", h.base_url()),
        &m2m.client_id,
        secret,
        Some(issuer::DEMO_SCOPE),
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 3600);

    let set = jwks(&h).await;
    assert_eq!(set.keys.len(), 2);
    let (claims, kid) = verify(&set, &h.issuer_url(), &t.access_token, None);
    assert_eq!(kid, h.access_key().kid());
    assert_eq!(claims["sub"], m2m.client_id.as_str());
    assert_eq!(claims["client_id"], m2m.client_id.as_str());
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["scope"], issuer::DEMO_SCOPE);
    assert_eq!(claims["version"], 2);
    assert_eq!(claims["iss"], h.issuer_url().as_str());
    assert!(claims.get("username").is_none());
    assert!(claims.get("aud").is_none());
    assert!(claims.get("cognito:groups").is_none());
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 36));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert_eq!(claims["auth_time"].as_u64(), Some(iat));

    // No scope asked: every scope allowed to the client.
    let t2 = token::client_credentials(&h.base_url(), &m2m.client_id, secret, None)
        .await
        .unwrap();
    let (c2, _) = verify(&set, &h.issuer_url(), &t2.access_token, None);
    assert_eq!(c2["scope"], issuer::DEMO_SCOPE);
    assert_ne!(c2["jti"], claims["jti"]);

    // client_secret_post works too.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={secret}",
        m2m.client_id
    );
    let r = raw_client()
        .post(h.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    verify(
        &set,
        &h.issuer_url(),
        body["access_token"].as_str().unwrap(),
        None,
    );

    // Discovery points at the same places.
    let d = get_json(h.discovery_url()).await;
    assert_eq!(d["issuer"], h.issuer_url().as_str());
    assert_eq!(d["jwks_uri"], h.jwks_url().as_str());
    assert_eq!(d["token_endpoint"], h.token_url().as_str());
    h.shutdown().await;
}

/// POSTs `body` to `url` as `ctype`, with `authorization` when given;
/// returns the status and the JSON body.
async fn post(url: &str, ctype: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut rb = raw_client()
        .post(url)
        .header("content-type", ctype)
        .body(body.to_owned());
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn client_credentials_errors_are_cognitos() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let secret = m2m.client_secret.clone().unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let sec = client(&h, "secret-app");

    let (m2m_id, app_id, sec_id) = (&*m2m.client_id, &*app.client_id, &*sec.client_id);
    let wrong = format!("{secret}x");
    let sec_secret = sec.client_secret.as_deref().unwrap();
    // (what, client id, secret, scope, error)
    #[rustfmt::skip]
    let cases = [
        ("wrong secret",   m2m_id,         &*wrong,    None,                              "invalid_client"),
        ("unknown client", "nosuchclient", &secret,    None,                              "invalid_client"),
        // A public client (no secret) cannot authenticate.
        ("public client",  app_id,         "",         None,                              "invalid_client"),
        ("unknown scope",  m2m_id,         &secret,    Some("dotnet-demo/other"),         "invalid_scope"),
        // One bad scope among good ones still fails.
        ("one bad scope",  m2m_id,         &secret,    Some("dotnet-demo/dotnet openid"), "invalid_scope"),
        // A confidential client not enabled for client_credentials.
        ("not enabled",    sec_id,         sec_secret, None,                              "unauthorized_client"),
    ];
    for (what, id, secret, scope, error) in cases {
        let e = token::client_credentials(&h.base_url(), id, secret, scope)
            .await
            .unwrap_err();
        let shown = e.to_string();
        let prefix = format!("{error} (HTTP 400 from http://127.0.0.1:");
        assert!(shown.starts_with(&prefix), "{what}: {shown}");
        assert_eq!(oauth_error(e), (400, error.into()), "{what}");
    }

    // Raw requests for what the client function never sends.
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{secret}", m2m.client_id))
    );
    let basic = Some(basic.as_str());
    let form = "application/x-www-form-urlencoded";
    let cc = "grant_type=client_credentials";
    let twice = format!("{cc}&{cc}");
    let (bad_basic, bearer) = (Some("Basic %%%"), Some("Bearer abc"));
    let json = "application/json";
    // (body, content type, authorization, error)
    #[rustfmt::skip]
    let cases = [
        ("grant_type=password&username=u&password=p", form, basic,     "unsupported_grant_type"),
        // The M2M client may not use the code flow.
        ("grant_type=authorization_code&code=x",      form, basic,     "unauthorized_client"),
        ("scope=dotnet-demo/dotnet",                  form, basic,     "invalid_request"),
        (cc,                                          json, basic,     "invalid_request"),
        (&twice,                                      form, basic,     "invalid_request"),
        // Basic and form credentials at once.
        ("grant_type=client_credentials&client_id=x", form, basic,     "invalid_request"),
        (cc,                                          form, bad_basic, "invalid_client"),
        (cc,                                          form, bearer,    "invalid_client"),
        (cc,                                          form, None,      "invalid_client"),
    ];
    for (body, ctype, auth, error) in cases {
        assert_eq!(
            post(&h.token_url(), ctype, auth, body).await,
            (400, json!({ "error": error })),
            "{body} as {ctype} with {auth:?}"
        );
    }
    // Still serving after all that.
    assert_eq!(post(&h.token_url(), form, basic, cc).await.0, 200);
}
