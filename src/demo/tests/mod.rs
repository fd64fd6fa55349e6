//! End-to-end tests of the demo issuer and upstream through `crate::token`,
//! all on 127.0.0.1, by area; the helpers here are shared by all of them.

mod forms;
mod idp;
mod lifecycle;
mod login;
mod oauth;
mod revocation;
mod token_client;
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::issuer::{self, DemoClient, IssuerConfig, IssuerHandle};
use crate::token::{self, InitiateAuthResult, TokenError};

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

/// The callback URL of the demo password client in [`test_config`].
const CALLBACK: &str = "http://localhost:5000/signin-oidc";
/// Its sign-out URL.
const LOGOUT: &str = "http://localhost:5000/signed-out";
/// The callback URL of `secret-app`.
const SECRET_CALLBACK: &str = "https://app.example.com/callback?from=cognito";

/// The demo pool, its password client with managed login back to
/// [`CALLBACK`], plus a confidential client `secret-app` (not allowed
/// client_credentials) allowed USER_PASSWORD_AUTH and the code flow back to
/// [`SECRET_CALLBACK`] with scopes `openid` and the custom scope.
fn test_config() -> IssuerConfig {
    let mut cfg = issuer::demo_config_for_login(CALLBACK, LOGOUT);
    cfg.clients.push(DemoClient {
        name: "secret-app".into(),
        client_id: issuer::random_client_id(),
        client_secret: Some(issuer::random_client_secret()),
        client_credentials: false,
        allowed_scopes: vec![],
        user_password_auth: true,
        authorization_code: true,
        callback_urls: vec![SECRET_CALLBACK.into()],
        logout_urls: vec![],
        allowed_oauth_scopes: vec!["openid".into(), issuer::DEMO_SCOPE.into()],
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

/// `(status, error)` of an OAuth error answer.
fn oauth_error(e: TokenError) -> (u16, String) {
    match e {
        TokenError::OAuth { status, error, .. } => (status, error),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}
