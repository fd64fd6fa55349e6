//! One check request's answer, whoever asked (an HTTP front proxy through `authz.rs`, or
//! Envoy's gRPC `Check` through `authz_grpc.rs`): the same decision as the proxy
//! (`decide.rs`) on the original request, as an HTTP answer. Allowed: 200, an empty body,
//! the identity headers (and claims header) for the front proxy to copy upstream. Refused:
//! the proxy's own answer (status, `WWW-Authenticate`, JSON body), except that nginx's
//! `auth_request` passes only 401 and 403 to the client (and turns anything else into 500),
//! so for it 400 and 405 become 403 with the reason in `X-Auth-Error`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::access::{self, Outcome, Start};
use crate::bearer::Source;
use crate::decide::{decide, Ask, Seen};
use crate::error::{BadRequest, ProxyError};
use crate::metrics::Metrics;
use crate::state::State;

pub static X_AUTH_ERROR: HeaderName = HeaderName::from_static("x-auth-error");
/// The identity headers an allowed answer asks Envoy to remove from the upstream request:
/// the HTTP service's header, and what the gRPC answer's `headers_to_remove` is made of.
pub static X_ENVOY_AUTH_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The request the front proxy is asking about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Origin-form: the path and the query, never a fragment.
    pub target: http::uri::PathAndQuery,
    pub host: Option<String>,
}

/// The connection a check request came on: the front proxy's address, and whether it is
/// trusted (it always is when anything is decided), for a `key = "ip"` limit.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    pub trusted: bool,
}

/// Who asks, which shapes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// nginx `auth_request` / ingress-nginx `auth-url`: 400 and 405 are answered 403.
    Nginx,
    Traefik,
    /// Envoy's HTTP service: an allowed answer names the headers to remove.
    EnvoyHttp,
    /// Envoy's gRPC `Check`: like the HTTP service, turned into a `CheckResponse` after.
    Grpc,
}

pub fn bad_method() -> ProxyError {
    ProxyError::BadRequest(BadRequest::BadOriginalMethod)
}

pub fn bad_uri() -> ProxyError {
    ProxyError::BadRequest(BadRequest::BadOriginalUri)
}

/// An origin-form request target (`/path?query`): no `*`, no authority form, no relative
/// path, no fragment, nothing `http` would not send.
pub fn origin_form(s: &str) -> Option<http::uri::PathAndQuery> {
    if !s.starts_with('/') || s.starts_with("//") || s.contains('#') {
        return None;
    }
    let pq: http::uri::PathAndQuery = s.parse().ok()?;
    (pq.as_str() == s).then_some(pq)
}

/// A method of an original request: any token but CONNECT (which has no path to match).
pub fn method(bytes: &[u8]) -> Result<Method, ProxyError> {
    let m = Method::from_bytes(bytes).map_err(|_| bad_method())?;
    if m == Method::CONNECT {
        return Err(bad_method());
    }
    Ok(m)
}

/// Decides on `original` (already read, or the reason it could not be, such as an untrusted
/// peer) with the token sources read from `headers`, and answers as `form` wants. The log
/// line and metrics are written here, once.
pub async fn answer(
    state: &State,
    metrics: &Metrics,
    start: &mut Start,
    original: Result<Original, ProxyError>,
    headers: &HeaderMap,
    form: Form,
    peer: Peer,
) -> Response<Full<Bytes>> {
    let cfg = &state.config;
    let (original, refusal) = match original {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    if let Some(o) = &original {
        start.method = o.method.clone();
    }
    let request_id = &start.request_id;
    let mut seen = Seen {
        trace: state.tracing.begin(headers, true),
        ..Seen::default()
    };
    let result = match (&original, refusal) {
        (_, Some(e)) => Err(e),
        // One of the two is always set.
        (None, None) => Err(ProxyError::UntrustedProxy),
        (Some(o), None) => {
            let preflight = cfg.default.preflight_forward
                && o.method == Method::OPTIONS
                && headers.contains_key(header::ORIGIN)
                && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            let ask = Ask {
                method: &o.method,
                path: o.target.path(),
                headers,
                query: o.target.query(),
                websocket: false,
                preflight,
                request_id,
                // Front proxies ask with tokens: sessions are the proxy listener's.
                login_origin: None,
                host: o.host.as_deref(),
                peer: peer.ip,
                peer_trusted: peer.trusted,
            };
            decide(state, ask, &mut seen).await
        }
    };
    let (mut resp, outcome) = match result {
        Ok(allowed) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            let h = r.headers_mut();
            if let Some(v) = seen.verified.as_deref() {
                for (name, value) in v.headers() {
                    h.insert(name.clone(), value);
                }
            }
            if let (Some(name), Some(value)) = (&cfg.forward.claims_header, allowed.claims_value) {
                h.insert(name.clone(), value);
            }
            if matches!(form, Form::EnvoyHttp | Form::Grpc) {
                let alb_verified = allowed.token_source == Some(Source::AlbData);
                envoy_headers_to_remove(state, h, alb_verified);
            }
            (r, Outcome::Allowed)
        }
        Err(e) => {
            let outcome = Outcome::refused(&e);
            let mut r = e.to_response(request_id);
            if form == Form::Nginx
                && matches!(
                    r.status(),
                    StatusCode::BAD_REQUEST
                        | StatusCode::METHOD_NOT_ALLOWED
                        | StatusCode::TOO_MANY_REQUESTS
                )
            {
                // nginx's auth_request passes only 401 and 403 on (a 429's Retry-After and
                // RateLimit fields stay, for `auth_request_set` to copy).
                *r.status_mut() = StatusCode::FORBIDDEN;
                r.headers_mut()
                    .insert(X_AUTH_ERROR.clone(), HeaderValue::from_static(e.reason()));
            }
            (r, outcome)
        }
    };
    access::finish(state, metrics, &mut resp, start, &seen, outcome);
    resp
}

/// For Envoy: every identity header this answer does not set (the set ones overwrite the
/// client's), the `[token] header` source and an ALB's `x-amzn-oidc-*` headers (all but an
/// `x-amzn-oidc-data` an ALB issuer verified, as the proxy does) go in
/// `x-envoy-auth-headers-to-remove`, so that no client copy reaches the upstream.
fn envoy_headers_to_remove(state: &State, h: &mut HeaderMap, alb_verified: bool) {
    let cfg = &state.config;
    let names = cfg
        .forward
        .headers
        .iter()
        .map(|(name, _)| name)
        .chain(cfg.forward.claims_header.iter())
        .filter(|name| !h.contains_key(*name))
        .chain(cfg.token.header.iter())
        .map(HeaderName::as_str)
        .chain(
            crate::alb::ALB_HEADERS
                .into_iter()
                .filter(|n| !(alb_verified && *n == "x-amzn-oidc-data")),
        )
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&names) {
        if !names.is_empty() {
            h.insert(X_ENVOY_AUTH_HEADERS_TO_REMOVE.clone(), v);
        }
    }
}
