//! The running sidecar: listeners, the accept loops (connection limit, TLS, header-read
//! timeout), the config snapshot swapped on reload, key stores kept across reloads, and the
//! graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::headers::IdentityHeaders;
use crate::jwks::{KeyStore, StoreKey};
use crate::metrics::Metrics;
use crate::proxy::{self, Conn, State, Upstream};
use crate::verify::{Issuer, Verifier};

/// State shared by the listeners and the lifecycle.
pub struct Shared {
    pub state: ArcSwap<State>,
    pub metrics: Arc<Metrics>,
    stores: Mutex<Vec<(StoreKey, Arc<KeyStore>)>>,
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Whether every issuer's keys are loaded (and we are not draining).
    pub fn ready(&self) -> bool {
        !self.draining.load(std::sync::atomic::Ordering::Relaxed)
            && self.state.load().verifier.ready()
    }

    /// Builds a state for `config`, reusing key stores whose settings did not change.
    fn build_state(&self, config: Config) -> anyhow::Result<State> {
        let mut stores = self.stores.lock().expect("lock poisoned");
        let mut issuers = Vec::with_capacity(config.issuers.len());
        let mut used = Vec::new();
        for cfg in &config.issuers {
            let key = StoreKey::of(cfg);
            let store = match stores.iter().find(|(k, _)| *k == key) {
                Some((_, s)) => Arc::clone(s),
                None => {
                    let s = KeyStore::new(cfg, Arc::clone(&self.metrics))
                        .with_context(|| format!("issuer {:?}", cfg.name))?;
                    s.spawn_refresher();
                    stores.push((key.clone(), Arc::clone(&s)));
                    s
                }
            };
            used.push(key);
            issuers.push(Issuer {
                cfg: cfg.clone(),
                keys: store,
            });
        }
        // Stores no config uses any more stop refreshing.
        stores.retain(|(k, s)| {
            let keep = used.contains(k);
            if !keep {
                s.stop();
            }
            keep
        });
        let verifier = Verifier::new(
            issuers,
            config.forward.clone(),
            config.token.max_bytes,
            config.token.cache_entries,
            Arc::clone(&self.metrics),
        );
        Ok(State {
            identity: IdentityHeaders::new(&config.forward),
            upstream: Upstream::new(&config.upstream)?,
            verifier,
            route_metrics: proxy::RouteMetrics::for_config(&config, &self.metrics),
            config: Arc::new(config),
        })
    }
}

/// A running sidecar (proxy listener, admin listener, key refreshers).
pub struct Sidecar {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    proxy_task: tokio::task::JoinHandle<()>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
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
        let listener = TcpListener::bind(config.listener.address)
            .await
            .with_context(|| format!("cannot listen on {}", config.listener.address))?;
        let addr = listener.local_addr()?;
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
        let listener_cfg = config.listener.clone();
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(placeholder_state(&metrics)?),
            metrics,
            stores: Mutex::new(Vec::new()),
            draining: false.into(),
        });
        let state = shared.build_state(config)?;
        shared.state.store(Arc::new(state));

        let cancel = CancellationToken::new();
        let proxy_task = tokio::spawn(accept_loop(
            listener,
            tls,
            Arc::clone(&shared),
            listener_cfg,
            cancel.clone(),
        ));
        let admin_task = admin_listener
            .map(|l| tokio::spawn(crate::admin::serve(l, Arc::clone(&shared), cancel.clone())));
        tracing::info!(%addr, admin = ?admin_addr, "cognito-sidecar listening");
        Ok(Sidecar {
            shared,
            addr,
            admin_addr,
            cancel,
            proxy_task,
            admin_task,
        })
    }

    /// The proxy listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's bound address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
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
            || o.admin.address != config.admin.address
            || o.listener.tls != config.listener.tls
            || o.runtime.worker_threads != config.runtime.worker_threads
        {
            tracing::warn!("listener, admin, TLS and runtime changes take effect on restart only");
        }
        let state = self.shared.build_state(config)?;
        self.shared.state.store(Arc::new(state));
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish within `listener.drain_timeout`,
    /// then stops the key refreshers.
    pub async fn shutdown(self) {
        self.shared
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.cancel.cancel();
        let _ = self.proxy_task.await;
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        for (_, s) in self.shared.stores.lock().expect("lock poisoned").drain(..) {
            s.stop();
        }
    }
}

/// A state with no issuers, used only until the first real state is built.
fn placeholder_state(metrics: &Arc<Metrics>) -> anyhow::Result<State> {
    let config = Config::from_toml_str(
        "(startup)",
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n[default]\nauth = \"deny\"\n",
        &[],
    )?;
    Ok(State {
        identity: IdentityHeaders::new(&config.forward),
        upstream: Upstream::new(&config.upstream)?,
        verifier: Verifier::new(vec![], config.forward.clone(), 8192, 0, Arc::clone(metrics)),
        route_metrics: Vec::new(),
        config: Arc::new(config),
    })
}

/// The hyper connection builder: HTTP/1.1 and HTTP/2, header-read timeout, header size cap.
pub(crate) fn conn_builder(cfg: &crate::config::ListenerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    cfg: crate::config::ListenerConfig,
    cancel: CancellationToken,
) {
    let builder = conn_builder(&cfg);
    let graceful = GracefulShutdown::new();
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
        let (stream, peer) = tokio::select! {
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
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = cfg.header_read_timeout;
        tokio::spawn(async move {
            shared.metrics.connections_active.inc();
            let is_tls = tls.is_some();
            let conn = Conn { peer, tls: is_tls };
            match tls {
                None => serve(stream, conn, &shared, &builder, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve(s, conn, &shared, &builder, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            shared.metrics.connections_active.dec();
            drop(permit);
        });
    }
    drop(listener);
    let drain = cfg.drain_timeout;
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain timeout: closing remaining connections"),
    }
}

async fn serve<S>(
    stream: S,
    conn: Conn,
    shared: &Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared2 = Arc::clone(shared);
    let svc = hyper::service::service_fn(move |req| {
        let state = shared2.state.load_full();
        let metrics = Arc::clone(&shared2.metrics);
        proxy::handle(state, metrics, conn, req)
    });
    let fut = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    if let Err(e) = watcher.watch(fut.into_owned()).await {
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
}
