//! What a finished request leaves behind: its [`Outcome`], counted in the request metrics
//! (`sidecar_requests_total{route, outcome}`, the latency histogram) and written as the one
//! access log line (target `cognito_sidecar::access`). Only `sub`, `client_id` and `jti` of
//! a token are ever logged.

use std::time::Duration;

use http::Method;

use crate::claims::Verified;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::routes::Rule;
use crate::state::State;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (whatever its status).
    Forwarded,
    /// The decision listener said yes (200 to the front proxy).
    Allowed,
    /// The sidecar answered itself, for this reason ([`ProxyError::reason`]).
    Refused(&'static str),
}

impl Outcome {
    pub fn refused(e: &ProxyError) -> Outcome {
        Outcome::Refused(e.reason())
    }

    /// The metrics label and the log line's `outcome` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Allowed => "allowed",
            Outcome::Refused(reason) => reason,
        }
    }
}

/// One finished request, as the log line and the metrics see it.
pub struct Finished<'a> {
    pub request_id: &'a str,
    pub method: &'a Method,
    /// The normalised path, when it got that far.
    pub path: Option<&'a str>,
    pub rule: Option<&'a Rule>,
    pub status: u16,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub verified: Option<&'a Verified>,
}

/// Counts `f` and writes its log line.
pub fn record(state: &State, metrics: &Metrics, f: &Finished<'_>) {
    let route = f.rule.map_or("-", |r| r.label.as_str());
    let seconds = f.elapsed.as_secs_f64();
    match f.rule.and_then(|r| state.metrics_of(r)) {
        Some(m) => {
            match f.outcome {
                Outcome::Forwarded => m.forwarded.inc(),
                refused => metrics
                    .requests
                    .with_label_values(&[route, refused.as_str()])
                    .inc(),
            }
            m.latency.observe(seconds);
        }
        None => {
            metrics
                .requests
                .with_label_values(&[route, f.outcome.as_str()])
                .inc();
            metrics.latency.with_label_values(&[route]).observe(seconds);
        }
    }
    let v = f.verified;
    tracing::info!(
        target: "cognito_sidecar::access",
        request_id = %f.request_id,
        method = %f.method,
        path = f.path.unwrap_or("-"),
        route,
        status = f.status,
        outcome = f.outcome.as_str(),
        latency_us = f.elapsed.as_micros() as u64,
        sub = v.and_then(|v| v.sub.as_deref()),
        client_id = v.and_then(|v| v.client_id.as_deref()),
        jti = v.and_then(|v| v.jti.as_deref()),
        "request"
    );
}
