//! Header hygiene: `headers::strip_hop_by_hop` and `IdentityHeaders::strip` on any header set.
//!
//! Input: lines `name:value` (invalid names or values are skipped). Properties: never panics;
//! after both, no header remains whose canonical name (lower case, `_` as `-`) is a configured
//! identity header, the claims header, a path or method override, an ALB `x-amzn-oidc-*` header
//! or a hop-by-hop header, nor
//! one named in the original `Connection` (except `Host`, `Content-Length`, `X-Request-Id`);
//! every other header keeps all its values.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use cognito_sidecar::config::ForwardConfig;
use cognito_sidecar::headers::{strip_hop_by_hop, IdentityHeaders};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const IDENTITY: &[&str] = &[
    "x-auth-sub",
    "x-auth-groups",
    "x-user-email",
    "x.tenant",
    "x-auth-claims",
];
const OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];
const PROTECTED: &[&str] = &["host", "content-length", "x-request-id"];

fn identity() -> &'static IdentityHeaders {
    static I: OnceLock<IdentityHeaders> = OnceLock::new();
    I.get_or_init(|| {
        IdentityHeaders::new(&ForwardConfig {
            strip_authorization: false,
            claims_header: Some(HeaderName::from_static("x-auth-claims")),
            headers: IDENTITY[..4]
                .iter()
                .map(|h| (HeaderName::from_static(h), "sub".to_string()))
                .collect(),
        })
    })
}

fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let before = headers.clone();
    let mut listed: HashSet<String> = HashSet::new();
    for v in before.get_all("connection") {
        if let Ok(s) = v.to_str() {
            for t in s.split(',') {
                if let Ok(n) = HeaderName::from_bytes(t.trim().as_bytes()) {
                    listed.insert(n.as_str().to_string());
                }
            }
        }
    }

    strip_hop_by_hop(&mut headers);
    identity().strip(&mut headers);

    for name in headers.keys() {
        let s = name.as_str();
        let canon = canonical(s);
        assert!(
            !IDENTITY.contains(&canon.as_str()),
            "identity header {s} survived"
        );
        assert!(
            !OVERRIDES.contains(&canon.as_str()),
            "override header {s} survived"
        );
        assert!(
            !HOP.contains(&canon.as_str()),
            "hop-by-hop header {s} survived"
        );
        // An ALB's headers never pass as sent (the proxy puts back a verified
        // x-amzn-oidc-data itself).
        assert!(
            !cognito_sidecar::alb::ALB_HEADERS.contains(&canon.as_str()),
            "ALB header {s} survived"
        );
        assert!(
            !listed.contains(s) || PROTECTED.contains(&s),
            "{s} was named in Connection and survived"
        );
    }
    // Nothing else was touched.
    for name in before.keys() {
        let s = name.as_str();
        let canon = canonical(s);
        let doomed = IDENTITY.contains(&canon.as_str())
            || OVERRIDES.contains(&canon.as_str())
            || cognito_sidecar::alb::ALB_HEADERS.contains(&canon.as_str())
            || HOP.contains(&canon.as_str())
            || (s.contains('_')
                && matches!(
                    canon.as_str(),
                    "content-length"
                        | "x-forwarded-for"
                        | "x-forwarded-proto"
                        | "x-forwarded-host"
                        | "x-request-id"
                ))
            || (listed.contains(s) && !PROTECTED.contains(&s));
        if !doomed {
            let a: Vec<_> = before.get_all(name).iter().collect();
            let b: Vec<_> = headers.get_all(name).iter().collect();
            assert_eq!(
                a, b,
                "{s} was changed though it is no identity or hop-by-hop header"
            );
        }
    }
});
