//! `POST /oauth2/token`: picks the grant; answers the `client_credentials`
//! grant (the client authenticated with its secret) with an access token for
//! the scopes asked (or every scope the client may have). The user grants,
//! `authorization_code` and `refresh_token`, are in `code_grant`.

use http::{HeaderMap, Request};
use hyper::body::Incoming;
use serde_json::json;

use super::code_grant;
use super::mint;
use super::oauth::{self, Answer, Form, OAuthError};
use super::state::State;
use crate::demo::serve::Resp;

/// A grant: authenticates the client and answers.
type Grant = fn(&State, &HeaderMap, &Form) -> Answer;

pub(super) async fn token_endpoint(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    oauth::respond(answer(state, &parts.headers, body).await)
}

async fn answer(state: &State, headers: &HeaderMap, body: Incoming) -> Answer {
    let form = oauth::read_form(headers, body).await?;
    let grant: Grant = match form.get("grant_type").map(String::as_str) {
        None | Some("") => return Err(OAuthError::bad_request("invalid_request")),
        Some("client_credentials") => client_credentials,
        Some("authorization_code") => code_grant::authorization_code,
        Some("refresh_token") => code_grant::refresh_token,
        Some(_) => return Err(OAuthError::bad_request("unsupported_grant_type")),
    };
    grant(state, headers, &form)
}

fn client_credentials(state: &State, headers: &HeaderMap, form: &Form) -> Answer {
    let client = oauth::authenticate_client(&state.cfg, headers, form)?;
    let invalid_scope = || OAuthError::bad_request("invalid_scope");
    if !client.client_credentials {
        return Err(OAuthError::bad_request("unauthorized_client"));
    }
    let granted: Vec<String> = match form.get("scope").map(|s| s.trim()) {
        None | Some("") => client.allowed_scopes.clone(),
        Some(requested) => {
            let mut out: Vec<String> = Vec::new();
            for s in requested.split_ascii_whitespace() {
                if !client.allowed_scopes.iter().any(|a| a == s) {
                    return Err(invalid_scope());
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            out
        }
    };
    if granted.is_empty() {
        return Err(invalid_scope());
    }
    Ok(json!({
        "access_token": mint::client_access_token(state, client, &granted),
        "expires_in": state.cfg.access_ttl.as_secs(),
        "token_type": "Bearer",
    }))
}
