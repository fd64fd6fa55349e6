//! The decision listener's reading of the original request: `authz::original` on any check
//! request, for each protocol.
//!
//! Input: the first byte picks the protocol (nginx, traefik, envoy with the path prefix
//! `/check`); then lines `name:value` (invalid names or values are skipped); a line
//! `@METHOD TARGET` sets the check request's own method and target.
//!
//! Properties: never panics; an accepted original has an origin-form target (starts with
//! one `/`, no fragment, exactly what `origin_form` accepts again), a method other than
//! CONNECT, and, for envoy, came from a check request under the prefix.

#![no_main]

use cognito_sidecar::authz::{origin_form, original};
use cognito_sidecar::config::{AuthzConfig, AuthzProtocol};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let protocol = match mode % 3 {
        0 => AuthzProtocol::Nginx,
        1 => AuthzProtocol::Traefik,
        _ => AuthzProtocol::Envoy,
    };
    let cfg = AuthzConfig {
        address: None,
        protocol,
        trusted_proxies: Vec::new(),
        path_prefix: if protocol == AuthzProtocol::Envoy {
            "/check".into()
        } else {
            String::new()
        },
        socket_mode: 0o600,
    };
    let text = String::from_utf8_lossy(rest);
    let mut req = Request::new(());
    for line in text.lines() {
        if let Some(own) = line.strip_prefix('@') {
            let (m, t) = own.split_once(' ').unwrap_or((own, "/"));
            if let Ok(m) = Method::from_bytes(m.as_bytes()) {
                *req.method_mut() = m;
            }
            if let Ok(u) = t.parse() {
                *req.uri_mut() = u;
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            req.headers_mut().append(k, v);
        }
    }
    let Ok(o) = original(&cfg, &req) else {
        return;
    };
    let target = o.target.as_str();
    assert!(target.starts_with('/') && !target.starts_with("//"), "{target:?}");
    assert!(!target.contains('#'), "{target:?}");
    assert_eq!(origin_form(target).as_ref(), Some(&o.target));
    assert_ne!(o.method, Method::CONNECT);
    if protocol == AuthzProtocol::Envoy {
        let own = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        assert!(own.starts_with("/check"), "envoy accepted {own:?} outside the prefix");
    }
});
