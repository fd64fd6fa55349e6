//! End-to-end tests of the demo issuer and upstream through `crate::token`,
//! all on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::issuer::{self, DemoClient, IssuerConfig, IssuerHandle};
use super::upstream;
use crate::token::{self, InitiateAuthResult, TokenClient, TokenError};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(token::tls_client_config())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The demo pool plus a confidential client allowed USER_PASSWORD_AUTH and a
/// confidential client not allowed client_credentials.
fn test_config() -> IssuerConfig {
    let mut cfg = issuer::demo_config();
    cfg.clients.push(DemoClient {
        name: "secret-app".into(),
        client_id: issuer::random_client_id(),
        client_secret: Some(issuer::random_client_secret()),
        client_credentials: false,
        allowed_scopes: vec![],
        user_password_auth: true,
    });
    cfg
}

fn client<'a>(h: &'a IssuerHandle, name: &str) -> &'a DemoClient {
    h.config().client_named(name).unwrap()
}

/// GETs `url` and reads the answer as JSON.
async fn get_json(url: impl reqwest::IntoUrl) -> Value {
    raw_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn jwks(h: &IssuerHandle) -> JwkSet {
    serde_json::from_value(get_json(h.jwks_url()).await).unwrap()
}

/// The demo user signs in through `client` (with its secret, if it has one).
async fn sign_in(h: &IssuerHandle, client: &DemoClient) -> InitiateAuthResult {
    token::password(
        &h.idp_url(),
        &client.client_id,
        issuer::DEMO_USERNAME,
        issuer::DEMO_PASSWORD,
        client.client_secret.as_deref(),
    )
    .await
    .unwrap()
}

/// Verifies `token` against the served JWKS (RS256, issuer, exp) and returns
/// its claims and kid.
fn verify(set: &JwkSet, issuer: &str, token: &str, aud: Option<&str>) -> (Value, String) {
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("kid in header");
    let jwk = set.find(&kid).expect("kid is in the served JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss"]);
    match aud {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    let data = decode::<Value>(token, &key, &v).unwrap();
    (data.claims, kid)
}

#[tokio::test]
async fn client_credentials_flow_issues_verifiable_cognito_shaped_token() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let secret = m2m.client_secret.as_deref().unwrap();
    assert_eq!(m2m.client_id.len(), 26);
    assert_eq!(secret.len(), 51);
    assert!(h.issuer_url().starts_with("http://127.0.0.1:"));
    assert!(h.issuer_url().ends_with("/local-1_DemoPool"));

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

#[tokio::test]
async fn password_flow_issues_access_and_id_tokens_signed_by_different_keys() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let r = sign_in(&h, app).await;
    assert_eq!(r.expires_in, 3600);
    assert_eq!(r.token_type, "Bearer");
    let refresh = r.refresh_token.as_deref().unwrap();
    assert!(refresh.len() >= 100);
    assert_eq!(refresh.split('.').count(), 1, "refresh token is opaque");

    let set = jwks(&h).await;
    let iss = h.issuer_url();
    let (access, akid) = verify(&set, &iss, &r.access_token, None);
    let (id, ikid) = verify(&set, &iss, &r.id_token, Some(&app.client_id));
    assert_eq!(akid, h.access_key().kid());
    assert_eq!(ikid, h.id_key().kid());
    assert_ne!(akid, ikid);

    let user = &h.config().users[0];
    let sub = user.sub.to_string();
    assert_eq!(access["sub"], sub.as_str());
    assert_eq!(access["username"], issuer::DEMO_USERNAME);
    assert_eq!(access["client_id"], app.client_id.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["scope"], issuer::USER_ADMIN_SCOPE);
    assert_eq!(access["cognito:groups"], json!([issuer::DEMO_GROUP]));
    assert!(access.get("aud").is_none());
    assert!(access.get("email").is_none());

    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["aud"], app.client_id.as_str());
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["cognito:username"], issuer::DEMO_USERNAME);
    assert_eq!(id["email"], issuer::DEMO_EMAIL);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["cognito:groups"], json!([issuer::DEMO_GROUP]));
    assert!(id.get("client_id").is_none());
    assert!(id.get("username").is_none());
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert_eq!(id["event_id"], access["event_id"]);
    assert_ne!(id["jti"], access["jti"]);

    // The access token does not verify with the id-token key.
    let wrong = DecodingKey::from_jwk(set.find(&ikid).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    assert!(decode::<Value>(&r.access_token, &wrong, &v).is_err());

    // A confidential client with the right SECRET_HASH.
    let sec = client(&h, "secret-app");
    let r2 = sign_in(&h, sec).await;
    let (id2, _) = verify(&set, &iss, &r2.id_token, Some(&sec.client_id));
    assert_eq!(id2["aud"], sec.client_id.as_str());
}

#[tokio::test]
async fn user_without_groups_has_no_groups_claim() {
    let mut cfg = issuer::demo_config();
    cfg.users[0].groups.clear();
    let h = issuer::start(loopback(), cfg).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let r = sign_in(&h, app).await;
    let set = jwks(&h).await;
    let (access, _) = verify(&set, &h.issuer_url(), &r.access_token, None);
    let (id, _) = verify(&set, &h.issuer_url(), &r.id_token, Some(&app.client_id));
    assert!(access.get("cognito:groups").is_none());
    assert!(id.get("cognito:groups").is_none());
}

fn oauth_error(e: TokenError) -> (u16, String) {
    match e {
        TokenError::OAuth { status, error, .. } => (status, error),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
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
        ("grant_type=authorization_code&code=x",      form, basic,     "unsupported_grant_type"),
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

fn cognito_error(e: TokenError) -> (String, String) {
    match e {
        TokenError::Cognito {
            status,
            kind,
            message,
            ..
        } => {
            assert_eq!(status, 400);
            (kind, message)
        }
        other => panic!("expected a Cognito error, got {other:?}"),
    }
}

#[tokio::test]
async fn password_errors_are_cognitos() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = &*client(&h, issuer::DEMO_PASSWORD_CLIENT).client_id;
    let sec = &*client(&h, "secret-app").client_id;
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let (user, pass) = (issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD);
    let (na, rnf, ipe) = (
        "NotAuthorizedException",
        "ResourceNotFoundException",
        "InvalidParameterException",
    );
    let wrong = "Incorrect username or password.";
    let no_hash =
        format!("Client {sec} is configured with secret but SECRET_HASH was not received");
    let bad_hash = format!("Unable to verify secret hash for client {sec}");
    let no_client = "User pool client nosuchclient does not exist.";
    let not_enabled = "USER_PASSWORD_AUTH flow not enabled for this client";
    let no_user = "Missing required parameter USERNAME";
    let (m2m_id, m2m_secret) = (&*m2m.client_id, m2m.client_secret.as_deref());

    // (what, client id, username, password, client secret, __type, message)
    #[rustfmt::skip]
    let cases = [
        ("wrong password",       app,            user,     "wrong", None,                   na,  wrong),
        // Unknown users are indistinguishable from wrong passwords.
        ("unknown user",         app,            "nobody", "x",     None,                   na,  wrong),
        ("no SECRET_HASH",       sec,            user,     pass,    None,                   na,  &no_hash),
        ("wrong SECRET_HASH",    sec,            user,     pass,    Some("not-the-secret"), na,  &bad_hash),
        // The secret hash is checked before the password.
        ("hash before password", sec,            user,     "wrong", Some("nope"),           na,  &bad_hash),
        ("unknown client",       "nosuchclient", user,     "x",     None,                   rnf, no_client),
        // The m2m client is not enabled for USER_PASSWORD_AUTH.
        ("m2m client",           m2m_id,         user,     pass,    m2m_secret,             ipe, not_enabled),
        ("no username",          app,            "",       "x",     None,                   ipe, no_user),
    ];
    for (what, id, user, pass, secret, kind, message) in cases {
        let e = token::password(&h.idp_url(), id, user, pass, secret)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), format!("{kind}: {message}"), "{what}");
        assert_eq!(cognito_error(e), (kind.into(), message.into()), "{what}");
    }
}

/// What the IdP API answer's `message` must be.
enum Message {
    Any,
    Contains(&'static str),
    Is(&'static str),
}

#[tokio::test]
async fn idp_api_rejects_malformed_requests_with_json_errors() {
    use Message::{Any, Contains, Is};
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app_id = client(&h, issuer::DEMO_PASSWORD_CLIENT).client_id.clone();
    let send = |target: &'static str, ctype: &'static str, body: String| {
        let url = h.idp_url();
        async move {
            let r = raw_client()
                .post(url)
                .header("content-type", ctype)
                .header("x-amz-target", target)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!(r.headers().contains_key("x-amzn-requestid"));
            let v: Value = r.json().await.unwrap();
            (status, v["__type"].as_str().unwrap_or("").to_owned(), v)
        }
    };
    let amz = "application/x-amz-json-1.1";
    let ia = token::INITIATE_AUTH_TARGET;
    let auth = |input: Value| {
        let mut body = json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": app_id});
        body.as_object_mut()
            .unwrap()
            .extend(input.as_object().unwrap().clone());
        body.to_string()
    };
    let (ser, inv) = ("SerializationException", "InvalidParameterException");

    let (sign_up, unknown) = (
        "AWSCognitoIdentityProviderService.SignUp",
        "UnknownOperationException",
    );
    let no_client_id = json!({"AuthFlow": "USER_PASSWORD_AUTH"}).to_string();
    let srp = "USER_SRP_AUTH flow not enabled for this client";
    let no_password = "Missing required parameter PASSWORD";
    let magic_flow = auth(json!({"AuthFlow": "MAGIC"}));
    let srp_flow = auth(json!({"AuthFlow": "USER_SRP_AUTH"}));
    let number_username = auth(json!({"AuthParameters": {"USERNAME": 5}}));
    let user_only = auth(json!({"AuthParameters": {"USERNAME": "demo-user"}}));
    let too_large = format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024));
    // (target, content type, body, status, __type, message)
    #[rustfmt::skip]
    let cases = [
        (sign_up, amz,          "{}".into(),        400, unknown, Any),
        ("",      amz,          "{}".into(),        400, unknown, Any),
        (ia,      amz,          "{not json".into(), 400, ser,     Any),
        (ia,      amz,          "[1,2]".into(),     400, ser,     Any),
        (ia,      "text/plain", "{}".into(),        400, ser,     Any),
        (ia,      amz,          no_client_id,       400, inv,     Contains("'clientId'")),
        (ia,      amz,          magic_flow,         400, inv,     Contains("enum value set")),
        (ia,      amz,          srp_flow,           400, inv,     Is(srp)),
        (ia,      amz,          number_username,    400, ser,     Any),
        (ia,      amz,          user_only,          400, inv,     Is(no_password)),
        // Over the 64 KiB body limit.
        (ia,      amz,          too_large,          413, ser,     Any),
    ];
    for (target, ctype, body, status, kind, message) in cases {
        let what = format!("{target} {ctype} {}", &body[..body.len().min(80)]);
        let (s, t, v) = send(target, ctype, body).await;
        assert_eq!((s, t.as_str()), (status, kind), "{what}");
        let m = v["message"].as_str();
        match message {
            Any => {}
            Contains(part) => assert!(m.unwrap().contains(part), "{what}: {v}"),
            Is(exact) => assert_eq!(m, Some(exact), "{what}"),
        }
    }
    // Still answers a good request.
    let (s, _, v) = send(
        ia,
        amz,
        auth(
            json!({"AuthParameters": {"USERNAME": "demo-user", "PASSWORD": issuer::DEMO_PASSWORD}}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v["AuthenticationResult"]["AccessToken"].is_string());
    assert_eq!(v["ChallengeParameters"], json!({}));

    // Unknown paths and methods: JSON too.
    let r = raw_client()
        .get(format!("{}/nope", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    let r = raw_client().get(h.token_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}

#[tokio::test]
async fn transport_failures_are_named() {
    // A port nobody listens on: bind, note it, drop the listener.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let domain = format!("http://127.0.0.1:{port}");
    let e = token::client_credentials(&domain, "id", "secret", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("cannot reach {domain}/oauth2/token: ")),
        "{shown}"
    );
    assert!(!shown.contains('\n'));
    assert!(shown.contains("Connection refused"), "{shown}");
    let e = token::password(&format!("{domain}/"), "id", "u", "p", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");

    // A listener that never answers (the kernel completes the handshake; nobody
    // accepts): the client's timeout fires.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let client = TokenClient::new(Duration::from_millis(300)).unwrap();
    let e = client
        .client_credentials(&url, "id", "secret", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Timeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("no answer from {url}/oauth2/token within 300ms")
    );
    drop(silent);

    assert!(matches!(
        token::client_credentials("ftp://example.com", "a", "b", None).await,
        Err(TokenError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn unexpected_answers_are_reported() {
    let up = upstream::start(loopback()).await.unwrap();
    // 404 JSON without "__type": not a Cognito error.
    let e = token::password(&format!("{}/nothing-here", up.url()), "id", "u", "p", None)
        .await
        .unwrap_err();
    match &e {
        TokenError::Http { status, body, .. } => {
            assert_eq!(*status, 404);
            assert!(body.contains("not_found"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    // 200 JSON of the wrong shape.
    let e = token::password(&format!("{}/echo", up.url()), "id", "u", "p", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::UnexpectedBody { .. }), "{e:?}");
    assert!(e
        .to_string()
        .contains("expected a JSON object with AuthenticationResult"));
    let e = token::client_credentials(&format!("{}/echo", up.url()), "id", "s", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::UnexpectedBody { .. }), "{e:?}");
    assert!(e.to_string().contains("access_token"));
    up.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let h = issuer::start(loopback(), issuer::demo_config())
        .await
        .unwrap();
    let base = h.base_url();
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT).clone();
    let secret = m2m.client_secret.clone().unwrap();
    token::client_credentials(&base, &m2m.client_id, &secret, None)
        .await
        .unwrap();
    h.shutdown().await;
    let e = token::client_credentials(&base, &m2m.client_id, &secret, None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let mut cfg = issuer::demo_config();
    cfg.clients[0].allowed_scopes.push("nope/x".into());
    let e = issuer::start(loopback(), cfg).await.unwrap_err();
    assert!(format!("{e:#}").contains("nope/x"), "{e:#}");
    let mut cfg = issuer::demo_config();
    cfg.clients[1].client_id = cfg.clients[0].client_id.clone();
    assert!(issuer::start(loopback(), cfg).await.is_err());
    let mut cfg = issuer::demo_config();
    cfg.clients[0].client_secret = None;
    assert!(issuer::start(loopback(), cfg).await.is_err());
}

#[tokio::test]
async fn upstream_serves_forecasts_and_echoes_identity_headers() {
    let up = upstream::start(loopback()).await.unwrap();
    let c = raw_client();
    let r = c
        .get(format!("{}/weatherforecast", up.url()))
        .header("X-Auth-Sub", "abc")
        .header("X-Auth-Groups", "readers,writers")
        .header("Authorization", "Bearer t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["forecasts"].as_array().unwrap().len(), 5);
    assert_eq!(
        v["identity"],
        json!({"x-auth-sub": "abc", "x-auth-groups": "readers,writers"})
    );
    let f = &v["forecasts"][0];
    let date = f["date"].as_str().unwrap();
    assert_eq!(date.len(), 10);
    assert_eq!(&date[4..5], "-");
    assert!(f["temperatureC"].is_i64() && f["temperatureF"].is_i64());

    let me = get_json(format!("{}/me", up.url())).await;
    assert_eq!(me, json!({"identity": {}}));
    let health = get_json(format!("{}/health", up.url())).await;
    assert_eq!(health, json!({"status": "ok"}));

    let r = c.get(format!("{}/nope", up.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "not_found", "path": "/nope"})
    );
    let r = c.post(format!("{}/me", up.url())).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    let echo: Value = c
        .delete(format!("{}/echo/a/b?x=1&y=2", up.url()))
        .header("X-Auth-Sub", "s")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(echo["path"], "/echo/a/b");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["identity"], json!({"x-auth-sub": "s"}));
    assert_eq!(echo["headers"]["x-auth-sub"], "s");
    up.shutdown().await;
}
