//! Envoy's gRPC `envoy.service.auth.v3.Authorization/Check` on the decision listener (h2c),
//! the form Istio's `CUSTOM` action and Envoy Gateway use: the same trust, decision and
//! answer as an HTTP check (`check.rs`), read from and written to Envoy's protos
//! (`envoy-types`, served by tonic).
//!
//! Read: the peer must be in `trusted_proxies`; the original method, path (origin-form, with
//! the query) and host are `attributes.request.http`'s; the token sources read its headers
//! (`header_map` when Envoy sends raw headers, else `headers`). Answered: allowed is `OK`
//! with `ok_response.headers` (the identity headers, overwriting the client's) and
//! `headers_to_remove` (every identity header it does not set); refused is a non-`OK`
//! status with `denied_response`: the HTTP status, `WWW-Authenticate` and the JSON body the
//! proxy would give.
//!
//! Only a request that is HTTP/2, `application/grpc` and for exactly the `Check` method comes
//! here; with `protocol = "envoy"` the HTTP service's paths start with `path_prefix`, which
//! may not be a prefix of the method's path (`config/authz.rs`), so no client path can reach
//! it through an HTTP check (a gRPC answer is always HTTP 200, which the HTTP service reads as
//! "allowed").

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue as PbHeaderValue, HeaderValueOption, HttpResponse, HttpStatus,
    HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower_service::Service;

use crate::access::{self, Start};
use crate::check::{self, Form, Original, X_ENVOY_AUTH_HEADERS_TO_REMOVE};
use crate::error::{BadRequest, ProxyError};
use crate::metrics::Metrics;
use crate::proxy::Conn;
use crate::state::State;

pub use crate::config::GRPC_CHECK_PATH as CHECK_PATH;

/// Whether `req` is a gRPC `Check` call (HTTP/2, `application/grpc`, the method's path).
pub fn is_check<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req.uri().path() == CHECK_PATH
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct == "application/grpc" || ct.starts_with("application/grpc+"))
}

/// Serves one `Check` call.
pub async fn serve(
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Conn,
    req: Request<Incoming>,
) -> Response<tonic::body::Body> {
    let mut server = AuthorizationServer::new(Checker {
        state,
        metrics,
        conn,
    });
    match server.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

struct Checker {
    state: Arc<State>,
    metrics: Arc<Metrics>,
    conn: Conn,
}

#[tonic::async_trait]
impl Authorization for Checker {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let state = &self.state;
        let http = request
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .unwrap_or_default();
        // Nothing from an untrusted peer is read, not even its headers.
        let (headers, original) = if !self.conn.trusted(&state.config.authz) {
            tracing::warn!(peer = %self.conn.peer, "gRPC check from a peer outside [authz] trusted_proxies");
            (HeaderMap::new(), Err(ProxyError::UntrustedProxy))
        } else {
            match headers_of(&http) {
                Ok(h) => (h, original(&http)),
                Err(e) => (HeaderMap::new(), Err(e)),
            }
        };
        let mut start = Start {
            request_id: access::request_id(&headers),
            method: http::Method::POST,
            at: std::time::Instant::now(),
        };
        let resp = check::answer(
            state,
            &self.metrics,
            &mut start,
            original,
            &headers,
            Form::Grpc,
            check::Peer {
                ip: self.conn.peer.ip(),
                trusted: self.conn.trusted(&state.config.authz),
            },
        )
        .await;
        Ok(tonic::Response::new(to_check_response(resp).await))
    }
}

/// The original request's headers: `header_map` (raw, one entry per header line) when Envoy
/// sends it, else the `headers` map (lower-case names, repeated headers joined). Pseudo
/// headers (`:path`, ...) are not headers; any other name or value HTTP would not carry is
/// 400 `bad_check_request`.
pub fn headers_of(
    http: &envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
) -> Result<HeaderMap, ProxyError> {
    let bad = || ProxyError::BadRequest(BadRequest::BadCheckRequest);
    let mut out = HeaderMap::new();
    let mut add = |k: &str, v: &[u8]| -> Result<(), ProxyError> {
        if k.starts_with(':') {
            return Ok(());
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(v).map_err(|_| bad())?;
        out.append(name, value);
        Ok(())
    };
    match http.header_map.as_ref().filter(|m| !m.headers.is_empty()) {
        Some(map) => {
            for hv in &map.headers {
                let v = if hv.raw_value.is_empty() {
                    hv.value.as_bytes()
                } else {
                    &hv.raw_value
                };
                add(&hv.key, v)?;
            }
        }
        None => {
            for (k, v) in &http.headers {
                add(k, v.as_bytes())?;
            }
        }
    }
    Ok(out)
}

/// The original method, target (origin-form, with the query) and host.
pub fn original(
    http: &envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
) -> Result<Original, ProxyError> {
    if http.method.is_empty() {
        return Err(check::bad_method());
    }
    let method = check::method(http.method.as_bytes())?;
    let target = check::origin_form(&http.path).ok_or_else(check::bad_uri)?;
    Ok(Original {
        method,
        target,
        host: (!http.host.is_empty()).then(|| http.host.clone()),
    })
}

/// The HTTP answer as Envoy's `CheckResponse`.
async fn to_check_response(resp: Response<Full<Bytes>>) -> CheckResponse {
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let option = |name: &HeaderName, value: &HeaderValue| {
        #[allow(deprecated)]
        HeaderValueOption {
            header: Some(PbHeaderValue {
                key: name.as_str().to_owned(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                raw_value: Vec::new(),
            }),
            append: None,
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
            keep_empty_value: false,
        }
    };
    if parts.status == StatusCode::OK {
        let headers_to_remove = parts
            .headers
            .get(&X_ENVOY_AUTH_HEADERS_TO_REMOVE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(", ").map(str::to_owned).collect())
            .unwrap_or_default();
        let headers = parts
            .headers
            .iter()
            // The request id is Envoy's to give the upstream.
            .filter(|(n, _)| **n != X_ENVOY_AUTH_HEADERS_TO_REMOVE && n.as_str() != "x-request-id")
            .map(|(n, v)| option(n, v))
            .collect();
        return CheckResponse {
            status: Some(rpc::Status {
                code: tonic::Code::Ok as i32,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers,
                headers_to_remove,
                ..Default::default()
            })),
            ..Default::default()
        };
    }
    let code = match parts.status {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => tonic::Code::InvalidArgument,
        _ => tonic::Code::PermissionDenied,
    };
    let http_code = HttpStatusCode::try_from(i32::from(parts.status.as_u16()))
        .unwrap_or(HttpStatusCode::Forbidden);
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: http_code.into(),
            }),
            headers: parts.headers.iter().map(|(n, v)| option(n, v)).collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })),
        ..Default::default()
    }
}
