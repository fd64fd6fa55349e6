//! The per-request pipeline, top to bottom in `pipeline`: request checks, the decision
//! (`decide.rs`: path normalisation, route lookup, the token and its verification, the
//! route's rules), the upstream request with stripped and injected headers (`headers.rs`),
//! then the one pooled upstream client (`upstream.rs`) with a deadline.
//! Bodies stream both ways; WebSocket upgrades are tunnelled once the request is allowed.
//!
//! [`handle`] is the thin outer function: it turns the pipeline's `Result` into a response,
//! adds `X-Request-Id`, and hands the outcome to `access.rs` (metrics and the log line).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::access::{self, Outcome, Start};
use crate::alb::X_AMZN_OIDC_DATA;
use crate::bearer::{self, Source};
use crate::claims::Verified;
use crate::decide::{decide, Ask, Seen};
use crate::error::{BadRequest, ProxyError};
use crate::headers;
use crate::metrics::Metrics;
use crate::state::State;
use crate::upstream::UpstreamBody;

/// The response body: the upstream's, streamed, or one of ours.
pub type Body = Either<UpstreamBody, Full<Bytes>>;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Connection facts the pipeline needs.
#[derive(Clone, Copy)]
pub struct Conn {
    /// The TCP peer (`0.0.0.0:0` on a Unix socket).
    pub peer: SocketAddr,
    pub tls: bool,
    /// Came over the decision listener's Unix socket, whose file mode says who may connect.
    pub unix: bool,
}

impl Conn {
    /// Whether this peer may speak for an original request: a connection on the Unix socket
    /// (the file's mode let it in), or a TCP peer in `[authz] trusted_proxies`.
    pub fn trusted(&self, authz: &crate::config::AuthzConfig) -> bool {
        self.unix || authz.trusts(self.peer.ip())
    }
}

/// Serves one request. Never fails: errors become answers.
pub async fn handle(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Conn,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Start::now(&req);
    let request_id = &start.request_id;
    // A cheap clone (shared bytes); the normalised path may borrow from it.
    let uri = req.uri().clone();
    let mut seen = Seen {
        trace: state.tracing.begin(req.headers(), false),
        ..Seen::default()
    };
    // A gRPC call is refused in gRPC's terms (`grpc.rs`), and never sent to sign in.
    let grpc = crate::grpc::is_grpc(req.headers());
    // [login]: its own pages, and what a refusal needs to send a browser to sign in.
    let mut browser = None;
    if let Some(login) = &state.login {
        let origin = login.origin(conn.tls, req.headers());
        let path = uri.path();
        let now = crate::verify::now_secs();
        if let Some(origin) = origin.as_deref() {
            let page = if path == login.cfg.callback_path {
                // Boxed, as the other sign-in steps: rare, and their futures (token
                // requests) are large; inline they would size every request's future.
                let r = Box::pin(login.callback(
                    &state.verifier,
                    origin,
                    req.headers(),
                    uri.query(),
                    now,
                ))
                .await;
                Some((r, "callback"))
            } else if path == login.cfg.sign_out_path {
                let r = Box::pin(login.sign_out(req.method(), origin, req.headers(), now)).await;
                Some((r, "sign_out"))
            } else {
                None
            };
            if let Some((r, what)) = page {
                let mut resp = r.map(Either::Right);
                access::finish(
                    &state,
                    &metrics,
                    &mut resp,
                    &start,
                    &seen,
                    Outcome::Login(what),
                );
                return Ok(resp);
            }
        }
        browser = Some(Browser {
            navigation: !grpc && crate::login::is_navigation(req.method(), req.headers()),
            clear: login.clear_all(req.headers()),
            origin: origin.clone(),
        });
        let result = pipeline(
            &state, &metrics, conn, req, &uri, request_id, &mut seen, origin,
        )
        .await;
        return Ok(finish_answer(
            &state, &metrics, result, &start, &seen, &uri, browser, grpc,
        ));
    }
    let result = pipeline(
        &state, &metrics, conn, req, &uri, request_id, &mut seen, None,
    )
    .await;
    Ok(finish_answer(
        &state,
        &metrics,
        result,
        &start,
        &seen,
        &uri,
        browser.take(),
        grpc,
    ))
}

/// What a refusal on a `[login]` sidecar needs to know about the browser.
struct Browser {
    navigation: bool,
    /// `Set-Cookie`s that remove the request's session cookies.
    clear: Vec<HeaderValue>,
    origin: Option<String>,
}

/// The answer: the upstream's, or the refusal (for a browser on a login route: to sign in,
/// or a 403 page; for a gRPC call: trailers-only with its `grpc-status`), then the log
/// line and metrics.
#[allow(clippy::too_many_arguments)]
fn finish_answer(
    state: &State,
    metrics: &Metrics,
    result: Result<Response<Body>, ProxyError>,
    start: &Start,
    seen: &Seen<'_>,
    uri: &Uri,
    browser: Option<Browser>,
    grpc: bool,
) -> Response<Body> {
    let request_id = &start.request_id;
    let login_route = seen
        .rule
        .is_some_and(|r| r.auth == crate::config::AuthMode::Login);
    let (mut resp, outcome) = match (result, &state.login, browser) {
        (Ok(r), _, _) => (r, Outcome::Forwarded),
        (Err(ProxyError::LoginRequired { clear, reason }), Some(login), Some(b))
            if b.navigation && b.origin.is_some() =>
        {
            let return_to = uri.path_and_query().map_or("/", |p| p.as_str());
            let mut r = login.redirect(
                b.origin.as_deref().unwrap_or(""),
                return_to,
                crate::verify::now_secs(),
            );
            if clear {
                for c in b.clear {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            tracing::debug!(request_id = %request_id, reason, "sent to sign in");
            (r.map(Either::Right), Outcome::Login("sign_in"))
        }
        (Err(e @ ProxyError::Forbidden { .. }), Some(_), Some(b))
            if b.navigation && login_route =>
        {
            let outcome = Outcome::refused(&e);
            let r = crate::login::page(
                StatusCode::FORBIDDEN,
                "Access denied",
                "You are signed in, but this page needs a permission you do not have.",
            );
            (r.map(Either::Right), outcome)
        }
        (Err(e), _, b) => {
            let outcome = Outcome::refused(&e);
            let r = e.to_response(request_id);
            let r = if grpc {
                crate::grpc::refusal(r, e.reason())
            } else {
                r
            };
            let mut r = r.map(Either::Right);
            if let (ProxyError::LoginRequired { clear: true, .. }, Some(b)) = (&e, b) {
                for c in b.clear {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            if let ProxyError::BadGateway(source) = &e {
                tracing::warn!(
                    request_id = %request_id,
                    error = %crate::error::Causes(&**source),
                    "upstream request failed"
                );
            }
            (r, outcome)
        }
    };
    access::finish(state, metrics, &mut resp, start, seen, outcome);
    resp
}

/// RFC 9112 §3.2: an HTTP/1.1 request with no `Host`, more than one, or one that is not a
/// plain `host[:port]` is refused, so the upstream never has to choose between two hosts.
/// (HTTP/1.0 may leave it out; HTTP/2 names the authority in a pseudo-header.)
fn check_host<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let ok = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => false,
        (None, _) => req.version() != http::Version::HTTP_11,
        (Some(h), None) => h
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && !s.contains('@'))
            .and_then(|s| s.parse::<http::uri::Authority>().ok())
            .is_some_and(|a| a.as_str().len() == h.len()),
    };
    if ok {
        Ok(())
    } else {
        Err(ProxyError::BadRequest(BadRequest::BadHost))
    }
}

fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// What the upstream request carries beyond the client's own request.
struct Forward<'a> {
    /// The normalised path: the one the route was chosen for.
    path: &'a str,
    request_id: &'a crate::access::RequestId,
    verified: Option<&'a Verified>,
    /// The claims header's value (the token's payload segment), when configured.
    claims_value: Option<HeaderValue>,
    /// The verified token came from `x-amzn-oidc-data`: it goes upstream again.
    alb_data: bool,
    websocket: bool,
    /// The session's access token (`auth = "login"`), for `[login] pass_access_token`.
    session_token: Option<String>,
    trace: &'a crate::trace::Trace,
}

/// The upstream request, built from the client's. A plain function, not part of the
/// `async` pipeline: its locals would otherwise take room in every request's future.
fn upstream_request(
    state: &State,
    conn: Conn,
    mut req: Request<Incoming>,
    fwd: Forward<'_>,
) -> Result<(Request<Incoming>, Option<OnUpgrade>), ProxyError> {
    let cfg = &state.config;
    let client_upgrade = fwd.websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // The client's target as it came, when nothing changes it (no base path, the path was
    // already normal, no token parameter to take out): no new string to build.
    let as_is = (cfg.token.query.is_none()
        && state.upstream.forwards_paths_as_is()
        && parts.uri.path() == fwd.path)
        .then(|| parts.uri.path_and_query().cloned())
        .flatten()
        .and_then(|pq| {
            let mut p = http::uri::Parts::default();
            p.path_and_query = Some(pq);
            Uri::from_parts(p).ok()
        });
    let uri = match as_is {
        Some(uri) => uri,
        None => {
            let query = bearer::forwarded_query(&cfg.token, parts.uri.query());
            state
                .upstream
                .target(fwd.path, query.as_deref())
                .ok_or(ProxyError::BadRequest(BadRequest::BadTarget))?
        }
    };
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = &mut parts.headers;
    let upgrade_value = h.get(header::UPGRADE).cloned();
    // Every copy of it held the verified token (the token sources agree, or the request was
    // refused), so one copy goes back after the ALB headers are stripped.
    let alb_data = match (fwd.alb_data, fwd.verified) {
        (true, Some(_)) => h.get(X_AMZN_OIDC_DATA).cloned(),
        _ => None,
    };
    headers::strip_request_hop_by_hop(h);
    state.identity.strip(h);
    if let Some(v) = alb_data {
        h.insert(X_AMZN_OIDC_DATA, v);
    }
    if cfg.forward.strip_authorization {
        h.remove(header::AUTHORIZATION);
    }
    bearer::remove_from_headers(&cfg.token, fwd.verified.is_some(), h);
    if let Some(login) = &state.login {
        // The session never reaches the upstream; its access token only when asked.
        let names = login.cookie_names();
        crate::session::strip_session_cookies(h, &[names[0].as_str(), names[1].as_str()]);
        if let (true, Some(t)) = (login.cfg.pass_access_token, &fwd.session_token) {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                h.insert(header::AUTHORIZATION, v);
            }
        }
    }
    if let Some(v) = fwd.verified {
        for (name, value) in v.headers() {
            h.insert(name.clone(), value);
        }
    }
    if let (Some(name), Some(value)) = (&cfg.forward.claims_header, fwd.claims_value) {
        h.insert(name.clone(), value);
    }
    headers::set_forwarded(
        h,
        conn.peer.ip(),
        if conn.tls { "https" } else { "http" },
        host.clone(),
    );
    if !h.contains_key(header::HOST) {
        if let Some(host) = host {
            h.insert(header::HOST, host);
        }
    }
    h.insert(X_REQUEST_ID.clone(), fwd.request_id.header());
    fwd.trace.inject(h);
    if let (Some(_), Some(up)) = (&client_upgrade, upgrade_value) {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, up);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    Ok((Request::from_parts(parts, body), client_upgrade))
}

#[allow(clippy::too_many_arguments)]
async fn pipeline<'a>(
    state: &'a State,
    metrics: &Metrics,
    conn: Conn,
    req: Request<Incoming>,
    client_uri: &'a Uri,
    request_id: &crate::access::RequestId,
    seen: &mut Seen<'a>,
    login_origin: Option<String>,
) -> Result<Response<Body>, ProxyError> {
    let cfg = &state.config;
    // 1. Requests the sidecar will not interpret.
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest(BadRequest::ConnectNotSupported));
    }
    check_host(&req)?;
    let login_origin = login_origin.as_deref();
    // 2. The decision: path, route, token, verification, rules.
    let websocket = req.version() == http::Version::HTTP_11
        && req.method() == Method::GET
        && headers::is_websocket_upgrade(req.headers());
    let allowed = decide(
        state,
        Ask {
            method: req.method(),
            path: client_uri.path(),
            headers: req.headers(),
            query: client_uri.query(),
            websocket,
            preflight: cfg.default.preflight_forward && is_preflight(&req),
            request_id,
            login_origin,
            host: req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str())),
            peer: conn.peer.ip(),
            peer_trusted: conn.trusted(&cfg.authz),
        },
        seen,
    )
    .await?;
    let token_source = allowed.token_source;
    // A gRPC call's `grpc-timeout`, when shorter, is its deadline for the response head.
    let timeout = crate::grpc::deadline(req.headers(), state.upstream.request_timeout)
        .map_err(|_| ProxyError::BadRequest(BadRequest::BadGrpcTimeout))?;
    let path = seen.path.as_deref().unwrap_or("/");

    // 3. The upstream request, and its answer within request_timeout.
    let (upstream_req, client_upgrade) = upstream_request(
        state,
        conn,
        req,
        Forward {
            path,
            request_id,
            verified: seen.verified.as_deref(),
            claims_value: allowed.claims_value,
            alb_data: token_source == Some(Source::AlbData),
            websocket,
            session_token: allowed.session_token,
            trace: &seen.trace,
        },
    )?;
    let set_cookies = allowed.set_cookies;
    // Not bound to a name first: a moved-from local still takes room in this future.
    let mut resp = match tokio::time::timeout(timeout, state.upstream.send(upstream_req)).await {
        Err(_) => {
            metrics
                .upstream_errors
                .with_label_values(&["timeout"])
                .inc();
            return Err(ProxyError::GatewayTimeout);
        }
        Ok(Err(e)) => {
            let kind = if e.is_connect() { "connect" } else { "reset" };
            metrics.upstream_errors.with_label_values(&[kind]).inc();
            return Err(ProxyError::BadGateway(Box::new(e)));
        }
        Ok(Ok(r)) => r,
    };

    // 4. The answer: a tunnel for an accepted upgrade, else the response without hop-by-hop
    // headers.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            metrics
                .upstream_errors
                .with_label_values(&["protocol"])
                .inc();
            return Err(ProxyError::BadGateway(
                "upstream switched protocols unasked".into(),
            ));
        };
        tunnel(client_upgrade, hyper::upgrade::on(&mut resp), request_id);
        if token_source == Some(Source::WebSocket)
            && !resp.headers().contains_key(header::SEC_WEBSOCKET_PROTOCOL)
        {
            // Browsers fail the handshake unless one offered protocol is echoed.
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static("bearer"),
            );
        }
        return Ok(resp.map(Either::Left));
    }
    headers::strip_hop_by_hop(resp.headers_mut());
    for c in set_cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp.map(Either::Left))
}

/// Copies bytes both ways between the upgraded client and upstream connections, in the
/// background, until either side closes.
fn tunnel(client: OnUpgrade, upstream: OnUpgrade, request_id: &str) {
    let rid = request_id.to_string();
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((c, u)) => {
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                    tracing::debug!(request_id = %rid, error = %e, "tunnel closed");
                }
            }
            Err(e) => tracing::debug!(request_id = %rid, error = %e, "upgrade failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_be_one_plain_authority() {
        let req = |v: http::Version, hosts: &[&str]| {
            let mut b = Request::get("/").version(v);
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            b.body(()).unwrap()
        };
        let v11 = http::Version::HTTP_11;
        assert!(check_host(&req(v11, &["a.example"])).is_ok());
        assert!(check_host(&req(v11, &["a.example:8443"])).is_ok());
        assert!(check_host(&req(v11, &["[::1]:80"])).is_ok());
        assert!(check_host(&req(http::Version::HTTP_10, &[])).is_ok());
        assert!(check_host(&req(http::Version::HTTP_2, &[])).is_ok());
        for bad in [
            &["a.example", "b.example"][..],
            &["a.example", "a.example"],
            &[],
            &["a.example/admin"],
            &["a b"],
            &["user@a.example"],
            &[""],
            &["a.example?x"],
        ] {
            assert!(check_host(&req(v11, bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        use crate::access::request_id;
        let mut h = http::HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*request_id(&h), "abc-123");
        h.insert(
            &X_REQUEST_ID,
            HeaderValue::from_static("bad id with spaces"),
        );
        assert_ne!(&*request_id(&h), "bad id with spaces");
        let made = request_id(&http::HeaderMap::new());
        assert_eq!(made.len(), 36);
        assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
        assert_eq!(made.header().to_str().unwrap(), &*made);
    }
}
