//! What real Cognito pools send: ID tokens carrying a `scope` claim, access tokens with
//! scopes added by a pre token generation trigger, customised claims of every JSON kind,
//! and non-ASCII claim values for strict upstreams.

use std::sync::{Arc, Mutex};

use http::{Response, StatusCode};
use serde_json::json;

use crate::support::*;

const WEATHER: &str = r#"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/any"
scopes_any = ["dotnet-demo/dotnet", "other/scope"]
"#;

#[tokio::test]
async fn an_id_token_scope_claim_grants_no_scope() {
    let env = Env::start(WEATHER).await;
    for claim in ["scope", "scp"] {
        let mut c = id_claims();
        c[claim] = json!("dotnet-demo/dotnet");
        let t = sign(&c);
        for path in ["/weatherforecast", "/any"] {
            let r = call(env.addr(), path, &t).await;
            assert_eq!(r.status, 403, "{claim} on {path}: {}", r.body);
            assert_eq!(r.reason(), "missing_scope", "{claim} on {path}");
        }
    }
    assert_eq!(env.upstream.hits(), 0);
}

#[tokio::test]
async fn a_trigger_added_scope_in_a_user_access_token_satisfies_scopes() {
    let env = Env::start(WEATHER).await;
    let mut c = user_access_claims(&["readers"]);
    c["scope"] = json!("aws.cognito.signin.user.admin dotnet-demo/dotnet");
    let r = call(env.addr(), "/weatherforecast", &sign(&c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        env.upstream.last().headers["x-auth-scope"],
        "aws.cognito.signin.user.admin dotnet-demo/dotnet"
    );
}

#[tokio::test]
async fn customised_claims_render_unambiguously() {
    let env = Env::start(
        r#"
[[routes]]
path = "/**"
[forward.headers]
"X-Auth-Sub" = "sub"
"X-Auth-Roles" = "roles"
"X-Auth-Level" = "level"
"X-Auth-Ratio" = "ratio"
"X-Auth-Admin" = "is_admin"
"X-Auth-Meta" = "meta"
"X-Auth-Tenant" = "custom:tenant"
"#,
    )
    .await;
    let mut c = user_access_claims(&[]);
    c["roles"] = json!(["a,b", "50%", "c"]);
    c["level"] = json!(3);
    c["ratio"] = json!(0.5);
    c["is_admin"] = json!(false);
    c["meta"] = json!({"team": "blue"});
    c["custom:tenant"] = json!("t-1");
    let r = call(env.addr(), "/x", &sign(&c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = identity_of(&env.upstream.last());
    assert_eq!(id["x-auth-roles"], "a%2Cb,50%25,c");
    assert_eq!(id["x-auth-level"], "3");
    assert_eq!(id["x-auth-ratio"], "0.5");
    assert_eq!(id["x-auth-admin"], "false");
    assert_eq!(id["x-auth-meta"], r#"{"team":"blue"}"#);
    assert_eq!(id["x-auth-tenant"], "t-1");
}

/// An upstream that, like ASP.NET Core's Kestrel, refuses a request with a header value
/// outside ASCII (400), and otherwise records the `X-Auth-Username` it got.
async fn strict_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let (addr, _task) = serve(move |req| {
        let g = Arc::clone(&g);
        async move {
            if req
                .headers()
                .values()
                .any(|v| v.as_bytes().iter().any(|b| *b >= 0x80))
            {
                let mut r = Response::new(full("non-ASCII header value"));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
            let name = req
                .headers()
                .get("x-auth-username")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            g.lock().unwrap().push(name);
            Response::new(full("ok"))
        }
    })
    .await;
    (format!("http://{addr}"), got)
}

#[tokio::test]
async fn non_ascii_claims_reach_a_strict_upstream_percent_encoded() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let (upstream, got) = strict_upstream().await;
    let sidecar = start_ready(&config_text(
        &upstream,
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\n",
    ))
    .await;
    for (name, sent) in [
        ("José Müller", "Jos%C3%A9 M%C3%BCller"),
        ("100% Zoë", "100%25 Zo%C3%AB"),
        ("plain name", "plain name"),
    ] {
        let mut c = user_access_claims(&[]);
        c["username"] = json!(name);
        let r = call(sidecar.local_addr(), "/x", &sign(&c)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let last = got.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, sent, "{name}");
        let decoded = percent_encoding::percent_decode_str(&last)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, name, "decoding gives the claim back");
    }
}

const UPDATED_ISS: &str = "https://issuer-cognito-idp.local-1.amazonaws.com/local-1_TestPool";

#[tokio::test]
async fn an_updated_issuer_pool_accepts_its_form_and_names_the_other() {
    let env = Env::start("issuer_form = \"updated\"\n[[routes]]\npath = \"/**\"\n").await;
    let mut c = access_claims("x");
    c["iss"] = json!(UPDATED_ISS);
    let r = call(env.addr(), "/x", &sign(&c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The original form of the same pool is another issuer.
    let r = call(env.addr(), "/x", &sign(&access_claims("x"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.reason(), "wrong_issuer");
    assert_eq!(env.upstream.hits(), 1);
}

/// `inspect` and `check` as a user runs them, on a config for `pool_lines`.
fn run_bin(dir: &std::path::Path, pool_lines: &str, args: &[&str]) -> (bool, String) {
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[upstream]\nurl = \"http://127.0.0.1:9\"\n[[issuers]]\nname = \"pool\"\nuser_pool_id = \"{POOL}\"\n{pool_lines}\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cognito-sidecar"))
        .args(args)
        .arg("--config")
        .arg(&file)
        .env_remove("SIDECAR_CONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn inspect_and_check_say_which_issuer_form_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = access_claims("x");
    c["iss"] = json!(UPDATED_ISS);
    let updated = sign(&c);
    let (ok, out) = run_bin(dir.path(), "", &["inspect", &updated]);
    assert!(ok, "{out}");
    assert!(
        out.contains("this pool issues the updated form: set issuer_form = \"updated\""),
        "{out}"
    );
    let (ok, out) = run_bin(
        dir.path(),
        "issuer_form = \"updated\"",
        &["inspect", &sign(&access_claims("x"))],
    );
    assert!(ok, "{out}");
    assert!(out.contains("set issuer_form = \"original\""), "{out}");
    // check prints the derived issuer and JWKS URL of the configured form.
    let (ok, out) = run_bin(dir.path(), "issuer_form = \"updated\"", &["check"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("issuer = \"{UPDATED_ISS}\"")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "jwks_url = \"{UPDATED_ISS}/.well-known/jwks.json\""
        )),
        "{out}"
    );
    assert!(out.contains("issuer_form = \"updated\""), "{out}");
    // jwks_refresh below jwks_min_refetch is raised to it, and check says so.
    let (ok, out) = run_bin(dir.path(), "jwks_refresh = \"2s\"", &["check"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("issuers[0].jwks_refresh (2s) is shorter than jwks_min_refetch (30s): keys are refreshed every 30s"),
        "{out}"
    );
    // issuer_form is for user pools only.
    std::fs::write(
        dir.path().join("oidc.toml"),
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n[[issuers]]\nissuer = \"https://idp.example\"\nissuer_form = \"updated\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cognito-sidecar"))
        .args(["check", "--config"])
        .arg(dir.path().join("oidc.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("issuers[0].issuer_form"));
}

#[tokio::test]
async fn cognito_aud_and_client_id_are_one_string() {
    // client_ids empty: shapes alone decide.
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let text = config_text(&upstream.url(), &jwks.url(), "[[routes]]\npath = \"/**\"\n")
        .replace(&format!("client_ids = [\"{CLIENT}\"]\n"), "");
    let sidecar = start_ready(&text).await;
    let addr = sidecar.local_addr();
    for aud in [
        json!([CLIENT, "other"]),
        json!([CLIENT]),
        json!(5),
        json!(null),
    ] {
        let mut c = id_claims();
        c["aud"] = aud.clone();
        let r = call(addr, "/x", &sign(&c)).await;
        assert_eq!(r.status, 401, "aud {aud}");
        assert_eq!(r.reason(), "wrong_client", "aud {aud}");
    }
    for client_id in [json!([CLIENT]), json!(7)] {
        let mut c = access_claims("x");
        c["client_id"] = client_id.clone();
        let r = call(addr, "/x", &sign(&c)).await;
        assert_eq!(r.status, 401, "client_id {client_id}");
        assert_eq!(r.reason(), "wrong_client");
    }
    assert_eq!(upstream.hits(), 0);
    // The string forms pass.
    assert_eq!(call(addr, "/x", &sign(&id_claims())).await.status, 200);
    assert_eq!(
        call(addr, "/x", &sign(&access_claims("x"))).await.status,
        200
    );
}
