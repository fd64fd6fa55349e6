//! AWS JSON 1.1 plumbing for the IdP API: answers, `{"__type", "message"}`
//! errors with `x-amzn-errortype`, and reading the members of a request.

use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use crate::demo::serve::{self, Resp};
use crate::token::AMZ_JSON;

/// A request body: a JSON object of members.
pub(super) type Input = Map<String, Value>;

/// What an operation answers: the body of a 200, or an error.
pub(super) type Answer = Result<Value, AmzError>;

/// An error answer: `{"__type": kind, "message": message}`, 400 unless said.
#[derive(Debug)]
pub(super) struct AmzError {
    status: StatusCode,
    kind: &'static str,
    message: Option<String>,
}

impl AmzError {
    /// A 400 of type `kind` with `message`.
    pub(super) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        AmzError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: Some(message.into()),
        }
    }

    /// A 400 of type `kind` without a message.
    pub(super) fn bare(kind: &'static str) -> Self {
        AmzError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: None,
        }
    }

    /// The same error with another status.
    pub(super) fn with_status(self, status: StatusCode) -> Self {
        AmzError { status, ..self }
    }
}

/// `SerializationException`: the request is not of the operation's shape.
pub(super) fn serialization_error(message: impl Into<String>) -> AmzError {
    AmzError::new("SerializationException", message)
}

/// `InvalidParameterException`.
pub(super) fn invalid_param(message: impl Into<String>) -> AmzError {
    AmzError::new("InvalidParameterException", message)
}

/// `NotAuthorizedException`.
pub(super) fn not_authorized(message: impl Into<String>) -> AmzError {
    AmzError::new("NotAuthorizedException", message)
}

/// The HTTP answer for `answer`.
pub(super) fn respond(answer: Answer) -> Resp {
    let e = match answer {
        Ok(body) => return serve::json_with(StatusCode::OK, AMZ_JSON, &body),
        Err(e) => e,
    };
    let body = match e.message {
        Some(m) => json!({"__type": e.kind, "message": m}),
        None => json!({"__type": e.kind}),
    };
    let mut r = serve::json_with(e.status, AMZ_JSON, &body);
    if let Ok(v) = HeaderValue::from_str(&format!("{}:", e.kind)) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// The string member `name` (e.g. `ClientId`) of `input`; a missing or null
/// member is the validation error Cognito gives (naming it `clientId`), any
/// other type a serialization error.
pub(super) fn required_string<'a>(input: &'a Input, name: &str) -> Result<&'a str, AmzError> {
    match input.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => {
            let mut chars = name.chars();
            let field: String = chars
                .next()
                .map(|c| c.to_ascii_lowercase())
                .into_iter()
                .chain(chars)
                .collect();
            Err(invalid_param(format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            )))
        }
        Some(_) => Err(serialization_error(format!("{name} must be a string"))),
    }
}

/// At most 64 printable characters of client input, for error messages.
pub(super) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}
