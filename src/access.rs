//! What a finished request leaves behind: its [`Outcome`], counted in the request metrics
//! (`sidecar_requests_total{route, outcome}`, the latency histogram) and written as the one
//! access log line (target `cognito_sidecar::access`). Only `sub`, `client_id` and `jti` of
//! a token are ever logged.

use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::Method;

use crate::claims::Verified;
use crate::decide::Seen;
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
    /// `[login]`'s own pages: `sign_in` (sent to the managed login), `callback`, `sign_out`.
    Login(&'static str),
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
            Outcome::Refused(reason) | Outcome::Login(reason) => reason,
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
    /// The request's trace id, when it has a trace context.
    pub trace_id: Option<opentelemetry::trace::TraceId>,
}

/// What is known of a request from its first moment: its id (kept from the client if sane,
/// else made), its method and when it started.
pub struct Start {
    pub request_id: RequestId,
    pub method: Method,
    pub at: Instant,
}

impl Start {
    pub fn now<B>(req: &http::Request<B>) -> Start {
        Start {
            at: Instant::now(),
            request_id: request_id(req.headers()),
            method: req.method().clone(),
        }
    }
}

/// A request's id, kept as the header value it goes out as (upstream and on the answer:
/// one allocation per request, shared by both). Reads as the `str` it is (checked ASCII).
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The `X-Request-Id` value (a cheap clone of shared bytes).
    pub fn header(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        // Only checked ASCII gets in (`request_id`).
        self.0.to_str().unwrap_or("")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// Keeps a sane client-sent `X-Request-Id`, or makes one.
pub fn request_id(headers: &http::HeaderMap) -> RequestId {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c))
        {
            // A copy, not the client's value itself: that one shares (and would keep
            // alive) the connection's whole read buffer.
            if let Ok(v) = HeaderValue::from_bytes(b) {
                return RequestId(v);
            }
        }
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    RequestId(HeaderValue::from_str(id).expect("a UUID is a header value"))
}

/// The end of every request on either listener: `X-Request-Id` on the answer (`method`:
/// the original request's, for the decision listener), then the metrics and the log line.
pub fn finish<B>(
    state: &State,
    metrics: &Metrics,
    resp: &mut http::Response<B>,
    start: &Start,
    seen: &Seen<'_>,
    outcome: Outcome,
) {
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), start.request_id.header());
    let f = Finished {
        request_id: &start.request_id,
        method: &start.method,
        path: seen.path.as_deref(),
        rule: seen.rule,
        status: resp.status().as_u16(),
        outcome,
        elapsed: start.at.elapsed(),
        verified: seen.verified.as_deref(),
        trace_id: seen.trace.trace_id(),
    };
    record(state, metrics, &f);
    if seen.trace.timed() {
        end_span(state, &f, &seen.trace);
    }
}

/// The request's span (exported spans only: [`crate::trace::Trace::timed`]).
fn end_span(state: &State, f: &Finished<'_>, trace: &crate::trace::Trace) {
    let v = f.verified;
    let issuer = v.map(|v| match &v.origin {
        crate::claims::Origin::Jwks { issuer, .. } => (false, *issuer),
        crate::claims::Origin::Alb { issuer, .. } => (true, *issuer),
    });
    state.tracing.end(
        trace,
        &crate::trace::SpanFacts {
            method: f.method,
            path: f.path,
            rule: f.rule,
            status: f.status,
            outcome: f.outcome.as_str(),
            issuer,
            sub: v.and_then(|v| v.sub()),
            client_id: v.and_then(|v| v.client_id()),
        },
    );
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        sub = v.and_then(|v| v.sub()),
        client_id = v.and_then(|v| v.client_id()),
        jti = v.and_then(|v| v.jti()),
        trace_id = f.trace_id.map(tracing::field::display),
        "request"
    );
}
