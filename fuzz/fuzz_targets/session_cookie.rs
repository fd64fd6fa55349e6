//! The session cookies: `session::open_session` and `session::open_login_state` over
//! arbitrary `Cookie` headers, and `seal_session` -> `open_session` over sessions built from
//! the input.
//!
//! Input: the bytes up to the first 0xff are cut at each `\n` into `Cookie` header values
//! (those `http` refuses are skipped); the rest (or the whole input when there is no 0xff)
//! seeds a `Session`.
//!
//! Properties: opening never panics, whatever the headers; a session that seals (it may be
//! `TooLarge`) opens again to the same session, also with the input's headers sent beside it
//! after `strip_session_cookies` removed whatever of ours they held; every rendered
//! `Set-Cookie` is a valid header value under 4096 bytes.

#![no_main]

use cognito_sidecar::session::{
    open_login_state, open_session, seal_session, strip_session_cookies, CookieKeys,
    CookieOptions, Session, SessionError,
};
use http::header::{HeaderMap, HeaderValue, COOKIE};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const NOW: i64 = 1_700_000_000;

fn keys() -> &'static CookieKeys {
    static KEYS: OnceLock<CookieKeys> = OnceLock::new();
    KEYS.get_or_init(|| CookieKeys::from_bytes(&[[1; 32], [2; 32]]).expect("fixed keys"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let (head, seed) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }
    for secure in [true, false] {
        let opts = CookieOptions {
            secure,
            ..CookieOptions::default()
        };
        let _ = open_session(keys(), "s", &headers, &opts, NOW);
        let _ = open_login_state(keys(), "l", &headers, &opts, NOW);
    }

    // A session from the seed: lengths from the first bytes, text from the rest (stretched
    // so Cognito-sized, multi-chunk sessions are reached).
    let len = |i: usize, scale: usize| usize::from(*seed.get(i).unwrap_or(&0)) * scale;
    let body = seed.get(4..).unwrap_or(&[]);
    let stretch = |n: usize| -> String {
        if body.is_empty() {
            return "x".repeat(n);
        }
        text(&body.iter().copied().cycle().take(n).collect::<Vec<u8>>())
    };
    let session = Session {
        access_token: stretch(len(0, 16)),
        refresh_token: (len(1, 1) % 2 == 1).then(|| stretch(len(2, 24))),
        access_exp: NOW + len(3, 60) as i64,
        started_at: NOW - len(3, 1) as i64,
        refreshed_at: NOW,
        sub: (len(1, 1) % 4 >= 2).then(|| text(body.get(..36).unwrap_or(body))),
    };
    let opts = CookieOptions::default();
    let cookies = match seal_session(keys(), "s", &session, &opts, NOW) {
        Ok(c) => c,
        Err(SessionError::TooLarge { needed, limit }) => {
            assert!(needed > limit);
            return;
        }
        Err(e) => panic!("seal failed: {e:?}"),
    };
    for c in &cookies {
        let rendered = c.to_header_value().expect("a valid Set-Cookie value");
        assert!(rendered.len() < 4096, "{} bytes", rendered.len());
    }
    strip_session_cookies(&mut headers, &["s"]);
    let pairs: Vec<String> = cookies
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect();
    headers.append(COOKIE, HeaderValue::from_str(&pairs.join("; ")).expect("ascii"));
    let opened = open_session(keys(), "s", &headers, &opts, NOW).expect("round trip");
    assert_eq!(opened, session);
});
