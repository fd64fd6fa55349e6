//! Validates `[token]`: where a token may be read from and how large it may be. Reading
//! and caching tokens are left to `crate::token` and `crate::verify`.

use super::model::TokenConfig;
use super::problems::Problems;
use super::raw::RawToken;

pub(super) fn validate_token(p: &mut Problems, raw: &RawToken) -> TokenConfig {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    if let Some(c) = &raw.cookie {
        if !name_ok(c) {
            p.push("token.cookie", format!("invalid cookie name {c:?}"));
        }
    }
    if let Some(q) = &raw.query {
        if !name_ok(q) {
            p.push("token.query", format!("invalid query parameter name {q:?}"));
        }
    }
    let header = raw.header.as_deref().and_then(|h| {
        let name = p.header_name("token.header", h.trim())?;
        // The sidecar reads these itself (or they are framing): none can be a token source.
        let reserved = [
            "authorization",
            "cookie",
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
        ];
        if reserved.contains(&name.as_str()) {
            p.push("token.header", format!("{name} cannot be a token source"));
        }
        Some(name)
    });
    if raw.max_bytes < 256 || raw.max_bytes > 64 * 1024 {
        p.push("token.max_bytes", "must be between 256 and 65536");
    }
    TokenConfig {
        cookie: raw.cookie.clone(),
        query: raw.query.clone(),
        header,
        websocket_protocol: raw.websocket_protocol,
        max_bytes: raw.max_bytes,
        cache_entries: raw.cache_entries,
        alb_data: false,
    }
}
