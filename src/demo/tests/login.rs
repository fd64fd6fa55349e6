//! Managed login: `/oauth2/authorize`, `/login` and `/logout` as a browser
//! drives them (without one: the form's hidden fields are read from the
//! page), and the `authorization_code` and `refresh_token` grants of
//! `/oauth2/token`: PKCE, replay, rotation, revocation.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{client, jwks, loopback, test_config, verify, CALLBACK, LOGOUT, SECRET_CALLBACK};
use crate::demo::issuer::{self, DemoClient, IssuerConfig, IssuerHandle};
use crate::token::{self, TokenClient, TokenError, DEFAULT_TIMEOUT, GET_USER_TARGET};

const ALL_SCOPES: &str = "openid email profile aws.cognito.signin.user.admin dotnet-demo/dotnet";
const FORM: &str = "application/x-www-form-urlencoded";

/// A client that does not follow redirects, as a test of them needs.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(token::tls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let bytes: [u8; 48] = std::array::from_fn(|_| rand::random());
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

fn query(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A page: status, `Location` if any, body.
struct Page {
    status: u16,
    location: Option<String>,
    content_type: String,
    body: String,
}

async fn page(r: reqwest::Response) -> Page {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let location = header("location");
    let content_type = header("content-type").unwrap_or_default();
    Page {
        status: r.status().as_u16(),
        location,
        content_type,
        body: r.text().await.unwrap(),
    }
}

async fn get(url: &str) -> Page {
    page(browser().get(url).send().await.unwrap()).await
}

async fn post_form(url: &str, body: String) -> Page {
    let r = browser()
        .post(url)
        .header("content-type", FORM)
        .body(body)
        .send()
        .await
        .unwrap();
    page(r).await
}

/// `GET /oauth2/authorize?<params>`.
async fn authorize(h: &IssuerHandle, params: &[(&str, &str)]) -> Page {
    get(&format!("{}?{}", h.authorize_url(), query(params))).await
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the sign-in form, as a browser would send them.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once('"').unwrap();
            let rest = rest.strip_prefix(" value=\"").unwrap();
            let (value, _) = rest.split_once('"').unwrap();
            (unescape(name), unescape(value))
        })
        .collect()
}

/// Submits the sign-in form of `form_page` with these credentials.
async fn submit(h: &IssuerHandle, form_page: &Page, username: &str, password: &str) -> Page {
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in hidden_fields(&form_page.body) {
        s.append_pair(&k, &v);
    }
    s.append_pair("username", username);
    s.append_pair("password", password);
    post_form(&h.login_url(), s.finish()).await
}

/// The query parameters of a redirect, and the URL before the query.
fn redirect_params(location: &str) -> (String, Vec<(String, String)>) {
    let url = reqwest::Url::parse(location).unwrap();
    let pairs = url.query_pairs().into_owned().collect();
    let mut base = url.clone();
    base.set_query(None);
    (base.to_string(), pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Signs the demo user in through managed login; the code the callback got.
async fn code_for(h: &IssuerHandle, params: &[(&str, &str)]) -> String {
    let form = authorize(h, params).await;
    let done = submit(h, &form, issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let (_, pairs) = redirect_params(done.location.as_deref().unwrap());
    param(&pairs, "code").unwrap().to_owned()
}

/// POSTs a token request for `client` (Basic when it has a secret, else
/// `client_id` in the form); the status and the JSON answer.
async fn token_request(
    h: &IssuerHandle,
    client: &DemoClient,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut rb = browser().post(h.token_url()).header("content-type", FORM);
    let mut params = params.to_vec();
    match &client.client_secret {
        Some(secret) => {
            let basic = STANDARD.encode(format!("{}:{secret}", client.client_id));
            rb = rb.header("authorization", format!("Basic {basic}"));
        }
        None => params.push(("client_id", &client.client_id)),
    }
    let r = rb.body(query(&params)).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn redeem(
    h: &IssuerHandle,
    client: &DemoClient,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut p = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        p.push(("code_verifier", v));
    }
    token_request(h, client, &p).await
}

async fn refresh(h: &IssuerHandle, client: &DemoClient, refresh_token: &str) -> (u16, Value) {
    let p = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_request(h, client, &p).await
}

fn invalid_grant() -> (u16, Value) {
    (400, json!({"error": "invalid_grant"}))
}

async fn get_user(h: &IssuerHandle, access_token: &str) -> Result<Value, TokenError> {
    TokenClient::new(DEFAULT_TIMEOUT)
        .unwrap()
        .idp_request(
            &h.idp_endpoint(),
            GET_USER_TARGET,
            &json!({ "AccessToken": access_token }),
        )
        .await
}

async fn assert_revoked(h: &IssuerHandle, access_token: &str) {
    match get_user(h, access_token).await {
        Err(TokenError::Cognito { message, .. }) => {
            assert_eq!(message, "Access Token has been revoked")
        }
        other => panic!("expected revoked, got {other:?}"),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn public_client_signs_in_with_pkce_and_gets_cognito_shaped_tokens() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let (verifier, challenge) = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", &app.client_id),
        ("redirect_uri", CALLBACK),
        ("state", "st-1"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("scope", ALL_SCOPES),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    let form = authorize(&h, &params).await;
    assert_eq!(form.status, 200);
    assert_eq!(form.content_type, "text/html; charset=utf-8");
    assert!(form.body.contains("<title>Sign in</title>"));
    assert!(form
        .body
        .contains("<form id=\"signin-form\" method=\"post\" action=\"/login\">"));
    for id in [
        "id=\"username\" name=\"username\"",
        "id=\"password\" name=\"password\"",
        "id=\"signin\"",
    ] {
        assert!(form.body.contains(id), "{id}");
    }
    // No external resources.
    assert!(!form.body.contains("src=") && !form.body.contains("<link"));
    // GET /login shows the same form.
    let same = get(&format!("{}?{}", h.login_url(), query(&params))).await;
    assert_eq!(same.body, form.body);

    let done = submit(&h, &form, issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD).await;
    assert_eq!(done.status, 302);
    let (base, pairs) = redirect_params(done.location.as_deref().unwrap());
    assert_eq!(base, CALLBACK);
    assert_eq!(param(&pairs, "state"), Some("st-1"));
    let code = param(&pairs, "code").unwrap();

    let (status, body) = redeem(&h, app, code, CALLBACK, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let set = jwks(&h).await;
    let iss = h.issuer_url();
    let (access, kid) = verify(&set, &iss, s(&body["access_token"]), None);
    assert_eq!(kid, h.access_key().kid());
    let user = &h.config().users[0];
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], app.client_id.as_str());
    assert_eq!(access["scope"], ALL_SCOPES);
    assert_eq!(access["username"], issuer::DEMO_USERNAME);
    assert_eq!(access["sub"], user.sub.to_string().as_str());
    assert_eq!(access["cognito:groups"], json!([issuer::DEMO_GROUP]));
    assert_eq!(access["version"], 2);
    assert_eq!(access["iss"], iss.as_str());
    for claim in ["origin_jti", "jti", "event_id"] {
        assert_eq!(s(&access[claim]).len(), 36, "{claim}");
    }
    let iat = access["iat"].as_u64().unwrap();
    assert_eq!(access["exp"].as_u64().unwrap() - iat, 3600);
    assert!(access["auth_time"].as_u64().unwrap() <= iat);
    assert!(access.get("aud").is_none());

    let (id, kid) = verify(&set, &iss, s(&body["id_token"]), Some(&app.client_id));
    assert_eq!(kid, h.id_key().kid());
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["cognito:username"], issuer::DEMO_USERNAME);
    assert_eq!(id["email"], issuer::DEMO_EMAIL);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    let at = digest::digest(&digest::SHA256, s(&body["access_token"]).as_bytes());
    assert_eq!(
        id["at_hash"],
        URL_SAFE_NO_PAD.encode(&at.as_ref()[..16]).as_str()
    );
    // The admin scope lets the token call GetUser.
    assert_eq!(
        get_user(&h, s(&body["access_token"])).await.unwrap()["Username"],
        issuer::DEMO_USERNAME
    );

    // Refresh without rotation: the same sign-in, no new refresh token.
    let rt = s(&body["refresh_token"]).to_owned();
    for _ in 0..2 {
        let (status, r) = refresh(&h, app, &rt).await;
        assert_eq!(status, 200, "{r}");
        assert!(r.get("refresh_token").is_none());
        let (a2, _) = verify(&set, &iss, s(&r["access_token"]), None);
        assert_eq!(a2["origin_jti"], access["origin_jti"]);
        assert_eq!(a2["scope"], ALL_SCOPES);
        assert_eq!(a2["auth_time"], access["auth_time"]);
        assert_ne!(a2["jti"], access["jti"]);
        let (i2, _) = verify(&set, &iss, s(&r["id_token"]), Some(&app.client_id));
        assert_eq!(i2["origin_jti"], access["origin_jti"]);
    }

    // Discovery names the endpoints.
    let d = super::get_json(h.discovery_url()).await;
    assert_eq!(d["authorization_endpoint"], h.authorize_url().as_str());
    assert_eq!(d["token_endpoint"], h.token_url().as_str());
    assert_eq!(d["end_session_endpoint"], h.logout_url().as_str());
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("authorization_code")));
}

#[tokio::test]
async fn confidential_client_signs_in_with_its_secret() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let sec = client(&h, "secret-app");
    let secret = sec.client_secret.clone().unwrap();
    // No scope asked: every allowed scope; no PKCE (allowed, as by Cognito).
    let base = [
        ("response_type", "code"),
        ("client_id", sec.client_id.as_str()),
        ("redirect_uri", SECRET_CALLBACK),
    ];
    let form = authorize(&h, &base).await;
    let done = submit(&h, &form, issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD).await;
    let location = done.location.unwrap();
    // The callback's own query is kept; no state was given, none comes back.
    assert!(
        location.starts_with(&format!("{SECRET_CALLBACK}&code=")),
        "{location}"
    );
    let (_, pairs) = redirect_params(&location);
    assert_eq!(param(&pairs, "state"), None);
    let code = param(&pairs, "code").unwrap();

    // Without the secret: invalid_client; the code is still good after.
    let public = DemoClient {
        client_secret: None,
        ..sec.clone()
    };
    assert_eq!(
        redeem(&h, &public, code, SECRET_CALLBACK, None).await,
        (400, json!({"error": "invalid_client"}))
    );
    let (status, body) = redeem(&h, sec, code, SECRET_CALLBACK, None).await;
    assert_eq!(status, 200, "{body}");
    let set = jwks(&h).await;
    let (access, _) = verify(&set, &h.issuer_url(), s(&body["access_token"]), None);
    assert_eq!(
        access["scope"],
        format!("openid {}", issuer::DEMO_SCOPE).as_str()
    );
    assert_eq!(access["client_id"], sec.client_id.as_str());
    let (id, _) = verify(
        &set,
        &h.issuer_url(),
        s(&body["id_token"]),
        Some(&sec.client_id),
    );
    assert!(id.get("nonce").is_none());

    // Refresh with client_secret_post.
    let p = query(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&body["refresh_token"])),
        ("client_id", &sec.client_id),
        ("client_secret", &secret),
    ]);
    let r = post_form(&h.token_url(), p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another client cannot use that refresh token.
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    assert_eq!(
        refresh(&h, app, s(&body["refresh_token"])).await,
        invalid_grant()
    );

    // Only the custom scope: an access token, no id token (no openid).
    let mut only = base.to_vec();
    only.push(("scope", issuer::DEMO_SCOPE));
    let code = code_for(&h, &only).await;
    let (status, body) = redeem(&h, sec, &code, SECRET_CALLBACK, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("id_token").is_none());
    let (access, _) = verify(&set, &h.issuer_url(), s(&body["access_token"]), None);
    assert_eq!(access["scope"], issuer::DEMO_SCOPE);
}

/// (what, extra parameters, the `error` expected).
type BackCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn bad_authorization_requests_get_a_page_or_go_back_with_an_error() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let id = app.client_id.as_str();
    let (_, challenge) = pkce();
    // Never redirected: (what, params).
    #[rustfmt::skip]
    let pages: [(&str, Vec<(&str, &str)>); 6] = [
        ("no client",      vec![("response_type", "code"), ("redirect_uri", CALLBACK)]),
        ("unknown client", vec![("response_type", "code"), ("client_id", "nosuch"), ("redirect_uri", CALLBACK)]),
        ("other uri",      vec![("response_type", "code"), ("client_id", id), ("redirect_uri", "https://evil.example/cb")]),
        ("uri prefix",     vec![("response_type", "code"), ("client_id", id), ("redirect_uri", "http://localhost:5000/signin-oidc/x")]),
        ("no uri",         vec![("response_type", "code"), ("client_id", id)]),
        ("token",          vec![("response_type", "token"), ("client_id", id), ("redirect_uri", CALLBACK)]),
    ];
    for (what, params) in pages {
        let p = authorize(&h, &params).await;
        assert_eq!(p.status, 400, "{what}");
        assert_eq!(p.location, None, "{what}");
        assert!(p.body.contains("id=\"error\""), "{what}: {}", p.body);
    }
    let twice = get(&format!(
        "{}?client_id={id}&client_id={id}&response_type=code&redirect_uri={CALLBACK}",
        h.authorize_url()
    ))
    .await;
    assert_eq!((twice.status, twice.location), (400, None));

    // Back to the callback with an error: (what, extra params, error).
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    #[rustfmt::skip]
    let back: [BackCase; 5] = [
        ("bad scope",    vec![("scope", "openid phone")],                                        "invalid_scope"),
        ("plain",        vec![("code_challenge", &challenge), ("code_challenge_method", "plain")], "invalid_request"),
        ("no method",    vec![("code_challenge", &challenge)],                                   "invalid_request"),
        ("short",        vec![("code_challenge", "abc"), ("code_challenge_method", "S256")],     "invalid_request"),
        ("method alone", vec![("code_challenge_method", "S256")],                                "invalid_request"),
    ];
    for (what, extra, error) in back {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", CALLBACK),
            ("state", "s t"),
        ];
        params.extend(extra);
        let p = authorize(&h, &params).await;
        assert_eq!(p.status, 302, "{what}");
        let (base, pairs) = redirect_params(p.location.as_deref().unwrap());
        assert_eq!(base, CALLBACK, "{what}");
        assert_eq!(param(&pairs, "error"), Some(error), "{what}");
        assert_eq!(param(&pairs, "state"), Some("s t"), "{what}");
        assert_eq!(param(&pairs, "code"), None, "{what}");
    }
    // A client without the code flow (and no callback URL): a page.
    let p = authorize(
        &h,
        &[
            ("response_type", "code"),
            ("client_id", &m2m.client_id),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!((p.status, p.location), (400, None));

    // POST /login re-checks the request: a tampered redirect_uri is a page.
    let body = query(&[
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", "https://evil.example/cb"),
        ("username", issuer::DEMO_USERNAME),
        ("password", issuer::DEMO_PASSWORD),
    ]);
    let p = post_form(&h.login_url(), body).await;
    assert_eq!((p.status, p.location), (400, None));
    // Not a form, too large, wrong method.
    let r = browser()
        .post(h.login_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = format!("username={}", "a".repeat(70 * 1024));
    assert_eq!(post_form(&h.login_url(), big).await.status, 413);
    let r = browser().post(h.authorize_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = browser().delete(h.logout_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn wrong_password_shows_the_form_again_and_reflected_values_are_escaped() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let evil = "\"><script>alert(1)</script>&'";
    let params = [
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("state", evil),
        ("nonce", evil),
    ];
    let form = authorize(&h, &params).await;
    assert_eq!(form.status, 200);
    assert!(!form.body.contains("<script>"), "{}", form.body);
    assert!(form
        .body
        .contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#x27;"));

    for (user, password) in [
        (issuer::DEMO_USERNAME, "wrong"),
        ("nosuchuser", issuer::DEMO_PASSWORD),
        (evil, ""),
    ] {
        let again = submit(&h, &form, user, password).await;
        assert_eq!(again.status, 200, "{user}");
        assert_eq!(again.location, None);
        assert!(again.body.contains("<title>Sign in</title>"));
        assert!(again.body.contains("Incorrect username or password."));
        assert!(!again.body.contains("<script>"));
        // Still carrying the request.
        assert_eq!(hidden_fields(&again.body), hidden_fields(&form.body));
    }

    // The right password: the state comes back exactly, URL-encoded.
    let done = submit(&h, &form, issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD).await;
    let location = done.location.unwrap();
    assert!(
        !location.contains('<') && !location.contains('"'),
        "{location}"
    );
    let (_, pairs) = redirect_params(&location);
    assert_eq!(param(&pairs, "state"), Some(evil));
    let (status, body) = redeem(&h, app, param(&pairs, "code").unwrap(), CALLBACK, None).await;
    assert_eq!(status, 200);
    let (id, _) = verify(
        &jwks(&h).await,
        &h.issuer_url(),
        s(&body["id_token"]),
        Some(&app.client_id),
    );
    assert_eq!(id["nonce"], evil);
}

/// The authorize parameters of the demo password client with this challenge.
fn pkce_params<'a>(app: &'a DemoClient, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid aws.cognito.signin.user.admin"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

#[tokio::test]
async fn a_code_is_redeemed_once_by_its_client_with_its_verifier() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let sec = client(&h, "secret-app");
    let (verifier, challenge) = pkce();
    let code = code_for(&h, &pkce_params(app, &challenge)).await;
    let (other_verifier, _) = pkce();

    // (what, client, redirect_uri, verifier)
    #[rustfmt::skip]
    let wrong: [(&str, &DemoClient, &str, Option<&str>); 6] = [
        ("other verifier",   app, CALLBACK,        Some(&other_verifier)),
        ("plain verifier",   app, CALLBACK,        Some(&challenge)),
        ("no verifier",      app, CALLBACK,        None),
        ("short verifier",   app, CALLBACK,        Some("abc")),
        ("other uri",        app, LOGOUT,          Some(&verifier)),
        ("other client",     sec, SECRET_CALLBACK, Some(&verifier)),
    ];
    for (what, c, uri, v) in wrong {
        assert_eq!(
            redeem(&h, c, &code, uri, v).await,
            invalid_grant(),
            "{what}"
        );
    }
    assert_eq!(
        redeem(&h, app, "nosuchcode", CALLBACK, Some(&verifier)).await,
        invalid_grant()
    );
    let missing = [
        ("grant_type", "authorization_code"),
        ("redirect_uri", CALLBACK),
    ];
    assert_eq!(
        token_request(&h, app, &missing).await,
        (400, json!({"error": "invalid_request"}))
    );

    // The right request still works: wrong guesses do not burn the code.
    let (status, first) = redeem(&h, app, &code, CALLBACK, Some(&verifier)).await;
    assert_eq!(status, 200, "{first}");
    let access = s(&first["access_token"]);
    get_user(&h, access).await.unwrap();

    // Replayed: refused, and the first sign-in's tokens are revoked.
    assert_eq!(
        redeem(&h, app, &code, CALLBACK, Some(&verifier)).await,
        invalid_grant()
    );
    assert_revoked(&h, access).await;
    assert_eq!(
        refresh(&h, app, s(&first["refresh_token"])).await,
        invalid_grant()
    );
}

/// The demo pool with rotation on and this grace period.
fn rotating(grace: Duration) -> IssuerConfig {
    IssuerConfig {
        refresh_rotation: true,
        refresh_grace: grace,
        ..test_config()
    }
}

/// Signs in with PKCE; the token answer.
async fn signed_in(h: &IssuerHandle, app: &DemoClient) -> Value {
    let (verifier, challenge) = pkce();
    let code = code_for(h, &pkce_params(app, &challenge)).await;
    let (status, body) = redeem(h, app, &code, CALLBACK, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn rotation_hands_out_a_new_refresh_token_and_the_old_one_lasts_the_grace_period() {
    // The default grace period (60 s): the old token still works right after.
    let h = issuer::start(loopback(), rotating(Duration::from_secs(60)))
        .await
        .unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let first = signed_in(&h, app).await;
    let old = s(&first["refresh_token"]);
    let (status, r1) = refresh(&h, app, old).await;
    assert_eq!(status, 200, "{r1}");
    let new = s(&r1["refresh_token"]);
    assert_ne!(new, old);
    let set = jwks(&h).await;
    let origin = |body: &Value| {
        verify(&set, &h.issuer_url(), s(&body["access_token"]), None).0["origin_jti"].clone()
    };
    assert_eq!(origin(&r1), origin(&first));
    let (status, retry) = refresh(&h, app, old).await;
    assert_eq!(status, 200, "within the grace period: {retry}");
    let (status, r2) = refresh(&h, app, new).await;
    assert_eq!(status, 200);
    assert_eq!(origin(&r2), origin(&first));

    // Revoking the new one revokes the sign-in: every refresh token of it fails.
    let revoke = query(&[("token", new), ("client_id", &app.client_id)]);
    assert_eq!(post_form(&h.revoke_url(), revoke).await.status, 200);
    for t in [old, new, s(&r2["refresh_token"])] {
        assert_eq!(refresh(&h, app, t).await, invalid_grant());
    }

    // No grace period: the old token is refused at once; the new one works.
    let h = issuer::start(loopback(), rotating(Duration::ZERO))
        .await
        .unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let first = signed_in(&h, app).await;
    let old = s(&first["refresh_token"]);
    let (status, r1) = refresh(&h, app, old).await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&h, app, old).await, invalid_grant());
    let (status, r2) = refresh(&h, app, s(&r1["refresh_token"])).await;
    assert_eq!(status, 200);
    assert_eq!(
        refresh(&h, app, s(&r1["refresh_token"])).await,
        invalid_grant()
    );

    // GlobalSignOut ends it too.
    let access = s(&r2["access_token"]);
    TokenClient::new(DEFAULT_TIMEOUT)
        .unwrap()
        .idp_request(
            &h.idp_endpoint(),
            token::GLOBAL_SIGN_OUT_TARGET,
            &json!({ "AccessToken": access }),
        )
        .await
        .unwrap();
    assert_eq!(
        refresh(&h, app, s(&r2["refresh_token"])).await,
        invalid_grant()
    );
    // A refresh token from InitiateAuth refreshes on the token endpoint too.
    let api = super::sign_in(&h, app).await;
    let (status, r) = refresh(&h, app, api.refresh_token.as_deref().unwrap()).await;
    assert_eq!(status, 200, "{r}");
}

#[tokio::test]
async fn logout_redirects_only_to_registered_sign_out_urls() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let id = app.client_id.as_str();
    let logout = |p: &[(&str, &str)]| format!("{}?{}", h.logout_url(), query(p));

    let p = get(&logout(&[("client_id", id), ("logout_uri", LOGOUT)])).await;
    assert_eq!((p.status, p.location.as_deref()), (302, Some(LOGOUT)));
    #[rustfmt::skip]
    let refused: [Vec<(&str, &str)>; 5] = [
        vec![("client_id", id), ("logout_uri", "https://evil.example/")],
        vec![("client_id", id), ("logout_uri", CALLBACK)],
        vec![("client_id", "nosuch"), ("logout_uri", LOGOUT)],
        vec![("client_id", id)],
        vec![("client_id", id), ("redirect_uri", "https://evil.example/"), ("response_type", "code")],
    ];
    for params in refused {
        let p = get(&logout(&params)).await;
        assert_eq!((p.status, p.location), (400, None), "{params:?}");
        assert!(p.body.contains("id=\"error\""));
    }
    // Back to sign-in.
    let params = [
        ("client_id", id),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("state", "x"),
    ];
    let p = get(&logout(&params)).await;
    assert_eq!(p.status, 302);
    let location = p.location.unwrap();
    assert_eq!(location, format!("/oauth2/authorize?{}", query(&params)));
    let form = get(&format!("{}{location}", h.domain())).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<title>Sign in</title>"));
}
