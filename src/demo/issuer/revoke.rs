//! Revoking a refresh token, which revokes every token of its sign-in (the
//! same `origin_jti`): the IdP API's `RevokeToken` and the hosted domain's
//! `POST /oauth2/revoke`, over one rule. The client must be the token's and
//! authenticate (with its secret, if it has one); an unknown token is revoked
//! silently (nothing is revealed); an access or id token is refused.

use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::access_check::is_own_jwt;
use super::amz::{required_string, serialization_error, AmzError, Answer, Input};
use super::oauth::{self, OAuthError};
use super::state::State;
use crate::demo::serve::Resp;

/// Why a revocation is refused.
enum Refusal {
    /// Unknown client, wrong or missing secret, or not the token's client.
    Client,
    /// An access or id token, not a refresh token.
    TokenType,
}

/// Revokes `token` for the client `client_id` authenticated by `secret`.
fn revoke(
    state: &State,
    token: &str,
    client_id: &str,
    secret: Option<&str>,
) -> Result<(), Refusal> {
    // An empty secret is none (public clients may send `Basic <id>:`).
    let secret = secret.filter(|s| !s.is_empty());
    let client = state.cfg.client_by_id(client_id);
    if !client.is_some_and(|c| c.authenticates(secret)) {
        return Err(Refusal::Client);
    }
    let mut sessions = state.sessions();
    match sessions.by_refresh(token).cloned() {
        Some(s) if s.client_id != client_id => Err(Refusal::Client),
        Some(s) => {
            sessions.revoke(&s);
            Ok(())
        }
        None if is_own_jwt(state, token) => Err(Refusal::TokenType),
        None => Ok(()),
    }
}

/// `RevokeToken` (`{"Token", "ClientId", "ClientSecret"?}`): `{}`, or
/// `UnauthorizedException` (401) / `UnsupportedTokenTypeException`.
pub(super) fn revoke_token(state: &State, input: &Input) -> Answer {
    let token = required_string(input, "Token")?;
    let client_id = required_string(input, "ClientId")?;
    let secret = match input.get("ClientSecret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(serialization_error("ClientSecret must be a string")),
    };
    match revoke(state, token, client_id, secret) {
        Ok(()) => Ok(json!({})),
        Err(Refusal::Client) => Err(AmzError::new(
            "UnauthorizedException",
            "The client is not authorized to revoke this token.",
        )
        .with_status(StatusCode::UNAUTHORIZED)),
        Err(Refusal::TokenType) => Err(AmzError::new(
            "UnsupportedTokenTypeException",
            "Only refresh tokens can be revoked.",
        )),
    }
}

/// `POST /oauth2/revoke` (form `token`, client auth as on `/oauth2/token`,
/// or `client_id` alone for a public client): 200 with an empty body, or
/// `invalid_request` (400), `invalid_client` (401), `unsupported_token_type` (400).
pub(super) async fn revoke_endpoint(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    oauth::respond_empty(answer(state, &parts.headers, body).await)
}

async fn answer(state: &State, headers: &HeaderMap, body: Incoming) -> Result<(), OAuthError> {
    let form = oauth::read_form(headers, body).await?;
    let invalid_client = OAuthError::unauthorized("invalid_client");
    let (client_id, secret) =
        oauth::client_credentials(headers, &form).map_err(|e| e.error(invalid_client))?;
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return Err(OAuthError::bad_request("invalid_request"));
    };
    revoke(state, token, &client_id, secret.as_deref()).map_err(|r| match r {
        Refusal::Client => invalid_client,
        Refusal::TokenType => OAuthError::bad_request("unsupported_token_type"),
    })
}
