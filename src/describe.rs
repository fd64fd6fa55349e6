//! Human-readable views of a validated config, for `check` and `inspect`.

use std::fmt::Write;

use crate::config::{Config, TokenUsePolicy};
use crate::routes::Rule;

fn d(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The effective configuration (defaults filled in, derived values shown).
pub fn effective(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "[listener]");
    let _ = writeln!(o, "address = \"{}\"", c.listener.address);
    let _ = writeln!(
        o,
        "header_read_timeout = \"{}\"",
        d(c.listener.header_read_timeout)
    );
    let _ = writeln!(o, "max_connections = {}", c.listener.max_connections);
    let _ = writeln!(o, "max_header_bytes = {}", c.listener.max_header_bytes);
    let _ = writeln!(o, "drain_timeout = \"{}\"", d(c.listener.drain_timeout));
    if let Some(t) = &c.listener.tls {
        let _ = writeln!(o, "tls = {{ cert = {:?}, key = {:?} }}", t.cert, t.key);
    }
    let _ = writeln!(
        o,
        "\n[runtime]\nworker_threads = {}",
        c.runtime.worker_threads
    );
    let _ = writeln!(
        o,
        "\n[admin]\naddress = \"{}\"",
        c.admin.address.map(|a| a.to_string()).unwrap_or_default()
    );
    let _ = writeln!(o, "\n[upstream]");
    let _ = writeln!(o, "url = \"{}\"", c.upstream.url);
    let _ = writeln!(o, "connect_timeout = \"{}\"", d(c.upstream.connect_timeout));
    let _ = writeln!(o, "request_timeout = \"{}\"", d(c.upstream.request_timeout));
    if let Some(ca) = &c.upstream.ca_file {
        let _ = writeln!(o, "ca_file = {:?}", ca);
    }
    let _ = writeln!(
        o,
        "pool_idle_timeout = \"{}\"\npool_max_idle = {}",
        d(c.upstream.pool_idle_timeout),
        c.upstream.pool_max_idle
    );
    if c.upstream.max_connections > 0 {
        let _ = writeln!(o, "max_connections = {}", c.upstream.max_connections);
    }
    for i in &c.issuers {
        let _ = writeln!(o, "\n[[issuers]]");
        let _ = writeln!(o, "name = {:?}", i.name);
        let _ = writeln!(o, "issuer = {:?}", i.issuer);
        let _ = writeln!(o, "jwks_url = {:?}", i.jwks_url);
        let _ = writeln!(o, "client_ids = {:?}", i.client_ids);
        match &i.token_use {
            TokenUsePolicy::Any => {
                let _ = writeln!(o, "token_use = [\"any\"]");
                let _ = writeln!(o, "audiences = {:?}", i.audiences);
            }
            TokenUsePolicy::Cognito(k) => {
                let kinds: Vec<&str> = k.iter().map(|t| t.as_str()).collect();
                let _ = writeln!(o, "token_use = {:?}", kinds);
            }
        }
        let _ = writeln!(o, "leeway = \"{}\"", d(i.leeway));
        let algs: Vec<String> = i.algorithms.iter().map(|a| format!("{a:?}")).collect();
        let _ = writeln!(o, "algorithms = {:?}", algs);
        let _ = writeln!(o, "jwks_refresh = \"{}\"", d(i.jwks_refresh));
        let _ = writeln!(o, "jwks_min_refetch = \"{}\"", d(i.jwks_min_refetch));
    }
    let _ = writeln!(o, "\n[default]");
    let _ = writeln!(o, "auth = \"{}\"", c.default.auth.as_str());
    let _ = writeln!(
        o,
        "preflight = \"{}\"",
        if c.default.preflight_forward {
            "forward"
        } else {
            "check"
        }
    );
    let _ = writeln!(
        o,
        "path_case = \"{}\"",
        format!("{:?}", c.default.path_case).to_lowercase()
    );
    let _ = writeln!(o, "\n[token]");
    if let Some(ck) = &c.token.cookie {
        let _ = writeln!(o, "cookie = {ck:?}");
    }
    if let Some(q) = &c.token.query {
        let _ = writeln!(o, "query = {q:?}");
    }
    let _ = writeln!(o, "websocket_protocol = {}", c.token.websocket_protocol);
    let _ = writeln!(o, "max_bytes = {}", c.token.max_bytes);
    let _ = writeln!(o, "cache_entries = {}", c.token.cache_entries);
    let _ = writeln!(o, "\n[forward]");
    let _ = writeln!(o, "strip_authorization = {}", c.forward.strip_authorization);
    let _ = writeln!(
        o,
        "claims_header = \"{}\"",
        c.forward
            .claims_header
            .as_ref()
            .map(|h| h.as_str())
            .unwrap_or("")
    );
    let _ = writeln!(o, "[forward.headers]");
    for (h, claim) in &c.forward.headers {
        let _ = writeln!(o, "{:?} = {:?}", h.as_str(), claim);
    }
    let _ = writeln!(
        o,
        "\n[log]\nformat = \"{}\"",
        format!("{:?}", c.log.format).to_lowercase()
    );
    o
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
