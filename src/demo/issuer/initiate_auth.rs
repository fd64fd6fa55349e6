//! `InitiateAuth` with `USER_PASSWORD_AUTH`: checks the client, its
//! `SECRET_HASH` when it has a secret, and the user's password, and answers
//! with access, id and refresh tokens (recording the sign-in); every refusal
//! is Cognito's.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::amz::{
    invalid_param, not_authorized, printable, required_string, serialization_error, AmzError,
    Answer, Input,
};
use super::config::DemoClient;
use super::mint;
use super::sessions::Session;
use super::state::State;

const AUTH_FLOWS: &str = "[USER_SRP_AUTH, REFRESH_TOKEN_AUTH, REFRESH_TOKEN, CUSTOM_AUTH, USER_PASSWORD_AUTH, USER_AUTH]";

pub(super) fn initiate_auth(state: &State, input: &Input) -> Answer {
    let client_id = required_string(input, "ClientId")?;
    let flow = required_string(input, "AuthFlow")?;
    let flow_known = AUTH_FLOWS
        .trim_matches(['[', ']'])
        .split(", ")
        .any(|f| f == flow);
    if !flow_known {
        return Err(invalid_param(format!(
            "1 validation error detected: Value '{}' at 'authFlow' failed to satisfy constraint: Member must satisfy enum value set: {AUTH_FLOWS}",
            printable(flow)
        )));
    }
    let Some(client) = state.cfg.client_by_id(client_id) else {
        return Err(AmzError::new(
            "ResourceNotFoundException",
            format!("User pool client {} does not exist.", printable(client_id)),
        ));
    };
    if flow != "USER_PASSWORD_AUTH" || !client.user_password_auth {
        return Err(invalid_param(format!(
            "{flow} flow not enabled for this client"
        )));
    }
    let empty = Map::new();
    let params = match input.get("AuthParameters") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => &empty,
        Some(_) => {
            return Err(serialization_error(
                "AuthParameters must be a map of strings",
            ))
        }
    };
    // AuthParameters is a map<string, string>: any other value type is a
    // serialization error, whatever its key.
    if params.values().any(|v| !v.is_string() && !v.is_null()) {
        return Err(serialization_error(
            "AuthParameters must be a map of strings",
        ));
    }
    let param = |name: &str| params.get(name).and_then(Value::as_str);
    let (username, password, secret_hash) =
        (param("USERNAME"), param("PASSWORD"), param("SECRET_HASH"));
    let Some(username) = username.filter(|u| !u.is_empty()) else {
        return Err(invalid_param("Missing required parameter USERNAME"));
    };
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(invalid_param("Missing required parameter PASSWORD"));
    };
    check_secret_hash(client, username, secret_hash)?;
    // Unknown user and wrong password look the same (PreventUserExistenceErrors).
    let Some(user) = state.cfg.user_with_password(username, password) else {
        return Err(not_authorized("Incorrect username or password."));
    };

    let tokens = mint::user_tokens(state, client, user);
    let refresh = mint::refresh_token();
    state.sessions().issued(
        refresh.clone(),
        Session {
            username: user.username.clone(),
            client_id: client.client_id.clone(),
            origin_jti: tokens.origin_jti,
            scopes: vec![mint::USER_ADMIN_SCOPE.to_owned()],
            auth_time: tokens.auth_time,
            id_token: true,
        },
    );
    Ok(json!({
        "AuthenticationResult": {
            "AccessToken": tokens.access,
            "IdToken": tokens.id,
            "RefreshToken": refresh,
            "ExpiresIn": state.cfg.access_ttl.as_secs(),
            "TokenType": "Bearer",
        },
        "ChallengeParameters": {},
    }))
}

/// A client with a secret must send `SECRET_HASH`, i.e.
/// `Base64(HMAC-SHA256(secret, username + client_id))`; one without needs none.
fn check_secret_hash(
    client: &DemoClient,
    username: &str,
    given: Option<&str>,
) -> Result<(), AmzError> {
    let Some(secret) = &client.client_secret else {
        return Ok(());
    };
    let Some(given) = given else {
        return Err(not_authorized(format!(
            "Client {} is configured with secret but SECRET_HASH was not received",
            client.client_id
        )));
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let msg = [username.as_bytes(), client.client_id.as_bytes()].concat();
    let ok = STANDARD
        .decode(given.trim())
        .is_ok_and(|tag| hmac::verify(&key, &msg, &tag).is_ok());
    if !ok {
        return Err(not_authorized(format!(
            "Unable to verify secret hash for client {}",
            client.client_id
        )));
    }
    Ok(())
}
