//! What a client is told when the sidecar answers instead of the upstream. One enum of
//! outcomes, one method that builds the response (status, RFC 6750 `WWW-Authenticate`,
//! `Allow`, `Retry-After`, a terse JSON body); the exact reason goes to the log line and the
//! metrics label, through [`ProxyError::reason`].

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::claims::AuthError;
use crate::ratelimit::Limited;
use crate::routes::Forbidden;

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-09).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "cognito-sidecar";

/// Why a request was refused before it was understood: 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// More than one `Authorization` header (RFC 6750 §3.1: one method, once).
    AuthorizationDuplicated,
    /// Two token sources (header, cookie, query, WebSocket protocol) carry different values.
    MultipleTokens,
    ConnectNotSupported,
    /// No `Host`, several, or one that is not a plain `host[:port]`.
    BadHost,
    /// A path that cannot be normalised safely.
    BadPath,
    /// A path and query that do not make an upstream URI.
    BadTarget,
    /// Decision listener: the original URI header is absent, doubled or not of its form.
    BadOriginalUri,
    /// Decision listener: the original method header is absent, doubled or not a method.
    BadOriginalMethod,
    /// Decision listener: a gRPC `Check` without the original request, or with a header
    /// HTTP would not carry.
    BadCheckRequest,
    /// A gRPC call whose `grpc-timeout` is not 1 to 8 digits and a unit, or is given twice.
    BadGrpcTimeout,
}

impl BadRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            BadRequest::AuthorizationDuplicated => "authorization_duplicated",
            BadRequest::MultipleTokens => "multiple_tokens",
            BadRequest::ConnectNotSupported => "connect_not_supported",
            BadRequest::BadHost => "bad_host",
            BadRequest::BadPath => "bad_path",
            BadRequest::BadTarget => "bad_target",
            BadRequest::BadOriginalUri => "bad_original_uri",
            BadRequest::BadOriginalMethod => "bad_original_method",
            BadRequest::BadCheckRequest => "bad_check_request",
            BadRequest::BadGrpcTimeout => "bad_grpc_timeout",
        }
    }

    /// Whether it is about the credentials, so the answer carries an RFC 6750
    /// `invalid_request` challenge.
    fn is_about_the_token(self) -> bool {
        matches!(
            self,
            BadRequest::AuthorizationDuplicated | BadRequest::MultipleTokens
        )
    }
}

/// Every answer the sidecar gives on its own.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No token or a token that failed verification (401), or no keys to verify it with
    /// yet ([`AuthError::KeysUnavailable`], 503).
    #[error("unauthorized: {}", .0.as_str())]
    Auth(AuthError),
    /// A valid token that fails a route rule: 403 `insufficient_scope`.
    #[error("forbidden: {}", .reason.as_str())]
    Forbidden {
        reason: Forbidden,
        scope_hint: String,
    },
    /// `auth = "deny"`: 403.
    #[error("route denies all requests")]
    Denied,
    /// Decision listener: the peer is not in `[authz] trusted_proxies`: 403.
    #[error("peer is not a trusted proxy")]
    UntrustedProxy,
    /// The path matches routes, none for this method: 405.
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    /// A request the sidecar refuses to interpret: 400.
    #[error("bad request: {}", .0.as_str())]
    BadRequest(BadRequest),
    /// The upstream refused, reset or answered garbage: 502.
    #[error("upstream unavailable")]
    BadGateway(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The upstream did not answer within `request_timeout`: 504.
    #[error("upstream timed out")]
    GatewayTimeout,
    /// An `auth = "login"` route without a token or a usable session: 401 (a browser's
    /// navigation is sent to sign in instead). `clear`: a session cookie was there, and is
    /// to be removed.
    #[error("sign-in required: {reason}")]
    LoginRequired { reason: &'static str, clear: bool },
    /// An unsafe method authenticated by the session cookie alone, not from the sidecar's
    /// own origin: 403.
    #[error("cross-site request")]
    Csrf,
    /// Over the route's `rate_limit`: 429 with `Retry-After` and the RateLimit fields.
    #[error("rate limited")]
    RateLimited(Limited),
}

impl From<AuthError> for ProxyError {
    fn from(e: AuthError) -> Self {
        ProxyError::Auth(e)
    }
}

impl ProxyError {
    /// The specific reason: the `error_description`, the log line's `outcome` and the metrics
    /// label.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::Auth(e) => e.as_str(),
            ProxyError::Forbidden { reason, .. } => reason.as_str(),
            ProxyError::Denied => "denied",
            ProxyError::UntrustedProxy => "untrusted_proxy",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::BadRequest(r) => r.as_str(),
            ProxyError::BadGateway(_) => "upstream_unavailable",
            ProxyError::GatewayTimeout => "upstream_timeout",
            ProxyError::LoginRequired { reason, .. } => reason,
            ProxyError::Csrf => "csrf",
            ProxyError::RateLimited(_) => "rate_limited",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Auth(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Auth(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden { .. } | ProxyError::Denied | ProxyError::UntrustedProxy => {
                StatusCode::FORBIDDEN
            }
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::LoginRequired { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Csrf => StatusCode::FORBIDDEN,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The body's `error` code.
    fn code(&self) -> &'static str {
        match self {
            ProxyError::Auth(AuthError::Missing) => "unauthorized",
            ProxyError::Auth(e) if e.is_unavailable() => "temporarily_unavailable",
            ProxyError::Auth(_) => "invalid_token",
            ProxyError::Forbidden { .. } => "insufficient_scope",
            ProxyError::Denied | ProxyError::UntrustedProxy => "forbidden",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::BadGateway(_) => "bad_gateway",
            ProxyError::GatewayTimeout => "gateway_timeout",
            ProxyError::LoginRequired { .. } => "unauthorized",
            ProxyError::Csrf => "forbidden",
            ProxyError::RateLimited(_) => "too_many_requests",
        }
    }

    /// Builds the answer. `request_id` is echoed in the body (the caller sets the header).
    pub fn to_response(&self, request_id: &str) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.reason(),
            "request_id": request_id,
        });
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let challenge = match self {
            ProxyError::Auth(AuthError::Missing) | ProxyError::LoginRequired { .. } => {
                Some(format!("Bearer realm=\"{REALM}\""))
            }
            ProxyError::Auth(e) if e.is_unavailable() => None,
            ProxyError::Auth(e) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                e.as_str()
            )),
            ProxyError::BadRequest(r) if r.is_about_the_token() => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\", error_description=\"{}\"",
                r.as_str()
            )),
            ProxyError::Forbidden { reason, scope_hint } if scope_hint.is_empty() => Some(format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\"",
                reason.as_str()
            )),
            ProxyError::Forbidden { reason, scope_hint } => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope_hint}\", error_description=\"{}\"",
                reason.as_str()
            )),
            _ => None,
        };
        if let Some(c) = challenge {
            // Built from config-validated scopes (no quotes or controls) and fixed strings.
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.insert(WWW_AUTHENTICATE, v);
            }
        }
        match self {
            ProxyError::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(ALLOW, v);
                }
            }
            ProxyError::Auth(e) if e.is_unavailable() => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ProxyError::RateLimited(l) => {
                h.insert(RETRY_AFTER, HeaderValue::from(l.retry_after));
                h.insert(RATELIMIT_POLICY.clone(), l.policy.clone());
                if let Ok(v) = HeaderValue::from_str(&l.ratelimit_header()) {
                    h.insert(RATELIMIT.clone(), v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// An error and its causes for a log line: `upstream connection failed: tcp connect error:
/// Connection refused (os error 111)`, a cause already named by one before it skipped.
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&chain_messages(Some(self.0)).join(": "))
    }
}

/// The messages of an error chain, from `first` down its sources, each one that is not
/// already part of a message before it (wrappers often repeat their cause).
pub fn chain_messages(first: Option<&(dyn std::error::Error + 'static)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = first;
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.iter().any(|said| said.contains(&s)) {
            out.push(s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www(e: &ProxyError) -> Option<String> {
        e.to_response("rid")
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn missing_token_has_no_error_param() {
        let e = ProxyError::Auth(AuthError::Missing);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(www(&e).unwrap(), "Bearer realm=\"cognito-sidecar\"");
    }

    #[test]
    fn invalid_token_names_the_reason() {
        let e = ProxyError::Auth(AuthError::Expired);
        assert_eq!(
            www(&e).unwrap(),
            "Bearer realm=\"cognito-sidecar\", error=\"invalid_token\", error_description=\"expired\""
        );
        let body = e.to_response("r-1").into_body();
        let bytes = futures_body(body);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(v["request_id"], "r-1");
    }

    #[test]
    fn forbidden_carries_needed_scopes() {
        let e = ProxyError::Forbidden {
            reason: Forbidden::MissingScope,
            scope_hint: "dotnet-demo/dotnet".into(),
        };
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            www(&e).unwrap(),
            "Bearer error=\"insufficient_scope\", scope=\"dotnet-demo/dotnet\", error_description=\"missing_scope\""
        );
    }

    #[test]
    fn statuses_and_extra_headers() {
        let r = ProxyError::MethodNotAllowed {
            allow: "GET, HEAD".into(),
        }
        .to_response("x");
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        let r = ProxyError::Auth(AuthError::KeysUnavailable).to_response("x");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key(RETRY_AFTER));
        assert!(!r.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(ProxyError::GatewayTimeout.status(), 504);
        assert_eq!(ProxyError::BadGateway("x".into()).status(), 502);
        assert_eq!(ProxyError::Denied.status(), 403);
        assert_eq!(ProxyError::BadRequest(BadRequest::BadPath).status(), 400);
    }

    #[test]
    fn rate_limited_is_429_with_retry_after_and_the_ratelimit_fields() {
        let e = ProxyError::RateLimited(Limited {
            retry_after: 7,
            policy: HeaderValue::from_static("\"route\";q=10;w=60"),
        });
        let r = e.to_response("x");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[RETRY_AFTER], "7");
        assert_eq!(r.headers()["ratelimit-policy"], "\"route\";q=10;w=60");
        assert_eq!(r.headers()["ratelimit"], "\"route\";r=0;t=7");
        assert!(!r.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(e.reason(), "rate_limited");
    }

    #[test]
    fn a_failed_condition_is_insufficient_scope() {
        let e = ProxyError::Forbidden {
            reason: Forbidden::ConditionFailed,
            scope_hint: String::new(),
        };
        assert_eq!(e.status(), 403);
        assert_eq!(
            www(&e).unwrap(),
            "Bearer error=\"insufficient_scope\", error_description=\"condition_failed\""
        );
    }

    fn futures_body(b: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { b.collect().await.unwrap().to_bytes() })
    }

    #[test]
    fn causes_name_every_distinct_reason_once() {
        let io =
            || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset (os error 104)");
        // A message that already says its cause: not repeated.
        let e = crate::upstream::UpstreamError::Connect(Box::new(io()));
        assert_eq!(
            Causes(&e).to_string(),
            "connect to upstream failed: reset (os error 104)"
        );
        let outer = ProxyError::BadGateway(Box::new(e));
        assert_eq!(
            Causes(&outer).to_string(),
            "upstream unavailable: connect to upstream failed: reset (os error 104)"
        );
        // One that does not (hyper's "connection error" over an io::Error): the cause added.
        #[derive(Debug, thiserror::Error)]
        #[error("connection error")]
        struct Wrapper(#[source] std::io::Error);
        assert_eq!(
            Causes(&Wrapper(io())).to_string(),
            "connection error: reset (os error 104)"
        );
    }
}
