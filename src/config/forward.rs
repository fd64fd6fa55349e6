//! Validates `[forward]`: the identity headers the upstream receives. Setting and stripping
//! them on requests is left to `crate::headers`.

use std::collections::HashSet;

use http::header::HeaderName;

use super::model::ForwardConfig;
use super::problems::Problems;
use super::raw::RawForward;

/// Headers the sidecar owns on the way to the upstream; they can't carry claims.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "cookie",
];

pub(super) fn validate_forward(p: &mut Problems, raw: &RawForward) -> ForwardConfig {
    let mut seen: HashSet<String> = HashSet::new();
    let mut check_name = |p: &mut Problems, key: &str, name: &HeaderName| {
        let canon = name.as_str().replace('_', "-");
        if RESERVED_HEADERS.contains(&canon.as_str()) {
            p.push(
                key,
                format!("{name} is managed by the sidecar and cannot carry claims"),
            );
        }
        if !seen.insert(canon) {
            p.push(
                key,
                format!("duplicate header name {name} (names are case-insensitive and `_` reads as `-`)"),
            );
        }
    };
    let claims_header = if raw.claims_header.trim().is_empty() {
        None
    } else {
        let h = p.header_name("forward.claims_header", raw.claims_header.trim());
        if let Some(h) = &h {
            check_name(p, "forward.claims_header", h);
        }
        h
    };
    let mut headers = Vec::new();
    for (name, claim) in &raw.headers {
        let key = format!("forward.headers.{name}");
        if let Some(h) = p.header_name(&key, name) {
            check_name(p, &key, &h);
            if claim.trim().is_empty() {
                p.push(&key, "claim name is empty");
            }
            headers.push((h, claim.trim().to_string()));
        }
    }
    ForwardConfig {
        strip_authorization: raw.strip_authorization,
        claims_header,
        headers,
    }
}
