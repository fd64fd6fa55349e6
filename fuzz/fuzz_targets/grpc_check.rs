//! The decision listener's reading of Envoy's gRPC `CheckRequest`: any bytes decoded as the
//! protobuf message (prost, as tonic does), then `authz_grpc::headers_of` and
//! `authz_grpc::original`.
//!
//! Properties: never panics; accepted headers hold no pseudo-header; an accepted original
//! has an origin-form target (exactly what `origin_form` accepts again) and a method other
//! than CONNECT.

#![no_main]

use cognito_sidecar::authz::origin_form;
use cognito_sidecar::authz_grpc::{headers_of, original};
use envoy_types::ext_authz::v3::pb::CheckRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = CheckRequest::decode(data) else {
        return;
    };
    let Some(http) = req
        .attributes
        .and_then(|a| a.request)
        .and_then(|r| r.http)
    else {
        return;
    };
    if let Ok(h) = headers_of(&http) {
        assert!(h.keys().all(|k| !k.as_str().starts_with(':')));
    }
    if let Ok(o) = original(&http) {
        assert_ne!(o.method, http::Method::CONNECT);
        assert_eq!(origin_form(o.target.as_str()).as_ref(), Some(&o.target));
        assert_eq!(o.target.as_str(), http.path);
    }
});
