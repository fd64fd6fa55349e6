//! Route conditions: every `when` of a fixed config, compiled as the sidecar compiles it
//! (`Config::from_toml_str`), evaluated over random claims sets (`Condition::evaluate`).
//!
//! The input is `selector byte` then the claims as JSON (an object; anything else is turned
//! into one: `{"custom:tenant": <text>, "email": <text>}`). The selector picks the path
//! parameter (`acme`, the claims' tenant, or empty) and whether a header is sent.
//!
//! Properties: never panics; evaluating twice gives the same answer; `true` means what the
//! expression says (checked against the claims directly for the issue's three examples), and
//! a missing or mistyped claim is an error or `false`, never `true`.

#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use cognito_sidecar::condition::{Claims, Request};
use cognito_sidecar::Config;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const CONFIG: &str = r#"
[upstream]
url = "http://127.0.0.1:9"
[[issuers]]
user_pool_id = "local-1_FuzzPool"
[[routes]]
path = "/tenants/*/orders"
when = 'claims["custom:tenant"] == request.path_params[0]'
[[routes]]
path = "/staff/**"
when = 'claims.email.endsWith("@example.com")'
[[routes]]
path = "/admin"
when = '"admins" in claims["cognito:groups"] || claims.client_id == "abc"'
[[routes]]
path = "/mixed/*"
when = 'has(claims.exp) && claims.exp > 0 && size(claims.sub) < 64 && string(claims.n) != "x" && request.headers["x-t"] == claims.sub || int(claims.n) % 2 == 1 && !(claims.scope.contains("a"))'
[[routes]]
path = "/types/*"
when = 'type(claims.x) == list ? size(claims.x) > 1 : dyn(claims.x) == request.path_params[0] || claims.x == 1.5 || uint(claims.x) == 3u'
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::from_toml_str("fuzz.toml", CONFIG, &[]).expect("config"))
}

fn claims_of(data: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => m,
        _ => {
            let text = String::from_utf8_lossy(data).into_owned();
            let mut m = Map::new();
            m.insert("custom:tenant".into(), Value::String(text.clone()));
            m.insert("email".into(), Value::String(text));
            m
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let json = claims_of(rest);
    let claims = Claims::from_json(&json);
    let tenant = json.get("custom:tenant").and_then(Value::as_str).unwrap_or("");
    let param: Cow<'_, str> = match sel % 3 {
        0 => Cow::Borrowed("acme"),
        1 => Cow::Borrowed(tenant),
        _ => Cow::Borrowed(""),
    };
    let mut headers = HeaderMap::new();
    if sel & 0x80 != 0 {
        if let Some(v) = json
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|s| http::HeaderValue::from_str(s).ok())
        {
            headers.insert("x-t", v);
        }
    }
    let hidden = |n: &str| n == "x-auth-sub";
    for rule in config().routes.rules() {
        let cond = rule.condition.as_ref().expect("every fuzzed route has a when");
        let request = Request {
            method: "GET",
            path: "/tenants/acme/orders",
            host: "fuzz.example",
            headers: &headers,
            hidden: &hidden,
            path_params: (0..rule.pattern.params()).map(|_| param.clone()).collect(),
        };
        let first = cond.evaluate(&claims, &request);
        let again = cond.evaluate(&claims, &request);
        assert_eq!(first, again, "{}: not deterministic", rule.label);
        if first != Ok(true) {
            continue;
        }
        match rule.label.as_str() {
            "/tenants/*/orders" => assert_eq!(
                json.get("custom:tenant").and_then(Value::as_str),
                Some(param.as_ref()),
                "true without the tenant"
            ),
            "/staff/**" => assert!(
                json.get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.ends_with("@example.com")),
                "true without an @example.com email"
            ),
            "/admin" => {
                // CEL's `in`: an element of a list, or a key of a map.
                let in_groups = match json.get("cognito:groups") {
                    Some(Value::Array(g)) => g.iter().any(|v| v == "admins"),
                    Some(Value::Object(m)) => m.contains_key("admins"),
                    _ => false,
                };
                let client = json.get("client_id").and_then(Value::as_str) == Some("abc");
                assert!(in_groups || client, "true without admins or client abc");
            }
            _ => {}
        }
    }
});
