//! The tokens the issuer hands out: Cognito-shaped access tokens for app
//! clients (client credentials) and access + id tokens for users, signed with
//! the issuer's keys, and opaque refresh tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::config::{DemoClient, DemoUser};
use super::state::State;

pub use super::config::USER_ADMIN_SCOPE;

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
    /// The sign-in's `auth_time`.
    pub(super) auth_time: u64,
}

/// What the tokens of a user sign-in (or of a refresh of one) carry besides
/// the user and the client.
pub(super) struct SignIn<'a> {
    /// The access token's `scope`.
    pub(super) scopes: &'a [String],
    /// The sign-in's `origin_jti` when refreshing it; `None` = a new one.
    pub(super) origin_jti: Option<&'a str>,
    /// The sign-in's `auth_time` when refreshing it; `None` = now.
    pub(super) auth_time: Option<u64>,
    /// The id token's `nonce` (code flow, when the client sent one).
    pub(super) nonce: Option<&'a str>,
    /// Whether the id token has an `at_hash` (the hosted domain's tokens do,
    /// `InitiateAuth`'s do not).
    pub(super) at_hash: bool,
}

/// The access and id tokens for a user signing in through `client` with
/// `InitiateAuth`: one sign-in (the same `origin_jti`, `event_id` and
/// times), two `jti`s, scope `aws.cognito.signin.user.admin`.
pub(super) fn user_tokens(state: &State, client: &DemoClient, user: &DemoUser) -> UserTokens {
    let scopes = [USER_ADMIN_SCOPE.to_owned()];
    let sign_in = SignIn {
        scopes: &scopes,
        origin_jti: None,
        auth_time: None,
        nonce: None,
        at_hash: false,
    };
    user_tokens_for(state, client, user, &sign_in)
}

/// The access and id tokens of `sign_in` for `user` through `client`. An
/// `at_hash` is OIDC Core §3.1.3.6's: the left half of the access token's
/// SHA-256, base64url.
pub(super) fn user_tokens_for(
    state: &State,
    client: &DemoClient,
    user: &DemoUser,
    sign_in: &SignIn<'_>,
) -> UserTokens {
    let now = now_secs();
    let exp = now + state.cfg.access_ttl.as_secs();
    let auth_time = sign_in.auth_time.unwrap_or(now);
    let origin_jti = sign_in
        .origin_jti
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
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
        c.insert("auth_time".into(), auth_time.into());
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), now.into());
        c.insert("jti".into(), Uuid::new_v4().to_string().into());
        c
    };

    let mut access = claims("access");
    access.insert("client_id".into(), client.client_id.clone().into());
    access.insert("scope".into(), sign_in.scopes.join(" ").into());
    access.insert("username".into(), user.username.clone().into());
    access.insert("version".into(), 2.into());
    let access = state.access_key.sign(&Value::Object(access));

    let mut id = claims("id");
    if sign_in.at_hash {
        id.insert("at_hash".into(), at_hash(&access).into());
    }
    id.insert("email_verified".into(), true.into());
    id.insert("cognito:username".into(), user.username.clone().into());
    id.insert("aud".into(), client.client_id.clone().into());
    id.insert("email".into(), user.email.clone().into());
    if let Some(nonce) = sign_in.nonce {
        id.insert("nonce".into(), nonce.into());
    }

    UserTokens {
        access,
        id: state.id_key.sign(&Value::Object(id)),
        origin_jti,
        auth_time,
    }
}

/// OIDC's `at_hash` of an RS256 access token.
fn at_hash(access_token: &str) -> String {
    let d = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
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
