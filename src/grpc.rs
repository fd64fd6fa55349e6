//! gRPC calls through the proxy: which requests are gRPC calls, their `grpc-timeout`, and
//! the answer a gRPC client understands when the sidecar refuses one.
//!
//! A gRPC client reads the call's status from `grpc-status` and `grpc-message` (trailers,
//! or a trailers-only response), and reports an HTTP status other than 200 as a transport
//! failure ("unknown error"). So a refusal of a gRPC call is HTTP 200 with
//! `content-type: application/grpc`, no body, and the status in the headers: over HTTP/2 a
//! HEADERS frame with END_STREAM, which is gRPC's trailers-only response. gRPC-Web is left
//! alone: its clients read trailers from the body, and cannot read a trailers-only answer
//! over HTTP/1.1.
//!
//! Pure functions over headers; depends on nothing else in the crate.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Whether `content-type` is `application/grpc` or `application/grpc+<codec>` (optionally
/// with parameters): a gRPC call over HTTP/2, not gRPC-Web.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| grpc_content_type(v.as_bytes()))
}

fn grpc_content_type(v: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    v.len() >= PREFIX.len()
        && v[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && matches!(v.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// Whether `content-type` is any gRPC one, gRPC-Web included (both carry `grpc-timeout`).
fn any_grpc_content_type(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        grpc_content_type(v)
            || v.len() >= 20 && v[..20].eq_ignore_ascii_case(b"application/grpc-web")
    })
}

/// A `grpc-timeout` value (gRPC over HTTP/2: `TimeoutValue TimeoutUnit`, 1 to 8 ASCII
/// digits, then `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds or
/// `n` nanoseconds). Anything else is `None`.
pub fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 99,999,999: no overflow below, even in hours (about 11,000 years).
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A gRPC call's `grpc-timeout` that is malformed or given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTimeout;

/// The wait for the upstream's response head: `request_timeout`, or a gRPC call's
/// `grpc-timeout` when that is shorter. `Err` for a gRPC call whose `grpc-timeout` is
/// malformed or given twice (the caller refuses it: INVALID_ARGUMENT). Requests that are
/// not gRPC keep `request_timeout`, whatever they carry.
pub fn deadline(headers: &HeaderMap, request_timeout: Duration) -> Result<Duration, BadTimeout> {
    let mut values = headers.get_all(&GRPC_TIMEOUT).iter();
    let Some(first) = values.next() else {
        return Ok(request_timeout);
    };
    if !any_grpc_content_type(headers) {
        return Ok(request_timeout);
    }
    if values.next().is_some() {
        return Err(BadTimeout);
    }
    let t = parse_timeout(first.as_bytes()).ok_or(BadTimeout)?;
    Ok(t.min(request_timeout))
}

/// The gRPC status code for an HTTP status the sidecar answers with: as the issue's
/// table and gRPC's HTTP-to-gRPC mapping say; anything else is UNKNOWN (2).
pub fn status_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 | 405 => 12, // UNIMPLEMENTED
        429 | 431 => 8,  // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 2,          // UNKNOWN
    }
}

/// gRPC's `grpc-message` encoding: every byte outside 0x20..=0x7E, and `%`, as `%XX`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

pub fn encode_message(message: &str) -> String {
    utf8_percent_encode(message, MESSAGE).to_string()
}

/// Turns the sidecar's HTTP refusal into a gRPC trailers-only response: 200,
/// `content-type: application/grpc`, `grpc-status` for the refusal's HTTP status,
/// `grpc-message` the reason, no body. The other headers (`WWW-Authenticate`, `Allow`,
/// `Retry-After`, `RateLimit`) stay.
pub fn refusal(resp: Response<Full<Bytes>>, reason: &str) -> Response<Full<Bytes>> {
    let (mut parts, _) = resp.into_parts();
    let code = status_code(parts.status);
    parts.status = StatusCode::OK;
    let h = &mut parts.headers;
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(GRPC_STATUS.clone(), HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::try_from(encode_message(reason)) {
        h.insert(GRPC_MESSAGE.clone(), v);
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn grpc_content_types_but_not_grpc_web() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&ct(yes)), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpcx",
            "application/json",
            "application/grp",
            "",
        ] {
            assert!(!is_grpc(&ct(no)), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_timeouts_parse_as_the_spec_says() {
        let d = |s: &str| parse_timeout(s.as_bytes());
        assert_eq!(d("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(d("2M"), Some(Duration::from_secs(120)));
        assert_eq!(d("30S"), Some(Duration::from_secs(30)));
        assert_eq!(d("250m"), Some(Duration::from_millis(250)));
        assert_eq!(d("7u"), Some(Duration::from_micros(7)));
        assert_eq!(d("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(d("0S"), Some(Duration::ZERO));
        assert_eq!(d("00000001m"), Some(Duration::from_millis(1)));
        assert_eq!(d("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        for bad in [
            "",
            "S",
            "m",
            "123456789S",
            "1s",
            "1h",
            "1",
            "1.5S",
            "-1S",
            "+1S",
            " 1S",
            "1S ",
            "1 S",
            "1SS",
            "١S",
            "0x10m",
            "1e3m",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_deadline_is_the_shorter_for_grpc_calls_only() {
        let rt = Duration::from_secs(30);
        let mut h = ct("application/grpc");
        assert_eq!(deadline(&h, rt), Ok(rt));
        h.insert(&GRPC_TIMEOUT, HeaderValue::from_static("100m"));
        assert_eq!(deadline(&h, rt), Ok(Duration::from_millis(100)));
        h.insert(&GRPC_TIMEOUT, HeaderValue::from_static("1H"));
        assert_eq!(deadline(&h, rt), Ok(rt));
        h.insert(&GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(deadline(&h, rt), Err(BadTimeout));
        h.insert(&GRPC_TIMEOUT, HeaderValue::from_static("1S"));
        h.append(&GRPC_TIMEOUT, HeaderValue::from_static("1S"));
        assert_eq!(deadline(&h, rt), Err(BadTimeout), "given twice");
        let mut web = ct("application/grpc-web+proto");
        web.insert(&GRPC_TIMEOUT, HeaderValue::from_static("5S"));
        assert_eq!(deadline(&web, rt), Ok(Duration::from_secs(5)));
        // Not a gRPC call: the header means nothing.
        let mut plain = ct("application/json");
        plain.insert(&GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(deadline(&plain, rt), Ok(rt));
    }

    #[test]
    fn statuses_map_to_grpc_codes() {
        for (http, grpc) in [
            (400, 3),
            (401, 16),
            (403, 7),
            (404, 12),
            (405, 12),
            (429, 8),
            (431, 8),
            (502, 14),
            (503, 14),
            (504, 4),
            (500, 2),
            (418, 2),
        ] {
            assert_eq!(
                status_code(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }

    #[test]
    fn messages_are_percent_encoded_as_grpc_says() {
        assert_eq!(encode_message("missing_token"), "missing_token");
        assert_eq!(encode_message("a b~!"), "a b~!");
        assert_eq!(encode_message("100%"), "100%25");
        assert_eq!(encode_message("é\n\u{7f}"), "%C3%A9%0A%7F");
    }

    #[test]
    fn a_refusal_is_trailers_only_with_its_headers_kept() {
        let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":1}")));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"x\""),
        );
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let g = refusal(r, "missing");
        assert_eq!(g.status(), 200);
        assert_eq!(g.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(g.headers()[&GRPC_STATUS], "16");
        assert_eq!(g.headers()[&GRPC_MESSAGE], "missing");
        assert_eq!(
            g.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer realm=\"x\""
        );
        // Empty at once: hyper sends the headers with END_STREAM.
        assert!(g.body().is_end_stream());
    }
}
