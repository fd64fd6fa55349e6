//! The per-request pipeline: request id, path normalisation, route lookup, token
//! extraction and verification, route rules, header hygiene and injection, then the one
//! pooled upstream client with a deadline. Bodies stream both ways; WebSocket upgrades are
//! tunnelled once the request is allowed.
//!
//! [`handle`] is the thin outer function: it turns the pipeline's `Result` into a response,
//! adds `X-Request-Id`, counts it and writes the one log line.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::config::{AuthMode, Config, TokenConfig};
use crate::error::ProxyError;
use crate::headers::{self, IdentityHeaders};
use crate::metrics::Metrics;
use crate::routes::{Lookup, Rule};
pub use crate::upstream::Upstream;
use crate::upstream::UpstreamBody;
use crate::verify::{AuthError, Verified, Verifier};

/// The response body: the upstream's, streamed, or one of ours.
pub type Body = Either<UpstreamBody, Full<Bytes>>;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a request needs from one config generation; swapped whole on reload.
pub struct State {
    pub config: Arc<Config>,
    pub verifier: Verifier,
    pub identity: IdentityHeaders,
    pub upstream: Upstream,
    /// Per-route metric handles, resolved once: index = rule index, last = default rule.
    pub route_metrics: Vec<RouteMetrics>,
}

/// The metric children of one route, looked up once per config instead of per request.
pub struct RouteMetrics {
    pub forwarded: prometheus::IntCounter,
    pub latency: prometheus::Histogram,
}

impl RouteMetrics {
    /// Handles for every route of `config`, then the default rule.
    pub fn for_config(config: &Config, metrics: &Metrics) -> Vec<RouteMetrics> {
        config
            .routes
            .rules()
            .iter()
            .chain(std::iter::once(config.routes.default_rule()))
            .map(|r| RouteMetrics {
                forwarded: metrics.requests.with_label_values(&[&r.label, "forwarded"]),
                latency: metrics.latency.with_label_values(&[&r.label]),
            })
            .collect()
    }
}

impl State {
    fn metrics_of(&self, rule: &Rule) -> Option<&RouteMetrics> {
        match rule.index {
            Some(i) => self.route_metrics.get(i),
            None => self.route_metrics.last(),
        }
    }
}

/// What the pipeline learned, for the log line and metrics.
#[derive(Default)]
struct Outcome<'a> {
    rule: Option<&'a Rule>,
    path: Option<Cow<'a, str>>,
    verified: Option<Arc<Verified>>,
}

/// Connection facts the pipeline needs.
#[derive(Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Serves one request. Never fails: errors become answers.
pub async fn handle(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Conn,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let method = req.method().clone();
    let uri = req.uri().clone();
    let mut outcome = Outcome::default();
    let result = pipeline(&state, &metrics, conn, req, &uri, &request_id, &mut outcome).await;
    let (mut resp, reason) = match result {
        Ok(r) => (r, "forwarded"),
        Err(e) => {
            if let ProxyError::BadGateway(source) = &e {
                tracing::warn!(request_id = %request_id, error = %source, "upstream request failed");
            }
            (e.to_response(&request_id).map(Either::Right), e.reason())
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let route = outcome.rule.map_or("-", |r| r.label.as_str());
    let elapsed = started.elapsed();
    match outcome.rule.and_then(|r| state.metrics_of(r)) {
        Some(m) => {
            if reason == "forwarded" {
                m.forwarded.inc();
            } else {
                metrics.requests.with_label_values(&[route, reason]).inc();
            }
            m.latency.observe(elapsed.as_secs_f64());
        }
        None => {
            metrics.requests.with_label_values(&[route, reason]).inc();
            metrics
                .latency
                .with_label_values(&[route])
                .observe(elapsed.as_secs_f64());
        }
    }
    let v = outcome.verified.as_deref();
    tracing::info!(
        target: "cognito_sidecar::access",
        request_id = %request_id,
        method = %method,
        path = outcome.path.as_deref().unwrap_or("-"),
        route,
        status = resp.status().as_u16(),
        outcome = reason,
        latency_us = elapsed.as_micros() as u64,
        sub = v.and_then(|v| v.sub.as_deref()),
        client_id = v.and_then(|v| v.client_id.as_deref()),
        jti = v.and_then(|v| v.jti.as_deref()),
        "request"
    );
    Ok(resp)
}

/// Keeps a sane client-sent `X-Request-Id`, or makes one.
fn request_id(headers: &http::HeaderMap) -> String {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c))
        {
            // Checked ASCII above.
            return String::from_utf8_lossy(b).into_owned();
        }
    }
    uuid::Uuid::new_v4().to_string()
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Cookie,
    Query,
    WebSocket,
}

/// RFC 6750 §2.1 b64token: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"` then `=`*.
fn is_b64token(t: &str) -> bool {
    // Tokens are ~1 KiB and this runs on every protected request: the per-byte test is
    // branch-free and checked 32 bytes at a time, which the compiler vectorises (about 3x
    // faster than a table lookup per byte).
    fn ok(b: u8) -> bool {
        (b.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'A') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
    }
    let body = t.trim_end_matches('=').as_bytes();
    if body.is_empty() {
        return false;
    }
    let mut chunks = body.chunks_exact(32);
    for c in &mut chunks {
        if !c.iter().fold(true, |all, &b| all & ok(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| ok(b))
}

/// Finds the bearer token: exactly one `Authorization: Bearer`, else the configured cookie,
/// query parameter or WebSocket protocol.
fn extract_token<'a>(
    req: &'a Request<Incoming>,
    cfg: &TokenConfig,
    websocket: bool,
) -> Result<Option<(Cow<'a, str>, Source)>, ProxyError> {
    let mut auth = req.headers().get_all(header::AUTHORIZATION).iter();
    if let Some(first) = auth.next() {
        if auth.next().is_some() {
            return Err(ProxyError::BadRequest("authorization_duplicated"));
        }
        let s = first
            .to_str()
            .map_err(|_| ProxyError::Unauthorized(AuthError::Malformed))?;
        let (scheme, rest) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim_matches(' ');
            if token.len() > cfg.max_bytes {
                return Err(ProxyError::Unauthorized(AuthError::TooLarge));
            }
            if !is_b64token(token) {
                return Err(ProxyError::Unauthorized(if token.is_empty() {
                    AuthError::Missing
                } else {
                    AuthError::Malformed
                }));
            }
            return Ok(Some((Cow::Borrowed(token), Source::Header)));
        }
    }
    if let Some(name) = &cfg.cookie {
        for v in req.headers().get_all(header::COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            for pair in s.split(';') {
                if let Some((k, val)) = pair.trim().split_once('=') {
                    if k.trim() == name {
                        let val = val.trim().trim_matches('"');
                        if !val.is_empty() {
                            return Ok(Some((Cow::Borrowed(val), Source::Cookie)));
                        }
                    }
                }
            }
        }
    }
    if let (Some(name), Some(q)) = (&cfg.query, req.uri().query()) {
        if let Some((_, v)) = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name) {
            if !v.is_empty() {
                return Ok(Some((Cow::Owned(v.into_owned()), Source::Query)));
            }
        }
    }
    if cfg.websocket_protocol && websocket {
        if let Some(t) = websocket_protocol_token(req.headers()) {
            return Ok(Some((Cow::Owned(t), Source::WebSocket)));
        }
    }
    Ok(None)
}

/// `Sec-WebSocket-Protocol: bearer, <jwt>[, others]` -> the jwt.
fn websocket_protocol_token(h: &http::HeaderMap) -> Option<String> {
    let v = h.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut it = v.split(',').map(str::trim);
    while let Some(p) = it.next() {
        if p.eq_ignore_ascii_case("bearer") {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// Removes `bearer, <jwt>` from the offered WebSocket protocols.
fn strip_websocket_token(h: &mut http::HeaderMap) {
    let Some(v) = h
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let mut keep = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        if parts[i].eq_ignore_ascii_case("bearer") {
            i += 2;
            continue;
        }
        keep.push(parts[i]);
        i += 1;
    }
    if keep.is_empty() {
        h.remove(header::SEC_WEBSOCKET_PROTOCOL);
    } else if let Ok(v) = HeaderValue::from_str(&keep.join(", ")) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

/// The query without the token parameter (`None` when nothing is left).
fn query_without(q: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let decoded: String = form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            decoded != name
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join("&"))
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request with no `Host`, more than one, or one that is not a
/// plain `host[:port]` is refused, so the upstream never has to choose between two hosts.
/// (HTTP/1.0 may leave it out; HTTP/2 names the authority in a pseudo-header.)
fn check_host<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("bad_host")),
        (None, _) if req.version() == http::Version::HTTP_11 => {
            Err(ProxyError::BadRequest("bad_host"))
        }
        (None, _) => Ok(()),
        (Some(h), None) => {
            let ok = h
                .to_str()
                .ok()
                .filter(|s| !s.is_empty() && !s.contains('@'))
                .and_then(|s| s.parse::<http::uri::Authority>().ok())
                .is_some_and(|a| a.as_str().len() == h.len());
            if ok {
                Ok(())
            } else {
                Err(ProxyError::BadRequest("bad_host"))
            }
        }
    }
}

fn is_preflight(req: &Request<Incoming>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The upstream request, built from the client's. A plain function, not part of the
/// `async` pipeline: its locals would otherwise take room in every request's future.
#[allow(clippy::too_many_arguments)]
fn upstream_request(
    state: &State,
    conn: Conn,
    mut req: Request<Incoming>,
    path: &str,
    request_id: &str,
    verified: Option<&Verified>,
    claims_value: Option<HeaderValue>,
    token_source: Option<Source>,
    websocket: bool,
) -> Result<(Request<Incoming>, Option<hyper::upgrade::OnUpgrade>), ProxyError> {
    let cfg = &state.config;
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let query = match (&cfg.token.query, parts.uri.query()) {
        (Some(name), Some(q)) => query_without(q, name).map(Cow::Owned),
        (_, q) => q.map(Cow::Borrowed),
    };
    let uri = state
        .upstream
        .target(path, query.as_deref())
        .ok_or(ProxyError::BadRequest("bad_target"))?;
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let h = &mut parts.headers;
    let upgrade_value = h.get(header::UPGRADE).cloned();
    headers::strip_hop_by_hop(h);
    state.identity.strip(h);
    if cfg.forward.strip_authorization {
        h.remove(header::AUTHORIZATION);
    }
    if token_source == Some(Source::WebSocket) {
        strip_websocket_token(h);
    }
    if let Some(v) = verified {
        for (name, value) in &v.headers {
            h.insert(name.clone(), value.clone());
        }
    }
    if let (Some(name), Some(value)) = (&cfg.forward.claims_header, claims_value) {
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
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    if let (Some(_), Some(up)) = (&client_upgrade, upgrade_value) {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, up);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    Ok((Request::from_parts(parts, body), client_upgrade))
}

async fn pipeline<'a>(
    state: &'a State,
    metrics: &Metrics,
    conn: Conn,
    req: Request<Incoming>,
    client_uri: &'a Uri,
    request_id: &str,
    outcome: &mut Outcome<'a>,
) -> Result<Response<Body>, ProxyError> {
    let cfg = &state.config;
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest("connect_not_supported"));
    }
    check_host(&req)?;
    let path = crate::path::normalize(client_uri.path()).map_err(|e| {
        tracing::debug!(request_id, reason = e.as_str(), "path refused");
        ProxyError::BadRequest("bad_path")
    })?;
    let path: &str = outcome.path.insert(path);
    let rule = match cfg.routes.lookup(req.method(), path) {
        Lookup::Route(r) => r,
        Lookup::MethodNotAllowed(allow) => return Err(ProxyError::MethodNotAllowed { allow }),
    };
    outcome.rule = Some(rule);

    let websocket = req.version() == http::Version::HTTP_11
        && req.method() == Method::GET
        && headers::is_websocket_upgrade(req.headers());
    let preflight = cfg.default.preflight_forward && is_preflight(&req);
    let mut token_source = None;
    let mut claims_value: Option<HeaderValue> = None;
    match rule.auth {
        AuthMode::Deny => return Err(ProxyError::Denied),
        AuthMode::Public => {}
        AuthMode::Required if preflight => {}
        AuthMode::Required => {
            let (token, source) = extract_token(&req, &cfg.token, websocket)?
                .ok_or(ProxyError::Unauthorized(AuthError::Missing))?;
            token_source = Some(source);
            let verified = state
                .verifier
                .verify(&token, crate::verify::now_secs())
                .await
                .map_err(|e| match e {
                    AuthError::KeysUnavailable => ProxyError::KeysUnavailable,
                    e => ProxyError::Unauthorized(e),
                })?;
            outcome.verified = Some(Arc::clone(&verified));
            // The payload segment is base64url(JSON of the verified claims), canonical
            // because it decoded strictly.
            if cfg.forward.claims_header.is_some() {
                claims_value = token
                    .split('.')
                    .nth(1)
                    .and_then(|p| HeaderValue::from_str(p).ok());
            }
            rule.authorize(&verified.grant())
                .map_err(|reason| ProxyError::Forbidden {
                    reason,
                    scope_hint: rule.scope_hint.clone(),
                })?;
        }
    }

    let (upstream_req, client_upgrade) = upstream_request(
        state,
        conn,
        req,
        path,
        request_id,
        outcome.verified.as_deref(),
        claims_value,
        token_source,
        websocket,
    )?;

    // Not bound to a name first: a moved-from local still takes room in this future.
    let mut resp = match tokio::time::timeout(
        state.upstream.request_timeout,
        state.upstream.send(upstream_req),
    )
    .await
    {
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
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let rid = request_id.to_string();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
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
    Ok(resp.map(Either::Left))
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
    fn b64token_charset() {
        assert!(is_b64token("eyJ.abc-_.x~+/=="));
        assert!(!is_b64token(""));
        assert!(!is_b64token("a b"));
        assert!(!is_b64token("a\"b"));
        assert!(!is_b64token("==="));
        // Every byte value, alone and at each position of a 40-byte token (one full chunk
        // of 32 and a remainder).
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let t = String::from_utf8_lossy(&[b]).into_owned();
            if b != b'=' {
                assert_eq!(is_b64token(&t), want && b < 128, "byte {b}");
            }
            for pos in [0, 31, 32, 39] {
                let mut v = vec![b'a'; 40];
                v[pos] = b;
                if let Ok(t) = std::str::from_utf8(&v) {
                    assert_eq!(
                        is_b64token(t),
                        want || (b == b'=' && pos == 39),
                        "{b} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn query_token_is_removed_others_kept() {
        assert_eq!(
            query_without("access_token=abc&x=1", "access_token").as_deref(),
            Some("x=1")
        );
        assert_eq!(query_without("access_token=abc", "access_token"), None);
        assert_eq!(
            query_without("a=1&access%5Ftoken=abc&b=2", "access_token").as_deref(),
            Some("a=1&b=2")
        );
    }

    #[test]
    fn websocket_protocol_token_is_found_and_removed() {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat, bearer, eyJ.x.y"),
        );
        assert_eq!(websocket_protocol_token(&h).as_deref(), Some("eyJ.x.y"));
        strip_websocket_token(&mut h);
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "chat");
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = http::HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(
            &X_REQUEST_ID,
            HeaderValue::from_static("bad id with spaces"),
        );
        assert_ne!(request_id(&h), "bad id with spaces");
        assert_eq!(request_id(&http::HeaderMap::new()).len(), 36);
    }
}
