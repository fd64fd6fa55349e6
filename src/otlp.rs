//! The OTLP export of request spans (`[tracing] otlp_endpoint`).
//!
//! A request's span reaches this module as a [`SpanRecord`]: ids, times, indices and the
//! few strings it names, built when the request ends ([`crate::trace::Tracing::end`]) and
//! pushed onto a bounded queue ([`Exporter::push`]: one uncontended lock). Everything else
//! happens on the exporter's own thread (`otlp-export`): every `schedule_delay`, or as soon
//! as a batch is full, it takes up to 512 records, writes them as one OTLP
//! `ExportTraceServiceRequest` ([`encode_request`]) and sends it, over HTTP/protobuf
//! (`POST .../v1/traces`, reqwest) or OTLP/gRPC (tonic, `TraceService/Export`), on a
//! single-threaded Tokio runtime of its own.
//!
//! Why not the SDK's `Tracer`, `BatchSpanProcessor` and OTLP exporter: measured, they cost
//! 3.5 µs per span on the request's thread (the span builder, `SpanData`, the processor's
//! hand-off) and 5.9 µs on the exporter's (`SpanData` to the protobuf structures, key by
//! key, each string copied), 0.70x of the throughput without tracing; building the
//! `opentelemetry-proto` structures ourselves still cost 13k instructions per span, most of
//! it allocating and freeing their strings. So the wire bytes are written straight from the
//! record with prost's encoding primitives, in the field numbers and order of the published
//! protos; a test checks that they decode, through `opentelemetry-proto`'s own types, to
//! exactly the message built the long way (the tests' `span_of`), and that the bytes are equal.
//! Sampling (`ParentBased(TraceIdRatioBased)`) and propagation (`TraceContextPropagator`)
//! stay the SDK's, in `crate::trace`.
//!
//! Spans are dropped, never waited for, and counted in `sidecar_trace_spans_dropped_total`:
//! a record that finds the queue full, every span of an export that failed (collector down,
//! refusing, slower than the export timeout), and the spans a collector says it rejected
//! (`partial_success`).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::encoding::{encode_varint, encoded_len_varint, WireType};
use prost::Message as _;

use crate::config::{OtlpProtocol, TracingConfig};

/// The most spans one export carries (the SDK's default `max_export_batch_size`).
const MAX_BATCH: usize = 512;

/// The instrumentation scope of every span.
const SCOPE: &str = "cognito-sidecar";

/// A span context of the caller's: the parent of our span, or the one it links.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// Its `tracestate`, as a header value (empty: none).
    pub trace_state: String,
}

/// The strings a span names, each set at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// A method other than the standard ones (`SpanRecord::method`).
    Method,
    /// The normalised path (never the query).
    Path,
    /// The route's label (absent: no route was chosen, `"-"`).
    Route,
    /// The verifying issuer's name.
    Issuer,
    Sub,
    ClientId,
}

/// How many bytes of a record's strings are kept inline.
const INLINE: usize = 192;

/// A record's strings in one buffer, inline up to 192 bytes: a typical request's method,
/// path, route, issuer, `sub` and `client_id` cost no allocation, and nothing is shared with
/// the request's thread (no reference count both threads touch).
#[derive(Debug, Clone, PartialEq)]
pub struct Texts {
    inline: [u8; INLINE],
    /// All the bytes, once they outgrew `inline` (then `inline` is unused).
    spilled: Vec<u8>,
    len: u32,
    /// (start, end) of each [`Text`]; start > end: absent.
    at: [(u32, u32); 6],
}

impl Default for Texts {
    fn default() -> Texts {
        Texts::new()
    }
}

impl Texts {
    pub fn new() -> Texts {
        Texts {
            inline: [0; INLINE],
            spilled: Vec::new(),
            len: 0,
            at: [(1, 0); 6],
        }
    }

    pub fn set(&mut self, t: Text, s: &str) {
        let b = s.as_bytes();
        let start = self.len as usize;
        let Some(end) = start
            .checked_add(b.len())
            .filter(|&e| u32::try_from(e).is_ok())
        else {
            return;
        };
        if self.spilled.is_empty() && end <= INLINE {
            self.inline[start..end].copy_from_slice(b);
        } else {
            if self.spilled.is_empty() {
                self.spilled.reserve(end);
                self.spilled.extend_from_slice(&self.inline[..start]);
            }
            self.spilled.extend_from_slice(b);
        }
        // Both fit in u32 (checked above).
        self.len = end as u32;
        self.at[t as usize] = (start as u32, end as u32);
    }

    fn buf(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len as usize]
        } else {
            &self.spilled
        }
    }

    /// The string's bytes (UTF-8: whole strings were appended). The encoder writes them as
    /// they are; protobuf strings are UTF-8 bytes on the wire.
    pub fn bytes(&self, t: Text) -> Option<&[u8]> {
        let (start, end) = self.at[t as usize];
        if start > end {
            return None;
        }
        self.buf().get(start as usize..end as usize)
    }

    pub fn get(&self, t: Text) -> Option<&str> {
        std::str::from_utf8(self.bytes(t)?).ok()
    }
}

/// The token's verification: when (Unix nanoseconds), how long (µs), from the cache or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verification {
    pub at: u64,
    pub micros: i64,
    pub cache_hit: bool,
}

/// One finished request's span, as the request's thread hands it over. The span's name and
/// attributes are derived from it on the export thread (`attributes` says which).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span (a trusted parent). Ours is always sampled: records are only made
    /// for sampled requests.
    pub parent: Option<Remote>,
    pub link: Option<Remote>,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    /// A standard method; `None`: [`Text::Method`].
    pub method: Option<&'static str>,
    pub texts: Texts,
    pub status: u16,
    pub outcome: &'static str,
    /// On the decision listener.
    pub decision: bool,
    pub verified: Option<Verification>,
    /// Forwarded: the upstream's time to response headers (µs), and when they came.
    pub upstream: Option<(i64, u64)>,
}

impl SpanRecord {
    fn method(&self) -> &[u8] {
        match self.method {
            Some(m) => m.as_bytes(),
            None => self.texts.bytes(Text::Method).unwrap_or_default(),
        }
    }
}

/// Unix nanoseconds of `t` (0 before 1970).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The queue between the requests and the export thread.
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    max: usize,
    batch: usize,
    dropped: prometheus::IntCounter,
}

struct Queue {
    spans: Vec<SpanRecord>,
    stop: bool,
}

impl Shared {
    /// Queues `r`, or drops and counts it when the queue is full. Wakes the thread when a
    /// batch is complete.
    fn push(&self, r: SpanRecord) {
        let mut q = self.queue.lock().expect("lock poisoned");
        if q.spans.len() >= self.max {
            drop(q);
            self.dropped.inc();
            return;
        }
        q.spans.push(r);
        let full = q.spans.len() == self.batch;
        drop(q);
        if full {
            self.ready.notify_one();
        }
    }

    /// Waits until a batch is full, `deadline` passed or a stop was asked, and takes what
    /// is queued, leaving `spare` (empty, its capacity kept) in its place: the two buffers
    /// take turns, so pushing never allocates once they have grown. Returns the spans, and
    /// whether to stop once the queue is empty.
    fn take(&self, deadline: Instant, spare: Vec<SpanRecord>) -> (Vec<SpanRecord>, bool) {
        debug_assert!(spare.is_empty());
        let mut q = self.queue.lock().expect("lock poisoned");
        loop {
            if q.stop || q.spans.len() >= self.batch {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = self
                .ready
                .wait_timeout(q, deadline - now)
                .expect("lock poisoned")
                .0;
        }
        (std::mem::replace(&mut q.spans, spare), q.stop)
    }

    fn stop(&self) {
        self.queue.lock().expect("lock poisoned").stop = true;
        self.ready.notify_one();
    }
}

/// The export pipeline of one `[tracing]` configuration: its queue and its thread.
pub struct Exporter {
    /// What it was built for: a reload with the same settings keeps it.
    key: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where the batches go.
enum Sink {
    Http {
        client: reqwest::Client,
        url: String,
        headers: http::HeaderMap,
    },
    Grpc {
        endpoint: Box<tonic::transport::Endpoint>,
        /// Made on the first export: the channel needs the export thread's runtime.
        client: Option<tonic::client::Grpc<tonic::transport::Channel>>,
        metadata: tonic::metadata::MetadataMap,
    },
}

impl Exporter {
    pub fn key_of(cfg: &TracingConfig) -> String {
        format!(
            "{:?} {} {:?} {} {:?} {:?} {}",
            cfg.otlp_endpoint,
            cfg.otlp_protocol,
            cfg.headers,
            cfg.max_queue_size,
            cfg.schedule_delay,
            cfg.timeout,
            cfg.service_name,
        )
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The pipeline for `cfg` (`None` without an endpoint), its thread started.
    pub fn build(
        cfg: &TracingConfig,
        dropped: prometheus::IntCounter,
    ) -> anyhow::Result<Option<Exporter>> {
        let Some(url) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        let sink = match cfg.otlp_protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut headers = http::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    headers.append(
                        http::HeaderName::from_bytes(k.as_bytes())?,
                        http::HeaderValue::from_str(v)?,
                    );
                }
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-protobuf"),
                );
                let client = reqwest::Client::builder()
                    .use_preconfigured_tls(crate::tls::client_config(None)?)
                    .timeout(cfg.timeout)
                    .build()?;
                Sink::Http {
                    client,
                    url: url.clone(),
                    headers,
                }
            }
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    metadata.append(
                        tonic::metadata::MetadataKey::from_bytes(k.as_bytes())?,
                        v.parse()?,
                    );
                }
                let endpoint = tonic::transport::Endpoint::from_shared(url.clone())?
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout);
                Sink::Grpc {
                    endpoint: Box::new(endpoint),
                    client: None,
                    metadata,
                }
            }
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                spans: Vec::new(),
                stop: false,
            }),
            ready: Condvar::new(),
            max: cfg.max_queue_size,
            batch: cfg.max_queue_size.min(MAX_BATCH),
            dropped,
        });
        let resource = cfg.service_name.clone();
        let thread = {
            let shared = Arc::clone(&shared);
            let delay = cfg.schedule_delay;
            let timeout = cfg.timeout;
            std::thread::Builder::new()
                .name("otlp-export".into())
                .spawn(move || run(&shared, sink, &resource, delay, timeout))?
        };
        Ok(Some(Exporter {
            key: Self::key_of(cfg),
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Queues a finished span (dropped and counted when the queue is full). Never blocks
    /// beyond a short lock.
    pub fn push(&self, r: SpanRecord) {
        self.shared.push(r);
    }

    /// Exports what is queued (each batch within the export timeout) and stops the thread.
    /// Blocking: call it off the runtime's workers.
    pub fn shutdown(&self) {
        self.shared.stop();
        let t = self.thread.lock().expect("lock poisoned").take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    /// The thread exports what is left and ends on its own (never joined here: the last
    /// state using an exporter may be dropped on a runtime worker after a reload).
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// The export thread. `service` is the resource's `service.name`.
fn run(shared: &Shared, mut sink: Sink, service: &str, delay: Duration, timeout: Duration) {
    batch_scheduling();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "the OTLP exporter cannot start: spans are dropped");
            return;
        }
    };
    let mut scratch = Buffers::default();
    let mut spare = Vec::new();
    // Failing since the last export that went through: warn once, then only count.
    let mut failing = false;
    let mut next = Instant::now() + delay;
    loop {
        let (mut spans, stopping) = shared.take(next, spare);
        if Instant::now() >= next || spans.len() >= shared.batch {
            next = Instant::now() + delay;
        }
        if spans.is_empty() && stopping {
            return;
        }
        for batch in spans.chunks(shared.batch) {
            let n = batch.len() as u64;
            let body = encode_request(batch, service, &mut scratch);
            let sent = rt.block_on(async { tokio::time::timeout(timeout, sink.send(body)).await });
            let lost = match sent {
                Ok(Ok(rejected)) => {
                    failing = false;
                    rejected.min(n)
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no answer within {timeout:?}"),
                    };
                    if failing {
                        tracing::debug!(error = %why, spans = n, "OTLP export failed");
                    } else {
                        tracing::warn!(
                            error = %why,
                            spans = n,
                            "OTLP export failed: spans are dropped and counted until one goes through"
                        );
                    }
                    failing = true;
                    n
                }
            };
            shared.dropped.inc_by(lost);
        }
        spans.clear();
        spare = spans;
    }
}

/// Puts this thread under `SCHED_BATCH` (Linux): the same share of the CPU as any other
/// thread, but waking it up (a batch is full, the delay passed) never preempts a running
/// thread, so an export waits for the request threads' time slice instead of interrupting
/// requests in flight on a busy machine.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call, and
        // pid 0 names the calling thread; the call reads `param` and changes nothing else.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the OTLP exporter keeps the default scheduling"
            );
        }
    }
}

/// The gRPC method the OTLP protos define.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl Sink {
    /// Sends one encoded `ExportTraceServiceRequest`; the number of spans the collector
    /// rejected, or why it failed.
    async fn send(&mut self, body: Bytes) -> Result<u64, String> {
        let response = match self {
            Sink::Http {
                client,
                url,
                headers,
            } => {
                let r = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = r.status();
                if !status.is_success() {
                    return Err(format!("the collector answered {status}"));
                }
                let body = r.bytes().await.map_err(|e| e.to_string())?;
                // An empty or non-protobuf body is a success without partial details.
                ExportTraceServiceResponse::decode(body).unwrap_or_default()
            }
            Sink::Grpc {
                endpoint,
                client,
                metadata,
            } => {
                let client =
                    client.get_or_insert_with(|| tonic::client::Grpc::new(endpoint.connect_lazy()));
                client
                    .ready()
                    .await
                    .map_err(|e| format!("the collector is unreachable: {e}"))?;
                let mut r = tonic::Request::new(body);
                *r.metadata_mut() = metadata.clone();
                client
                    .unary(
                        r,
                        http::uri::PathAndQuery::from_static(EXPORT_PATH),
                        Encoded,
                    )
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                    .into_inner()
            }
        };
        Ok(response
            .partial_success
            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)))
    }
}

/// The gRPC codec of an export: the request already encoded, the response decoded.
#[derive(Debug, Clone, Copy, Default)]
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Self::Encoder {
        Encoded
    }

    fn decoder(&mut self) -> Self::Decoder {
        Encoded
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Encoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// Span flags as OTLP defines them: the W3C trace flags, and that the parent's remoteness
/// is known (and whether it is remote).
fn flags(trace_flags: u8, remote: bool) -> u32 {
    // SpanFlags: CONTEXT_HAS_IS_REMOTE_MASK = 0x100, CONTEXT_IS_REMOTE_MASK = 0x200.
    let mut f = u32::from(trace_flags) | 0x100;
    if remote {
        f |= 0x200;
    }
    f
}

/// An attribute's or an event's name, and the bytes it starts with on the wire (written
/// once, at compile time).
struct Name {
    /// The name (the tests compare it with what was decoded).
    #[cfg_attr(not(test), allow(dead_code))]
    text: &'static str,
    /// An attribute (`KeyValue`): `key` (field 1) with the name, then the key of `value`
    /// (field 2, its length follows). An event: `name` (field 2) with the name.
    wire: &'static [u8],
}

/// `field` (length-delimited, one-byte key), its one-byte length and `name`, then `tail`
/// (0: none) in `N` bytes: `N` is the name's length plus 2, plus 1 with a tail.
const fn name_wire<const N: usize>(field: u8, name: &str, tail: u8) -> [u8; N] {
    let b = name.as_bytes();
    assert!(!b.is_empty() && b.len() < 0x80 && field < 0x10);
    assert!(N == b.len() + 2 + (tail != 0) as usize);
    let mut out = [0; N];
    out[0] = field << 3 | WireType::LengthDelimited as u8;
    out[1] = b.len() as u8;
    let mut i = 0;
    while i < b.len() {
        out[2 + i] = b[i];
        i += 1;
    }
    if tail != 0 {
        out[N - 1] = tail;
    }
    out
}

/// An attribute's name: `KeyValue.key` (1) and the key of `KeyValue.value` (2).
macro_rules! attribute {
    ($name:literal) => {{
        const NAME: &Name = &Name {
            text: $name,
            wire: &name_wire::<{ $name.len() + 3 }>(1, $name, 2 << 3 | 2),
        };
        NAME
    }};
}

/// An event's name: `Event.name` (2).
macro_rules! event {
    ($name:literal) => {{
        const NAME: &Name = &Name {
            text: $name,
            wire: &name_wire::<{ $name.len() + 2 }>(2, $name, 0),
        };
        NAME
    }};
}

/// A span attribute's value (a string as its UTF-8 bytes).
enum Attr<'a> {
    Str(&'a [u8]),
    Int(i64),
    Bool(bool),
}

/// The span's name and attributes, in the order they are sent: `"{method} {route}"` (the
/// method alone without a route), then `http.request.method`, `url.path`, `http.route`,
/// `http.response.status_code`, `sidecar.outcome`, `sidecar.listener` (decision listener
/// only), `sidecar.issuer`, `enduser.id`, `sidecar.client_id`, `sidecar.token_cache_hit`,
/// `sidecar.verify_us`, `sidecar.upstream_us`, each when known.
fn attributes<'a>(r: &'a SpanRecord, mut each: impl FnMut(&'static Name, Attr<'a>)) {
    let t = &r.texts;
    each(attribute!("http.request.method"), Attr::Str(r.method()));
    if let Some(p) = t.bytes(Text::Path) {
        each(attribute!("url.path"), Attr::Str(p));
    }
    each(
        attribute!("http.route"),
        Attr::Str(t.bytes(Text::Route).unwrap_or(b"-")),
    );
    each(
        attribute!("http.response.status_code"),
        Attr::Int(i64::from(r.status)),
    );
    each(
        attribute!("sidecar.outcome"),
        Attr::Str(r.outcome.as_bytes()),
    );
    if r.decision {
        each(attribute!("sidecar.listener"), Attr::Str(b"decision"));
    }
    if let Some(v) = t.bytes(Text::Issuer) {
        each(attribute!("sidecar.issuer"), Attr::Str(v));
    }
    if let Some(v) = t.bytes(Text::Sub) {
        each(attribute!("enduser.id"), Attr::Str(v));
    }
    if let Some(v) = t.bytes(Text::ClientId) {
        each(attribute!("sidecar.client_id"), Attr::Str(v));
    }
    if let Some(v) = &r.verified {
        each(
            attribute!("sidecar.token_cache_hit"),
            Attr::Bool(v.cache_hit),
        );
        each(attribute!("sidecar.verify_us"), Attr::Int(v.micros));
    }
    if let Some((us, _)) = r.upstream {
        each(attribute!("sidecar.upstream_us"), Attr::Int(us));
    }
}

/// The span's events (no attributes of their own): (name, Unix nanoseconds).
fn events(r: &SpanRecord, mut each: impl FnMut(&'static Name, u64)) {
    if let Some(v) = &r.verified {
        each(event!("token verified"), v.at);
    }
    if let Some((_, at)) = r.upstream {
        each(event!("upstream response headers"), at);
    }
}

fn span_name(r: &SpanRecord) -> (&[u8], Option<&[u8]>) {
    (
        r.method(),
        r.texts.bytes(Text::Route).filter(|route| *route != b"-"),
    )
}

// The protobuf writing: proto3 as prost writes it (defaults omitted, a oneof's value always
// written, fields in tag order).

/// A varint; most here are one byte (tags, short lengths).
#[inline]
fn varint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

/// A field's key: its number and wire type (`field << 3 | type`).
#[inline]
fn key(buf: &mut Vec<u8>, field: u32, wire: WireType) {
    varint(buf, u64::from(field) << 3 | wire as u64);
}

#[inline]
fn put_len_key(buf: &mut Vec<u8>, field: u32, len: usize) {
    key(buf, field, WireType::LengthDelimited);
    varint(buf, len as u64);
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_len_key(buf, field, b.len());
        buf.extend_from_slice(b);
    }
}

fn put_fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, WireType::SixtyFourBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(buf, field, WireType::ThirtyTwoBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_varint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, WireType::Varint);
        varint(buf, v);
    }
}

/// The length of a length-delimited field of one-byte tag with `len` bytes of content.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A `KeyValue` (common.v1) as field `field` of its parent.
fn put_key_value(buf: &mut Vec<u8>, field: u32, name: &Name, value: &Attr<'_>) {
    // AnyValue: string_value = 1, bool_value = 2, int_value = 3 (the oneof's value is
    // written even when it is the default).
    let any = match value {
        Attr::Str(s) => field_len(s.len()),
        Attr::Bool(_) => 2,
        Attr::Int(i) => 1 + encoded_len_varint(*i as u64),
    };
    // `name.wire` is the key and the value's field key: its length follows.
    let kv = name.wire.len() + encoded_len_varint(any as u64) + any;
    put_len_key(buf, field, kv);
    buf.extend_from_slice(name.wire);
    varint(buf, any as u64);
    match value {
        Attr::Str(s) => {
            buf.push(1 << 3 | WireType::LengthDelimited as u8);
            varint(buf, s.len() as u64);
            buf.extend_from_slice(s);
        }
        Attr::Bool(b) => buf.extend_from_slice(&[2 << 3 | WireType::Varint as u8, u8::from(*b)]),
        Attr::Int(i) => {
            buf.push(3 << 3 | WireType::Varint as u8);
            varint(buf, *i as u64);
        }
    }
}

/// One `Span` (trace.v1), its fields only (no tag or length of its own).
fn put_span(buf: &mut Vec<u8>, r: &SpanRecord, name: &mut Vec<u8>) {
    put_bytes(buf, 1, &r.trace_id);
    put_bytes(buf, 2, &r.span_id);
    if let Some(p) = &r.parent {
        put_bytes(buf, 3, p.trace_state.as_bytes());
        put_bytes(buf, 4, &p.span_id);
    }
    name.clear();
    match span_name(r) {
        (m, Some(route)) => {
            name.extend_from_slice(m);
            name.push(b' ');
            name.extend_from_slice(route);
        }
        (m, None) => name.extend_from_slice(m),
    }
    put_bytes(buf, 5, name);
    put_varint(buf, 6, 2); // SPAN_KIND_SERVER
    put_fixed64(buf, 7, r.start);
    put_fixed64(buf, 8, r.end);
    attributes(r, |k, v| put_key_value(buf, 9, k, &v));
    events(r, |n, at| {
        // Event: time_unix_nano = 1 (fixed64), name = 2 (in `n.wire`).
        let len = if at == 0 { 0 } else { 9 } + n.wire.len();
        put_len_key(buf, 11, len);
        put_fixed64(buf, 1, at);
        buf.extend_from_slice(n.wire);
    });
    if let Some(l) = &r.link {
        // Link: trace_id = 1, span_id = 2, trace_state = 3, flags = 6 (fixed32).
        let state = l.trace_state.as_bytes();
        let len = field_len(16)
            + field_len(8)
            + if state.is_empty() {
                0
            } else {
                field_len(state.len())
            }
            + 5;
        put_len_key(buf, 13, len);
        put_bytes(buf, 1, &l.trace_id);
        put_bytes(buf, 2, &l.span_id);
        put_bytes(buf, 3, state);
        put_fixed32(buf, 6, flags(l.flags, true));
    }
    // Status: code = 3 (STATUS_CODE_ERROR = 2 for 5xx, else unset); always present.
    if r.status >= 500 {
        put_len_key(buf, 15, 2);
        put_varint(buf, 3, 2);
    } else {
        put_len_key(buf, 15, 0);
    }
    // flags = 16 (prost writes fields in tag order). Ours is sampled; the parent, when
    // there is one, is the caller's (remote).
    put_fixed32(buf, 16, flags(1, r.parent.is_some()));
}

/// The export thread's buffers, kept from one export to the next (their capacity settles at
/// a batch's size instead of being allocated and freed per export).
#[derive(Default)]
pub struct Buffers {
    span: Vec<u8>,
    spans: Vec<u8>,
    name: Vec<u8>,
}

/// One `ExportTraceServiceRequest` of `batch`, for the service `service`.
pub fn encode_request(batch: &[SpanRecord], service: &str, b: &mut Buffers) -> Bytes {
    // The spans, each as ScopeSpans.spans (field 2), into `spans`.
    let Buffers {
        span: scratch,
        spans,
        name,
    } = b;
    spans.clear();
    spans.reserve(batch.len() * 400);
    for r in batch {
        scratch.clear();
        scratch.reserve(512);
        put_span(scratch, r, name);
        put_len_key(spans, 2, scratch.len());
        spans.put_slice(scratch);
    }
    // Resource { attributes = 1: service.name }.
    scratch.clear();
    put_key_value(
        scratch,
        1,
        attribute!("service.name"),
        &Attr::Str(service.as_bytes()),
    );
    let resource_len = scratch.len();
    // InstrumentationScope { name = 1 }.
    let scope_len = field_len(SCOPE.len());
    let scope_spans_len = field_len(scope_len) + spans.len();
    let resource_spans_len = field_len(resource_len) + field_len(scope_spans_len);
    let mut out = Vec::with_capacity(field_len(resource_spans_len));
    // ExportTraceServiceRequest.resource_spans = 1; ResourceSpans.resource = 1,
    // .scope_spans = 2; ScopeSpans.scope = 1.
    put_len_key(&mut out, 1, resource_spans_len);
    put_len_key(&mut out, 1, resource_len);
    out.put_slice(scratch);
    put_len_key(&mut out, 2, scope_spans_len);
    put_len_key(&mut out, 1, scope_len);
    put_bytes(&mut out, 1, SCOPE.as_bytes());
    out.put_slice(spans);
    Bytes::from(out)
}

/// Keeps the exporter across reloads that do not change its settings.
#[derive(Default)]
pub struct Exporters {
    current: Mutex<Option<Arc<Exporter>>>,
}

impl Exporters {
    /// The exporter for `cfg`: the running one if its settings are the same, else a new one.
    pub fn get(
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
        if let Some(e) = cur.as_ref().filter(|e| e.key() == key) {
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

/// For the fuzz target (`fuzz/fuzz_targets/otlp_encode.rs`): a record whose strings, numbers
/// and caller context come from `data`, written by [`encode_request`] and read back with
/// `opentelemetry-proto`'s own types. Panics if the bytes do not decode, or decode to other
/// strings, times, ids or flags than the record's.
#[doc(hidden)]
pub fn fuzz_otlp_encode(data: &[u8]) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    let mut parts = data.split(|&b| b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (method, path, route, issuer, sub, client_id, state, service) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let n = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut texts = Texts::new();
    let texts_given = [
        (Text::Method, &method),
        (Text::Path, &path),
        (Text::Route, &route),
        (Text::Issuer, &issuer),
        (Text::Sub, &sub),
        (Text::ClientId, &client_id),
    ];
    for (t, v) in texts_given {
        if !v.is_empty() || n(0) & 1 == 1 {
            texts.set(t, v);
        }
    }
    let remote = Remote {
        trace_id: [n(1) | 1; 16],
        span_id: [n(2) | 1; 8],
        flags: n(3),
        trace_state: state.clone(),
    };
    let r = SpanRecord {
        trace_id: [n(4) | 1; 16],
        span_id: [n(5) | 1; 8],
        parent: (n(6) & 1 == 1).then(|| remote.clone()),
        link: (n(6) & 2 == 2).then(|| remote.clone()),
        start: u64::from_le_bytes([n(7), n(8), n(9), n(10), n(11), n(12), n(13), n(14)]),
        end: u64::from(n(15)) << 56,
        method: None,
        texts,
        status: u16::from_le_bytes([n(16), n(17)]),
        outcome: "forwarded",
        decision: n(18) & 1 == 1,
        verified: (n(18) & 2 == 2).then_some(Verification {
            at: u64::from(n(19)),
            micros: -i64::from(n(20)),
            cache_hit: n(21) & 1 == 1,
        }),
        upstream: (n(18) & 4 == 4).then_some((i64::MIN + i64::from(n(22)), u64::MAX)),
    };
    let mut scratch = Buffers::default();
    let bytes = encode_request(std::slice::from_ref(&r), &service, &mut scratch);
    let req = ExportTraceServiceRequest::decode(bytes).expect("our bytes are OTLP");
    let rs = &req.resource_spans[0];
    let svc = &rs.resource.as_ref().expect("a resource").attributes[0];
    assert_eq!(
        svc.value.as_ref().and_then(|v| v.value.clone()),
        Some(V::StringValue(service))
    );
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, r.trace_id);
    assert_eq!(span.start_time_unix_nano, r.start);
    assert_eq!(span.end_time_unix_nano, r.end);
    match &r.parent {
        Some(p) => {
            assert_eq!(span.parent_span_id, p.span_id);
            assert_eq!(span.trace_state, p.trace_state);
            assert_eq!(span.flags, 0x301);
        }
        None => assert!(span.parent_span_id.is_empty() && span.flags == 0x101),
    }
    assert_eq!(span.links.len(), usize::from(r.link.is_some()));
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    let s = |v: Option<&str>| v.map(|v| V::StringValue(v.to_string()));
    assert_eq!(
        attr("http.request.method"),
        s(Some(r.texts.get(Text::Method).unwrap_or("")))
    );
    assert_eq!(attr("url.path"), s(r.texts.get(Text::Path)));
    assert_eq!(
        attr("http.route"),
        s(Some(r.texts.get(Text::Route).unwrap_or("-")))
    );
    assert_eq!(attr("enduser.id"), s(r.texts.get(Text::Sub)));
    assert_eq!(attr("sidecar.client_id"), s(r.texts.get(Text::ClientId)));
    assert_eq!(attr("sidecar.issuer"), s(r.texts.get(Text::Issuer)));
    assert_eq!(
        attr("http.response.status_code"),
        Some(V::IntValue(i64::from(r.status)))
    );
    assert_eq!(
        attr("sidecar.upstream_us"),
        r.upstream.map(|(us, _)| V::IntValue(us))
    );
    assert_eq!(
        span.status.as_ref().map(|st| st.code),
        Some(if r.status >= 500 { 2 } else { 0 })
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span, status, ResourceSpans, ScopeSpans, Span, SpanFlags, Status,
    };

    /// The span the long way: `opentelemetry-proto`'s structures, as its SDK transform
    /// fills them (`build_span_flags`, status always present, kind server).
    fn span_of(r: &SpanRecord) -> Span {
        let f = |trace_flags: u8, remote: bool| {
            u32::from(trace_flags)
                | SpanFlags::ContextHasIsRemoteMask as u32
                | if remote {
                    SpanFlags::ContextIsRemoteMask as u32
                } else {
                    0
                }
        };
        let mut attributes = Vec::new();
        attributes_of(r, |k, v| {
            attributes.push(KeyValue {
                key: k.to_string(),
                value: Some(AnyValue {
                    value: Some(match v {
                        Attr::Str(s) => {
                            any_value::Value::StringValue(String::from_utf8(s.to_vec()).unwrap())
                        }
                        Attr::Int(i) => any_value::Value::IntValue(i),
                        Attr::Bool(b) => any_value::Value::BoolValue(b),
                    }),
                }),
            })
        });
        let mut evs = Vec::new();
        events(r, |name, at| {
            evs.push(span::Event {
                time_unix_nano: at,
                name: name.text.to_string(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            })
        });
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let name = match span_name(r) {
            (m, Some(route)) => format!("{} {}", text(m), text(route)),
            (m, None) => text(m),
        };
        Span {
            trace_id: r.trace_id.to_vec(),
            span_id: r.span_id.to_vec(),
            trace_state: r
                .parent
                .as_ref()
                .map(|p| p.trace_state.clone())
                .unwrap_or_default(),
            parent_span_id: r
                .parent
                .as_ref()
                .map_or_else(Vec::new, |p| p.span_id.to_vec()),
            flags: f(1, r.parent.is_some()),
            name,
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: r.start,
            end_time_unix_nano: r.end,
            attributes,
            dropped_attributes_count: 0,
            events: evs,
            dropped_events_count: 0,
            links: r
                .link
                .iter()
                .map(|l| span::Link {
                    trace_id: l.trace_id.to_vec(),
                    span_id: l.span_id.to_vec(),
                    trace_state: l.trace_state.clone(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                    flags: f(l.flags, true),
                })
                .collect(),
            dropped_links_count: 0,
            status: Some(Status {
                message: String::new(),
                code: if r.status >= 500 {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Unset
                } as i32,
            }),
        }
    }

    fn attributes_of<'a>(r: &'a SpanRecord, each: impl FnMut(&'static str, Attr<'a>)) {
        let mut each = each;
        attributes(r, |k, v| each(k.text, v))
    }

    fn request_of(batch: &[SpanRecord], service: &str) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                    }],
                    dropped_attributes_count: 0,
                    entity_refs: Vec::new(),
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.into(),
                        ..Default::default()
                    }),
                    spans: batch.iter().map(span_of).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn record(i: u8) -> SpanRecord {
        SpanRecord {
            trace_id: [i; 16],
            span_id: [i; 8],
            parent: None,
            link: None,
            start: 1,
            end: 2,
            method: Some("GET"),
            texts: Texts::new(),
            status: 200,
            outcome: "forwarded",
            decision: false,
            verified: None,
            upstream: None,
        }
    }

    fn full(i: u8) -> SpanRecord {
        let caller = Remote {
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
            flags: 1,
            trace_state: "a=b,c=d".into(),
        };
        SpanRecord {
            parent: Some(caller.clone()),
            link: Some(Remote {
                flags: 0,
                trace_state: String::new(),
                ..caller
            }),
            start: 1_764_000_000_123_456_789,
            end: 1_764_000_000_124_000_000,
            method: None,
            texts: {
                let mut t = Texts::new();
                t.set(Text::Method, "PROPFIND");
                t.set(Text::Path, "/orders/42/ünï");
                t.set(Text::Route, "orders");
                t.set(Text::Issuer, "cognito");
                // Past the inline buffer.
                t.set(Text::Sub, &"s".repeat(200));
                t.set(Text::ClientId, "abc");
                t
            },
            status: 503,
            outcome: "upstream_unavailable",
            decision: true,
            verified: Some(Verification {
                at: 1_764_000_000_123_500_000,
                micros: 0,
                cache_hit: false,
            }),
            upstream: Some((-1, u64::MAX)),
            ..record(i)
        }
    }

    fn shared(max: usize, batch: usize) -> Shared {
        Shared {
            queue: Mutex::new(Queue {
                spans: Vec::new(),
                stop: false,
            }),
            ready: Condvar::new(),
            max,
            batch,
            dropped: prometheus::IntCounter::new("d", "d").unwrap(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_buffers_take_turns() {
        let s = shared(3, 2);
        for i in 0..5 {
            s.push(record(i));
        }
        assert_eq!(s.dropped.get(), 2);
        // A full batch is taken at once, whatever the deadline.
        let far = Instant::now() + Duration::from_secs(3600);
        let (mut b, stop) = s.take(far, Vec::with_capacity(8));
        assert_eq!(
            b.iter().map(|r| r.trace_id[0]).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(!stop);
        // The spare given is the queue now: pushing into it does not allocate.
        s.push(record(9));
        assert_eq!(s.queue.lock().unwrap().spans.capacity(), 8);
        b.clear();
        // Past the deadline, a partial batch goes; a stop is reported.
        let (mut b, stop) = s.take(Instant::now(), b);
        assert_eq!((b.len(), stop), (1, false));
        b.clear();
        s.stop();
        let (b, stop) = s.take(far, b);
        assert!(b.is_empty() && stop);
    }

    #[test]
    fn the_fuzz_properties_hold_on_the_corpus_kinds() {
        fuzz_otlp_encode(b"");
        fuzz_otlp_encode(&[0xff; 40]);
        fuzz_otlp_encode(b"GET\0/a\0r\0i\0s\0c\0a=b\0svc\0");
        fuzz_otlp_encode("\u{1F600}\0\0\0\0\0\0\0\0\0".as_bytes());
        fuzz_otlp_encode(&[b'x'; 70_000]);
    }

    #[test]
    fn texts_hold_each_string_once_inline_or_not() {
        let mut t = Texts::new();
        assert_eq!(t.get(Text::Path), None);
        t.set(Text::Path, "");
        t.set(Text::Sub, "ü");
        assert_eq!(t.get(Text::Path), Some(""));
        assert_eq!(t.get(Text::Sub), Some("ü"));
        assert_eq!(t.get(Text::Route), None);
        let long = "x".repeat(1000);
        t.set(Text::Route, &long);
        assert_eq!(t.get(Text::Route), Some(long.as_str()));
        assert_eq!(t.get(Text::Sub), Some("ü"));
        t.set(Text::Issuer, "after");
        assert_eq!(t.get(Text::Issuer), Some("after"));
        assert_eq!(t.get(Text::Route), Some(long.as_str()));

        // Exactly the inline bytes, then one more: the earlier strings survive the move.
        let mut t = Texts::new();
        let a = "a".repeat(INLINE - 2);
        t.set(Text::Path, &a);
        t.set(Text::Sub, "bc");
        assert!(t.spilled.is_empty());
        t.set(Text::ClientId, "d");
        assert!(!t.spilled.is_empty());
        assert_eq!(t.get(Text::Path), Some(a.as_str()));
        assert_eq!(t.get(Text::Sub), Some("bc"));
        assert_eq!(t.get(Text::ClientId), Some("d"));
    }

    #[test]
    fn the_written_bytes_are_the_protos_own_encoding() {
        let batches: Vec<Vec<SpanRecord>> = vec![
            vec![record(1)],
            vec![full(2)],
            vec![record(3), full(4), record(5)],
            vec![SpanRecord {
                texts: {
                    let mut t = Texts::new();
                    t.set(Text::Path, "");
                    t.set(Text::Sub, "");
                    t.set(Text::Route, "-");
                    t
                },
                status: 0,
                start: 0,
                ..record(6)
            }],
            (0..200)
                .map(|i| if i % 2 == 0 { full(i) } else { record(i) })
                .collect(),
        ];
        let mut scratch = Buffers::default();
        for batch in &batches {
            let ours = encode_request(batch, "svc-ü", &mut scratch);
            let theirs = request_of(batch, "svc-ü");
            assert_eq!(
                ExportTraceServiceRequest::decode(ours.clone()).unwrap(),
                theirs
            );
            assert_eq!(&ours[..], &theirs.encode_to_vec()[..]);
        }
        // What the SDK would set, spelled out once.
        let s = &request_of(&[full(1)], "x").resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.flags, 0x301);
        assert_eq!(s.links[0].flags, 0x300);
        assert_eq!(s.name, "PROPFIND orders");
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        assert_eq!(s.attributes.len(), 12);
        let root = &request_of(&[record(1)], "x").resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((root.flags, root.name.as_str()), (0x101, "GET"));
        assert!(root.parent_span_id.is_empty());
    }
}
