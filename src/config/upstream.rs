//! Validates `[upstream]`: the service requests are forwarded to. Connecting and pooling
//! are left to `crate::upstream`.

use std::path::{Path, PathBuf};

use http::Uri;

use super::model::UpstreamConfig;
use super::problems::Problems;
use super::raw::RawUpstream;
use super::types::UpstreamProtocol;

pub(super) fn validate_upstream(
    p: &mut Problems,
    raw: &RawUpstream,
    decision_only_allowed: bool,
) -> UpstreamConfig {
    let url = if raw.url.trim().is_empty() {
        // With a decision listener and no upstream, the sidecar only answers front proxies.
        if !decision_only_allowed {
            p.push(
                "upstream.url",
                "missing required key (e.g. \"http://127.0.0.1:5000\"; it may be left out only when [authz] address is set, for decisions only)",
            );
        }
        None
    } else {
        match raw.url.trim().parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http") | Some("https"))
                    && u.authority().is_some()
                    && u.query().is_none() =>
            {
                if u.authority().is_some_and(|a| a.as_str().contains('@')) {
                    p.push("upstream.url", "credentials in the URL are not supported");
                }
                Some(u)
            }
            _ => {
                p.push(
                    "upstream.url",
                    format!(
                        "invalid URL {:?}: expected http(s)://host:port[/base]",
                        raw.url
                    ),
                );
                None
            }
        }
    };
    let protocol = p.parse("upstream.protocol", &raw.protocol, UpstreamProtocol::Http1);
    if protocol == UpstreamProtocol::H2c && url.as_ref().and_then(Uri::scheme_str) == Some("https")
    {
        p.push(
            "upstream.protocol",
            "\"h2c\" is HTTP/2 over cleartext (http://); an https upstream negotiates HTTP/2 with protocol = \"auto\"",
        );
    }
    let connect_timeout = p.duration("upstream.connect_timeout", &raw.connect_timeout);
    let request_timeout = p.duration("upstream.request_timeout", &raw.request_timeout);
    for (k, d) in [
        ("upstream.connect_timeout", connect_timeout),
        ("upstream.request_timeout", request_timeout),
    ] {
        if d.is_zero() {
            p.push(k, "must be greater than zero");
        }
    }
    let ca_file = raw.ca_file.as_ref().map(|f| {
        if !Path::new(f).is_file() {
            p.push("upstream.ca_file", format!("file {f:?} not found"));
        }
        PathBuf::from(f)
    });
    if ca_file.is_some() && url.as_ref().and_then(Uri::scheme_str) != Some("https") {
        p.push(
            "upstream.ca_file",
            "only meaningful with an https upstream.url",
        );
    }
    let soft_max_wait = p.duration("upstream.soft_max_wait", &raw.soft_max_wait);
    if raw.soft_max_connections > 0 && raw.max_connections == 0 && soft_max_wait.is_zero() {
        p.push(
            "upstream.soft_max_wait",
            "must be greater than zero (soft_max_connections = 0 turns the soft limit off)",
        );
    }
    UpstreamConfig {
        url,
        protocol,
        connect_timeout,
        request_timeout,
        ca_file,
        pool_idle_timeout: p.duration("upstream.pool_idle_timeout", &raw.pool_idle_timeout),
        pool_max_idle: raw.pool_max_idle,
        max_connections: raw.max_connections,
        soft_max_connections: raw.soft_max_connections,
        soft_max_wait,
    }
}
