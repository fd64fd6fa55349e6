//! `[tracing]`: W3C trace context through the sidecar, and the spans it exports, received by
//! a real OTLP receiver on 127.0.0.1 built on the published OTLP protos (HTTP/protobuf on
//! hyper, and gRPC with tonic's generated `TraceService` server).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::*;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn caller_traceparent(sampled: bool) -> String {
    format!(
        "00-{CALLER_TRACE}-{CALLER_SPAN}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// One exported span with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(show)
    }

    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn show(v: &AnyValue) -> String {
    match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Default)]
struct Inbox {
    spans: Mutex<Vec<Got>>,
    arrived: Notify,
    /// What the receiver says it rejected of each export (`partial_success`).
    reject: std::sync::atomic::AtomicI64,
}

impl Inbox {
    fn answer(&self) -> ExportTraceServiceResponse {
        let rejected_spans = self.reject.load(std::sync::atomic::Ordering::SeqCst);
        ExportTraceServiceResponse {
            partial_success: (rejected_spans > 0).then(|| ExportTracePartialSuccess {
                rejected_spans,
                error_message: "over quota".into(),
            }),
        }
    }
}

impl Inbox {
    fn take(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(show)
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Got {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        drop(spans);
        self.arrived.notify_waiters();
    }
}

/// An OTLP receiver on 127.0.0.1 that keeps every span it is sent.
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Grpc(Arc<Inbox>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner());
        Ok(tonic::Response::new(self.0.answer()))
    }
}

impl Receiver {
    /// OTLP/HTTP with protobuf bodies: `POST /v1/traces`.
    async fn http() -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let ib = inbox.clone();
        let (addr, task) = serve(move |req: Request<Incoming>| {
            let ib = ib.clone();
            async move {
                let path_ok = req.method() == "POST" && req.uri().path() == "/v1/traces";
                let ct_ok = req
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/x-protobuf");
                let body = req.into_body().collect().await.unwrap().to_bytes();
                if !path_ok || !ct_ok {
                    return Response::builder().status(404).body(full("")).unwrap();
                }
                match ExportTraceServiceRequest::decode(body) {
                    Ok(r) => {
                        ib.take(r);
                        let ok = ib.answer();
                        Response::builder()
                            .header("content-type", "application/x-protobuf")
                            .body(full(ok.encode_to_vec()))
                            .unwrap()
                    }
                    Err(_) => Response::builder().status(400).body(full("")).unwrap(),
                }
            }
        })
        .await;
        Receiver { addr, inbox, task }
    }

    /// OTLP/gRPC: tonic's generated `TraceService` server over HTTP/2.
    async fn grpc() -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let svc = TraceServiceServer::new(Grpc(inbox.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, inbox, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (10 s at most) until `n` spans arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        let wait = async {
            loop {
                let arrived = self.inbox.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                {
                    let spans = self.inbox.spans.lock().unwrap();
                    if spans.len() >= n {
                        return spans.clone();
                    }
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{n} spans did not arrive within 10 s: {:?}",
                    self.inbox.spans.lock().unwrap()
                )
            })
    }
}

fn tracing_section(endpoint: &str, extra: &str) -> String {
    format!("[tracing]\notlp_endpoint = \"{endpoint}\"\nschedule_delay = \"20ms\"\n{extra}\n")
}

/// The trace id and parent span id of a `traceparent` value, and its sampled flag.
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    assert_eq!(p[0], "00");
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

fn upstream_traceparent(env: &Env) -> Option<String> {
    env.upstream
        .last()
        .headers
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_string())
}

async fn traced_get(env: &Env, token: Option<&str>, traceparent: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h: Vec<(&str, &str)> = vec![];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    if let Some(tp) = traceparent {
        h.push(("traceparent", tp));
        h.push(("tracestate", "vendor=abc"));
    }
    request(env.addr(), "GET", "/api/x", &h, "").await
}

async fn the_span_continues_the_callers_trace(recv: Receiver) {
    let env = Env::start(&tracing_section(&recv.url(), "")).await;
    let token = sign(&access_claims(""));
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let up = upstream_traceparent(&env).expect("the upstream got a traceparent");
    let (up_trace, up_parent, up_flags) = parts(&up);
    assert_eq!(up_trace, CALLER_TRACE);
    assert_ne!(
        up_parent, CALLER_SPAN,
        "the sidecar's span is the upstream's parent"
    );
    assert_eq!(up_flags, "01");
    assert_eq!(
        env.upstream.last().headers["tracestate"],
        "vendor=abc",
        "tracestate goes on with the caller's trace"
    );

    let spans = recv.wait_for(1).await;
    let s = &spans[0];
    assert_eq!(s.service, "cognito-sidecar");
    assert_eq!(s.trace_id(), CALLER_TRACE);
    assert_eq!(s.parent_span_id(), CALLER_SPAN);
    assert_eq!(s.span_id(), up_parent);
    assert_eq!(s.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(s.attr("http.route").as_deref(), Some("default"));
    assert_eq!(s.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(s.attr("url.path").as_deref(), Some("/api/x"));
    assert_eq!(s.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(s.attr("sidecar.outcome").as_deref(), Some("forwarded"));
    assert_eq!(s.attr("sidecar.listener"), None, "the proxy listener's");
    assert_eq!(s.attr("sidecar.issuer").as_deref(), Some("test"));
    assert_eq!(s.attr("sidecar.client_id").as_deref(), Some(CLIENT));
    assert_eq!(s.attr("enduser.id").as_deref(), Some(CLIENT));
    assert_eq!(s.attr("sidecar.token_cache_hit").as_deref(), Some("false"));
    for timing in ["sidecar.verify_us", "sidecar.upstream_us"] {
        let us: i64 = s.attr(timing).expect(timing).parse().unwrap();
        assert!(us >= 0, "{timing}");
    }
    let events: Vec<&str> = s.span.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["token verified", "upstream response headers"]);
    assert!(s.span.start_time_unix_nano <= s.span.end_time_unix_nano);
    for e in &s.span.events {
        assert!(
            (s.span.start_time_unix_nano..=s.span.end_time_unix_nano).contains(&e.time_unix_nano),
            "{e:?}"
        );
    }
    // No token contents anywhere in the span: not the token, not any of its segments.
    let dump = format!("{:?}", s.span);
    for part in token.split('.') {
        assert!(!dump.contains(part), "a token segment is in the span");
    }

    // The same token twice more: its second use caches it (admission.rs), its third is a
    // cache hit; and a refused request has its span too.
    for _ in 0..2 {
        assert_eq!(traced_get(&env, Some(&token), None).await.status, 200);
    }
    let r = traced_get(&env, None, None).await;
    assert_eq!(r.status, 401);
    let spans = recv.wait_for(4).await;
    let hits: Vec<_> = spans[1..3]
        .iter()
        .map(|s| s.attr("sidecar.token_cache_hit"))
        .collect();
    assert_eq!(hits, [Some("false".into()), Some("true".into())]);
    assert_eq!(spans[2].parent_span_id(), "", "a new trace has no parent");
    let refused = &spans[3];
    assert_eq!(
        refused.attr("http.response.status_code").as_deref(),
        Some("401")
    );
    assert_ne!(
        refused.attr("sidecar.outcome").as_deref(),
        Some("forwarded")
    );
    assert_eq!(refused.attr("sidecar.client_id"), None);
}

#[tokio::test]
async fn http_protobuf_spans_continue_the_callers_trace() {
    the_span_continues_the_callers_trace(Receiver::http().await).await;
}

#[tokio::test]
async fn grpc_spans_continue_the_callers_trace() {
    let recv = Receiver::grpc().await;
    let env = Env::start(&tracing_section(&recv.url(), "otlp_protocol = \"grpc\"")).await;
    let token = sign(&access_claims(""));
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, up_parent, _) = parts(&upstream_traceparent(&env).unwrap());
    let spans = recv.wait_for(1).await;
    assert_eq!(spans[0].service, "cognito-sidecar");
    assert_eq!(spans[0].trace_id(), CALLER_TRACE);
    assert_eq!(spans[0].parent_span_id(), CALLER_SPAN);
    assert_eq!(spans[0].span_id(), up_parent);
    assert_eq!(
        spans[0].attr("sidecar.outcome").as_deref(),
        Some("forwarded")
    );
}

#[tokio::test]
async fn an_untrusted_caller_gets_a_new_trace_linking_its_own() {
    let recv = Receiver::http().await;
    let env = Env::start(&tracing_section(&recv.url(), "trust_incoming = false")).await;
    let token = sign(&access_claims(""));
    // Not sampled by the caller: the edge samples by its own ratio (1.0) all the same.
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(false))).await;
    assert_eq!(r.status, 200);
    let (up_trace, up_parent, up_flags) = parts(&upstream_traceparent(&env).unwrap());
    assert_ne!(up_trace, CALLER_TRACE);
    assert_eq!(up_flags, "01");
    assert!(
        env.upstream.last().headers.get("tracestate").is_none(),
        "the caller's tracestate belongs to its trace"
    );
    let spans = recv.wait_for(1).await;
    let s = &spans[0];
    assert_eq!(s.trace_id(), up_trace);
    assert_eq!(s.span_id(), up_parent);
    assert_eq!(s.parent_span_id(), "");
    assert_eq!(s.span.links.len(), 1);
    assert_eq!(hex(&s.span.links[0].trace_id), CALLER_TRACE);
    assert_eq!(hex(&s.span.links[0].span_id), CALLER_SPAN);
}

#[tokio::test]
async fn propagate_false_forwards_no_trace_context() {
    let recv = Receiver::http().await;
    let env = Env::start(&tracing_section(&recv.url(), "propagate = false")).await;
    let token = sign(&access_claims(""));
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert!(
        seen.headers.get("traceparent").is_none(),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers.get("tracestate").is_none());
    // The sidecar's own span is a trace of its own: the client's header was not read.
    let spans = recv.wait_for(1).await;
    assert_ne!(spans[0].trace_id(), CALLER_TRACE);
    assert_eq!(spans[0].parent_span_id(), "");
}

#[tokio::test]
async fn sample_ratio_zero_exports_nothing_but_still_propagates() {
    let recv = Receiver::http().await;
    let env = Env::start(&tracing_section(&recv.url(), "sample_ratio = 0.0")).await;
    let token = sign(&access_claims(""));
    let r = traced_get(&env, Some(&token), None).await;
    assert_eq!(r.status, 200);
    let (unsampled_trace, _, flags) = parts(&upstream_traceparent(&env).unwrap());
    assert_eq!(flags, "00", "not sampled, and the upstream is told so");
    // Parent-based: a caller's sampled trace is sampled. Spans are exported in order, so
    // once this one arrived, the first would have been before it.
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200);
    let spans = recv.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].trace_id(), CALLER_TRACE);
    assert_ne!(spans[0].trace_id(), unsampled_trace);
}

#[tokio::test]
async fn without_an_endpoint_the_context_goes_on_or_is_made() {
    let env = Env::start("").await;
    let token = sign(&access_claims(""));
    let tp = caller_traceparent(true);
    let r = traced_get(&env, Some(&token), Some(&tp)).await;
    assert_eq!(r.status, 200);
    assert_eq!(upstream_traceparent(&env).as_deref(), Some(tp.as_str()));
    assert_eq!(env.upstream.last().headers["tracestate"], "vendor=abc");
    // None sent, or one that is not W3C: a new one (sampled: sample_ratio is 1.0).
    for sent in [None, Some("00-xyz-00f067aa0ba902b7-01")] {
        let r = traced_get(&env, Some(&token), sent).await;
        assert_eq!(r.status, 200);
        let made = upstream_traceparent(&env).unwrap();
        let (trace, parent, flags) = parts(&made);
        assert_eq!((trace.len(), parent.len(), flags.as_str()), (32, 16, "01"));
        assert_ne!(trace, CALLER_TRACE);
        assert!(
            env.upstream.last().headers.get("tracestate").is_none(),
            "no tracestate without the caller's trace"
        );
    }
}

#[tokio::test]
async fn a_dead_collector_changes_nothing_for_clients() {
    // A port that was just free: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let env = Env::start(&tracing_section(&format!("http://{dead}"), "")).await;
    let token = sign(&access_claims(""));
    for _ in 0..20 {
        let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = traced_get(&env, None, None).await;
    assert_eq!(r.status, 401);
    let admin = env.admin();
    eventually(Duration::from_secs(10), || async move {
        let m = get(admin, "/metrics").await.body;
        dropped(&m) > 0
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_spans_without_waiting() {
    // A collector that accepts connections and never answers: exports hang until their
    // timeout, and the queue (one span) fills.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hang = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let env = Env::start(&tracing_section(
        &format!("http://{addr}"),
        "max_queue_size = 1",
    ))
    .await;
    let token = sign(&access_claims(""));
    for _ in 0..10 {
        let r = traced_get(&env, Some(&token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let m = env.metrics().await;
    assert!(dropped(&m) >= 8, "{m}");
}

fn dropped(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sidecar_trace_spans_dropped_total "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_graceful_stop_exports_what_is_queued() {
    let recv = Receiver::http().await;
    // An hour between exports: only the stop can send this span.
    let text = tracing_section(&recv.url(), "").replace("\"20ms\"", "\"1h\"");
    let env = Env::start(&text).await;
    let token = sign(&access_claims(""));
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200);
    assert!(recv.inbox.spans.lock().unwrap().is_empty());
    env.sidecar.shutdown().await;
    let spans = recv.wait_for(1).await;
    assert_eq!(spans[0].trace_id(), CALLER_TRACE);
}

#[tokio::test]
async fn spans_a_collector_rejects_are_counted_over_http_and_grpc() {
    for (recv, protocol) in [
        (Receiver::http().await, "http/protobuf"),
        (Receiver::grpc().await, "grpc"),
    ] {
        recv.inbox
            .reject
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let env = Env::start(&tracing_section(
            &recv.url(),
            &format!("otlp_protocol = \"{protocol}\""),
        ))
        .await;
        let token = sign(&access_claims(""));
        let r = traced_get(&env, Some(&token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // The collector took the export and said it rejected one span of it.
        recv.wait_for(1).await;
        let counted = async {
            loop {
                if dropped(&env.metrics().await) == 1 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), counted)
            .await
            .unwrap_or_else(|_| panic!("{protocol}: the rejected span was not counted"));
    }
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_exporter_and_moves_to_a_new_collector() {
    let first = Receiver::http().await;
    let second = Receiver::grpc().await;
    let env = Env::start(&tracing_section(&first.url(), "")).await;
    let token = sign(&access_claims(""));
    let text = |section: &str| config_text(&env.upstream.url(), &env.jwks.url(), section);
    assert_eq!(traced_get(&env, Some(&token), None).await.status, 200);
    first.wait_for(1).await;
    // The same [tracing]: the same exporter, still sending to the first collector.
    env.sidecar
        .reload(config(&text(&tracing_section(&first.url(), ""))))
        .unwrap();
    assert_eq!(traced_get(&env, Some(&token), None).await.status, 200);
    first.wait_for(2).await;
    // Another collector and protocol: the next span goes there, none to the first.
    env.sidecar
        .reload(config(&text(&tracing_section(
            &second.url(),
            "otlp_protocol = \"grpc\"",
        ))))
        .unwrap();
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200);
    let spans = second.wait_for(1).await;
    assert_eq!(spans[0].trace_id(), CALLER_TRACE);
    assert_eq!(first.inbox.spans.lock().unwrap().len(), 2);
    // Without an endpoint: no spans, the context still goes on.
    env.sidecar.reload(config(&text(""))).unwrap();
    let r = traced_get(&env, Some(&token), Some(&caller_traceparent(true))).await;
    assert_eq!(r.status, 200);
    let (up_trace, up_parent, _) = parts(&upstream_traceparent(&env).unwrap());
    assert_eq!(
        (up_trace.as_str(), up_parent.as_str()),
        (CALLER_TRACE, CALLER_SPAN)
    );
    assert_eq!(second.inbox.spans.lock().unwrap().len(), 1);
}
