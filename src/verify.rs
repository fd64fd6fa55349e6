//! Token verification: a compact JWS in, verified claims (and the identity headers they
//! render to) out, or one specific [`AuthError`].
//!
//! Order: size cap, structure and strict base64url, header (a JSON object without duplicate
//! keys; algorithm from the issuer's allow-list only; `crit` and `b64` refused; `jwk`/`jku`/`x5u`/`x5c` never used), payload (a JSON
//! object without duplicate keys), issuer by exact `iss`, key by `kid` with the JWK's own
//! `alg` and type, signature (jsonwebtoken on aws-lc-rs), then time claims and Cognito's
//! `token_use` / `client_id` / `aud` rules. Successful verifications are cached by SHA-256
//! of the token until `exp`; a hit re-checks expiry and that the signing key (its material, not
//! only its `kid`) is still in the issuer's key set.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ForwardConfig, IssuerConfig, TokenUse, TokenUsePolicy};
use crate::jwks::{KeyStore, VerifyKey};
use crate::metrics::Metrics;

/// Why a token was refused. Each is the `error_description`, the log reason and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    Missing,
    Malformed,
    TooLarge,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongTokenUse,
    WrongClient,
    WrongAudience,
    KeysUnavailable,
}

impl AuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TooLarge => "too_large",
            AuthError::AlgNotAllowed => "alg_not_allowed",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongTokenUse => "wrong_token_use",
            AuthError::WrongClient => "wrong_client",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified token: what the route rules, the identity headers and the log line need.
#[derive(Debug)]
pub struct Verified {
    /// Index of the issuer in the config.
    pub issuer: usize,
    pub kid: Box<str>,
    /// Serial of the key set the token was verified with: while it is current, so is the key.
    key_set: u64,
    /// The key that verified the signature: after a refresh, a cache hit needs the issuer's
    /// set to still hold this key (not merely this `kid`) under its `kid`.
    pub key: Arc<VerifyKey>,
    pub exp: i64,
    pub token_use: Option<TokenUse>,
    /// `client_id` for access tokens, the `aud` values otherwise.
    pub clients: Vec<Box<str>>,
    pub scopes: Vec<Box<str>>,
    pub groups: Vec<Box<str>>,
    pub sub: Option<Box<str>>,
    pub client_id: Option<Box<str>>,
    pub jti: Option<Box<str>>,
    /// Identity headers rendered from the claims, ready to insert (`claims_header` aside).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Verified {
    pub fn grant(&self) -> crate::routes::Grant<'_> {
        crate::routes::Grant {
            token_use: self.token_use,
            clients: &self.clients,
            scopes: &self.scopes,
            groups: &self.groups,
        }
    }
}

/// An issuer with its key store.
#[derive(Clone)]
pub struct Issuer {
    pub cfg: IssuerConfig,
    pub keys: Arc<KeyStore>,
}

/// Verifies tokens for a set of issuers; holds the verified-token cache.
pub struct Verifier {
    issuers: Vec<Issuer>,
    forward: ForwardConfig,
    max_bytes: usize,
    cache: Option<quick_cache::sync::Cache<[u8; 32], Arc<Verified>>>,
    metrics: Arc<Metrics>,
    cache_hit: prometheus::IntCounter,
    cache_miss: prometheus::IntCounter,
}

/// The JOSE header fields this verifier reads, taken from a header that parsed as a
/// [`StrictObject`] (a JSON object without duplicate keys). Unknown fields are ignored.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
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

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A NumericDate (RFC 7519 §2): a JSON number; fractions are truncated. Anything else
/// (string, bool, NaN) is malformed.
fn numeric_date(v: Option<&Value>) -> Result<Option<i64>, AuthError> {
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

fn str_list(v: Option<&Value>) -> Vec<Box<str>> {
    match v {
        Some(Value::String(s)) => vec![s.as_str().into()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(Into::into))
            .collect(),
        _ => vec![],
    }
}

fn opt_str(m: &Map<String, Value>, k: &str) -> Option<Box<str>> {
    m.get(k).and_then(Value::as_str).map(Into::into)
}

/// A claim in the shape the route rules read it, for forwarding: `scope` only as a string and
/// `cognito:groups` only as its string elements, so the upstream never reads a scope or a group
/// the sidecar did not grant (a bare `"cognito:groups": "readers,admins"` grants no group, and
/// must not arrive as `X-Auth-Groups: readers,admins`). `None`: leave the header absent.
fn as_granted<'v>(claim: &str, v: &'v Value) -> Option<Cow<'v, Value>> {
    match (claim, v) {
        ("scope", Value::String(_)) => Some(Cow::Borrowed(v)),
        ("scope", _) => None,
        ("cognito:groups", Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(Cow::Borrowed(v))
        }
        ("cognito:groups", Value::Array(items)) => Some(Cow::Owned(Value::Array(
            items.iter().filter(|i| i.is_string()).cloned().collect(),
        ))),
        ("cognito:groups", _) => None,
        _ => Some(Cow::Borrowed(v)),
    }
}

/// Escapes `%` and `,` inside one element of a joined list.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ',' => out.push_str("%2C"),
            c => out.push(c),
        }
    }
}

/// Renders one claim as a header value: strings as they are, arrays joined with `,`
/// (elements escaped), numbers, booleans and objects as JSON text. A value that cannot be
/// a header value (CR, LF, other controls) makes the token malformed.
pub fn render_claim(v: &Value) -> Result<HeaderValue, AuthError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::String(s) => push_escaped(&mut out, s),
                    other => push_escaped(&mut out, &other.to_string()),
                }
            }
            out
        }
        Value::Null => String::new(),
        other => other.to_string(),
    };
    HeaderValue::from_str(&text).map_err(|_| AuthError::Malformed)
}

impl Verifier {
    pub fn new(
        issuers: Vec<Issuer>,
        forward: ForwardConfig,
        max_bytes: usize,
        cache_entries: usize,
        metrics: Arc<Metrics>,
    ) -> Verifier {
        Verifier {
            issuers,
            forward,
            max_bytes,
            cache: (cache_entries > 0).then(|| quick_cache::sync::Cache::new(cache_entries)),
            cache_hit: metrics.token_cache.with_label_values(&["hit"]),
            cache_miss: metrics.token_cache.with_label_values(&["miss"]),
            metrics,
        }
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// Whether every issuer has loaded keys.
    pub fn ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.is_loaded())
    }

    /// Verifies `token` at time `now` (seconds), using the cache.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        if token.len() > self.max_bytes {
            return Err(AuthError::TooLarge);
        }
        let Some(cache) = &self.cache else {
            return Box::pin(self.verify_uncached(token, now))
                .await
                .map(|(v, _)| Arc::new(v));
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        if let Some(v) = cache.get(&key) {
            let issuer = &self.issuers[v.issuer];
            let leeway = issuer.cfg.leeway.as_secs() as i64;
            if now > v.exp.saturating_add(leeway) {
                cache.remove(&key);
                return Err(AuthError::Expired);
            }
            if issuer.keys.still_has(v.key_set, &v.kid, &v.key) {
                self.cache_hit.inc();
                return Ok(v);
            }
            // The signing key left the set: verify again from scratch (it will fail).
            cache.remove(&key);
        }
        self.cache_miss.inc();
        // Boxed: a full verification's future is large; inline it would size every
        // request's future, cache hit or not.
        let (v, _) = Box::pin(self.verify_uncached(token, now)).await?;
        let v = Arc::new(v);
        cache.insert(key, Arc::clone(&v));
        Ok(v)
    }

    /// Full verification without the cache; also returns the claims (for `inspect`).
    pub async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verified, Map<String, Value>), AuthError> {
        let started = Instant::now();
        if token.len() > self.max_bytes {
            return Err(AuthError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        if h64.is_empty() || p64.is_empty() || s64.is_empty() {
            return Err(AuthError::Malformed);
        }
        let header = jose_header(&b64(h64)?)?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            _ => return Err(AuthError::AlgNotAllowed),
        };
        let claims = serde_json::from_slice::<StrictObject>(&b64(p64)?)
            .map_err(|_| AuthError::Malformed)?
            .0;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::WrongIssuer)?;
        let (idx, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.cfg.issuer == iss)
            .ok_or(AuthError::WrongIssuer)?;
        if !issuer.cfg.algorithms.contains(&alg) {
            return Err(AuthError::AlgNotAllowed);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKid)?;
        let set = issuer.keys.current().ok_or(AuthError::KeysUnavailable)?;
        let (key, key_set) = match set.keys.get(&kid) {
            Some(k) => (Arc::clone(k), set.serial),
            // Boxed: rare, and its future would otherwise size every request's.
            None => Box::pin(issuer.keys.refetch_for(&kid))
                .await
                .ok_or(AuthError::UnknownKid)?,
        };
        if key.alg.is_some_and(|a| a != alg) || key.key.family() != alg.family() {
            return Err(AuthError::AlgNotAllowed);
        }
        let signed = &token[..h64.len() + 1 + p64.len()];
        // RSA with the key parsed once; anything else (EC) through jsonwebtoken, which
        // decodes the signature itself.
        let rsa = match alg.family() {
            jsonwebtoken::AlgorithmFamily::Rsa => match b64(s64) {
                Ok(sig) => key.verify_rsa(alg, signed.as_bytes(), &sig),
                Err(_) => Some(false),
            },
            _ => None,
        };
        let ok = rsa.unwrap_or_else(|| {
            matches!(
                jsonwebtoken::crypto::verify(s64, signed.as_bytes(), &key.key, alg),
                Ok(true)
            )
        });
        if !ok {
            return Err(AuthError::BadSignature);
        }
        self.metrics
            .verify_seconds
            .observe(started.elapsed().as_secs_f64());

        // Time claims (RFC 7519 §4.1.4-6), with leeway.
        let leeway = issuer.cfg.leeway.as_secs() as i64;
        let exp = numeric_date(claims.get("exp"))?.ok_or(AuthError::Malformed)?;
        if now > exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(claims.get("nbf"))? {
            if nbf > now.saturating_add(leeway) {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(claims.get("iat"))? {
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::NotYetValid);
            }
        }

        // Cognito semantics, or audiences for other issuers.
        let aud = str_list(claims.get("aud"));
        let client_id = opt_str(&claims, "client_id");
        let (token_use, clients) = match &issuer.cfg.token_use {
            TokenUsePolicy::Cognito(kinds) => {
                let tu = match claims.get("token_use").and_then(Value::as_str) {
                    Some("access") => TokenUse::Access,
                    Some("id") => TokenUse::Id,
                    _ => return Err(AuthError::WrongTokenUse),
                };
                if !kinds.contains(&tu) {
                    return Err(AuthError::WrongTokenUse);
                }
                let clients: Vec<Box<str>> = match tu {
                    TokenUse::Access => client_id.iter().cloned().collect(),
                    TokenUse::Id => aud.clone(),
                };
                if !issuer.cfg.client_ids.is_empty()
                    && !clients
                        .iter()
                        .any(|c| issuer.cfg.client_ids.iter().any(|a| **a == **c))
                {
                    return Err(AuthError::WrongClient);
                }
                (Some(tu), clients)
            }
            TokenUsePolicy::Any => {
                if !issuer.cfg.audiences.is_empty()
                    && !aud
                        .iter()
                        .any(|a| issuer.cfg.audiences.iter().any(|w| **w == **a))
                {
                    return Err(AuthError::WrongAudience);
                }
                let mut clients: Vec<Box<str>> = client_id.iter().cloned().collect();
                if let Some(azp) = opt_str(&claims, "azp") {
                    clients.push(azp);
                }
                clients.extend(aud.iter().cloned());
                if !issuer.cfg.client_ids.is_empty()
                    && !clients
                        .iter()
                        .any(|c| issuer.cfg.client_ids.iter().any(|a| **a == **c))
                {
                    return Err(AuthError::WrongClient);
                }
                let tu = match claims.get("token_use").and_then(Value::as_str) {
                    Some("access") => Some(TokenUse::Access),
                    Some("id") => Some(TokenUse::Id),
                    _ => None,
                };
                (tu, clients)
            }
        };

        let scopes: Vec<Box<str>> = match claims.get("scope") {
            Some(Value::String(s)) => s.split_ascii_whitespace().map(Into::into).collect(),
            _ => match claims.get("scp") {
                Some(Value::String(s)) => s.split_ascii_whitespace().map(Into::into).collect(),
                Some(Value::Array(_)) => str_list(claims.get("scp")),
                _ => vec![],
            },
        };
        // Groups must be an array of strings; a bare string grants no group.
        let groups: Vec<Box<str>> = match claims.get("cognito:groups") {
            Some(Value::Array(_)) => str_list(claims.get("cognito:groups")),
            _ => vec![],
        };

        let mut headers = Vec::with_capacity(self.forward.headers.len() + 1);
        for (name, claim) in &self.forward.headers {
            if let Some(v) = claims.get(claim).and_then(|v| as_granted(claim, v)) {
                headers.push((name.clone(), render_claim(&v)?));
            }
        }
        // The claims header (base64url of the payload) is not kept here: the proxy takes it
        // from the token on each request, which keeps cache entries small.
        let verified = Verified {
            issuer: idx,
            kid: kid.into(),
            key_set,
            key,
            exp,
            token_use,
            clients,
            scopes,
            groups,
            sub: opt_str(&claims, "sub"),
            client_id,
            jti: opt_str(&claims, "jti"),
            headers,
        };
        Ok((verified, claims))
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
    fn claims_render_as_header_values() {
        assert_eq!(render_claim(&json!("abc")).unwrap(), "abc");
        assert_eq!(render_claim(&json!(42)).unwrap(), "42");
        assert_eq!(render_claim(&json!(true)).unwrap(), "true");
        assert_eq!(
            render_claim(&json!(["admins", "devs,admins", "100%"])).unwrap(),
            "admins,devs%2Cadmins,100%25"
        );
        assert_eq!(render_claim(&json!({"a":1})).unwrap(), "{\"a\":1}");
        assert_eq!(
            render_claim(&json!("a\r\nX-Evil: 1")),
            Err(AuthError::Malformed)
        );
        assert_eq!(render_claim(&json!("nul\0")), Err(AuthError::Malformed));
        // A newline inside an array element is escaped by JSON? No: strings are raw, so refused.
        assert_eq!(render_claim(&json!(["a\nb"])), Err(AuthError::Malformed));
    }

    #[test]
    fn scope_and_groups_are_forwarded_as_granted() {
        let g = |v: Value| as_granted("cognito:groups", &v).map(|c| c.into_owned());
        assert_eq!(g(json!(["a", "b"])), Some(json!(["a", "b"])));
        assert_eq!(g(json!(["a", 1, ["b"]])), Some(json!(["a"])));
        assert_eq!(g(json!("a,b")), None);
        assert_eq!(g(json!(null)), None);
        let s = |v: Value| as_granted("scope", &v).map(|c| c.into_owned());
        assert_eq!(s(json!("a b")), Some(json!("a b")));
        assert_eq!(s(json!(["a"])), None);
        assert_eq!(
            as_granted("username", &json!(["x"])).map(|c| c.into_owned()),
            Some(json!(["x"]))
        );
    }

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
