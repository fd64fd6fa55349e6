//! Client side of the `token` subcommands: get tokens from Cognito the way
//! applications do.
//!
//! * [`client_credentials`]: `POST <domain>/oauth2/token` on the user pool's
//!   hosted domain, HTTP Basic client authentication, form body
//!   `grant_type=client_credentials[&scope=...]`.
//! * [`password`]: `InitiateAuth` with `USER_PASSWORD_AUTH` on the Cognito IdP
//!   API (`https://cognito-idp.<region>.amazonaws.com/`), with `SECRET_HASH`
//!   when the app client has a secret.
//! * [`revoke`]: `POST <domain>/oauth2/revoke` with a refresh token (HTTP
//!   Basic client authentication when the client has a secret, else
//!   `client_id` in the form): revokes it and the tokens issued with it.
//! * [`sign_out`]: `GlobalSignOut` on the IdP API with an access token:
//!   revokes every token issued to its user.
//!
//! [`TokenClient::idp_request`] sends any other IdP API operation.
//!
//! Every failure is a [`TokenError`] whose `Display` is one line fit for a
//! terminal.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Timeout for a whole request (connect, send, answer) made by this module.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `Content-Type` of the Cognito IdP JSON API.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// `X-Amz-Target` of `InitiateAuth`.
pub const INITIATE_AUTH_TARGET: &str = "AWSCognitoIdentityProviderService.InitiateAuth";

/// `X-Amz-Target` of `GetUser`.
pub const GET_USER_TARGET: &str = "AWSCognitoIdentityProviderService.GetUser";

/// `X-Amz-Target` of `GlobalSignOut`.
pub const GLOBAL_SIGN_OUT_TARGET: &str = "AWSCognitoIdentityProviderService.GlobalSignOut";

/// `X-Amz-Target` of `RevokeToken`.
pub const REVOKE_TOKEN_TARGET: &str = "AWSCognitoIdentityProviderService.RevokeToken";

/// Why getting a token failed. `Display` is a single line.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The domain or endpoint given is not a usable http(s) URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Could not connect (refused, DNS failure, TLS handshake failure, ...).
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// No complete answer within the timeout.
    #[error("no answer from {url} within {}", humantime::format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },
    /// The OAuth 2.0 token endpoint answered with an `{"error": ...}` body,
    /// e.g. `invalid_client`, `invalid_scope`, `unsupported_grant_type`.
    #[error("{error}{} (HTTP {status} from {url}){}",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        oauth_hint(.error))]
    OAuth {
        url: String,
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The Cognito IdP API answered with an error, e.g.
    /// `NotAuthorizedException: Incorrect username or password.`
    #[error("{kind}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Cognito {
        url: String,
        status: u16,
        kind: String,
        message: String,
    },
    /// An HTTP error status without a recognisable error body.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// A success status whose body is not what the API documents.
    #[error("unexpected answer from {url}: expected {expected}, got {got}")]
    UnexpectedBody {
        url: String,
        expected: &'static str,
        got: String,
    },
    /// `InitiateAuth` answered with a challenge (e.g. `NEW_PASSWORD_REQUIRED`)
    /// instead of tokens.
    #[error("Cognito answered with the {name} challenge instead of tokens; this command cannot answer challenges (for NEW_PASSWORD_REQUIRED set a permanent password first)")]
    Challenge { name: String },
    /// Any other transport failure.
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
}

fn oauth_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => {
            "; check the client id and secret (the app client must have a secret for client_credentials)"
        }
        "invalid_scope" => {
            "; the app client is not allowed that scope (scopes look like <resource-server>/<scope>)"
        }
        "unauthorized_client" => "; the app client is not enabled for the client_credentials grant",
        "unsupported_grant_type" => "; the endpoint does not support that grant_type",
        "unsupported_token_type" => "; only refresh tokens can be revoked",
        _ => "",
    }
}

/// Answer of the token endpoint for `client_credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub token_type: String,
}

/// The tokens of a successful `InitiateAuth` (`AuthenticationResult`), with
/// snake_case names when serialised (for `--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitiateAuthResult {
    pub access_token: String,
    pub id_token: String,
    /// Always present for `USER_PASSWORD_AUTH`; optional to be lenient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub token_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireAuthResult {
    access_token: String,
    id_token: String,
    refresh_token: Option<String>,
    expires_in: u64,
    token_type: String,
}

/// What a successful `InitiateAuth` answers, for [`TokenError::UnexpectedBody`].
const AUTH_RESULT_SHAPE: &str =
    "a JSON object with AuthenticationResult {AccessToken, IdToken, ExpiresIn, TokenType}";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireInitiateAuth {
    authentication_result: Option<WireAuthResult>,
    challenge_name: Option<String>,
}

/// `https://cognito-idp.<region>.amazonaws.com/`, the Cognito IdP API endpoint.
pub fn default_idp_endpoint(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/")
}

/// `SECRET_HASH` = Base64(HMAC-SHA256(key = client secret, message = username + client id)).
pub fn secret_hash(client_id: &str, client_secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(username.as_bytes());
    ctx.update(client_id.as_bytes());
    STANDARD.encode(ctx.sign().as_ref())
}

/// rustls client configuration: the sidecar's own ([`crate::tls::client_config`]), with the
/// Mozilla roots of `webpki-roots`.
pub fn tls_client_config() -> rustls::ClientConfig {
    crate::tls::client_config(None)
        .expect("the aws-lc-rs provider supports the default TLS versions")
}

/// What `/oauth2/token` answers a user's grant (authorization code or refresh).
#[derive(Clone, serde::Deserialize)]
pub struct UserTokens {
    pub access_token: String,
    pub id_token: Option<String>,
    /// Absent on a refresh unless the pool rotates refresh tokens.
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for the token requests: rustls ([`tls_client_config`]), an
/// overall timeout, no redirects (a token request must not be replayed elsewhere).
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl TokenClient {
    /// A client whose every request (connect, send, whole answer) must finish within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, TokenError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_client_config())
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TokenError::Request {
                url: String::new(),
                reason: error_chain(&e),
            })?;
        Ok(Self { http, timeout })
    }

    /// The timeout given to [`TokenClient::new`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
/// The token endpoint for a hosted domain: accepts `https://x.auth.r.amazoncognito.com`,
/// with or without a trailing slash, without a scheme (https is assumed), or
/// already ending in `/oauth2/token`.
pub fn token_endpoint(domain: &str) -> Result<String, TokenError> {
    oauth2_endpoint(domain, "/oauth2/token")
}

/// The revocation endpoint for a hosted domain, given as for [`token_endpoint`]
/// (or already ending in `/oauth2/revoke`).
pub fn revoke_endpoint(domain: &str) -> Result<String, TokenError> {
    oauth2_endpoint(domain, "/oauth2/revoke")
}

fn oauth2_endpoint(domain: &str, path: &str) -> Result<String, TokenError> {
    let d = domain.trim();
    let with_scheme = if d.contains("://") {
        d.to_owned()
    } else {
        format!("https://{d}")
    };
    check_url(domain, &with_scheme)?;
    let base = with_scheme.trim_end_matches('/');
    let url = if base.ends_with(path) {
        base.to_owned()
    } else {
        format!("{base}{path}")
    };
    check_url(domain, &url)?;
    Ok(url)
}

fn check_url(given: &str, url: &str) -> Result<(), TokenError> {
    let invalid = |reason: String| TokenError::InvalidUrl {
        url: given.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    Ok(())
}

/// Declares free functions that each make a [`TokenClient`] of
/// [`DEFAULT_TIMEOUT`] and call its method of the same name and arguments.
macro_rules! with_default_client {
    ($($(#[$doc:meta])* pub async fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ok:ty;)*) => {$(
        $(#[$doc])*
        pub async fn $name($($arg: $ty),*) -> Result<$ok, TokenError> {
            TokenClient::new(DEFAULT_TIMEOUT)?.$name($($arg),*).await
        }
    )*};
}

with_default_client! {
    /// Client credentials grant against `<domain>/oauth2/token` (see
    /// [`token_endpoint`]) with a [`TokenClient`] of [`DEFAULT_TIMEOUT`].
    pub async fn client_credentials(domain: &str, client_id: &str, client_secret: &str, scope: Option<&str>) -> TokenResponse;

    /// `InitiateAuth` / `USER_PASSWORD_AUTH` against `endpoint` (see
    /// [`default_idp_endpoint`]), sending `SECRET_HASH` when `client_secret` is
    /// given, with a [`TokenClient`] of [`DEFAULT_TIMEOUT`].
    pub async fn password(endpoint: &str, client_id: &str, username: &str, password: &str, client_secret: Option<&str>) -> InitiateAuthResult;

    /// Revokes `refresh_token` (and the access and id tokens issued with it)
    /// at `<domain>/oauth2/revoke` (see [`revoke_endpoint`]): HTTP Basic when
    /// `client_secret` is given, else `client_id` in the form; with a
    /// [`TokenClient`] of [`DEFAULT_TIMEOUT`].
    pub async fn revoke(domain: &str, refresh_token: &str, client_id: &str, client_secret: Option<&str>) -> ();

    /// `GlobalSignOut` against `endpoint` (see [`default_idp_endpoint`]):
    /// revokes every token issued to the user of `access_token`; with a
    /// [`TokenClient`] of [`DEFAULT_TIMEOUT`].
    pub async fn sign_out(endpoint: &str, access_token: &str) -> ();
}

impl TokenClient {
    /// See [`client_credentials`].
    pub async fn client_credentials(
        &self,
        domain: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let url = token_endpoint(domain)?;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = scope {
            form.append_pair("scope", scope);
        }
        let request = self
            .http
            .post(&url)
            .basic_auth(client_id, Some(client_secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.finish());
        let body = self.oauth_send(request, &url).await?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        parsed
            .and_then(|v| serde_json::from_value::<TokenResponse>(v).ok())
            .ok_or_else(|| TokenError::UnexpectedBody {
                url,
                expected: "a JSON object with access_token, expires_in and token_type",
                got: excerpt(&body),
            })
    }

    /// See [`password`].
    pub async fn password(
        &self,
        endpoint: &str,
        client_id: &str,
        username: &str,
        password: &str,
        client_secret: Option<&str>,
    ) -> Result<InitiateAuthResult, TokenError> {
        let mut params = json!({ "USERNAME": username, "PASSWORD": password });
        if let Some(secret) = client_secret {
            params["SECRET_HASH"] = secret_hash(client_id, secret, username).into();
        }
        let input = json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": client_id,
            "AuthParameters": params,
        });
        let (url, body) = self
            .amz_send(endpoint, INITIATE_AUTH_TARGET, &input)
            .await?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let wire = parsed.and_then(|v| serde_json::from_value::<WireInitiateAuth>(v).ok());
        match wire {
            Some(WireInitiateAuth {
                authentication_result: Some(r),
                ..
            }) => Ok(InitiateAuthResult {
                access_token: r.access_token,
                id_token: r.id_token,
                refresh_token: r.refresh_token,
                expires_in: r.expires_in,
                token_type: r.token_type,
            }),
            Some(WireInitiateAuth {
                challenge_name: Some(name),
                ..
            }) => Err(TokenError::Challenge {
                name: one_line(&name, 100),
            }),
            _ => Err(TokenError::UnexpectedBody {
                url,
                expected: AUTH_RESULT_SHAPE,
                got: excerpt(&body),
            }),
        }
    }

    /// `grant_type=authorization_code` (with the PKCE `code_verifier`) or
    /// `grant_type=refresh_token` at `<domain>/oauth2/token`: HTTP Basic when
    /// `client_secret` is given, else `client_id` in the form. `pairs` are the grant's own
    /// fields.
    pub async fn user_grant(
        &self,
        domain: &str,
        client_id: &str,
        client_secret: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Result<UserTokens, TokenError> {
        let url = token_endpoint(domain)?;
        let request = self.client_form(&url, client_id, client_secret, pairs);
        let body = self.oauth_send(request, &url).await?;
        serde_json::from_slice::<UserTokens>(&body).map_err(|_| TokenError::UnexpectedBody {
            url,
            expected: "a JSON object with access_token and expires_in",
            got: excerpt(&body),
        })
    }

    /// A form POST to `url` with `pairs`, the client authenticated as OAuth wants: HTTP Basic
    /// when it has a secret, else `client_id` in the form. Built before any await: the
    /// serializer is not `Send`.
    fn client_form(
        &self,
        url: &str,
        client_id: &str,
        client_secret: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k, v);
        }
        if client_secret.is_none() {
            form.append_pair("client_id", client_id);
        }
        let form = form.finish();
        let mut request = self.http.post(url);
        if let Some(secret) = client_secret {
            request = request.basic_auth(client_id, Some(secret));
        }
        request
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
    }

    /// See [`revoke`].
    pub async fn revoke(
        &self,
        domain: &str,
        refresh_token: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<(), TokenError> {
        let url = revoke_endpoint(domain)?;
        let request = self.client_form(&url, client_id, client_secret, &[("token", refresh_token)]);
        self.oauth_send(request, &url).await?;
        Ok(())
    }

    /// See [`sign_out`].
    pub async fn sign_out(&self, endpoint: &str, access_token: &str) -> Result<(), TokenError> {
        let input = json!({ "AccessToken": access_token });
        self.amz_send(endpoint, GLOBAL_SIGN_OUT_TARGET, &input)
            .await?;
        Ok(())
    }

    /// Any Cognito IdP API operation: `POST endpoint` with `X-Amz-Target:
    /// target` and `input` as the AWS JSON 1.1 body. The answer of a success
    /// (an empty body is `{}`); an error answer is [`TokenError::Cognito`].
    pub async fn idp_request(
        &self,
        endpoint: &str,
        target: &str,
        input: &Value,
    ) -> Result<Value, TokenError> {
        let (url, body) = self.amz_send(endpoint, target, input).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(TokenError::UnexpectedBody {
                url,
                expected: "a JSON object",
                got: excerpt(&body),
            }),
        }
    }

    /// Sends `request` to the OAuth 2.0 endpoint `url`: the body of a
    /// success; an `{"error": ..}` answer is [`TokenError::OAuth`], any other
    /// failure status [`TokenError::Http`].
    async fn oauth_send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<bytes::Bytes, TokenError> {
        let (status, _headers, body) = send(request, url, self.timeout).await?;
        if status.is_success() {
            return Ok(body);
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
        };
        if let Some(error) = field("error") {
            return Err(TokenError::OAuth {
                url: url.to_owned(),
                status: status.as_u16(),
                error: one_line(error, 100),
                description: field("error_description").map(|d| one_line(d, 200)),
            });
        }
        Err(TokenError::Http {
            url: url.to_owned(),
            status: status.as_u16(),
            body: excerpt(&body),
        })
    }

    /// Sends the IdP API operation `target` with `input` to `endpoint`: the
    /// URL used and the body of a success; an error answer (`__type` or
    /// `x-amzn-errortype`) is [`TokenError::Cognito`], any other failure
    /// status [`TokenError::Http`].
    async fn amz_send(
        &self,
        endpoint: &str,
        target: &str,
        input: &Value,
    ) -> Result<(String, bytes::Bytes), TokenError> {
        let url = endpoint.trim().to_owned();
        check_url(endpoint, &url)?;
        let request = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, AMZ_JSON)
            .header("X-Amz-Target", target)
            .body(input.to_string());
        let (status, headers, body) = send(request, &url, self.timeout).await?;
        if status.is_success() {
            return Ok((url, body));
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let kind = parsed
            .as_ref()
            .and_then(|v| v.get("__type"))
            .and_then(Value::as_str)
            .or_else(|| {
                headers
                    .get("x-amzn-errortype")
                    .and_then(|h| h.to_str().ok())
            })
            .map(aws_error_kind);
        let Some(kind) = kind else {
            return Err(TokenError::Http {
                url,
                status: status.as_u16(),
                body: excerpt(&body),
            });
        };
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message").or_else(|| v.get("Message")))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(TokenError::Cognito {
            url,
            status: status.as_u16(),
            kind: one_line(&kind, 100),
            message: one_line(message, 300),
        })
    }
}

/// `com.amazonaws.cognito#NotAuthorizedException` or
/// `NotAuthorizedException:http://...` → `NotAuthorizedException`.
fn aws_error_kind(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    after_hash
        .split(':')
        .next()
        .unwrap_or(after_hash)
        .trim()
        .to_owned()
}

async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
    timeout: Duration,
) -> Result<(reqwest::StatusCode, HeaderMap, bytes::Bytes), TokenError> {
    let classify = |e: reqwest::Error| -> TokenError {
        if e.is_timeout() {
            TokenError::Timeout {
                url: url.to_owned(),
                timeout,
            }
        } else if e.is_connect() {
            TokenError::Unreachable {
                url: url.to_owned(),
                reason: error_chain(&e),
            }
        } else if e.is_builder() {
            TokenError::InvalidUrl {
                url: url.to_owned(),
                reason: error_chain(&e),
            }
        } else {
            TokenError::Request {
                url: url.to_owned(),
                reason: error_chain(&e),
            }
        }
    };
    let response = request.send().await.map_err(classify)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(classify)?;
    Ok((status, headers, body))
}

/// The causes of an error (reqwest's and hyper-util's generic wrappers
/// skipped), joined with ": ", e.g. `tcp connect error: Connection refused (os error 111)`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = crate::error::chain_messages(e.source());
    // hyper-util's "client error (Connect)" wrapper says nothing useful.
    parts.retain(|s| !s.starts_with("client error ("));
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    one_line(&parts.join(": "), 300)
}

/// Control characters to spaces, whitespace collapsed, at most `max` chars.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    let mut last_space = false;
    for (count, c) in s.chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out.trim().to_owned()
}

fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "an empty body".to_owned();
    }
    format!("{:?}", one_line(&String::from_utf8_lossy(body), 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_known_vector() {
        // Independently computed: printf 'demo-userabc' | openssl dgst -sha256 -hmac s3cret -binary | base64
        assert_eq!(
            secret_hash("abc", "s3cret", "demo-user"),
            "vONrOd2a9nFoYDDR26wKdUQkbgn3xnhTzFJ3Di1GhcU="
        );
    }

    #[test]
    fn token_endpoint_forms() {
        for d in [
            "https://p.auth.ap-south-1.amazoncognito.com",
            "https://p.auth.ap-south-1.amazoncognito.com/",
            "p.auth.ap-south-1.amazoncognito.com",
            "https://p.auth.ap-south-1.amazoncognito.com/oauth2/token",
        ] {
            assert_eq!(
                token_endpoint(d).unwrap(),
                "https://p.auth.ap-south-1.amazoncognito.com/oauth2/token",
                "{d}"
            );
        }
        assert_eq!(
            token_endpoint("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9/oauth2/token"
        );
        assert!(matches!(
            token_endpoint("ftp://x"),
            Err(TokenError::InvalidUrl { .. })
        ));
        assert!(matches!(
            token_endpoint("http://"),
            Err(TokenError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn revoke_endpoint_forms() {
        for d in [
            "https://p.auth.ap-south-1.amazoncognito.com",
            "p.auth.ap-south-1.amazoncognito.com/",
            "https://p.auth.ap-south-1.amazoncognito.com/oauth2/revoke",
        ] {
            assert_eq!(
                revoke_endpoint(d).unwrap(),
                "https://p.auth.ap-south-1.amazoncognito.com/oauth2/revoke",
                "{d}"
            );
        }
        assert!(matches!(
            revoke_endpoint("ftp://x"),
            Err(TokenError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn default_endpoint() {
        assert_eq!(
            default_idp_endpoint("ap-south-1"),
            "https://cognito-idp.ap-south-1.amazonaws.com/"
        );
    }

    #[test]
    fn displays_are_one_line() {
        let e = TokenError::Cognito {
            url: "u".into(),
            status: 400,
            kind: "NotAuthorizedException".into(),
            message: "Incorrect username or password.".into(),
        };
        assert_eq!(
            e.to_string(),
            "NotAuthorizedException: Incorrect username or password."
        );
        let e = TokenError::OAuth {
            url: "http://h/oauth2/token".into(),
            status: 400,
            error: "invalid_client".into(),
            description: None,
        };
        assert!(e
            .to_string()
            .starts_with("invalid_client (HTTP 400 from http://h/oauth2/token); check"));
        assert_eq!(one_line("a\n\r\tb  c", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(
            aws_error_kind("com.amazonaws#NotAuthorizedException"),
            "NotAuthorizedException"
        );
        assert_eq!(
            aws_error_kind("ResourceNotFoundException:http://x"),
            "ResourceNotFoundException"
        );
        let t = TokenError::Timeout {
            url: "u".into(),
            timeout: Duration::from_secs(10),
        };
        assert_eq!(t.to_string(), "no answer from u within 10s");
    }
}
