//! Token forgery: every way to make the sidecar accept a token the issuer did not sign, or to
//! read the same signed token two ways. (auth.rs has the basics: `alg: none` in a few
//! spellings, RS256 -> HS256 with the modulus, embedded `jwk`/`jku`, `crit: ["exp"]`, a
//! duplicated `scope`.)

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/api/**"
scopes = ["orders/read"]
"#;

fn good() -> Value {
    access_claims("orders/read")
}

/// The sidecar with the refetch bound at an hour: one start-up fetch, then none.
async fn env() -> Env {
    env_with(ROUTES, |t| {
        t.replace("jwks_min_refetch = \"0s\"", "jwks_min_refetch = \"1h\"")
    })
    .await
}

/// `header.payload` of raw JSON texts, base64url without padding.
fn input_of(header: &str, payload: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// A token over exactly this signing input, with a genuine KEY_A RS256 signature.
fn signed(input: &str) -> String {
    format!("{input}.{}", KEY_A.sign_input(input))
}

const HEADER: &str = r#"{"alg":"RS256","kid":"kid-a"}"#;

#[tokio::test]
async fn alg_none_and_other_algorithm_spellings_are_refused() {
    let env = env().await;
    let c = good();
    // Unsigned (empty signature): malformed; with any signature: the alg is refused.
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "",
        " none",
        "none ",
        "none\u{0}",
        "none\t",
    ] {
        let h = json!({"alg": alg, "kid": "kid-a"});
        let t = cognito_sidecar::demo::keys::unsigned(&h, &c);
        expect_401(&env, "/api/x", &t, "malformed").await;
        expect_401(&env, "/api/x", &format!("{t}c2ln"), "alg_not_allowed").await;
    }
    // Near-miss spellings of the allowed algorithm, signed with the right key.
    for alg in [
        "rs256",
        "RS256 ",
        " RS256",
        "RS256\u{0}",
        "RS 256",
        "RS-256",
        "HS256",
        "HS384",
        "HS512",
        "ES256K",
        "EdDSA",
        "RSA-OAEP",
        "dir",
        "PS256",
        "RS384",
        "RS512",
    ] {
        let t = KEY_A.sign_raw(&json!({"alg": alg, "kid": "kid-a"}), &c);
        expect_401(&env, "/api/x", &t, "alg_not_allowed").await;
    }
    // An alg that is not a string, or none at all.
    for h in [
        json!({"alg": null, "kid": "kid-a"}),
        json!({"alg": 256, "kid": "kid-a"}),
        json!({"alg": ["RS256"], "kid": "kid-a"}),
        json!({"alg": {"name": "RS256"}, "kid": "kid-a"}),
        json!({"kid": "kid-a"}),
    ] {
        let t = KEY_A.sign_raw(&h, &c);
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
}

#[tokio::test]
async fn hmac_with_the_public_key_as_secret_is_refused_for_every_hs_size() {
    let env = env().await;
    let c = good();
    let jwk_text = KEY_A.jwk().to_string();
    let secrets: [&[u8]; 3] = [KEY_A.modulus(), jwk_text.as_bytes(), b"kid-a"];
    for (alg, hmac) in [
        ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
        ("HS384", aws_lc_rs::hmac::HMAC_SHA384),
        ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
    ] {
        for secret in secrets {
            let input = format!("{}.{}", b64(&json!({"alg": alg, "kid": "kid-a"})), b64(&c));
            let tag =
                aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(hmac, secret), input.as_bytes());
            let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            expect_401(&env, "/api/x", &t, "alg_not_allowed").await;
        }
    }
}

#[tokio::test]
async fn kid_as_path_url_or_sql_is_never_fetched_or_read() {
    let env = env().await;
    // An attacker's key set, served on loopback and written to disk: neither is ever used.
    let evil = Jwks::start(&[&KEY_B]).await;
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        cognito_sidecar::demo::keys::jwks(&[&KEY_B]).to_string(),
    )
    .unwrap();
    let key_file = dir.path().join("kid-b");
    std::fs::write(&key_file, KEY_B.jwk().to_string()).unwrap();
    let file = jwks_file.display().to_string();
    let before = env.jwks.fetches();
    let kids = [
        file.clone(),
        key_file.display().to_string(),
        format!("file://{file}"),
        format!("../../../../..{file}"),
        "../../../../../../etc/passwd".into(),
        "/dev/zero".into(),
        "/proc/self/environ".into(),
        evil.url(),
        format!("http://{}/", evil.addr),
        format!("//{}/jwks.json", evil.addr),
        "kid-a' OR '1'='1".into(),
        "' UNION SELECT n FROM keys --".into(),
        "kid-a\"; DROP TABLE keys; --".into(),
        "kid-a\u{0}".into(),
        "kid-a ".into(),
        "KID-A".into(),
        "kid-b".into(),
        "*".into(),
        String::new(),
        "x".repeat(4000),
    ];
    for kid in &kids {
        let t = KEY_B.sign_raw(&json!({"alg":"RS256","kid":kid}), &good());
        expect_401(&env, "/api/x", &t, "unknown_kid").await;
    }
    // Key URLs in the header are never followed either.
    for h in [
        json!({"alg":"RS256","kid":"kid-b","jku":evil.url()}),
        json!({"alg":"RS256","kid":"kid-b","x5u":evil.url()}),
        json!({"alg":"RS256","kid":"kid-b","x5c":[STANDARD.encode(b"not a cert")]}),
        json!({"alg":"RS256","jwk":KEY_B.jwk()}),
    ] {
        let t = KEY_B.sign_raw(&h, &good());
        expect_401(&env, "/api/x", &t, "unknown_kid").await;
    }
    // A kid that is not a string is malformed.
    for kid in [
        json!(1),
        json!(["kid-a"]),
        json!({"kid":"kid-a"}),
        json!(true),
    ] {
        let t = KEY_A.sign_raw(&json!({"alg":"RS256","kid":kid}), &good());
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
    assert_eq!(evil.fetches(), 0, "a URL from a token was fetched");
    assert!(
        env.jwks.fetches() <= before + 1,
        "{} JWKS fetches for {} forged kids",
        env.jwks.fetches() - before,
        kids.len()
    );
}

#[tokio::test]
async fn es256_zero_signatures_and_key_type_confusion_are_refused() {
    let ec = EcKey::generate("ec-1");
    let jwks = Jwks::start_with(JwksMode::Keys(json!({"keys": [KEY_A.jwk(), ec.jwk()]}))).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &jwks.url(), ROUTES).replace(
        "jwks_min_refetch = \"0s\"",
        "jwks_min_refetch = \"1h\"\nalgorithms = [\"RS256\", \"ES256\"]",
    );
    let env = Env {
        jwks,
        upstream,
        sidecar: cognito_sidecar::Sidecar::start(config(&text))
            .await
            .unwrap(),
    };
    env.wait_ready().await;
    let c = good();
    // The real thing works, so the refusals below are about the forgery.
    let seen = expect_200(&env, "/api/x", &ec.sign(&c)).await;
    assert_eq!(seen.headers["x-auth-sub"], CLIENT);

    let input = format!("{}.{}", b64(&json!({"alg":"ES256","kid":"ec-1"})), b64(&c));
    // P-256 group order n: r = s = n is the other "psychic signature".
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let real = ec.sign_input(&input);
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&real[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&real[32..]);
    let forged: Vec<(&str, Vec<u8>)> = vec![
        ("r=s=0", vec![0u8; 64]),
        ("r=s=n", [n.clone(), n.clone()].concat()),
        ("r=1,s=0", [vec![0u8; 31], vec![1], vec![0u8; 32]].concat()),
        ("all ones", vec![0xff; 64]),
        ("DER encoding of a real signature", der),
        ("63 bytes", real[..63].to_vec()),
        ("65 bytes", [real.clone(), vec![0]].concat()),
        (
            "r and s swapped",
            [real[32..].to_vec(), real[..32].to_vec()].concat(),
        ),
        ("zero bytes", vec![]),
    ];
    for (what, sig) in forged {
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        let reason = if sig.is_empty() {
            "malformed"
        } else {
            "bad_signature"
        };
        let before = env.upstream.hits();
        let r = call(env.addr(), "/api/x", &t).await;
        assert_eq!(
            (r.status, r.reason().as_str()),
            (401, reason),
            "{what}: {r:?}"
        );
        assert_eq!(env.upstream.hits(), before, "{what}");
    }
    // An ES256 header on the RSA key, and RS256 on the EC key: the key type decides.
    let t = format!(
        "{}.{}.{}",
        b64(&json!({"alg":"ES256","kid":"kid-a"})),
        b64(&c),
        URL_SAFE_NO_PAD.encode(vec![0u8; 64])
    );
    expect_401(&env, "/api/x", &t, "alg_not_allowed").await;
    let t = KEY_A.sign_raw(&json!({"alg":"RS256","kid":"ec-1"}), &c);
    expect_401(&env, "/api/x", &t, "alg_not_allowed").await;
    // ES384 is not in the issuer's list.
    let t = format!(
        "{}.{}.{}",
        b64(&json!({"alg":"ES384","kid":"ec-1"})),
        b64(&c),
        URL_SAFE_NO_PAD.encode(vec![0u8; 96])
    );
    expect_401(&env, "/api/x", &t, "alg_not_allowed").await;
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn stripped_truncated_and_respelled_signatures_are_refused() {
    let env = env().await;
    let t = sign(&good());
    let (input, sig) = t.rsplit_once('.').unwrap();
    assert_eq!(
        sig.len(),
        342,
        "RSA-2048: 256 bytes, 4 trailing bits in the last char"
    );
    // Stripped.
    expect_401(&env, "/api/x", &format!("{input}."), "malformed").await;
    expect_401(&env, "/api/x", input, "malformed").await;
    expect_401(&env, "/api/x", &format!("{input}.."), "malformed").await;
    // Truncated, extended, or the same bytes spelled another way.
    let last = sig.chars().last().unwrap();
    let trailing = {
        // Same 256 bytes, but the unused low bits of the last character set.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let v = alphabet.find(last).unwrap();
        alphabet.chars().nth(v | 0x0f).unwrap()
    };
    let variants = [
        sig[..sig.len() - 1].to_string(),
        sig[..sig.len() - 4].to_string(),
        sig[..171].to_string(),
        format!("{sig}A"),
        format!("{sig}AAAA"),
        format!("{sig}=="),
        format!("{}{trailing}", &sig[..sig.len() - 1]),
        sig.replace('-', "+").replace('_', "/"),
        STANDARD.encode(URL_SAFE_NO_PAD.decode(sig).unwrap()),
    ];
    for v in variants {
        if v == sig {
            continue;
        }
        let before = env.upstream.hits();
        let r = call(env.addr(), "/api/x", &format!("{input}.{v}")).await;
        assert_eq!(r.status, 401, "{v}: {r:?}");
        assert!(
            matches!(r.reason().as_str(), "bad_signature" | "malformed"),
            "{v}: {r:?}"
        );
        assert_eq!(env.upstream.hits(), before);
    }
    // The signature of another token.
    let other = sign(&access_claims("orders/read other"));
    let t = format!("{input}.{}", other.rsplit_once('.').unwrap().1);
    expect_401(&env, "/api/x", &t, "bad_signature").await;
    // The genuine token still works.
    expect_200(&env, "/api/x", &t_restore(input, sig)).await;
}

fn t_restore(input: &str, sig: &str) -> String {
    format!("{input}.{sig}")
}

#[tokio::test]
async fn crit_and_b64_extensions_are_refused() {
    let env = env().await;
    for h in [
        json!({"alg":"RS256","kid":"kid-a","crit":[]}),
        json!({"alg":"RS256","kid":"kid-a","crit":["b64"],"b64":false}),
        json!({"alg":"RS256","kid":"kid-a","b64":false}),
        json!({"alg":"RS256","kid":"kid-a","b64":true}),
        json!({"alg":"RS256","kid":"kid-a","crit":"exp"}),
        json!({"alg":"RS256","kid":"kid-a","crit":null}),
    ] {
        let t = KEY_A.sign_raw(&h, &good());
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
}

/// Claims whose JSON serialisation has a base64url form with `-` or `_` and a length that is
/// not a multiple of 3 (so padding and trailing bits exist), found by varying a filler claim.
fn awkward_claims() -> (Vec<u8>, String) {
    for i in 0..500 {
        let mut c = good();
        c["pad"] = json!("?".repeat(i % 7) + &">".repeat(i / 7));
        let text = c.to_string().into_bytes();
        let enc = URL_SAFE_NO_PAD.encode(&text);
        if text.len() % 3 == 1 && enc.contains('-') && enc.contains('_') {
            return (text, enc);
        }
    }
    unreachable!("no awkward claims found")
}

#[tokio::test]
async fn non_canonical_base64_is_refused_even_when_validly_signed() {
    let env = env().await;
    let (payload, canon) = awkward_claims();
    let h = URL_SAFE_NO_PAD.encode(HEADER);
    // The canonical form of these very claims is accepted.
    expect_200(&env, "/api/x", &signed(&format!("{h}.{canon}"))).await;
    let last = canon.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let with_bits = alphabet
        .chars()
        .nth(alphabet.find(last).unwrap() | 0x0f)
        .unwrap();
    assert_ne!(with_bits, last);
    let spellings = [
        ("padding", format!("{canon}==")),
        (
            "standard alphabet",
            canon.replace('-', "+").replace('_', "/"),
        ),
        (
            "trailing bits",
            format!("{}{with_bits}", &canon[..canon.len() - 1]),
        ),
        ("inner padding", format!("{}={}", &canon[..8], &canon[8..])),
        ("leading space (in a cookie)", format!(" {canon}")),
        ("percent-encoded", canon.replace('-', "%2D")),
        ("standard base64 with padding", STANDARD.encode(&payload)),
    ];
    for (what, p) in &spellings {
        let t = signed(&format!("{h}.{p}"));
        let before = env.upstream.hits();
        let r = call(env.addr(), "/api/x", &t).await;
        assert_eq!(
            (r.status, r.reason().as_str()),
            (401, "malformed"),
            "{what}: {r:?}"
        );
        assert_eq!(env.upstream.hits(), before, "{what}");
    }
    // Whitespace cannot ride in the Authorization header at all; in a cookie it is malformed.
    let env = env_with(&format!("{ROUTES}\n[token]\ncookie = \"tok\"\n"), |t| t).await;
    for p in [
        format!("{} {}", &canon[..10], &canon[10..]),
        format!("{}\t{}", &canon[..10], &canon[10..]),
    ] {
        let t = signed(&format!("{h}.{p}"));
        let before = env.upstream.hits();
        let r = request(
            env.addr(),
            "GET",
            "/api/x",
            &[("cookie", &format!("tok={t}"))],
            "",
        )
        .await;
        assert_eq!((r.status, r.reason().as_str()), (401, "malformed"), "{r:?}");
        assert_eq!(env.upstream.hits(), before);
    }
    // A non-canonical header segment, validly signed.
    let hc = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"kid-a","x":"???>>>"}"#);
    assert!(hc.contains('-') && hc.contains('_'), "{hc}");
    let t = signed(&format!(
        "{}.{canon}",
        hc.replace('-', "+").replace('_', "/")
    ));
    let r = call(env.addr(), "/api/x", &t).await;
    assert_eq!((r.status, r.reason().as_str()), (401, "malformed"), "{r:?}");
}

#[tokio::test]
async fn duplicate_json_keys_in_header_and_payload_are_refused() {
    let env = env().await;
    let c = good();
    let body = c.to_string();
    let body = &body[1..body.len() - 1];
    let headers = [
        r#"{"alg":"RS256","kid":"kid-a","alg":"none"}"#,
        r#"{"alg":"none","alg":"RS256","kid":"kid-a"}"#,
        r#"{"alg":"RS256","kid":"kid-b","kid":"kid-a"}"#,
        r#"{"alg":"RS256","kid":"kid-a","\u0061lg":"HS256"}"#,
        r#"{"alg":"RS256","kid":"kid-a","crit":["x"],"crit":[]}"#,
    ];
    for h in headers {
        let t = signed(&input_of(h, c.to_string().as_bytes()));
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
    let payloads = [
        format!(r#"{{{body},"iss":"https://evil.example"}}"#),
        format!(r#"{{"iss":"https://evil.example",{body}}}"#),
        format!(r#"{{{body},"exp":1}}"#),
        format!(r#"{{{body},"token_use":"id"}}"#),
        format!(r#"{{{body},"client_id":"client-b"}}"#),
        format!(r#"{{{body},"sub":"admin"}}"#),
        format!(r#"{{{body},"\u0073cope":"orders/read admin"}}"#),
        format!(r#"{{{body},"s\u0063ope":"x"}}"#),
    ];
    for p in &payloads {
        let t = signed(&input_of(HEADER, p.as_bytes()));
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
}

#[tokio::test]
async fn time_claims_of_the_wrong_type_or_size() {
    let env = env().await;
    let n = now();
    let with = |k: &str, v: Value| {
        let mut c = good();
        c[k] = v;
        sign(&c)
    };
    for (k, v) in [
        ("exp", json!((n + 600).to_string())),
        ("exp", json!(null)),
        ("exp", json!(true)),
        ("exp", json!([n + 600])),
        ("exp", json!({"$date": n + 600})),
        ("nbf", json!("0")),
        ("iat", json!("0")),
        ("iat", json!(false)),
    ] {
        expect_401(&env, "/api/x", &with(k, v), "malformed").await;
    }
    for (k, v) in [
        ("exp", json!(-1)),
        ("exp", json!(0)),
        ("exp", json!(i64::MIN)),
        ("exp", json!(-1e300)),
        ("exp", json!((n - 120) as f64 + 0.999)),
    ] {
        expect_401(&env, "/api/x", &with(k, v), "expired").await;
    }
    for (k, v) in [
        ("nbf", json!(n + 3600)),
        ("nbf", json!(u64::MAX)),
        ("nbf", json!(1e300)),
        ("iat", json!(i64::MAX)),
        ("iat", json!(1e300)),
    ] {
        expect_401(&env, "/api/x", &with(k, v), "not_yet_valid").await;
    }
    // Numbers outside f64 cannot be parsed at all.
    let mut c = good();
    // A marker serde_json prints as is, then swapped for a literal no f64 can hold (the
    // claims' own exp depends on the clock, so it is not matched as text).
    c["exp"] = json!(123456789);
    let body = c.to_string();
    let p = body.replacen("\"exp\":123456789", "\"exp\":1e400", 1);
    assert_ne!(p, body);
    expect_401(
        &env,
        "/api/x",
        &signed(&input_of(HEADER, p.as_bytes())),
        "malformed",
    )
    .await;
    // Fractions are truncated; far-future and negative nbf/iat are plain numbers.
    for (k, v) in [
        ("exp", json!((n + 600) as f64 + 0.5)),
        ("exp", json!(u64::MAX)),
        ("exp", json!(1e300)),
        ("nbf", json!(-5)),
        ("nbf", json!(i64::MIN)),
        ("iat", json!(-1e300)),
        ("iat", json!(n as f64 - 0.5)),
    ] {
        expect_200(&env, "/api/x", &with(k, v)).await;
    }
}

#[tokio::test]
async fn headers_and_payloads_that_are_not_json_objects_are_refused() {
    let env = env().await;
    let c = good().to_string();
    let payloads: Vec<Vec<u8>> = vec![
        format!("[{c}]").into_bytes(),
        format!("{:?}", c).into_bytes(),
        b"12345".to_vec(),
        b"null".to_vec(),
        b"true".to_vec(),
        b"".to_vec(),
        format!("{c}{c}").into_bytes(),
        format!("{c}x").into_bytes(),
        [b"\xef\xbb\xbf".to_vec(), c.clone().into_bytes()].concat(),
        replace_bytes(&c, "\"sub\":\"client-a\"", b"\"sub\":\"\xff\xfe\""),
        [
            c.as_bytes()[..c.len() - 1].to_vec(),
            b",\"x\":\"\xc0\xae\"}".to_vec(),
        ]
        .concat(),
        c.replacen("\"sub\":\"client-a\"", "\"sub\":\"\\ud800\"", 1)
            .into_bytes(),
        c.replacen('{', "{/*c*/", 1).into_bytes(),
    ];
    for p in &payloads {
        let t = signed(&input_of(HEADER, p));
        let before = env.upstream.hits();
        let r = call(env.addr(), "/api/x", &t).await;
        assert_eq!(
            (r.status, r.reason().as_str()),
            (401, "malformed"),
            "{}: {r:?}",
            String::from_utf8_lossy(p)
        );
        assert_eq!(env.upstream.hits(), before);
    }
    // Raw non-UTF-8 bytes straight in the payload segment (not base64).
    let t = format!("{}.\u{ff}\u{fe}.c2ln", URL_SAFE_NO_PAD.encode(HEADER));
    let r = call(env.addr(), "/api/x", &t).await;
    assert_eq!((r.status, r.reason().as_str()), (401, "malformed"), "{r:?}");
    // A header that is not an object (serde reads an array as a struct, so a signed
    // `["RS256","kid-a"]` header once verified).
    for h in [
        "[\"RS256\",\"kid-a\"]",
        "[\"RS256\"]",
        "\"RS256\"",
        "null",
        "",
    ] {
        let t = signed(&input_of(h, c.as_bytes()));
        expect_401(&env, "/api/x", &t, "malformed").await;
    }
    // Claims nested one level down are not claims.
    let mut nested = json!({"claims": good()});
    nested["exp"] = json!(now() + 600);
    expect_401(&env, "/api/x", &sign(&nested), "wrong_issuer").await;
}

#[tokio::test]
async fn tokens_of_many_kib() {
    let env = env().await;
    // Up to max_bytes (8 KiB): verified normally, whatever the size.
    let mut c = good();
    c["filler"] = json!("f".repeat(5000));
    let t = sign(&c);
    assert!(t.len() < 8192, "{}", t.len());
    let seen = expect_200(&env, "/api/x", &t).await;
    assert!(seen.headers["x-auth-claims"].len() > 6000);
    // Past it: too_large before any decoding, from any source, however big.
    for kib in [9usize, 16, 31] {
        let mut c = good();
        // Base64 makes it 4/3 as long: a token of about `kib` KiB, inside the head limit.
        c["filler"] = json!("f".repeat(kib * 1024 * 3 / 4 - 600));
        expect_401(&env, "/api/x", &sign(&c), "too_large").await;
        expect_401(&env, "/api/x", &"A".repeat(kib * 1024), "too_large").await;
    }
    // Exactly at the limit and one past it, of junk: malformed, then too_large.
    let at = format!(
        "{}.{}.{}",
        "a".repeat(4000),
        "b".repeat(4000),
        "c".repeat(190)
    );
    assert_eq!(at.len(), 8192);
    expect_401(&env, "/api/x", &at, "malformed").await;
    expect_401(&env, "/api/x", &format!("{at}c"), "too_large").await;
    // Many dots.
    expect_401(&env, "/api/x", &".".repeat(4000), "malformed").await;
    expect_401(&env, "/api/x", &"a.".repeat(3000), "malformed").await;
}

fn replace_bytes(text: &str, from: &str, to: &[u8]) -> Vec<u8> {
    let i = text.find(from).expect("present");
    [
        &text.as_bytes()[..i],
        to,
        &text.as_bytes()[i + from.len()..],
    ]
    .concat()
}
