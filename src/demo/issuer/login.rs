//! Managed login: `GET /oauth2/authorize` (and `GET /login`) check an
//! authorization request as Cognito does and show the sign-in form;
//! `POST /login` checks the user's password and sends the browser back to
//! the client's callback URL with a code (redeemed on `/oauth2/token`, see
//! `code_grant`); `GET /logout` sends it to a registered sign-out URL.
//!
//! A request that names no known client or an unregistered `redirect_uri`,
//! or asks another `response_type` than `code`, gets an error page (400) and
//! is never redirected; any other refusal is redirected to the callback URL
//! with `error` (and `state`), as RFC 6749 §4.1.2.1 has it.

use std::collections::HashMap;
use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::codes::CodeGrant;
use super::config::DemoClient;
use super::html;
use super::mint::now_secs;
use super::oauth;
use super::state::State;
use crate::demo::serve::Resp;

/// The query parameters (or form fields) of a request, each given once.
type Params = HashMap<String, String>;

/// The authorization request parameters the form carries along (hidden).
const CARRIED: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

/// Longest `nonce` kept with a code.
const MAX_NONCE: usize = 512;

/// RFC 3986 unreserved characters stay; everything else is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A checked authorization request.
struct AuthRequest<'a> {
    client: &'a DemoClient,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    scopes: Vec<String>,
    code_challenge: Option<String>,
}

/// Why an authorization request is refused.
enum Refusal {
    /// An error page: the browser is not sent anywhere.
    Page(StatusCode, String),
    /// Back to the (registered) callback URL with this answer.
    Redirect(String),
}

impl Refusal {
    fn into_response(self) -> Resp {
        match self {
            Refusal::Page(status, message) => html::error_page(status, &message),
            Refusal::Redirect(url) => redirect(&url),
        }
    }
}

/// A 302 to `url` (a 500 page if it cannot be a `Location`).
fn redirect(url: &str) -> Resp {
    let Ok(location) = HeaderValue::from_str(url) else {
        return html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Bad redirect URL.");
    };
    let mut r = Response::new(Full::default());
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// `base` with `params` appended to its query.
fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&enc(v));
        sep = '&';
    }
    url
}

/// The parameters of a query string, or `None` if one is repeated.
fn parse_params(raw: &[u8]) -> Option<Params> {
    let mut params = Params::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(params)
}

/// The query parameters of `req`, or `None` if one is repeated.
fn query_params(req: &Request<Incoming>) -> Option<Params> {
    parse_params(req.uri().query().unwrap_or("").as_bytes())
}

fn repeated_page() -> Resp {
    html::error_page(
        StatusCode::BAD_REQUEST,
        "A parameter is given more than once.",
    )
}

/// Whether `s` is a PKCE code verifier or S256 challenge: 43 to 128 of
/// RFC 7636's unreserved characters.
pub(super) fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request in Cognito's order: the client, the
/// `redirect_uri`, the `response_type` (refused with a page); the client's
/// flows, PKCE, the scopes (refused back to the callback URL).
fn check<'a>(state: &'a State, p: &Params) -> Result<AuthRequest<'a>, Refusal> {
    let page = |m: &str| Refusal::Page(StatusCode::BAD_REQUEST, m.to_owned());
    let Some(client_id) = p.get("client_id").filter(|c| !c.is_empty()) else {
        return Err(page("Required parameter client_id is missing."));
    };
    let Some(client) = state.cfg.client_by_id(client_id) else {
        return Err(page("Invalid client: no such app client."));
    };
    let Some(redirect_uri) = p.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return Err(page("Required parameter redirect_uri is missing."));
    };
    if !client.callback_urls.iter().any(|u| u == redirect_uri) {
        return Err(page(
            "redirect_mismatch: redirect_uri is not a callback URL of this client.",
        ));
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        None | Some("") => return Err(page("Required parameter response_type is missing.")),
        Some(_) => {
            return Err(page(
                "unsupported_response_type: only response_type=code is supported.",
            ))
        }
    }
    let st = p.get("state").cloned();
    let back = |error: &str, description: &str| {
        let mut q = vec![("error", error), ("error_description", description)];
        if let Some(s) = &st {
            q.push(("state", s));
        }
        Refusal::Redirect(with_query(redirect_uri, &q))
    };
    if !client.authorization_code {
        return Err(back(
            "unauthorized_client",
            "code flow not enabled for this client",
        ));
    }
    let challenge = p.get("code_challenge").filter(|c| !c.is_empty());
    let method = p.get("code_challenge_method").filter(|m| !m.is_empty());
    match (challenge, method.map(String::as_str)) {
        (None, None) => {}
        (Some(c), Some("S256")) if pkce_shaped(c) => {}
        (Some(_), Some("S256")) => {
            return Err(back("invalid_request", "code_challenge is malformed"))
        }
        (Some(_), _) => {
            return Err(back(
                "invalid_request",
                "code_challenge_method must be S256",
            ))
        }
        (None, Some(_)) => return Err(back("invalid_request", "code_challenge is missing")),
    }
    let nonce = p.get("nonce").filter(|n| !n.is_empty()).cloned();
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(back("invalid_request", "nonce is too long"));
    }
    let scopes: Vec<String> = match p.get("scope").map(|s| s.trim()) {
        None | Some("") => client.allowed_oauth_scopes.clone(),
        Some(asked) => {
            let mut out: Vec<String> = Vec::new();
            for s in asked.split_ascii_whitespace() {
                if !client.allowed_oauth_scopes.iter().any(|a| a == s) {
                    return Err(back("invalid_scope", "a scope asked is not allowed"));
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            out
        }
    };
    if scopes.is_empty() {
        return Err(back("invalid_scope", "no scope to grant"));
    }
    Ok(AuthRequest {
        client,
        redirect_uri: redirect_uri.clone(),
        state: st,
        nonce,
        scopes,
        code_challenge: challenge.cloned(),
    })
}

/// The request parameters the form carries, as given.
fn carried(p: &Params) -> Vec<(&str, &str)> {
    CARRIED
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (*k, v.as_str())))
        .collect()
}

/// `GET /oauth2/authorize` and `GET /login`: the sign-in form for a valid
/// authorization request.
pub(super) fn authorize(state: &State, req: &Request<Incoming>) -> Resp {
    let Some(p) = query_params(req) else {
        return repeated_page();
    };
    match check(state, &p) {
        Ok(a) => html::sign_in_page(StatusCode::OK, &a.client.name, &carried(&p), None, ""),
        Err(r) => r.into_response(),
    }
}

/// `POST /login` (form: the carried request, `username`, `password`): a
/// wrong password shows the form again with an error; the right one sends
/// the browser to `redirect_uri?code=..&state=..`.
pub(super) async fn login(state: &State, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let form = match oauth::read_form(&parts.headers, body).await {
        Ok(f) => f,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return html::error_page(e.status(), "The request is too large.")
        }
        Err(_) => {
            return html::error_page(
                StatusCode::BAD_REQUEST,
                "Expected a form (application/x-www-form-urlencoded), each field once.",
            )
        }
    };
    let a = match check(state, &form) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let Some(user) = state.cfg.user_with_password(username, password) else {
        return html::sign_in_page(
            StatusCode::OK,
            &a.client.name,
            &carried(&form),
            Some("Incorrect username or password."),
            username,
        );
    };
    let grant = CodeGrant {
        client_id: a.client.client_id.clone(),
        redirect_uri: a.redirect_uri.clone(),
        code_challenge: a.code_challenge,
        nonce: a.nonce,
        scopes: a.scopes,
        username: user.username.clone(),
        auth_time: now_secs(),
    };
    let code = state.codes().issue(grant, Instant::now());
    let mut q = vec![("code", code.as_str())];
    if let Some(s) = &a.state {
        q.push(("state", s));
    }
    redirect(&with_query(&a.redirect_uri, &q))
}

/// `GET /logout?client_id=..&logout_uri=..`: a 302 to `logout_uri` if it is
/// a sign-out URL of the client; or, with `redirect_uri` and
/// `response_type` instead, back to sign-in (`/oauth2/authorize` with the
/// same query) if `redirect_uri` is a callback URL; else an error page. The
/// issuer keeps no browser session, so there is nothing else to forget.
pub(super) fn logout(state: &State, req: &Request<Incoming>) -> Resp {
    let Some(p) = query_params(req) else {
        return repeated_page();
    };
    let page = |m: &str| html::error_page(StatusCode::BAD_REQUEST, m);
    let Some(client) = p.get("client_id").and_then(|c| state.cfg.client_by_id(c)) else {
        return page("Invalid client: no such app client.");
    };
    if let Some(logout_uri) = p.get("logout_uri") {
        if client.logout_urls.iter().any(|u| u == logout_uri) {
            return redirect(logout_uri);
        }
        return page("logout_uri is not a sign-out URL of this client.");
    }
    if let (Some(r), Some(_)) = (p.get("redirect_uri"), p.get("response_type")) {
        if client.callback_urls.iter().any(|u| u == r) {
            let query = req.uri().query().unwrap_or("");
            return redirect(&format!("/oauth2/authorize?{query}"));
        }
        return page("redirect_mismatch: redirect_uri is not a callback URL of this client.");
    }
    page("Required parameter logout_uri is missing.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_login_query_building_and_pkce_shape() {
        assert_eq!(
            with_query(
                "http://localhost:1/cb",
                &[("code", "a b"), ("state", "x&y=\"<")]
            ),
            "http://localhost:1/cb?code=a%20b&state=x%26y%3D%22%3C"
        );
        assert_eq!(
            with_query("http://h/cb?k=v", &[("code", "c")]),
            "http://h/cb?k=v&code=c"
        );
        assert!(pkce_shaped(&"a".repeat(43)));
        assert!(!pkce_shaped(&"a".repeat(42)));
        assert!(!pkce_shaped(&"a".repeat(129)));
        assert!(!pkce_shaped(&format!("{}+", "a".repeat(43))));
        assert!(parse_params(b"a=1&a=2").is_none());
    }
}
