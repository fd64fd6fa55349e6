//! Prometheus metrics: one registry per running sidecar (so tests can run several in one
//! process), rendered in text format by the admin listener.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Registers `c` in `r` and returns it.
fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

/// A counter family, registered.
fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// Every metric the sidecar exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route label and outcome (`forwarded` or the rejection reason).
    pub requests: IntCounterVec,
    /// Time to response headers, by route label.
    pub latency: HistogramVec,
    /// Upstream failures by kind (`connect`, `timeout`, `reset`).
    pub upstream_errors: IntCounterVec,
    /// JWKS fetches by issuer and result (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// Keys in the current set, by issuer.
    pub jwks_keys: IntGaugeVec,
    /// ALB key fetches by issuer and result (`ok`, `not_found`, `error`, `limited`).
    pub alb_key_fetches: IntCounterVec,
    /// Seconds since the current key set was fetched, by issuer (set at scrape time).
    pub jwks_age: GaugeVec,
    /// Verified-token cache lookups by result (`hit`, `miss`).
    pub token_cache: IntCounterVec,
    pub connections_active: IntGauge,
    /// Connections that had to wait because `listener.max_connections` was reached.
    pub connections_limited: IntCounter,
    /// Requests waiting now for an upstream connection slot (`upstream.max_connections`).
    pub upstream_queued: IntGauge,
    /// Requests that waited `upstream.soft_max_wait` in vain and went ahead beyond
    /// `upstream.soft_max_connections`.
    pub upstream_over_soft: IntCounter,
    /// Spans not exported: the batch queue (`[tracing] max_queue_size`) was full, or the
    /// export failed (collector down or refusing).
    pub trace_spans_dropped: IntCounter,
    /// Config reloads by result.
    pub reloads: IntCounterVec,
    /// Time of a cold verification (signature), seconds.
    pub verify_seconds: Histogram,
    /// Online revocation checks (`GetUser` calls) by result (`active`, `revoked`,
    /// `unscoped`, `unavailable`).
    pub revocation_checks: IntCounterVec,
    /// Time of one revocation check, seconds.
    pub revocation_seconds: Histogram,
    /// Tokens forwarded or refused without a revocation check, by why (`unscoped`,
    /// `id_token`, `unavailable`).
    pub revocation_unchecked: IntCounterVec,
    /// Entries in each issuer's deny list.
    pub denylist_entries: IntGaugeVec,
    /// When each issuer's deny list was last loaded (Unix seconds).
    pub denylist_loaded: GaugeVec,
    /// Deny list reloads refused (a bad line), by issuer.
    pub denylist_errors: IntCounterVec,
    /// Requests refused by a route's `rate_limit` (429), by route.
    pub rate_limited: IntCounterVec,
    /// Keys a route's `rate_limit` holds now, by route.
    pub rate_limit_keys: IntGaugeVec,
    /// Keys a route's `rate_limit` dropped while still counting (past `max_keys`), by route.
    pub rate_limit_evicted: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let requests = counter_vec(
            r,
            "sidecar_requests_total",
            "Requests by route and outcome",
            &["route", "outcome"],
        );
        let latency = reg(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "sidecar_request_duration_seconds",
                    "Time from request to response headers",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["route"],
            )
            .expect("valid metric"),
        );
        let upstream_errors = counter_vec(
            r,
            "sidecar_upstream_errors_total",
            "Upstream failures by kind",
            &["kind"],
        );
        let jwks_fetches = counter_vec(
            r,
            "sidecar_jwks_fetches_total",
            "JWKS fetches by issuer and result",
            &["issuer", "result"],
        );
        let alb_key_fetches = counter_vec(
            r,
            "sidecar_alb_key_fetches_total",
            "ALB public key fetches by issuer and result",
            &["issuer", "result"],
        );
        let jwks_keys = reg(
            r,
            IntGaugeVec::new(
                Opts::new("sidecar_jwks_keys", "Keys in the current key set"),
                &["issuer"],
            )
            .expect("valid metric"),
        );
        let jwks_age = reg(
            r,
            GaugeVec::new(
                Opts::new(
                    "sidecar_jwks_age_seconds",
                    "Seconds since the current key set was fetched",
                ),
                &["issuer"],
            )
            .expect("valid metric"),
        );
        let token_cache = counter_vec(
            r,
            "sidecar_token_cache_total",
            "Verified-token cache lookups",
            &["result"],
        );
        let connections_active = reg(
            r,
            IntGauge::new("sidecar_connections_active", "Open client connections")
                .expect("valid metric"),
        );
        let connections_limited = reg(
            r,
            IntCounter::new(
                "sidecar_connections_limited_total",
                "Times the listener stopped accepting because max_connections was reached",
            )
            .expect("valid metric"),
        );
        let upstream_queued = reg(
            r,
            IntGauge::new(
                "sidecar_upstream_queued",
                "Requests waiting for an upstream connection because upstream.max_connections (or soft_max_connections) are busy",
            )
            .expect("valid metric"),
        );
        let upstream_over_soft = reg(
            r,
            IntCounter::new(
                "sidecar_upstream_over_soft_limit_total",
                "Requests that waited upstream.soft_max_wait in vain and went to the upstream beyond soft_max_connections",
            )
            .expect("valid metric"),
        );
        let trace_spans_dropped = reg(
            r,
            IntCounter::new(
                "sidecar_trace_spans_dropped_total",
                "Spans not exported: the batch queue ([tracing] max_queue_size) was full, their export failed, or the collector rejected them",
            )
            .expect("valid metric"),
        );
        let reloads = counter_vec(
            r,
            "sidecar_config_reloads_total",
            "Config reloads by result",
            &["result"],
        );
        let verify_seconds = reg(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "sidecar_token_verify_seconds",
                    "Time of a full (uncached) token verification",
                )
                .buckets(vec![
                    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.01, 0.1, 1.0,
                ]),
            )
            .expect("valid metric"),
        );
        let revocation_checks = counter_vec(
            r,
            "sidecar_revocation_checks_total",
            "Online revocation checks (GetUser calls) by result",
            &["result"],
        );
        let revocation_seconds = reg(
            r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "sidecar_revocation_check_seconds",
                    "Time of one online revocation check",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .expect("valid metric"),
        );
        let revocation_unchecked = counter_vec(
            r,
            "sidecar_revocation_unchecked_total",
            "Tokens let through or refused without a revocation check, by why",
            &["why"],
        );
        let denylist_entries = reg(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "sidecar_denylist_entries",
                    "Entries in the issuer's deny list",
                ),
                &["issuer"],
            )
            .expect("valid metric"),
        );
        let denylist_loaded = reg(
            r,
            GaugeVec::new(
                Opts::new(
                    "sidecar_denylist_loaded_timestamp_seconds",
                    "When the issuer's deny list was last loaded",
                ),
                &["issuer"],
            )
            .expect("valid metric"),
        );
        let denylist_errors = counter_vec(
            r,
            "sidecar_denylist_errors_total",
            "Deny list reloads refused because of a bad line",
            &["issuer"],
        );
        let rate_limited = counter_vec(
            r,
            "sidecar_rate_limited_total",
            "Requests refused by the route's rate_limit (429)",
            &["route"],
        );
        let rate_limit_keys = reg(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "sidecar_rate_limit_keys",
                    "Keys (callers) the route's rate_limit tracks now",
                ),
                &["route"],
            )
            .expect("valid metric"),
        );
        let rate_limit_evicted = counter_vec(
            r,
            "sidecar_rate_limit_evicted_total",
            "Keys the route's rate_limit dropped before they were replenished, past max_keys",
            &["route"],
        );
        Metrics {
            registry,
            rate_limited,
            rate_limit_keys,
            rate_limit_evicted,
            revocation_checks,
            revocation_seconds,
            revocation_unchecked,
            denylist_entries,
            denylist_loaded,
            denylist_errors,
            requests,
            latency,
            upstream_errors,
            jwks_fetches,
            jwks_keys,
            alb_key_fetches,
            jwks_age,
            token_cache,
            connections_active,
            connections_limited,
            upstream_queued,
            upstream_over_soft,
            trace_spans_dropped,
            reloads,
            verify_seconds,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
