//! Checking a token presented back to the issuer: whether it is one of its
//! own (signature, `iss`), and for the IdP API's user operations, whether it
//! is a live user access token with the `aws.cognito.signin.user.admin` scope,
//! refused with Cognito's `NotAuthorizedException` messages otherwise.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::amz::{not_authorized, AmzError};
use super::mint::{now_secs, USER_ADMIN_SCOPE};
use super::state::State;
use crate::demo::keys::SigningKey;

/// The user an access token speaks for.
pub(super) struct TokenUser {
    pub(super) username: String,
    pub(super) sub: String,
}

/// The claims of `token` if `key` signed it (RS256) and it carries this
/// issuer's `iss`; times are not looked at.
pub(super) fn own_claims(state: &State, key: &SigningKey, token: &str) -> Option<Value> {
    let key = DecodingKey::from_rsa_raw_components(key.modulus(), key.exponent());
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = decode::<Value>(token, &key, &v).ok()?.claims;
    (claims.get("iss").and_then(Value::as_str) == Some(state.issuer.as_str())).then_some(claims)
}

/// Whether `token` is an access or id token of this issuer (any age).
pub(super) fn is_own_jwt(state: &State, token: &str) -> bool {
    [&state.access_key, &state.id_key]
        .into_iter()
        .any(|key| own_claims(state, key, token).is_some())
}

/// The user of an access token given to `GetUser` or `GlobalSignOut`, after
/// Cognito's checks in Cognito's order: one of this issuer's access tokens,
/// not expired, not revoked, with the user admin scope.
pub(super) fn user_of_access_token(state: &State, token: &str) -> Result<TokenUser, AmzError> {
    let invalid = || not_authorized("Invalid Access Token");
    let claims = own_claims(state, &state.access_key, token).ok_or_else(invalid)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("token_use") != Some("access") {
        return Err(invalid());
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    if now_secs() >= exp {
        return Err(not_authorized("Access Token has expired"));
    }
    if text("origin_jti").is_some_and(|o| state.sessions().is_revoked(o)) {
        return Err(not_authorized("Access Token has been revoked"));
    }
    let admin =
        text("scope").is_some_and(|s| s.split_ascii_whitespace().any(|s| s == USER_ADMIN_SCOPE));
    // A client-credentials token has neither the scope nor a user.
    if !admin {
        return Err(not_authorized("Access Token does not have required scopes"));
    }
    let (Some(username), Some(sub)) = (text("username"), text("sub")) else {
        return Err(invalid());
    };
    Ok(TokenUser {
        username: username.to_owned(),
        sub: sub.to_owned(),
    })
}
