//! The validated sections: parsed types that nothing downstream parses again. Built only by
//! the section validators. Imports nothing of the crate but `types`, so the code that uses
//! one section (the key store takes an [`IssuerConfig`]) stays clear of the route table that
//! the whole [`Config`](super::Config) holds.
//!
//! Each struct serialises under the schema's key names (durations as `"15m"`, addresses,
//! URLs, header names and paths as strings, enums by their config spelling, unset options as
//! `null`) so that `check` prints the effective config from these types and cannot drift
//! from them. A secret, should one be added, must serialise redacted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderName;
use http::Uri;
use jsonwebtoken::Algorithm;
use serde::ser::Serializer;
use serde::Serialize;

use super::types::{
    pool_issuer, AuthMode, AuthzProtocol, Fallback, IssuerForm, IssuerKind, LogFormat, PathCase,
    Preflight, RevocationMode, TokenUsePolicy, UpstreamProtocol,
};

#[derive(Debug, Clone, Serialize)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    #[serde(serialize_with = "duration")]
    pub header_read_timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    #[serde(serialize_with = "duration")]
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeConfig {
    /// 0 = one worker per core.
    pub worker_threads: usize,
    /// Once ready, drop the resident pages of code that only ran at start
    /// (`crate::memory`).
    pub release_startup_code: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    /// `None` when `admin.address = ""` (admin listener off).
    #[serde(serialize_with = "display_or_empty")]
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamConfig {
    /// `None` only in decision-only mode (`[authz] address` set, no `url`): no proxy
    /// listener, nothing is forwarded.
    #[serde(serialize_with = "display_or_empty")]
    pub url: Option<Uri>,
    pub protocol: UpstreamProtocol,
    #[serde(serialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "duration")]
    pub request_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    #[serde(serialize_with = "duration")]
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// At most this many requests in flight to the upstream at once (each holds one
    /// connection); `0` = no limit.
    pub max_connections: usize,
    /// Without `max_connections`: requests beyond this many in flight first wait, at most
    /// `soft_max_wait`, for one to finish, then go ahead on a connection of their own;
    /// `0` = off.
    pub soft_max_connections: usize,
    #[serde(serialize_with = "duration")]
    pub soft_max_wait: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub name: String,
    /// Its index in the file's `[[issuers]]` (for messages and printing in file order).
    pub position: usize,
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
    /// The Cognito user pool behind `issuer`, when the issuer is given by `user_pool_id`.
    pub pool: Option<CognitoPool>,
    pub revocation: RevocationPolicy,
    /// The deny list (`revoked_file`).
    pub revoked_file: Option<PathBuf>,
}

/// A Cognito user pool: its id, region and issuer form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoPool {
    pub id: String,
    pub region: String,
    pub form: IssuerForm,
}

impl CognitoPool {
    /// The `iss` of the pool in the other form than the configured one, and that form: a
    /// token carrying it is still refused, with a hint.
    pub fn other_form(&self) -> (IssuerForm, String) {
        let other = match self.form {
            IssuerForm::Original => IssuerForm::Updated,
            IssuerForm::Updated => IssuerForm::Original,
        };
        (other, pool_issuer(other, &self.region, &self.id))
    }
}

/// The revocation settings of an issuer (`revocation*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationPolicy {
    #[serde(rename = "revocation")]
    pub mode: RevocationMode,
    /// How long an "active" answer holds.
    #[serde(rename = "revocation_recheck", serialize_with = "duration")]
    pub recheck: Duration,
    /// Limit for one check.
    #[serde(rename = "revocation_timeout", serialize_with = "duration")]
    pub timeout: Duration,
    /// What a token gets when the pool cannot be asked.
    #[serde(rename = "revocation_unavailable")]
    pub unavailable: Fallback,
    /// Where `GetUser` is sent; `None` only when revocation is off and no pool is known.
    #[serde(rename = "revocation_endpoint")]
    pub endpoint: Option<String>,
    /// What an access token without `aws.cognito.signin.user.admin` gets.
    #[serde(rename = "revocation_unscoped")]
    pub unscoped: Fallback,
    /// What an ID token gets (`GetUser` cannot check one).
    #[serde(rename = "revocation_id_tokens")]
    pub id_tokens: Fallback,
}

impl RevocationPolicy {
    pub fn is_online(&self) -> bool {
        self.mode == RevocationMode::Online
    }
}

/// `[[issuers]]` as printed: the schema's keys, `user_pool_id` recovered from a Cognito
/// `issuer` (which is shown too, as derived).
#[derive(Serialize)]
struct IssuerView<'a> {
    name: &'a str,
    kind: IssuerKind,
    user_pool_id: Option<&'a str>,
    issuer: &'a str,
    jwks_url: &'a str,
    client_ids: &'a [String],
    token_use: &'a TokenUsePolicy,
    audiences: &'a [String],
    #[serde(serialize_with = "duration")]
    leeway: &'a Duration,
    algorithms: &'a [Algorithm],
    #[serde(serialize_with = "duration")]
    jwks_refresh: &'a Duration,
    #[serde(serialize_with = "duration")]
    jwks_min_refetch: &'a Duration,
    #[serde(serialize_with = "duration")]
    jwks_timeout: &'a Duration,
    jwks_ca_file: &'a Option<PathBuf>,
    issuer_form: Option<IssuerForm>,
    #[serde(flatten)]
    revocation: &'a RevocationPolicy,
    revoked_file: &'a Option<PathBuf>,
}

impl Serialize for IssuerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        IssuerView {
            name: &self.name,
            kind: IssuerKind::Jwks,
            user_pool_id: self.pool.as_ref().map(|p| p.id.as_str()),
            issuer: &self.issuer,
            jwks_url: &self.jwks_url,
            client_ids: &self.client_ids,
            token_use: &self.token_use,
            audiences: &self.audiences,
            leeway: &self.leeway,
            algorithms: &self.algorithms,
            jwks_refresh: &self.jwks_refresh,
            jwks_min_refetch: &self.jwks_min_refetch,
            jwks_timeout: &self.jwks_timeout,
            jwks_ca_file: &self.jwks_ca_file,
            issuer_form: self.pool.as_ref().map(|p| p.form),
            revocation: &self.revocation,
            revoked_file: &self.revoked_file,
        }
        .serialize(s)
    }
}

/// An `[[issuers]]` entry with `kind = "alb"`: an AWS Application Load Balancer's
/// `authenticate-cognito` / `authenticate-oidc` action, whose `x-amzn-oidc-data` JWT (ES256,
/// padded base64url) is verified against the ALB's public key, fetched by `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlbIssuerConfig {
    pub name: String,
    #[serde(skip)]
    pub position: usize,
    pub kind: IssuerKind,
    /// The ALB's region; every signer is in it.
    pub region: String,
    /// The load balancers trusted to sign, by exact ARN (the header's `signer`).
    pub signer_arns: Vec<String>,
    /// When set, the header's `iss` (the IdP's issuer URL) must equal it.
    pub issuer: Option<String>,
    /// When not empty, the header's `client` must be one of these.
    pub client_ids: Vec<String>,
    #[serde(serialize_with = "duration")]
    pub leeway: Duration,
    /// Keys are fetched from `<keys_url>/<kid>` (no trailing slash here).
    pub keys_url: String,
    #[serde(serialize_with = "duration")]
    pub keys_timeout: Duration,
    /// At most this many keys kept (by `kid`).
    pub keys_cache: usize,
    /// A `kid` the key server did not serve (or could not) is not asked for again within
    /// this, and at most 10 key fetches happen per this period.
    #[serde(serialize_with = "duration")]
    pub keys_min_refetch: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct DefaultPolicy {
    pub auth: AuthMode,
    /// Forward CORS preflights without a token.
    #[serde(rename = "preflight", serialize_with = "preflight")]
    pub preflight_forward: bool,
    pub path_case: PathCase,
}

/// `[login]`: browser sign-in (authorization code + PKCE) through the pool's managed login.
#[derive(Debug, Clone, Serialize)]
pub struct LoginConfig {
    /// E.g. `https://<prefix>.auth.<region>.amazoncognito.com`, without a trailing `/`.
    pub domain: String,
    /// The `[[issuers]]` entry (by name) that verifies the session's tokens.
    pub issuer: String,
    /// Its index in `Config::issuers`.
    #[serde(skip)]
    pub issuer_index: usize,
    pub client_id: String,
    #[serde(serialize_with = "redacted_opt")]
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub callback_path: String,
    pub sign_out_path: String,
    /// The origin browsers see, e.g. `https://app.example.com`; `None`: from the request.
    pub external_url: Option<String>,
    #[serde(serialize_with = "redacted_keys")]
    pub cookie_keys: std::sync::Arc<crate::session::CookieKeys>,
    /// Where the keys came from, when a file.
    pub cookie_keys_file: Option<std::path::PathBuf>,
    pub cookie_name: String,
    pub insecure_cookies: bool,
    pub max_cookie_bytes: usize,
    #[serde(serialize_with = "duration")]
    pub refresh_before: Duration,
    #[serde(serialize_with = "duration")]
    pub session_lifetime: Duration,
    pub pass_access_token: bool,
    #[serde(serialize_with = "duration")]
    pub token_timeout: Duration,
}

fn redacted_opt<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("(set)"),
        None => s.serialize_none(),
    }
}

fn redacted_keys<S: Serializer>(
    k: &std::sync::Arc<crate::session::CookieKeys>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(k.len()))?;
    for _ in 0..k.len() {
        seq.serialize_element("(key)")?;
    }
    seq.end()
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenConfig {
    pub cookie: Option<String>,
    pub query: Option<String>,
    #[serde(serialize_with = "display_opt")]
    pub header: Option<HeaderName>,
    pub websocket_protocol: bool,
    pub max_bytes: usize,
    pub cache_entries: usize,
    /// Whether `x-amzn-oidc-data` is a token source: set when an ALB issuer is configured
    /// (not a key of its own).
    #[serde(skip)]
    pub alb_data: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardConfig {
    pub strip_authorization: bool,
    #[serde(serialize_with = "display_or_empty")]
    pub claims_header: Option<HeaderName>,
    /// (header, claim) in a stable order.
    #[serde(serialize_with = "header_map")]
    pub headers: Vec<(HeaderName, String)>,
}

/// `[tracing]` with the `OTEL_*` variables applied (`config/tracing.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct TracingConfig {
    /// The URL spans are exported to (for HTTP: with `/v1/traces`); `None`: no export.
    #[serde(serialize_with = "display_or_empty")]
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: super::types::OtlpProtocol,
    pub trust_incoming: bool,
    pub propagate: bool,
    pub sample_ratio: f64,
    pub max_queue_size: usize,
    #[serde(serialize_with = "duration")]
    pub schedule_delay: Duration,
    /// `OTEL_SERVICE_NAME` (not a key).
    #[serde(skip)]
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (not a key; may hold credentials: never printed).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (not a key).
    #[serde(skip)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `[authz]`: the decision listener.
#[derive(Debug, Clone, Serialize)]
pub struct AuthzConfig {
    /// `None` when off (`address = ""`).
    #[serde(serialize_with = "display_or_empty")]
    pub address: Option<AuthzListen>,
    /// The Unix socket's file mode (who may connect), e.g. `0o660`.
    #[serde(serialize_with = "octal_mode")]
    pub socket_mode: u32,
    pub protocol: AuthzProtocol,
    /// Peers whose original-request headers are believed.
    #[serde(serialize_with = "display_all")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `envoy`: stripped from the check request's path.
    pub path_prefix: String,
}

/// Where the decision listener listens: `IP:PORT`, or `unix:<path>` (a Unix socket, for a
/// front proxy on the same host: no TCP, and the file's mode says who may connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzListen {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for AuthzListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthzListen::Tcp(a) => write!(f, "{a}"),
            AuthzListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

fn octal_mode<S: Serializer>(m: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{m:04o}"))
}

impl AuthzConfig {
    /// The TCP address, when the decision listener is on one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match &self.address {
            Some(AuthzListen::Tcp(a)) => Some(*a),
            _ => None,
        }
    }

    /// Whether `ip` may speak for the original request.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// An optional value whose schema spelling for "off" is `""`.
fn display_or_empty<S: Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}

fn display_opt<S: Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn display_all<S: Serializer, T: std::fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

fn preflight<S: Serializer>(forward: &bool, s: S) -> Result<S::Ok, S::Error> {
    let p = if *forward {
        Preflight::Forward
    } else {
        Preflight::Check
    };
    p.serialize(s)
}

fn header_map<S: Serializer>(headers: &[(HeaderName, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(headers.iter().map(|(h, c)| (h.as_str(), c)))
}
