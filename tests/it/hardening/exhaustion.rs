//! Resource exhaustion: slow clients, silent clients, connection floods, huge heads, floods of
//! unknown kids, huge JWKS bodies. Every loop is bounded in count and time.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;

use super::*;
use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/admin/**"
groups_any = ["admins"]
"#;

/// A config with `header_read_timeout = "1s"`.
async fn one_second_env() -> Env {
    env_with(ROUTES, |t| set_key(t, "header_read_timeout", "\"1s\"")).await
}

/// Opens a connection, sends `bytes`, stalls; returns how long until the sidecar hung up.
async fn time_to_hangup(addr: std::net::SocketAddr, bytes: &[u8]) -> (Duration, String) {
    let started = Instant::now();
    let mut c = Conn::open(addr).await;
    if !bytes.is_empty() {
        c.send(bytes).await;
    }
    let (reply, closed) = c.read_until_close(Duration::from_secs(8)).await;
    assert!(
        closed,
        "a client that sent {:?} and stalled was still connected after 8s",
        String::from_utf8_lossy(bytes)
    );
    (started.elapsed(), reply)
}

#[tokio::test]
async fn slowloris_half_a_head_is_cut_off_after_header_read_timeout() {
    let env = one_second_env().await;
    let (took, reply) = time_to_hangup(
        env.addr(),
        b"GET /public/x HTTP/1.1\r\nhost: t\r\nx-slow: 1\r\n",
    )
    .await;
    assert!(
        took >= Duration::from_millis(900),
        "cut off too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "cut off too late: {took:?}");
    // hyper answers a head timeout with 408 or just closes; either way nothing was forwarded.
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn a_silent_connection_is_cut_off_after_header_read_timeout() {
    let env = one_second_env().await;
    let (took, _) = time_to_hangup(env.addr(), b"").await;
    assert!(
        took >= Duration::from_millis(900),
        "cut off too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "cut off too late: {took:?}");
}

#[tokio::test]
async fn a_partial_http2_preface_is_cut_off_after_header_read_timeout() {
    let env = one_second_env().await;
    for partial in [
        &b"P"[..],
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r",
    ] {
        let (took, _) = time_to_hangup(env.addr(), partial).await;
        assert!(took < Duration::from_secs(4), "cut off too late: {took:?}");
    }
    // A keep-alive connection idle after one request is cut off too.
    let mut c = Conn::open(env.addr()).await;
    c.send(b"GET /public/x HTTP/1.1\r\nhost: t\r\n\r\n").await;
    let started = Instant::now();
    let (reply, closed) = c.read_until_close(Duration::from_secs(8)).await;
    assert!(
        closed && started.elapsed() < Duration::from_secs(4),
        "{reply}"
    );
    assert_eq!(statuses(&reply), vec![200]);
}

#[tokio::test]
async fn idle_connections_at_the_limit_are_cut_and_a_waiting_client_is_served() {
    let env = env_with(ROUTES, |t| {
        let t = set_key(t, "header_read_timeout", "\"1s\"");
        add_to(t, "listener", "max_connections = 20")
    })
    .await;
    // Twenty silent connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(env.addr()).await.unwrap());
    }
    let admin = env.admin();
    eventually(Duration::from_secs(5), || async move {
        metric(
            &get(admin, "/metrics").await.body,
            "sidecar_connections_active",
        ) >= 20.0
    })
    .await;
    // A real client waits for a slot, and gets one once the silent ones are cut off.
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(8),
        request(env.addr(), "GET", "/public/x", &[], ""),
    )
    .await
    .expect("a client behind silent connections was served within 8s");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn a_connection_flood_is_bounded_by_max_connections_and_recovers() {
    // header_read_timeout stays long, so the flood holds its slots while we look.
    let env = env_with(ROUTES, |t| {
        let t = set_key(t, "header_read_timeout", "\"30s\"");
        add_to(t, "listener", "max_connections = 50")
    })
    .await;
    let started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..200 {
        // Connects complete in the kernel backlog even when the sidecar is not accepting.
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(env.addr())).await {
            Ok(Ok(s)) => flood.push(s),
            _ => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "flood took too long"
        );
    }
    assert!(
        flood.len() >= 100,
        "only {} connections opened",
        flood.len()
    );
    let admin = env.admin();
    eventually(Duration::from_secs(5), || async move {
        let m = get(admin, "/metrics").await.body;
        metric(&m, "sidecar_connections_limited_total") > 0.0
            && metric(&m, "sidecar_connections_active") == 50.0
    })
    .await;
    let m = env.metrics().await;
    assert!(
        metric(&m, "sidecar_connections_active") <= 50.0,
        "more than max_connections served at once:\n{m}"
    );
    drop(flood);
    // Once the flood is gone the sidecar serves again (the backlog drains as EOFs).
    let addr = env.addr();
    eventually(Duration::from_secs(10), || async move {
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                try_request(addr, "GET", "/public/x", &[], "")
            )
            .await,
            Ok(Ok(r)) if r.status == 200
        )
    })
    .await;
    let m = env.metrics().await;
    assert!(metric(&m, "sidecar_connections_limited_total") > 0.0, "{m}");
}

#[tokio::test]
async fn huge_heads_get_431_and_the_sidecar_keeps_serving() {
    let env = one_second_env().await;
    // One header of 40 KiB (max_header_bytes is 32 KiB).
    let big = "a".repeat(40 * 1024);
    let before = env.upstream.hits();
    let reply = raw(
        env.addr(),
        format!("GET /public/x HTTP/1.1\r\nhost: t\r\nx-big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        statuses(&reply),
        vec![431],
        "{}",
        &reply[..reply.len().min(200)]
    );
    // A 40 KiB request target.
    let reply = raw(
        env.addr(),
        format!("GET /public/{big} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        statuses(&reply),
        vec![431],
        "{}",
        &reply[..reply.len().min(200)]
    );
    // Many small headers (more than hyper's 100).
    let mut many = String::from("GET /public/x HTTP/1.1\r\nhost: t\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let reply = raw(env.addr(), many.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        statuses(&reply),
        vec![431],
        "{}",
        &reply[..reply.len().min(200)]
    );
    // A huge bearer token inside the head limit is refused before any decoding.
    let token = format!("eyJ{}", "A".repeat(20 * 1024));
    let r = call(env.addr(), "/admin/x", &token).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.reason(), "too_large");
    assert_eq!(env.upstream.hits(), before);
    // And normal requests still work.
    assert_eq!(get(env.addr(), "/public/x").await.status, 200);
}

#[tokio::test]
async fn repeated_floods_of_unknown_kids_across_issuers_stay_within_the_refetch_bound() {
    let jwks: Vec<Jwks> = vec![
        Jwks::start(&[&KEY_A]).await,
        Jwks::start(&[&KEY_A]).await,
        Jwks::start(&[&KEY_A]).await,
    ];
    let upstream = Upstream::start().await;
    let mut text = config_text(&upstream.url(), &jwks[0].url(), ROUTES)
        .replace("jwks_min_refetch = \"0s\"", "jwks_min_refetch = \"1s\"");
    for (i, j) in jwks.iter().enumerate().skip(1) {
        text.push_str(&format!(
            "[[issuers]]\nname = \"pool{i}\"\nissuer = \"https://issuer{i}.test\"\njwks_url = \"{}\"\ntoken_use = [\"any\"]\njwks_min_refetch = \"1s\"\n",
            j.url()
        ));
    }
    let sidecar = start_ready(&text).await;
    let addr = sidecar.local_addr();
    let issuers = [
        ISS.to_string(),
        "https://issuer1.test".to_string(),
        "https://issuer2.test".to_string(),
    ];
    let started = Instant::now();
    let mut sent = 0;
    // Three rounds of 60 concurrent requests, each with a kid nobody has.
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..60 {
            let mut claims = access_claims("x");
            claims["iss"] = json!(issuers[i % 3]);
            let t = KEY_A.sign_raw(
                &json!({"alg":"RS256","kid":format!("r{round}-{i}")}),
                &claims,
            );
            tasks.push(tokio::spawn(
                async move { call(addr, "/admin/x", &t).await },
            ));
            sent += 1;
        }
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 401);
            assert_eq!(r.reason(), "unknown_kid");
        }
    }
    // Tokens naming an issuer nobody configured never cause a fetch at all.
    for i in 0..30 {
        let mut claims = access_claims("x");
        claims["iss"] = json!(format!("http://127.0.0.1:{}/evil{i}", jwks[0].addr.port()));
        let r = call(addr, "/admin/x", &KEY_A.sign(&claims)).await;
        assert_eq!(r.reason(), "wrong_issuer");
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Per issuer: the start-up fetch, plus at most one per jwks_min_refetch (1s) elapsed.
    let bound = 1 + 1 + elapsed.ceil() as usize;
    for (i, j) in jwks.iter().enumerate() {
        assert!(
            j.fetches() <= bound,
            "issuer {i}: {} fetches for {sent} unknown kids in {elapsed:.1}s (bound {bound})",
            j.fetches()
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_silent_connections() {
    // header_read_timeout and drain_timeout long: only the shutdown itself may end the wait.
    let env = env_with(ROUTES, |t| {
        let t = set_key(t, "header_read_timeout", "\"30s\"");
        set_key(t, "drain_timeout", "\"30s\"")
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(env.addr()).await.unwrap());
    }
    let admin = env.admin();
    eventually(Duration::from_secs(5), || async move {
        metric(
            &get(admin, "/metrics").await.body,
            "sidecar_connections_active",
        ) >= 5.0
    })
    .await;
    let Env { sidecar, .. } = env;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), sidecar.shutdown())
        .await
        .expect("shutdown finished");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown waited {:?} for connections that never sent a byte",
        started.elapsed()
    );
    drop(silent);
}
