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
    if let Some(c) = &r.condition {
        parts.push(format!("when {}", c.source()));
    }
    if let Some(l) = &r.rate_limit {
        parts.push(format!(
            "at most {} per {} by {} (burst {})",
            l.requests,
            humantime::format_duration(l.per),
            l.key.as_str(),
            l.burst
        ));
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
