//! `inspect`: decode a token, verify it against the configured issuers (fetching the
//! matching issuer's JWKS once), and say for each route whether it may call it and why not.
//! A token whose header names a `signer` is judged as an ALB's `x-amzn-oidc-data` (its key
//! fetched by `kid` from the ALB issuer of that signer).
//! Uses the same verifier stack as the running sidecar ([`Verifier::for_config`]).
//! A route with a `when` also shows the condition's value for the token, over the request
//! `--request METHOD PATH` describes (default `GET /`, no headers, no host).

use std::fmt::Write;
use std::sync::Arc;

use crate::claims::AuthError;
use crate::config::{AuthMode, Config};
use crate::describe::requirements;
use crate::jwks::KeyStore;
use crate::jws::decode_unverified;
use crate::metrics::Metrics;
use crate::verify::{now_secs, Origin, Verifier};

/// The report, as printed by `cognito-sidecar inspect`.
pub async fn inspect(c: &Config, token: &str) -> anyhow::Result<String> {
    inspect_request(c, token, None).await
}

/// The request side of the routes' conditions, for [`inspect_request`].
pub struct AskedRequest {
    pub method: http::Method,
    /// As a client would send it; normalised as the sidecar would.
    pub path: String,
}

/// [`inspect`], with the request side of each route's `when` set by `request`.
pub async fn inspect_request(
    c: &Config,
    token: &str,
    request: Option<AskedRequest>,
) -> anyhow::Result<String> {
    let mut o = String::new();
    let alb = crate::alb::has_signer(token);
    let decoded = match alb {
        true => crate::alb::decode_unverified(token),
        false => decode_unverified(token),
    };
    let (header, payload) = match decoded {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(o, "not a JWT: {e}");
            return Ok(o);
        }
    };
    let _ = writeln!(o, "# header\n{}", serde_json::to_string_pretty(&header)?);
    let _ = writeln!(
        o,
        "# payload (unverified)\n{}",
        serde_json::to_string_pretty(&payload)?
    );

    let metrics = Arc::new(Metrics::new());
    let iss = payload.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    let verifier = Verifier::for_config(
        c,
        |cfg| KeyStore::new(cfg, Arc::clone(&metrics)),
        Arc::clone(&metrics),
    )?;
    for issuer in verifier
        .issuers()
        .iter()
        .filter(|i| !alb && i.cfg.issuer == iss)
    {
        if let Err(e) = issuer.keys.fetch_now().await {
            let _ = writeln!(
                o,
                "\n# keys\nissuer {:?}: JWKS {} failed: {e}",
                issuer.cfg.name, issuer.cfg.jwks_url
            );
        }
    }
    let result = verifier.verify_uncached_from(token, alb, now_secs()).await;
    let _ = writeln!(o, "\n# verification");
    let verified = match &result {
        Ok((v, _)) => {
            let name = match v.origin {
                Origin::Jwks { issuer, .. } => &c.issuers[issuer].name,
                Origin::Alb { issuer, .. } => &c.alb_issuers[issuer].name,
            };
            let _ = writeln!(o, "accepted by issuer {name:?} (kid {})", v.kid());
            let _ = writeln!(o, "headers the upstream would receive:");
            for (h, val) in v.headers() {
                let _ = writeln!(o, "  {}: {}", h, val.to_str().unwrap_or("<binary>"));
            }
            if let (Some(h), Some(p)) = (&c.forward.claims_header, token.split('.').nth(1)) {
                let _ = writeln!(o, "  {h}: {}", p.trim_end_matches('='));
            }
            Some(v)
        }
        Err(e) => {
            let why = match (e, verifier.other_form_of(iss)) {
                (AuthError::WrongIssuer, Some((issuer, form))) => format!(
                    "wrong_issuer: iss {iss:?} is the {form} form of the pool of issuer {:?}: this pool issues the {form} form: set issuer_form = \"{form}\"",
                    issuer.cfg.name
                ),
                (AuthError::WrongIssuer, None) => format!(
                    "wrong_issuer: iss {:?} is none of the configured issuers ({})",
                    iss,
                    c.issuers
                        .iter()
                        .map(|i| i.issuer.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (AuthError::UntrustedSigner, _) => format!(
                    "untrusted_signer: signer {:?} is in no ALB issuer's signer_arns ({})",
                    header.get("signer").and_then(|v| v.as_str()).unwrap_or(""),
                    c.alb_issuers
                        .iter()
                        .flat_map(|i| i.signer_arns.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (other, _) => other.as_str().to_string(),
            };
            let _ = writeln!(o, "rejected: {why}");
            None
        }
    };
    let claims = result
        .as_ref()
        .ok()
        .map(|(_, claims)| crate::condition::Claims::from_json(claims));
    let (method, path) = match &request {
        Some(r) => match crate::path::normalize(&r.path) {
            Ok(p) => (r.method.clone(), p.into_owned()),
            Err(e) => {
                let _ = writeln!(
                    o,
                    "\n# request\n{} {}: refused (400 {})",
                    r.method,
                    r.path,
                    e.as_str()
                );
                (r.method.clone(), "/".to_string())
            }
        },
        None => (http::Method::GET, "/".to_string()),
    };
    if request.is_some() {
        let _ = writeln!(o, "\n# request\n{method} {path}");
    }
    let _ = writeln!(o, "\n# routes");
    for r in c
        .routes
        .rules()
        .iter()
        .chain(std::iter::once(c.routes.default_rule()))
    {
        // The condition's value for this token, over the request asked about.
        let when = match (&r.condition, &claims) {
            (Some(cond), Some(claims)) => {
                let matches = c.routes.rule_matches(r, &method, &path);
                let headers = http::HeaderMap::new();
                let hidden = |_: &str| false;
                let req = crate::condition::Request {
                    method: method.as_str(),
                    path: &path,
                    host: "",
                    headers: &headers,
                    hidden: &hidden,
                    path_params: if matches {
                        r.path_params(&path)
                    } else {
                        Vec::new()
                    },
                };
                let result = cond.evaluate(claims, &req);
                let value = match &result {
                    Ok(b) => b.to_string(),
                    Err(e) => format!("error ({e}), refused"),
                };
                let note = match (&request, matches) {
                    (Some(_), false) => " (the request is not this route's: no path_params)",
                    (None, _) if r.pattern.params() > 0 => {
                        " (give --request METHOD PATH for path_params)"
                    }
                    _ => "",
                };
                Some((
                    result == Ok(true),
                    format!("    when {}: {value}{note}", cond.source()),
                ))
            }
            _ => None,
        };
        let verdict = match (r.auth, verified) {
            (AuthMode::Public, _) => "yes (public)".to_string(),
            (AuthMode::Deny, _) => "no: denied for everyone".to_string(),
            (AuthMode::Required | AuthMode::Login, None) => "no: token rejected".to_string(),
            (AuthMode::Required | AuthMode::Login, Some(v)) => match r.authorize(&v.grant()) {
                Ok(()) if when.as_ref().is_some_and(|(ok, _)| !ok) => {
                    "no: condition_failed".to_string()
                }
                Ok(()) => "yes".to_string(),
                Err(f) => format!("no: {} (needs {})", f.as_str(), requirements(r)),
            },
        };
        let _ = writeln!(o, "{:<32} {:<16} {}", r.label, r.methods_label(), verdict);
        if let Some((_, line)) = when {
            let _ = writeln!(o, "{line}");
        }
    }
    Ok(o)
}
