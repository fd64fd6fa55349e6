//! Validates `[tracing]`, with the standard OpenTelemetry variables (`OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_*`) read from the environment the loader was given. A key set in the
//! file wins over its variable (as the OpenTelemetry SDKs let code override the
//! environment); a signal-specific variable (`OTEL_EXPORTER_OTLP_TRACES_*`) wins over the
//! generic one. Using the settings is `crate::trace`'s.

use std::time::Duration;

use super::model::TracingConfig;
use super::problems::Problems;
use super::raw::RawTracing;
use super::types::OtlpProtocol;

/// The service name when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "cognito-sidecar";

fn var<'e>(env: &'e [(String, String)], name: &str) -> Option<&'e str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The first of `names` that is set, and its name.
fn first<'e>(
    env: &'e [(String, String)],
    names: &[&'static str],
) -> Option<(&'static str, &'e str)> {
    names.iter().find_map(|n| var(env, n).map(|v| (*n, v)))
}

/// A base URL with a scheme and an authority (`http://collector:4318`), or why not.
fn check_url(value: &str) -> Result<(), String> {
    let uri: http::Uri = value
        .parse()
        .map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) if uri.query().is_none() => Ok(()),
        _ => Err(format!(
            "{value:?}: an http:// or https:// URL without a query, e.g. \"http://127.0.0.1:4318\""
        )),
    }
}

/// The traces URL for HTTP from a base URL: `/v1/traces` appended to its path.
pub(super) fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// `k1=v1,k2=v2` (values percent-decoded), as the OTLP exporter spec defines the headers
/// variables.
fn parse_headers(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        let k = k.trim();
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of {k:?} is not UTF-8 once percent-decoded"))?;
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(&v).is_err()
        {
            return Err(format!("{k:?} is not a valid header (name or value)"));
        }
        out.push((k.to_ascii_lowercase(), v.into_owned()));
    }
    Ok(out)
}

pub(super) fn validate_tracing(
    p: &mut Problems,
    raw: &RawTracing,
    env: &[(String, String)],
) -> TracingConfig {
    let sample_ratio = if (0.0..=1.0).contains(&raw.sample_ratio) {
        raw.sample_ratio
    } else {
        p.push(
            "tracing.sample_ratio",
            format!(
                "{} is not a ratio from 0.0 (no trace is sampled) to 1.0 (every one)",
                raw.sample_ratio
            ),
        );
        1.0
    };
    let protocol = match raw.otlp_protocol.as_deref() {
        Some(v) => p.parse(
            "tracing.otlp_protocol",
            v.trim(),
            OtlpProtocol::HttpProtobuf,
        ),
        None => match first(
            env,
            &[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) {
            Some((name, v)) => p.parse(&format!("env {name}"), v, OtlpProtocol::HttpProtobuf),
            None => OtlpProtocol::HttpProtobuf,
        },
    };
    // The traces URL: the file's base URL, the signal-specific variable as it is (the spec
    // says it is used verbatim), or the generic base URL. `(url, is_base)`.
    let endpoint: Option<(&str, bool)> = match raw.otlp_endpoint.as_deref().map(str::trim) {
        Some("") => None,
        Some(base) => match check_url(base) {
            Ok(()) => Some((base, true)),
            Err(e) => {
                p.push("tracing.otlp_endpoint", e);
                None
            }
        },
        None => match first(
            env,
            &[
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ],
        ) {
            Some((name, v)) => match check_url(v) {
                Ok(()) => Some((v, name == "OTEL_EXPORTER_OTLP_ENDPOINT")),
                Err(e) => {
                    p.push(format!("env {name}"), e);
                    None
                }
            },
            None => None,
        },
    };
    if let (Some((url, _)), OtlpProtocol::Grpc) = (endpoint, protocol) {
        if url.starts_with("https://") {
            p.push(
                "tracing.otlp_protocol",
                format!("\"grpc\" is plaintext only here (h2c); for TLS to the collector ({url}) use \"http/protobuf\""),
            );
        }
    }
    let otlp_endpoint = endpoint.map(|(url, is_base)| match (is_base, protocol) {
        (true, OtlpProtocol::HttpProtobuf) => traces_url(url),
        _ => url.to_string(),
    });
    let headers = match first(
        env,
        &[
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ],
    ) {
        Some((name, v)) => parse_headers(v).unwrap_or_else(|e| {
            p.push(format!("env {name}"), e);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let timeout = match first(
        env,
        &[
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    ) {
        Some((name, v)) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                p.push(
                    format!("env {name}"),
                    format!(
                        "{v:?} is not a timeout in milliseconds greater than zero (e.g. 10000)"
                    ),
                );
                Duration::from_secs(10)
            }
        },
        None => Duration::from_secs(10),
    };
    let service_name = var(env, "OTEL_SERVICE_NAME")
        .unwrap_or(DEFAULT_SERVICE_NAME)
        .to_string();
    let schedule_delay = p.duration("tracing.schedule_delay", &raw.schedule_delay);
    if schedule_delay.is_zero() {
        p.push("tracing.schedule_delay", "must be greater than zero");
    }
    if raw.max_queue_size == 0 {
        p.push(
            "tracing.max_queue_size",
            "must be at least 1 (spans beyond it are dropped and counted)",
        );
    }
    TracingConfig {
        otlp_endpoint,
        otlp_protocol: protocol,
        trust_incoming: raw.trust_incoming,
        propagate: raw.propagate,
        sample_ratio,
        max_queue_size: raw.max_queue_size.max(1),
        schedule_delay,
        service_name,
        headers,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_key_value_pairs() {
        assert_eq!(
            parse_headers("api-key=a%20b, X-Tenant = t1").unwrap(),
            vec![
                ("api-key".to_string(), "a b".to_string()),
                ("x-tenant".to_string(), "t1".to_string())
            ]
        );
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("bad name=x").is_err());
        assert!(parse_headers("k=%0a").is_err());
    }

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c/otlp"), "http://c/otlp/v1/traces");
    }
}
