//! The access log's JSON lines against their written schema, `deploy/access-log.schema.json`:
//! the binary with `[log] format = "json"` answers a request of every outcome on both
//! listeners, and every access line it wrote must satisfy the schema (a field renamed, a type
//! changed or an undocumented field fails), with the fields that depend on the request
//! present exactly when the schema says.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::*;

const SCHEMA: &str = include_str!("../../deploy/access-log.schema.json");

/// Checks `v` against the JSON Schema subset the schema file uses; every keyword the file
/// uses must be one this checker knows, so that nothing in it goes unchecked.
fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = schema.as_object().expect("a schema is an object");
    const KNOWN: &[&str] = &[
        "$schema",
        "title",
        "description",
        "type",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
    ];
    for k in s.keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "{at}: keyword {k} is not checked"
        );
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            other => panic!("{at}: type {other} is not checked"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if v != c {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            errors.push(format!("{at}: {n} is below the minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} is above the maximum"));
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            errors.push(format!("{at}: {text:?} is shorter than minLength"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            errors.push(format!("{at}: {text:?} is longer than maxLength"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                errors.push(format!("{at}: required field {r} is missing"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, val, &format!("{at}.{k}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: field {k} is not in the schema"))
                }
                None => {}
            }
        }
    }
}

#[test]
fn the_checker_refuses_what_the_schema_does_not_allow() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let good = serde_json::json!({
        "timestamp": "2026-12-01T23:31:25.123456Z", "level": "INFO", "message": "request",
        "request_id": "r", "method": "GET", "path": "/", "route": "default", "status": 200,
        "outcome": "forwarded", "latency_us": 12,
    });
    let mut e = vec![];
    check(&schema, &good, "line", &mut e);
    assert!(e.is_empty(), "{e:?}");
    let variants: Vec<(&str, Value)> = vec![
        ("renamed", {
            let mut v = good.clone();
            let s = v.as_object_mut().unwrap().remove("status").unwrap();
            v["status_code"] = s;
            v
        }),
        ("retyped", {
            let mut v = good.clone();
            v["latency_us"] = "12".into();
            v
        }),
        ("undocumented", {
            let mut v = good.clone();
            v["token"] = "x".into();
            v
        }),
        ("bad trace id", {
            let mut v = good.clone();
            v["trace_id"] = "abc".into();
            v
        }),
    ];
    for (what, v) in variants {
        let mut e = vec![];
        check(&schema, &v, "line", &mut e);
        assert!(!e.is_empty(), "{what} passed");
    }
}

const ROUTES: &str = r#"
[default]
auth = "required"
[[routes]]
path = "/get-only"
methods = ["GET"]
[[routes]]
path = "/scoped"
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/blocked/**"
auth = "deny"
[[routes]]
path = "/limited"
rate_limit = { key = "sub", requests = 1, per = "1h" }
"#;

#[tokio::test]
async fn every_outcome_writes_a_line_the_schema_accepts() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let authz = free_addr();
    let file = write_config(
        dir.path(),
        &upstream.url(),
        &jwks.url(),
        &format!("{ROUTES}\n[authz]\naddress = \"{authz}\"\nprotocol = \"nginx\"\n[log]\nformat = \"json\"\n"),
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("request_timeout = \"2s\"", "request_timeout = \"300ms\"");
    std::fs::write(&file, text).unwrap();
    let p = Proc::spawn_file(&file);
    p.wait_ready().await;
    let addr = p.addr;

    let token = sign(&access_claims("dotnet-demo/dotnet"));
    let unscoped = sign(&access_claims(""));
    let mut expired = access_claims("");
    expired["exp"] = (now() - 3600).into();
    let expired = sign(&expired);
    let bearer = |t: &str| format!("Bearer {t}");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (b_token, b_unscoped, b_expired) = (bearer(&token), bearer(&unscoped), bearer(&expired));
    // (request id, listener addr, method, target, extra headers, status, outcome, verified)
    type Case<'a> = (
        &'a str,
        std::net::SocketAddr,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "rid-forwarded",
            addr,
            "GET",
            "/scoped",
            vec![("authorization", &b_token), ("traceparent", tp)],
            200,
            "forwarded",
            true,
        ),
        (
            "rid-missing",
            addr,
            "GET",
            "/x",
            vec![],
            401,
            "missing",
            false,
        ),
        (
            "rid-expired",
            addr,
            "GET",
            "/x",
            vec![("authorization", &b_expired)],
            401,
            "expired",
            false,
        ),
        (
            "rid-malformed",
            addr,
            "GET",
            "/x",
            vec![("authorization", "Bearer abc")],
            401,
            "malformed",
            false,
        ),
        (
            "rid-scope",
            addr,
            "GET",
            "/scoped",
            vec![("authorization", &b_unscoped)],
            403,
            "missing_scope",
            true,
        ),
        (
            "rid-denied",
            addr,
            "GET",
            "/blocked/x",
            vec![("authorization", &b_token)],
            403,
            "denied",
            false,
        ),
        (
            "rid-method",
            addr,
            "POST",
            "/get-only",
            vec![],
            405,
            "method_not_allowed",
            false,
        ),
        (
            "rid-path",
            addr,
            "GET",
            "/a%2Fb",
            vec![],
            400,
            "bad_path",
            false,
        ),
        (
            "rid-limit-1",
            addr,
            "GET",
            "/limited",
            vec![("authorization", &b_token)],
            200,
            "forwarded",
            true,
        ),
        (
            "rid-limit-2",
            addr,
            "GET",
            "/limited",
            vec![("authorization", &b_token)],
            429,
            "rate_limited",
            true,
        ),
        (
            "rid-timeout",
            addr,
            "GET",
            "/hold",
            vec![("authorization", &b_token)],
            504,
            "upstream_timeout",
            true,
        ),
        (
            "rid-allowed",
            authz,
            "GET",
            "/auth",
            vec![
                ("authorization", &b_token),
                ("x-original-uri", "/scoped"),
                ("x-original-method", "GET"),
            ],
            200,
            "allowed",
            true,
        ),
        (
            "rid-authz-missing",
            authz,
            "GET",
            "/auth",
            vec![("x-original-uri", "/scoped"), ("x-original-method", "GET")],
            401,
            "missing",
            false,
        ),
    ];
    for (rid, at, method, target, extra, status, _, _) in &cases {
        let mut headers = vec![("x-request-id", *rid)];
        headers.extend(extra.iter().copied());
        let r = request(*at, method, target, &headers, "").await;
        assert_eq!(r.status, *status, "{rid}: {r:?}");
    }
    upstream.release();
    let (code, out) = tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");

    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    let by_id: HashMap<&str, &Value> = lines
        .iter()
        .filter_map(|l| Some((l["request_id"].as_str()?, l)))
        .collect();
    assert_eq!(
        lines.len(),
        cases.len(),
        "one access line per request:\n{out}"
    );
    for l in &lines {
        let mut errors = vec![];
        check(&schema, l, "line", &mut errors);
        assert!(errors.is_empty(), "{errors:?}\n{l}");
    }
    for (rid, _, method, _, _, status, outcome, verified) in &cases {
        let l = by_id
            .get(rid)
            .unwrap_or_else(|| panic!("{rid}: no line\n{out}"));
        assert_eq!(l["method"], *method, "{l}");
        assert_eq!(l["status"], *status, "{l}");
        assert_eq!(l["outcome"], *outcome, "{l}");
        // Present exactly when the schema says: the token's ids once it was verified.
        for f in ["sub", "client_id", "jti"] {
            assert_eq!(l.get(f).is_some(), *verified, "{rid}: {f} in {l}");
        }
        // [tracing] propagate is on by default: every request has a trace context.
        assert!(l.get("trace_id").is_some(), "{rid}: {l}");
    }
    assert_eq!(
        by_id["rid-forwarded"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace id is logged"
    );
}
