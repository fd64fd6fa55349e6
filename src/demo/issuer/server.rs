//! The issuer's server: [`start`] binds it and hands back an
//! [`IssuerHandle`]; [`handle`] routes each request to its endpoint and
//! serves the discovery document and the JWKS itself.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::config::{IssuerConfig, STANDARD_OAUTH_SCOPES};
use super::idp::idp_api;
use super::login;
use super::revoke::revoke_endpoint;
use super::state::State;
use super::token_endpoint::token_endpoint;
use crate::demo::keys::{self, SigningKey};
use crate::demo::serve::{self, Resp};

/// A running issuer. Dropping it stops the server too.
#[derive(Debug)]
pub struct IssuerHandle {
    addr: SocketAddr,
    state: Arc<State>,
    server: serve::Server,
}

impl IssuerHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the "hosted domain" (`/oauth2/token`,
    /// `/oauth2/revoke`), what [`crate::token::client_credentials`] and
    /// [`crate::token::revoke`] take. Same as [`IssuerHandle::domain`].
    pub fn base_url(&self) -> String {
        self.state.base.clone()
    }

    /// `http://127.0.0.1:<port>`: the hosted domain, what
    /// `https://<domain>.auth.<region>.amazoncognito.com` is.
    pub fn domain(&self) -> String {
        self.state.base.clone()
    }

    /// The `iss` of every token: the pool's Cognito issuer of the configured
    /// [`crate::config::IssuerForm`], e.g.
    /// `https://cognito-idp.local-1.amazonaws.com/local-1_DemoPool`. Nothing is
    /// served there: the keys are at [`IssuerHandle::jwks_url`].
    pub fn issuer_url(&self) -> String {
        self.state.issuer.clone()
    }

    /// `http://127.0.0.1:<port>/<pool_id>/.well-known/jwks.json`, on loopback
    /// (a sidecar must be given it as `jwks_url`).
    pub fn jwks_url(&self) -> String {
        self.state.jwks_url()
    }

    /// `http://127.0.0.1:<port>/<pool_id>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        self.state.discovery_url()
    }

    /// `http://127.0.0.1:<port>/oauth2/token`.
    pub fn token_url(&self) -> String {
        self.state.token_url()
    }

    /// `http://127.0.0.1:<port>/oauth2/authorize`: managed login's start
    /// (`?response_type=code&client_id=..&redirect_uri=..&state=..&scope=..&code_challenge=..&code_challenge_method=S256`).
    pub fn authorize_url(&self) -> String {
        self.state.authorize_url()
    }

    /// `http://127.0.0.1:<port>/login`: where the sign-in form posts.
    pub fn login_url(&self) -> String {
        format!("{}/login", self.state.base)
    }

    /// `http://127.0.0.1:<port>/logout` (`?client_id=..&logout_uri=..`).
    pub fn logout_url(&self) -> String {
        self.state.logout_url()
    }

    /// `http://127.0.0.1:<port>/oauth2/revoke`.
    pub fn revoke_url(&self) -> String {
        self.state.revoke_url()
    }

    /// `http://127.0.0.1:<port>/`: the Cognito IdP API endpoint (`InitiateAuth`,
    /// `GetUser`, `GlobalSignOut`, `RevokeToken`), what
    /// `https://cognito-idp.<region>.amazonaws.com/` is.
    pub fn idp_endpoint(&self) -> String {
        format!("{}/", self.state.base)
    }

    /// Same as [`IssuerHandle::idp_endpoint`].
    pub fn idp_url(&self) -> String {
        self.idp_endpoint()
    }

    /// The pool configuration (client ids, secrets, users).
    pub fn config(&self) -> &IssuerConfig {
        &self.state.cfg
    }

    /// The key access tokens are signed with (tests may mint their own).
    pub fn access_key(&self) -> &SigningKey {
        &self.state.access_key
    }

    /// The key id tokens are signed with.
    pub fn id_key(&self) -> &SigningKey {
        &self.state.id_key
    }

    /// The JWKS served at [`IssuerHandle::jwks_url`].
    pub fn jwks(&self) -> Value {
        self.state.jwks.clone()
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}

/// Validates `cfg`, generates the two signing keys, binds `addr` (port 0
/// allowed) and serves until [`IssuerHandle::shutdown`] or drop.
pub async fn start(addr: SocketAddr, cfg: IssuerConfig) -> anyhow::Result<IssuerHandle> {
    cfg.validate().context("invalid issuer configuration")?;
    let access_key = SigningKey::generate(keys::random_kid())?;
    let id_key = SigningKey::generate(keys::random_kid())?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the demo issuer to {addr}"))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{}", serve::url_authority(addr));
    let state = Arc::new(State::new(cfg, base, access_key, id_key));
    let served = state.clone();
    let server = serve::spawn(listener, move |req, _peer| {
        let state = served.clone();
        async move { handle(&state, req).await }
    });
    Ok(IssuerHandle {
        addr,
        state,
        server,
    })
}

/// The router: each endpoint with the methods it takes; 405 (with `Allow`)
/// for another method, 404 for any other path.
async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let well_known = path.strip_prefix(&format!("/{}/.well-known/", state.cfg.pool_id));
    let post = req.method() == Method::POST;
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match (path.as_str(), well_known) {
        ("/oauth2/token", _) if post => token_endpoint(state, req).await,
        ("/oauth2/revoke", _) if post => revoke_endpoint(state, req).await,
        ("/", _) if post => idp_api(state, req).await,
        ("/oauth2/token" | "/oauth2/revoke" | "/", _) => method_not_allowed("POST"),
        ("/oauth2/authorize", _) if get => login::authorize(state, &req),
        ("/login", _) if get => login::authorize(state, &req),
        ("/login", _) if post => login::login(state, req).await,
        ("/logout", _) if get => login::logout(state, &req),
        ("/oauth2/authorize" | "/logout", _) => method_not_allowed("GET, HEAD"),
        ("/login", _) => method_not_allowed("GET, HEAD, POST"),
        (_, Some("jwks.json")) if get => serve::json(StatusCode::OK, &state.jwks),
        (_, Some("openid-configuration")) if get => serve::json(StatusCode::OK, &discovery(state)),
        (_, Some("jwks.json" | "openid-configuration")) => method_not_allowed("GET, HEAD"),
        _ => serve::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = serve::json(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method_not_allowed"}),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The OpenID discovery document: the `iss`, and where (on loopback) the keys,
/// managed login and the token, revocation and sign-out endpoints are.
fn discovery(state: &State) -> Value {
    let mut scopes: Vec<String> = STANDARD_OAUTH_SCOPES
        .iter()
        .map(|s| s.to_string())
        .collect();
    scopes.extend(state.cfg.custom_scopes());
    json!({
        "issuer": state.issuer,
        "jwks_uri": state.jwks_url(),
        "authorization_endpoint": state.authorize_url(),
        "token_endpoint": state.token_url(),
        "revocation_endpoint": state.revoke_url(),
        "end_session_endpoint": state.logout_url(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes,
    })
}
