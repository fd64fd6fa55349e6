//! Token verification: a compact JWS in, a [`Verified`] token (and the identity headers it
//! renders to) out, or one specific [`AuthError`].
//!
//! Order: size cap, the strict JWS form (`jws.rs`), issuer by exact `iss`, the issuer's
//! algorithm allow-list, key by `kid` with the JWK's own `alg` and type, signature, then time
//! claims and the issuer's rules: Cognito's `token_use` / `client_id` / `aud`, or `audiences`
//! for other issuers. Successful verifications are cached by SHA-256 of the token until
//! `exp`; a hit re-checks expiry and that the signing key (its material, not only its `kid`)
//! is still in the issuer's key set.
//!
//! The vocabulary ([`Verified`], [`AuthError`]) is `claims.rs`'s; header rendering is
//! `headers.rs`'s; keys are `jwks.rs`'s.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::admission::Doorkeeper;
use crate::alb::{AlbKeys, AlbToken};
pub use crate::claims::{AuthError, Origin, Verified};
use crate::claims::{List, VerifiedBuilder};
use crate::config::{
    AlbIssuerConfig, Config, ForwardConfig, IssuerConfig, TokenUse, TokenUsePolicy,
};
use crate::denylist::{DenyList, Ids};
use crate::jwks::{KeyStore, VerifyKey};
pub use crate::jws::decode_unverified;
use crate::jws::{numeric_date, Jws};
use crate::metrics::Metrics;
use crate::revocation::Revocation;

/// An issuer with its key store, and what can revoke its tokens.
#[derive(Clone)]
pub struct Issuer {
    pub cfg: IssuerConfig,
    pub keys: Arc<KeyStore>,
    /// The online check, with `revocation = "online"`.
    pub revocation: Option<Arc<Revocation>>,
    /// The deny list, with `revoked_file`.
    pub denylist: Option<Arc<DenyList>>,
    /// When the last "other issuer form" hint was logged (seconds), to log it once a minute.
    form_hint_logged: Arc<std::sync::atomic::AtomicI64>,
}

impl Issuer {
    /// Whether anything can revoke this issuer's tokens before they expire.
    fn can_revoke(&self) -> bool {
        self.revocation.is_some() || self.denylist.is_some()
    }
}

/// An ALB issuer (`kind = "alb"`) with its key cache.
#[derive(Clone)]
pub struct AlbIssuer {
    pub cfg: AlbIssuerConfig,
    pub keys: Arc<AlbKeys>,
}

/// The verified-token cache: SHA-256 of the token -> its verification, with the
/// doorkeeper that admits a token to it on its second use (`admission.rs`).
struct Cache {
    entries: quick_cache::sync::Cache<[u8; 32], Arc<Verified>>,
    /// Which tokens were seen once.
    doorkeeper: Doorkeeper,
}

/// Verifies tokens for a set of issuers; holds the verified-token cache.
pub struct Verifier {
    issuers: Vec<Issuer>,
    albs: Vec<AlbIssuer>,
    /// Whether any issuer has a revocation check or deny list.
    revocable: bool,
    forward: ForwardConfig,
    /// `forward`'s identity header names, shared by every token this verifies.
    header_names: Arc<[http::HeaderName]>,
    max_bytes: usize,
    /// Some route has a `when`: each verified token keeps its claims as CEL values.
    keep_claims: bool,
    cache: Option<Cache>,
    metrics: Arc<Metrics>,
    cache_hit: prometheus::IntCounter,
    cache_miss: prometheus::IntCounter,
}

/// SHA-256 of a token: the key of the verified-token and revocation caches.
pub fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A claim's strings: a string, or the string elements of an array.
fn strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match v {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

fn opt_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn token_use_of(claims: &Map<String, Value>) -> Option<TokenUse> {
    claims.get("token_use")?.as_str()?.parse().ok()
}

/// For a Cognito pool: `aud` (ID token) and `client_id` (access token) are one string each,
/// as Cognito issues them; an array, a number or nothing names no client, whatever
/// `client_ids` allows (an array holding an allowed client among others is refused too).
fn check_cognito_shapes(claims: &Map<String, Value>, tu: TokenUse) -> Result<(), AuthError> {
    let claim = match tu {
        TokenUse::Access => "client_id",
        TokenUse::Id => "aud",
    };
    match claims.get(claim) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(AuthError::WrongClient),
    }
}

/// `exp` (required), `nbf` and `iat` (RFC 7519 §4.1.4-6), with leeway. Returns `exp`.
fn check_times(claims: &Map<String, Value>, now: i64, leeway: i64) -> Result<i64, AuthError> {
    let exp = numeric_date(claims.get("exp"))?.ok_or(AuthError::Malformed)?;
    if now > exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    for claim in ["nbf", "iat"] {
        if let Some(t) = numeric_date(claims.get(claim))? {
            if t > now.saturating_add(leeway) {
                return Err(AuthError::NotYetValid);
            }
        }
    }
    Ok(exp)
}

/// The issuer's `client_ids`, when set, must hold one of the token's clients.
fn check_clients(client_ids: &[String], b: &VerifiedBuilder) -> Result<(), AuthError> {
    if client_ids.is_empty() || client_ids.iter().any(|a| b.has(List::Clients, a)) {
        Ok(())
    } else {
        Err(AuthError::WrongClient)
    }
}

/// The issuer's rules on token kind and audience: the token's kind (if it says) and the
/// clients it was issued to (into `b`).
fn check_issuer_rules(
    cfg: &IssuerConfig,
    claims: &Map<String, Value>,
    b: &mut VerifiedBuilder,
) -> Result<Option<TokenUse>, AuthError> {
    let aud = claims.get("aud");
    let client_id = opt_str(claims, "client_id");
    match &cfg.token_use {
        TokenUsePolicy::Cognito(kinds) => {
            let tu = token_use_of(claims).ok_or(AuthError::WrongTokenUse)?;
            if !kinds.contains(&tu) {
                return Err(AuthError::WrongTokenUse);
            }
            if cfg.pool.is_some() {
                check_cognito_shapes(claims, tu)?;
            }
            match tu {
                TokenUse::Access => client_id.into_iter().for_each(|c| b.push(List::Clients, c)),
                TokenUse::Id => strs(aud).for_each(|c| b.push(List::Clients, c)),
            }
            check_clients(&cfg.client_ids, b)?;
            Ok(Some(tu))
        }
        TokenUsePolicy::Any => {
            if !cfg.audiences.is_empty()
                && !strs(aud).any(|a| cfg.audiences.iter().any(|w| **w == *a))
            {
                return Err(AuthError::WrongAudience);
            }
            client_id
                .into_iter()
                .chain(opt_str(claims, "azp"))
                .chain(strs(aud))
                .for_each(|c| b.push(List::Clients, c));
            check_clients(&cfg.client_ids, b)?;
            Ok(token_use_of(claims))
        }
    }
}

/// Scopes from `scope` (space-separated) or else `scp` (string or array).
fn push_scopes(claims: &Map<String, Value>, b: &mut VerifiedBuilder) {
    let push = |s| b.push(List::Scopes, s);
    match claims.get("scope") {
        Some(Value::String(s)) => s.split_ascii_whitespace().for_each(push),
        _ => match claims.get("scp") {
            Some(Value::String(s)) => s.split_ascii_whitespace().for_each(push),
            v @ Some(Value::Array(_)) => strs(v).for_each(push),
            _ => {}
        },
    }
}

/// Groups must be an array of strings; a bare string grants no group.
fn push_groups(claims: &Map<String, Value>, b: &mut VerifiedBuilder) {
    if let v @ Some(Value::Array(_)) = claims.get("cognito:groups") {
        strs(v).for_each(|g| b.push(List::Groups, g));
    }
}

impl Verifier {
    /// The one way to build the verifier stack: every issuer of `config` with the key store
    /// `keys` gives it (the running sidecar shares stores across reloads; `inspect`, the
    /// benchmarks and the fuzz targets make their own), the identity headers of
    /// `[forward]`, and the `[token]` size cap and cache size.
    pub fn for_config(
        config: &Config,
        keys: impl FnMut(&IssuerConfig) -> anyhow::Result<Arc<KeyStore>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Verifier> {
        let m = Arc::clone(&metrics);
        Self::for_config_with(
            config,
            keys,
            |cfg| AlbKeys::new(cfg, Arc::clone(&m)),
            metrics,
        )
    }

    /// [`Verifier::for_config`] with the ALB issuers' key caches from `alb_keys` too (the
    /// running sidecar keeps them across reloads).
    pub fn for_config_with(
        config: &Config,
        mut keys: impl FnMut(&IssuerConfig) -> anyhow::Result<Arc<KeyStore>>,
        mut alb_keys: impl FnMut(&AlbIssuerConfig) -> anyhow::Result<Arc<AlbKeys>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Verifier> {
        let albs = config
            .alb_issuers
            .iter()
            .map(|cfg| {
                Ok(AlbIssuer {
                    cfg: cfg.clone(),
                    keys: alb_keys(cfg)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cache_entries = config.token.cache_entries;
        let issuers = config
            .issuers
            .iter()
            .map(|cfg| {
                let revocation = match cfg.revocation.is_online() {
                    true => Some(Arc::new(Revocation::new(
                        &cfg.revocation,
                        cache_entries,
                        Arc::clone(&metrics),
                    )?)),
                    false => None,
                };
                let denylist = match &cfg.revoked_file {
                    Some(path) => Some(DenyList::load(&cfg.name, path, Arc::clone(&metrics))?),
                    None => None,
                };
                Ok(Issuer {
                    cfg: cfg.clone(),
                    keys: keys(cfg)?,
                    revocation,
                    denylist,
                    form_hint_logged: Default::default(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Verifier {
            revocable: issuers.iter().any(Issuer::can_revoke),
            issuers,
            albs,
            forward: config.forward.clone(),
            header_names: config
                .forward
                .headers
                .iter()
                .map(|(h, _)| h.clone())
                .collect(),
            max_bytes: config.token.max_bytes,
            keep_claims: config.routes.rules().iter().any(|r| r.condition.is_some()),
            cache: (cache_entries > 0).then(|| Cache {
                entries: quick_cache::sync::Cache::new(cache_entries),
                doorkeeper: Doorkeeper::for_cache(cache_entries),
            }),
            cache_hit: metrics.token_cache.with_label_values(&["hit"]),
            cache_miss: metrics.token_cache.with_label_values(&["miss"]),
            metrics,
        })
    }

    /// The verifier stack for `config` with every issuer's keys taken from one JWKS document
    /// instead of fetched (benchmarks, fuzz targets, offline tools).
    pub fn with_jwks(
        config: &Config,
        jwks: &[u8],
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Verifier> {
        Self::for_config(
            config,
            |cfg| {
                let store = KeyStore::new(cfg, Arc::clone(&metrics))?;
                store.install_jwks(jwks)?;
                Ok(store)
            },
            Arc::clone(&metrics),
        )
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    pub fn alb_issuers(&self) -> &[AlbIssuer] {
        &self.albs
    }

    /// Whether every JWKS issuer has loaded keys (an ALB issuer has no key set to wait for:
    /// its keys are fetched by `kid` when a token names one).
    pub fn ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.is_loaded())
    }

    /// Verifies a JWS (`Authorization: Bearer` and the other token sources but
    /// `x-amzn-oidc-data`) at time `now` (seconds); see [`Verifier::verify_from`].
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        self.verify_from(token, false, now).await
    }

    /// Verifies `token` at time `now` (seconds), using the cache; then, for an issuer that
    /// can revoke, its deny list and its online check. `alb`: the token came from
    /// `x-amzn-oidc-data`, and only an ALB issuer may accept it (and only from there).
    pub async fn verify_from(
        &self,
        token: &str,
        alb: bool,
        now: i64,
    ) -> Result<Arc<Verified>, AuthError> {
        self.verify_noting(token, alb, now, &mut false).await
    }

    /// [`Verifier::verify_from`], noting in `cache_hit` whether the verification came from
    /// the cache (for the request's span).
    pub async fn verify_noting(
        &self,
        token: &str,
        alb: bool,
        now: i64,
        cache_hit: &mut bool,
    ) -> Result<Arc<Verified>, AuthError> {
        if token.len() > self.max_bytes {
            return Err(AuthError::TooLarge);
        }
        let digest = (self.cache.is_some() || self.revocable).then(|| token_digest(token));
        let v = self
            .verify_cached(token, alb, digest.as_ref(), now, cache_hit)
            .await?;
        let Origin::Jwks { issuer, .. } = v.origin else {
            return Ok(v);
        };
        let issuer = &self.issuers[issuer];
        if let (true, Some(digest)) = (issuer.can_revoke(), &digest) {
            if let Some(list) = &issuer.denylist {
                if list.matches(&ids_of(&v)) {
                    return Err(AuthError::Revoked);
                }
            }
            if let Some(r) = &issuer.revocation {
                match r.check_now(digest, &v) {
                    Some(result) => result?,
                    // Boxed: a call to the pool is rare, and its future would otherwise
                    // size every request's.
                    None => Box::pin(r.check(token, digest, &v)).await?,
                }
            }
        }
        Ok(v)
    }

    async fn verify_cached(
        &self,
        token: &str,
        alb: bool,
        digest: Option<&[u8; 32]>,
        now: i64,
        cache_hit: &mut bool,
    ) -> Result<Arc<Verified>, AuthError> {
        let (Some(cache), Some(&key)) = (&self.cache, digest) else {
            return Box::pin(self.verify_uncached_from(token, alb, now))
                .await
                .map(|(v, _)| Arc::new(v));
        };
        if let Some(v) = cache.entries.get(&key) {
            // A token verified from one kind of source is a hit only for that kind.
            if let Some(still) = self.hit_holds(&v, alb) {
                let leeway = still.as_secs() as i64;
                if now > v.exp.saturating_add(leeway) {
                    cache.entries.remove(&key);
                    return Err(AuthError::Expired);
                }
                if self.key_still_held(&v) {
                    self.cache_hit.inc();
                    *cache_hit = true;
                    return Ok(v);
                }
                // The signing key left the set: verify again from scratch (it will fail).
                cache.entries.remove(&key);
            }
        }
        self.cache_miss.inc();
        // Boxed: a full verification's future is large; inline it would size every
        // request's future, cache hit or not.
        let (v, _) = Box::pin(self.verify_uncached_from(token, alb, now)).await?;
        let v = Arc::new(v);
        // Cached from its second use on (`admission.rs`): a token used once takes no entry.
        if cache.doorkeeper.admit(&key) {
            cache.entries.insert(key, Arc::clone(&v));
        }
        Ok(v)
    }

    /// For a cached verification looked up from a source of kind `alb`: its issuer's leeway,
    /// or `None` when it was verified by the other kind of issuer (then it is no hit).
    fn hit_holds(&self, v: &Verified, alb: bool) -> Option<std::time::Duration> {
        match (&v.origin, alb) {
            (Origin::Jwks { issuer, .. }, false) => Some(self.issuers[*issuer].cfg.leeway),
            (Origin::Alb { issuer, .. }, true) => Some(self.albs[*issuer].cfg.leeway),
            _ => None,
        }
    }

    /// Whether the key that verified `v` is still its issuer's.
    fn key_still_held(&self, v: &Verified) -> bool {
        match &v.origin {
            Origin::Jwks {
                issuer,
                key_set,
                key,
            } => self.issuers[*issuer]
                .keys
                .still_has(*key_set, &key.kid, key),
            Origin::Alb { issuer, key } => self.albs[*issuer]
                .keys
                .cached(&key.kid)
                .is_some_and(|k| Arc::ptr_eq(&k, key)),
        }
    }

    /// The issuer whose `iss` the token names, if it allows the token's algorithm.
    fn issuer_of(&self, jws: &Jws<'_>) -> Result<(usize, &Issuer), AuthError> {
        let iss = jws
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::WrongIssuer)?;
        let Some((idx, issuer)) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.cfg.issuer == iss)
        else {
            self.hint_other_form(iss);
            return Err(AuthError::WrongIssuer);
        };
        if !issuer.cfg.algorithms.contains(&jws.alg) {
            return Err(AuthError::AlgNotAllowed);
        }
        Ok((idx, issuer))
    }

    /// A token whose `iss` is the other issuer form of a configured pool: still refused,
    /// but the log says what to set (once a minute per issuer).
    fn hint_other_form(&self, iss: &str) {
        for issuer in &self.issuers {
            let Some((form, other)) = issuer.cfg.pool.as_ref().map(|p| p.other_form()) else {
                continue;
            };
            if other != iss {
                continue;
            }
            let now = now_secs();
            let last = issuer
                .form_hint_logged
                .load(std::sync::atomic::Ordering::Relaxed);
            if now - last >= 60 {
                issuer
                    .form_hint_logged
                    .store(now, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    issuer = %issuer.cfg.name,
                    iss,
                    "wrong_issuer: this pool issues the {form} form: set issuer_form = \"{form}\""
                );
            }
        }
    }

    /// The hint for `inspect`: the issuer whose pool issues `iss` in the other form.
    pub fn other_form_of(&self, iss: &str) -> Option<(&Issuer, crate::config::IssuerForm)> {
        self.issuers.iter().find_map(|i| {
            let (form, other) = i.cfg.pool.as_ref()?.other_form();
            (other == iss).then_some((i, form))
        })
    }

    /// Full verification of a JWS without the cache; also returns the claims (for
    /// `inspect`).
    pub async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verified, Map<String, Value>), AuthError> {
        self.verify_uncached_from(token, false, now).await
    }

    /// Full verification without the cache, of an ALB token (`alb`) or a JWS.
    pub async fn verify_uncached_from(
        &self,
        token: &str,
        alb: bool,
        now: i64,
    ) -> Result<(Verified, Map<String, Value>), AuthError> {
        if token.len() > self.max_bytes {
            return Err(AuthError::TooLarge);
        }
        if alb {
            return self.verify_alb(token, now).await;
        }
        let started = Instant::now();
        let jws = Jws::parse(token)?;
        // An ALB's token is an ALB issuer's alone, and only from x-amzn-oidc-data: it never
        // reaches a JWKS issuer, whatever its `iss`.
        if jws.alb_signer {
            return Err(AuthError::WrongIssuer);
        }
        let (idx, issuer) = self.issuer_of(&jws)?;
        let kid = jws.kid.as_deref().ok_or(AuthError::UnknownKid)?;
        let (key, key_set) = key_for(issuer, kid).await?;
        jws.check_signature(&key)?;
        self.metrics
            .verify_seconds
            .observe(started.elapsed().as_secs_f64());

        let claims = jws.claims;
        let exp = check_times(&claims, now, issuer.cfg.leeway.as_secs() as i64)?;
        // The claims header (base64url of the payload) is not kept here: the proxy takes it
        // from the token on each request, which keeps cache entries small.
        let mut b = VerifiedBuilder::new(&self.header_names);
        let token_use = check_issuer_rules(&issuer.cfg, &claims, &mut b)?;
        crate::headers::render_identity(&self.forward, &claims, &mut b)?;
        b.ids(
            opt_str(&claims, "sub"),
            opt_str(&claims, "client_id"),
            opt_str(&claims, "jti"),
            opt_str(&claims, "origin_jti"),
            opt_str(&claims, "username"),
        );
        // Cognito puts scopes in access tokens only; a pre token generation trigger can
        // put any claim in an ID token, and it must not satisfy a route's `scopes`.
        if token_use != Some(TokenUse::Id) {
            push_scopes(&claims, &mut b);
        }
        push_groups(&claims, &mut b);
        let verified = b.build(
            Origin::Jwks {
                issuer: idx,
                key_set,
                key,
            },
            exp,
            token_use,
            self.keep_claims
                .then(|| crate::condition::Claims::from_json(&claims)),
        );
        Ok((verified, claims))
    }
}

impl Verifier {
    /// An ALB's `x-amzn-oidc-data`: the issuer by `signer` (never by `iss`), the key by
    /// `kid` (fetched only for a trusted signer), the ES256 signature, then `exp` (the
    /// header's, and the payload's when it has one, both with leeway), `iss` and `client`.
    async fn verify_alb(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verified, Map<String, Value>), AuthError> {
        let started = Instant::now();
        let t = AlbToken::parse(token)?;
        let (idx, alb) = self
            .albs
            .iter()
            .enumerate()
            .find(|(_, a)| a.cfg.signer_arns.contains(&t.signer))
            .ok_or(AuthError::UntrustedSigner)?;
        let key = Box::pin(alb.keys.key(&t.kid)).await?;
        if !key.verify(t.signed.as_bytes(), &t.signature) {
            return Err(AuthError::BadSignature);
        }
        self.metrics
            .verify_seconds
            .observe(started.elapsed().as_secs_f64());
        let cfg = &alb.cfg;
        let leeway = cfg.leeway.as_secs() as i64;
        if now > t.exp.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        let claims = t.claims;
        let exp = match numeric_date(claims.get("exp"))? {
            Some(exp) => {
                if now > exp.saturating_add(leeway) {
                    return Err(AuthError::Expired);
                }
                exp.min(t.exp)
            }
            None => t.exp,
        };
        for claim in ["nbf", "iat"] {
            if let Some(at) = numeric_date(claims.get(claim))? {
                if at > now.saturating_add(leeway) {
                    return Err(AuthError::NotYetValid);
                }
            }
        }
        if let Some(want) = &cfg.issuer {
            let payload_iss = claims.get("iss").map(|v| v.as_str());
            if t.iss.as_deref() != Some(want.as_str())
                || payload_iss.is_some_and(|iss| iss != Some(want.as_str()))
            {
                return Err(AuthError::WrongIssuer);
            }
        }
        let mut b = VerifiedBuilder::new(&self.header_names);
        if let Some(c) = t.client.as_deref() {
            b.push(List::Clients, c);
        }
        check_clients(&cfg.client_ids, &b)?;
        crate::headers::render_identity(&self.forward, &claims, &mut b)?;
        b.ids(
            opt_str(&claims, "sub"),
            t.client.as_deref(),
            opt_str(&claims, "jti"),
            None,
            opt_str(&claims, "username"),
        );
        push_scopes(&claims, &mut b);
        push_groups(&claims, &mut b);
        let verified = b.build(
            Origin::Alb { issuer: idx, key },
            exp,
            None,
            self.keep_claims
                .then(|| crate::condition::Claims::from_json(&claims)),
        );
        Ok((verified, claims))
    }
}

/// The ids of `v` a deny list can name.
fn ids_of(v: &Verified) -> Ids<'_> {
    Ids {
        jti: v.jti(),
        origin_jti: v.origin_jti(),
        sub: v.sub(),
        client_id: v.client_id(),
    }
}

/// The key `kid` of `issuer`, with its set's serial: from the current set, or after one
/// (throttled, single-flight) refetch for an unknown `kid`.
async fn key_for(issuer: &Issuer, kid: &str) -> Result<(Arc<VerifyKey>, u64), AuthError> {
    let set = issuer.keys.current().ok_or(AuthError::KeysUnavailable)?;
    match set.keys.get(kid) {
        Some(k) => Ok((Arc::clone(k), set.serial)),
        // Boxed: rare, and its future would otherwise size every request's.
        None => Box::pin(issuer.keys.refetch_for(kid))
            .await
            .ok_or(AuthError::UnknownKid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::keys::SigningKey;
    use serde_json::json;

    const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Unit";

    fn verifier(key: &SigningKey, extra: &str) -> Verifier {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[issuers]]\nname = \"p\"\nissuer = \"{ISS}\"\n\
             jwks_url = \"http://127.0.0.1:1/jwks.json\"\ntoken_use = [\"access\", \"id\"]\n{extra}"
        );
        let config = Config::from_toml_str("unit.toml", &text, &[]).unwrap();
        let jwks = json!({ "keys": [key.jwk()] }).to_string();
        Verifier::with_jwks(&config, jwks.as_bytes(), Arc::new(Metrics::new())).unwrap()
    }

    fn verify(v: &Verifier, token: &str) -> Result<Arc<Verified>, AuthError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(v.verify(token, now_secs()))
    }

    /// The identity headers, sorted by name (`[forward.headers]` keeps its own order).
    fn headers(v: &Verified) -> Vec<(String, String)> {
        let mut h: Vec<_> = v
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        h.sort();
        h
    }

    #[test]
    fn a_verified_token_keeps_each_claim_the_rules_headers_and_log_read() {
        let key = SigningKey::generate("k1").unwrap();
        let v = verifier(&key, "");
        let exp = now_secs() + 600;
        let token = key.sign(&json!({
            "iss": ISS, "token_use": "access", "exp": exp,
            "sub": "5e1d-sub", "client_id": "app-client", "username": "alice",
            "jti": "jti-1", "origin_jti": "origin-1",
            "scope": "openid dotnet-demo/dotnet aws.cognito.signin.user.admin",
            "cognito:groups": ["readers", "café,admins"],
        }));
        let t = verify(&v, &token).unwrap();
        assert_eq!(t.kid(), "k1");
        assert_eq!(t.exp, exp);
        assert_eq!(t.token_use, Some(TokenUse::Access));
        assert_eq!(t.sub(), Some("5e1d-sub"));
        assert_eq!(t.client_id(), Some("app-client"));
        assert_eq!(t.username(), Some("alice"));
        assert_eq!(t.jti(), Some("jti-1"));
        assert_eq!(t.origin_jti(), Some("origin-1"));
        assert_eq!(t.clients().iter().collect::<Vec<_>>(), ["app-client"]);
        assert_eq!(
            t.scopes().iter().collect::<Vec<_>>(),
            [
                "openid",
                "dotnet-demo/dotnet",
                "aws.cognito.signin.user.admin"
            ]
        );
        assert_eq!(
            t.groups().iter().collect::<Vec<_>>(),
            ["readers", "café,admins"]
        );
        assert!(t.scopes().contains("dotnet-demo/dotnet"));
        assert!(!t.scopes().contains("dotnet-demo"), "membership is exact");
        assert!(!t.groups().contains("admins"));
        assert_eq!(
            headers(&t),
            [
                ("x-auth-client-id", "app-client"),
                ("x-auth-groups", "readers,caf%C3%A9%2Cadmins"),
                (
                    "x-auth-scope",
                    "openid dotnet-demo/dotnet aws.cognito.signin.user.admin"
                ),
                ("x-auth-sub", "5e1d-sub"),
                ("x-auth-username", "alice"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        // Each string once: the client, the scopes and "readers" are found inside the
        // headers' values, sub and username are those values; only jti, origin_jti and the
        // group that was percent-encoded in its header are added.
        let kept = [
            "app-client",
            "5e1d-sub",
            "openid dotnet-demo/dotnet aws.cognito.signin.user.admin",
            "readers,caf%C3%A9%2Cadmins",
            "alice",
            "jti-1",
            "origin-1",
            "café,admins",
        ];
        assert!(
            t.strings_len() <= kept.iter().map(|s| s.len()).sum(),
            "{} bytes of strings",
            t.strings_len()
        );
    }

    #[test]
    fn absent_claims_are_absent_and_id_tokens_carry_no_scopes() {
        let key = SigningKey::generate("k1").unwrap();
        let v = verifier(&key, "");
        let token = key.sign(&json!({
            "iss": ISS, "token_use": "id", "exp": now_secs() + 600,
            "aud": "app-client", "sub": "s", "scope": "dotnet-demo/dotnet",
            "cognito:groups": "readers",
        }));
        let t = verify(&v, &token).unwrap();
        assert_eq!(t.token_use, Some(TokenUse::Id));
        assert_eq!(t.clients().iter().collect::<Vec<_>>(), ["app-client"]);
        assert_eq!(t.client_id(), None);
        assert_eq!(t.username(), None);
        assert_eq!(t.jti(), None);
        assert!(t.scopes().is_empty(), "an ID token's scope grants nothing");
        assert!(t.groups().is_empty(), "a bare string grants no group");
        assert_eq!(
            headers(&t),
            [
                ("x-auth-scope".to_string(), "dotnet-demo/dotnet".to_string()),
                ("x-auth-sub".to_string(), "s".to_string()),
            ]
        );
    }

    #[test]
    fn an_empty_string_claim_is_present_and_a_control_character_is_malformed() {
        let key = SigningKey::generate("k1").unwrap();
        let v = verifier(&key, "");
        let claims = |sub: &str| {
            json!({
                "iss": ISS, "token_use": "access", "exp": now_secs() + 600,
                "client_id": "c", "sub": sub, "username": "",
            })
        };
        let t = verify(&v, &key.sign(&claims(""))).unwrap();
        assert_eq!(t.sub(), Some(""));
        assert_eq!(t.username(), Some(""));
        assert!(headers(&t).contains(&("x-auth-sub".into(), String::new())));
        for bad in ["a\r\nX-Evil: 1", "nul\0", "del\x7f"] {
            assert_eq!(
                verify(&v, &key.sign(&claims(bad))).unwrap_err(),
                AuthError::Malformed,
                "{bad:?}"
            );
        }
        // A header with no claim configured for it changes nothing.
        let v = verifier(&key, "[forward.headers]\nX-Tenant = \"custom:tenant\"\n");
        let t = verify(&v, &key.sign(&claims("s"))).unwrap();
        assert!(headers(&t).iter().all(|(n, _)| n != "x-tenant"));
        assert_eq!(t.sub(), Some("s"));
    }
}
