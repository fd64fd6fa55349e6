//! The upstream: one origin, HTTP/1.1 over TCP or TLS, with a small pool of idle
//! connections; or HTTP/2 (`protocol = "h2c"` / `"auto"`, below) over a few shared ones.
//!
//! The sidecar talks to exactly one origin, so the pool is a LIFO stack of idle hyper
//! `SendRequest`s rather than a general multi-host client: checking a connection out is one
//! uncontended lock and a pop, with no host key to hash and no per-request task. A
//! connection goes back on the stack when its response body has been read to the end (the
//! [`UpstreamBody`] wrapper does that as it is dropped); a response abandoned half-way, an
//! upgrade or any error closes the connection instead. Idle connections older than
//! `pool_idle_timeout` are closed by a reaper task and skipped at checkout; at most
//! `pool_max_idle` are kept.
//!
//! With `max_connections`, a semaphore permit is taken before checkout and held with the
//! connection until the response body is done; requests beyond it wait in arrival order.
//!
//! Without it, `soft_max_connections` (default 32) does the same with two escapes, so that
//! it bounds the connections (and their memory) a fast upstream needs without letting
//! stuck exchanges starve the rest: a request that has waited `soft_max_wait` while no
//! permit came back at all (every holder is stuck, say in long polls) goes ahead on a
//! permit added for it and taken back later (one watchdog task does that for the whole
//! queue, see `Soft`: a waiting request holds no timer); and a response whose body is long
//! or of unknown length (downloads, server-sent events) gives its permit back as soon as
//! its head arrives. While permits keep coming back, a request waits its turn however long
//! the queue (an overloaded sidecar does not open more connections for it), within
//! `request_timeout`.
//!
//! A request that a pooled connection could not even start (the upstream had closed it)
//! moves on to the next idle connection, then to a new one: nothing reached the upstream,
//! so it is safe for any method. Once the request has gone out, an error is the caller's
//! 502.
//!
//! `protocol = "h2c"` (HTTP/2 with prior knowledge) and `"auto"` (ALPN, for `https://`)
//! send requests as streams over a few shared HTTP/2 connections instead (`H2`): one
//! per slot, at most [`H2_CONNECTIONS`], chosen round-robin, opened on first use and again
//! when closed. A stream beyond the upstream's `max_concurrent_streams` waits inside hyper
//! for one to end, within the caller's `request_timeout`. The limits above still count
//! requests in flight (streams), not connections. A WebSocket upgrade (`Upgrade` on the
//! request) always goes over HTTP/1.1, on the pool. Under `"auto"`, an origin whose ALPN
//! answer is `http/1.1` is spoken to over HTTP/1.1 from then on; a plain `http://` origin
//! under `"auto"` is HTTP/1.1.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, HOST, UPGRADE};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper::client::conn::http2;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use crate::config::{UpstreamConfig, UpstreamProtocol};

type Sender = SendRequest<Incoming>;
type H2Sender = http2::SendRequest<Incoming>;

/// At most this many HTTP/2 connections to the upstream (fewer on fewer cores): each is
/// driven by one task, so more than the cores buys nothing.
pub const H2_CONNECTIONS: usize = 4;

/// The HTTP/2 side of an `h2c` or `auto` upstream: shared connections, one per slot.
struct H2 {
    slots: Box<[H2Slot]>,
    next: AtomicU64,
    /// For `auto`: offers `h2` and `http/1.1` by ALPN. For `h2c`: plain TCP.
    connector: HttpsConnector<HttpConnector>,
    /// `auto`: the origin chose HTTP/1.1; every request takes the HTTP/1.1 pool.
    h1_only: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct H2Slot {
    tx: Mutex<Option<H2Sender>>,
    /// Held while this slot connects, so that a burst opens one connection, not one each.
    connecting: tokio::sync::Mutex<()>,
}

impl H2Slot {
    fn live(&self) -> Option<H2Sender> {
        let g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().filter(|tx| !tx.is_closed()).cloned()
    }

    fn set(&self, tx: Option<H2Sender>) {
        *self.tx.lock().unwrap_or_else(|e| e.into_inner()) = tx;
    }
}

/// What a connection under `auto` turned out to speak.
enum Connected {
    H1(Sender),
    H2(H2Sender),
}

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection: refused, unreachable, TLS failed, or `connect_timeout` passed.
    #[error("connect to upstream failed: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed once the request was on its way (reset, closed early, bad
    /// response).
    #[error("upstream connection failed: {0}")]
    Reset(#[source] hyper::Error),
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

struct Idle {
    tx: Sender,
    since: Instant,
}

/// The idle connections, newest last.
struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock leaves a Vec that is still valid.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection that can take a request now. Closed or expired ones are
    /// dropped; any still finishing their last exchange stay in the pool, in order.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.lock();
        let now = Instant::now();
        let mut busy: smallvec::SmallVec<[Idle; 4]> = smallvec::SmallVec::new();
        let mut found = None;
        while let Some(c) = idle.pop() {
            if c.tx.is_closed() || now.duration_since(c.since) > self.idle_timeout {
                continue;
            }
            if c.tx.is_ready() {
                found = Some(c.tx);
                break;
            }
            busy.push(c);
        }
        idle.extend(busy.into_iter().rev());
        found
    }

    fn put(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for longer than the timeout (the oldest are at the bottom).
    fn reap(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|c| !c.tx.is_closed() && now.duration_since(c.since) <= self.idle_timeout);
    }
}

/// How many requests may be in flight to the upstream at once.
enum Limit {
    None,
    /// `max_connections`: one permit per request in flight, held until its response body
    /// is done; the rest wait.
    Hard(Arc<Semaphore>),
    /// `soft_max_connections`: the same, but when a whole `soft_max_wait` passes with
    /// requests waiting and no permit coming back, those waiting since it began go ahead
    /// ([`Soft`]); and a long response gives its permit back when its head arrives.
    Soft(Arc<Soft>),
}

/// The soft limit's state. Waiting requests hold no timer of their own: one watchdog task
/// ([`watchdog`]), running only while some wait, looks at the queue every `wait`. When a
/// whole period passed with no permit coming back, it adds one permit to the semaphore for
/// each request that was already waiting when the period began; the queue is FIFO, so they
/// go to exactly those (the longest waiting), and each is taken back (forgotten instead of
/// returned) as the next permits come back, so the limit returns to `soft_max_connections`.
/// A request so goes ahead after waiting at least `wait`, and within `2 × wait` of its
/// arrival or of the last permit that came back, whichever is later.
struct Soft {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// Permits that came back, ever: progress.
    releases: AtomicU64,
    /// Requests waiting for a permit now.
    waiters: std::sync::atomic::AtomicUsize,
    /// Permits added for a stalled queue and not yet taken back.
    extra: std::sync::atomic::AtomicUsize,
    /// Wakes the watchdog when the first request starts waiting, and when this goes.
    wake: Arc<tokio::sync::Notify>,
    /// The watchdog was started (by the first request that waited).
    watching: std::sync::atomic::AtomicBool,
    /// Requests that went ahead on an added permit.
    over_soft: prometheus::IntCounter,
}

impl Drop for Soft {
    fn drop(&mut self) {
        // The watchdog ends.
        self.wake.notify_one();
    }
}

/// Watches `soft`'s queue while requests wait in it (see [`Soft`]); ends with it. Started
/// by the first request that waits.
async fn watchdog(soft: Weak<Soft>, wake: Arc<tokio::sync::Notify>) {
    loop {
        // Asleep while no request waits (a notification sent between the check and the
        // wait is kept by `Notify`, so none is lost).
        loop {
            match soft.upgrade() {
                None => return,
                Some(s) if s.waiters.load(Ordering::Acquire) > 0 => break,
                Some(_) => {}
            }
            wake.notified().await;
        }
        let Some((waiting, released, wait)) = soft.upgrade().map(|s| {
            let w = s.waiters.load(Ordering::Acquire);
            (w, s.releases.load(Ordering::Acquire), s.wait)
        }) else {
            return;
        };
        tokio::time::sleep(wait).await;
        let Some(s) = soft.upgrade() else { return };
        if s.releases.load(Ordering::Acquire) == released {
            // No permit came back for a whole period: those waiting since it began go.
            let n = waiting.min(s.waiters.load(Ordering::Acquire));
            if n > 0 {
                s.extra.fetch_add(n, Ordering::AcqRel);
                s.over_soft.inc_by(n as u64);
                s.permits.add_permits(n);
            }
        }
    }
}

/// A slot under the upstream limit. Under the soft limit its return counts as progress,
/// and it is forgotten instead of returned while permits added for a stall are out.
struct Permit {
    slot: Option<OwnedSemaphorePermit>,
    soft: Option<Arc<Soft>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(soft) = &self.soft else { return };
        if let Some(slot) = self.slot.take() {
            let take_back = soft.extra.load(Ordering::Acquire) > 0
                && soft
                    .extra
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok();
            if take_back {
                slot.forget();
            }
        }
        // After the permit is back (or taken back): a watchdog that sees no progress sees
        // none in the semaphore either.
        soft.releases.fetch_add(1, Ordering::Release);
    }
}

/// A response body longer than this (or of unknown length) is a long response: under the
/// soft limit it does not keep its permit while it streams.
const LONG_BODY: u64 = 64 * 1024;

/// The upstream origin and its connection pool.
pub struct Upstream {
    pool: Arc<Pool>,
    limit: Limit,
    /// Requests waiting for a permit.
    queued: prometheus::IntGauge,
    connector: HttpsConnector<HttpConnector>,
    /// `h2c` or `auto` on `https://`: the HTTP/2 connections.
    h2: Option<H2>,
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    /// `Host` for a request that brought none (HTTP/1.0).
    host: HeaderValue,
    base_path: String,
    pub request_timeout: Duration,
}

impl Upstream {
    /// Builds the connector and the pool; inside a Tokio runtime it also starts the reaper.
    /// `queued` counts requests waiting for a permit (`max_connections` or
    /// `soft_max_connections`), `over_soft` those that went ahead without one.
    pub fn new(
        cfg: &UpstreamConfig,
        queued: prometheus::IntGauge,
        over_soft: prometheus::IntCounter,
    ) -> anyhow::Result<Upstream> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = crate::tls::client_config(cfg.ca_file.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http.clone());
        let https = cfg.url.as_ref().and_then(Uri::scheme_str) == Some("https");
        let h2 = match cfg.protocol {
            UpstreamProtocol::Http1 => None,
            UpstreamProtocol::Auto if !https => None,
            UpstreamProtocol::H2c | UpstreamProtocol::Auto => {
                let n = std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .clamp(1, H2_CONNECTIONS);
                Some(H2 {
                    slots: (0..n).map(|_| H2Slot::default()).collect(),
                    next: AtomicU64::new(0),
                    connector: hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls)
                        .https_or_http()
                        .enable_all_versions()
                        .wrap_connector(http),
                    h1_only: Default::default(),
                })
            }
        };
        // Decision-only mode has no upstream and no proxy listener: this client is never
        // used, and its origin names the discard port.
        let parts = cfg
            .url
            .clone()
            .unwrap_or_else(|| Uri::from_static("http://127.0.0.1:9"))
            .into_parts();
        let base_path = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let authority = parts
            .authority
            .ok_or_else(|| anyhow::anyhow!("upstream.url has no authority"))?;
        let scheme = parts
            .scheme
            .ok_or_else(|| anyhow::anyhow!("upstream.url has no scheme"))?;
        let host = HeaderValue::from_str(authority.as_str())?;
        let origin = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()?;
        let pool = Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            max_idle: cfg.pool_max_idle,
            idle_timeout: cfg.pool_idle_timeout,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&pool), cfg.pool_idle_timeout));
        }
        Ok(Upstream {
            pool,
            limit: if cfg.max_connections > 0 {
                Limit::Hard(Arc::new(Semaphore::new(cfg.max_connections)))
            } else if cfg.soft_max_connections > 0 {
                Limit::Soft(Arc::new(Soft {
                    permits: Arc::new(Semaphore::new(cfg.soft_max_connections)),
                    wait: cfg.soft_max_wait,
                    releases: AtomicU64::new(0),
                    waiters: Default::default(),
                    extra: Default::default(),
                    wake: Default::default(),
                    watching: Default::default(),
                    over_soft,
                }))
            } else {
                Limit::None
            },
            queued,
            connector,
            h2,
            origin,
            host,
            base_path,
            request_timeout: cfg.request_timeout,
        })
    }

    /// Whether a client's (normalised) target goes upstream unchanged: no base path.
    pub fn forwards_paths_as_is(&self) -> bool {
        self.base_path.is_empty()
    }

    /// The origin-form target for a normalised client path: base path, path, query.
    pub fn target(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        // Exactly the length: a String with spare capacity costs `Bytes` one more
        // allocation when the URI takes it over.
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::try_from(pq).ok()
    }

    /// Sends `req` (origin-form URI) on a pooled connection, or a new one.
    pub async fn send(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, self.host.clone());
        }
        let permits = match &self.limit {
            Limit::None => None,
            Limit::Hard(permits) => Some(permits),
            Limit::Soft(soft) => Some(&soft.permits),
        };
        let permit = match permits {
            None => None,
            Some(permits) => match Arc::clone(permits).try_acquire_owned() {
                Ok(p) => Some(self.permit(p)),
                // Boxed: the wait is the less common path.
                Err(_) => Some(Box::pin(self.wait_for_permit(permits)).await),
            },
        };
        if let Some(h2) = &self.h2 {
            if !h2.h1_only.load(Ordering::Relaxed) && !req.headers().contains_key(UPGRADE) {
                // Boxed: its own, larger future, kept out of the HTTP/1.1 path's.
                return Box::pin(self.send_h2(h2, req, permit)).await;
            }
        }
        while let Some(mut tx) = self.pool.checkout() {
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.lease(resp, tx, permit)),
                Err(mut e) => match e.take_message() {
                    // The connection was gone before the request went out: try another.
                    Some(r) => req = r,
                    None => return Err(UpstreamError::Reset(e.into_error())),
                },
            }
        }
        // Boxed: the connect future is large and rare; inline it would size every request.
        let mut tx = Box::pin(self.connect()).await?;
        match tx.try_send_request(req).await {
            Ok(resp) => Ok(self.lease(resp, tx, permit)),
            Err(e) => Err(UpstreamError::Reset(e.into_error())),
        }
    }

    /// Sends `req` as a stream on the slot's HTTP/2 connection, opened if need be. A
    /// request the connection refused before sending anything (it was closing) is tried
    /// once more on a new connection.
    async fn send_h2(
        &self,
        h2: &H2,
        mut req: Request<Incoming>,
        permit: Option<Permit>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let n = h2.slots.len() as u64;
        let slot = &h2.slots[(h2.next.fetch_add(1, Ordering::Relaxed) % n) as usize];
        let mut converted = false;
        for retry in [false, true] {
            let mut tx = match slot.live() {
                Some(tx) => tx,
                None => match self.connect_h2(h2, slot).await? {
                    Connected::H2(tx) => tx,
                    Connected::H1(mut tx) if !converted => {
                        // `auto`, and the origin chose HTTP/1.1: the request as it came.
                        h2.h1_only.store(true, Ordering::Relaxed);
                        return match tx.try_send_request(req).await {
                            Ok(resp) => Ok(self.lease(resp, tx, permit)),
                            Err(e) => Err(UpstreamError::Reset(e.into_error())),
                        };
                    }
                    Connected::H1(_) => {
                        return Err(UpstreamError::Connect(
                            "upstream switched from HTTP/2 to HTTP/1.1 by ALPN".into(),
                        ))
                    }
                },
            };
            if !converted {
                self.to_h2(&mut req);
                converted = true;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.lease_h2(resp, permit)),
                Err(mut e) => match e.take_message() {
                    Some(r) if !retry => {
                        slot.set(None);
                        req = r;
                    }
                    _ => return Err(UpstreamError::Reset(e.into_error())),
                },
            }
        }
        unreachable!("the second attempt returns")
    }

    /// An HTTP/2 request names its target in full: the origin's scheme, the client's `Host`
    /// as `:authority` (what an HTTP/1.1 upstream sees in `Host`), the path and query.
    fn to_h2(&self, req: &mut Request<Incoming>) {
        let host = req.headers_mut().remove(HOST);
        let authority = host
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .or_else(|| self.origin.authority().cloned());
        let mut parts = http::uri::Parts::default();
        parts.scheme = self.origin.scheme().cloned();
        parts.authority = authority;
        parts.path_and_query = req
            .uri()
            .path_and_query()
            .cloned()
            .or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = http::Version::HTTP_2;
    }

    /// Opens the slot's connection, unless another request just did.
    async fn connect_h2(&self, h2: &H2, slot: &H2Slot) -> Result<Connected, UpstreamError> {
        let _one = slot.connecting.lock().await;
        if let Some(tx) = slot.live() {
            return Ok(Connected::H2(tx));
        }
        let mut connector = h2.connector.clone();
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(UpstreamError::Connect)?;
        let alpn_h1 =
            self.origin.scheme_str() == Some("https") && !io.connected().is_negotiated_h2();
        if alpn_h1 {
            return Ok(Connected::H1(handshake_h1(io).await?));
        }
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection closed");
            }
        });
        slot.set(Some(tx.clone()));
        Ok(Connected::H2(tx))
    }

    /// An HTTP/2 response: the stream is the connection's to end, nothing goes back to a
    /// pool; the permit is held as for HTTP/1.1.
    fn lease_h2(&self, resp: Response<Incoming>, permit: Option<Permit>) -> Response<UpstreamBody> {
        let long = matches!(self.limit, Limit::Soft(_)) && {
            let body = resp.body();
            !body.is_end_stream() && body.size_hint().upper().is_none_or(|n| n > LONG_BODY)
        };
        resp.map(|inner| UpstreamBody {
            inner,
            lease: None,
            permit: permit.filter(|_| !long),
            done: false,
        })
    }

    fn permit(&self, slot: OwnedSemaphorePermit) -> Permit {
        Permit {
            slot: Some(slot),
            soft: match &self.limit {
                Limit::Soft(soft) => Some(Arc::clone(soft)),
                _ => None,
            },
        }
    }

    /// Waits in arrival order for a permit; the caller's request_timeout covers the wait.
    /// Under the soft limit the watchdog adds a permit for it if the queue stalls ([`Soft`]).
    async fn wait_for_permit(&self, permits: &Arc<Semaphore>) -> Permit {
        self.queued.inc();
        let _queued = Defer(|| self.queued.dec());
        let soft = match &self.limit {
            Limit::Soft(soft) => Some(soft),
            _ => None,
        };
        if let Some(s) = soft {
            if !s.watching.load(Ordering::Acquire) && !s.watching.swap(true, Ordering::AcqRel) {
                tokio::spawn(watchdog(Arc::downgrade(s), Arc::clone(&s.wake)));
            }
            if s.waiters.fetch_add(1, Ordering::AcqRel) == 0 {
                s.wake.notify_one();
            }
        }
        let _waiting = Defer(|| {
            if let Some(s) = soft {
                s.waiters.fetch_sub(1, Ordering::AcqRel);
            }
        });
        // The semaphores are never closed: `ok()` never drops a permit.
        let slot = Arc::clone(permits).acquire_owned().await.ok();
        Permit {
            slot,
            soft: soft.cloned(),
        }
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(UpstreamError::Connect)?;
        handshake_h1(io).await
    }

    /// Ties `tx` (and the `max_connections` permit) to the response body, so the
    /// connection returns to the pool when the body has been read to the end. An upgraded
    /// connection never returns, and a tunnel does not count against `max_connections`.
    fn lease(
        &self,
        resp: Response<Incoming>,
        tx: Sender,
        permit: Option<Permit>,
    ) -> Response<UpstreamBody> {
        let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let lease = (!upgraded && self.pool.max_idle > 0).then(|| Lease {
            tx,
            pool: Arc::clone(&self.pool),
        });
        // Under the soft limit a long response streams without a permit.
        let long = matches!(self.limit, Limit::Soft(_)) && {
            let body = resp.body();
            !body.is_end_stream() && body.size_hint().upper().is_none_or(|n| n > LONG_BODY)
        };
        resp.map(|inner| UpstreamBody {
            inner,
            lease,
            permit: permit.filter(|_| !upgraded && !long),
            done: false,
        })
    }
}

/// Closes expired idle connections every half `idle_timeout` (at least every second) while
/// the pool lives.
/// An HTTP/1.1 connection over `io`, driven by its own task (upgrades included) until it
/// closes.
async fn handshake_h1<T>(io: T) -> Result<Sender, UpstreamError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = Builder::new()
        .handshake(io)
        .await
        .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection closed");
        }
    });
    Ok(tx)
}

async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.reap(),
            None => return,
        }
    }
}

/// Runs its closure when dropped (also when the future holding it is cancelled).
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

struct Lease {
    tx: Sender,
    pool: Arc<Pool>,
}

/// The upstream's response body, streamed as is. Dropped after its last frame, it puts its
/// connection back in the pool; dropped earlier, or after an error, it closes it.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
    /// Released when the body is dropped, after the connection went back to the pool.
    permit: Option<Permit>,
    done: bool,
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(l) = self.lease.take() {
            if self.done || self.inner.is_end_stream() {
                l.pool.put(l.tx);
            }
        }
        self.permit.take();
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.done = true,
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
