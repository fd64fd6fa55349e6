//! Where a bearer token may come from, and how each source is removed before forwarding.
//!
//! `Authorization: Bearer` (RFC 6750 §2.1) always; then, as `[token]` allows, a cookie, a
//! query parameter (§2.3; removed from the forwarded query and redacted in logs) or the
//! WebSocket subprotocol `bearer, <jwt>` on upgrade requests (removed from the forwarded
//! offer). What the token is worth is `verify.rs`'s question.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::Request;

use crate::claims::AuthError;
use crate::config::TokenConfig;
use crate::error::{BadRequest, ProxyError};

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Header,
    Cookie,
    Query,
    WebSocket,
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

/// Finds the bearer token: exactly one `Authorization: Bearer`, else the configured cookie,
/// query parameter or WebSocket protocol.
pub fn extract<'a, B>(
    req: &'a Request<B>,
    cfg: &TokenConfig,
    websocket: bool,
) -> Result<Option<(Cow<'a, str>, Source)>, ProxyError> {
    let mut auth = req.headers().get_all(header::AUTHORIZATION).iter();
    if let Some(first) = auth.next() {
        if auth.next().is_some() {
            return Err(ProxyError::BadRequest(BadRequest::AuthorizationDuplicated));
        }
        let s = first
            .to_str()
            .map_err(|_| ProxyError::Auth(AuthError::Malformed))?;
        let (scheme, rest) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim_matches(' ');
            if token.len() > cfg.max_bytes {
                return Err(ProxyError::Auth(AuthError::TooLarge));
            }
            if !is_b64token(token) {
                return Err(ProxyError::Auth(if token.is_empty() {
                    AuthError::Missing
                } else {
                    AuthError::Malformed
                }));
            }
            return Ok(Some((Cow::Borrowed(token), Source::Header)));
        }
    }
    if let Some(name) = &cfg.cookie {
        if let Some(val) = cookie(req.headers(), name) {
            return Ok(Some((Cow::Borrowed(val), Source::Cookie)));
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

/// The first non-empty value of cookie `name` (quotes removed).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    let val = val.trim().trim_matches('"');
                    if !val.is_empty() {
                        return Some(val);
                    }
                }
            }
        }
    }
    None
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

/// Removes the token's source from headers that go upstream: the `bearer, <jwt>` pair from
/// the offered WebSocket protocols. (The query parameter is dropped from every forwarded
/// query by [`forwarded_query`], whichever source the token came from.)
pub fn remove_from_headers(source: Option<Source>, h: &mut HeaderMap) {
    if source == Some(Source::WebSocket) {
        strip_websocket_token(h);
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
        remove_from_headers(Some(Source::WebSocket), &mut h);
        assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "chat");
    }
}
