//! W3C trace context: `trace::fuzz_trace_context` on any `traceparent` and `tracestate`.
//!
//! Input: the `traceparent` value, a newline, the `tracestate` value (values that are not
//! header values are left out). Properties (checked inside): never panics; what goes to the
//! upstream is always exactly one valid `traceparent` of 55 characters (none with
//! `propagate = false`, which also removes `tracestate`); a trusted caller's trace and span
//! ids go on as they came, an untrusted caller gets a new trace id and its `tracestate` is
//! dropped. Here: a `traceparent` we would write for the caller reads back to the same ids.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (tp, ts) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    if let Some(written) = cognito_sidecar::trace::fuzz_trace_context(tp, ts) {
        let again = cognito_sidecar::trace::fuzz_trace_context(written.as_bytes(), b"")
            .expect("our own traceparent reads back");
        assert_eq!(again[3..52], written[3..52]);
    }
});
