//! The tokens the issuer hands out: Cognito-shaped access tokens for app
//! clients (client credentials) and access + id tokens for users, signed with
//! the issuer's keys, and opaque refresh tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::config::{DemoClient, DemoUser};
use super::state::State;

/// The scope Cognito puts in access tokens from `InitiateAuth`.
pub const USER_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// The access token of the client credentials grant: `sub` and `client_id`
/// are the client's id, `scope` is `scopes` joined by spaces.
pub(super) fn client_access_token(state: &State, client: &DemoClient, scopes: &[String]) -> String {
    let now = now_secs();
    let claims = json!({
        "sub": client.client_id,
        "token_use": "access",
        "scope": scopes.join(" "),
        "auth_time": now,
        "iss": state.issuer,
        "exp": now + state.cfg.access_ttl.as_secs(),
        "iat": now,
        "version": 2,
        "jti": Uuid::new_v4().to_string(),
        "client_id": client.client_id,
    });
    state.access_key.sign(&claims)
}

/// The signed tokens of one sign-in.
pub(super) struct UserTokens {
    pub(super) access: String,
    pub(super) id: String,
    /// Shared by both tokens (and by every token refreshed from this sign-in).
    pub(super) origin_jti: String,
}

/// The access and id tokens for a user signing in through `client`: one
/// sign-in (the same `origin_jti`, `event_id` and times), two `jti`s.
pub(super) fn user_tokens(state: &State, client: &DemoClient, user: &DemoUser) -> UserTokens {
    let now = now_secs();
    let exp = now + state.cfg.access_ttl.as_secs();
    let origin_jti = Uuid::new_v4().to_string();
    let event_id = Uuid::new_v4().to_string();
    let claims = |token_use: &str| {
        let mut c = Map::new();
        c.insert("sub".into(), user.sub.to_string().into());
        if !user.groups.is_empty() {
            c.insert("cognito:groups".into(), json!(user.groups));
        }
        c.insert("iss".into(), state.issuer.clone().into());
        c.insert("origin_jti".into(), origin_jti.clone().into());
        c.insert("event_id".into(), event_id.clone().into());
        c.insert("token_use".into(), token_use.into());
        c.insert("auth_time".into(), now.into());
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), now.into());
        c.insert("jti".into(), Uuid::new_v4().to_string().into());
        c
    };

    let mut access = claims("access");
    access.insert("client_id".into(), client.client_id.clone().into());
    access.insert("scope".into(), USER_ADMIN_SCOPE.into());
    access.insert("username".into(), user.username.clone().into());

    let mut id = claims("id");
    id.insert("email_verified".into(), true.into());
    id.insert("cognito:username".into(), user.username.clone().into());
    id.insert("aud".into(), client.client_id.clone().into());
    id.insert("email".into(), user.email.clone().into());

    UserTokens {
        access: state.access_key.sign(&Value::Object(access)),
        id: state.id_key.sign(&Value::Object(id)),
        origin_jti,
    }
}

/// An opaque refresh token: 96 random bytes, base64url without padding.
pub(super) fn refresh_token() -> String {
    let bytes: [u8; 96] = std::array::from_fn(|_| rand::random());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
