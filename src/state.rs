//! The running state: everything a request needs from one config generation ([`State`],
//! swapped whole on reload), and what the listeners and the lifecycle share around it
//! ([`Shared`]: the current state, the metrics, the key stores kept across reloads, and the
//! draining flag that readiness reads).
//!
//! Built in one place, [`State::build`]; the listeners that read it are `server.rs` and
//! `admin.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use arc_swap::ArcSwap;

use crate::alb::{AlbKeys, AlbKeysKey};
use crate::config::{AlbIssuerConfig, Config, IssuerConfig};
use crate::headers::IdentityHeaders;
use crate::jwks::{KeyStore, StoreKey};
use crate::metrics::Metrics;
use crate::ratelimit::{Limit, Limiter, LimiterMetrics};
use crate::routes::Rule;
use crate::upstream::Upstream;
use crate::verify::Verifier;

/// Everything a request needs from one config generation; swapped whole on reload.
pub struct State {
    pub config: Arc<Config>,
    pub verifier: Verifier,
    pub identity: IdentityHeaders,
    pub upstream: Upstream,
    /// `[login]`, when on.
    pub login: Option<crate::login::Login>,
    /// `[tracing]`: trace context and span export.
    pub tracing: crate::trace::Tracing,
    /// Per-route metric handles, resolved once: index = rule index, last = default rule.
    route_metrics: Vec<RouteMetrics>,
    /// Per-route live rate limits: index = rule index.
    limiters: Vec<Option<Arc<Limiter>>>,
}

/// The metric children of one route, looked up once per config instead of per request.
pub struct RouteMetrics {
    pub forwarded: prometheus::IntCounter,
    pub latency: prometheus::Histogram,
}

impl State {
    /// Builds the state for `config`, with key stores from `stores` (started on first use).
    pub fn build(
        config: Config,
        stores: &KeyStores,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<State> {
        let verifier = Verifier::for_config_with(
            &config,
            |cfg| stores.get_or_start(cfg, metrics),
            |cfg| stores.alb_keys(cfg, metrics),
            Arc::clone(metrics),
        )?;
        let upstream = Upstream::new(
            &config.upstream,
            metrics.upstream_queued.clone(),
            metrics.upstream_over_soft.clone(),
        )?;
        let limiters: Vec<Option<Arc<Limiter>>> = config
            .routes
            .rules()
            .iter()
            .map(|r| stores.limiter(r, metrics))
            .collect();
        // Only once nothing can fail: the old state, still serving, may use these stores.
        stores.keep_only(&config.issuers, &config.alb_issuers);
        stores.keep_limiters(&limiters);
        let route_metrics = config
            .routes
            .rules()
            .iter()
            .chain(std::iter::once(config.routes.default_rule()))
            .map(|r| RouteMetrics {
                forwarded: metrics.requests.with_label_values(&[&r.label, "forwarded"]),
                latency: metrics.latency.with_label_values(&[&r.label]),
            })
            .collect();
        let login = config
            .login
            .as_ref()
            .map(crate::login::Login::new)
            .transpose()?;
        let tracing =
            crate::trace::Tracing::new(&config, &stores.exporters, &metrics.trace_spans_dropped)?;
        Ok(State {
            tracing,
            identity: IdentityHeaders::new(&config.forward),
            upstream,
            login,
            verifier,
            route_metrics,
            limiters,
            config: Arc::new(config),
        })
    }

    /// The metric handles of `rule` (a rule of this state's config).
    pub fn metrics_of(&self, rule: &Rule) -> Option<&RouteMetrics> {
        match rule.index {
            Some(i) => self.route_metrics.get(i),
            None => self.route_metrics.last(),
        }
    }

    /// The live rate limit of `rule` (a rule of this state's config), if it has one.
    pub fn limiter_of(&self, rule: &Rule) -> Option<&Limiter> {
        self.limiters.get(rule.index?)?.as_deref()
    }
}

/// What identifies a route's rate limit across reloads: the route (its path and methods)
/// and the limit's settings. A reload that changes neither keeps the limiter and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LimiterKey {
    route: String,
    methods: String,
    limit: Limit,
}

/// The key stores of the running sidecar, one per distinct JWKS setting, and the ALB issuers'
/// key caches (by kid, nothing to refresh in the background), one per distinct setting: a
/// reload keeps a store (and its keys) whose settings did not change.
#[derive(Default)]
pub struct KeyStores {
    stores: Mutex<Vec<(StoreKey, Arc<KeyStore>)>>,
    albs: Mutex<Vec<(AlbKeysKey, Arc<AlbKeys>)>>,
    limiters: Mutex<Vec<(LimiterKey, Arc<Limiter>)>>,
    /// The span exporter, kept across reloads that leave `[tracing]` as it was.
    exporters: crate::otlp::Exporters,
}

impl KeyStores {
    /// The store for `cfg`: the running one with the same settings, or a new one whose
    /// background refresh starts now.
    fn get_or_start(
        &self,
        cfg: &IssuerConfig,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Arc<KeyStore>> {
        let key = StoreKey::of(cfg);
        let mut stores = self.stores.lock().expect("lock poisoned");
        if let Some((_, s)) = stores.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(s));
        }
        let s = KeyStore::new(cfg, Arc::clone(metrics))
            .with_context(|| format!("issuer {:?}", cfg.name))?;
        s.spawn_refresher();
        stores.push((key, Arc::clone(&s)));
        Ok(s)
    }

    /// The ALB key cache for `cfg`: the running one with the same settings, or a new one.
    fn alb_keys(
        &self,
        cfg: &AlbIssuerConfig,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Arc<AlbKeys>> {
        let key = AlbKeysKey::of(cfg);
        let mut albs = self.albs.lock().expect("lock poisoned");
        if let Some((_, k)) = albs.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(k));
        }
        let k = AlbKeys::new(cfg, Arc::clone(metrics))
            .with_context(|| format!("issuer {:?}", cfg.name))?;
        albs.push((key, Arc::clone(&k)));
        Ok(k)
    }

    /// Stops the stores no issuer of `issuers` uses any more, and drops the ALB key caches
    /// none of `albs` uses.
    fn keep_only(&self, issuers: &[IssuerConfig], albs: &[AlbIssuerConfig]) {
        let used: Vec<AlbKeysKey> = albs.iter().map(AlbKeysKey::of).collect();
        self.albs
            .lock()
            .expect("lock poisoned")
            .retain(|(k, _)| used.contains(k));
        let used: Vec<StoreKey> = issuers.iter().map(StoreKey::of).collect();
        self.stores.lock().expect("lock poisoned").retain(|(k, s)| {
            let keep = used.contains(k);
            if !keep {
                s.stop();
            }
            keep
        });
    }

    /// The live limit of `rule`: the running one for the same route and settings, or a new
    /// one.
    fn limiter(&self, rule: &Rule, metrics: &Metrics) -> Option<Arc<Limiter>> {
        let limit = rule.rate_limit.as_ref()?;
        let key = LimiterKey {
            route: rule.label.clone(),
            methods: rule.methods_label(),
            limit: limit.clone(),
        };
        let mut limiters = self.limiters.lock().expect("lock poisoned");
        if let Some((_, l)) = limiters.iter().find(|(k, _)| *k == key) {
            return Some(Arc::clone(l));
        }
        let label = [rule.label.as_str()];
        let l = Arc::new(Limiter::new(
            limit.clone(),
            LimiterMetrics {
                limited: metrics.rate_limited.with_label_values(&label),
                keys: metrics.rate_limit_keys.with_label_values(&label),
                evicted: metrics.rate_limit_evicted.with_label_values(&label),
            },
        ));
        limiters.push((key, Arc::clone(&l)));
        Some(l)
    }

    /// Forgets the limiters none of `used` is (the state still serving keeps its own until
    /// it is dropped).
    fn keep_limiters(&self, used: &[Option<Arc<Limiter>>]) {
        self.limiters
            .lock()
            .expect("lock poisoned")
            .retain(|(_, l)| used.iter().flatten().any(|u| Arc::ptr_eq(u, l)));
    }

    /// Stops every store.
    fn stop_all(&self) {
        for (_, s) in self.stores.lock().expect("lock poisoned").drain(..) {
            s.stop();
        }
    }
}

/// State shared by the listeners and the lifecycle.
pub struct Shared {
    pub state: ArcSwap<State>,
    pub metrics: Arc<Metrics>,
    stores: KeyStores,
    draining: AtomicBool,
}

impl Shared {
    /// The shared state for a first `config`.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<Shared> {
        let stores = KeyStores::default();
        let state = State::build(config, &stores, &metrics)?;
        Ok(Shared {
            state: ArcSwap::from_pointee(state),
            metrics,
            stores,
            draining: AtomicBool::new(false),
        })
    }

    /// Swaps in a state for `config` (built off the request path; on error the old one
    /// keeps serving).
    pub fn reload(&self, config: Config) -> anyhow::Result<()> {
        let state = State::build(config, &self.stores, &self.metrics)?;
        self.state.store(Arc::new(state));
        Ok(())
    }

    /// Whether every issuer's keys are loaded (and we are not draining).
    pub fn ready(&self) -> bool {
        !self.is_draining() && self.state.load().verifier.ready()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Readiness goes to 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Exports the spans still queued (on graceful stop, after the drain).
    pub async fn flush_traces(&self) {
        self.stores.exporters.shutdown().await;
    }

    /// Stops every key store's refresh.
    pub fn stop_key_stores(&self) {
        self.stores.stop_all();
    }
}
