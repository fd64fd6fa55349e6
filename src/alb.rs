//! An AWS Application Load Balancer's `x-amzn-oidc-data`: the JWT an `authenticate-cognito` /
//! `authenticate-oidc` action sends the target, taken apart strictly ([`AlbToken`]), and the
//! ALB's public keys, fetched by `kid` and cached ([`AlbKeys`]).
//!
//! AWS's encoding, not RFC 7515's: each segment is base64url **with** `=` padding, and the
//! signature is ES256's raw 64-byte `R || S`. Only the canonical encoding is read (correct
//! padding, no stray bits), so one token has one spelling; the signing input is the two
//! padded segments exactly as sent, which is what the ALB signed. The header carries `kid`,
//! `signer` (the ALB's ARN), `client`, `iss` and `exp`; the payload is the IdP's userinfo.
//!
//! Which ALB is trusted, and the time and client checks, are `verify.rs`'s business; the
//! signature is aws-lc-rs's fixed-size ECDSA P-256 check (a DER signature never verifies).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use http::header::HeaderName;
use serde_json::{Map, Value};

pub use crate::alb_key::AlbKey;
use crate::claims::AuthError;
use crate::config::AlbIssuerConfig;
use crate::jws::{numeric_date, strict_object};
use crate::metrics::Metrics;

/// The ALB's signed claims: the one ALB header the sidecar reads (when an ALB issuer is
/// configured), forwarded only as the token that was verified.
pub const X_AMZN_OIDC_DATA: HeaderName = HeaderName::from_static("x-amzn-oidc-data");

/// The headers an ALB's authenticate action adds. None is forwarded as the client sent it:
/// `x-amzn-oidc-identity` is not signed, `x-amzn-oidc-accesstoken` is not verified here, and
/// `x-amzn-oidc-data` only as the token an ALB issuer verified.
pub const ALB_HEADERS: [&str; 3] = [
    "x-amzn-oidc-data",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
];

/// The largest key body accepted (a P-256 PEM is under 200 bytes).
const MAX_KEY_BYTES: usize = 16 * 1024;

/// Fetches of keys not yet cached, per `keys_min_refetch`, in bursts of at most this many.
const FETCH_BURST: f64 = 10.0;

/// An `x-amzn-oidc-data` token taken apart; the signature not yet checked.
#[derive(Debug)]
pub struct AlbToken<'t> {
    /// `header.payload` as sent (padded): the signing input.
    pub signed: &'t str,
    pub signature: Vec<u8>,
    pub kid: String,
    /// The ARN of the load balancer that signed.
    pub signer: String,
    /// The app client id the ALB authenticated with.
    pub client: Option<String>,
    /// The IdP's issuer URL.
    pub iss: Option<String>,
    /// The header's `exp`.
    pub exp: i64,
    /// The payload: the IdP's userinfo claims.
    pub claims: Map<String, Value>,
}

impl<'t> AlbToken<'t> {
    /// Splits and decodes `token`. A deviation from AWS's form is `Malformed`; an `alg` other
    /// than `ES256` is `AlgNotAllowed`; no `kid` is `UnknownKid`.
    pub fn parse(token: &'t str) -> Result<AlbToken<'t>, AuthError> {
        let (h64, p64, s64) = crate::jws::segments(token)?;
        let header = strict_object(&padded(h64)?)?;
        if header.contains_key("crit") || header.contains_key("b64") {
            return Err(AuthError::Malformed);
        }
        let string = |k: &str| match header.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AuthError::Malformed),
        };
        match string("alg")?.as_deref() {
            Some("ES256") => {}
            Some(_) => return Err(AuthError::AlgNotAllowed),
            None => return Err(AuthError::Malformed),
        }
        let kid = string("kid")?.ok_or(AuthError::UnknownKid)?;
        if !is_safe_kid(&kid) {
            return Err(AuthError::Malformed);
        }
        let signer = string("signer")?.ok_or(AuthError::Malformed)?;
        let client = string("client")?;
        let iss = string("iss")?;
        let exp = numeric_date(header.get("exp"))?.ok_or(AuthError::Malformed)?;
        let claims = strict_object(&padded(p64)?)?;
        let signature = padded(s64)?;
        Ok(AlbToken {
            signed: &token[..h64.len() + 1 + p64.len()],
            signature,
            kid,
            signer,
            client,
            iss,
            exp,
            claims,
        })
    }
}

/// Canonical padded base64url: `=` exactly where the length needs it, no stray bits.
fn padded(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE.decode(part).map_err(|_| AuthError::Malformed)
}

/// A `kid` that can only ever be one path segment of the key URL: ALB key ids are UUIDs.
pub fn is_safe_kid(kid: &str) -> bool {
    (1..=128).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether a token's JOSE header has a `signer`: an ALB token, for ALB issuers only. Reads
/// either encoding (padded or not); `false` for anything that is not such a header.
pub fn has_signer(token: &str) -> bool {
    let Some(h64) = token.split('.').next() else {
        return false;
    };
    let bytes = URL_SAFE.decode(h64).or_else(|_| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h64.trim_end_matches('='))
    });
    bytes
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .is_some_and(|h| h.contains_key("signer"))
}

/// Decodes an ALB token's header and payload without verifying anything (for `inspect`).
pub fn decode_unverified(token: &str) -> Result<(Value, Value), AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let header = serde_json::from_slice(&padded(h)?).map_err(|_| AuthError::Malformed)?;
    let payload = serde_json::from_slice(&padded(p)?).map_err(|_| AuthError::Malformed)?;
    Ok((header, payload))
}

// === impl AlbKeys ===

/// What identifies an ALB key cache across reloads: a reload keeps one whose settings are
/// equal (and so its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbKeysKey {
    url: String,
    timeout: Duration,
    cache: usize,
    min_refetch: Duration,
}

impl AlbKeysKey {
    pub fn of(cfg: &AlbIssuerConfig) -> AlbKeysKey {
        AlbKeysKey {
            url: cfg.keys_url.clone(),
            timeout: cfg.keys_timeout,
            cache: cfg.keys_cache,
            min_refetch: cfg.keys_min_refetch,
        }
    }
}

/// The keys of one ALB issuer, by `kid`: fetched from `<keys_url>/<kid>` on first use, one
/// fetch per `kid` at a time (concurrent requests wait for it), kept in a bounded cache (a key
/// never changes behind its `kid`). A `kid` the server does not serve (404/403) is 401
/// `unknown_kid`, and one it could not serve 503 `keys_unavailable`; either answer is
/// remembered for `keys_min_refetch`, and at most `FETCH_BURST` fetches of uncached keys
/// happen per `keys_min_refetch` in all, so random `kid`s cannot make the sidecar hammer the
/// key server.
pub struct AlbKeys {
    name: String,
    base: String,
    client: reqwest::Client,
    min_refetch: Duration,
    keys: quick_cache::sync::Cache<String, Arc<AlbKey>>,
    misses: quick_cache::sync::Cache<String, (Instant, AuthError)>,
    /// Fetch allowance: tokens left and when it was last refilled.
    bucket: Mutex<(f64, Instant)>,
    metrics: Arc<Metrics>,
}

impl AlbKeys {
    pub fn new(cfg: &AlbIssuerConfig, metrics: Arc<Metrics>) -> anyhow::Result<Arc<AlbKeys>> {
        let tls = crate::tls::client_config(None)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(cfg.keys_timeout)
            .connect_timeout(cfg.keys_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()?;
        Ok(Arc::new(AlbKeys {
            name: cfg.name.clone(),
            base: cfg.keys_url.clone(),
            client,
            min_refetch: cfg.keys_min_refetch,
            keys: quick_cache::sync::Cache::new(cfg.keys_cache),
            misses: quick_cache::sync::Cache::new(cfg.keys_cache.saturating_mul(4).max(64)),
            bucket: Mutex::new((FETCH_BURST, Instant::now())),
            metrics,
        }))
    }

    /// The cached key `kid`, if any (no fetch).
    pub fn cached(&self, kid: &str) -> Option<Arc<AlbKey>> {
        self.keys.get(kid)
    }

    /// The key `kid`: cached, or fetched once (see [`AlbKeys`]).
    pub async fn key(&self, kid: &str) -> Result<Arc<AlbKey>, AuthError> {
        if !is_safe_kid(kid) {
            return Err(AuthError::Malformed);
        }
        if let Some(k) = self.keys.get(kid) {
            return Ok(k);
        }
        if let Some(e) = self.recent_miss(kid) {
            return Err(e);
        }
        let guard = match self.keys.get_value_or_guard_async(kid).await {
            Ok(k) => return Ok(k),
            Err(guard) => guard,
        };
        // A fetch that ended while this request waited for its turn.
        if let Some(e) = self.recent_miss(kid) {
            return Err(e);
        }
        if !self.allow_fetch() {
            self.count("limited");
            tracing::warn!(issuer = %self.name, kid, "ALB key fetch refused: too many fetches of unknown kids");
            return Err(AuthError::KeysUnavailable);
        }
        match self.fetch(kid).await {
            Ok(key) => {
                let key = Arc::new(key);
                let _ = guard.insert(Arc::clone(&key));
                Ok(key)
            }
            Err(e) => {
                if !self.min_refetch.is_zero() {
                    self.misses.insert(kid.to_string(), (Instant::now(), e));
                }
                Err(e)
            }
        }
    }

    fn recent_miss(&self, kid: &str) -> Option<AuthError> {
        let (at, e) = self.misses.get(kid)?;
        (at.elapsed() < self.min_refetch).then_some(e)
    }

    /// Takes one fetch from the allowance ([`FETCH_BURST`] per `keys_min_refetch`).
    fn allow_fetch(&self) -> bool {
        if self.min_refetch.is_zero() {
            return true;
        }
        let mut b = self.bucket.lock().expect("lock poisoned");
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() / self.min_refetch.as_secs_f64();
        b.0 = (b.0 + refill * FETCH_BURST).min(FETCH_BURST);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    fn count(&self, result: &str) {
        self.metrics
            .alb_key_fetches
            .with_label_values(&[&self.name, result])
            .inc();
    }

    /// `GET <keys_url>/<kid>`: 200 with a P-256 PEM is the key; 404 or 403 (S3's answer for a
    /// missing object) is `UnknownKid`; anything else `KeysUnavailable`.
    async fn fetch(&self, kid: &str) -> Result<AlbKey, AuthError> {
        let url = format!("{}/{kid}", self.base);
        let fail = |why: String| {
            self.count("error");
            tracing::warn!(issuer = %self.name, url, error = %why, "ALB key fetch failed");
            AuthError::KeysUnavailable
        };
        let mut resp = match self.client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => return Err(fail(format!("request failed: {e}"))),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            self.count("not_found");
            tracing::info!(issuer = %self.name, url, status = status.as_u16(), "ALB key not found");
            return Err(AuthError::UnknownKid);
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP status {}", status.as_u16())));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_KEY_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Err(fail(format!("body larger than {MAX_KEY_BYTES} bytes"))),
                Ok(None) => break,
                Err(e) => return Err(fail(format!("reading the body: {e}"))),
            }
        }
        match AlbKey::from_pem(kid, &body) {
            Ok(key) => {
                self.count("ok");
                tracing::info!(issuer = %self.name, kid, "ALB key loaded");
                Ok(key)
            }
            Err(e) => Err(fail(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seg(v: &Value) -> String {
        URL_SAFE.encode(serde_json::to_vec(v).unwrap())
    }

    fn token(header: &Value) -> String {
        format!(
            "{}.{}.{}",
            seg(header),
            seg(&json!({"sub": "u"})),
            URL_SAFE.encode([7u8; 64])
        )
    }

    fn header() -> Value {
        json!({"typ": "JWT", "kid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001", "alg": "ES256",
               "iss": "https://idp.example.com", "client": "app",
               "signer": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188",
               "exp": 1_700_000_000})
    }

    #[test]
    fn aws_form_parses() {
        let t = token(&header());
        let a = AlbToken::parse(&t).unwrap();
        assert_eq!(a.kid, "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
        assert_eq!(a.client.as_deref(), Some("app"));
        assert_eq!(a.exp, 1_700_000_000);
        assert_eq!(a.signature.len(), 64);
        assert_eq!(a.signed, &t[..t.rfind('.').unwrap()]);
        assert!(has_signer(&t));
    }

    #[test]
    fn padding_must_be_canonical() {
        let t = token(&header());
        assert!(t.contains('='), "the test token needs padding: {t}");
        // Unpadded segments, and a padding character too many.
        let unpadded: String = t.replace('=', "");
        assert_eq!(
            AlbToken::parse(&unpadded).unwrap_err(),
            AuthError::Malformed
        );
        let (signed, sig) = t.rsplit_once('.').unwrap();
        assert_eq!(
            AlbToken::parse(&format!("{signed}.{sig}=")).unwrap_err(),
            AuthError::Malformed
        );
        // Standard base64 characters are not base64url.
        assert_eq!(
            AlbToken::parse(&format!("{signed}.+/+/")).unwrap_err(),
            AuthError::Malformed
        );
    }

    #[test]
    fn only_es256_with_a_safe_kid() {
        for alg in ["HS256", "RS256", "none", "ES384", "es256"] {
            let mut h = header();
            h["alg"] = json!(alg);
            assert_eq!(
                AlbToken::parse(&token(&h)).unwrap_err(),
                AuthError::AlgNotAllowed,
                "{alg}"
            );
        }
        for kid in ["../jwks", "a/b", "a?b", "", "a%2Fb", "a.b"] {
            let mut h = header();
            h["kid"] = json!(kid);
            assert_eq!(
                AlbToken::parse(&token(&h)).unwrap_err(),
                AuthError::Malformed,
                "{kid}"
            );
        }
        let mut h = header();
        h.as_object_mut().unwrap().remove("kid");
        assert_eq!(
            AlbToken::parse(&token(&h)).unwrap_err(),
            AuthError::UnknownKid
        );
        for field in ["signer", "exp"] {
            let mut h = header();
            h.as_object_mut().unwrap().remove(field);
            assert_eq!(
                AlbToken::parse(&token(&h)).unwrap_err(),
                AuthError::Malformed,
                "{field}"
            );
        }
        let mut h = header();
        h["crit"] = json!(["exp"]);
        assert_eq!(
            AlbToken::parse(&token(&h)).unwrap_err(),
            AuthError::Malformed
        );
    }
}
