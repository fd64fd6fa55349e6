//! Human-readable views of a validated config, for `check` and `inspect`.

use std::fmt::Write;

use crate::config::Config;
use crate::routes::Rule;

/// The effective configuration (defaults filled in, derived values shown), as TOML.
pub fn effective(c: &Config) -> String {
    crate::config::effective(c)
}

/// What a rule requires, in words.
pub fn requirements(r: &Rule) -> String {
    let mut parts = Vec::new();
    if !r.scopes.is_empty() {
        parts.push(format!("scopes all of [{}]", r.scopes.join(" ")));
    }
    if !r.scopes_any.is_empty() {
        parts.push(format!("scopes any of [{}]", r.scopes_any.join(" ")));
    }
    if !r.groups_any.is_empty() {
        parts.push(format!("groups any of [{}]", r.groups_any.join(" ")));
    }
    if let Some(t) = r.token_use {
        parts.push(format!("token_use {}", t.as_str()));
    }
    if let Some(c) = &r.client_ids {
        parts.push(format!("client in [{}]", c.join(" ")));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// The route table, one line per route, first match first.
pub fn route_table(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<4} {:<32} {:<16} {:<9} requires",
        "#", "path", "methods", "auth"
    );
    for r in c
        .routes
        .rules()
        .iter()
        .chain(std::iter::once(c.routes.default_rule()))
    {
        let idx = r.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "{:<4} {:<32} {:<16} {:<9} {}",
            idx,
            r.label,
            r.methods_label(),
            r.auth.as_str(),
            requirements(r)
        );
    }
    o
}

/// `inspect`: decode the token, verify it against the configured issuers (fetching the
/// matching issuer's JWKS once), and say for each route whether it may call it and why not.
pub async fn inspect(c: &Config, token: &str) -> anyhow::Result<String> {
    use crate::config::AuthMode;
    use crate::verify::{decode_unverified, Issuer, Verifier};
    use std::sync::Arc;

    let mut o = String::new();
    let (header, payload) = match decode_unverified(token) {
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

    let metrics = Arc::new(crate::metrics::Metrics::new());
    let iss = payload.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    let mut issuers = Vec::new();
    for cfg in &c.issuers {
        let keys = crate::jwks::KeyStore::new(cfg, Arc::clone(&metrics))?;
        if cfg.issuer == iss {
            if let Err(e) = keys.fetch_now().await {
                let _ = writeln!(
                    o,
                    "\n# keys\nissuer {:?}: JWKS {} failed: {e}",
                    cfg.name, cfg.jwks_url
                );
            }
        }
        issuers.push(Issuer {
            cfg: cfg.clone(),
            keys,
        });
    }
    let verifier = Verifier::new(issuers, c.forward.clone(), c.token.max_bytes, 0, metrics);
    let result = verifier
        .verify_uncached(token, crate::verify::now_secs())
        .await;
    let _ = writeln!(o, "\n# verification");
    let verified = match &result {
        Ok((v, _)) => {
            let name = &c.issuers[v.issuer].name;
            let _ = writeln!(o, "accepted by issuer {name:?} (kid {})", v.kid);
            let _ = writeln!(o, "headers the upstream would receive:");
            for (h, val) in &v.headers {
                let _ = writeln!(o, "  {}: {}", h, val.to_str().unwrap_or("<binary>"));
            }
            if let (Some(h), Some(p)) = (&c.forward.claims_header, token.split('.').nth(1)) {
                let _ = writeln!(o, "  {h}: {p}");
            }
            Some(v)
        }
        Err(e) => {
            let why = match e {
                crate::verify::AuthError::WrongIssuer => format!(
                    "wrong_issuer: iss {:?} is none of the configured issuers ({})",
                    iss,
                    c.issuers
                        .iter()
                        .map(|i| i.issuer.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => other.as_str().to_string(),
            };
            let _ = writeln!(o, "rejected: {why}");
            None
        }
    };
    let _ = writeln!(o, "\n# routes");
    for r in c
        .routes
        .rules()
        .iter()
        .chain(std::iter::once(c.routes.default_rule()))
    {
        let verdict = match (r.auth, verified) {
            (AuthMode::Public, _) => "yes (public)".to_string(),
            (AuthMode::Deny, _) => "no: denied for everyone".to_string(),
            (AuthMode::Required, None) => "no: token rejected".to_string(),
            (AuthMode::Required, Some(v)) => match r.authorize(&v.grant()) {
                Ok(()) => "yes".to_string(),
                Err(f) => format!("no: {} (needs {})", f.as_str(), requirements(r)),
            },
        };
        let _ = writeln!(o, "{:<32} {:<16} {}", r.label, r.methods_label(), verdict);
    }
    Ok(o)
}
