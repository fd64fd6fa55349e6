//! Route rate limits: a route's `rate_limit = { key, requests, per, burst, max_keys }`,
//! enforced per sidecar with GCRA (the `governor` crate) over a key store of our own that
//! holds at most `max_keys` keys ([`Limiter`]). Which key a request has, and when it is
//! checked, is the decision's (`decide.rs`): `ip` before the token is looked at, `sub` and
//! `client_id` once it is verified. The answer to a limited request is `error.rs`'s (429).
//!
//! # GCRA and the RateLimit fields (draft-ietf-httpapi-ratelimit-headers-09)
//!
//! A limit of `requests` per `per` with `burst` emits one request every `T = per /
//! requests`; a key may run up to `burst` requests ahead of that (`burst = requests`: all of
//! a period's requests at once). GCRA keeps one instant per key, its theoretical arrival
//! time (TAT); a request at `now` passes when `now >= TAT - (burst - 1) T`, and moves TAT to
//! `max(TAT, now) + T`. As the draft's fields (its `RateLimit-Policy` and `RateLimit`, which
//! replaced the `RateLimit-Limit` / `-Remaining` / `-Reset` trio of the earlier revisions):
//! the policy is a quota of `burst` (`q`) over the time one burst takes to replenish,
//! `w = ceil(burst x T)` seconds (with the default burst that is `per` itself); a limited
//! request is told `r=0` and `t` = the seconds until its next request passes (rounded up,
//! at least 1), which is also its `Retry-After`.
//!
//! # Bounded memory
//!
//! A key whose TAT is in the past is the same as a key never seen (GCRA treats both as
//! "now"), so such keys can be forgotten for free. When a store is over `max_keys`, it
//! forgets those first; if that is not enough, it forgets the keys with the oldest TAT (the
//! ones closest to being forgotten for free) down to 15/16 of the cap, and counts them
//! (`sidecar_rate_limit_evicted_total`): a key forgotten that way gets a fresh burst.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, MonotonicClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use http::header::{HeaderMap, HeaderValue};

/// The default `max_keys`.
pub const DEFAULT_MAX_KEYS: usize = 65_536;

/// The policy name in the RateLimit fields (the draft's quoted policy identifier).
const POLICY: &str = "route";

/// What a limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The token's `sub` (after verification).
    Sub,
    /// The token's `client_id` (an ID token's `aud`), after verification.
    ClientId,
    /// The client's address, before the token is looked at.
    Ip,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Sub => "sub",
            KeyKind::ClientId => "client_id",
            KeyKind::Ip => "ip",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "sub" => Some(KeyKind::Sub),
            "client_id" => Some(KeyKind::ClientId),
            "ip" => Some(KeyKind::Ip),
            _ => None,
        }
    }
}

/// A validated `rate_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limit {
    pub key: KeyKind,
    pub requests: NonZeroU32,
    pub per: Duration,
    pub burst: NonZeroU32,
    pub max_keys: usize,
}

impl Limit {
    /// The emission interval, `per / requests` (at least 1 ns).
    pub fn interval(&self) -> Duration {
        (self.per / self.requests.get()).max(Duration::from_nanos(1))
    }

    /// The time a whole burst takes to replenish.
    pub fn window(&self) -> Duration {
        self.interval().saturating_mul(self.burst.get())
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.interval())
            .expect("the interval is at least 1 ns")
            .allow_burst(self.burst)
    }

    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-09 §5).
    pub fn policy_header(&self) -> String {
        format!(
            "\"{POLICY}\";q={};w={}",
            self.burst,
            ceil_secs(self.window()).max(1)
        )
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A refused request: how long until the key may call again.
#[derive(Debug, Clone)]
pub struct Limited {
    /// Seconds, rounded up, at least 1: `Retry-After` and the `RateLimit` field's `t`.
    pub retry_after: u64,
    /// `RateLimit-Policy`.
    pub policy: HeaderValue,
}

impl Limited {
    /// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-09 §4): nothing remains, for `t`
    /// seconds.
    pub fn ratelimit_header(&self) -> String {
        format!("\"{POLICY}\";r=0;t={}", self.retry_after)
    }
}

/// A key of a limit: an address (IPv6 by its /64), or a claim's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(IpAddr),
    Claim(Box<str>),
}

impl Key {
    /// The key of address `ip`: an IPv4-mapped IPv6 address is its IPv4 address; other IPv6
    /// addresses count by their /64, the smallest block a host is usually given.
    pub fn ip(ip: IpAddr) -> Key {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        };
        Key::Ip(ip)
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not a trusted proxy (every `X-Forwarded-For` header,
/// in order, as one list). A list of trusted proxies only, or an entry that is not an
/// address, stops the walk at the last trusted hop.
pub fn client_ip(
    peer: IpAddr,
    peer_trusted: bool,
    headers: &HeaderMap,
    trusts: &dyn Fn(IpAddr) -> bool,
) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let mut client = peer;
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let entry = entry.trim();
        let Some(ip) = parse_forwarded_ip(entry) else {
            return client;
        };
        client = ip;
        if !trusts(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, `[v6]` or `[v6]:port`, or `v4:port`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|a| IpAddr::V4(*a.ip()))
}

// === impl Limiter ===

/// The live limit of one route: its GCRA state, kept across reloads while the route and its
/// limit stay the same.
pub struct Limiter {
    limit: Limit,
    gcra: RateLimiter<Key, Store, MonotonicClock>,
    /// The store the limiter holds too (`RateLimiter` does not hand its out).
    store: Store,
    clock: MonotonicClock,
    policy: HeaderValue,
    limited: prometheus::IntCounter,
}

/// The metric handles of one route's limiter.
pub struct LimiterMetrics {
    /// `sidecar_rate_limited_total{route}`.
    pub limited: prometheus::IntCounter,
    /// `sidecar_rate_limit_keys{route}`.
    pub keys: prometheus::IntGauge,
    /// `sidecar_rate_limit_evicted_total{route}`.
    pub evicted: prometheus::IntCounter,
}

impl Limiter {
    pub fn new(limit: Limit, metrics: LimiterMetrics) -> Limiter {
        let clock = MonotonicClock;
        let store = Store(Arc::new(Shards::new(
            limit.max_keys,
            metrics.keys,
            metrics.evicted,
        )));
        let gcra = RateLimiter::new(limit.quota(), store.clone(), clock.clone());
        // Taken after the limiter's own start: "now" here is never later than the
        // limiter's, so a key is only forgotten for free when it truly is in the past.
        let _ = store.0.start.set(Instant::now());
        let policy = HeaderValue::from_str(&limit.policy_header())
            .expect("a policy is ASCII digits and fixed text");
        Limiter {
            limit,
            gcra,
            store,
            clock,
            policy,
            limited: metrics.limited,
        }
    }

    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Counts one request of `key`: `Err` when it is over the limit.
    pub fn check(&self, key: &Key) -> Result<(), Limited> {
        match self.gcra.check_key(key) {
            Ok(_) => Ok(()),
            Err(not_until) => {
                self.limited.inc();
                let wait = not_until.wait_time_from(self.clock.now());
                Err(Limited {
                    retry_after: ceil_secs(wait).max(1),
                    policy: self.policy.clone(),
                })
            }
        }
    }

    /// Keys held now.
    pub fn keys(&self) -> usize {
        self.store.0.len()
    }
}

// === impl Store ===

/// The GCRA state of one limiter, shared by the limiter and its `RateLimiter`.
#[derive(Clone)]
pub struct Store(Arc<Shards>);

/// GCRA state by key, in shards, at most `cap` keys in all.
pub struct Shards {
    shards: Box<[Mutex<HashMap<Key, u64>>]>,
    hasher: RandomState,
    per_shard: usize,
    start: OnceLock<Instant>,
    keys: prometheus::IntGauge,
    evicted: prometheus::IntCounter,
}

impl Shards {
    fn new(cap: usize, keys: prometheus::IntGauge, evicted: prometheus::IntCounter) -> Shards {
        // One shard per 4096 keys, up to 16: small caps stay exact.
        let shards = (cap / 4096).clamp(1, 16);
        Shards {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: cap.div_ceil(shards).max(1),
            start: OnceLock::new(),
            keys,
            evicted,
        }
    }

    /// Nanoseconds since the limiter started, never later than the limiter's own clock.
    fn now(&self) -> u64 {
        self.start.get().map_or(0, |s| {
            s.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64
        })
    }

    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, u64>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()]
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("lock poisoned").len())
            .sum()
    }

    /// Makes room in a shard over its cap: first the keys already in the past (free), then
    /// the oldest, down to 15/16 of the cap.
    fn make_room(&self, map: &mut HashMap<Key, u64>) {
        let before = map.len();
        let now = self.now();
        map.retain(|_, tat| *tat > now);
        // Down to 15/16 of the cap, so that the next sweep is at least cap/16 inserts away.
        let target = (self.per_shard - self.per_shard / 16).max(1);
        let excess = map.len().saturating_sub(target);
        if excess > 0 {
            let mut by_age: Vec<(u64, Key)> =
                map.iter().map(|(k, tat)| (*tat, k.clone())).collect();
            by_age.select_nth_unstable_by_key(excess - 1, |(tat, _)| *tat);
            for (_, k) in by_age.into_iter().take(excess) {
                map.remove(&k);
            }
            self.evicted.inc_by(excess as u64);
        }
        self.keys.sub((before - map.len()) as i64);
    }
}

impl StateStore for Store {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let s = &self.0;
        let mut map = s.shard(key).lock().expect("lock poisoned");
        match map.get_mut(key) {
            Some(tat) => {
                let (t, next) = f(Some(Nanos::new(*tat)))?;
                *tat = next.as_u64();
                Ok(t)
            }
            None => {
                let (t, next) = f(None)?;
                map.insert(key.clone(), next.as_u64());
                s.keys.inc();
                if map.len() > s.per_shard {
                    s.make_room(&mut map);
                }
                Ok(t)
            }
        }
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        // The route's gauge counts the live limiters' keys only.
        let s = &self.store.0;
        s.keys.sub(s.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> LimiterMetrics {
        LimiterMetrics {
            limited: prometheus::IntCounter::new("l", "l").unwrap(),
            keys: prometheus::IntGauge::new("k", "k").unwrap(),
            evicted: prometheus::IntCounter::new("e", "e").unwrap(),
        }
    }

    fn limit(requests: u32, per: Duration, burst: u32, max_keys: usize) -> Limit {
        Limit {
            key: KeyKind::Sub,
            requests: NonZeroU32::new(requests).unwrap(),
            per,
            burst: NonZeroU32::new(burst).unwrap(),
            max_keys,
        }
    }

    fn key(s: &str) -> Key {
        Key::Claim(s.into())
    }

    #[test]
    fn a_burst_passes_then_the_next_is_refused_with_the_wait() {
        let l = Limiter::new(limit(2, Duration::from_secs(60), 3, 100), metrics());
        for _ in 0..3 {
            assert!(l.check(&key("a")).is_ok());
        }
        let e = l.check(&key("a")).unwrap_err();
        // One request every 30 s: the next one passes in (just under) 30 s.
        assert!((29..=30).contains(&e.retry_after), "{}", e.retry_after);
        assert_eq!(e.policy, "\"route\";q=3;w=90");
        assert_eq!(
            e.ratelimit_header(),
            format!("\"route\";r=0;t={}", e.retry_after)
        );
        // Other keys have their own burst.
        assert!(l.check(&key("b")).is_ok());
        assert_eq!(l.gcra_limited(), 1);
    }

    impl Limiter {
        fn gcra_limited(&self) -> u64 {
            self.limited.get()
        }
    }

    #[test]
    fn the_default_burst_is_the_period() {
        let l = limit(100, Duration::from_secs(60), 100, 10);
        assert_eq!(l.policy_header(), "\"route\";q=100;w=60");
        let l = limit(1_000_000_000, Duration::from_secs(1), 1_000_000_000, 10);
        assert_eq!(l.interval(), Duration::from_nanos(1));
        assert_eq!(l.policy_header(), "\"route\";q=1000000000;w=1");
    }

    #[test]
    fn keys_stay_under_the_cap_and_the_dropped_are_counted() {
        let m = metrics();
        let (keys, evicted) = (m.keys.clone(), m.evicted.clone());
        let l = Limiter::new(limit(1, Duration::from_secs(3600), 1, 64), m);
        for i in 0..1000 {
            assert!(l.check(&key(&format!("k{i}"))).is_ok());
            assert!(l.keys() <= 64, "{} keys after {i}", l.keys());
        }
        assert_eq!(keys.get() as usize, l.keys());
        // None of them was in the past: every key dropped was counted.
        assert_eq!(evicted.get() as usize, 1000 - l.keys());
        // The newest key is still held (and limited); the oldest was forgotten.
        assert!(l.check(&key("k999")).is_err());
        assert!(l.check(&key("k0")).is_ok());
        drop(l);
        assert_eq!(keys.get(), 0);
    }

    #[test]
    fn keys_in_the_past_are_forgotten_for_free() {
        let m = metrics();
        let evicted = m.evicted.clone();
        // 1 ns per request: every key is in the past almost at once.
        let l = Limiter::new(limit(1_000_000_000, Duration::from_secs(1), 1, 16), m);
        for i in 0..200 {
            let _ = l.check(&key(&format!("k{i}")));
        }
        assert!(l.keys() <= 16);
        assert!(evicted.get() < 184, "{}", evicted.get());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        let a = Key::ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Key::ip("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = Key::ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Key::ip("::ffff:10.0.0.1".parse().unwrap()),
            Key::ip("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn client_ip_is_the_rightmost_untrusted_forwarded_address() {
        let trusts = |ip: IpAddr| ip.is_loopback() || ip.to_string().starts_with("10.");
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let h = |values: &[&str]| {
            let mut m = HeaderMap::new();
            for v in values {
                m.append("x-forwarded-for", v.parse().unwrap());
            }
            m
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer: its own address, whatever it says.
        assert_eq!(
            client_ip(ip("203.0.113.9"), false, &h(&["1.1.1.1"]), &trusts),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(peer, true, &h(&[]), &trusts), peer);
        assert_eq!(
            client_ip(peer, true, &h(&["1.1.1.1, 2.2.2.2, 10.0.0.7"]), &trusts),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_ip(
                peer,
                true,
                &h(&["1.1.1.1", "2.2.2.2:443, 10.0.0.7"]),
                &trusts
            ),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_ip(peer, true, &h(&["[2001:db8::1]:80"]), &trusts),
            ip("2001:db8::1")
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(
            client_ip(peer, true, &h(&["10.0.0.1, 10.0.0.2"]), &trusts),
            ip("10.0.0.1")
        );
        // Garbage: the last trusted hop before it.
        assert_eq!(
            client_ip(peer, true, &h(&["1.1.1.1, garbage, 10.0.0.2"]), &trusts),
            ip("10.0.0.2")
        );
    }
}
