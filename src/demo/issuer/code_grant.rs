//! The user grants of `/oauth2/token`: `authorization_code` (a code from
//! managed login, with its PKCE verifier) and `refresh_token` (new access and
//! id tokens of the same sign-in, and with rotation a new refresh token).
//! Both take a public client (`client_id` alone) or a client with its secret.

use std::time::Instant;

use aws_lc_rs::{constant_time, digest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::codes::{CodeGrant, Refused};
use super::config::{DemoClient, DemoUser};
use super::login::pkce_shaped;
use super::mint::{self, SignIn};
use super::oauth::{self, Answer, Form, OAuthError};
use super::sessions::Session;
use super::state::State;

fn invalid_grant() -> OAuthError {
    OAuthError::bad_request("invalid_grant")
}

/// A non-empty form parameter, or `invalid_request`.
fn required<'f>(form: &'f Form, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or(OAuthError::bad_request("invalid_request"))
}

/// Whether `verifier` is the PKCE verifier of the S256 `challenge`:
/// BASE64URL-NOPAD(SHA-256(verifier)) == challenge.
pub(super) fn s256_matches(verifier: &str, challenge: &str) -> bool {
    if !pkce_shaped(verifier) {
        return false;
    }
    let hashed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    constant_time::verify_slices_are_equal(hashed.as_bytes(), challenge.as_bytes()).is_ok()
}

/// `grant_type=authorization_code` (`code`, `redirect_uri`, `code_verifier`
/// when the code was asked for with a challenge): id (with `openid`),
/// access and refresh tokens. A code is good once, for five minutes, for the
/// client and `redirect_uri` it was issued to; a second use is
/// `invalid_grant` and revokes the tokens of the first.
pub(super) fn authorization_code(state: &State, headers: &HeaderMap, form: &Form) -> Answer {
    let client = oauth::authenticate_any_client(&state.cfg, headers, form)?;
    if !client.authorization_code {
        return Err(OAuthError::bad_request("unauthorized_client"));
    }
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let verifier = form.get("code_verifier").map(String::as_str);
    let fits = |g: &CodeGrant| {
        g.client_id == client.client_id
            && g.redirect_uri == redirect_uri
            && match (&g.code_challenge, verifier) {
                (None, _) => true,
                (Some(c), Some(v)) => s256_matches(v, c),
                (Some(_), None) => false,
            }
    };
    let redeemed = state.codes().redeem(code, Instant::now(), fits);
    let (grant, origin_jti) = match redeemed {
        Ok(r) => r,
        Err(Refused::Invalid) => return Err(invalid_grant()),
        Err(Refused::Replayed {
            username,
            origin_jti,
        }) => {
            state.sessions().revoke_origin(&username, &origin_jti);
            return Err(invalid_grant());
        }
    };
    let user = user_named(state, &grant.username)?;
    let id_token = grant.scopes.iter().any(|s| s == "openid");
    let session = Session {
        username: user.username.clone(),
        client_id: client.client_id.clone(),
        origin_jti,
        scopes: grant.scopes,
        auth_time: grant.auth_time,
        id_token,
    };
    let mut out = tokens(state, client, user, &session, grant.nonce.as_deref());
    let refresh = mint::refresh_token();
    out.insert("refresh_token".into(), refresh.clone().into());
    state.sessions().issued(refresh, session);
    Ok(Value::Object(out))
}

/// `grant_type=refresh_token` (`refresh_token`): new access (and id) tokens
/// of the same sign-in (`origin_jti`, `auth_time`, scopes); with
/// [`super::IssuerConfig::refresh_rotation`] a new refresh token too, the
/// one given working for the grace period more. A revoked, unknown, retired
/// or other client's refresh token is `invalid_grant`.
pub(super) fn refresh_token(state: &State, headers: &HeaderMap, form: &Form) -> Answer {
    let client = oauth::authenticate_any_client(&state.cfg, headers, form)?;
    let given = required(form, "refresh_token")?;
    let now = Instant::now();
    let session = state
        .sessions()
        .usable(given, now)
        .filter(|s| s.client_id == client.client_id)
        .cloned()
        .ok_or_else(invalid_grant)?;
    let user = user_named(state, &session.username)?;
    let mut out = tokens(state, client, user, &session, None);
    if state.cfg.refresh_rotation {
        let new = mint::refresh_token();
        out.insert("refresh_token".into(), new.clone().into());
        state
            .sessions()
            .rotate(given, new, now + state.cfg.refresh_grace, now);
    }
    Ok(Value::Object(out))
}

/// The pool's user with this name (gone: `invalid_grant`).
fn user_named<'a>(state: &'a State, username: &str) -> Result<&'a DemoUser, OAuthError> {
    state
        .cfg
        .users
        .iter()
        .find(|u| u.username == username)
        .ok_or_else(invalid_grant)
}

/// `{"id_token"?, "access_token", "expires_in", "token_type"}` of `session`.
fn tokens(
    state: &State,
    client: &DemoClient,
    user: &DemoUser,
    session: &Session,
    nonce: Option<&str>,
) -> Map<String, Value> {
    let sign_in = SignIn {
        scopes: &session.scopes,
        origin_jti: Some(&session.origin_jti),
        auth_time: Some(session.auth_time),
        nonce,
        at_hash: true,
    };
    let t = mint::user_tokens_for(state, client, user, &sign_in);
    let mut out = Map::new();
    if session.id_token {
        out.insert("id_token".into(), t.id.into());
    }
    out.insert("access_token".into(), t.access.into());
    out.insert("expires_in".into(), json!(state.cfg.access_ttl.as_secs()));
    out.insert("token_type".into(), "Bearer".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_s256_is_rfc_7636s() {
        // RFC 7636 Appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(s256_matches(
            v,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!s256_matches(v, v));
        assert!(!s256_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
}
