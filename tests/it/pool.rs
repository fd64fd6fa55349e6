//! The upstream connection pool: connections are reused only after a response was read to
//! the end, never after one was abandoned or the upstream said `Connection: close`;
//! `pool_max_idle = 0` turns pooling off and idle connections close after
//! `pool_idle_timeout`; `max_connections` makes requests wait for a busy connection. The
//! upstream in most of these tests is a raw keep-alive HTTP/1.1 peer that counts its
//! connections, so reuse is seen from the upstream's side.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use cognito_sidecar::Sidecar;

use crate::support::*;

/// A keep-alive upstream: answers every request on a connection by its path until the
/// peer hangs up.
/// - `/cl`: `Content-Length` body `hello`;
/// - `/chunked`: chunked body `hello`;
/// - `/empty`: 204;
/// - `/close`: `hello` with `Connection: close`, then hangs up;
/// - `/partial`: announces 100000 bytes, sends 10 and waits.
struct Peer {
    addr: SocketAddr,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    async fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (o, c) = (opened.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                o.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    peer_conn(stream).await;
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Peer {
            addr,
            opened,
            closed,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

async fn peer_conn(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // GET requests only: a head ends the request.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("");
        let answer: &[u8] = match path {
            "/cl" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            "/chunked" => {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            }
            "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n",
            "/close" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            "/partial" => b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789",
            _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        };
        if s.write_all(answer).await.is_err() {
            return;
        }
        if path == "/close" {
            return;
        }
        if path == "/partial" {
            // Never finishes: waits for the sidecar to give the connection up.
            let _ = s.read_to_end(&mut Vec::new()).await;
            return;
        }
    }
}

async fn sidecar_for(peer: &Peer, upstream_extra: &str) -> Sidecar {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let text = config_text(&peer.url(), &jwks.url(), "").replace(
        "request_timeout = \"2s\"",
        &format!("request_timeout = \"2s\"\n{upstream_extra}"),
    ) + "\n[default]\nauth = \"public\"\n";
    let s = start_ready(&text).await;
    drop(jwks);
    s
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "").await;
    let addr = sidecar.local_addr();
    for path in ["/cl", "/chunked", "/empty", "/cl", "/chunked", "/empty"] {
        let r = get(addr, path).await;
        let want = if path == "/empty" { 204 } else { 200 };
        assert_eq!(r.status, want, "{path}: {r:?}");
        if want == 200 {
            assert_eq!(r.body, "hello", "{path}");
        }
    }
    assert_eq!(
        peer.opened(),
        1,
        "every response was read to the end: one connection"
    );
}

#[tokio::test]
async fn connection_close_from_the_upstream_means_a_new_connection() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "").await;
    for _ in 0..3 {
        let r = get(sidecar.local_addr(), "/close").await;
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    }
    assert_eq!(peer.opened(), 3);
    // And the pool still works for keep-alive answers afterwards.
    for _ in 0..2 {
        assert_eq!(get(sidecar.local_addr(), "/cl").await.body, "hello");
    }
    assert_eq!(peer.opened(), 4);
}

#[tokio::test]
async fn an_abandoned_response_never_puts_its_connection_back() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "").await;
    // The client reads the head of a response whose body never completes, then leaves.
    let mut s = TcpStream::connect(sidecar.local_addr()).await.unwrap();
    s.write_all(b"GET /partial HTTP/1.1\r\nhost: sidecar.test\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "head arrives");
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    drop(s);
    // The upstream connection, mid-body, is closed rather than pooled: the next request
    // gets its own connection and its own clean answer, not the rest of that body.
    eventually(Duration::from_secs(5), || async { peer.closed() == 1 }).await;
    let r = get(sidecar.local_addr(), "/cl").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    assert_eq!(peer.opened(), 2);
}

#[tokio::test]
async fn pool_max_idle_zero_opens_a_connection_per_request() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "pool_max_idle = 0").await;
    for _ in 0..3 {
        assert_eq!(get(sidecar.local_addr(), "/cl").await.body, "hello");
    }
    assert_eq!(peer.opened(), 3);
    eventually(Duration::from_secs(5), || async { peer.closed() == 3 }).await;
}

#[tokio::test]
async fn idle_connections_close_after_pool_idle_timeout() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "pool_idle_timeout = \"1s\"").await;
    assert_eq!(get(sidecar.local_addr(), "/cl").await.body, "hello");
    assert_eq!((peer.opened(), peer.closed()), (1, 0));
    // The reaper runs every second; the connection is closed within two.
    eventually(Duration::from_secs(5), || async { peer.closed() == 1 }).await;
    assert_eq!(get(sidecar.local_addr(), "/cl").await.body, "hello");
    assert_eq!(peer.opened(), 2);
}

/// `sidecar_upstream_queued` from `/metrics`.
async fn queued(admin: SocketAddr) -> i64 {
    counter(admin, "sidecar_upstream_queued").await
}

#[tokio::test]
async fn max_connections_queues_requests_and_the_wait_counts_toward_request_timeout() {
    let up = Upstream::start().await;
    let jwks = Jwks::start(&[&KEY_A]).await;
    let text = config_text(&up.url(), &jwks.url(), "").replace(
        "request_timeout = \"2s\"",
        "request_timeout = \"2s\"\nmax_connections = 1",
    ) + "\n[default]\nauth = \"public\"\n";
    let sidecar = start_ready(&text).await;
    let (addr, admin) = (sidecar.local_addr(), sidecar.admin_addr().unwrap());
    assert_eq!(queued(admin).await, 0);

    // A download whose body the upstream holds back keeps the one connection busy...
    let holder = tokio::spawn(async move { get(addr, "/download?n=2").await });
    eventually(Duration::from_secs(5), || async { up.hits() == 1 }).await;
    // ...so the next request waits for it, without reaching the upstream.
    let second = tokio::spawn(async move { get(addr, "/second").await });
    eventually(Duration::from_secs(5), || async {
        queued(admin).await == 1
    })
    .await;
    assert_eq!(up.hits(), 1);
    up.release();
    let h = holder.await.unwrap();
    assert_eq!((h.status, h.body.len()), (200, 2 * 64 * 1024));
    let s = second.await.unwrap();
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(up.hits(), 2);
    assert_eq!(up.last().uri, "/second");
    assert_eq!(queued(admin).await, 0);

    // Waiting past request_timeout is a 504, and the upstream never sees that request.
    let holder = tokio::spawn(async move { get(addr, "/download?n=2").await });
    eventually(Duration::from_secs(5), || async { up.hits() == 3 }).await;
    let late = get(addr, "/late").await;
    assert_eq!(late.status, 504, "{late:?}");
    assert_eq!(up.hits(), 3);
    assert_eq!(
        queued(admin).await,
        0,
        "a request that gave up no longer counts"
    );
    up.release();
    assert_eq!(holder.await.unwrap().status, 200);
}

/// An unlabelled metric's value from `/metrics`.
async fn counter(admin: SocketAddr, name: &str) -> i64 {
    get(admin, "/metrics")
        .await
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

const OVER_SOFT: &str = "sidecar_upstream_over_soft_limit_total";

async fn soft_sidecar(up: &Upstream, wait: &str) -> Sidecar {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let text = config_text(&up.url(), &jwks.url(), "").replace(
        "request_timeout = \"2s\"",
        &format!("request_timeout = \"5s\"\nsoft_max_connections = 1\nsoft_max_wait = \"{wait}\""),
    ) + "\n[default]\nauth = \"public\"\n";
    start_ready(&text).await
}

/// A soft-limited sidecar (one slot, `wait`) whose only slot a long poll holds: its head
/// does not come until `up.release()`.
async fn slot_held(
    up: &Upstream,
    wait: &str,
) -> (
    Sidecar,
    SocketAddr,
    SocketAddr,
    tokio::task::JoinHandle<Reply>,
) {
    let sidecar = soft_sidecar(up, wait).await;
    let (addr, admin) = (sidecar.local_addr(), sidecar.admin_addr().unwrap());
    let holder = tokio::spawn(async move { get(addr, "/hold").await });
    eventually(Duration::from_secs(5), || async { up.hits() == 1 }).await;
    (sidecar, addr, admin, holder)
}

#[tokio::test]
async fn soft_limit_a_long_response_streams_without_holding_its_slot() {
    let up = Upstream::start().await;
    // A wait far longer than the test: only a released slot lets the second one through.
    let sidecar = soft_sidecar(&up, "60s").await;
    let (addr, admin) = (sidecar.local_addr(), sidecar.admin_addr().unwrap());
    // A download of unknown length, its body held back after the first chunk...
    let holder = tokio::spawn(async move { get(addr, "/download?n=2").await });
    eventually(Duration::from_secs(5), || async { up.hits() == 1 }).await;
    // ...gave its slot back when its head came: the next request is not queued.
    let second = get(addr, "/second").await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(up.hits(), 2);
    assert_eq!(counter(admin, OVER_SOFT).await, 0);
    assert!(!holder.is_finished(), "the download is still streaming");
    up.release();
    let h = holder.await.unwrap();
    assert_eq!((h.status, h.body.len()), (200, 2 * 64 * 1024));
}

#[tokio::test]
async fn soft_limit_a_stuck_slot_lets_the_next_request_past_after_soft_max_wait() {
    let up = Upstream::start().await;
    let (_sidecar, addr, admin, holder) = slot_held(&up, "300ms").await;
    let started = std::time::Instant::now();
    let second = tokio::spawn(async move { get(addr, "/second").await });
    // It waits for the slot first...
    eventually(Duration::from_secs(5), || async {
        queued(admin).await == 1
    })
    .await;
    // ...and, no slot coming back within soft_max_wait, goes ahead on a connection of its
    // own while the long poll still holds the slot.
    let s = second.await.unwrap();
    assert_eq!(s.status, 200, "{s:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(up.last().uri, "/second");
    assert_eq!(counter(admin, OVER_SOFT).await, 1);
    assert_eq!(queued(admin).await, 0);
    assert!(!holder.is_finished());
    up.release();
    assert_eq!(holder.await.unwrap().body, "released");
}

#[tokio::test]
async fn soft_limit_a_permit_added_for_a_stall_is_taken_back() {
    let up = Upstream::start().await;
    // Two long polls: the first takes the only slot, the second goes ahead after the stall
    // on a permit added for it.
    let (_sidecar, addr, admin, first) = slot_held(&up, "1s").await;
    let second = tokio::spawn(async move { get(addr, "/hold").await });
    eventually(Duration::from_secs(5), || async { up.hits() == 2 }).await;
    assert_eq!(counter(admin, OVER_SOFT).await, 1);
    // One of them ends: its permit is the added one taken back, not a free slot...
    up.release();
    let done = tokio::select! {
        r = first => { r.unwrap() }
        r = second => { r.unwrap() }
    };
    assert_eq!(done.body, "released");
    // ...so the limit is one again: the next request waits for the long poll still held.
    let third = tokio::spawn(async move { get(addr, "/third").await });
    eventually(Duration::from_secs(5), || async {
        queued(admin).await == 1
    })
    .await;
    assert_eq!(up.hits(), 2, "the third request waits for the slot");
    up.release();
    let t = third.await.unwrap();
    assert_eq!(t.status, 200, "{t:?}");
    assert_eq!(up.last().uri, "/third");
}

#[tokio::test]
async fn soft_limit_while_slots_come_back_requests_share_the_connections() {
    let peer = Peer::start().await;
    let sidecar = sidecar_for(&peer, "soft_max_connections = 2\nsoft_max_wait = \"2s\"").await;
    let (addr, admin) = (sidecar.local_addr(), sidecar.admin_addr().unwrap());
    let all = (0..40).map(|_| tokio::spawn(async move { get(addr, "/cl").await }));
    for r in futures_util::future::join_all(all).await {
        assert_eq!(r.unwrap().body, "hello");
    }
    // 40 at once, and never more than the two connections the soft limit allows.
    assert!(peer.opened() <= 2, "{} upstream connections", peer.opened());
    assert_eq!(counter(admin, OVER_SOFT).await, 0);
}
