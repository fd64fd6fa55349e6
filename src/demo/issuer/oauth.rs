//! OAuth 2.0 plumbing shared by the `/oauth2/*` endpoints: reading the form
//! body, answers that are never cached (JSON or empty), `{"error": ..}`
//! answers, and client authentication (`client_secret_basic` or
//! `client_secret_post`).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::config::{DemoClient, IssuerConfig};
use crate::demo::serve::{self, BodyError, Resp};

/// The parameters of a form body, each given once.
pub(super) type Form = HashMap<String, String>;

/// An error answer: `{"error": error}` with its status.
#[derive(Debug, Clone, Copy)]
pub(super) struct OAuthError {
    status: StatusCode,
    error: &'static str,
}

impl OAuthError {
    /// A 400 with this `error` code.
    pub(super) fn bad_request(error: &'static str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
        }
    }

    /// The HTTP status.
    pub(super) fn status(&self) -> StatusCode {
        self.status
    }

    /// A 401 with this `error` code.
    pub(super) fn unauthorized(error: &'static str) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error,
        }
    }
}

/// What an endpoint answers: the body of a 200, or an error.
pub(super) type Answer = Result<Value, OAuthError>;

/// The HTTP answer for `answer`, with `Cache-Control: no-store` and
/// `Pragma: no-cache` either way.
pub(super) fn respond(answer: Answer) -> Resp {
    let (status, body) = match answer {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (e.status, json!({"error": e.error})),
    };
    no_store(serve::json_with(
        status,
        "application/json;charset=UTF-8",
        &body,
    ))
}

/// [`respond`] for an endpoint whose success is a 200 with an empty body.
pub(super) fn respond_empty(answer: Result<(), OAuthError>) -> Resp {
    match answer {
        Ok(()) => no_store(Response::new(Full::new(Bytes::new()))),
        Err(e) => respond(Err(e)),
    }
}

fn no_store(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// The `application/x-www-form-urlencoded` body of a request; any other
/// body is `invalid_request` (413 when it is too large).
pub(super) async fn read_form(headers: &HeaderMap, body: Incoming) -> Result<Form, OAuthError> {
    let invalid = OAuthError::bad_request("invalid_request");
    if serve::media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(invalid);
    }
    let body = serve::read_body(body).await.map_err(|e| match e {
        BodyError::TooLarge => OAuthError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..invalid
        },
        BodyError::Read => invalid,
    })?;
    // RFC 6749 §3.2: parameters must not be repeated.
    let mut form = Form::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(invalid);
        }
    }
    Ok(form)
}

/// The client a request authenticates as, with its secret in
/// `Authorization: Basic` or in the form, not both (RFC 6749 §2.3): both is
/// `invalid_request`; none, an unknown client or a wrong secret `invalid_client`.
pub(super) fn authenticate_client<'a>(
    cfg: &'a IssuerConfig,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'a DemoClient, OAuthError> {
    let invalid_client = OAuthError::bad_request("invalid_client");
    let (client_id, secret) =
        client_credentials(headers, form).map_err(|e| e.error(invalid_client))?;
    cfg.client_by_id(&client_id)
        .filter(|c| secret.as_deref().is_some_and(|s| c.has_secret(s)))
        .ok_or(invalid_client)
}

/// The client a request names, authenticated: a client with a secret must
/// give it (Basic or form, as [`authenticate_client`]); a public client gives
/// `client_id` alone (an empty secret counts as none). Else `invalid_client`.
pub(super) fn authenticate_any_client<'a>(
    cfg: &'a IssuerConfig,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'a DemoClient, OAuthError> {
    let invalid_client = OAuthError::bad_request("invalid_client");
    let (client_id, secret) =
        client_credentials(headers, form).map_err(|e| e.error(invalid_client))?;
    let secret = secret.filter(|s| !s.is_empty());
    cfg.client_by_id(&client_id)
        .filter(|c| c.authenticates(secret.as_deref()))
        .ok_or(invalid_client)
}

/// Why a request's client credentials cannot be used.
#[derive(Debug, Clone, Copy)]
pub(super) enum BadCredentials {
    /// In `Authorization: Basic` and in the form at once.
    Twice,
    /// None given, or an `Authorization` header that is not usable Basic.
    Unusable,
}

impl BadCredentials {
    /// `invalid_request` for [`BadCredentials::Twice`], else `invalid_client`.
    pub(super) fn error(self, invalid_client: OAuthError) -> OAuthError {
        match self {
            BadCredentials::Twice => OAuthError::bad_request("invalid_request"),
            BadCredentials::Unusable => invalid_client,
        }
    }
}

/// The client id a request gives, with the secret if it gives one: from
/// `Authorization: Basic` (id and secret) or the form (`client_id`, and
/// `client_secret` if there), not both.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
) -> Result<(String, Option<String>), BadCredentials> {
    let form_creds = (form.get("client_id"), form.get("client_secret"));
    match (basic_credentials(headers), form_creds) {
        (Some(_), (Some(_), _) | (_, Some(_))) => Err(BadCredentials::Twice),
        (Some(Err(())), _) | (None, (None, _)) => Err(BadCredentials::Unusable),
        (Some(Ok((id, secret))), _) => Ok((id, Some(secret))),
        (None, (Some(id), secret)) => Ok((id.clone(), secret.cloned())),
    }
}

/// Client credentials from `Authorization: Basic`, if that header is there.
/// `Some(Err(()))` when it is there but unusable.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some((|| {
        let v = value.to_str().map_err(|_| ())?.trim();
        let (scheme, rest) = v.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(());
        }
        let decoded = STANDARD.decode(rest.trim()).map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (id, secret) = decoded.split_once(':').ok_or(())?;
        // Taken as is, as Cognito documents it (Base64Encode(client_id:client_secret))
        // and as clients send it; the RFC 6749 §2.3.1 form-encoding step is not undone.
        Ok((id.to_owned(), secret.to_owned()))
    })())
}
