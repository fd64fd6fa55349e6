//! Token parsing and verification: `Verifier::verify_uncached` with a real RSA key installed
//! through `KeyStore::install_jwks`.
//!
//! The first byte picks the shape of the input:
//! - `0..=63`: the rest is the token, as text;
//! - `64..=127`: the rest is `header JSON 0xFF payload JSON`, signed with the installed key,
//!   so the header and claim checks behind the signature are reached;
//! - `128..=255`: the rest is the payload JSON under a fixed RS256 header, signed.
//!
//! Properties: never panics; an accepted token is from the configured issuer, unexpired,
//! a Cognito access or ID token of the configured client, and the identity headers say exactly
//! what was granted (`X-Auth-Groups` is the granted groups, `X-Auth-Scope` the scope string).

#![no_main]

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cognito_sidecar::demo::keys::{self, SigningKey};
use cognito_sidecar::metrics::Metrics;
use cognito_sidecar::verify::Verifier;
use cognito_sidecar::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISS: &str = "https://cognito-idp.local-1.amazonaws.com/local-1_FuzzPool";
const NOW: i64 = 1_700_000_000;

struct World {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    key: SigningKey,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // The JWKS URL is a closed loopback port: an unknown kid's one allowed refetch fails
        // at once (and jwks_min_refetch keeps it to one).
        let config = Config::from_toml_str(
            "fuzz.toml",
            r#"
[upstream]
url = "http://127.0.0.1:9"
[[issuers]]
name = "fuzz"
user_pool_id = "local-1_FuzzPool"
jwks_url = "http://127.0.0.1:9/jwks.json"
client_ids = ["client-a"]
jwks_min_refetch = "1h"
jwks_timeout = "1s"
[token]
cache_entries = 0
"#,
            &[],
        )
        .expect("fuzz config");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = SigningKey::generate("kid-a").unwrap();
        let metrics = Arc::new(Metrics::new());
        let jwks = keys::jwks(&[&key]).to_string();
        let verifier = rt
            .block_on(async { Verifier::with_jwks(&config, jwks.as_bytes(), metrics) })
            .unwrap();
        World { rt, verifier, key }
    })
}

fn signed(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = key.sign_input(&input);
    format!("{input}.{sig}")
}

/// Identity header values are percent-encoded (`%`, `,` in array elements, and every byte
/// of 0x80 and above): decoding must give the claim back exactly.
fn unescape(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("a decoded header value is the claim's UTF-8")
        .into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let token = match mode {
        0..=63 => String::from_utf8_lossy(rest).into_owned(),
        64..=127 => {
            let cut = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
            let payload = rest.get(cut + 1..).unwrap_or(&[]);
            signed(&w.key, &rest[..cut], payload)
        }
        _ => signed(&w.key, br#"{"alg":"RS256","kid":"kid-a"}"#, rest),
    };
    let Ok((v, claims)) = w.rt.block_on(w.verifier.verify_uncached(&token, NOW)) else {
        return;
    };
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISS));
    let exp = v.exp;
    assert!(
        exp.saturating_add(60) >= NOW,
        "expired token accepted: exp {exp}"
    );
    assert!(v.token_use.is_some(), "no token_use");
    assert!(
        v.clients().contains("client-a"),
        "wrong client accepted: {:?}",
        v.clients().iter().collect::<Vec<_>>()
    );
    for (name, value) in v.headers() {
        // Non-ASCII is percent-encoded: a rendered value is ASCII (visible, spaces, tabs).
        assert!(value.as_bytes().is_ascii(), "a non-ASCII identity header value");
        let value = std::str::from_utf8(value.as_bytes()).expect("ASCII is UTF-8");
        match name.as_str() {
            "x-auth-groups" => {
                let got: Vec<String> = if value.is_empty() {
                    vec![]
                } else {
                    value.split(',').map(unescape).collect()
                };
                let granted: Vec<String> = v.groups().iter().map(str::to_string).collect();
                assert_eq!(got, granted, "X-Auth-Groups is not the granted groups");
            }
            "x-auth-scope" => {
                assert_eq!(
                    Some(unescape(value).as_str()),
                    claims.get("scope").and_then(Value::as_str)
                );
            }
            _ => {}
        }
    }
});
