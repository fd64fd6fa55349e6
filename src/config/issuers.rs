//! Validates `[[issuers]]`: which tokens are trusted. Each concern is one function: the
//! `iss` value (from a Cognito user pool id and its issuer form, or an OIDC issuer URL), the
//! JWKS URL, the token kinds, the algorithms, the client ids, the durations, the revocation
//! settings and the deny list file. Fetching keys, verifying tokens and asking the pool are
//! left to `crate::jwks`, `crate::verify` and `crate::revocation`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::model::{CognitoPool, IssuerConfig, RevocationPolicy};
use super::problems::{unknown, Problems};
use super::raw::RawIssuer;
use super::types::{
    idp_endpoint, one_of, parse_algorithm, pool_issuer, region_of_pool, Fallback, IssuerForm,
    RevocationMode, TokenUse, TokenUsePolicy, ALGORITHM_NAMES, TOKEN_USE_ANY,
};

pub(super) fn validate_issuers(p: &mut Problems, raw: &[RawIssuer]) -> Vec<IssuerConfig> {
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let key = |f: &str| format!("issuers[{i}].{f}");
        let name = match r.name.trim() {
            "" => format!("issuer{i}"),
            name => name.to_string(),
        };
        if !names.insert(name.clone()) {
            p.push(key("name"), format!("duplicate issuer name {name:?}"));
        }
        let (issuer, pool) = issuer(p, &key, r);
        if !issuer.is_empty() && !seen.insert(issuer.clone()) {
            p.push(
                key("issuer"),
                format!("issuer {issuer:?} is configured twice"),
            );
        }
        let token_use = token_use(p, &key, &r.token_use);
        if !r.audiences.is_empty() && token_use != TokenUsePolicy::Any {
            p.push(
                key("audiences"),
                "audiences applies to non-Cognito issuers (token_use = [\"any\"]); Cognito tokens are checked with client_ids",
            );
        }
        let d = durations(p, &key, r);
        let revocation = revocation(p, &key, r, pool.as_ref(), &token_use);
        out.push(IssuerConfig {
            name,
            jwks_url: jwks_url(p, &key, r.jwks_url.as_deref(), &issuer),
            issuer,
            client_ids: client_ids(p, &key, &r.client_ids),
            token_use,
            audiences: r.audiences.clone(),
            leeway: d.leeway,
            algorithms: algorithms(p, &key, &r.algorithms),
            jwks_refresh: d.jwks_refresh,
            jwks_min_refetch: d.jwks_min_refetch,
            jwks_timeout: d.jwks_timeout,
            jwks_ca_file: ca_file(p, &key, r.jwks_ca_file.as_deref()),
            pool,
            revocation,
            revoked_file: revoked_file(p, &key, r.revoked_file.as_deref()),
        });
    }
    out
}

type Key<'a> = &'a dyn Fn(&str) -> String;

/// The exact `iss` tokens must carry: derived from `user_pool_id` in its `issuer_form`, or
/// `issuer` as given; and the pool, for a Cognito issuer. Empty when neither is usable (a
/// problem has been reported).
fn issuer(p: &mut Problems, key: Key<'_>, r: &RawIssuer) -> (String, Option<CognitoPool>) {
    let form = p.parse(&key("issuer_form"), &r.issuer_form, IssuerForm::Original);
    match (&r.user_pool_id, &r.issuer) {
        (Some(_), Some(_)) => {
            p.push(key("issuer"), "set either user_pool_id or issuer, not both");
            (String::new(), None)
        }
        (None, None) => {
            p.push(
                key("user_pool_id"),
                "an issuer needs user_pool_id (Cognito) or issuer (any OIDC issuer)",
            );
            (String::new(), None)
        }
        (Some(pool), None) => match region_of_pool(pool.trim()) {
            Some(region) => {
                let pool = CognitoPool {
                    id: pool.trim().to_string(),
                    region: region.to_string(),
                    form,
                };
                (pool_issuer(form, &pool.region, &pool.id), Some(pool))
            }
            None => {
                p.push(
                    key("user_pool_id"),
                    format!("{pool:?} is not a user pool id (expected <region>_<id>, e.g. \"ap-south-1_p7GD1CkXO\")"),
                );
                (String::new(), None)
            }
        },
        (None, Some(iss)) => {
            if form != IssuerForm::Original {
                p.push(
                    key("issuer_form"),
                    "applies to user_pool_id; with issuer, the iss is given in full",
                );
            }
            let iss = iss.trim();
            if web_url(iss).is_some() {
                (iss.to_string(), None)
            } else {
                p.push(key("issuer"), format!("invalid issuer URL {iss:?}"));
                (String::new(), None)
            }
        }
    }
}

/// The `revocation*` keys. Online checks need `GetUser`: a Cognito issuer, and an endpoint
/// (the pool's region's, unless `revocation_endpoint` says otherwise).
fn revocation(
    p: &mut Problems,
    key: Key<'_>,
    r: &RawIssuer,
    pool: Option<&CognitoPool>,
    token_use: &TokenUsePolicy,
) -> RevocationPolicy {
    let mode = p.parse(&key("revocation"), &r.revocation, RevocationMode::Off);
    let endpoint = match &r.revocation_endpoint {
        Some(e) => match web_url(e.trim()) {
            Some(u) => Some(u.to_string()),
            None => {
                p.push(key("revocation_endpoint"), format!("invalid URL {e:?}"));
                None
            }
        },
        None => pool.map(|pool| idp_endpoint(&pool.region)),
    };
    if mode == RevocationMode::Online {
        if endpoint.is_none() && r.revocation_endpoint.is_none() {
            p.push(
                key("revocation"),
                "\"online\" needs user_pool_id (its region's GetUser) or revocation_endpoint",
            );
        }
        if *token_use == TokenUsePolicy::Any {
            p.push(
                key("revocation"),
                "\"online\" asks Cognito's GetUser, so it needs a Cognito issuer (token_use \"access\" and/or \"id\")",
            );
        }
    }
    let recheck = p.duration(&key("revocation_recheck"), &r.revocation_recheck);
    let timeout = p.duration(&key("revocation_timeout"), &r.revocation_timeout);
    if timeout.is_zero() || timeout > Duration::from_secs(30) {
        p.push(
            key("revocation_timeout"),
            "must be more than 0s and at most 30s",
        );
    }
    RevocationPolicy {
        mode,
        recheck,
        timeout,
        unavailable: p.parse(
            &key("revocation_unavailable"),
            &r.revocation_unavailable,
            Fallback::Deny,
        ),
        endpoint,
        unscoped: p.parse(
            &key("revocation_unscoped"),
            &r.revocation_unscoped,
            Fallback::Allow,
        ),
        id_tokens: p.parse(
            &key("revocation_id_tokens"),
            &r.revocation_id_tokens,
            Fallback::Allow,
        ),
    }
}

/// The deny list file: it must exist and every line must parse (the problem names the line).
fn revoked_file(p: &mut Problems, key: Key<'_>, raw: Option<&str>) -> Option<PathBuf> {
    let f = raw?;
    if let Err(e) = crate::denylist::read(Path::new(f)) {
        p.push(key("revoked_file"), e);
    }
    Some(PathBuf::from(f))
}

/// `jwks_url` as given, or `<issuer>/.well-known/jwks.json`.
fn jwks_url(p: &mut Problems, key: Key<'_>, raw: Option<&str>, issuer: &str) -> String {
    let Some(u) = raw else {
        return format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
    };
    web_url(u.trim()).map(String::from).unwrap_or_else(|| {
        p.push(key("jwks_url"), format!("invalid URL {u:?}"));
        String::new()
    })
}

/// An absolute http(s) URL with a host, normalised.
fn web_url(s: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(s)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
}

/// `["access", "id"]` (Cognito kinds) or `["any"]` (not Cognito).
fn token_use(p: &mut Problems, key: Key<'_>, raw: &[String]) -> TokenUsePolicy {
    if raw.iter().any(|t| t == TOKEN_USE_ANY) {
        if raw.len() > 1 {
            p.push(
                key("token_use"),
                format!("{TOKEN_USE_ANY:?} cannot be combined with other kinds"),
            );
        }
        return TokenUsePolicy::Any;
    }
    let accepted = || {
        let mut all = TokenUse::VALUES.to_vec();
        all.push(TOKEN_USE_ANY);
        one_of(&all)
    };
    if raw.is_empty() {
        p.push(
            key("token_use"),
            format!("must list at least one of {}", accepted()),
        );
    }
    let mut kinds = Vec::new();
    for (j, t) in raw.iter().enumerate() {
        match t.parse::<TokenUse>() {
            Ok(tu) => kinds.push(tu),
            Err(e) => p.push(
                key(&format!("token_use[{j}]")),
                format!("{} (or {TOKEN_USE_ANY:?})", unknown(t, e)),
            ),
        }
    }
    TokenUsePolicy::Cognito(kinds)
}

fn algorithms(p: &mut Problems, key: Key<'_>, raw: &[String]) -> Vec<Algorithm> {
    if raw.is_empty() {
        p.push(key("algorithms"), "must list at least one algorithm");
    }
    let mut out = Vec::new();
    for (j, a) in raw.iter().enumerate() {
        match parse_algorithm(a) {
            Some(alg) => out.push(alg),
            None => p.push(
                key(&format!("algorithms[{j}]")),
                format!(
                    "algorithm {a:?} is not allowed (expected {})",
                    one_of(ALGORITHM_NAMES)
                ),
            ),
        }
    }
    out
}

fn client_ids(p: &mut Problems, key: Key<'_>, raw: &[String]) -> Vec<String> {
    for (j, c) in raw.iter().enumerate() {
        if c.trim().is_empty() {
            p.push(key(&format!("client_ids[{j}]")), "empty client id");
        }
    }
    raw.iter().map(|c| c.trim().to_string()).collect()
}

fn ca_file(p: &mut Problems, key: Key<'_>, raw: Option<&str>) -> Option<PathBuf> {
    let f = raw?;
    if !Path::new(f).is_file() {
        p.push(key("jwks_ca_file"), format!("file {f:?} not found"));
    }
    Some(PathBuf::from(f))
}

struct Durations {
    leeway: Duration,
    jwks_refresh: Duration,
    jwks_min_refetch: Duration,
    jwks_timeout: Duration,
}

fn durations(p: &mut Problems, key: Key<'_>, r: &RawIssuer) -> Durations {
    let leeway = p.duration(&key("leeway"), &r.leeway);
    if leeway > Duration::from_secs(600) {
        p.push(key("leeway"), "must be at most 10m");
    }
    let jwks_refresh = p.duration(&key("jwks_refresh"), &r.jwks_refresh);
    if jwks_refresh < Duration::from_secs(1) {
        p.push(key("jwks_refresh"), "must be at least 1s");
    }
    let jwks_timeout = p.duration(&key("jwks_timeout"), &r.jwks_timeout);
    if jwks_timeout.is_zero() {
        p.push(key("jwks_timeout"), "must be greater than zero");
    }
    Durations {
        leeway,
        jwks_refresh,
        jwks_min_refetch: p.duration(&key("jwks_min_refetch"), &r.jwks_min_refetch),
        jwks_timeout,
    }
}
