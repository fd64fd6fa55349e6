//! Envoy's gRPC `Check` on the decision listener, called by a real gRPC client (tonic, with
//! `envoy-types`' protos) over h2c: the answers Envoy and Istio act on. `front_envoy.rs`
//! runs a real Envoy with it in front of an upstream.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/health"
auth = "public"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/admin/**"
auth = "deny"
"#;

async fn env_with(authz_extra: &str, extra: &str) -> (Env, SocketAddr) {
    let env = Env::start(&format!(
        "{extra}\n{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\n{authz_extra}\n"
    ))
    .await;
    let authz = env.sidecar.authz_addr().expect("decision listener on");
    (env, authz)
}

/// The original request as Envoy describes it (headers in the `headers` map).
fn ask(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "app.example".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .chain([(":path".to_owned(), path.to_owned())])
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn check(authz: SocketAddr, req: CheckRequest) -> CheckResponse {
    let mut client = AuthorizationClient::connect(format!("http://{authz}"))
        .await
        .expect("h2c connection to the decision listener");
    client
        .check(req)
        .await
        .expect("a CheckResponse")
        .into_inner()
}

/// What Envoy does with an answer: OK with the headers to set and remove, or denied with
/// status, headers and body.
#[derive(Debug)]
enum Answer {
    Ok {
        set: HashMap<String, String>,
        remove: Vec<String>,
    },
    Denied {
        rpc: i32,
        status: i32,
        headers: HashMap<String, String>,
        body: serde_json::Value,
    },
}

fn answer(r: CheckResponse) -> Answer {
    let rpc = r.status.as_ref().map_or(-1, |s| s.code);
    let pairs = |v: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption]| {
        v.iter()
            .map(|o| {
                let h = o.header.as_ref().unwrap();
                (h.key.clone(), h.value.clone())
            })
            .collect::<HashMap<_, _>>()
    };
    match r.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            assert_eq!(rpc, 0, "an OK response has status OK");
            Answer::Ok {
                set: pairs(&ok.headers),
                remove: ok.headers_to_remove,
            }
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            assert_ne!(rpc, 0, "a denied response has a status other than OK");
            Answer::Denied {
                rpc,
                status: d.status.map_or(-1, |s| s.code),
                headers: pairs(&d.headers),
                body: serde_json::from_str(&d.body).unwrap_or_default(),
            }
        }
        other => panic!("no OK or denied response: {other:?}"),
    }
}

#[tokio::test]
async fn allowed_sets_the_identity_and_removes_every_other_identity_header() {
    let (env, authz) = env_with("", "").await;
    let bearer = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    let r = check(
        authz,
        ask(
            "GET",
            "/weatherforecast?days=3",
            &[("authorization", &bearer), ("x-request-id", "req-1")],
        ),
    )
    .await;
    let Answer::Ok { set, remove } = answer(r) else {
        panic!("refused")
    };
    assert_eq!(set.get("x-auth-sub").map(String::as_str), Some(CLIENT));
    assert_eq!(
        set.get("x-auth-scope").map(String::as_str),
        Some("dotnet-demo/dotnet")
    );
    assert!(!set.contains_key("x-request-id"), "{set:?}");
    // A client token has no groups or username: those headers are removed, not kept.
    assert!(remove.contains(&"x-auth-groups".to_owned()), "{remove:?}");
    assert!(remove.contains(&"x-auth-username".to_owned()), "{remove:?}");
    assert!(!remove.contains(&"x-auth-sub".to_owned()), "{remove:?}");
    // An ALB's headers never pass as a client sent them.
    for h in [
        "x-amzn-oidc-data",
        "x-amzn-oidc-identity",
        "x-amzn-oidc-accesstoken",
    ] {
        assert!(remove.contains(&h.to_owned()), "{h}: {remove:?}");
    }

    // A public route: allowed, no identity set, all of it removed.
    let Answer::Ok { set, remove } = answer(check(authz, ask("GET", "/health", &[])).await) else {
        panic!("refused")
    };
    assert!(set.is_empty(), "{set:?}");
    for h in [
        "x-auth-sub",
        "x-auth-client-id",
        "x-auth-scope",
        "x-auth-groups",
    ] {
        assert!(remove.contains(&h.to_owned()), "{h}: {remove:?}");
    }
    assert_eq!(
        env.upstream.hits(),
        0,
        "the decision listener never proxies"
    );
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_requests_total{outcome=\"allowed\",route=\"/weatherforecast\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn refusals_carry_the_proxys_status_challenge_and_body() {
    let (_env, authz) = env_with("", "").await;
    let other = format!("Bearer {}", sign(&access_claims("other")));
    let good = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    // (method, path, headers, rpc code, HTTP status, error_description)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, i32, i32, &'a str);
    let cases: &[Case] = &[
        ("GET", "/weatherforecast", vec![], 16, 401, "missing"),
        (
            "GET",
            "/weatherforecast",
            vec![("authorization", "Bearer not.a.jwt")],
            16,
            401,
            "malformed",
        ),
        (
            "GET",
            "/weatherforecast",
            vec![("authorization", &other)],
            7,
            403,
            "missing_scope",
        ),
        (
            "GET",
            "/admin/x",
            vec![("authorization", &good)],
            7,
            403,
            "denied",
        ),
        (
            "POST",
            "/weatherforecast",
            vec![("authorization", &good)],
            3,
            405,
            "method_not_allowed",
        ),
        // Path tricks: the same normalisation and 400s as a proxied path.
        ("GET", "/health/../admin/x", vec![], 7, 403, "denied"),
        ("GET", "/api%2Fitems", vec![], 3, 400, "bad_path"),
        ("GET", "/health;x=1", vec![], 3, 400, "bad_path"),
        // The query never takes part in matching.
        ("GET", "/admin/x?/health", vec![], 7, 403, "denied"),
        // Not origin-form, or no method.
        ("GET", "*", vec![], 3, 400, "bad_original_uri"),
        (
            "GET",
            "http://app.example/health",
            vec![],
            3,
            400,
            "bad_original_uri",
        ),
        ("GET", "//evil/health", vec![], 3, 400, "bad_original_uri"),
        ("", "/health", vec![], 3, 400, "bad_original_method"),
        ("CONNECT", "/health", vec![], 3, 400, "bad_original_method"),
        // A header HTTP would not carry.
        (
            "GET",
            "/health",
            vec![("bad header", "x")],
            3,
            400,
            "bad_check_request",
        ),
    ];
    for (method, path, headers, rpc_want, status_want, reason) in cases {
        let got = answer(check(authz, ask(method, path, headers)).await);
        let Answer::Denied {
            rpc,
            status,
            headers,
            body,
        } = &got
        else {
            panic!("{method} {path}: allowed: {got:?}")
        };
        assert_eq!(
            (*rpc, *status, body["error_description"].as_str()),
            (*rpc_want, *status_want, Some(*reason)),
            "{method} {path}: {got:?}"
        );
        assert!(headers.contains_key("x-request-id"), "{got:?}");
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        if *status_want == 401 {
            assert!(
                headers
                    .get("www-authenticate")
                    .is_some_and(|w| w.starts_with("Bearer realm=\"cognito-sidecar\"")),
                "{got:?}"
            );
        }
        if *reason == "missing_scope" {
            assert!(
                headers
                    .get("www-authenticate")
                    .is_some_and(|w| w.contains("error=\"insufficient_scope\"")),
                "{got:?}"
            );
        }
        if *status_want == 405 {
            assert_eq!(headers.get("allow").map(String::as_str), Some("GET, HEAD"));
        }
    }
}

#[tokio::test]
async fn raw_headers_keep_two_authorization_headers_apart() {
    let (_env, authz) = env_with("", "").await;
    let good = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    let raw = |values: &[&str]| {
        let mut req = ask("GET", "/weatherforecast", &[]);
        let http = req
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .unwrap();
        // With encode_raw_headers, Envoy sends header_map and no headers map.
        http.headers.clear();
        http.header_map = Some(HeaderMap {
            headers: values
                .iter()
                .map(|v| HeaderValue {
                    key: "authorization".into(),
                    value: String::new(),
                    raw_value: v.as_bytes().to_vec(),
                })
                .collect(),
        });
        req
    };
    let got = answer(check(authz, raw(&[&good])).await);
    assert!(
        matches!(&got, Answer::Ok { set, .. } if set.get("x-auth-sub").map(String::as_str) == Some(CLIENT)),
        "{got:?}"
    );
    let got = answer(check(authz, raw(&[&good, &good])).await);
    assert!(
        matches!(&got, Answer::Denied { status: 400, body, .. } if body["error_description"] == "authorization_duplicated"),
        "{got:?}"
    );
    // Joined into one value (the `headers` map's merge): not a token.
    let joined = format!("{good},{good}");
    let got = answer(
        check(
            authz,
            ask("GET", "/weatherforecast", &[("authorization", &joined)]),
        )
        .await,
    );
    assert!(
        matches!(&got, Answer::Denied { status: 401, .. }),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_untrusted_peer_is_refused_and_nothing_is_evaluated() {
    let (env, authz) = env_with("trusted_proxies = [\"10.0.0.0/8\"]", "").await;
    let good = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    let got = answer(
        check(
            authz,
            ask("GET", "/weatherforecast", &[("authorization", &good)]),
        )
        .await,
    );
    assert!(
        matches!(&got, Answer::Denied { rpc: 7, status: 403, body, .. } if body["error_description"] == "untrusted_proxy"),
        "{got:?}"
    );
    let m = env.metrics().await;
    assert!(m.contains("outcome=\"untrusted_proxy\""), "{m}");
}

#[tokio::test]
async fn keys_unavailable_is_unavailable_with_retry_after() {
    let jwks = Jwks::start_with(JwksMode::Status(500)).await;
    let upstream = Upstream::start().await;
    let text = config_text(
        &upstream.url(),
        &jwks.url(),
        &format!("{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\n"),
    );
    let sidecar = cognito_sidecar::server::Sidecar::start(config(&text))
        .await
        .unwrap();
    let authz = sidecar.authz_addr().unwrap();
    let good = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));
    let got = answer(
        check(
            authz,
            ask("GET", "/weatherforecast", &[("authorization", &good)]),
        )
        .await,
    );
    assert!(
        matches!(&got, Answer::Denied { rpc: 14, status: 503, headers, .. } if headers.contains_key("retry-after")),
        "{got:?}"
    );
    sidecar.shutdown().await;
}

#[tokio::test]
async fn the_check_method_is_answered_only_over_grpc() {
    let (env, authz) = env_with("", "").await;
    // HTTP/1 with gRPC's content type at the method's path: an ordinary (nginx) check
    // request, which lacks its original URI.
    let r = request(
        authz,
        "POST",
        "/envoy.service.auth.v3.Authorization/Check",
        &[("content-type", "application/grpc")],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("x-auth-error"), Some("bad_original_method"));
    drop(env);
}

#[test]
fn envoy_protocol_needs_a_path_prefix_that_cannot_reach_the_check_method() {
    for prefix in ["", "/", "/envoy.service.auth.v3.Authorization"] {
        let text = config_text(
            "http://127.0.0.1:1",
            "http://127.0.0.1:1/jwks",
            &format!(
                "[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"envoy\"\npath_prefix = \"{prefix}\"\n"
            ),
        );
        let Err(err) = cognito_sidecar::config::Config::from_toml_str("sidecar.toml", &text, &[])
        else {
            panic!("{prefix:?} accepted")
        };
        let msg = err.to_string();
        assert!(
            msg.contains("sidecar.toml") && msg.contains("authz.path_prefix"),
            "{prefix:?}: {msg}"
        );
    }
}

/// A route's `when` and `rate_limit` on the gRPC `Check`: `PERMISSION_DENIED` with 403
/// `condition_failed`; over the limit `RESOURCE_EXHAUSTED` with the 429, `Retry-After` and
/// the RateLimit fields, for Envoy to send the client.
#[tokio::test]
async fn conditions_and_rate_limits_answer_in_check_responses() {
    let (_env, authz) = env_with(
        "",
        "[[routes]]\npath = \"/tenants/*\"\nwhen = 'claims.client_id == request.path_params[0]'\nrate_limit = { key = \"client_id\", requests = 1, per = \"1h\" }\n",
    )
    .await;
    let good = format!("Bearer {}", sign(&access_claims("x")));
    let path = format!("/tenants/{CLIENT}");
    let r = answer(check(authz, ask("GET", &path, &[("authorization", &good)])).await);
    assert!(matches!(r, Answer::Ok { .. }), "{r:?}");
    match answer(check(authz, ask("GET", &path, &[("authorization", &good)])).await) {
        Answer::Denied {
            rpc,
            status,
            headers,
            body,
        } => {
            assert_eq!((rpc, status), (8, 429), "{headers:?}");
            assert!(headers["retry-after"].parse::<u64>().unwrap() >= 1);
            assert_eq!(headers["ratelimit-policy"], "\"route\";q=1;w=3600");
            assert!(headers["ratelimit"].starts_with("\"route\";r=0;t="));
            assert_eq!(body["error_description"], "rate_limited");
        }
        other => panic!("{other:?}"),
    }
    // The limit counts verified tokens before the condition: another client's path is the
    // same client, and limited too; a route without a limit shows the condition alone.
    let (_env, authz) = env_with(
        "",
        "[[routes]]\npath = \"/tenants/*\"\nwhen = 'claims.client_id == request.path_params[0]'\n",
    )
    .await;
    match answer(
        check(
            authz,
            ask("GET", "/tenants/other", &[("authorization", &good)]),
        )
        .await,
    ) {
        Answer::Denied {
            rpc, status, body, ..
        } => {
            assert_eq!((rpc, status), (7, 403));
            assert_eq!(body["error_description"], "condition_failed");
        }
        other => panic!("{other:?}"),
    }
}
