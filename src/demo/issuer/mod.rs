//! A local, in-memory, Cognito-compatible token issuer on loopback.
//!
//! It reproduces the two flows of the Cognito tutorial closely enough for the
//! sidecar, the `token` subcommands and the AWS SDKs to talk to it:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /oauth2/token` (form, `grant_type=client_credentials`, Basic or form client auth) | `{"access_token","expires_in","token_type":"Bearer"}`, or 400 `{"error":"invalid_client" \| "invalid_request" \| "unsupported_grant_type" \| "unauthorized_client" \| "invalid_scope"}` |
//! | `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth` (`USER_PASSWORD_AUTH`) | `{"AuthenticationResult":{AccessToken,IdToken,RefreshToken,ExpiresIn,TokenType},"ChallengeParameters":{}}`, or 400 `{"__type":..,"message":..}` |
//! | `GET /<pool_id>/.well-known/jwks.json` | the JWKS (two RSA keys: one for access tokens, one for id tokens) |
//! | `GET /<pool_id>/.well-known/openid-configuration` | minimal OIDC discovery |
//!
//! The issuer (`iss`) is `http://127.0.0.1:<port>/<pool_id>`. Bodies over
//! 64 KiB get 413; every other malformed request gets a 400 with a JSON error;
//! nothing here panics on input.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use aws_lc_rs::{constant_time, hmac};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use rand::distr::{Distribution as _, Uniform};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use uuid::Uuid;

use super::keys::{self, SigningKey};
use super::serve::{self, BodyError, Resp};
use crate::token::{AMZ_JSON, INITIATE_AUTH_TARGET};

/// Name of the client-credentials app client in [`demo_config`].
pub const DEMO_M2M_CLIENT: &str = "dotnet-demo-m2m";
/// Name of the password (public, no secret) app client in [`demo_config`].
pub const DEMO_PASSWORD_CLIENT: &str = "dotnet-demo-app";
/// Resource server identifier in [`demo_config`].
pub const DEMO_RESOURCE_SERVER: &str = "dotnet-demo";
/// The one custom scope of [`demo_config`], as clients request it.
pub const DEMO_SCOPE: &str = "dotnet-demo/dotnet";
/// The demo user's username.
pub const DEMO_USERNAME: &str = "demo-user";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "Passw0rd!demo";
/// The demo user's email.
pub const DEMO_EMAIL: &str = "demo-user@example.com";
/// The demo user's group.
pub const DEMO_GROUP: &str = "readers";

/// The scope Cognito puts in access tokens from `InitiateAuth`.
pub const USER_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// The user pool the issuer pretends to be.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// E.g. `local-1`.
    pub region: String,
    /// E.g. `local-1_DemoPool`; the issuer URL is `http://<addr>/<pool_id>`.
    pub pool_id: String,
    pub clients: Vec<DemoClient>,
    pub users: Vec<DemoUser>,
    pub resource_servers: Vec<ResourceServer>,
    /// Lifetime of access and id tokens (`exp - iat`, `expires_in`).
    pub access_ttl: Duration,
}

/// A resource server: custom scopes are `<identifier>/<scope>`.
#[derive(Debug, Clone)]
pub struct ResourceServer {
    /// E.g. `dotnet-demo`.
    pub identifier: String,
    /// Short scope names, e.g. `dotnet`.
    pub scopes: Vec<String>,
}

/// An app client.
#[derive(Debug, Clone)]
pub struct DemoClient {
    /// Display name, e.g. [`DEMO_M2M_CLIENT`].
    pub name: String,
    pub client_id: String,
    /// `None` = public client (no secret; cannot use client credentials).
    pub client_secret: Option<String>,
    /// May use `grant_type=client_credentials` on `/oauth2/token`.
    pub client_credentials: bool,
    /// Full custom scopes (`<resource-server>/<scope>`) it may ask for.
    pub allowed_scopes: Vec<String>,
    /// `ALLOW_USER_PASSWORD_AUTH`: may use `InitiateAuth` with `USER_PASSWORD_AUTH`.
    pub user_password_auth: bool,
}

/// A user of the pool.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub email: String,
    /// `cognito:groups`; the claim is left out when empty, as Cognito does.
    pub groups: Vec<String>,
    pub sub: Uuid,
}

impl IssuerConfig {
    /// The app client with this display name.
    pub fn client_named(&self, name: &str) -> Option<&DemoClient> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The app client with this client id.
    pub fn client_by_id(&self, client_id: &str) -> Option<&DemoClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.pool_id.is_empty() || self.pool_id.contains(['/', '?', '#', ' ']) {
            bail!(
                "pool_id {:?} must be non-empty without '/', '?', '#' or spaces",
                self.pool_id
            );
        }
        if self.access_ttl.as_secs() == 0 {
            bail!("access_ttl must be at least one second");
        }
        let known: Vec<String> = self
            .resource_servers
            .iter()
            .flat_map(|rs| {
                rs.scopes
                    .iter()
                    .map(move |s| format!("{}/{s}", rs.identifier))
            })
            .collect();
        for (i, c) in self.clients.iter().enumerate() {
            if c.client_id.is_empty() {
                bail!("client {:?} has an empty client_id", c.name);
            }
            if self.clients[..i].iter().any(|o| o.client_id == c.client_id) {
                bail!("client_id {:?} is used twice", c.client_id);
            }
            if c.client_credentials && c.client_secret.is_none() {
                bail!(
                    "client {:?} allows client_credentials but has no secret",
                    c.name
                );
            }
            if let Some(s) = c.allowed_scopes.iter().find(|s| !known.contains(s)) {
                bail!(
                    "client {:?} allows scope {s:?}, which no resource server defines",
                    c.name
                );
            }
        }
        for (i, u) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|o| o.username == u.username) {
                bail!("username {:?} is used twice", u.username);
            }
        }
        Ok(())
    }
}

fn random_lower_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let dist = Uniform::new(0, CHARS.len()).expect("non-empty range");
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[dist.sample(&mut rng)]))
        .collect()
}

/// A Cognito-shaped app client id: 26 lowercase letters and digits.
pub fn random_client_id() -> String {
    random_lower_alnum(26)
}

/// A Cognito-shaped app client secret: 51 lowercase letters and digits.
pub fn random_client_secret() -> String {
    random_lower_alnum(51)
}

/// The tutorial's pool: resource server `dotnet-demo` with scope `dotnet`; a
/// client-credentials client [`DEMO_M2M_CLIENT`] (with secret, scope
/// [`DEMO_SCOPE`]); a public password client [`DEMO_PASSWORD_CLIENT`]
/// (`ALLOW_USER_PASSWORD_AUTH`, no secret); user [`DEMO_USERNAME`] /
/// [`DEMO_PASSWORD`] in group [`DEMO_GROUP`]. Client ids, the secret and the
/// user's `sub` are random on every call.
pub fn demo_config() -> IssuerConfig {
    IssuerConfig {
        region: "local-1".into(),
        pool_id: "local-1_DemoPool".into(),
        clients: vec![
            DemoClient {
                name: DEMO_M2M_CLIENT.into(),
                client_id: random_client_id(),
                client_secret: Some(random_client_secret()),
                client_credentials: true,
                allowed_scopes: vec![DEMO_SCOPE.into()],
                user_password_auth: false,
            },
            DemoClient {
                name: DEMO_PASSWORD_CLIENT.into(),
                client_id: random_client_id(),
                client_secret: None,
                client_credentials: false,
                allowed_scopes: vec![],
                user_password_auth: true,
            },
        ],
        users: vec![DemoUser {
            username: DEMO_USERNAME.into(),
            password: DEMO_PASSWORD.into(),
            email: DEMO_EMAIL.into(),
            groups: vec![DEMO_GROUP.into()],
            sub: Uuid::new_v4(),
        }],
        resource_servers: vec![ResourceServer {
            identifier: DEMO_RESOURCE_SERVER.into(),
            scopes: vec!["dotnet".into()],
        }],
        access_ttl: Duration::from_secs(3600),
    }
}

struct State {
    cfg: IssuerConfig,
    issuer: String,
    base: String,
    access_key: Arc<SigningKey>,
    id_key: Arc<SigningKey>,
    jwks: Value,
}

/// A running issuer. Dropping it stops the server too.
#[derive(Debug)]
pub struct IssuerHandle {
    addr: SocketAddr,
    base: String,
    issuer: String,
    cfg: IssuerConfig,
    access_key: Arc<SigningKey>,
    id_key: Arc<SigningKey>,
    server: serve::Server,
}

impl IssuerHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the "hosted domain" to give
    /// [`crate::token::client_credentials`] (it appends `/oauth2/token`).
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// `http://127.0.0.1:<port>/<pool_id>`, the `iss` of every token.
    pub fn issuer_url(&self) -> String {
        self.issuer.clone()
    }

    /// `<issuer>/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// `http://127.0.0.1:<port>/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base)
    }

    /// `http://127.0.0.1:<port>/`: the Cognito IdP API endpoint for
    /// `InitiateAuth` (what `https://cognito-idp.<region>.amazonaws.com/` is).
    pub fn idp_url(&self) -> String {
        format!("{}/", self.base)
    }

    /// The pool configuration (client ids, secrets, users).
    pub fn config(&self) -> &IssuerConfig {
        &self.cfg
    }

    /// The key access tokens are signed with (tests may mint their own).
    pub fn access_key(&self) -> &SigningKey {
        &self.access_key
    }

    /// The key id tokens are signed with.
    pub fn id_key(&self) -> &SigningKey {
        &self.id_key
    }

    /// The JWKS served at [`IssuerHandle::jwks_url`].
    pub fn jwks(&self) -> Value {
        keys::jwks(&[&self.access_key, &self.id_key])
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
    let access_key = Arc::new(SigningKey::generate(keys::random_kid())?);
    let id_key = Arc::new(SigningKey::generate(keys::random_kid())?);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the demo issuer to {addr}"))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{}", serve::url_authority(addr));
    let issuer = format!("{base}/{}", cfg.pool_id);
    let state = Arc::new(State {
        cfg: cfg.clone(),
        issuer: issuer.clone(),
        base: base.clone(),
        jwks: keys::jwks(&[&access_key, &id_key]),
        access_key: access_key.clone(),
        id_key: id_key.clone(),
    });
    let server = serve::spawn(listener, move |req, _peer| {
        let state = state.clone();
        async move { handle(&state, req).await }
    });
    Ok(IssuerHandle {
        addr,
        base,
        issuer,
        cfg,
        access_key,
        id_key,
        server,
    })
}

async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let pool_prefix = format!("/{}/.well-known/", state.cfg.pool_id);
    if path == "/oauth2/token" {
        if req.method() != Method::POST {
            return method_not_allowed("POST");
        }
        return token_endpoint(state, req).await;
    }
    if path == "/" {
        if req.method() != Method::POST {
            return method_not_allowed("POST");
        }
        return idp_api(state, req).await;
    }
    if let Some(doc) = path.strip_prefix(&pool_prefix) {
        if doc == "jwks.json" || doc == "openid-configuration" {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return method_not_allowed("GET, HEAD");
            }
            let body = if doc == "jwks.json" {
                state.jwks.clone()
            } else {
                discovery(state)
            };
            return serve::json(StatusCode::OK, &body);
        }
    }
    serve::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"}))
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

fn discovery(state: &State) -> Value {
    let mut scopes: Vec<String> = vec!["openid".into(), "email".into(), "profile".into()];
    for rs in &state.cfg.resource_servers {
        scopes.extend(rs.scopes.iter().map(|s| format!("{}/{s}", rs.identifier)));
    }
    json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", state.issuer),
        "token_endpoint": format!("{}/oauth2/token", state.base),
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn eq_ct(a: &str, b: &str) -> bool {
    constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

// ---------------------------------------------------------------- /oauth2/token

fn oauth_error(status: StatusCode, error: &str) -> Resp {
    let mut r = serve::json_with(
        status,
        "application/json;charset=UTF-8",
        &json!({"error": error}),
    );
    no_store(&mut r);
    r
}

fn no_store(r: &mut Resp) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Client credentials from `Authorization: Basic`, if that header is there.
/// `Some(Err(()))` when it is there but unusable.
fn basic_credentials(headers: &http::HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some((|| {
        let v = value.to_str().map_err(|_| ())?.trim();
        let (scheme, rest) = v.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(());
        }
        let decoded = STANDARD.decode(rest.trim()).map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = decoded.split_once(':').ok_or(())?;
        // Taken as is, as Cognito documents it (Base64Encode(client_id:client_secret))
        // and as clients send it; the RFC 6749 §2.3.1 form-encoding step is not undone.
        Ok((id.to_owned(), secret.to_owned()))
    })())
}

async fn token_endpoint(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    if serve::media_type(&parts.headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let body = match serve::read_body(body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return oauth_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
        }
        Err(BodyError::Read) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    };
    // RFC 6749 §3.2: parameters must not be repeated.
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    match form.get("grant_type").map(String::as_str) {
        None | Some("") => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }

    // Client authentication: Basic or form, not both (RFC 6749 §2.3).
    let form_creds = (form.get("client_id"), form.get("client_secret"));
    let (client_id, secret) = match (basic_credentials(&parts.headers), form_creds) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request")
        }
        (Some(Err(())), _) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client"),
        (Some(Ok((id, secret))), _) => (id, Some(secret)),
        (None, (Some(id), secret)) => (id.clone(), secret.cloned()),
        (None, (None, _)) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client"),
    };
    let Some(client) = state.cfg.client_by_id(&client_id) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    };
    match (&client.client_secret, &secret) {
        (Some(expected), Some(given)) if eq_ct(expected, given) => {}
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client"),
    }
    if !client.client_credentials {
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    }

    let granted: Vec<String> = match form.get("scope").map(|s| s.trim()) {
        None | Some("") => client.allowed_scopes.clone(),
        Some(requested) => {
            let mut out: Vec<String> = Vec::new();
            for s in requested.split_ascii_whitespace() {
                if !client.allowed_scopes.iter().any(|a| a == s) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            out
        }
    };
    if granted.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }

    let now = now_secs();
    let ttl = state.cfg.access_ttl.as_secs();
    let claims = json!({
        "sub": client.client_id,
        "token_use": "access",
        "scope": granted.join(" "),
        "auth_time": now,
        "iss": state.issuer,
        "exp": now + ttl,
        "iat": now,
        "version": 2,
        "jti": Uuid::new_v4().to_string(),
        "client_id": client.client_id,
    });
    let token = state.access_key.sign(&claims);
    let mut r = serve::json_with(
        StatusCode::OK,
        "application/json;charset=UTF-8",
        &json!({"access_token": token, "expires_in": ttl, "token_type": "Bearer"}),
    );
    no_store(&mut r);
    r
}

// ---------------------------------------------------------------- IdP JSON API

fn amz_error(kind: &str, message: Option<&str>) -> Resp {
    amz_error_status(StatusCode::BAD_REQUEST, kind, message)
}

fn amz_error_status(status: StatusCode, kind: &str, message: Option<&str>) -> Resp {
    let body = match message {
        Some(m) => json!({"__type": kind, "message": m}),
        None => json!({"__type": kind}),
    };
    let mut r = serve::json_with(status, AMZ_JSON, &body);
    if let Ok(v) = HeaderValue::from_str(&format!("{kind}:")) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn invalid_param(message: &str) -> Resp {
    amz_error("InvalidParameterException", Some(message))
}

const AUTH_FLOWS: &str = "[USER_SRP_AUTH, REFRESH_TOKEN_AUTH, REFRESH_TOKEN, CUSTOM_AUTH, USER_PASSWORD_AUTH, USER_AUTH]";

async fn idp_api(state: &State, req: Request<Incoming>) -> Resp {
    let mut resp = idp_api_inner(state, req).await;
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn idp_api_inner(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if target != Some(INITIATE_AUTH_TARGET) {
        return amz_error("UnknownOperationException", None);
    }
    match serve::media_type(&parts.headers).as_deref() {
        Some("application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json") => {}
        _ => {
            return amz_error(
                "SerializationException",
                Some("Content-Type must be application/x-amz-json-1.1"),
            )
        }
    }
    let body = match serve::read_body(body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return amz_error_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SerializationException",
                Some("Request body too large"),
            )
        }
        Err(BodyError::Read) => {
            return amz_error(
                "SerializationException",
                Some("Could not read the request body"),
            )
        }
    };
    initiate_auth(state, &body)
}

fn initiate_auth(state: &State, body: &Bytes) -> Resp {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(body) else {
        return amz_error(
            "SerializationException",
            Some("The request body is not a JSON object"),
        );
    };
    let client_id = match input.get("ClientId") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return invalid_param("1 validation error detected: Value null at 'clientId' failed to satisfy constraint: Member must not be null")
        }
        Some(_) => return amz_error("SerializationException", Some("ClientId must be a string")),
    };
    let flow = match input.get("AuthFlow") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return invalid_param("1 validation error detected: Value null at 'authFlow' failed to satisfy constraint: Member must not be null")
        }
        Some(_) => return amz_error("SerializationException", Some("AuthFlow must be a string")),
    };
    let flow_known = AUTH_FLOWS
        .trim_matches(['[', ']'])
        .split(", ")
        .any(|f| f == flow);
    if !flow_known {
        return invalid_param(&format!(
            "1 validation error detected: Value '{}' at 'authFlow' failed to satisfy constraint: Member must satisfy enum value set: {AUTH_FLOWS}",
            printable(flow)
        ));
    }
    let Some(client) = state.cfg.client_by_id(client_id) else {
        return amz_error(
            "ResourceNotFoundException",
            Some(&format!(
                "User pool client {} does not exist.",
                printable(client_id)
            )),
        );
    };
    if flow != "USER_PASSWORD_AUTH" || !client.user_password_auth {
        return invalid_param(&format!("{flow} flow not enabled for this client"));
    }
    let empty = Map::new();
    let params = match input.get("AuthParameters") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => {
            return amz_error(
                "SerializationException",
                Some("AuthParameters must be a map of strings"),
            )
        }
    };
    // AuthParameters is a map<string, string>: any other value type is a
    // serialization error, whatever its key.
    if params.values().any(|v| !v.is_string() && !v.is_null()) {
        return amz_error(
            "SerializationException",
            Some("AuthParameters must be a map of strings"),
        );
    }
    let param = |name: &str| params.get(name).and_then(Value::as_str);
    let (username, password, secret_hash) =
        (param("USERNAME"), param("PASSWORD"), param("SECRET_HASH"));
    let Some(username) = username.filter(|u| !u.is_empty()) else {
        return invalid_param("Missing required parameter USERNAME");
    };
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return invalid_param("Missing required parameter PASSWORD");
    };
    if let Some(secret) = &client.client_secret {
        let Some(given) = secret_hash else {
            return amz_error(
                "NotAuthorizedException",
                Some(&format!(
                    "Client {} is configured with secret but SECRET_HASH was not received",
                    client.client_id
                )),
            );
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let msg = [username.as_bytes(), client.client_id.as_bytes()].concat();
        let ok = STANDARD
            .decode(given.trim())
            .is_ok_and(|tag| hmac::verify(&key, &msg, &tag).is_ok());
        if !ok {
            return amz_error(
                "NotAuthorizedException",
                Some(&format!(
                    "Unable to verify secret hash for client {}",
                    client.client_id
                )),
            );
        }
    }
    // Unknown user and wrong password look the same (PreventUserExistenceErrors).
    let user = state.cfg.users.iter().find(|u| u.username == username);
    let Some(user) = user.filter(|u| eq_ct(&u.password, password)) else {
        return amz_error(
            "NotAuthorizedException",
            Some("Incorrect username or password."),
        );
    };

    let (access, id) = user_tokens(state, client, user);
    let refresh: [u8; 96] = std::array::from_fn(|_| rand::random());
    serve::json_with(
        StatusCode::OK,
        AMZ_JSON,
        &json!({
            "AuthenticationResult": {
                "AccessToken": access,
                "IdToken": id,
                "RefreshToken": URL_SAFE_NO_PAD.encode(refresh),
                "ExpiresIn": state.cfg.access_ttl.as_secs(),
                "TokenType": "Bearer",
            },
            "ChallengeParameters": {},
        }),
    )
}

/// `(access token, id token)` for a user signing in through `client`.
fn user_tokens(state: &State, client: &DemoClient, user: &DemoUser) -> (String, String) {
    let now = now_secs();
    let exp = now + state.cfg.access_ttl.as_secs();
    let origin_jti = Uuid::new_v4().to_string();
    let event_id = Uuid::new_v4().to_string();
    let sub = user.sub.to_string();

    let mut access = Map::new();
    access.insert("sub".into(), sub.clone().into());
    if !user.groups.is_empty() {
        access.insert("cognito:groups".into(), json!(user.groups));
    }
    access.insert("iss".into(), state.issuer.clone().into());
    access.insert("client_id".into(), client.client_id.clone().into());
    access.insert("origin_jti".into(), origin_jti.clone().into());
    access.insert("event_id".into(), event_id.clone().into());
    access.insert("token_use".into(), "access".into());
    access.insert("scope".into(), USER_ADMIN_SCOPE.into());
    access.insert("auth_time".into(), now.into());
    access.insert("exp".into(), exp.into());
    access.insert("iat".into(), now.into());
    access.insert("jti".into(), Uuid::new_v4().to_string().into());
    access.insert("username".into(), user.username.clone().into());

    let mut id = Map::new();
    id.insert("sub".into(), sub.into());
    if !user.groups.is_empty() {
        id.insert("cognito:groups".into(), json!(user.groups));
    }
    id.insert("email_verified".into(), true.into());
    id.insert("iss".into(), state.issuer.clone().into());
    id.insert("cognito:username".into(), user.username.clone().into());
    id.insert("origin_jti".into(), origin_jti.into());
    id.insert("aud".into(), client.client_id.clone().into());
    id.insert("event_id".into(), event_id.into());
    id.insert("token_use".into(), "id".into());
    id.insert("auth_time".into(), now.into());
    id.insert("exp".into(), exp.into());
    id.insert("iat".into(), now.into());
    id.insert("jti".into(), Uuid::new_v4().to_string().into());
    id.insert("email".into(), user.email.clone().into());

    (
        state.access_key.sign(&Value::Object(access)),
        state.id_key.sign(&Value::Object(id)),
    )
}

/// At most 64 printable characters of client input, for error messages.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}
