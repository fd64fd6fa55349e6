//! A compact JWS (RFC 7515) taken apart strictly, before anything is trusted: exactly three
//! non-empty parts of strict base64url; a header that is a JSON object without duplicate
//! keys, naming an algorithm this verifier knows, with no `crit` or `b64`; a payload that is
//! a JSON object without duplicate keys. Also the signature check against one key, with the
//! key's own type and `alg`, and the NumericDate reader.
//!
//! Which issuer, which key and which claims are acceptable is `verify.rs`'s business; `jwk`,
//! `jku`, `x5u` and `x5c` header fields are never read.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::claims::AuthError;
use crate::config::parse_algorithm;
use crate::jwks::VerifyKey;

/// A token split into its parts, header and payload decoded; the signature not yet checked.
pub struct Jws<'t> {
    /// `header.payload`, the signing input.
    signed: &'t str,
    /// The third part, still base64url.
    signature: &'t str,
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The header names a `signer`: an ALB's token, which no JWKS issuer accepts.
    pub alb_signer: bool,
    pub claims: Map<String, Value>,
}

/// A compact serialisation's three segments: exactly three, none empty, else `Malformed`
/// (also an ALB's token's shape, `alb.rs`).
pub fn segments(token: &str) -> Result<(&str, &str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Ok((h, p, s))
        }
        _ => Err(AuthError::Malformed),
    }
}

impl<'t> Jws<'t> {
    /// Splits and decodes `token`. Any deviation from the strict form is `Malformed`; an
    /// algorithm outside the known list is `AlgNotAllowed`.
    pub fn parse(token: &'t str) -> Result<Jws<'t>, AuthError> {
        let (h64, p64, s64) = segments(token)?;
        let header = jose_header(&b64(h64)?)?;
        let alg = parse_algorithm(&header.alg).ok_or(AuthError::AlgNotAllowed)?;
        let claims = serde_json::from_slice::<StrictObject>(&b64(p64)?)
            .map_err(|_| AuthError::Malformed)?
            .0;
        Ok(Jws {
            signed: &token[..h64.len() + 1 + p64.len()],
            signature: s64,
            alg,
            kid: header.kid,
            alb_signer: header.signer.is_some(),
            claims,
        })
    }

    /// Checks the signature with `key`, which must be of the algorithm's type and, when its
    /// JWK names an `alg`, of exactly that algorithm.
    pub fn check_signature(&self, key: &VerifyKey) -> Result<(), AuthError> {
        let alg = self.alg;
        if key.alg.is_some_and(|a| a != alg) || key.key.family() != alg.family() {
            return Err(AuthError::AlgNotAllowed);
        }
        let message = self.signed.as_bytes();
        // RSA with the key parsed once; anything else (EC) through jsonwebtoken, which
        // decodes the signature itself.
        let rsa = match alg.family() {
            AlgorithmFamily::Rsa => match b64(self.signature) {
                Ok(sig) => key.verify_rsa(alg, message, &sig),
                Err(_) => Some(false),
            },
            _ => None,
        };
        let ok = rsa.unwrap_or_else(|| {
            matches!(
                jsonwebtoken::crypto::verify(self.signature, message, &key.key, alg),
                Ok(true)
            )
        });
        if ok {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// The JOSE header fields this verifier reads, taken from a header that parsed as a
/// [`StrictObject`] (a JSON object without duplicate keys). Unknown fields are ignored.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// An ALB's ARN: present in any form (even `null`), the token is an ALB's.
    #[serde(default, deserialize_with = "present")]
    signer: Option<Value>,
}

/// `Some` for a field that is present, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parses a JOSE header: a JSON object (never an array, which serde would otherwise read
/// as a struct), no key twice, and no `crit` or `b64` in any form, `null` included: no JWS
/// extension is understood here, so any critical one must be refused (RFC 7515 §4.1.11), and
/// `b64` (RFC 7797) changes what is signed.
fn jose_header(bytes: &[u8]) -> Result<JoseHeader, AuthError> {
    let map = serde_json::from_slice::<StrictObject>(bytes)
        .map_err(|_| AuthError::Malformed)?
        .0;
    if map.contains_key("crit") || map.contains_key("b64") {
        return Err(AuthError::Malformed);
    }
    serde_json::from_value(Value::Object(map)).map_err(|_| AuthError::Malformed)
}

/// `bytes` as a JSON object without duplicate keys (an ALB token's header and payload too).
pub(crate) fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, AuthError> {
    serde_json::from_slice::<StrictObject>(bytes)
        .map(|o| o.0)
        .map_err(|_| AuthError::Malformed)
}

/// A JSON object that refuses duplicate keys (which JSON parsers resolve differently).
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if out.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)
}

/// A NumericDate (RFC 7519 §2): a JSON number; fractions are truncated. Anything else
/// (string, bool, NaN) is malformed.
pub fn numeric_date(v: Option<&Value>) -> Result<Option<i64>, AuthError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Some(i64::try_from(u).unwrap_or(i64::MAX)))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => {
                        Ok(Some(f.clamp(i64::MIN as f64, i64::MAX as f64) as i64))
                    }
                    _ => Err(AuthError::Malformed),
                }
            }
        }
        Some(_) => Err(AuthError::Malformed),
    }
}

/// Decodes a token's header and payload without verifying anything (for `inspect`).
pub fn decode_unverified(token: &str) -> Result<(Value, Value), AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let header = serde_json::from_slice(&b64(h)?).map_err(|_| AuthError::Malformed)?;
    let payload = serde_json::from_slice(&b64(p)?).map_err(|_| AuthError::Malformed)?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_claims_are_refused() {
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"b":2}"#).is_ok());
        assert!(serde_json::from_str::<StrictObject>(r#"{"sub":"a","sub":"b"}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"[1]"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","alg":"none"}"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","jku":"a","jku":"b"}"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","kid":"k"}"#).is_ok());
    }

    #[test]
    fn jose_headers_are_objects_without_extensions() {
        assert!(jose_header(br#"["RS256","kid-a"]"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","crit":null}"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","b64":null}"#).is_err());
        assert!(jose_header(br#"{"alg":"RS256","crit":[]}"#).is_err());
        assert!(jose_header(b"null").is_err());
    }

    #[test]
    fn numeric_dates_are_numbers_only() {
        assert_eq!(numeric_date(Some(&json!(10))), Ok(Some(10)));
        assert_eq!(numeric_date(Some(&json!(10.9))), Ok(Some(10)));
        assert_eq!(numeric_date(Some(&json!(-5))), Ok(Some(-5)));
        assert_eq!(numeric_date(Some(&json!(u64::MAX))), Ok(Some(i64::MAX)));
        assert_eq!(numeric_date(Some(&json!("10"))), Err(AuthError::Malformed));
        assert_eq!(numeric_date(Some(&json!(null))), Err(AuthError::Malformed));
        assert_eq!(numeric_date(None), Ok(None));
    }

    #[test]
    fn strict_base64() {
        assert!(b64("eyJhIjoxfQ").is_ok());
        assert_eq!(b64("eyJhIjoxfQ=="), Err(AuthError::Malformed));
        assert_eq!(b64("eyJhIjoxfQ+/"), Err(AuthError::Malformed));
        assert_eq!(b64("eyJh Ijoxf"), Err(AuthError::Malformed));
    }
}
