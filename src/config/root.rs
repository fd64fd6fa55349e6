//! The root of the validated configuration: [`Config`], every section (`model`) plus the
//! compiled route table (`crate::routes`). Built only by the loader (`Config::load`,
//! `Config::from_raw`, in `load`); printed by `render`.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use super::model::{
    AdminConfig, AlbIssuerConfig, AuthzConfig, DefaultPolicy, ForwardConfig, IssuerConfig,
    ListenerConfig, LogConfig, LoginConfig, RuntimeConfig, TokenConfig, TracingConfig,
    UpstreamConfig,
};
use super::types::{AuthMode, TokenUse};
use crate::routes::{RouteTable, Rule};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (file path or a description), for messages.
    pub source: String,
    pub listener: ListenerConfig,
    pub runtime: RuntimeConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    /// The `[[issuers]]` verified by JWKS (`kind = "jwks"`, the default).
    pub issuers: Vec<IssuerConfig>,
    /// The `[[issuers]]` with `kind = "alb"`: no JWKS, keys fetched by `kid`.
    pub alb_issuers: Vec<AlbIssuerConfig>,
    pub default: DefaultPolicy,
    pub routes: RouteTable,
    pub token: TokenConfig,
    pub forward: ForwardConfig,
    pub log: LogConfig,
    pub authz: AuthzConfig,
    /// `[login]`; `None` when off.
    pub login: Option<LoginConfig>,
    pub tracing: TracingConfig,
}

impl Config {
    /// Decision-only mode: `[authz] address` set and no `[upstream] url`. The proxy listener
    /// is not bound; the sidecar only answers front proxies.
    pub fn decision_only(&self) -> bool {
        self.upstream.url.is_none()
    }
}

/// [`Config`] as printed: the schema's sections in order, `[[issuers]]` of both kinds in file
/// order.
#[derive(Serialize)]
struct ConfigView<'a> {
    listener: &'a ListenerConfig,
    runtime: &'a RuntimeConfig,
    admin: &'a AdminConfig,
    upstream: &'a UpstreamConfig,
    issuers: Vec<IssuerView<'a>>,
    default: &'a DefaultPolicy,
    #[serde(serialize_with = "routes")]
    routes: &'a RouteTable,
    token: &'a TokenConfig,
    forward: &'a ForwardConfig,
    log: &'a LogConfig,
    authz: &'a AuthzConfig,
    login: LoginView<'a>,
    tracing: &'a TracingConfig,
}

/// `[login]` as printed: the validated settings, or (off) the defaults with `domain = ""`.
#[derive(Serialize)]
#[serde(untagged)]
enum LoginView<'a> {
    On(&'a LoginConfig),
    Off(Box<super::raw::RawLogin>),
}

#[derive(Serialize)]
#[serde(untagged)]
enum IssuerView<'a> {
    Jwks(&'a IssuerConfig),
    Alb(&'a AlbIssuerConfig),
}

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut issuers: Vec<(usize, IssuerView<'_>)> = self
            .issuers
            .iter()
            .map(|i| (i.position, IssuerView::Jwks(i)))
            .chain(
                self.alb_issuers
                    .iter()
                    .map(|i| (i.position, IssuerView::Alb(i))),
            )
            .collect();
        issuers.sort_by_key(|(pos, _)| *pos);
        ConfigView {
            listener: &self.listener,
            runtime: &self.runtime,
            admin: &self.admin,
            upstream: &self.upstream,
            issuers: issuers.into_iter().map(|(_, v)| v).collect(),
            default: &self.default,
            routes: &self.routes,
            token: &self.token,
            forward: &self.forward,
            log: &self.log,
            authz: &self.authz,
            login: match &self.login {
                Some(l) => LoginView::On(l),
                None => LoginView::Off(Box::default()),
            },
            tracing: &self.tracing,
        }
        .serialize(s)
    }
}

impl Config {
    /// Whether any route (or the default) needs a verified token.
    pub fn needs_keys(&self) -> bool {
        !self.issuers.is_empty() || !self.alb_issuers.is_empty()
    }

    /// Settings that are valid but do not do what they seem to, one sentence each, naming
    /// the key: `check` prints them and the sidecar logs them when it starts or reloads.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for iss in &self.issuers {
            let i = iss.position;
            if iss.jwks_refresh < iss.jwks_min_refetch {
                out.push(format!(
                    "issuers[{i}].jwks_refresh ({}) is shorter than jwks_min_refetch ({}): keys are refreshed every {}, since no fetch comes sooner than jwks_min_refetch",
                    humantime::format_duration(iss.jwks_refresh),
                    humantime::format_duration(iss.jwks_min_refetch),
                    humantime::format_duration(iss.jwks_min_refetch),
                ));
            }
        }
        out
    }
}

/// `[[routes]]` as printed, from a compiled rule.
#[derive(Serialize)]
struct RouteView<'a> {
    path: &'a str,
    methods: Option<Vec<&'a str>>,
    auth: AuthMode,
    scopes: &'a [String],
    scopes_any: &'a [String],
    groups_any: &'a [String],
    token_use: Option<TokenUse>,
    client_ids: &'a Option<Vec<String>>,
    when: Option<&'a str>,
    rate_limit: Option<RateLimitView>,
}

/// A route's `rate_limit` as printed (defaults filled in).
#[derive(Serialize)]
struct RateLimitView {
    key: &'static str,
    requests: u32,
    per: String,
    burst: u32,
    max_keys: usize,
}

fn routes<S: Serializer>(table: &&RouteTable, s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(table.rules().len()))?;
    for r in table.rules() {
        seq.serialize_element(&route_view(r))?;
    }
    seq.end()
}

fn route_view(r: &Rule) -> RouteView<'_> {
    RouteView {
        path: &r.label,
        methods: r
            .methods
            .as_ref()
            .map(|ms| ms.iter().map(http::Method::as_str).collect()),
        auth: r.auth,
        scopes: &r.scopes,
        scopes_any: &r.scopes_any,
        groups_any: &r.groups_any,
        token_use: r.token_use,
        client_ids: &r.client_ids,
        when: r
            .condition
            .as_deref()
            .map(crate::condition::Condition::source),
        rate_limit: r.rate_limit.as_ref().map(|l| RateLimitView {
            key: l.key.as_str(),
            requests: l.requests.get(),
            per: humantime::format_duration(l.per).to_string(),
            burst: l.burst.get(),
            max_keys: l.max_keys,
        }),
    }
}
