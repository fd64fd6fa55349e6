//! W3C trace context and the request's span (`[tracing]`).
//!
//! Every request gets a [`Trace`] when it starts ([`Tracing::begin`], from its `traceparent`
//! and `tracestate`, read with the OpenTelemetry `TraceContextPropagator`), which the
//! upstream request carries on ([`Trace::inject`]) and the access log line names
//! ([`Trace::trace_id`]). With `propagate = false` there is none: the headers are neither
//! read nor forwarded (the client's copies are removed). Sampling is the SDK's
//! `ParentBased(TraceIdRatioBased(sample_ratio))` (at the ratios 0 and 1 decided without
//! asking it, to the same answers).
//!
//! With an OTLP endpoint, a sampled request's one span (kind server) is made when the
//! request ends ([`Tracing::end`]), with the start time it had and the timings learned on the
//! way as events, as a compact [`crate::otlp::SpanRecord`] handed to the exporter's bounded
//! queue; `crate::otlp` turns it into OTLP protobuf and sends it, off the request path.
//! Nothing of the export runs per request before that, and nothing at all without an
//! endpoint: the default costs a header lookup and, when the client sent no `traceparent`,
//! one made (24 random bytes, one header value).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::text_map_propagator::TextMapPropagator;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    SamplingDecision, SpanContext, SpanId, SpanKind, TraceContextExt, TraceId,
};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, Sampler, ShouldSample};

use crate::otlp::{unix_nanos, Exporter, Exporters, Remote, SpanRecord, Text, Texts, Verification};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The tracing settings of one config, with the exporter when there is an endpoint.
pub struct Tracing {
    propagate: bool,
    trust_incoming: bool,
    sampler: Sampling,
    export: Option<Arc<Exporter>>,
    /// Issuer names by index.
    issuers: Vec<Box<str>>,
    alb_issuers: Vec<Box<str>>,
}

/// `ParentBased(TraceIdRatioBased(sample_ratio))`. At the ratios 1 (the default) and 0
/// the decision is known without asking the SDK: a root is always (never) sampled, and a
/// caller's choice is followed (`Sampling::Ratio` is the SDK's sampler itself; a test holds
/// the two to the same answers).
enum Sampling {
    Always,
    Never,
    Ratio(Sampler),
}

fn sampler_of(ratio: f64) -> Sampling {
    if ratio >= 1.0 {
        Sampling::Always
    } else if ratio <= 0.0 {
        Sampling::Never
    } else {
        Sampling::Ratio(sdk_sampler(ratio))
    }
}

fn sdk_sampler(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

fn sdk_sampled(sampler: &Sampler, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
    let cx = parent.map(|p| Context::new().with_remote_span_context(p.clone()));
    let r = sampler.should_sample(cx.as_ref(), trace_id, "", &SpanKind::Server, &[], &[]);
    r.decision == SamplingDecision::RecordAndSample
}

impl Tracing {
    pub fn new(
        config: &crate::config::Config,
        exporters: &Exporters,
        dropped: &prometheus::IntCounter,
    ) -> anyhow::Result<Tracing> {
        let cfg = &config.tracing;
        let name = |s: &str| Box::<str>::from(s);
        Ok(Tracing {
            propagate: cfg.propagate,
            trust_incoming: cfg.trust_incoming,
            sampler: sampler_of(cfg.sample_ratio),
            export: exporters.get(cfg, dropped)?,
            issuers: config.issuers.iter().map(|i| name(&i.name)).collect(),
            alb_issuers: config.alb_issuers.iter().map(|i| name(&i.name)).collect(),
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
        match &self.sampler {
            Sampling::Always => true,
            Sampling::Never => false,
            Sampling::Ratio(s) => sdk_sampled(s, None, trace_id),
        }
    }

    fn parent_sampled(&self, parent: &SpanContext) -> bool {
        match &self.sampler {
            Sampling::Always | Sampling::Never => parent.is_sampled(),
            Sampling::Ratio(s) => sdk_sampled(s, Some(parent), parent.trace_id()),
        }
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
        let end = SystemTime::now();
        let start = ctx.started.unwrap_or(end);
        let mut texts = Texts::new();
        let method = standard_method(f.method);
        if method.is_none() {
            texts.set(Text::Method, f.method.as_str());
        }
        if let Some(p) = f.path {
            texts.set(Text::Path, p);
        }
        if let Some(r) = f.rule {
            texts.set(Text::Route, &r.label);
        }
        if let Some(v) = f.issuer.and_then(|(alb, i)| {
            if alb {
                self.alb_issuers.get(i)
            } else {
                self.issuers.get(i)
            }
        }) {
            texts.set(Text::Issuer, v);
        }
        if let Some(v) = f.sub {
            texts.set(Text::Sub, v);
        }
        if let Some(v) = f.client_id {
            texts.set(Text::ClientId, v);
        }
        let verified = ctx.verified.get().map(|(at, took, hit)| Verification {
            at: unix_nanos(wall(start, ctx.started_at, at)),
            micros: micros(took),
            cache_hit: hit,
        });
        let upstream = ctx
            .upstream_at
            .get()
            .filter(|_| f.outcome == "forwarded")
            .map(|at| {
                let sent = wall(start, ctx.started_at, at);
                (
                    micros(end.duration_since(sent).unwrap_or_default()),
                    unix_nanos(end),
                )
            });
        export.push(SpanRecord {
            trace_id: ctx.trace_id.to_bytes(),
            span_id: ctx.span_id.to_bytes(),
            parent: ctx.parent.as_ref().map(remote),
            link: ctx.link.as_ref().map(remote),
            start: unix_nanos(start),
            end: unix_nanos(end),
            method,
            texts,
            status: f.status,
            outcome: f.outcome,
            decision: ctx.decision,
            verified,
            upstream,
        });
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A caller's span context, for the record.
fn remote(sc: &SpanContext) -> Remote {
    Remote {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
        trace_state: sc.trace_state().header(),
    }
}

/// A standard method's name, as a static string.
fn standard_method(m: &http::Method) -> Option<&'static str> {
    use http::Method as M;
    Some(match *m {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => return None,
    })
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
    // Written digit by digit: `write!` with the ids' `Display` cost about 1.5k instructions
    // per request, on every request of the default config.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let digits = |out: &mut [u8], bytes: &[u8]| {
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
    };
    digits(&mut buf[3..35], &trace_id.to_bytes());
    digits(&mut buf[36..52], &span_id.to_bytes());
    if sampled {
        buf[54] = b'1';
    }
    HeaderValue::from_bytes(&buf).expect("hex digits and dashes")
}

/// The SDK's own id generator (a fast generator per thread, seeded from the OS: ids are
/// unique, not secret).
fn new_trace_id() -> TraceId {
    loop {
        let t = RandomIdGenerator::default().new_trace_id();
        if t != TraceId::INVALID {
            return t;
        }
    }
}

fn new_span_id() -> SpanId {
    loop {
        let s = RandomIdGenerator::default().new_span_id();
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
    fn the_shortcut_ratios_decide_as_the_sdk_sampler_does() {
        use opentelemetry::trace::{TraceFlags, TraceState};
        for ratio in [0.0, 1.0] {
            let t = tracing(true, true, ratio);
            assert!(!matches!(t.sampler, Sampling::Ratio(_)));
            let sdk = sdk_sampler(ratio);
            for _ in 0..200 {
                let id = new_trace_id();
                assert_eq!(t.root_sampled(id), sdk_sampled(&sdk, None, id), "{ratio}");
                for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                    let p = SpanContext::new(id, new_span_id(), flags, true, TraceState::NONE);
                    assert_eq!(
                        t.parent_sampled(&p),
                        sdk_sampled(&sdk, Some(&p), id),
                        "{ratio} {flags:?}"
                    );
                }
            }
        }
        // In between, the SDK's sampler decides; about half of the roots at 0.5.
        let t = tracing(true, true, 0.5);
        assert!(matches!(t.sampler, Sampling::Ratio(_)));
        let n = (0..2000).filter(|_| t.root_sampled(new_trace_id())).count();
        assert!((800..1200).contains(&n), "{n}");
    }

    #[test]
    fn ids_are_valid_and_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_trace_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&TraceId::INVALID));
        // Another thread's generator is seeded on its own.
        let other = std::thread::spawn(new_trace_id).join().unwrap();
        assert!(!ids.contains(&other));
    }

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
    fn traceparent_digits_are_the_ids_display() {
        for _ in 0..200 {
            let (t, s) = (new_trace_id(), new_span_id());
            for sampled in [true, false] {
                let v = traceparent(t, s, sampled);
                let flags = if sampled { "01" } else { "00" };
                assert_eq!(v.to_str().unwrap(), format!("00-{t}-{s}-{flags}"));
            }
        }
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
}
