//! Validates `[[issuers]]`: which tokens are trusted. Each concern is one function: the
//! `iss` value (from a Cognito user pool id and its issuer form, or an OIDC issuer URL), the
//! JWKS URL, the token kinds, the algorithms, the client ids, the durations, the revocation
//! settings and the deny list file. Fetching keys, verifying tokens and asking the pool are
//! left to `crate::jwks`, `crate::verify` and `crate::revocation`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::model::{AlbIssuerConfig, CognitoPool, IssuerConfig, RevocationPolicy};
use super::problems::{unknown, Problems};
use super::raw::RawIssuer;
use super::types::{
    idp_endpoint, one_of, parse_algorithm, pool_issuer, region_of_pool, Fallback, IssuerForm,
    IssuerKind, RevocationMode, TokenUse, TokenUsePolicy, ALGORITHM_NAMES, TOKEN_USE_ANY,
};

/// The validated `[[issuers]]`: the JWKS issuers and the ALB issuers, each list in file
/// order (each entry knows its `position` in the file).
pub(super) struct Issuers {
    pub jwks: Vec<IssuerConfig>,
    pub alb: Vec<AlbIssuerConfig>,
}

pub(super) fn validate_issuers(p: &mut Problems, raw: &[RawIssuer]) -> Issuers {
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    let mut signers: HashMap<String, usize> = HashMap::new();
    let mut out = Issuers {
        jwks: Vec::with_capacity(raw.len()),
        alb: Vec::new(),
    };
    for (i, r) in raw.iter().enumerate() {
        let key = |f: &str| format!("issuers[{i}].{f}");
        let name = match r.name.trim() {
            "" => format!("issuer{i}"),
            name => name.to_string(),
        };
        if !names.insert(name.clone()) {
            p.push(key("name"), format!("duplicate issuer name {name:?}"));
        }
        let kind = p.parse(&key("kind"), r.kind.trim(), IssuerKind::Jwks);
        for (k, of, set) in kind_keys(r) {
            if set && of != kind {
                p.push(
                    key(k),
                    format!(
                        "applies to kind = \"{of}\" issuers only (this one is kind = \"{kind}\")"
                    ),
                );
            }
        }
        if kind == IssuerKind::Alb {
            let alb = alb_issuer(p, &key, r, name, i);
            for (j, arn) in alb.signer_arns.iter().enumerate() {
                if let Some(other) = signers.insert(arn.clone(), i) {
                    p.push(
                        key(&format!("signer_arns[{j}]")),
                        format!(
                            "{arn:?} is also listed by issuers[{other}]: a signer names one issuer"
                        ),
                    );
                }
            }
            out.alb.push(alb);
            continue;
        }
        let (issuer, pool) = issuer(p, &key, r);
        if !issuer.is_empty() && !seen.insert(issuer.clone()) {
            p.push(
                key("issuer"),
                format!("issuer {issuer:?} is configured twice"),
            );
        }
        let token_use = token_use(
            p,
            &key,
            r.token_use.as_deref().unwrap_or(&default_token_use()),
        );
        let audiences = r.audiences.clone().unwrap_or_default();
        if !audiences.is_empty() && token_use != TokenUsePolicy::Any {
            p.push(
                key("audiences"),
                "audiences applies to non-Cognito issuers (token_use = [\"any\"]); Cognito tokens are checked with client_ids",
            );
        }
        let d = durations(p, &key, r);
        let revocation = revocation(p, &key, r, pool.as_ref(), &token_use);
        out.jwks.push(IssuerConfig {
            name,
            position: i,
            jwks_url: jwks_url(p, &key, r.jwks_url.as_deref(), &issuer),
            issuer,
            client_ids: client_ids(p, &key, &r.client_ids),
            token_use,
            audiences,
            leeway: d.leeway,
            algorithms: algorithms(
                p,
                &key,
                r.algorithms.as_deref().unwrap_or(&["RS256".to_string()]),
            ),
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

fn default_token_use() -> Vec<String> {
    vec![TokenUse::Access.to_string(), TokenUse::Id.to_string()]
}

/// A key's value as written, or its default.
fn or<'a>(v: &'a Option<String>, default: &'a str) -> &'a str {
    v.as_deref().unwrap_or(default)
}

/// The keys of an `[[issuers]]` entry that apply to one kind only, and whether `r` sets
/// each: one of another kind is a problem, never silently ignored.
pub(super) fn kind_keys(r: &RawIssuer) -> [(&'static str, IssuerKind, bool); 24] {
    use IssuerKind::{Alb, Jwks};
    [
        ("user_pool_id", Jwks, r.user_pool_id.is_some()),
        ("jwks_url", Jwks, r.jwks_url.is_some()),
        ("token_use", Jwks, r.token_use.is_some()),
        ("audiences", Jwks, r.audiences.is_some()),
        ("algorithms", Jwks, r.algorithms.is_some()),
        ("jwks_refresh", Jwks, r.jwks_refresh.is_some()),
        ("jwks_min_refetch", Jwks, r.jwks_min_refetch.is_some()),
        ("jwks_timeout", Jwks, r.jwks_timeout.is_some()),
        ("jwks_ca_file", Jwks, r.jwks_ca_file.is_some()),
        ("issuer_form", Jwks, r.issuer_form.is_some()),
        ("revocation", Jwks, r.revocation.is_some()),
        ("revocation_recheck", Jwks, r.revocation_recheck.is_some()),
        ("revocation_timeout", Jwks, r.revocation_timeout.is_some()),
        (
            "revocation_unavailable",
            Jwks,
            r.revocation_unavailable.is_some(),
        ),
        ("revocation_endpoint", Jwks, r.revocation_endpoint.is_some()),
        ("revocation_unscoped", Jwks, r.revocation_unscoped.is_some()),
        (
            "revocation_id_tokens",
            Jwks,
            r.revocation_id_tokens.is_some(),
        ),
        ("revoked_file", Jwks, r.revoked_file.is_some()),
        ("region", Alb, r.region.is_some()),
        ("signer_arns", Alb, r.signer_arns.is_some()),
        ("keys_url", Alb, r.keys_url.is_some()),
        ("keys_timeout", Alb, r.keys_timeout.is_some()),
        ("keys_cache", Alb, r.keys_cache.is_some()),
        ("keys_min_refetch", Alb, r.keys_min_refetch.is_some()),
    ]
}

/// A `kind = "alb"` entry: `region` and `signer_arns` required, every signer an ALB ARN of
/// that region; the key URL, cache and limits.
fn alb_issuer(
    p: &mut Problems,
    key: Key<'_>,
    r: &RawIssuer,
    name: String,
    position: usize,
) -> AlbIssuerConfig {
    let region = match r.region.as_deref().map(str::trim) {
        None => {
            p.push(
                key("region"),
                "an ALB issuer needs region: the load balancer's region, e.g. \"eu-west-1\"",
            );
            String::new()
        }
        Some(reg) if !is_region(reg) => {
            p.push(
                key("region"),
                format!("{reg:?} is not an AWS region (e.g. \"eu-west-1\")"),
            );
            String::new()
        }
        Some(reg) => reg.to_string(),
    };
    let signer_arns = match &r.signer_arns {
        None => {
            p.push(
                key("signer_arns"),
                "an ALB issuer needs signer_arns: the ARNs of the load balancers whose x-amzn-oidc-data it trusts",
            );
            Vec::new()
        }
        Some(arns) if arns.is_empty() => {
            p.push(
                key("signer_arns"),
                "must list at least one load balancer ARN",
            );
            Vec::new()
        }
        Some(arns) => {
            let mut out = Vec::with_capacity(arns.len());
            for (j, arn) in arns.iter().enumerate() {
                match check_signer_arn(arn.trim(), &region) {
                    Ok(()) => out.push(arn.trim().to_string()),
                    Err(why) => p.push(key(&format!("signer_arns[{j}]")), why),
                }
            }
            out
        }
    };
    let issuer = r.issuer.as_deref().map(str::trim).and_then(|iss| {
        if web_url(iss).is_some() {
            Some(iss.to_string())
        } else {
            p.push(key("issuer"), format!("invalid issuer URL {iss:?}"));
            None
        }
    });
    let leeway = p.duration(&key("leeway"), &r.leeway);
    if leeway > Duration::from_secs(600) {
        p.push(key("leeway"), "must be at most 10m");
    }
    let keys_url = match &r.keys_url {
        None => default_keys_url(&region),
        Some(u) => match web_url(u.trim()) {
            Some(url) if url.query().is_none() && url.fragment().is_none() => {
                url.as_str().trim_end_matches('/').to_string()
            }
            _ => {
                p.push(
                    key("keys_url"),
                    format!("invalid URL {u:?} (an http(s) base URL without query; keys are fetched from <keys_url>/<kid>)"),
                );
                String::new()
            }
        },
    };
    let keys_timeout = p.duration(&key("keys_timeout"), or(&r.keys_timeout, "5s"));
    if keys_timeout.is_zero() || keys_timeout > Duration::from_secs(30) {
        p.push(key("keys_timeout"), "must be more than 0s and at most 30s");
    }
    let keys_cache = r.keys_cache.unwrap_or(64);
    if !(1..=10_000).contains(&keys_cache) {
        p.push(key("keys_cache"), "must be between 1 and 10000");
    }
    let keys_min_refetch = p.duration(&key("keys_min_refetch"), or(&r.keys_min_refetch, "10s"));
    if keys_min_refetch > Duration::from_secs(3600) {
        p.push(key("keys_min_refetch"), "must be at most 1h");
    }
    AlbIssuerConfig {
        name,
        position,
        kind: IssuerKind::Alb,
        region,
        signer_arns,
        issuer,
        client_ids: client_ids(p, key, &r.client_ids),
        leeway,
        keys_url,
        keys_timeout,
        keys_cache,
        keys_min_refetch,
    }
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`: lower-case words and a number, by `-`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[..parts.len() - 1]
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// The AWS partition of a region.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Where an ALB of `region` publishes its keys (AWS's documented locations; GovCloud keeps
/// them in S3).
fn default_keys_url(region: &str) -> String {
    if region.starts_with("us-gov-") {
        format!("https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}")
    } else {
        format!("https://public-keys.auth.elb.{region}.amazonaws.com")
    }
}

/// `arn:<partition>:elasticloadbalancing:<region>:<12-digit account>:loadbalancer/app/<name>/<id>`
/// of `region` (an ALB's keys are its region's, so a signer of another region is never one of
/// this issuer's).
pub(super) fn check_signer_arn(arn: &str, region: &str) -> Result<(), String> {
    let shape = || {
        format!("{arn:?} is not an ALB ARN (expected arn:aws:elasticloadbalancing:<region>:<account id>:loadbalancer/app/<name>/<id>)")
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [pre, partition, service, arn_region, account, resource] = parts[..] else {
        return Err(shape());
    };
    let Some(lb) = resource.strip_prefix("loadbalancer/app/") else {
        return Err(shape());
    };
    let (lb_name, id) = lb.split_once('/').unwrap_or((lb, ""));
    let name_ok = (1..=32).contains(&lb_name.len())
        && lb_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !lb_name.starts_with('-')
        && !lb_name.ends_with('-');
    let id_ok = id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if pre != "arn"
        || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        || service != "elasticloadbalancing"
        || !is_region(arn_region)
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || !name_ok
        || !id_ok
    {
        return Err(shape());
    }
    if partition != partition_of(arn_region) {
        return Err(format!(
            "{arn:?}: region {arn_region} is not in partition {partition}"
        ));
    }
    if !region.is_empty() && arn_region != region {
        return Err(format!(
            "{arn:?} is in region {arn_region}, not the issuer's region {region}: an ALB signs with its own region's keys"
        ));
    }
    Ok(())
}

type Key<'a> = &'a dyn Fn(&str) -> String;

/// The exact `iss` tokens must carry: derived from `user_pool_id` in its `issuer_form`, or
/// `issuer` as given; and the pool, for a Cognito issuer. Empty when neither is usable (a
/// problem has been reported).
fn issuer(p: &mut Problems, key: Key<'_>, r: &RawIssuer) -> (String, Option<CognitoPool>) {
    let form = p.parse(
        &key("issuer_form"),
        or(&r.issuer_form, IssuerForm::Original.as_str()),
        IssuerForm::Original,
    );
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
    let mode = p.parse(
        &key("revocation"),
        or(&r.revocation, RevocationMode::Off.as_str()),
        RevocationMode::Off,
    );
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
    let recheck = p.duration(&key("revocation_recheck"), or(&r.revocation_recheck, "60s"));
    let timeout = p.duration(&key("revocation_timeout"), or(&r.revocation_timeout, "2s"));
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
            or(&r.revocation_unavailable, Fallback::Deny.as_str()),
            Fallback::Deny,
        ),
        endpoint,
        unscoped: p.parse(
            &key("revocation_unscoped"),
            or(&r.revocation_unscoped, Fallback::Allow.as_str()),
            Fallback::Allow,
        ),
        id_tokens: p.parse(
            &key("revocation_id_tokens"),
            or(&r.revocation_id_tokens, Fallback::Allow.as_str()),
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
    let jwks_refresh = p.duration(&key("jwks_refresh"), or(&r.jwks_refresh, "15m"));
    if jwks_refresh < Duration::from_secs(1) {
        p.push(key("jwks_refresh"), "must be at least 1s");
    }
    let jwks_timeout = p.duration(&key("jwks_timeout"), or(&r.jwks_timeout, "5s"));
    if jwks_timeout.is_zero() {
        p.push(key("jwks_timeout"), "must be greater than zero");
    }
    Durations {
        leeway,
        jwks_refresh,
        jwks_min_refetch: p.duration(&key("jwks_min_refetch"), or(&r.jwks_min_refetch, "30s")),
        jwks_timeout,
    }
}
