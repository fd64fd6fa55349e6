//! The config file as written: serde shapes for every section, with their defaults. Unknown
//! keys are errors; every value that needs parsing (durations, addresses, enum names) stays a
//! string here so that validation can report every problem at once, each under its key.
//!
//! Owns the schema (the key names and defaults). Validation lives in the per-section
//! modules; the validated shapes in `model`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{AuthMode, LogFormat, PathCase, Preflight, TokenUse};

/// The config file as written. Every struct denies unknown keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub listener: RawListener,
    pub runtime: RawRuntime,
    pub admin: RawAdmin,
    pub upstream: RawUpstream,
    pub issuers: Vec<RawIssuer>,
    pub default: RawDefault,
    pub routes: Vec<RawRoute>,
    pub token: RawToken,
    pub forward: RawForward,
    pub log: RawLog,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawListener {
    pub address: String,
    pub header_read_timeout: String,
    pub tls: Option<RawTls>,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub drain_timeout: String,
}

impl Default for RawListener {
    fn default() -> Self {
        Self {
            address: "0.0.0.0:8080".into(),
            header_read_timeout: "10s".into(),
            tls: None,
            max_connections: 10_000,
            max_header_bytes: 32 * 1024,
            drain_timeout: "30s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRuntime {
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub address: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9901".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub url: String,
    pub connect_timeout: String,
    pub request_timeout: String,
    pub ca_file: Option<String>,
    pub pool_idle_timeout: String,
    pub pool_max_idle: usize,
    pub max_connections: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: String::new(),
            connect_timeout: "2s".into(),
            request_timeout: "30s".into(),
            ca_file: None,
            pool_idle_timeout: "90s".into(),
            pool_max_idle: 256,
            max_connections: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIssuer {
    pub name: String,
    pub user_pool_id: Option<String>,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub client_ids: Vec<String>,
    pub token_use: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: String,
    pub algorithms: Vec<String>,
    pub jwks_refresh: String,
    pub jwks_min_refetch: String,
    pub jwks_timeout: String,
    pub jwks_ca_file: Option<String>,
}

impl Default for RawIssuer {
    fn default() -> Self {
        Self {
            name: String::new(),
            user_pool_id: None,
            issuer: None,
            jwks_url: None,
            client_ids: Vec::new(),
            token_use: vec![TokenUse::Access.to_string(), TokenUse::Id.to_string()],
            audiences: Vec::new(),
            leeway: "60s".into(),
            algorithms: vec!["RS256".into()],
            jwks_refresh: "15m".into(),
            jwks_min_refetch: "30s".into(),
            jwks_timeout: "5s".into(),
            jwks_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDefault {
    pub auth: String,
    pub preflight: String,
    pub path_case: String,
}

impl Default for RawDefault {
    fn default() -> Self {
        Self {
            auth: AuthMode::Required.to_string(),
            preflight: Preflight::Check.to_string(),
            path_case: PathCase::Insensitive.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawToken {
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub websocket_protocol: bool,
    pub max_bytes: usize,
    pub cache_entries: usize,
}

impl Default for RawToken {
    fn default() -> Self {
        Self {
            cookie: None,
            query: None,
            websocket_protocol: false,
            max_bytes: 8 * 1024,
            cache_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    pub strip_authorization: bool,
    pub claims_header: String,
    pub headers: BTreeMap<String, String>,
}

impl Default for RawForward {
    fn default() -> Self {
        let headers = [
            ("X-Auth-Sub", "sub"),
            ("X-Auth-Client-Id", "client_id"),
            ("X-Auth-Scope", "scope"),
            ("X-Auth-Groups", "cognito:groups"),
            ("X-Auth-Username", "username"),
        ]
        .into_iter()
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect();
        Self {
            strip_authorization: false,
            claims_header: "X-Auth-Claims".into(),
            headers,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text.to_string(),
        }
    }
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub groups_any: Vec<String>,
    #[serde(default)]
    pub token_use: Option<String>,
    #[serde(default)]
    pub client_ids: Option<Vec<String>>,
}

fn default_auth() -> String {
    AuthMode::Required.to_string()
}
