//! The OTLP span writer: `otlp::fuzz_otlp_encode` on any span record's strings and numbers.
//!
//! Input: the method, path, route, issuer, `sub`, `client_id`, the caller's `tracestate` and
//! the service name, separated by NUL bytes (lossy UTF-8), the leading bytes also giving the
//! ids, times, status and which optional parts are present. Properties (checked inside):
//! never panics; the bytes written always decode with `opentelemetry-proto`'s own types, to
//! the record's strings, times, ids, flags and status.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cognito_sidecar::otlp::fuzz_otlp_encode(data);
});
