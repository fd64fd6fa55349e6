//! Loading: a TOML file (figment), the `SIDECAR_` environment overlay, deserialisation into
//! [`RawConfig`] and validation, section by section, into [`Config`]. Every problem found
//! is reported, each with its key path (`routes[2].scopes`), so `check` can show them all.
//!
//! What each section must satisfy is left to its validator module.

use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use figment::Figment;

use super::authz::validate_authz;
use super::env::apply_env;
use super::forward::validate_forward;
use super::issuers::{validate_issuers, Issuers};
use super::listener::{validate_admin, validate_listener, validate_runtime};
use super::login::validate_login;
use super::model::LogConfig;
use super::problems::{figment_problems, ConfigError, Problem, Problems};
use super::raw::RawConfig;
use super::root::Config;
use super::routes::{validate_default, validate_routes};
use super::token::validate_token;
use super::tracing::validate_tracing;
use super::types::{AuthMode, LogFormat};
use super::upstream::validate_upstream;

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
        let env_keys = apply_env(&mut dict, env).map_err(|p| fail(vec![p]))?;
        // Lossy: a string (every scalar set from the environment is one) reads as a number
        // or a boolean where the schema has one.
        let raw: RawConfig = Figment::from(Serialized::defaults(dict))
            .extract_lossy()
            .map_err(|e| fail(figment_problems(e, &env_keys)))?;
        Config::from_raw_with_env(source, &raw, env)
    }

    /// Validates a raw config; reports every problem found.
    pub fn from_raw(source: &str, raw: &RawConfig) -> Result<Config, ConfigError> {
        Config::from_raw_with_env(source, raw, &[])
    }

    /// Validates a raw config, with `env` for the `OTEL_*` variables `[tracing]` honours.
    pub fn from_raw_with_env(
        source: &str,
        raw: &RawConfig,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let listener = validate_listener(&mut p, &raw.listener);
        let runtime = validate_runtime(&mut p, &raw.runtime);
        let admin = validate_admin(&mut p, &raw.admin, listener.address);
        let decision_only_allowed = !raw.authz.address.trim().is_empty();
        let upstream = validate_upstream(&mut p, &raw.upstream, decision_only_allowed);
        let Issuers {
            jwks: issuers,
            alb: alb_issuers,
        } = validate_issuers(&mut p, &raw.issuers);
        let has_issuers = !issuers.is_empty() || !alb_issuers.is_empty();
        let default = validate_default(&mut p, &raw.default, has_issuers);
        let routes = validate_routes(&mut p, &raw.routes, &default, &issuers, has_issuers);
        let mut token = validate_token(&mut p, &raw.token);
        token.alb_data = !alb_issuers.is_empty();
        if let (Some(h), Some(alb)) = (&token.header, alb_issuers.first()) {
            p.push(
                "token.header",
                format!(
                    "{h} cannot be a token source beside an ALB issuer (issuers[{}].kind = \"alb\" reads x-amzn-oidc-data): one way at a time",
                    alb.position
                ),
            );
        }
        let forward = validate_forward(&mut p, &raw.forward);
        let authz = validate_authz(&mut p, &raw.authz, listener.address, admin.address);
        if let Some(h) = &token.header {
            let identity = forward.headers.iter().any(|(name, _)| name == h)
                || forward.claims_header.as_ref() == Some(h);
            if identity {
                p.push(
                    "token.header",
                    format!("{h} is an identity header ([forward]): the sidecar sets it, so it cannot also carry the token"),
                );
            }
        }
        let login = validate_login(&mut p, &raw.login, &issuers);
        if login.is_none() {
            for (i, r) in raw.routes.iter().enumerate() {
                if r.auth.trim() == AuthMode::Login.as_str() {
                    p.push(
                        format!("routes[{i}].auth"),
                        "\"login\" needs [login] (domain, client_id, cookie_keys)",
                    );
                }
            }
            if raw.default.auth.trim() == AuthMode::Login.as_str() {
                p.push(
                    "default.auth",
                    "\"login\" needs [login] (domain, client_id, cookie_keys)",
                );
            }
        }
        let tracing = validate_tracing(&mut p, &raw.tracing, env);
        let log = LogConfig {
            format: p.parse("log.format", &raw.log.format, LogFormat::Text),
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
            alb_issuers,
            default,
            routes,
            token,
            forward,
            log,
            authz,
            login,
            tracing,
        })
    }
}
