//! Problems in a configuration: [`Problem`] (a key path and a reason), [`ConfigError`] (all
//! of them for one source), [`Problems`] (the collector the validators push into, with the
//! parsers every section shares), and the mapping of figment's errors onto key paths.
//!
//! What counts as a problem is left to the section validators.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::header::HeaderName;

use super::types::UnknownValue;

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

    /// Parses a config enum (see `types`); an unknown value is reported with the accepted
    /// ones and `fallback` stands in so validation can go on.
    pub(crate) fn parse<T: FromStr<Err = UnknownValue>>(
        &mut self,
        key: &str,
        value: &str,
        fallback: T,
    ) -> T {
        value.parse().unwrap_or_else(|e: UnknownValue| {
            self.push(key, unknown(value, e));
            fallback
        })
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

/// `unknown token_use "x": expected "access" or "id"`.
pub(super) fn unknown(value: &str, e: UnknownValue) -> String {
    format!(
        "unknown {} {value:?}: expected {}",
        e.what,
        super::types::one_of(e.expected)
    )
}

/// Turns figment errors into problems with `routes[2].scopes`-style keys.
pub(super) fn figment_problems(
    err: figment::Error,
    env_keys: &[(Vec<String>, String)],
) -> Vec<Problem> {
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
