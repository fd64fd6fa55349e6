//! Configuration: loading (figment: a TOML file plus `SIDECAR_` environment overrides) and
//! validation into [`Config`], a tree of parsed types that nothing downstream parses again.
//!
//! Loading is two-staged. [`RawConfig`] (`raw`) mirrors the file (serde, unknown keys are
//! errors); [`Config::from_raw`] (`load`) validates it, one module per section, into
//! [`Config`] (`root`), whose sections are the shapes of `model`. Every problem found is
//! reported, each with its key path (`routes[2].scopes`), so `check` can show them all at
//! once. The string-valued settings are enums in `types`, each parsed in one place; `env`
//! is the environment overlay, `problems` the error types, `render` the effective config
//! that `check` prints. This module only declares the parts and re-exports their names.

mod authz;
mod env;
mod forward;
mod issuers;
mod listener;
mod load;
mod login;
mod model;
mod problems;
mod raw;
mod render;
mod root;
mod routes;
mod token;
mod tracing;
pub mod types;
mod upstream;

pub use authz::GRPC_CHECK_PATH;
pub use env::{ENV_CONFIG_FILE, ENV_PREFIX};
pub use model::{
    AdminConfig, AlbIssuerConfig, AuthzConfig, AuthzListen, CognitoPool, DefaultPolicy,
    ForwardConfig, IssuerConfig, ListenerConfig, LogConfig, LoginConfig, RevocationPolicy,
    RuntimeConfig, TlsFiles, TokenConfig, TracingConfig, UpstreamConfig,
};
pub use problems::{ConfigError, Problem};
pub use raw::{
    RawAdmin, RawConfig, RawDefault, RawForward, RawIssuer, RawListener, RawLog, RawRateLimit,
    RawRoute, RawRuntime, RawTls, RawToken, RawTracing, RawUpstream,
};
pub use render::effective;
pub use root::Config;
pub use types::{
    idp_endpoint, parse_algorithm, pool_issuer, region_of_pool, AuthMode, AuthzProtocol, Fallback,
    IssuerForm, IssuerKind, LogFormat, OtlpProtocol, PathCase, Preflight, RevocationMode, TokenUse,
    TokenUsePolicy, UnknownValue, UpstreamProtocol, ALGORITHM_NAMES,
};

#[cfg(test)]
mod tests;
