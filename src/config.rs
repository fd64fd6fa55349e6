//! Configuration: loading (figment: a TOML file plus `SIDECAR_` environment overrides) and
//! validation into [`Config`], a tree of parsed types that nothing downstream parses again.
//!
//! Loading is two-staged. [`RawConfig`] mirrors the file (serde, unknown keys are errors);
//! [`Config::from_raw`] turns it into parsed values and reports *every* problem it finds, each
//! with its key path (`routes[2].scopes`), so `check` can show them all at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use http::header::HeaderName;
use http::Uri;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::routes::{self, RouteTable};

/// Environment variables with this prefix override file keys (`__` separates levels).
pub const ENV_PREFIX: &str = "SIDECAR_";
/// The variable naming the config file when `--config` is absent.
pub const ENV_CONFIG_FILE: &str = "SIDECAR_CONFIG";

// === Raw (file) shapes ===

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
    pub routes: Vec<routes::RawRoute>,
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
            token_use: vec!["access".into(), "id".into()],
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
            auth: "required".into(),
            preflight: "check".into(),
            path_case: "insensitive".into(),
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
            format: "text".into(),
        }
    }
}

// === Validated shapes ===

/// The validated configuration. Built only by [`Config::load`] / [`Config::from_raw`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (file path or a description), for messages.
    pub source: String,
    pub listener: ListenerConfig,
    pub runtime: RuntimeConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub issuers: Vec<IssuerConfig>,
    pub default: DefaultPolicy,
    pub routes: RouteTable,
    pub token: TokenConfig,
    pub forward: ForwardConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub header_read_timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// 0 = one worker per core.
    pub worker_threads: usize,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `None` when `admin.address = ""` (admin listener off).
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub url: Uri,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// At most this many requests in flight to the upstream at once (each holds one
    /// connection); `0` = no limit.
    pub max_connections: usize,
}

/// The Cognito token kinds an issuer or route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenUse {
    Access,
    Id,
}

impl std::str::FromStr for TokenUse {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "access" => Ok(TokenUse::Access),
            "id" => Ok(TokenUse::Id),
            _ => Err(()),
        }
    }
}

/// The JWS algorithms an issuer may allow, by name.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        _ => return None,
    })
}

impl TokenUse {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Access => "access",
            TokenUse::Id => "id",
        }
    }
}

/// What `token_use` an issuer accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUsePolicy {
    /// Cognito semantics: `token_use` must be present and one of these.
    Cognito(Vec<TokenUse>),
    /// Non-Cognito issuer: `token_use` is not looked at; `aud` is checked against `audiences`.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub name: String,
    /// The exact `iss` value tokens must carry.
    pub issuer: String,
    pub jwks_url: String,
    pub client_ids: Vec<String>,
    pub token_use: TokenUsePolicy,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub algorithms: Vec<Algorithm>,
    pub jwks_refresh: Duration,
    pub jwks_min_refetch: Duration,
    pub jwks_timeout: Duration,
    pub jwks_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Public,
    Required,
    Deny,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Required => "required",
            AuthMode::Deny => "deny",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(AuthMode::Public),
            "required" => Ok(AuthMode::Required),
            "deny" => Ok(AuthMode::Deny),
            other => Err(format!(
                "unknown auth mode {other:?}: expected \"required\", \"public\" or \"deny\""
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathCase {
    Sensitive,
    Insensitive,
}

#[derive(Debug, Clone)]
pub struct DefaultPolicy {
    pub auth: AuthMode,
    /// Forward CORS preflights without a token.
    pub preflight_forward: bool,
    pub path_case: PathCase,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub websocket_protocol: bool,
    pub max_bytes: usize,
    pub cache_entries: usize,
}

#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub strip_authorization: bool,
    pub claims_header: Option<HeaderName>,
    /// (header, claim) in a stable order.
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

// === Errors ===

/// One problem in the configuration: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem found in one configuration source.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.key.is_empty() {
                write!(f, "{}: {}", self.source, p.reason)?;
            } else {
                write!(f, "{}: {}: {}", self.source, p.key, p.reason)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems while validating, each under its key path.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn duration(&mut self, key: &str, value: &str) -> Duration {
        match humantime::parse_duration(value.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.push(
                    key,
                    format!("invalid duration {value:?}: {e} (e.g. \"10s\", \"15m\")"),
                );
                Duration::ZERO
            }
        }
    }

    pub(crate) fn header_name(&mut self, key: &str, value: &str) -> Option<HeaderName> {
        match HeaderName::from_bytes(value.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.push(key, format!("invalid header name {value:?}"));
                None
            }
        }
    }
}

// === Loading ===

impl Config {
    /// Loads `path` (which must exist) with `SIDECAR_*` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// Loads `path` with overrides from the given environment (tests pass their own).
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            problems: vec![Problem {
                key: String::new(),
                reason: format!("cannot read the config file: {e}"),
            }],
        })?;
        Self::from_toml_str(&source, &text, env)
    }

    /// Parses TOML text (named `source` in messages) with environment overrides.
    pub fn from_toml_str(
        source: &str,
        text: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            source: source.to_string(),
            problems,
        };
        let mut dict: Dict = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| fail(figment_problems(e, &[])))?;
        let mut env_keys = Vec::new();
        apply_env(&mut dict, env, &mut env_keys).map_err(|p| fail(vec![p]))?;
        let raw: RawConfig = Figment::from(Serialized::defaults(dict))
            .extract()
            .map_err(|e| fail(figment_problems(e, &env_keys)))?;
        Config::from_raw(source, &raw)
    }

    /// Validates a raw config; reports every problem found.
    pub fn from_raw(source: &str, raw: &RawConfig) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let listener = validate_listener(&mut p, &raw.listener);
        let runtime = RuntimeConfig {
            worker_threads: raw.runtime.worker_threads,
        };
        if raw.runtime.worker_threads > 1024 {
            p.push(
                "runtime.worker_threads",
                "must be at most 1024 (0 = one per core)",
            );
        }
        let admin = AdminConfig {
            address: if raw.admin.address.trim().is_empty() {
                None
            } else {
                parse_addr(&mut p, "admin.address", &raw.admin.address)
            },
        };
        if let (Some(a), true) = (admin.address, listener.address.port() != 0) {
            if a == listener.address {
                p.push("admin.address", "must differ from listener.address");
            }
        }
        let upstream = validate_upstream(&mut p, &raw.upstream);
        let issuers = validate_issuers(&mut p, &raw.issuers);
        let default = DefaultPolicy {
            auth: AuthMode::parse(&raw.default.auth).unwrap_or_else(|e| {
                p.push("default.auth", e);
                AuthMode::Deny
            }),
            preflight_forward: match raw.default.preflight.as_str() {
                "check" => false,
                "forward" => true,
                other => {
                    p.push(
                        "default.preflight",
                        format!("unknown value {other:?}: expected \"check\" or \"forward\""),
                    );
                    false
                }
            },
            path_case: match raw.default.path_case.as_str() {
                "insensitive" => PathCase::Insensitive,
                "sensitive" => PathCase::Sensitive,
                other => {
                    p.push(
                        "default.path_case",
                        format!(
                            "unknown value {other:?}: expected \"insensitive\" or \"sensitive\""
                        ),
                    );
                    PathCase::Insensitive
                }
            },
        };
        if default.auth == AuthMode::Required && issuers.is_empty() {
            p.push(
                "default.auth",
                "\"required\" needs at least one [[issuers]] entry (or set \"deny\" / \"public\")",
            );
        }
        let mut routes = routes::compile(&mut p, &raw.routes, default.path_case, &issuers);
        routes.set_default(default.auth);
        let token = validate_token(&mut p, &raw.token);
        let forward = validate_forward(&mut p, &raw.forward);
        let log = LogConfig {
            format: match raw.log.format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    p.push(
                        "log.format",
                        format!("unknown value {other:?}: expected \"text\" or \"json\""),
                    );
                    LogFormat::Text
                }
            },
        };
        if !p.0.is_empty() {
            return Err(ConfigError {
                source: source.to_string(),
                problems: p.0,
            });
        }
        Ok(Config {
            source: source.to_string(),
            listener,
            runtime,
            admin,
            upstream,
            issuers,
            default,
            routes,
            token,
            forward,
            log,
        })
    }

    /// Whether any route (or the default) needs a verified token.
    pub fn needs_keys(&self) -> bool {
        !self.issuers.is_empty()
    }
}

/// Applies `SIDECAR_A__B__0__C=value` overrides onto the file's tree. Numeric levels index
/// into arrays (`issuers__0`), extending an array by one when the index is its length.
fn apply_env(
    dict: &mut Dict,
    env: &[(String, String)],
    env_keys: &mut Vec<(Vec<String>, String)>,
) -> Result<(), Problem> {
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| {
            k.len() > ENV_PREFIX.len()
                && k[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
                && !k.eq_ignore_ascii_case(ENV_CONFIG_FILE)
        })
        .collect();
    // Apply in a stable order so `__0__` comes before `__1__`.
    vars.sort();
    for (name, value) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|s| s.is_empty()) {
            return Err(Problem {
                key: format!("env {name}"),
                reason: "empty key level (use `__` between levels)".into(),
            });
        }
        let parsed: Value = value.parse().unwrap_or_else(|_| Value::from(value.clone()));
        // Header names under forward.headers keep their case-insensitive meaning; the value
        // is what the user typed, so strings stay strings.
        let parsed = match parsed {
            Value::Num(..) | Value::Bool(..) if !looks_scalar_key(&path) => {
                Value::from(value.clone())
            }
            other => other,
        };
        set_path(dict, &path, parsed).map_err(|reason| Problem {
            key: format!("env {name}"),
            reason,
        })?;
        env_keys.push((path, name.clone()));
    }
    Ok(())
}

/// Keys whose values are numbers or booleans; everything else set from the environment is
/// kept as the string typed (a client id of digits must stay a string).
fn looks_scalar_key(path: &[String]) -> bool {
    matches!(
        path.last().map(String::as_str),
        Some(
            "worker_threads"
                | "max_connections"
                | "max_header_bytes"
                | "pool_max_idle"
                | "websocket_protocol"
                | "max_bytes"
                | "cache_entries"
                | "strip_authorization"
        )
    )
}

fn set_path(dict: &mut Dict, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("non-empty env path");
    if rest.is_empty() {
        dict.insert(first.clone(), value);
        return Ok(());
    }
    let child = dict
        .entry(first.clone())
        .or_insert_with(|| empty_container(&rest[0]));
    set_in_value(child, rest, value)
}

fn empty_container(next_key: &str) -> Value {
    if next_key.parse::<usize>().is_ok() {
        Value::from(Vec::<Value>::new())
    } else {
        Value::from(Dict::new())
    }
}

fn set_in_value(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("non-empty env path");
    match node {
        Value::Dict(_, d) => {
            if rest.is_empty() {
                d.insert(first.clone(), value);
                Ok(())
            } else {
                let child = d
                    .entry(first.clone())
                    .or_insert_with(|| empty_container(&rest[0]));
                set_in_value(child, rest, value)
            }
        }
        Value::Array(_, a) => {
            let idx: usize = first
                .parse()
                .map_err(|_| format!("{first:?} is not an array index"))?;
            if idx > a.len() {
                return Err(format!(
                    "array index {idx} skips entries (the array has {} entries)",
                    a.len()
                ));
            }
            if idx == a.len() {
                a.push(if rest.is_empty() {
                    Value::from(Dict::new())
                } else {
                    empty_container(&rest[0])
                });
            }
            if rest.is_empty() {
                a[idx] = value;
                Ok(())
            } else {
                set_in_value(&mut a[idx], rest, value)
            }
        }
        _ => Err(format!("cannot set {first:?} inside a plain value")),
    }
}

/// Turns figment errors into problems with `routes[2].scopes`-style keys.
fn figment_problems(err: figment::Error, env_keys: &[(Vec<String>, String)]) -> Vec<Problem> {
    err.into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let reason = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    if expected.is_empty() {
                        "unknown key".to_string()
                    } else {
                        format!("unknown key (expected one of: {})", expected.join(", "))
                    }
                }
                figment::error::Kind::MissingField(field) => {
                    if path.last().map(String::as_str) != Some(field) {
                        path.push(field.to_string());
                    }
                    "missing required key".to_string()
                }
                other => other.to_string(),
            };
            let mut key = key_path(&path);
            if let Some((_, var)) = env_keys
                .iter()
                .find(|(p, _)| path.len() >= p.len() && path[..p.len()] == p[..])
            {
                key = format!("{key} (from env {var})");
            }
            Problem { key, reason }
        })
        .collect()
}

/// `["routes", "2", "scopes"]` -> `routes[2].scopes`.
pub(crate) fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.parse::<usize>().is_ok() && !out.is_empty() {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

// === Section validation ===

fn parse_addr(p: &mut Problems, key: &str, value: &str) -> Option<SocketAddr> {
    match value.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(
                key,
                format!(
                    "invalid socket address {value:?} (expected IP:PORT, e.g. \"0.0.0.0:8080\")"
                ),
            );
            None
        }
    }
}

fn validate_listener(p: &mut Problems, raw: &RawListener) -> ListenerConfig {
    let address = parse_addr(p, "listener.address", &raw.address)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
    let header_read_timeout = p.duration("listener.header_read_timeout", &raw.header_read_timeout);
    if header_read_timeout.is_zero() {
        p.push("listener.header_read_timeout", "must be greater than zero");
    }
    let drain_timeout = p.duration("listener.drain_timeout", &raw.drain_timeout);
    if raw.max_connections == 0 {
        p.push("listener.max_connections", "must be at least 1");
    }
    if raw.max_header_bytes < 8192 || raw.max_header_bytes > 1 << 20 {
        p.push(
            "listener.max_header_bytes",
            "must be between 8192 and 1048576",
        );
    }
    let tls = raw.tls.as_ref().map(|t| {
        for (k, v) in [("cert", &t.cert), ("key", &t.key)] {
            if !Path::new(v).is_file() {
                p.push(format!("listener.tls.{k}"), format!("file {v:?} not found"));
            }
        }
        TlsFiles {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
        }
    });
    ListenerConfig {
        address,
        header_read_timeout,
        tls,
        max_connections: raw.max_connections,
        max_header_bytes: raw.max_header_bytes,
        drain_timeout,
    }
}

fn validate_upstream(p: &mut Problems, raw: &RawUpstream) -> UpstreamConfig {
    let url = if raw.url.trim().is_empty() {
        p.push(
            "upstream.url",
            "missing required key (e.g. \"http://127.0.0.1:5000\")",
        );
        Uri::from_static("http://127.0.0.1:5000")
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
                u
            }
            _ => {
                p.push(
                    "upstream.url",
                    format!(
                        "invalid URL {:?}: expected http(s)://host:port[/base]",
                        raw.url
                    ),
                );
                Uri::from_static("http://127.0.0.1:5000")
            }
        }
    };
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
    if ca_file.is_some() && url.scheme_str() != Some("https") {
        p.push(
            "upstream.ca_file",
            "only meaningful with an https upstream.url",
        );
    }
    UpstreamConfig {
        url,
        connect_timeout,
        request_timeout,
        ca_file,
        pool_idle_timeout: p.duration("upstream.pool_idle_timeout", &raw.pool_idle_timeout),
        pool_max_idle: raw.pool_max_idle,
        max_connections: raw.max_connections,
    }
}

/// `ap-south-1_p7GD1CkXO` -> region `ap-south-1`.
pub fn region_of_pool(pool: &str) -> Option<&str> {
    let (region, id) = pool.split_once('_')?;
    let valid_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (valid_region && valid_id).then_some(region)
}

fn validate_issuers(p: &mut Problems, raw: &[RawIssuer]) -> Vec<IssuerConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let mut iss_seen = HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let k = |f: &str| format!("issuers[{i}].{f}");
        let name = if r.name.trim().is_empty() {
            format!("issuer{i}")
        } else {
            r.name.trim().to_string()
        };
        if !names.insert(name.clone()) {
            p.push(k("name"), format!("duplicate issuer name {name:?}"));
        }
        let issuer = match (&r.user_pool_id, &r.issuer) {
            (Some(_), Some(_)) => {
                p.push(k("issuer"), "set either user_pool_id or issuer, not both");
                String::new()
            }
            (None, None) => {
                p.push(
                    k("user_pool_id"),
                    "an issuer needs user_pool_id (Cognito) or issuer (any OIDC issuer)",
                );
                String::new()
            }
            (Some(pool), None) => match region_of_pool(pool.trim()) {
                Some(region) => {
                    format!("https://cognito-idp.{region}.amazonaws.com/{}", pool.trim())
                }
                None => {
                    p.push(
                        k("user_pool_id"),
                        format!("{pool:?} is not a user pool id (expected <region>_<id>, e.g. \"ap-south-1_p7GD1CkXO\")"),
                    );
                    String::new()
                }
            },
            (None, Some(iss)) => {
                let iss = iss.trim();
                match reqwest::Url::parse(iss) {
                    Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                        iss.to_string()
                    }
                    _ => {
                        p.push(k("issuer"), format!("invalid issuer URL {iss:?}"));
                        String::new()
                    }
                }
            }
        };
        if !issuer.is_empty() && !iss_seen.insert(issuer.clone()) {
            p.push(
                k("issuer"),
                format!("issuer {issuer:?} is configured twice"),
            );
        }
        let jwks_url = match &r.jwks_url {
            Some(u) => match reqwest::Url::parse(u.trim()) {
                Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => {
                    url.to_string()
                }
                _ => {
                    p.push(k("jwks_url"), format!("invalid URL {u:?}"));
                    String::new()
                }
            },
            None => format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
        };
        let token_use = if r.token_use.iter().any(|t| t == "any") {
            if r.token_use.len() > 1 {
                p.push(
                    k("token_use"),
                    "\"any\" cannot be combined with other kinds",
                );
            }
            TokenUsePolicy::Any
        } else {
            let mut kinds = Vec::new();
            for (j, t) in r.token_use.iter().enumerate() {
                match t.as_str() {
                    "access" => kinds.push(TokenUse::Access),
                    "id" => kinds.push(TokenUse::Id),
                    other => p.push(
                        format!("issuers[{i}].token_use[{j}]"),
                        format!(
                            "unknown token_use {other:?}: expected \"access\", \"id\" or \"any\""
                        ),
                    ),
                }
            }
            if r.token_use.is_empty() {
                p.push(
                    k("token_use"),
                    "must list at least one of \"access\", \"id\", \"any\"",
                );
            }
            TokenUsePolicy::Cognito(kinds)
        };
        if !r.audiences.is_empty() && token_use != TokenUsePolicy::Any {
            p.push(
                k("audiences"),
                "audiences applies to non-Cognito issuers (token_use = [\"any\"]); Cognito tokens are checked with client_ids",
            );
        }
        let mut algorithms = Vec::new();
        for (j, a) in r.algorithms.iter().enumerate() {
            match a.as_str() {
                "RS256" => algorithms.push(Algorithm::RS256),
                "RS384" => algorithms.push(Algorithm::RS384),
                "RS512" => algorithms.push(Algorithm::RS512),
                "PS256" => algorithms.push(Algorithm::PS256),
                "PS384" => algorithms.push(Algorithm::PS384),
                "PS512" => algorithms.push(Algorithm::PS512),
                "ES256" => algorithms.push(Algorithm::ES256),
                "ES384" => algorithms.push(Algorithm::ES384),
                other => p.push(
                    format!("issuers[{i}].algorithms[{j}]"),
                    format!("algorithm {other:?} is not allowed (RS256/384/512, PS256/384/512, ES256, ES384)"),
                ),
            }
        }
        if r.algorithms.is_empty() {
            p.push(k("algorithms"), "must list at least one algorithm");
        }
        for (j, c) in r.client_ids.iter().enumerate() {
            if c.trim().is_empty() {
                p.push(format!("issuers[{i}].client_ids[{j}]"), "empty client id");
            }
        }
        let leeway = p.duration(&k("leeway"), &r.leeway);
        if leeway > Duration::from_secs(600) {
            p.push(k("leeway"), "must be at most 10m");
        }
        let jwks_refresh = p.duration(&k("jwks_refresh"), &r.jwks_refresh);
        if jwks_refresh < Duration::from_secs(1) {
            p.push(k("jwks_refresh"), "must be at least 1s");
        }
        let jwks_min_refetch = p.duration(&k("jwks_min_refetch"), &r.jwks_min_refetch);
        let jwks_timeout = p.duration(&k("jwks_timeout"), &r.jwks_timeout);
        if jwks_timeout.is_zero() {
            p.push(k("jwks_timeout"), "must be greater than zero");
        }
        let jwks_ca_file = r.jwks_ca_file.as_ref().map(|f| {
            if !Path::new(f).is_file() {
                p.push(k("jwks_ca_file"), format!("file {f:?} not found"));
            }
            PathBuf::from(f)
        });
        out.push(IssuerConfig {
            name,
            issuer,
            jwks_url,
            client_ids: r.client_ids.iter().map(|c| c.trim().to_string()).collect(),
            token_use,
            audiences: r.audiences.clone(),
            leeway,
            algorithms,
            jwks_refresh,
            jwks_min_refetch,
            jwks_timeout,
            jwks_ca_file,
        });
    }
    out
}

fn validate_token(p: &mut Problems, raw: &RawToken) -> TokenConfig {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    if let Some(c) = &raw.cookie {
        if !name_ok(c) {
            p.push("token.cookie", format!("invalid cookie name {c:?}"));
        }
    }
    if let Some(q) = &raw.query {
        if !name_ok(q) {
            p.push("token.query", format!("invalid query parameter name {q:?}"));
        }
    }
    if raw.max_bytes < 256 || raw.max_bytes > 64 * 1024 {
        p.push("token.max_bytes", "must be between 256 and 65536");
    }
    TokenConfig {
        cookie: raw.cookie.clone(),
        query: raw.query.clone(),
        websocket_protocol: raw.websocket_protocol,
        max_bytes: raw.max_bytes,
        cache_entries: raw.cache_entries,
    }
}

/// Headers the sidecar owns on the way to the upstream; they can't carry claims.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "cookie",
];

fn validate_forward(p: &mut Problems, raw: &RawForward) -> ForwardConfig {
    let mut seen: HashSet<String> = HashSet::new();
    let mut check_name = |p: &mut Problems, key: &str, name: &HeaderName| {
        let canon = name.as_str().replace('_', "-");
        if RESERVED_HEADERS.contains(&canon.as_str()) {
            p.push(
                key,
                format!("{name} is managed by the sidecar and cannot carry claims"),
            );
        }
        if !seen.insert(canon) {
            p.push(
                key,
                format!("duplicate header name {name} (names are case-insensitive and `_` reads as `-`)"),
            );
        }
    };
    let claims_header = if raw.claims_header.trim().is_empty() {
        None
    } else {
        let h = p.header_name("forward.claims_header", raw.claims_header.trim());
        if let Some(h) = &h {
            check_name(p, "forward.claims_header", h);
        }
        h
    };
    let mut headers = Vec::new();
    for (name, claim) in &raw.headers {
        let key = format!("forward.headers.{name}");
        if let Some(h) = p.header_name(&key, name) {
            check_name(p, &key, &h);
            if claim.trim().is_empty() {
                p.push(&key, "claim name is empty");
            }
            headers.push((h, claim.trim().to_string()));
        }
    }
    ForwardConfig {
        strip_authorization: raw.strip_authorization,
        claims_header,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[upstream]
url = "http://127.0.0.1:5000"
[[issuers]]
user_pool_id = "ap-south-1_p7GD1CkXO"
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str("test.toml", text, &[])
    }

    fn problems(text: &str) -> Vec<Problem> {
        load(text).expect_err("config should be refused").problems
    }

    #[test]
    fn minimal_config_derives_cognito_issuer_and_jwks() {
        let c = load(MIN).unwrap();
        assert_eq!(
            c.issuers[0].issuer,
            "https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_p7GD1CkXO"
        );
        assert_eq!(
            c.issuers[0].jwks_url,
            "https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_p7GD1CkXO/.well-known/jwks.json"
        );
        assert_eq!(c.issuers[0].algorithms, vec![Algorithm::RS256]);
        assert_eq!(c.default.auth, AuthMode::Required);
        assert_eq!(c.forward.headers.len(), 5);
        assert_eq!(c.listener.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let p = problems(&format!(
            "{MIN}\n[[routes]]\npath = \"/a\"\nscope = [\"x\"]\n"
        ));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "routes[0].scope");
        assert!(p[0].reason.starts_with("unknown key"), "{:?}", p[0]);
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let text = r#"
[listener]
address = "nowhere"
header_read_timeout = "ten seconds"
[upstream]
url = "ftp://x"
[[issuers]]
name = "a"
[forward.headers]
"X-Auth-Sub" = "sub"
"x_auth_sub" = "username"
"#;
        let p = problems(text);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "listener.address",
            "listener.header_read_timeout",
            "upstream.url",
            "issuers[0].user_pool_id",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        assert!(
            p.iter().any(|p| p.reason.contains("duplicate header name")),
            "{p:?}"
        );
        let shown = load(text).unwrap_err().to_string();
        assert!(shown.starts_with("test.toml: "), "{shown}");
    }

    #[test]
    fn hs256_and_none_are_config_errors() {
        let p = problems(&format!("{MIN}algorithms = [\"HS256\", \"none\"]\n"));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].key, "issuers[0].algorithms[0]");
    }

    #[test]
    fn env_overrides_index_into_arrays_and_name_the_variable() {
        let env = vec![
            (
                "SIDECAR_UPSTREAM__URL".to_string(),
                "http://127.0.0.1:7000".to_string(),
            ),
            (
                "SIDECAR_ISSUERS__0__USER_POOL_ID".to_string(),
                "eu-west-1_Abc".to_string(),
            ),
            (
                "SIDECAR_ISSUERS__0__CLIENT_IDS".to_string(),
                "[\"123\"]".to_string(),
            ),
            ("SIDECAR_CONFIG".to_string(), "ignored.toml".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let c = Config::from_toml_str("t.toml", MIN, &env).unwrap();
        assert_eq!(c.upstream.url, "http://127.0.0.1:7000");
        assert_eq!(
            c.issuers[0].issuer,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
        );
        assert_eq!(c.issuers[0].client_ids, vec!["123".to_string()]);

        let env = vec![("SIDECAR_LISTENER__BOGUS".to_string(), "1".to_string())];
        let e = Config::from_toml_str("t.toml", MIN, &env).unwrap_err();
        assert_eq!(
            e.problems[0].key,
            "listener.bogus (from env SIDECAR_LISTENER__BOGUS)"
        );
    }

    #[test]
    fn env_can_create_an_issuer_without_a_file_entry() {
        let env = vec![(
            "SIDECAR_ISSUERS__0__USER_POOL_ID".to_string(),
            "us-east-1_X1".to_string(),
        )];
        let c = Config::from_toml_str("t.toml", "[upstream]\nurl=\"http://127.0.0.1:1\"\n", &env)
            .unwrap();
        assert_eq!(c.issuers.len(), 1);
    }

    #[test]
    fn required_without_issuers_is_an_error() {
        let p = problems("[upstream]\nurl = \"http://127.0.0.1:1\"\n");
        assert_eq!(p[0].key, "default.auth");
        assert!(
            load("[upstream]\nurl = \"http://127.0.0.1:1\"\n[default]\nauth = \"public\"\n")
                .is_ok()
        );
    }

    #[test]
    fn key_paths_render_indices() {
        let p: Vec<String> = ["routes", "2", "scopes"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(key_path(&p), "routes[2].scopes");
    }

    #[test]
    fn bad_toml_is_reported_with_the_source() {
        let e = load("[listener\n").unwrap_err();
        assert!(e.to_string().starts_with("test.toml"), "{e}");
    }
}
