//! The ALB token decoder: `alb::AlbToken::parse` (an ALB's `x-amzn-oidc-data`) and
//! `alb::has_signer`, over arbitrary text.
//!
//! Properties: never panics; an accepted token has exactly three segments, each the canonical
//! padded base64url of what was decoded (one spelling per token), `alg` ES256, a `kid` that is
//! a safe URL path segment, and a signing input that is the token up to its last `.`; and
//! `has_signer` says yes for it.

#![no_main]

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use cognito_sidecar::alb::{has_signer, is_safe_kid, AlbToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = has_signer(text);
    let Ok(t) = AlbToken::parse(text) else {
        return;
    };
    let parts: Vec<&str> = text.split('.').collect();
    assert_eq!(parts.len(), 3);
    for part in &parts {
        let bytes = URL_SAFE.decode(part).expect("an accepted segment decodes");
        assert_eq!(&URL_SAFE.encode(bytes), part, "non-canonical segment accepted");
    }
    assert_eq!(t.signed, &text[..text.rfind('.').unwrap()]);
    assert_eq!(URL_SAFE.encode(&t.signature), parts[2]);
    assert!(is_safe_kid(&t.kid), "unsafe kid {:?}", t.kid);
    assert!(has_signer(text));
});
