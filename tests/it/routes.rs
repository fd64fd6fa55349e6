//! Route rules and identity headers, table-driven, through a recording upstream: every rule
//! kind, path tricks, spoofing variants. Rejected requests never reach the upstream;
//! forwarded ones carry exactly the verified identity headers.

use std::collections::HashMap;

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[default]
auth = "required"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["dotnet-demo/dotnet"]
[[routes]]
path = "/any-scope"
scopes_any = ["a/read", "a/write"]
[[routes]]
path = "/admin/**"
methods = ["GET"]
groups_any = ["admins"]
[[routes]]
path = "/me"
groups_any = ["readers"]
[[routes]]
path = "/id-only"
token_use = "id"
[[routes]]
path = "/client-b-only"
client_ids = ["client-b"]
[[routes]]
path = "/blocked/**"
auth = "deny"
[[routes]]
path = "/users/*/profile"
auth = "public"
"#;

struct Case {
    method: &'static str,
    path: &'static str,
    token: Option<String>,
    status: u16,
    reason: &'static str,
}

fn case(
    method: &'static str,
    path: &'static str,
    token: Option<String>,
    status: u16,
    reason: &'static str,
) -> Case {
    Case {
        method,
        path,
        token,
        status,
        reason,
    }
}

#[tokio::test]
async fn rule_table() {
    let env = Env::start(ROUTES).await;
    let machine = Some(sign(&access_claims("dotnet-demo/dotnet")));
    let machine_look_alike = Some(sign(&access_claims(
        "dotnet-demo/dotnet2 dotnet-demo/dotnetx dotnet-demo",
    )));
    let reader = Some(sign(&user_access_claims(&["readers"])));
    let admin = Some(sign(&user_access_claims(&["admins"])));
    let superadmin = Some(sign(&user_access_claims(&["superadmins", "admin"])));
    let id = Some(sign(&id_claims()));
    let writer = Some(sign(&access_claims("a/write")));
    let mut groups_string = user_access_claims(&[]);
    groups_string["cognito:groups"] = json!("admins");
    let groups_string = Some(sign(&groups_string));

    let cases = [
        case("GET", "/public/x", None, 200, ""),
        case("GET", "/users/7/profile", None, 200, ""),
        case("GET", "/weatherforecast", None, 401, ""),
        case("GET", "/weatherforecast", machine.clone(), 200, ""),
        case("HEAD", "/weatherforecast", machine.clone(), 200, ""),
        case("POST", "/weatherforecast", machine.clone(), 405, ""),
        case(
            "GET",
            "/weatherforecast",
            machine_look_alike,
            403,
            "missing_scope",
        ),
        case(
            "GET",
            "/weatherforecast",
            reader.clone(),
            403,
            "missing_scope",
        ),
        case("GET", "/any-scope", writer, 200, ""),
        case("GET", "/any-scope", machine.clone(), 403, "missing_scope"),
        case("GET", "/me", reader.clone(), 200, ""),
        case("GET", "/me", machine.clone(), 403, "missing_group"),
        case("GET", "/admin/users", admin.clone(), 200, ""),
        case("GET", "/admin", admin.clone(), 200, ""),
        case("DELETE", "/admin/users", admin.clone(), 405, ""),
        case("GET", "/admin/users", superadmin, 403, "missing_group"),
        case("GET", "/admin/users", groups_string, 403, "missing_group"),
        case("GET", "/id-only", id.clone(), 200, ""),
        case("GET", "/id-only", reader.clone(), 403, "wrong_token_use"),
        case(
            "GET",
            "/client-b-only",
            machine.clone(),
            403,
            "wrong_client",
        ),
        case("GET", "/blocked/x", admin.clone(), 403, ""),
        case("GET", "/unlisted", None, 401, ""),
        case("GET", "/unlisted", id, 200, ""),
    ];
    for c in cases {
        let before = env.upstream.hits();
        let mut headers = vec![];
        let auth;
        if let Some(t) = &c.token {
            auth = format!("Bearer {t}");
            headers.push(("authorization", auth.as_str()));
        }
        let r = request(env.addr(), c.method, c.path, &headers, "").await;
        let what = format!("{} {} -> {r:?}", c.method, c.path);
        assert_eq!(r.status, c.status, "{what}");
        let forwarded = c.status == 200;
        assert_eq!(
            env.upstream.hits(),
            before + usize::from(forwarded),
            "{what}"
        );
        match c.status {
            403 if !c.reason.is_empty() => {
                assert_eq!(r.reason(), c.reason, "{what}");
                assert!(
                    r.www_authenticate()
                        .starts_with("Bearer error=\"insufficient_scope\""),
                    "{what}"
                );
            }
            405 => assert!(r.header("allow").unwrap().contains("GET"), "{what}"),
            _ => {}
        }
    }
    // The scope hint names what the route needs.
    let r = env.get("/weatherforecast", reader.as_deref()).await;
    assert_eq!(
        r.www_authenticate(),
        "Bearer error=\"insufficient_scope\", scope=\"dotnet-demo/dotnet\", error_description=\"missing_scope\""
    );
}

#[tokio::test]
async fn path_tricks_cannot_reach_a_stricter_route_through_a_looser_one() {
    let env = Env::start(ROUTES).await;
    // (target, status, path the upstream sees if forwarded)
    let cases: [(&str, u16, &str); 24] = [
        ("/public/../admin/users", 401, ""),
        ("/public/%2e%2e/admin/users", 401, ""),
        ("/public/%2E%2E/admin/users", 401, ""),
        ("/public/.%2e/admin/users", 401, ""),
        ("//admin/users", 401, ""),
        ("/Admin/users", 401, ""),
        ("/ADMIN/users", 401, ""),
        ("/public/./x", 200, "/public/x"),
        ("/public//x", 200, "/public/x"),
        ("/%70ublic/x", 200, "/public/x"),
        ("/public/%2e%2e/public/x", 200, "/public/x"),
        ("/public/..%2Fadmin", 400, ""),
        ("/public/..%2fadmin", 400, ""),
        ("/public/..%5Cadmin", 400, ""),
        ("/public/..\\admin", 400, ""),
        ("/public/x;/../../admin", 400, ""),
        ("/public/%252e%252e/admin", 400, ""),
        ("/public/%00/x", 400, ""),
        ("/admin./users", 400, ""),
        ("/admin%20/users", 400, ""),
        ("/public/%c0%ae%c0%ae/admin", 400, ""),
        ("/public/%zz", 400, ""),
        ("http://evil.example/admin/users", 401, ""),
        ("http://evil.example/public/x", 200, "/public/x"),
    ];
    for (target, status, forwarded) in cases {
        let before = env.upstream.hits();
        let r = request(env.addr(), "GET", target, &[], "").await;
        assert_eq!(r.status, status, "{target}: {r:?}");
        if status == 200 {
            assert_eq!(env.upstream.hits(), before + 1, "{target}");
            assert_eq!(env.upstream.last().uri, forwarded, "{target}");
        } else {
            assert_eq!(env.upstream.hits(), before, "{target} reached the upstream");
        }
        if status == 400 {
            assert_eq!(r.json()["error_description"], "bad_path", "{target}");
        }
    }
    // Host does not pick routes.
    let r = request(
        env.addr(),
        "GET",
        "/admin/users",
        &[("x-forwarded-host", "public")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    // Path-override headers are stripped, never honoured.
    let r = request(
        env.addr(),
        "GET",
        "/public/x",
        &[
            ("x-original-url", "/admin/users"),
            ("X-Rewrite-URL", "/admin"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = env.upstream.last();
    assert!(!seen.headers.contains_key("x-original-url"));
    assert!(!seen.headers.contains_key("x-rewrite-url"));
}

fn expected_identity(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let env = Env::start(&format!("{ROUTES}\n[forward]\nclaims_header = \"\"\n[forward.headers]\n\"X-Auth-Sub\" = \"sub\"\n\"X-Auth-Groups\" = \"cognito:groups\"\n\"X-Auth-Username\" = \"username\"\n\"X-Auth-Exp\" = \"exp\"\n")).await;
    let spoof: &[(&str, &str)] = &[
        ("X-Auth-Sub", "admin"),
        ("x-auth-sub", "admin2"),
        ("X-AUTH-GROUPS", "admins"),
        ("X_Auth_Sub", "admin3"),
        ("x_auth_groups", "admins"),
        ("X-Auth_Username", "root"),
        ("connection", "X-Auth-Sub, x-auth-groups"),
    ];
    // Public route: stripped, nothing injected.
    let r = request(env.addr(), "GET", "/public/x", spoof, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(identity_of(&env.upstream.last()), HashMap::new());

    // Protected route: exactly the verified identity, whatever the client sent.
    let token = format!(
        "Bearer {}",
        sign(&user_access_claims(&["readers", "devs,admins", "100%"]))
    );
    let mut headers = spoof.to_vec();
    headers.push(("authorization", &token));
    let r = request(env.addr(), "GET", "/me", &headers, "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    let exp = seen.headers["x-auth-exp"].to_str().unwrap().to_string();
    assert!(exp.parse::<i64>().unwrap() > now());
    assert_eq!(
        identity_of(&seen),
        expected_identity(&[
            ("x-auth-sub", "11111111-2222-3333-4444-555555555555"),
            ("x-auth-groups", "readers,devs%2Cadmins,100%25"),
            ("x-auth-username", "alice"),
            ("x-auth-exp", &exp),
        ])
    );
    assert_eq!(seen.headers.get_all("x-auth-sub").iter().count(), 1);

    // Rejected request with spoofed headers: nothing at all reaches the upstream.
    let before = env.upstream.hits();
    let r = request(env.addr(), "GET", "/me", spoof, "").await;
    assert_eq!(r.status, 401);
    assert_eq!(env.upstream.hits(), before);

    // A claim with CR/LF cannot be injected: the token is malformed.
    let mut evil = user_access_claims(&["readers"]);
    evil["username"] = json!("alice\r\nX-Auth-Groups: admins");
    let r = env.get("/me", Some(&sign(&evil))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.reason(), "malformed");
}

#[tokio::test]
async fn strip_authorization_and_preflight() {
    let env = Env::start(&format!(
        "{ROUTES}\n[forward]\nstrip_authorization = true\n"
    ))
    .await;
    let r = env
        .get(
            "/weatherforecast",
            Some(&sign(&access_claims("dotnet-demo/dotnet"))),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!env.upstream.last().headers.contains_key("authorization"));
    // Preflights need a token unless preflight = "forward".
    let pre = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    let r = request(env.addr(), "OPTIONS", "/me", &pre, "").await;
    assert_eq!(r.status, 401);

    let env = Env::start(&ROUTES.replace(
        "auth = \"required\"\n[[routes]]",
        "auth = \"required\"\npreflight = \"forward\"\n[[routes]]",
    ))
    .await;
    let r = request(env.addr(), "OPTIONS", "/me", &pre, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(env.upstream.last().method, "OPTIONS");
    assert_eq!(identity_of(&env.upstream.last()), HashMap::new());
    // Not a preflight without Access-Control-Request-Method.
    let r = request(env.addr(), "OPTIONS", "/me", &pre[..1], "").await;
    assert_eq!(r.status, 401);
}
