//! The one decision both listeners make about a request: its path normalised once, its
//! route, and, when the route needs one, the token (`bearer.rs`), its verification
//! (`verify.rs`) and the route's rules (`routes.rs`). The proxy forwards on the decision
//! (`proxy.rs`); the decision listener answers a front proxy with it (`authz.rs`). What the
//! decision learned on the way ([`Seen`]) feeds the log line and metrics either way.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use http::Method;

use crate::bearer::{self, Source};
use crate::claims::{AuthError, Verified};
use crate::config::AuthMode;
use crate::error::{BadRequest, ProxyError};
use crate::ratelimit::{self, Key, KeyKind};
use crate::routes::{Forbidden, Lookup, Rule};
use crate::state::State;

/// The request as the rules see it (`'p`: the path, which [`Seen`] keeps; `'r`: the rest).
pub struct Ask<'p, 'r> {
    pub method: &'r Method,
    /// The path as the client sent it (not yet normalised), without the query.
    pub path: &'p str,
    /// The headers the token sources read.
    pub headers: &'r HeaderMap,
    /// The query, for the `[token] query` source only: it never takes part in matching.
    pub query: Option<&'r str>,
    /// A WebSocket upgrade (the `websocket_protocol` source counts only then).
    pub websocket: bool,
    /// A CORS preflight that `[default] preflight = "forward"` lets through.
    pub preflight: bool,
    pub request_id: &'r str,
    /// The sidecar's own origin as browsers see it, on the proxy listener with `[login]`:
    /// `auth = "login"` routes then accept the session cookie.
    pub login_origin: Option<&'r str>,
    /// The request's host (`Host`, or the original request's), for `when`.
    pub host: Option<&'r str>,
    /// The connection's peer, and whether it is a trusted proxy (`[authz] trusted_proxies`,
    /// or the decision listener's Unix socket): a `key = "ip"` limit counts the client's
    /// address, [`ratelimit::client_ip`].
    pub peer: IpAddr,
    pub peer_trusted: bool,
}

/// What the decision learned on the way, for the log line and metrics.
#[derive(Default)]
pub struct Seen<'a> {
    pub rule: Option<&'a Rule>,
    /// The normalised path.
    pub path: Option<Cow<'a, str>>,
    pub verified: Option<Arc<Verified>>,
    /// The trace context (`trace.rs`), set by the listener when the request starts.
    pub trace: crate::trace::Trace,
}

/// An allowed request: what the upstream request (or the answer to the front proxy) needs
/// beyond [`Seen`].
pub struct Allowed {
    /// The claims header's value (the token's payload segment), when configured and verified.
    pub claims_value: Option<HeaderValue>,
    pub token_source: Option<Source>,
    /// The token came from the session cookie (`auth = "login"`): the access token, for
    /// `[login] pass_access_token`.
    pub session_token: Option<String>,
    /// `Set-Cookie`s for the answer (a refreshed session).
    pub set_cookies: Vec<HeaderValue>,
}

/// Decides on `ask`: `Ok` when the request may pass, else the answer that refuses it.
pub async fn decide<'a>(
    state: &'a State,
    ask: Ask<'a, '_>,
    seen: &mut Seen<'a>,
) -> Result<Allowed, ProxyError> {
    let cfg = &state.config;
    // The path, normalised once: the path that is checked is the path that is forwarded.
    let path = crate::path::normalize(ask.path).map_err(|e| {
        tracing::debug!(
            request_id = ask.request_id,
            reason = e.as_str(),
            "path refused"
        );
        ProxyError::BadRequest(BadRequest::BadPath)
    })?;
    let path: &str = seen.path.insert(path);
    let rule = match cfg.routes.lookup(ask.method, path) {
        Lookup::Route(r) => r,
        Lookup::MethodNotAllowed(allow) => return Err(ProxyError::MethodNotAllowed { allow }),
    };
    seen.rule = Some(rule);
    // Two Authorization headers are refused on every route, public ones too: the upstream
    // must never have to choose between two credentials (RFC 6750 §3.1: one method, once).
    let mut auth = ask.headers.get_all(http::header::AUTHORIZATION).iter();
    if auth.next().is_some() && auth.next().is_some() {
        return Err(ProxyError::BadRequest(BadRequest::AuthorizationDuplicated));
    }
    // A limit by address counts every request to the route, before its token is looked at.
    let limiter = state.limiter_of(rule);
    if let Some(l) = limiter.filter(|l| l.limit().key == KeyKind::Ip) {
        let ip = ratelimit::client_ip(ask.peer, ask.peer_trusted, ask.headers, &|ip| {
            cfg.authz.trusts(ip)
        });
        l.check(&Key::ip(ip)).map_err(ProxyError::RateLimited)?;
    }
    let mut allowed = Allowed {
        claims_value: None,
        token_source: None,
        session_token: None,
        set_cookies: Vec::new(),
    };
    match rule.auth {
        AuthMode::Deny => return Err(ProxyError::Denied),
        AuthMode::Public => {}
        AuthMode::Required | AuthMode::Login if ask.preflight => {}
        AuthMode::Required | AuthMode::Login => {
            let now = crate::verify::now_secs();
            let bearer = bearer::extract(ask.headers, ask.query, &cfg.token, ask.websocket)?;
            let session_token;
            let token: &str = match (&bearer, rule.auth, ask.login_origin, &state.login) {
                (Some((t, source)), _, _, _) => {
                    allowed.token_source = Some(*source);
                    t
                }
                (None, AuthMode::Login, Some(origin), Some(login)) => {
                    let current = Box::pin(login.session(ask.headers, now)).await?;
                    // The cookie alone authenticates this request: an unsafe method must
                    // come from the sidecar's own pages.
                    if !matches!(*ask.method, Method::GET | Method::HEAD | Method::OPTIONS)
                        && !crate::login::same_origin(ask.headers, origin)
                    {
                        return Err(ProxyError::Csrf);
                    }
                    allowed.set_cookies = current.set_cookies;
                    session_token = current.access_token;
                    allowed.session_token = Some(session_token.clone());
                    &session_token
                }
                (None, AuthMode::Login, _, _) => {
                    return Err(ProxyError::LoginRequired {
                        reason: "missing",
                        clear: false,
                    })
                }
                (None, _, _, _) => return Err(AuthError::Missing.into()),
            };
            let alb = allowed.token_source == Some(Source::AlbData);
            let timed = seen.trace.timed().then(std::time::Instant::now);
            let mut hit = false;
            let result = state
                .verifier
                .verify_noting(token, alb, now, &mut hit)
                .await;
            if let Some(t) = timed {
                let at = std::time::Instant::now();
                seen.trace.verified(at, at - t, hit);
            }
            let verified = match result {
                Ok(v) => v,
                // A session whose token no longer verifies (revoked, the key gone) has ended.
                Err(e) if allowed.session_token.is_some() && !e.is_unavailable() => {
                    tracing::info!(
                        request_id = ask.request_id,
                        reason = e.as_str(),
                        "the session's access token is refused"
                    );
                    return Err(ProxyError::LoginRequired {
                        reason: e.as_str(),
                        clear: true,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            seen.verified = Some(Arc::clone(&verified));
            // A limit by caller counts every request with a verified token, whether its
            // rules then pass or not.
            if let Some(l) = limiter.filter(|l| l.limit().key != KeyKind::Ip) {
                let caller = match l.limit().key {
                    KeyKind::Sub => verified.sub(),
                    _ => verified.client_id().or(verified.clients().first()),
                };
                // Tokens without the claim share one key: never a way around the limit.
                l.check(&Key::Claim(caller.unwrap_or("").into()))
                    .map_err(ProxyError::RateLimited)?;
            }
            // The payload segment is base64url(JSON of the verified claims), canonical
            // because it decoded strictly (an ALB's, padded, without its padding).
            if cfg.forward.claims_header.is_some() {
                allowed.claims_value = token
                    .split('.')
                    .nth(1)
                    .and_then(|p| HeaderValue::from_str(p.trim_end_matches('=')).ok());
            }
            rule.authorize(&verified.grant())
                .map_err(|reason| ProxyError::Forbidden {
                    reason,
                    scope_hint: rule.scope_hint.clone(),
                })?;
            if rule.condition.is_some() {
                condition(state, &ask, rule, path, &verified)?;
            }
        }
    }
    Ok(allowed)
}

/// The route's `when`, after its other rules: false or an error is 403 `condition_failed`
/// (an error also logs a line naming the route; never a claim's value).
fn condition(
    state: &State,
    ask: &Ask<'_, '_>,
    rule: &Rule,
    path: &str,
    verified: &crate::claims::Verified,
) -> Result<(), ProxyError> {
    let refused = || ProxyError::Forbidden {
        reason: Forbidden::ConditionFailed,
        scope_hint: rule.scope_hint.clone(),
    };
    let Some(cond) = &rule.condition else {
        return Ok(());
    };
    let hidden = |name: &str| state.identity.is_identity(name);
    let request = crate::condition::Request {
        method: ask.method.as_str(),
        path,
        host: ask.host.unwrap_or(""),
        headers: ask.headers,
        hidden: &hidden,
        path_params: rule.path_params(path),
    };
    let result = match &verified.cel_claims {
        Some(claims) => cond.evaluate(claims, &request),
        None => Err(crate::condition::EvalError(
            "the token's claims were not kept".into(),
        )),
    };
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused()),
        Err(e) => {
            tracing::info!(
                request_id = ask.request_id,
                route = %rule.label,
                error = %e,
                "the route's condition could not be evaluated: refused"
            );
            Err(refused())
        }
    }
}
