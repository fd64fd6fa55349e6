//! The Cognito IdP API, `POST /` in AWS JSON 1.1: picks the operation named
//! by `X-Amz-Target`, checks the content type, reads the body as a JSON
//! object and stamps every answer with `x-amzn-requestid`.

use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use uuid::Uuid;

use super::amz::{self, serialization_error, AmzError, Answer, Input};
use super::initiate_auth::initiate_auth;
use super::revoke::revoke_token;
use super::state::State;
use super::user_api::{get_user, global_sign_out};
use crate::demo::serve::{self, BodyError, Resp};
use crate::token::{
    GET_USER_TARGET, GLOBAL_SIGN_OUT_TARGET, INITIATE_AUTH_TARGET, REVOKE_TOKEN_TARGET,
};

/// An operation: the answer to its input.
type Operation = fn(&State, &Input) -> Answer;

pub(super) async fn idp_api(state: &State, req: Request<Incoming>) -> Resp {
    let mut resp = amz::respond(dispatch(state, req).await);
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn dispatch(state: &State, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let operation: Operation = match target {
        Some(INITIATE_AUTH_TARGET) => initiate_auth,
        Some(GET_USER_TARGET) => get_user,
        Some(GLOBAL_SIGN_OUT_TARGET) => global_sign_out,
        Some(REVOKE_TOKEN_TARGET) => revoke_token,
        _ => return Err(AmzError::bare("UnknownOperationException")),
    };
    match serve::media_type(&parts.headers).as_deref() {
        Some("application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json") => {}
        _ => {
            return Err(serialization_error(
                "Content-Type must be application/x-amz-json-1.1",
            ))
        }
    }
    let body = serve::read_body(body).await.map_err(|e| match e {
        BodyError::TooLarge => {
            serialization_error("Request body too large").with_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        BodyError::Read => serialization_error("Could not read the request body"),
    })?;
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(&body) else {
        return Err(serialization_error("The request body is not a JSON object"));
    };
    operation(state, &input)
}
