//! Where a bearer token may come from, and how each source is removed before forwarding.
//!
//! `Authorization: Bearer` (RFC 6750 §2.1) always; then, as `[token]` allows, a cookie, a
//! query parameter (§2.3; removed from the forwarded query and redacted in logs), a named
//! header holding the bare token (an ALB's `x-amzn-oidc-accesstoken`; removed before
//! forwarding) or the WebSocket subprotocol `bearer, <jwt>` on upgrade requests (removed from
//! the forwarded offer); with an ALB issuer, an ALB's `x-amzn-oidc-data` (forwarded only as
//! the token that was verified: `proxy.rs`). What the token is worth is `verify.rs`'s question.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};

use crate::claims::AuthError;
use crate::config::TokenConfig;
use crate::error::{BadRequest, ProxyError};

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Header,
    Cookie,
    Query,
    /// `[token] header`.
    Named,
    WebSocket,
    /// `x-amzn-oidc-data`, with an ALB issuer configured: verified by ALB issuers only.
    AlbData,
}

/// RFC 6750 §2.1 b64token: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"` then `=`*.
pub fn is_b64token(t: &str) -> bool {
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

/// The one token a request carries, however many sources carry it: every configured source
/// is read, and they must agree.
#[derive(Default)]
struct OneToken<'a>(Option<(Cow<'a, str>, Source)>);

impl<'a> OneToken<'a> {
    /// A non-empty value found in `source`. A second, different value (in another source or
    /// the same one) is refused: RFC 6750 §3.1 answers a request that uses more than one
    /// method for its token with 400 `invalid_request`, and forwarding the request as one
    /// identity while the upstream reads another is exactly what must not happen.
    fn offer(&mut self, token: Cow<'a, str>, source: Source) -> Result<(), ProxyError> {
        match &self.0 {
            None => {
                self.0 = Some((token, source));
                Ok(())
            }
            Some((seen, _)) if *seen == token => Ok(()),
            Some(_) => Err(ProxyError::BadRequest(BadRequest::MultipleTokens)),
        }
    }
}

/// Finds the bearer token: `Authorization: Bearer` (exactly one such header), the configured
/// cookie, query parameter and WebSocket protocol. Every configured source is read; when
/// more than one carries a value (garbage too), they must all carry the same token.
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    cfg: &TokenConfig,
    websocket: bool,
) -> Result<Option<(Cow<'a, str>, Source)>, ProxyError> {
    let mut found = OneToken::default();
    if let Some(token) = authorization_bearer(headers)? {
        found.offer(Cow::Borrowed(token), Source::Header)?;
    }
    if let Some(name) = &cfg.cookie {
        for val in cookie_values(headers, name) {
            found.offer(Cow::Borrowed(val), Source::Cookie)?;
        }
    }
    if let Some(name) = &cfg.header {
        for v in headers.get_all(name) {
            let t = v
                .to_str()
                .map_err(|_| ProxyError::Auth(AuthError::Malformed))?
                .trim();
            if !t.is_empty() {
                found.offer(Cow::Borrowed(t), Source::Named)?;
            }
        }
    }
    if cfg.alb_data {
        for v in headers.get_all(crate::alb::X_AMZN_OIDC_DATA) {
            let t = v
                .to_str()
                .map_err(|_| ProxyError::Auth(AuthError::Malformed))?
                .trim();
            if !t.is_empty() {
                found.offer(Cow::Borrowed(t), Source::AlbData)?;
            }
        }
    }
    if let (Some(name), Some(q)) = (&cfg.query, query) {
        for (_, v) in form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == name) {
            if !v.is_empty() {
                found.offer(Cow::Owned(v.into_owned()), Source::Query)?;
            }
        }
    }
    if cfg.websocket_protocol && websocket {
        if let Some(t) = websocket_protocol_token(headers) {
            found.offer(Cow::Owned(t), Source::WebSocket)?;
        }
    }
    // The header's token is checked only once it is known to be the one: a garbage header
    // beside a cookie is two tokens (400), not a bad one (401).
    if let Some((token, Source::Header)) = &found.0 {
        if token.len() > cfg.max_bytes {
            return Err(ProxyError::Auth(AuthError::TooLarge));
        }
        if !is_b64token(token) {
            return Err(ProxyError::Auth(AuthError::Malformed));
        }
    }
    Ok(found.0)
}

/// The token of the one `Authorization: Bearer` header (`None` for no header or another
/// scheme). Two `Authorization` headers are refused; `Bearer` with nothing after it is a
/// missing token.
fn authorization_bearer(headers: &HeaderMap) -> Result<Option<&str>, ProxyError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = auth.next() else {
        return Ok(None);
    };
    if auth.next().is_some() {
        return Err(ProxyError::BadRequest(BadRequest::AuthorizationDuplicated));
    }
    let s = first
        .to_str()
        .map_err(|_| ProxyError::Auth(AuthError::Malformed))?;
    let (scheme, rest) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    match rest.trim_matches(' ') {
        "" => Err(ProxyError::Auth(AuthError::Missing)),
        token => Ok(Some(token)),
    }
}

/// Every non-empty value of cookie `name` (quotes removed), in order.
fn cookie_values<'h: 'n, 'n>(
    headers: &'h HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h str> + 'n {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .filter_map(move |pair| {
            let (k, val) = pair.trim().split_once('=')?;
            let val = val.trim().trim_matches('"');
            (k.trim() == name && !val.is_empty()).then_some(val)
        })
}

/// `Sec-WebSocket-Protocol: bearer, <jwt>[, others]` -> the jwt.
fn websocket_protocol_token(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut it = v.split(',').map(str::trim);
    while let Some(p) = it.next() {
        if p.eq_ignore_ascii_case("bearer") {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// Removes what only the sidecar may read from the headers that go upstream: the
/// `bearer, <jwt>` pair from the offered WebSocket protocols (whenever that source is
/// enabled), the `[token] header` always, and the token cookie unless it held the token that
/// was verified (`verified`; on a public route nothing was, so it never reaches the upstream
/// there). The query parameter is dropped from every forwarded query by [`forwarded_query`].
pub fn remove_from_headers(cfg: &TokenConfig, verified: bool, h: &mut HeaderMap) {
    if cfg.websocket_protocol {
        strip_websocket_token(h);
    }
    if let Some(name) = &cfg.header {
        h.remove(name);
    }
    if let (Some(name), false) = (&cfg.cookie, verified) {
        strip_cookie(h, name);
    }
}

/// Removes every `name=...` pair from the `Cookie` headers, keeping the others in order.
fn strip_cookie(h: &mut HeaderMap, name: &str) {
    let mentions = |v: &HeaderValue| {
        v.as_bytes()
            .windows(name.len())
            .any(|w| w == name.as_bytes())
    };
    if !h.get_all(header::COOKIE).iter().any(mentions) {
        return;
    }
    let kept: Vec<HeaderValue> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let s = v.to_str().ok()?;
            let pairs: Vec<&str> = s
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty() && p.split('=').next().map(str::trim) != Some(name))
                .collect();
            (!pairs.is_empty())
                .then(|| HeaderValue::from_str(&pairs.join("; ")).ok())
                .flatten()
        })
        .collect();
    h.remove(header::COOKIE);
    for v in kept {
        h.append(header::COOKIE, v);
    }
}

/// Removes `bearer, <jwt>` from the offered WebSocket protocols.
fn strip_websocket_token(h: &mut HeaderMap) {
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

/// The query to forward: without the `[token] query` parameter, when one is configured.
pub fn forwarded_query<'q>(cfg: &TokenConfig, query: Option<&'q str>) -> Option<Cow<'q, str>> {
    match (&cfg.query, query) {
        (Some(name), Some(q)) => query_without(q, name).map(Cow::Owned),
        (_, q) => q.map(Cow::Borrowed),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let cfg = TokenConfig {
            cookie: None,
            query: None,
            header: None,
            websocket_protocol: true,
            max_bytes: 8192,
            cache_entries: 0,
            alb_data: false,
        };
        remove_from_headers(&cfg, true, &mut h);
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "chat");
    }

    #[test]
    fn token_cookie_is_removed_others_kept() {
        let mut h = http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; access_token=x; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("access_token=y"));
        h.append(header::COOKIE, HeaderValue::from_static("access_token_2=z"));
        strip_cookie(&mut h, "access_token");
        let left: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, vec!["a=1; b=2", "access_token_2=z"]);
    }
}
