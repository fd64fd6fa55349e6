//! The decision listener (`[authz] address`): front proxies that already carry the traffic
//! (nginx `auth_request`, ingress-nginx `auth-url`, Traefik `forwardAuth`, Envoy / Istio
//! `ext_authz` over HTTP, and Envoy's gRPC `Check` through `authz_grpc.rs`) ask it "may
//! this request pass, and as whom?". It never proxies.
//!
//! For each check request: the peer must be in `trusted_proxies` (else 403
//! `untrusted_proxy`, nothing evaluated); the *original* method, path and host are read where
//! `[authz] protocol` says, never guessed ([`original`]); then the same decision as the proxy
//! (`decide.rs`: normalisation, route, token sources, verification, rules). Allowed: 200, an
//! empty body, and the identity headers (and claims header) on the response, for the front
//! proxy to copy upstream. Refused: the proxy's own answer (status, `WWW-Authenticate`,
//! JSON body), except that for `nginx`, whose `auth_request` passes only 401 and 403 to the
//! client (and turns anything else into 500), 400 and 405 become 403 with the reason in
//! `X-Auth-Error`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::access::Start;
use crate::check::{self, bad_method, bad_uri, Form};
pub use crate::check::{origin_form, Original};
use crate::config::{AuthzConfig, AuthzProtocol};
use crate::error::{BadRequest, ProxyError};
use crate::metrics::Metrics;
use crate::proxy::Conn;
use crate::state::State;

/// A check request's answer: an HTTP front proxy's, or a gRPC `Check`'s.
pub type AuthzBody = Either<Full<Bytes>, tonic::body::Body>;

static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The one value of header `name`: `None` when absent, an error when there are two.
fn one<'h>(h: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, ()> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(_), Some(_)) => Err(()),
        (v, _) => Ok(v),
    }
}

fn method_from(h: &HeaderMap, name: &HeaderName) -> Result<Method, ProxyError> {
    let bad = ProxyError::BadRequest(BadRequest::BadOriginalMethod);
    let v = one(h, name).map_err(|_| bad_method())?.ok_or(bad)?;
    check::method(v.as_bytes())
}

/// An absolute `http(s)` URL: its origin-form target and its host.
pub fn absolute_url(s: &str) -> Option<(http::uri::PathAndQuery, String)> {
    if s.contains('#') {
        return None;
    }
    let uri: Uri = s.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return None;
    }
    let authority = uri.authority()?;
    // No credentials, no empty host or port (`https://s://h/a` parses with authority `s:`).
    if authority.as_str().contains('@')
        || authority.host().is_empty()
        || authority.as_str().ends_with(':')
    {
        return None;
    }
    // The same origin-form rules as a bare target (the fuzzer found `//h/a` here).
    let pq = origin_form(uri.path_and_query()?.as_str())?;
    Some((pq, authority.to_string()))
}

fn header_str(v: &HeaderValue) -> Result<&str, ProxyError> {
    v.to_str().map_err(|_| bad_uri())
}

fn host_from(h: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ProxyError> {
    match one(h, name).map_err(|_| bad_uri())? {
        Some(v) => Ok(Some(header_str(v)?.to_string())),
        None => Ok(None),
    }
}

/// Where the original request is, by protocol (never guessed):
/// - `nginx`: `X-Original-Method`, and `X-Original-URL` (absolute, ingress-nginx `auth-url`;
///   its path and host are used, and an `X-Original-URI` beside it must agree) or else
///   `X-Original-URI` (origin-form, `auth_request`) with the host from `X-Forwarded-Host`;
/// - `traefik`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`;
/// - `envoy`: the check request's own method and path (less `path_prefix`) and `Host`.
///
/// Each header at most once; absent, doubled or malformed is 400.
pub fn original<B>(cfg: &AuthzConfig, req: &Request<B>) -> Result<Original, ProxyError> {
    let h = req.headers();
    match cfg.protocol {
        AuthzProtocol::Nginx => {
            let method = method_from(h, &X_ORIGINAL_METHOD)?;
            let uri = one(h, &X_ORIGINAL_URI).map_err(|_| bad_uri())?;
            match one(h, &X_ORIGINAL_URL).map_err(|_| bad_uri())? {
                Some(url) => {
                    let (target, host) = absolute_url(header_str(url)?).ok_or_else(bad_uri)?;
                    if let Some(u) = uri {
                        if header_str(u)? != target.as_str() {
                            return Err(bad_uri());
                        }
                    }
                    Ok(Original {
                        method,
                        target,
                        host: Some(host),
                    })
                }
                None => {
                    let uri = uri.ok_or_else(bad_uri)?;
                    let target = origin_form(header_str(uri)?).ok_or_else(bad_uri)?;
                    Ok(Original {
                        method,
                        target,
                        host: host_from(h, &X_FORWARDED_HOST)?,
                    })
                }
            }
        }
        AuthzProtocol::Traefik => {
            let method = method_from(h, &X_FORWARDED_METHOD)?;
            let uri = one(h, &X_FORWARDED_URI)
                .map_err(|_| bad_uri())?
                .ok_or_else(bad_uri)?;
            let target = origin_form(header_str(uri)?).ok_or_else(bad_uri)?;
            Ok(Original {
                method,
                target,
                host: host_from(h, &X_FORWARDED_HOST)?,
            })
        }
        AuthzProtocol::Envoy => {
            let pq = req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let rest = pq
                .strip_prefix(cfg.path_prefix.as_str())
                .ok_or_else(bad_uri)?;
            let rest = if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_string()
            };
            let target = origin_form(&rest).ok_or_else(bad_uri)?;
            let host = match req.uri().authority() {
                Some(a) => Some(a.to_string()),
                None => host_from(h, &header::HOST)?,
            };
            Ok(Original {
                method: req.method().clone(),
                target,
                host,
            })
        }
    }
}

/// Answers one check request: Envoy's gRPC `Check` (`authz_grpc.rs`), or an HTTP check
/// request of `[authz] protocol`. Never fails: errors become answers.
pub async fn handle(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Conn,
    req: Request<Incoming>,
) -> Result<Response<AuthzBody>, Infallible> {
    if crate::authz_grpc::is_check(&req) {
        let resp = crate::authz_grpc::serve(state, metrics, conn, req).await;
        return Ok(resp.map(Either::Right));
    }
    let mut start = Start::now(&req);
    let cfg = &state.config;
    let original = if conn.trusted(&cfg.authz) {
        original(&cfg.authz, &req)
    } else {
        tracing::warn!(peer = %conn.peer, "decision request from a peer outside [authz] trusted_proxies");
        Err(ProxyError::UntrustedProxy)
    };
    let form = match cfg.authz.protocol {
        AuthzProtocol::Nginx => Form::Nginx,
        AuthzProtocol::Traefik => Form::Traefik,
        AuthzProtocol::Envoy => Form::EnvoyHttp,
    };
    let peer = check::Peer {
        ip: conn.peer.ip(),
        trusted: conn.trusted(&cfg.authz),
    };
    let resp = check::answer(
        &state,
        &metrics,
        &mut start,
        original,
        req.headers(),
        form,
        peer,
    )
    .await;
    Ok(resp.map(Either::Left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(protocol: AuthzProtocol, prefix: &str) -> AuthzConfig {
        AuthzConfig {
            address: None,
            protocol,
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            path_prefix: prefix.into(),
            socket_mode: 0o600,
        }
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn reason(r: Result<Original, ProxyError>) -> String {
        match r {
            Ok(o) => format!("ok {} {} {:?}", o.method, o.target, o.host),
            Err(e) => e.reason().to_string(),
        }
    }

    #[test]
    fn nginx_auth_request_and_ingress_nginx() {
        let c = cfg(AuthzProtocol::Nginx, "");
        let r = |h: &[(&str, &str)]| reason(original(&c, &req("GET", "/auth", h)));
        assert_eq!(
            r(&[
                ("x-original-method", "POST"),
                ("x-original-uri", "/api/x?a=1"),
                ("x-forwarded-host", "app.example")
            ]),
            "ok POST /api/x?a=1 Some(\"app.example\")"
        );
        assert_eq!(
            r(&[
                ("x-original-method", "GET"),
                ("x-original-url", "https://app.example:8443/a/b?c"),
                ("x-original-uri", "/a/b?c")
            ]),
            "ok GET /a/b?c Some(\"app.example:8443\")"
        );
        for bad in [
            &[("x-original-method", "GET")][..],
            &[("x-original-method", "GET"), ("x-original-uri", "*")],
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "app.example:443"),
            ],
            &[("x-original-method", "GET"), ("x-original-uri", "admin")],
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "//evil/admin"),
            ],
            &[("x-original-method", "GET"), ("x-original-uri", "/a#frag")],
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
            ],
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "/relative"),
            ],
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "ftp://h/a"),
            ],
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "https://u@h/a"),
            ],
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "https://h/a"),
                ("x-original-uri", "/b"),
            ],
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a"),
                ("x-forwarded-host", "a"),
                ("x-forwarded-host", "b"),
            ],
        ] {
            assert_eq!(r(bad), "bad_original_uri", "{bad:?}");
        }
        for bad in [
            &[("x-original-uri", "/a")][..],
            &[("x-original-method", "G ET"), ("x-original-uri", "/a")],
            &[("x-original-method", "CONNECT"), ("x-original-uri", "/a")],
            &[
                ("x-original-method", "GET"),
                ("x-original-method", "POST"),
                ("x-original-uri", "/a"),
            ],
        ] {
            assert_eq!(r(bad), "bad_original_method", "{bad:?}");
        }
    }

    #[test]
    fn traefik_forward_auth() {
        let c = cfg(AuthzProtocol::Traefik, "");
        let r = |h: &[(&str, &str)]| reason(original(&c, &req("GET", "/", h)));
        assert_eq!(
            r(&[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-uri", "/items/7"),
                ("x-forwarded-host", "h")
            ]),
            "ok DELETE /items/7 Some(\"h\")"
        );
        // nginx's headers mean nothing to a traefik listener.
        assert_eq!(
            r(&[("x-original-method", "GET"), ("x-original-uri", "/a")]),
            "bad_original_method"
        );
    }

    #[test]
    fn envoy_check_requests_carry_the_original_themselves() {
        let c = cfg(AuthzProtocol::Envoy, "/authz");
        let r = |m: &str, u: &str| reason(original(&c, &req(m, u, &[("host", "app.example")])));
        assert_eq!(
            r("PUT", "/authz/api/x?y=1"),
            "ok PUT /api/x?y=1 Some(\"app.example\")"
        );
        assert_eq!(r("GET", "/authz"), "ok GET / Some(\"app.example\")");
        assert_eq!(r("GET", "/other/api"), "bad_original_uri");
        let c = cfg(AuthzProtocol::Envoy, "");
        assert_eq!(
            reason(original(&c, &req("GET", "/api", &[]))),
            "ok GET /api None"
        );
    }

    #[test]
    fn trusted_proxies_are_cidrs_and_mapped_v6_counts_as_v4() {
        let c = cfg(AuthzProtocol::Nginx, "");
        assert!(c.trusts("127.0.0.1".parse().unwrap()));
        assert!(c.trusts("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!c.trusts("10.0.0.1".parse().unwrap()));
        assert!(!c.trusts("::1".parse().unwrap()));
    }
}
