//! The running sidecar: binding the listeners, the accept loop (connection limit, TLS,
//! header-read timeout, HTTP/1 or HTTP/2 by the first bytes), reload, and the graceful drain
//! on shutdown. The state requests read is `state.rs`'s; the admin endpoints are
//! `admin.rs`'s; what happens to a request is `proxy.rs`'s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthzListen, Config, ListenerConfig};
use crate::metrics::Metrics;
use crate::proxy::{self, Conn};
use crate::state::Shared;

/// A running sidecar (proxy listener, admin listener, key refreshers).
pub struct Sidecar {
    shared: Arc<Shared>,
    /// `None` in decision-only mode (no `[upstream] url`).
    proxy_addr: Option<SocketAddr>,
    /// The proxy listener's address, or in decision-only mode the decision listener's.
    main_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    authz_addr: Option<SocketAddr>,
    authz_socket: Option<PathBuf>,
    cancel: CancellationToken,
    /// The admin listener outlives the drain, so probes see `/readyz` 503 meanwhile.
    admin_cancel: CancellationToken,
    proxy_task: Option<tokio::task::JoinHandle<()>>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    authz_task: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecar {
    /// Binds the listeners and starts serving. The first JWKS fetch happens in the
    /// background: until it lands, protected routes answer 503 and `/readyz` is 503.
    pub async fn start(config: Config) -> anyhow::Result<Sidecar> {
        let metrics = Arc::new(Metrics::new());
        Self::start_with_metrics(config, metrics).await
    }

    pub async fn start_with_metrics(
        config: Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Sidecar> {
        let tls = match &config.listener.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                crate::tls::server_config(&t.cert, &t.key)?,
            ))),
            None => None,
        };
        // Decision-only mode binds no proxy listener: nothing could be forwarded.
        let listener = if config.decision_only() {
            None
        } else {
            Some(
                TcpListener::bind(config.listener.address)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.listener.address))?,
            )
        };
        let proxy_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let admin_listener = match config.admin.address {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on admin address {a}"))?,
            ),
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let authz_listener = match &config.authz.address {
            Some(AuthzListen::Tcp(a)) => {
                Some(Bound::Tcp(TcpListener::bind(a).await.with_context(
                    || format!("cannot listen on authz address {a}"),
                )?))
            }
            Some(AuthzListen::Unix(path)) => Some(bind_unix(path, config.authz.socket_mode)?),
            None => None,
        };
        let authz_addr = match &authz_listener {
            Some(Bound::Tcp(l)) => Some(l.local_addr()?),
            _ => None,
        };
        let authz_socket = match &authz_listener {
            Some(Bound::Unix(_, path)) => Some(path.clone()),
            _ => None,
        };
        // Decision-only on a Unix socket has no TCP address to name.
        let main_addr = proxy_addr
            .or(authz_addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let listener_cfg = config.listener.clone();
        log_warnings(&config);
        let shared = Arc::new(Shared::new(config, metrics)?);

        let cancel = CancellationToken::new();
        let authz_task = authz_listener.map(|l| {
            tokio::spawn(accept_loop(
                l,
                None,
                Arc::clone(&shared),
                listener_cfg.clone(),
                cancel.clone(),
                Role::Authz,
            ))
        });
        let proxy_task = listener.map(|l| {
            tokio::spawn(accept_loop(
                Bound::Tcp(l),
                tls,
                Arc::clone(&shared),
                listener_cfg,
                cancel.clone(),
                Role::Proxy,
            ))
        });
        let admin_cancel = CancellationToken::new();
        tokio::spawn(timer_anchor(admin_cancel.clone()));
        let admin_task = admin_listener.map(|l| {
            tokio::spawn(crate::admin::serve(
                l,
                Arc::clone(&shared),
                admin_cancel.clone(),
            ))
        });
        tracing::info!(proxy = ?proxy_addr, admin = ?admin_addr, authz = ?authz_addr, "cognito-sidecar listening");
        Ok(Sidecar {
            shared,
            proxy_addr,
            main_addr,
            admin_addr,
            authz_addr,
            authz_socket,
            cancel,
            admin_cancel,
            proxy_task,
            admin_task,
            authz_task,
        })
    }

    /// The address clients connect to: the proxy listener's, or in decision-only mode the
    /// decision listener's (`0.0.0.0:0` when that is a Unix socket).
    pub fn local_addr(&self) -> SocketAddr {
        self.main_addr
    }

    /// The proxy listener's bound address; `None` in decision-only mode.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy_addr
    }

    /// The admin listener's bound address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The decision listener's bound address, if enabled on TCP (`[authz] address`).
    pub fn authz_addr(&self) -> Option<SocketAddr> {
        self.authz_addr
    }

    /// The decision listener's Unix socket, if enabled on one (`address = "unix:<path>"`).
    pub fn authz_socket(&self) -> Option<&Path> {
        self.authz_socket.as_deref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Swaps in a new config atomically: routes, headers, issuers and upstream. Listener,
    /// admin and runtime settings need a restart (a warning says so).
    pub fn reload(&self, config: Config) -> anyhow::Result<()> {
        let old = self.shared.state.load_full();
        let o = &old.config;
        if o.listener.address != config.listener.address
            || o.decision_only() != config.decision_only()
            || o.admin.address != config.admin.address
            || o.authz.address != config.authz.address
            || o.listener.tls != config.listener.tls
            || o.runtime.worker_threads != config.runtime.worker_threads
        {
            tracing::warn!(
                "listener, admin, authz address, TLS and runtime changes take effect on restart only"
            );
        }
        log_warnings(&config);
        self.shared.reload(config)
    }

    /// Stops accepting, lets in-flight requests finish within `listener.drain_timeout`,
    /// then stops the admin listener (which answers `/readyz` 503 until then) and the key
    /// refreshers.
    pub async fn shutdown(self) {
        self.shared.start_draining();
        self.cancel.cancel();
        if let Some(t) = self.proxy_task {
            let _ = t.await;
        }
        if let Some(t) = self.authz_task {
            let _ = t.await;
        }
        self.admin_cancel.cancel();
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        self.shared.stop_key_stores();
        self.shared.flush_traces().await;
    }
}

/// How often [`timer_anchor`] fires: well under every timer set per request (hyper's
/// `header_read_timeout`, 10 s by default; `request_timeout`), so that theirs are never the
/// earliest in tokio's timer wheel.
const TIMER_ANCHOR_PERIOD: Duration = Duration::from_secs(1);

/// Keeps a deadline at most [`TIMER_ANCHOR_PERIOD`] away in tokio's timer wheel, which saves
/// a system call on most keep-alive requests.
///
/// Tokio wakes its I/O driver (a `write(2)` to an eventfd, and one more event for the next
/// `epoll_wait`) whenever a timer is set earlier than the earliest deadline the wheel held
/// when the driver last parked, and always when the wheel held none. hyper sets a
/// header-read timer each time a keep-alive connection waits for its next request, and
/// drops it when the head arrives; under load the wheel is often empty at a park (every
/// connection's request in flight), so between one request in 5 and one in 23 paid that write
/// (three runs of wrk -c32, counted with strace and perf). With
/// this timer in the wheel, a per-request timer of 1 s or longer is never the earliest and
/// sets no wake-up. The cost is one timer firing a second. Ends with `cancel`.
async fn timer_anchor(cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TIMER_ANCHOR_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
    }
}

/// Logs what `check` would warn about, one line each.
fn log_warnings(config: &Config) {
    for w in config.warnings() {
        tracing::warn!(source = %config.source, "{w}");
    }
}

/// The hyper connection builders, HTTP/1.1 and HTTP/2 (which one serves a connection is
/// told by its first bytes, in `serve`): header-read timeout, header size cap.
#[derive(Clone)]
pub(crate) struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

pub(crate) fn conn_builders(cfg: &ListenerConfig) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(cfg.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    Builders { h1, h2 }
}

/// What a listener serves: the proxy, or decisions for a front proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Proxy,
    Authz,
}

/// A bound listener: TCP, or the decision listener's Unix socket (and its path, removed
/// when the loop ends).
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Bound {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Bound::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
            Bound::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// Binds the decision listener's Unix socket with `mode`. A socket file left by a sidecar
/// that is gone is replaced; a live one (it accepts a connection) or any other file is an
/// error, never removed.
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<Bound> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "authz.address: {} exists and is not a socket",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "authz.address: {} is in use by another process",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on authz address unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(Bound::Unix(l, path.to_path_buf()))
}

async fn accept_loop(
    listener: Bound,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    cfg: ListenerConfig,
    cancel: CancellationToken,
    role: Role,
) {
    let mut builder = conn_builders(&cfg);
    if role == Role::Authz {
        // A check answer goes to the front proxy, which dates what it sends the client.
        builder.h1.auto_date_header(false);
        builder.h2.auto_date_header(false);
    }
    // Every connection's task, for the drain.
    let tasks = tokio_util::task::TaskTracker::new();
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    loop {
        if limit.available_permits() == 0 {
            shared.metrics.connections_limited.inc();
            tracing::warn!(
                max = cfg.max_connections,
                "connection limit reached; not accepting"
            );
        }
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => p.expect("semaphore never closed"),
            _ = cancel.cancelled() => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => break,
        };
        let shared = Arc::clone(&shared);
        let builder = builder.clone();
        let tls = tls.clone();
        let handshake_timeout = cfg.header_read_timeout;
        let cancel = cancel.clone();
        let task = async move {
            shared.metrics.connections_active.inc();
            match accepted {
                Accepted::Tcp(stream, peer) => {
                    let _ = stream.set_nodelay(true);
                    let conn = Conn {
                        peer,
                        tls: tls.is_some(),
                        unix: false,
                    };
                    let stream = match tls {
                        None => Some(Either::Left(stream)),
                        Some(acceptor) => tls_handshake(&acceptor, stream, peer, handshake_timeout)
                            .await
                            .map(Either::Right),
                    };
                    if let Some(stream) = stream {
                        serve(
                            stream,
                            conn,
                            &shared,
                            &builder,
                            handshake_timeout,
                            &cancel,
                            role,
                        )
                        .await;
                    }
                }
                Accepted::Unix(stream) => {
                    let conn = Conn {
                        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                        tls: false,
                        unix: true,
                    };
                    serve(
                        stream,
                        conn,
                        &shared,
                        &builder,
                        handshake_timeout,
                        &cancel,
                        role,
                    )
                    .await;
                }
            }
            shared.metrics.connections_active.dec();
            drop(permit);
        };
        tasks.spawn(task);
    }
    if let Bound::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
    drop(listener);
    let drain = cfg.drain_timeout;
    tokio::select! {
        _ = async { tasks.close(); tasks.wait().await } => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain timeout: closing remaining connections"),
    }
}

/// The TLS handshake, within `limit`. Boxed, both the handshake and the stream: a TLS
/// connection's state is large, and kept inline it would size every plain connection's task
/// too.
async fn tls_handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<Box<TlsStream<TcpStream>>> {
    Box::pin(async {
        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    })
    .await
}

/// Drives a hyper connection to its end; once `shutdown` fires, asks it to finish what it
/// is doing and close (the drain), and drives it on until it has.
macro_rules! graceful {
    ($conn:expr, $shutdown:expr) => {{
        let mut conn = std::pin::pin!($conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = $shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

#[allow(clippy::too_many_arguments)]
async fn serve<S>(
    stream: S,
    conn: Conn,
    shared: &Arc<Shared>,
    builder: &Builders,
    head_timeout: Duration,
    shutdown: &CancellationToken,
    role: Role,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // hyper's header-read timeout only starts once hyper-util has told HTTP/1 from HTTP/2 by
    // the first bytes, and that wait has no limit: a client that sends nothing (or part of
    // the HTTP/2 preface) would hold its connection slot forever. Sniff here, with the limit.
    let mut stream = stream;
    // A shutdown ends the wait too (hyper would cancel its own first read the same way).
    let sniffed = tokio::select! {
        p = sniff(&mut stream, head_timeout) => p,
        _ = shutdown.cancelled() => None,
    };
    let Some(prefix) = sniffed else {
        tracing::debug!(peer = %conn.peer, "no request head within header_read_timeout");
        return;
    };
    let h2 = prefix == H2_PREFACE;
    let stream = Prefixed {
        prefix,
        pos: 0,
        inner: stream,
    };
    let io = TokioIo::new(stream);
    let shared = Arc::clone(shared);
    // Each protocol and role its own connection future: one that could be any of them
    // would be as large as the largest in every connection's task. HTTP/2 is boxed (its
    // state is large, and it is the rarer one here).
    let served = match (role, h2) {
        (Role::Proxy, false) => {
            let svc = hyper::service::service_fn(move |req| {
                let state = shared.state.load_full();
                let metrics = Arc::clone(&shared.metrics);
                proxy::handle(state, metrics, conn, req)
            });
            let fut = builder.h1.serve_connection(io, svc).with_upgrades();
            graceful!(fut, shutdown)
        }
        (Role::Proxy, true) => {
            let svc = hyper::service::service_fn(move |req| {
                let state = shared.state.load_full();
                let metrics = Arc::clone(&shared.metrics);
                proxy::handle(state, metrics, conn, req)
            });
            let fut = builder.h2.serve_connection(io, svc);
            Box::pin(async { graceful!(fut, shutdown) }).await
        }
        (Role::Authz, false) => {
            let svc = hyper::service::service_fn(move |req| {
                let state = shared.state.load_full();
                let metrics = Arc::clone(&shared.metrics);
                crate::authz::handle(state, metrics, conn, req)
            });
            let fut = builder.h1.serve_connection(io, svc);
            graceful!(fut, shutdown)
        }
        (Role::Authz, true) => {
            let svc = hyper::service::service_fn(move |req| {
                let state = shared.state.load_full();
                let metrics = Arc::clone(&shared.metrics);
                crate::authz::handle(state, metrics, conn, req)
            });
            let fut = builder.h2.serve_connection(io, svc);
            Box::pin(async { graceful!(fut, shutdown) }).await
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the first bytes of a connection, just enough to tell the HTTP/2 preface from an
/// HTTP/1 request line, within `limit`. `None` if the client closed, failed or was too slow.
async fn sniff<S: AsyncRead + Unpin>(io: &mut S, limit: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    let read = async {
        let mut chunk = [0u8; H2_PREFACE.len()];
        while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
            let want = H2_PREFACE.len() - buf.len();
            match io.read(&mut chunk[..want]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    match tokio::time::timeout(limit, read).await {
        Ok(true) => Some(buf),
        _ => None,
    }
}

/// A stream that yields `prefix` (the sniffed bytes) before the rest of `inner`.
struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn sniff_stops_at_the_first_byte_that_is_not_the_preface() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let got = sniff(&mut server, Duration::from_secs(1)).await.unwrap();
        assert!(!got.is_empty() && b"GET / HTTP/1.1\r\n".starts_with(&got));
        let mut p = Prefixed {
            prefix: got,
            pos: 0,
            inner: server,
        };
        let mut all = vec![0u8; 16];
        p.read_exact(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn sniff_reads_the_whole_preface_and_no_more() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(H2_PREFACE).await.unwrap();
        client.write_all(b"frames").await.unwrap();
        assert_eq!(
            sniff(&mut server, Duration::from_secs(1)).await.unwrap(),
            H2_PREFACE
        );
    }

    #[tokio::test]
    async fn sniff_gives_up_on_silence_a_partial_preface_and_eof() {
        let (mut client, mut server) = tokio::io::duplex(64);
        assert!(sniff(&mut server, Duration::from_millis(50))
            .await
            .is_none());
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(sniff(&mut server, Duration::from_millis(50))
            .await
            .is_none());
        drop(client);
        assert!(sniff(&mut server, Duration::from_millis(50))
            .await
            .is_none());
    }
}
