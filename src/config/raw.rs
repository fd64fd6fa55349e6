//! The config file as written: serde shapes for every section, with their defaults. Unknown
//! keys are errors; every value that needs parsing (durations, addresses, enum names) stays a
//! string here so that validation can report every problem at once, each under its key.
//!
//! Owns the schema (the key names and defaults). Validation lives in the per-section
//! modules; the validated shapes in `model`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{
    AuthMode, AuthzProtocol, IssuerKind, LogFormat, PathCase, Preflight, UpstreamProtocol,
};

/// Declares a section whose every key is optional: the struct (unknown keys refused, missing
/// ones defaulted) and its `Default`, from one list that gives each key's default beside it.
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* $field:ident: $ty:ty = $default:expr,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)+
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $default,)+
                }
            }
        }
    };
}

section! {
    /// The config file as written.
    pub struct RawConfig {
        listener: RawListener = RawListener::default(),
        runtime: RawRuntime = RawRuntime::default(),
        admin: RawAdmin = RawAdmin::default(),
        upstream: RawUpstream = RawUpstream::default(),
        issuers: Vec<RawIssuer> = Vec::new(),
        default: RawDefault = RawDefault::default(),
        routes: Vec<RawRoute> = Vec::new(),
        token: RawToken = RawToken::default(),
        forward: RawForward = RawForward::default(),
        log: RawLog = RawLog::default(),
        authz: RawAuthz = RawAuthz::default(),
        login: RawLogin = RawLogin::default(),
        tracing: RawTracing = RawTracing::default(),
    }
}

section! {
    /// `[tracing]`: W3C trace context propagation, and OTLP span export when an endpoint
    /// is set (here or in `OTEL_EXPORTER_OTLP_*`).
    pub struct RawTracing {
        otlp_endpoint: Option<String> = None,
        otlp_protocol: Option<String> = None,
        trust_incoming: bool = true,
        propagate: bool = true,
        sample_ratio: f64 = 1.0,
        max_queue_size: usize = 2048,
        schedule_delay: String = "5s".into(),
    }
}

section! {
    /// `[login]`: browser sign-in through the pool's managed login; off while `domain` is
    /// empty.
    pub struct RawLogin {
        domain: String = String::new(),
        issuer: String = String::new(),
        client_id: String = String::new(),
        client_secret: Option<String> = None,
        scopes: Vec<String> = vec!["openid".into(), "email".into()],
        callback_path: String = "/oauth2/idpresponse".into(),
        sign_out_path: String = "/oauth2/sign_out".into(),
        external_url: String = String::new(),
        cookie_keys: Vec<String> = Vec::new(),
        cookie_keys_file: Option<String> = None,
        cookie_name: String = "sidecar_session".into(),
        insecure_cookies: bool = false,
        max_cookie_bytes: usize = 8192,
        refresh_before: String = "5m".into(),
        session_lifetime: String = "12h".into(),
        pass_access_token: bool = false,
        token_timeout: String = "5s".into(),
    }
}

section! {
    /// `[authz]`: the decision listener for front proxies; off while `address` is empty.
    pub struct RawAuthz {
        address: String = String::new(),
        protocol: String = AuthzProtocol::Nginx.to_string(),
        trusted_proxies: Vec<String> = vec!["127.0.0.0/8".into(), "::1/128".into()],
        path_prefix: String = String::new(),
        socket_mode: String = "0600".into(),
    }
}

section! {
    pub struct RawListener {
        address: String = "0.0.0.0:8080".into(),
        header_read_timeout: String = "10s".into(),
        tls: Option<RawTls> = None,
        max_connections: usize = 10_000,
        max_header_bytes: usize = 32 * 1024,
        drain_timeout: String = "30s".into(),
    }
}

/// `listener.tls`: both files are required.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

section! {
    pub struct RawRuntime {
        /// 0 = one worker per core.
        worker_threads: usize = 0,
        release_startup_code: bool = true,
    }
}

section! {
    pub struct RawAdmin {
        /// `""` turns the admin listener off.
        address: String = "127.0.0.1:9901".into(),
    }
}

section! {
    pub struct RawUpstream {
        /// Required (validation says so, with the other problems).
        url: String = String::new(),
        protocol: String = UpstreamProtocol::Http1.to_string(),
        connect_timeout: String = "2s".into(),
        request_timeout: String = "30s".into(),
        ca_file: Option<String> = None,
        pool_idle_timeout: String = "90s".into(),
        pool_max_idle: usize = 256,
        /// 0 = no limit.
        max_connections: usize = 0,
        /// 0 = off; ignored when max_connections is set.
        soft_max_connections: usize = 32,
        soft_max_wait: String = "20ms".into(),
    }
}

section! {
    /// One `[[issuers]]` entry. `kind = "jwks"` (the default) needs `user_pool_id` or
    /// `issuer`; `kind = "alb"` needs `region` and `signer_arns`. The keys of one kind are
    /// refused on the other (`issuers::KIND_KEYS`), so the ones with a default are options
    /// here, their defaults given in `issuers` (`None` = not written).
    pub struct RawIssuer {
        name: String = String::new(),
        kind: String = IssuerKind::Jwks.to_string(),
        user_pool_id: Option<String> = None,
        issuer: Option<String> = None,
        jwks_url: Option<String> = None,
        client_ids: Vec<String> = Vec::new(),
        /// Default `["access", "id"]`.
        token_use: Option<Vec<String>> = None,
        audiences: Option<Vec<String>> = None,
        leeway: String = "60s".into(),
        /// Default `["RS256"]`.
        algorithms: Option<Vec<String>> = None,
        /// Default `"15m"`.
        jwks_refresh: Option<String> = None,
        /// Default `"30s"`.
        jwks_min_refetch: Option<String> = None,
        /// Default `"5s"`.
        jwks_timeout: Option<String> = None,
        jwks_ca_file: Option<String> = None,
        /// `user_pool_id` only: which `iss` form the pool issues. Default `"original"`.
        issuer_form: Option<String> = None,
        /// Default `"off"`.
        revocation: Option<String> = None,
        /// Default `"60s"`.
        revocation_recheck: Option<String> = None,
        /// Default `"2s"`.
        revocation_timeout: Option<String> = None,
        /// Default `"deny"`.
        revocation_unavailable: Option<String> = None,
        /// Default: the pool's region's IdP endpoint.
        revocation_endpoint: Option<String> = None,
        /// Default `"allow"`.
        revocation_unscoped: Option<String> = None,
        /// Default `"allow"`.
        revocation_id_tokens: Option<String> = None,
        revoked_file: Option<String> = None,
        /// `kind = "alb"`: the ALB's region (required).
        region: Option<String> = None,
        /// `kind = "alb"`: the ARNs of the load balancers trusted to sign (required).
        signer_arns: Option<Vec<String>> = None,
        /// `kind = "alb"`: where keys are fetched (`<keys_url>/<kid>`). Default: the region's
        /// `https://public-keys.auth.elb.<region>.amazonaws.com`.
        keys_url: Option<String> = None,
        /// Default `"5s"`.
        keys_timeout: Option<String> = None,
        /// Default 64.
        keys_cache: Option<usize> = None,
        /// Default `"10s"`.
        keys_min_refetch: Option<String> = None,
    }
}

section! {
    /// `[default]`: the policy for requests no route matches, and how routes match.
    pub struct RawDefault {
        auth: String = AuthMode::Required.to_string(),
        preflight: String = Preflight::Check.to_string(),
        path_case: String = PathCase::Insensitive.to_string(),
    }
}

/// One `[[routes]]` entry as written; `path` is required.
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
    /// A CEL condition over `claims` and `request` (`crate::condition`).
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
}

/// A route's `rate_limit = { key, requests, per, burst, max_keys }` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub key: String,
    pub requests: u64,
    pub per: String,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub max_keys: Option<u64>,
}

fn default_auth() -> String {
    AuthMode::Required.to_string()
}

section! {
    pub struct RawToken {
        cookie: Option<String> = None,
        query: Option<String> = None,
        /// A header holding the bare token (an ALB's `x-amzn-oidc-accesstoken`).
        header: Option<String> = None,
        websocket_protocol: bool = false,
        max_bytes: usize = 8 * 1024,
        cache_entries: usize = 10_000,
    }
}

section! {
    pub struct RawForward {
        strip_authorization: bool = false,
        /// `""` = no claims header.
        claims_header: String = "X-Auth-Claims".into(),
        /// header = claim.
        headers: BTreeMap<String, String> = default_headers(),
    }
}

fn default_headers() -> BTreeMap<String, String> {
    [
        ("X-Auth-Sub", "sub"),
        ("X-Auth-Client-Id", "client_id"),
        ("X-Auth-Scope", "scope"),
        ("X-Auth-Groups", "cognito:groups"),
        ("X-Auth-Username", "username"),
    ]
    .into_iter()
    .map(|(h, c)| (h.to_string(), c.to_string()))
    .collect()
}

section! {
    pub struct RawLog {
        format: String = LogFormat::Text.to_string(),
    }
}
