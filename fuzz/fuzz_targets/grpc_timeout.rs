//! gRPC input: `grpc::parse_timeout` on any bytes, `grpc::deadline` on a gRPC call carrying
//! them, and `grpc::encode_message` on any text.
//!
//! Input: any bytes. Properties: never panics; `parse_timeout` accepts exactly 1 to 8
//! ASCII digits followed by one of `HMSmun`, and its duration is the digits times the
//! unit (checked in nanoseconds, in u128); `deadline` is `min(request_timeout, that)` or
//! `Err` exactly when `parse_timeout` refused; `encode_message`'s output is printable ASCII
//! (0x20..=0x7E) and percent-decodes back to the input.

#![no_main]

use std::time::Duration;

use cognito_sidecar::grpc::{deadline, encode_message, parse_timeout, GRPC_TIMEOUT};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = parse_timeout(data);
    let want = match data.split_last() {
        Some((&unit, digits))
            if (1..=8).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            let n: u128 = std::str::from_utf8(digits).unwrap().parse().unwrap();
            let per: Option<u128> = match unit {
                b'H' => Some(3_600_000_000_000),
                b'M' => Some(60_000_000_000),
                b'S' => Some(1_000_000_000),
                b'm' => Some(1_000_000),
                b'u' => Some(1_000),
                b'n' => Some(1),
                _ => None,
            };
            per.map(|p| n * p)
        }
        _ => None,
    };
    assert_eq!(got.map(|d| d.as_nanos()), want, "{data:?}");

    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert(&GRPC_TIMEOUT, v);
        let rt = Duration::from_secs(30);
        match (deadline(&h, rt), got) {
            (Ok(d), Some(t)) => assert_eq!(d, t.min(rt)),
            (Err(_), None) => {}
            (d, t) => panic!("deadline {d:?} but parse_timeout {t:?}"),
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let enc = encode_message(text);
        assert!(enc.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{enc:?}");
        assert!(HeaderValue::from_str(&enc).is_ok());
        let back = percent_encoding::percent_decode_str(&enc).decode_utf8().unwrap();
        assert_eq!(back, text);
    }
});
