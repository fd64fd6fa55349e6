//! W3C trace context and OpenTelemetry spans (`[tracing]`).
//!
//! Every request gets a [`Trace`] when it starts ([`Tracing::begin`], from its `traceparent`
//! and `tracestate`, read with the OpenTelemetry `TraceContextPropagator`), which the
//! upstream request carries on ([`Trace::inject`]) and the access log line names
//! ([`Trace::trace_id`]). With `propagate = false` there is none: the headers are neither
//! read nor forwarded (the client's copies are removed).
//!
//! With an OTLP endpoint, a sampled request's one span (kind server) is built when the
//! request ends ([`Tracing::end`]), with the start time it had and the timings learned on the
//! way as events, and handed to the SDK's batch span processor: a bounded queue, exported
//! off the request path by the SDK's own thread. Nothing of the SDK runs per request before
//! that, and nothing at all without an endpoint: the default costs a header lookup and,
//! when the client sent no `traceparent`, one made (24 random bytes, one header value).
//!
//! Drops are counted in `sidecar_trace_spans_dropped_total`: a span that finds the queue
//! full (counted by a gate of our own in front of the SDK's queue, which is never smaller
//! than ours, so the SDK itself never drops one silently) and every span of an export that
//! failed (the exporter is wrapped, [`Counted`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::text_map_propagator::TextMapPropagator;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    Event, Link, SamplingDecision, SamplingResult, SpanContext, SpanId, SpanKind, Status,
    TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;

use crate::config::{OtlpProtocol, TracingConfig};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The tracing settings of one config, with the exporter when there is an endpoint.
pub struct Tracing {
    propagate: bool,
    trust_incoming: bool,
    /// `ParentBased(TraceIdRatioBased(sample_ratio))`.
    sampler: Sampler,
    export: Option<Arc<Exporter>>,
    /// Route labels by rule index (the default rule last), issuer names by index: shared
    /// strings, so a span's attributes need not copy them.
    labels: Vec<StringValue>,
    issuers: Vec<StringValue>,
    alb_issuers: Vec<StringValue>,
}

/// The SDK pipeline: provider, tracer, and the gate in front of its queue.
pub struct Exporter {
    /// What it was built for: a reload with the same settings keeps it.
    key: String,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    gate: Arc<Gate>,
    dropped: prometheus::IntCounter,
}

/// Spans handed to the SDK and not yet taken by an export.
#[derive(Debug)]
struct Gate {
    in_flight: AtomicUsize,
    max: usize,
}

impl Gate {
    fn try_enter(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self, n: usize) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                Some(m.saturating_sub(n))
            });
    }
}

/// The OTLP exporter, counting what it takes from the queue and what fails to go out.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    gate: Arc<Gate>,
    dropped: prometheus::IntCounter,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.gate.leave(n);
        let r = self.inner.export(batch).await;
        if r.is_err() {
            self.dropped.inc_by(n as u64);
        }
        r
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

impl Exporter {
    fn key_of(cfg: &TracingConfig) -> String {
        format!(
            "{:?} {} {:?} {} {:?} {:?} {} {:?}",
            cfg.otlp_endpoint,
            cfg.otlp_protocol,
            cfg.headers,
            cfg.max_queue_size,
            cfg.schedule_delay,
            cfg.timeout,
            cfg.service_name,
            cfg.sample_ratio.to_bits()
        )
    }

    /// The pipeline for `cfg` (`None` without an endpoint). The gRPC exporter's channel
    /// needs the Tokio runtime: build this inside it.
    fn build(
        cfg: &TracingConfig,
        dropped: prometheus::IntCounter,
    ) -> anyhow::Result<Option<Exporter>> {
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
        let inner = match cfg.otlp_protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(http_client(cfg.timeout)?)
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint.clone())
                .with_timeout(cfg.timeout)
                .with_headers(cfg.headers.iter().cloned().collect())
                .build()?,
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                        v.parse(),
                    ) {
                        metadata.insert(k, v);
                    }
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_metadata(metadata)
                    .build()?
            }
        };
        let gate = Arc::new(Gate {
            in_flight: AtomicUsize::new(0),
            max: cfg.max_queue_size,
        });
        let exporter = Counted {
            inner,
            gate: Arc::clone(&gate),
            dropped: dropped.clone(),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(cfg.max_queue_size)
            .with_max_export_batch_size(cfg.max_queue_size.min(512))
            .with_scheduled_delay(cfg.schedule_delay)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler_of(cfg.sample_ratio))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("cognito-sidecar");
        Ok(Some(Exporter {
            key: Self::key_of(cfg),
            provider,
            tracer,
            gate,
            dropped,
        }))
    }

    /// Exports what is queued and stops the processor's thread (blocking: call it off the
    /// runtime's workers, [`shutdown`]).
    fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace exporter shutdown");
        }
    }
}

/// The exporter's HTTP client: blocking (the batch processor exports from its own thread),
/// with the sidecar's TLS settings (aws-lc-rs, webpki roots) for an `https://` collector.
/// Built on a thread of its own, as a blocking client cannot be built on the runtime.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::blocking::Client> {
    let tls = crate::tls::client_config(None)?;
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP HTTP client panicked"))?
    .map_err(Into::into)
}

impl Drop for Exporter {
    /// Shutting the processor down waits for its thread (and a last export): never on a
    /// runtime worker, where the last state using an exporter may be dropped after a
    /// reload. The thread holds the provider until it is shut down.
    fn drop(&mut self) {
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("otlp-shutdown".into())
            .spawn(move || {
                let _ = provider.shutdown();
            });
    }
}

fn sampler_of(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

/// Keeps the exporter across reloads that do not change its settings.
#[derive(Default)]
pub struct Exporters {
    current: std::sync::Mutex<Option<Arc<Exporter>>>,
}

impl Exporters {
    /// The exporter for `cfg`: the running one if its settings are the same, else a new one.
    fn get(
        &self,
        cfg: &TracingConfig,
        dropped: &prometheus::IntCounter,
    ) -> anyhow::Result<Option<Arc<Exporter>>> {
        let mut cur = self.current.lock().expect("lock poisoned");
        if cfg.otlp_endpoint.is_none() {
            // The old one (if any) flushes when the last state using it goes.
            *cur = None;
            return Ok(None);
        }
        let key = Exporter::key_of(cfg);
        if let Some(e) = cur.as_ref().filter(|e| e.key == key) {
            return Ok(Some(Arc::clone(e)));
        }
        let e = Exporter::build(cfg, dropped.clone())?.map(Arc::new);
        *cur = e.clone();
        Ok(e)
    }

    /// On graceful stop: exports what is queued (within the export timeout).
    pub async fn shutdown(&self) {
        let e = self.current.lock().expect("lock poisoned").take();
        if let Some(e) = e {
            let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
        }
    }
}

impl Tracing {
    pub fn new(
        config: &crate::config::Config,
        exporters: &Exporters,
        dropped: &prometheus::IntCounter,
    ) -> anyhow::Result<Tracing> {
        let cfg = &config.tracing;
        let shared = |s: &str| StringValue::from(Arc::<str>::from(s));
        Ok(Tracing {
            propagate: cfg.propagate,
            trust_incoming: cfg.trust_incoming,
            sampler: sampler_of(cfg.sample_ratio),
            export: exporters.get(cfg, dropped)?,
            labels: config
                .routes
                .rules()
                .iter()
                .chain(std::iter::once(config.routes.default_rule()))
                .map(|r| shared(&r.label))
                .collect(),
            issuers: config.issuers.iter().map(|i| shared(&i.name)).collect(),
            alb_issuers: config.alb_issuers.iter().map(|i| shared(&i.name)).collect(),
        })
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.export.is_some()
    }

    /// The trace context of a request with these headers (on the decision listener:
    /// `decision`, the original request's).
    pub fn begin(&self, headers: &HeaderMap, decision: bool) -> Trace {
        let mut t = self.begin_ctx(headers);
        if let Some(c) = t.0.as_deref_mut() {
            c.decision = decision;
        }
        t
    }

    fn begin_ctx(&self, headers: &HeaderMap) -> Trace {
        let incoming = if self.propagate {
            extract(headers)
        } else {
            None
        };
        if !self.propagate && self.export.is_none() {
            return Trace::default();
        }
        let (parent, link) = match incoming {
            Some(sc) if self.trust_incoming => (Some(sc), None),
            Some(sc) => (None, Some(sc)),
            None => (None, None),
        };
        let Some(_) = &self.export else {
            // No spans of our own: the caller's context goes on as it came, or a new one.
            return Trace(Some(Box::new(match parent {
                Some(sc) => Ctx::passed_on(sc, headers.get(&TRACESTATE).cloned()),
                None => {
                    let trace_id = new_trace_id();
                    let sampled = self.root_sampled(trace_id);
                    Ctx::new(trace_id, None, None, sampled, false)
                }
            })));
        };
        let (trace_id, sampled) = match &parent {
            Some(sc) => (sc.trace_id(), self.parent_sampled(sc)),
            None => {
                let t = new_trace_id();
                (t, self.root_sampled(t))
            }
        };
        let mut ctx = Ctx::new(trace_id, parent, link, sampled, sampled);
        ctx.forward = self.propagate;
        if ctx.parent.is_some() {
            ctx.tracestate = headers.get(&TRACESTATE).cloned();
        }
        if ctx.export {
            ctx.started = Some(SystemTime::now());
        }
        Trace(Some(Box::new(ctx)))
    }

    fn root_sampled(&self, trace_id: TraceId) -> bool {
        let r = self
            .sampler
            .should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]);
        r.decision == SamplingDecision::RecordAndSample
    }

    fn parent_sampled(&self, parent: &SpanContext) -> bool {
        let cx = Context::new().with_remote_span_context(parent.clone());
        let r = self.sampler.should_sample(
            Some(&cx),
            parent.trace_id(),
            "",
            &SpanKind::Server,
            &[],
            &[],
        );
        r.decision == SamplingDecision::RecordAndSample
    }

    /// Ends the request's span (when it has one to export). Never blocks: a full queue
    /// drops the span and counts it.
    pub fn end(&self, trace: &Trace, f: &SpanFacts<'_>) {
        let (Some(export), Some(ctx)) = (&self.export, trace.0.as_deref()) else {
            return;
        };
        if !ctx.export {
            return;
        }
        if !export.gate.try_enter() {
            export.dropped.inc();
            return;
        }
        let end = SystemTime::now();
        let start = ctx.started.unwrap_or(end);
        let route = f.rule.map_or_else(
            || Value::from("-"),
            |r| {
                let i = r.index.unwrap_or(self.labels.len().saturating_sub(1));
                self.labels.get(i).map_or_else(
                    || Value::from(r.label.clone()),
                    |l| Value::String(l.clone()),
                )
            },
        );
        let method = method_str(f.method);
        let mut attrs = Vec::with_capacity(16);
        attrs.push(KeyValue::new("http.request.method", method.clone()));
        if let Some(p) = f.path {
            attrs.push(KeyValue::new("url.path", p.to_string()));
        }
        attrs.push(KeyValue::new("http.route", route.clone()));
        attrs.push(KeyValue::new("http.response.status_code", f.status as i64));
        attrs.push(KeyValue::new("sidecar.outcome", f.outcome));
        // Only on the decision listener: a span without it is the proxy listener's. (No
        // request id: the access log line names the trace id, which joins them.)
        if ctx.decision {
            attrs.push(KeyValue::new("sidecar.listener", "decision"));
        }
        if let Some(v) = f.issuer.and_then(|(alb, i)| {
            if alb {
                self.alb_issuers.get(i)
            } else {
                self.issuers.get(i)
            }
        }) {
            attrs.push(KeyValue::new("sidecar.issuer", Value::String(v.clone())));
        }
        if let Some(v) = f.sub {
            attrs.push(KeyValue::new("enduser.id", v.to_string()));
        }
        if let Some(v) = f.client_id {
            attrs.push(KeyValue::new("sidecar.client_id", v.to_string()));
        }
        // Timings: events without attributes of their own (their times say when), the
        // durations as span attributes: a few words each, no allocation.
        let mut events = Vec::new();
        if let Some((at, took, hit)) = ctx.verified.get() {
            attrs.push(KeyValue::new("sidecar.token_cache_hit", hit));
            attrs.push(KeyValue::new("sidecar.verify_us", took.as_micros() as i64));
            events.reserve(3);
            events.push(Event::new(
                "token verified",
                wall(start, ctx.started_at, at),
                Vec::new(),
                0,
            ));
        }
        if let Some(at) = ctx.upstream_at.get() {
            let sent = wall(start, ctx.started_at, at);
            if f.outcome == "forwarded" {
                let took = end.duration_since(sent).unwrap_or_default();
                attrs.push(KeyValue::new(
                    "sidecar.upstream_us",
                    took.as_micros() as i64,
                ));
                events.push(Event::new("upstream response headers", end, Vec::new(), 0));
            }
        }
        let name = match &route {
            Value::String(r) if r.as_str() != "-" => format!("{} {}", method.as_str(), r.as_str()),
            _ => method.as_str().to_string(),
        };
        let mut b = export
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_end_time(end)
            .with_attributes(attrs)
            .with_events(events);
        if f.status >= 500 {
            b = b.with_status(Status::error(""));
        }
        if let Some(l) = &ctx.link {
            b = b.with_links(vec![Link::with_context(l.clone())]);
        }
        b.trace_id = Some(ctx.trace_id);
        b.span_id = Some(ctx.span_id);
        let trace_state = ctx
            .parent
            .as_ref()
            .map(|p| p.trace_state().clone())
            .unwrap_or_default();
        b.sampling_result = Some(SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state,
        });
        let parent_cx = match &ctx.parent {
            Some(p) => Context::new().with_remote_span_context(p.clone()),
            None => Context::new(),
        };
        // The span's end time was given: ending it now hands it to the processor.
        drop(export.tracer.build_with_context(b, &parent_cx));
    }
}

/// The method as a shared string: the standard ones without allocating.
fn method_str(m: &http::Method) -> StringValue {
    use http::Method as M;
    let s: &'static str = match *m {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return StringValue::from(m.as_str().to_string()),
    };
    StringValue::from(s)
}

/// The wall-clock time of `at`, an `Instant` after `started_at` (taken with `start`).
fn wall(start: SystemTime, started_at: Option<Instant>, at: Instant) -> SystemTime {
    match started_at {
        Some(s) => start + at.saturating_duration_since(s),
        None => start,
    }
}

/// What the span says about a finished request (token data only `sub`, `client_id`, `jti`).
pub struct SpanFacts<'a> {
    pub method: &'a http::Method,
    pub path: Option<&'a str>,
    pub rule: Option<&'a crate::routes::Rule>,
    pub status: u16,
    pub outcome: &'static str,
    /// The verifying issuer: (an ALB issuer, its index in its list).
    pub issuer: Option<(bool, usize)>,
    pub sub: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

/// A request's trace context; `None` with `propagate = false` and no export.
#[derive(Default)]
pub struct Trace(Option<Box<Ctx>>);

struct Ctx {
    trace_id: TraceId,
    /// The span id the upstream sees as its parent: ours, or (no export) the caller's.
    span_id: SpanId,
    sampled: bool,
    /// The caller's span, the parent of ours (trusted).
    parent: Option<SpanContext>,
    /// The caller's span, linked from ours (`trust_incoming = false`).
    link: Option<SpanContext>,
    /// Forwarded as it came, with the caller's trace.
    tracestate: Option<HeaderValue>,
    /// Goes to the upstream (`propagate`).
    forward: bool,
    /// On the decision listener.
    decision: bool,
    /// Ours is exported (sampled, with an exporter).
    export: bool,
    started: Option<SystemTime>,
    started_at: Option<Instant>,
    verified: std::cell::Cell<Option<(Instant, Duration, bool)>>,
    upstream_at: std::cell::Cell<Option<Instant>>,
}

impl Ctx {
    fn new(
        trace_id: TraceId,
        parent: Option<SpanContext>,
        link: Option<SpanContext>,
        sampled: bool,
        export: bool,
    ) -> Ctx {
        Ctx {
            trace_id,
            span_id: new_span_id(),
            sampled,
            parent,
            link,
            tracestate: None,
            forward: true,
            decision: false,
            export,
            started: None,
            started_at: export.then(Instant::now),
            verified: Default::default(),
            upstream_at: Default::default(),
        }
    }

    fn passed_on(sc: SpanContext, tracestate: Option<HeaderValue>) -> Ctx {
        Ctx {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            sampled: sc.is_sampled(),
            parent: None,
            link: None,
            tracestate,
            forward: true,
            decision: false,
            export: false,
            started: None,
            started_at: None,
            verified: Default::default(),
            upstream_at: Default::default(),
        }
    }
}

impl Trace {
    /// The trace id, for the log line.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.0.as_ref().map(|c| c.trace_id)
    }

    /// Whether timings are worth taking (the span will be exported).
    pub fn timed(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.export)
    }

    /// Notes the token's verification: done at `at`, took `took`, from the cache or not.
    pub fn verified(&self, at: Instant, took: Duration, cache_hit: bool) {
        if let Some(c) = self.0.as_deref().filter(|c| c.export) {
            c.verified.set(Some((at, took, cache_hit)));
        }
    }

    /// Sets `traceparent` (and `tracestate`, with the caller's trace) on the upstream
    /// request's headers, replacing the client's copies; with no context (`propagate =
    /// false`) removes them.
    pub fn inject(&self, h: &mut HeaderMap) {
        let Some(c) = self.0.as_deref().filter(|c| c.forward) else {
            if let Some(c) = self.0.as_deref().filter(|c| c.export) {
                c.upstream_at.set(Some(Instant::now()));
            }
            h.remove(&TRACEPARENT);
            h.remove(&TRACESTATE);
            return;
        };
        if c.export {
            c.upstream_at.set(Some(Instant::now()));
        }
        h.insert(
            TRACEPARENT.clone(),
            traceparent(c.trace_id, c.span_id, c.sampled),
        );
        match &c.tracestate {
            Some(v) => {
                h.insert(TRACESTATE.clone(), v.clone());
            }
            None => {
                h.remove(&TRACESTATE);
            }
        }
    }
}

/// `00-<trace id>-<span id>-<flags>`.
fn traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> HeaderValue {
    use std::io::Write;
    let mut buf = [0u8; 55];
    let flags = if sampled { 1 } else { 0 };
    let _ = write!(&mut buf[..], "00-{trace_id}-{span_id}-{flags:02x}");
    HeaderValue::from_bytes(&buf).expect("hex digits and dashes")
}

fn new_trace_id() -> TraceId {
    loop {
        let t = TraceId::from_bytes(rand::random::<[u8; 16]>());
        if t != TraceId::INVALID {
            return t;
        }
    }
}

fn new_span_id() -> SpanId {
    loop {
        let s = SpanId::from_bytes(rand::random::<[u8; 8]>());
        if s != SpanId::INVALID {
            return s;
        }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // More than one `traceparent` is no context (W3C trace context §3.2.2.7 lets a
        // vendor restart the trace): never guess which one the caller meant.
        let mut all = self.0.get_all(key).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's span context from `traceparent` (and `tracestate`), when valid.
pub fn extract(headers: &HeaderMap) -> Option<SpanContext> {
    if !headers.contains_key(&TRACEPARENT) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.clone())
}

/// For the fuzz target (`fuzz/fuzz_targets/trace_context.rs`): a request carrying these
/// header values, through extraction and each way of passing it on (trusted, untrusted,
/// `propagate = false`). Returns the extracted caller's `traceparent` as we would write
/// it, if any. Panics if a property fails: what goes upstream is always one valid W3C
/// `traceparent` (or none with `propagate = false`), a trusted caller's trace id is kept,
/// an untrusted caller's is not.
#[doc(hidden)]
pub fn fuzz_trace_context(traceparent_value: &[u8], tracestate_value: &[u8]) -> Option<String> {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(traceparent_value) {
        h.insert(TRACEPARENT.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_bytes(tracestate_value) {
        h.insert(TRACESTATE.clone(), v);
    }
    let caller = extract(&h);
    for (propagate, trust) in [(true, true), (true, false), (false, true)] {
        let t = Tracing {
            propagate,
            trust_incoming: trust,
            sampler: sampler_of(0.5),
            export: None,
            labels: Vec::new(),
            issuers: Vec::new(),
            alb_issuers: Vec::new(),
        };
        let mut out = h.clone();
        t.begin(&h, false).inject(&mut out);
        if !propagate {
            assert!(!out.contains_key(&TRACEPARENT) && !out.contains_key(&TRACESTATE));
            continue;
        }
        assert_eq!(out.get_all(&TRACEPARENT).iter().count(), 1);
        let sent = extract(&out).expect("what goes upstream is a valid traceparent");
        assert_eq!(out[&TRACEPARENT].len(), 55);
        match &caller {
            Some(c) if trust => {
                assert_eq!(sent.trace_id(), c.trace_id());
                assert_eq!(sent.span_id(), c.span_id());
            }
            Some(c) => {
                assert_ne!(sent.trace_id(), c.trace_id());
                assert!(!out.contains_key(&TRACESTATE));
            }
            None => assert!(!out.contains_key(&TRACESTATE)),
        }
    }
    let sc = caller?;
    assert!(sc.is_valid() && sc.is_remote());
    let v = traceparent(sc.trace_id(), sc.span_id(), sc.is_sampled());
    Some(v.to_str().expect("ascii").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparents_are_read_and_bad_ones_are_not() {
        let sc = extract(&headers(&[("traceparent", TP)])).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                extract(&headers(&[("traceparent", bad)])).is_none(),
                "{bad}"
            );
        }
        // Two of them: neither is believed.
        assert!(extract(&headers(&[("traceparent", TP), ("traceparent", TP)])).is_none());
    }

    #[test]
    fn traceparent_is_formatted_as_w3c_says() {
        let sc = extract(&headers(&[("traceparent", TP)])).unwrap();
        let v = traceparent(sc.trace_id(), sc.span_id(), true);
        assert_eq!(v.to_str().unwrap(), TP);
        let v = traceparent(sc.trace_id(), sc.span_id(), false);
        assert!(v.to_str().unwrap().ends_with("-00"));
    }

    fn tracing(propagate: bool, trust: bool, ratio: f64) -> Tracing {
        Tracing {
            propagate,
            trust_incoming: trust,
            sampler: sampler_of(ratio),
            export: None,
            labels: Vec::new(),
            issuers: Vec::new(),
            alb_issuers: Vec::new(),
        }
    }

    #[test]
    fn without_export_the_callers_context_goes_on_unchanged() {
        let t = tracing(true, true, 1.0);
        let tr = t.begin(
            &headers(&[("traceparent", TP), ("tracestate", "a=b")]),
            false,
        );
        let mut h = HeaderMap::new();
        tr.inject(&mut h);
        assert_eq!(h["traceparent"], TP);
        assert_eq!(h["tracestate"], "a=b");
        // Absent: made, sampled by the ratio.
        let tr = t.begin(&HeaderMap::new(), false);
        let mut h = headers(&[("tracestate", "forged=1")]);
        tr.inject(&mut h);
        let made = h["traceparent"].to_str().unwrap().to_string();
        assert!(extract(&h).is_some(), "{made}");
        assert!(made.ends_with("-01"));
        assert!(!h.contains_key("tracestate"));
        let tr = tracing(true, true, 0.0).begin(&HeaderMap::new(), false);
        let mut h = HeaderMap::new();
        tr.inject(&mut h);
        assert!(h["traceparent"].to_str().unwrap().ends_with("-00"));
    }

    #[test]
    fn untrusted_callers_start_a_new_trace() {
        let t = tracing(true, false, 1.0);
        let tr = t.begin(
            &headers(&[("traceparent", TP), ("tracestate", "a=b")]),
            false,
        );
        let mut h = HeaderMap::new();
        tr.inject(&mut h);
        let sc = extract(&h).unwrap();
        assert_ne!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(!h.contains_key("tracestate"));
    }

    #[test]
    fn propagate_false_neither_reads_nor_forwards() {
        let t = tracing(false, true, 1.0);
        let tr = t.begin(&headers(&[("traceparent", TP)]), false);
        assert!(tr.trace_id().is_none());
        let mut h = headers(&[("traceparent", TP), ("tracestate", "a=b")]);
        tr.inject(&mut h);
        assert!(!h.contains_key("traceparent") && !h.contains_key("tracestate"));
    }

    #[test]
    fn the_fuzz_properties_hold_on_the_corpus_kinds() {
        assert_eq!(
            fuzz_trace_context(TP.as_bytes(), b"a=b").as_deref(),
            Some(TP)
        );
        for bad in [&b""[..], b"00-", b"\xff\xfe"] {
            assert_eq!(fuzz_trace_context(bad, b"x"), None);
        }
        // The propagator takes a one-digit flags field; what goes on is written in full.
        let short = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1";
        assert_eq!(
            fuzz_trace_context(short.as_bytes(), b"").as_deref(),
            Some(TP)
        );
    }

    #[test]
    fn the_gate_holds_at_most_max() {
        let g = Gate {
            in_flight: AtomicUsize::new(0),
            max: 2,
        };
        assert!(g.try_enter() && g.try_enter());
        assert!(!g.try_enter());
        g.leave(5);
        assert!(g.try_enter());
    }
}
