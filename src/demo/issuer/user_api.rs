//! The IdP API operations a signed-in user calls with their access token:
//! `GetUser` (who the token is for, if it is still live) and `GlobalSignOut`
//! (revokes every token issued to the user so far).

use serde_json::json;

use super::access_check::{user_of_access_token, TokenUser};
use super::amz::{required_string, AmzError, Answer, Input};
use super::config::DemoUser;
use super::state::State;

/// `GetUser`: `{"Username", "UserAttributes": [{"Name", "Value"}, ...]}`.
pub(super) fn get_user(state: &State, input: &Input) -> Answer {
    let user = user_of(state, input)?;
    Ok(json!({
        "Username": user.username,
        "UserAttributes": [
            {"Name": "sub", "Value": user.sub.to_string()},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "email", "Value": user.email},
        ],
    }))
}

/// `GlobalSignOut`: `{}`; the token given is revoked too.
pub(super) fn global_sign_out(state: &State, input: &Input) -> Answer {
    let user = user_of(state, input)?;
    state.sessions().sign_out(&user.username);
    Ok(json!({}))
}

/// The pool's user behind the live access token `AccessToken`; a user that
/// is gone (or was recreated: another `sub`) is `UserNotFoundException`.
fn user_of<'a>(state: &'a State, input: &Input) -> Result<&'a DemoUser, AmzError> {
    let token = required_string(input, "AccessToken")?;
    let TokenUser { username, sub } = user_of_access_token(state, token)?;
    state
        .cfg
        .users
        .iter()
        .find(|u| u.username == username && u.sub.to_string() == sub)
        .ok_or_else(|| AmzError::new("UserNotFoundException", "User does not exist."))
}
