//! In-memory RSA signing keys for the demo issuer and for tests.
//!
//! Keys are generated with aws-lc-rs at start and never written anywhere.
//! [`SigningKey::sign`] mints compact RS256 JWTs shaped like Cognito's;
//! [`SigningKey::sign_raw`] signs any header at all, so tests can forge
//! tokens (`alg` confusion, unknown `kid`, ...) with a genuine signature.
//!
//! ```
//! use cognito_sidecar::demo::keys::{self, SigningKey};
//! let key = SigningKey::generate(keys::random_kid()).unwrap();
//! let jwt = key.sign(&serde_json::json!({"sub": "abc", "token_use": "access"}));
//! assert_eq!(jwt.split('.').count(), 3);
//! let set = keys::jwks(&[&key]);
//! assert_eq!(set["keys"][0]["kid"], key.kid());
//! ```

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self as sig, KeyPair as _, RsaEncoding};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// The JWS algorithms [`SigningKey::sign_with_alg`] can produce.
pub const SUPPORTED_ALGS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// An RSA-2048 private key with its key id, held in memory only.
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A random key id shaped like Cognito's: standard base64 (with padding) of
/// 32 random bytes, 44 characters, e.g. `1pRXnUlgyc3B2Gz5a5dCnnMk0mVMNx1xQbvbX8nvGfM=`.
pub fn random_kid() -> String {
    let bytes: [u8; 32] = rand::random();
    STANDARD.encode(bytes)
}

/// Generates a fresh RSA-2048 key with the given `kid`.
///
/// Same as [`SigningKey::generate`].
pub fn generate(kid: impl Into<String>) -> anyhow::Result<SigningKey> {
    SigningKey::generate(kid)
}

/// A JWK Set `{"keys":[...]}` holding the public half of every key given.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Base64url (no padding) of a JSON value's compact serialisation.
fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An unsigned token `base64url(header).base64url(claims).` (empty signature),
/// as an `alg: none` attacker would send it. Nothing is checked.
pub fn unsigned(header_json: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64_json(header_json), b64_json(claims))
}

fn encoding_for(alg: &str) -> Option<&'static dyn RsaEncoding> {
    Some(match alg {
        "RS256" => &sig::RSA_PKCS1_SHA256,
        "RS384" => &sig::RSA_PKCS1_SHA384,
        "RS512" => &sig::RSA_PKCS1_SHA512,
        "PS256" => &sig::RSA_PSS_SHA256,
        "PS384" => &sig::RSA_PSS_SHA384,
        "PS512" => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key (public exponent 65537) with the given `kid`.
    pub fn generate(kid: impl Into<String>) -> anyhow::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow!("aws-lc-rs could not generate an RSA-2048 key"))?;
        let (n, e) = parse_rsa_public_key(pair.public_key().as_ref())
            .context("reading the generated RSA public key")?;
        Ok(Self {
            kid: kid.into(),
            pair,
            n,
            e,
        })
    }

    /// The key id, as put in the JWT header and the JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK:
    /// `{"kty":"RSA","alg":"RS256","use":"sig","kid":..,"n":..,"e":..}`
    /// (`n`, `e` big-endian, base64url without padding), the shape Cognito serves.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// Public modulus, big-endian, no leading zero.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// Public exponent, big-endian, no leading zero.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// A compact RS256 JWT with header `{"alg":"RS256","kid":<kid>,"typ":"JWT"}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_raw(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A compact JWT with header `{"alg":<alg>,"kid":<kid>,"typ":"JWT"}`, signed
    /// with `alg`, one of [`SUPPORTED_ALGS`]; any other `alg` is an error.
    pub fn sign_with_alg(&self, alg: &str, claims: &Value) -> anyhow::Result<String> {
        let Some(enc) = encoding_for(alg) else {
            bail!("unsupported algorithm {alg:?}; expected one of {SUPPORTED_ALGS:?}");
        };
        let header = json!({"alg": alg, "kid": self.kid, "typ": "JWT"});
        Ok(self.sign_with_encoding(enc, &header, claims))
    }

    /// Signs *any* header JSON as given, nothing added or checked, so tests can
    /// forge headers. The signature algorithm follows the header's `alg` when it
    /// is one of [`SUPPORTED_ALGS`], and is RS256 otherwise (so `{"alg":"HS256"}`
    /// or `{"alg":"none"}` still get an RS256 signature from this key).
    ///
    /// # Panics
    /// Only if aws-lc-rs fails to sign with a key it generated (it does not).
    pub fn sign_raw(&self, header_json: &Value, claims: &Value) -> String {
        let enc = header_json
            .get("alg")
            .and_then(Value::as_str)
            .and_then(encoding_for)
            .unwrap_or(&sig::RSA_PKCS1_SHA256);
        self.sign_with_encoding(enc, header_json, claims)
    }

    fn sign_with_encoding(
        &self,
        enc: &'static dyn RsaEncoding,
        header_json: &Value,
        claims: &Value,
    ) -> String {
        let signing_input = format!("{}.{}", b64_json(header_json), b64_json(claims));
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                enc,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("aws-lc-rs RSA signing with a generated 2048-bit key");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Reads `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
/// (PKCS#1, DER) and returns `(n, e)` big-endian without leading zeros.
fn parse_rsa_public_key(der: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (tag, body, rest) = der_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        bail!("RSAPublicKey is not a single DER SEQUENCE");
    }
    let (tag, n, body) = der_tlv(body)?;
    if tag != 0x02 {
        bail!("RSAPublicKey modulus is not an INTEGER");
    }
    let (tag, e, body) = der_tlv(body)?;
    if tag != 0x02 || !body.is_empty() {
        bail!("RSAPublicKey exponent is not a final INTEGER");
    }
    Ok((positive_integer(n)?, positive_integer(e)?))
}

/// One DER tag-length-value: `(tag, value, rest)`. Single-byte tags only.
fn der_tlv(input: &[u8]) -> anyhow::Result<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first().context("DER: missing tag")?;
    let (&first, mut input) = input.split_first().context("DER: missing length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            bail!("DER: bad long-form length");
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if input.len() < len {
        bail!("DER: value longer than its input");
    }
    let (value, rest) = input.split_at(len);
    Ok((tag, value, rest))
}

fn positive_integer(v: &[u8]) -> anyhow::Result<Vec<u8>> {
    match v.first() {
        None => bail!("DER: empty INTEGER"),
        Some(b) if b & 0x80 != 0 => bail!("DER: negative INTEGER"),
        _ => {}
    }
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
    Ok(v[start..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, decode_header, jwk::Jwk, Algorithm, DecodingKey, Validation};

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        v
    }

    #[test]
    fn jwk_shape_and_signature_verify_with_jsonwebtoken() {
        let key = SigningKey::generate("kid-1").unwrap();
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], "kid-1");
        assert_eq!(jwk["e"], "AQAB");
        // 2048-bit modulus: 256 bytes, first bit set, no leading zero byte.
        assert_eq!(key.modulus().len(), 256);
        assert!(key.modulus()[0] & 0x80 != 0);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );

        let claims = json!({"sub": "s", "n": 1});
        let token = key.sign(&claims);
        let header = decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        assert_eq!(header.alg, Algorithm::RS256);

        let jwk: Jwk = serde_json::from_value(jwk).unwrap();
        let dk = DecodingKey::from_jwk(&jwk).unwrap();
        let data = decode::<Value>(&token, &dk, &validation(Algorithm::RS256)).unwrap();
        assert_eq!(data.claims, claims);

        // A different key's JWK must not verify it.
        let other = SigningKey::generate("kid-2").unwrap();
        let jwk2: Jwk = serde_json::from_value(other.jwk()).unwrap();
        let dk2 = DecodingKey::from_jwk(&jwk2).unwrap();
        assert!(decode::<Value>(&token, &dk2, &validation(Algorithm::RS256)).is_err());
    }

    #[test]
    fn every_supported_alg_verifies() {
        let key = SigningKey::generate(random_kid()).unwrap();
        let dk = DecodingKey::from_rsa_raw_components(key.modulus(), key.exponent());
        for (name, alg) in [
            ("RS256", Algorithm::RS256),
            ("RS384", Algorithm::RS384),
            ("RS512", Algorithm::RS512),
            ("PS256", Algorithm::PS256),
            ("PS384", Algorithm::PS384),
            ("PS512", Algorithm::PS512),
        ] {
            let t = key.sign_with_alg(name, &json!({"a": name})).unwrap();
            assert_eq!(decode_header(&t).unwrap().alg, alg);
            let d = decode::<Value>(&t, &dk, &validation(alg)).unwrap();
            assert_eq!(d.claims["a"], name);
            // The token is bound to its algorithm.
            let wrong = if name.starts_with("RS") {
                Algorithm::PS256
            } else {
                Algorithm::RS256
            };
            assert!(decode::<Value>(&t, &dk, &validation(wrong)).is_err());
        }
        assert!(key.sign_with_alg("HS256", &json!({})).is_err());
    }

    #[test]
    fn sign_raw_keeps_the_forged_header() {
        let key = SigningKey::generate("k").unwrap();
        let header = json!({"alg": "HS256", "kid": "someone-else", "x": [1]});
        let t = key.sign_raw(&header, &json!({"sub": "x"}));
        let first = t.split('.').next().unwrap();
        let decoded: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap();
        assert_eq!(decoded, header);
        // Signed with RS256 despite the header's claim.
        let (input, sig_b64) = t.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
        let pk = sig::UnparsedPublicKey::new(
            &sig::RSA_PKCS1_2048_8192_SHA256,
            key.pair.public_key().as_ref(),
        );
        pk.verify(input.as_bytes(), &sig).unwrap();

        let none = unsigned(&json!({"alg": "none"}), &json!({"sub": "x"}));
        assert!(none.ends_with('.'));
        assert_eq!(none.split('.').count(), 3);
    }

    #[test]
    fn kid_is_cognito_shaped_and_random() {
        let a = random_kid();
        assert_eq!(a.len(), 44);
        assert!(a.ends_with('='));
        assert_ne!(a, random_kid());
    }

    #[test]
    fn der_parser_rejects_garbage() {
        assert!(parse_rsa_public_key(&[]).is_err());
        assert!(parse_rsa_public_key(&[0x30, 0x05, 0x02]).is_err());
        assert!(parse_rsa_public_key(&[0x30, 0x03, 0x02, 0x01, 0x80]).is_err());
        assert_eq!(
            parse_rsa_public_key(&[0x30, 0x07, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x01, 0x03]).unwrap(),
            (vec![0xc1], vec![0x03])
        );
    }
}
