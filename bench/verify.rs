//! Verification and routing costs: a cold RS256 verification (signature + claims), a warm
//! one (verified-token cache hit), and a lookup in a 200-route table.
//!
//! The `rs256_backend` group compares the RSA backends jsonwebtoken can use on the bare
//! signature check of the same token: aws-lc-rs as jsonwebtoken calls it (the key rebuilt
//! from `n`/`e` on every call), aws-lc-rs with the key parsed once (what the sidecar does),
//! and RustCrypto's `rsa` crate (jsonwebtoken's `rust_crypto` feature).
//!
//! `cargo bench --bench verify`

use std::sync::Arc;

use cognito_sidecar::config::Config;
use cognito_sidecar::demo::keys::SigningKey;
use cognito_sidecar::metrics::Metrics;
use cognito_sidecar::verify::{now_secs, Verifier};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Method;
use serde_json::json;

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench";

fn setup(key: &SigningKey, cache_entries: usize) -> (Verifier, String) {
    let text = format!(
        r#"
[upstream]
url = "http://127.0.0.1:5000"
[[issuers]]
name = "bench"
user_pool_id = "eu-west-1_Bench"
jwks_url = "http://127.0.0.1:9/jwks.json"
[token]
cache_entries = {cache_entries}
"#
    );
    let config = Config::from_toml_str("bench.toml", &text, &[]).unwrap();
    let metrics = Arc::new(Metrics::new());
    let jwks = cognito_sidecar::demo::keys::jwks(&[key]).to_string();
    let verifier = Verifier::with_jwks(&config, jwks.as_bytes(), metrics).unwrap();
    let now = now_secs();
    // An ~850-byte Cognito-style client-credentials access token.
    let token = key.sign(&json!({
        "sub": "4qf1r2p7a8s9d0f1g2h3j4k5l6",
        "token_use": "access",
        "scope": "dotnet-demo/dotnet",
        "auth_time": now,
        "iss": ISS,
        "exp": now + 3600,
        "iat": now,
        "version": 2,
        "jti": "1f2e3d4c-5b6a-7980-a1b2-c3d4e5f6a7b8",
        "client_id": "4qf1r2p7a8s9d0f1g2h3j4k5l6",
    }));
    (verifier, token)
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate("bench-kid").unwrap();
    let (cold, token) = setup(&key, 0);
    let (warm, _) = setup(&key, 1000);
    let warm_token = token.clone();
    let now = now_secs();
    // Twice: a token enters the cache on its second use (src/admission.rs).
    for _ in 0..2 {
        rt.block_on(warm.verify(&warm_token, now)).unwrap();
    }
    let mut g = c.benchmark_group("verify");
    g.bench_function("cold_rs256", |b| {
        b.iter(|| rt.block_on(cold.verify(&token, now)).unwrap())
    });
    g.bench_function("warm_cache_hit", |b| {
        b.iter(|| rt.block_on(warm.verify(&warm_token, now)).unwrap())
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let mut text = String::from(
        "[upstream]\nurl = \"http://127.0.0.1:5000\"\n[[issuers]]\nuser_pool_id = \"eu-west-1_Bench\"\n",
    );
    for i in 0..200 {
        text.push_str(&format!(
            "[[routes]]\npath = \"/api/v1/service{i}/items/*/detail\"\nmethods = [\"GET\"]\nscopes = [\"svc/{i}\"]\n"
        ));
    }
    let config = Config::from_toml_str("bench.toml", &text, &[]).unwrap();
    let table = &config.routes;
    let mut g = c.benchmark_group("routes_200");
    g.bench_function("first_route", |b| {
        b.iter(|| table.lookup(&Method::GET, "/api/v1/service0/items/42/detail"))
    });
    g.bench_function("last_route", |b| {
        b.iter(|| table.lookup(&Method::GET, "/api/v1/service199/items/42/detail"))
    });
    g.bench_function("unmatched_default", |b| {
        b.iter(|| table.lookup(&Method::GET, "/other/path/that/matches/nothing"))
    });
    g.bench_function("normalize_and_last_route", |b| {
        b.iter_batched(
            || "/API/v1/service199/items/%34%32/./detail".to_string(),
            |p| {
                let n = cognito_sidecar::path::normalize(&p).unwrap();
                table.lookup(&Method::GET, &n).is_route()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn rs256_backend(c: &mut Criterion) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rsa::signature::Verifier as _;

    let key = SigningKey::generate("bench-kid").unwrap();
    let (_, token) = setup(&key, 0);
    let (signed, s64) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(s64).unwrap();
    let (n, e) = (key.modulus().to_vec(), key.exponent().to_vec());

    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg = jsonwebtoken::Algorithm::RS256;
    let components = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    let parsed = components
        .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    let rust_crypto = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(
        rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from_bytes_be(&e),
        )
        .unwrap(),
    );
    let rc_sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();

    // All three accept the token and refuse a changed message.
    assert!(jsonwebtoken::crypto::verify(s64, signed.as_bytes(), &decoding, alg).unwrap());
    assert!(parsed.verify_sig(signed.as_bytes(), &sig).is_ok());
    assert!(rust_crypto.verify(signed.as_bytes(), &rc_sig).is_ok());
    assert!(parsed.verify_sig(b"other", &sig).is_err());
    assert!(rust_crypto.verify(b"other", &rc_sig).is_err());

    let mut g = c.benchmark_group("rs256_backend");
    g.bench_function("aws_lc_rs_via_jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::crypto::verify(s64, signed.as_bytes(), &decoding, alg).unwrap())
    });
    g.bench_function("aws_lc_rs_parsed_key", |b| {
        b.iter(|| parsed.verify_sig(signed.as_bytes(), &sig).is_ok())
    });
    g.bench_function("rust_crypto_rsa", |b| {
        b.iter(|| rust_crypto.verify(signed.as_bytes(), &rc_sig).is_ok())
    });
    g.finish();
}

criterion_group!(benches, verify, rs256_backend, routing);
criterion_main!(benches);
