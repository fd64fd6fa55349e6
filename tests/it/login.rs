//! `[login]` and `auth = "login"` routes against the demo issuer's managed login (a real
//! authorization code + PKCE flow on 127.0.0.1), with a small cookie-keeping client in place
//! of a browser: sign-in, the session, CSRF, refresh, sign-out, and the attacks on each.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cognito_sidecar::demo::issuer::{self, IssuerHandle};

use crate::support::*;

const ORIGIN: &str = "http://sidecar.test";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A browser's cookie jar and its way around: the sidecar at `sidecar`, the issuer at
/// `issuer`.
struct Browser {
    sidecar: SocketAddr,
    issuer: SocketAddr,
    jar: BTreeMap<String, String>,
    /// The sidecar's origin as this browser sees it.
    origin: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &Reply) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// A top-level navigation to the sidecar.
    async fn open(&mut self, target: &str) -> Reply {
        let cookies = self.cookie_header();
        let host = self.origin.trim_start_matches("http://").to_string();
        let mut h = vec![
            ("accept", "text/html"),
            ("sec-fetch-mode", "navigate"),
            ("host", host.as_str()),
        ];
        if !cookies.is_empty() {
            h.push(("cookie", &cookies));
        }
        let r = request(self.sidecar, "GET", target, &h, "").await;
        self.keep(&r);
        r
    }

    /// Signs in at the managed login that `to_login` (the sidecar's 302) points to, and
    /// follows the way back: the callback's answer.
    async fn sign_in(&mut self, to_login: &Reply, password: &str) -> Reply {
        assert_eq!(to_login.status, 302, "{to_login:?}");
        let location = to_login.header("location").unwrap().to_string();
        let query = location.split_once('?').unwrap().1.to_string();
        let form = format!(
            "{query}&username={}&password={}",
            issuer::DEMO_USERNAME,
            form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()
        );
        let r = request(
            self.issuer,
            "POST",
            "/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &form,
        )
        .await;
        assert_eq!(r.status, 302, "the managed login: {r:?}");
        let back = r.header("location").unwrap().to_string();
        let path = back
            .strip_prefix(&self.origin)
            .expect("back to the sidecar");
        self.open(path).await
    }
}

struct World {
    issuer: IssuerHandle,
    sidecar: cognito_sidecar::server::Sidecar,
    upstream: Upstream,
    client_id: String,
    /// The sidecar's config, for another replica.
    text: String,
}

async fn world(login_extra: &str) -> World {
    world_with(false, login_extra).await
}

/// `rotation`: the pool rotates refresh tokens (the old one stays valid for 60 s).
async fn world_with(rotation: bool, login_extra: &str) -> World {
    let mut pool = issuer::demo_config_for_login(
        &format!("{ORIGIN}/oauth2/idpresponse"),
        &format!("{ORIGIN}/"),
    );
    pool.refresh_rotation = rotation;
    let issuer = issuer::start("127.0.0.1:0".parse().unwrap(), pool)
        .await
        .unwrap();
    let client_id = issuer
        .config()
        .client_named(issuer::DEMO_PASSWORD_CLIENT)
        .unwrap()
        .client_id
        .clone();
    let upstream = Upstream::start().await;
    let text = format!(
        r#"
[listener]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "{up}"
[[issuers]]
name = "demo"
issuer = "{iss}"
jwks_url = "{jwks}"
token_use = ["access", "id"]
client_ids = ["{client_id}"]
[login]
domain = "{domain}"
issuer = "demo"
client_id = "{client_id}"
scopes = ["openid", "email", "{scope}"]
cookie_keys = ["{KEY}"]
insecure_cookies = true
{login_extra}
[[routes]]
path = "/public"
auth = "public"
[[routes]]
path = "/app/**"
auth = "login"
[[routes]]
path = "/admin/**"
auth = "login"
groups_any = ["admins"]
"#,
        up = upstream.url(),
        iss = issuer.issuer_url(),
        jwks = issuer.jwks_url(),
        domain = issuer.domain(),
        scope = issuer::DEMO_SCOPE,
    );
    let sidecar = cognito_sidecar::server::Sidecar::start(config(&text))
        .await
        .unwrap();
    let admin = sidecar.admin_addr().unwrap();
    eventually(std::time::Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
    World {
        issuer,
        sidecar,
        upstream,
        client_id,
        text,
    }
}

impl World {
    fn browser(&self) -> Browser {
        Browser {
            sidecar: self.sidecar.local_addr(),
            issuer: self.issuer.addr(),
            jar: BTreeMap::new(),
            origin: ORIGIN.to_string(),
        }
    }
}

#[tokio::test]
async fn a_browser_signs_in_uses_the_session_and_signs_out() {
    let w = world("").await;
    let mut b = w.browser();

    // A navigation without a session: to the managed login, PKCE S256, nothing upstream.
    let r = b.open("/app/page?x=1").await;
    assert_eq!(r.status, 302, "{r:?}");
    let location = r.header("location").unwrap().to_string();
    assert!(location.starts_with(&format!("{}/oauth2/authorize?", w.issuer.domain())));
    for p in [
        "response_type=code",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "code_challenge=",
    ] {
        assert!(location.contains(p), "{p}: {location}");
    }
    assert!(location.contains(&format!("client_id={}", w.client_id)));
    assert_eq!(w.upstream.hits(), 0);

    // Sign in: back to the page first asked for, with the session set.
    let back = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    assert_eq!(back.status, 302, "{back:?}");
    assert_eq!(back.header("location"), Some("/app/page?x=1"));
    assert!(
        b.jar.keys().any(|k| k.starts_with("sidecar_session.")),
        "{:?}",
        b.jar
    );
    assert!(
        !b.jar.contains_key("sidecar_session_login"),
        "login state cleared"
    );
    for v in back.headers.get_all("set-cookie") {
        let v = v.to_str().unwrap();
        assert!(
            v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Path=/"),
            "{v}"
        );
    }

    // The page, with the identity, and without the session cookie upstream.
    let r = b.open("/app/page?x=1").await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = w.upstream.last();
    let id = identity_of(&seen);
    assert_eq!(
        id.get("x-auth-username").map(String::as_str),
        Some(issuer::DEMO_USERNAME)
    );
    assert!(
        id.get("x-auth-scope")
            .is_some_and(|s| s.contains(issuer::DEMO_SCOPE)),
        "{id:?}"
    );
    let cookie = seen
        .headers
        .get("cookie")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        cookie
            .as_ref()
            .is_none_or(|c| !c.contains("sidecar_session")),
        "{cookie:?}"
    );
    assert!(
        seen.headers.get("authorization").is_none(),
        "no pass_access_token"
    );

    // A signed-in user who fails a rule: a 403 page, not a sign-in loop.
    let r = b.open("/admin/x").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    // An unsafe method with the cookie alone must come from this origin.
    let hits = w.upstream.hits();
    let cookies = b.cookie_header();
    for headers in [
        vec![("cookie", cookies.as_str())],
        vec![("cookie", cookies.as_str()), ("origin", "http://evil.test")],
        vec![
            ("cookie", cookies.as_str()),
            ("referer", "http://sidecar.test.evil.test/"),
        ],
    ] {
        let r = request(b.sidecar, "POST", "/app/form", &headers, "a=1").await;
        assert_eq!(r.status, 403, "{headers:?}: {r:?}");
        assert_eq!(r.json()["error_description"], "csrf");
    }
    assert_eq!(
        w.upstream.hits(),
        hits,
        "a cross-site POST reached the upstream"
    );
    let r = request(
        b.sidecar,
        "POST",
        "/app/form",
        &[("cookie", &cookies), ("origin", ORIGIN)],
        "a=1",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Sign out: GET shows a form, a cross-site POST is refused, a same-origin POST revokes,
    // clears and goes to the managed logout.
    let r = b.open("/oauth2/sign_out").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("method=\"post\""), "{}", r.body);
    let r = request(
        b.sidecar,
        "POST",
        "/oauth2/sign_out",
        &[("cookie", &cookies), ("origin", "http://evil.test")],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        b.sidecar,
        "POST",
        "/oauth2/sign_out",
        &[("cookie", &cookies), ("origin", ORIGIN)],
        "",
    )
    .await;
    assert_eq!(r.status, 302, "{r:?}");
    let to = r.header("location").unwrap();
    assert!(
        to.starts_with(&format!(
            "{}/logout?client_id={}",
            w.issuer.domain(),
            w.client_id
        )),
        "{to}"
    );
    b.keep(&r);
    assert!(
        !b.jar.keys().any(|k| k.starts_with("sidecar_session")),
        "{:?}",
        b.jar
    );
    let r = b.open("/app/page").await;
    assert_eq!(r.status, 302, "signed out: back to sign-in");
}

#[tokio::test]
async fn scripts_get_401_bearer_tokens_still_work_and_public_routes_never_see_the_session() {
    let w = world("").await;
    let mut b = w.browser();
    // Not a navigation: 401 as on a required route.
    for headers in [
        vec![("accept", "application/json")],
        vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
        vec![
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
    ] {
        let r = request(b.sidecar, "GET", "/app/page", &headers, "").await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert_eq!(r.www_authenticate(), "Bearer realm=\"cognito-sidecar\"");
    }
    let r = request(
        b.sidecar,
        "POST",
        "/app/page",
        &[("accept", "text/html")],
        "",
    )
    .await;
    assert_eq!(r.status, 401, "a POST is never redirected");

    // A bearer token is honoured on a login route.
    let t = token::password(
        &w.issuer.idp_endpoint(),
        &w.client_id,
        issuer::DEMO_USERNAME,
        issuer::DEMO_PASSWORD,
        None,
    )
    .await
    .unwrap();
    let r = request(
        b.sidecar,
        "GET",
        "/app/page",
        &[("authorization", &format!("Bearer {}", t.access_token))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Signed in, a public route forwards without the session cookie.
    let r = b.open("/app/page").await;
    let _ = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    let cookies = format!("{}; theme=dark", b.cookie_header());
    let r = request(b.sidecar, "GET", "/public", &[("cookie", &cookies)], "").await;
    assert_eq!(r.status, 200);
    let seen = w.upstream.last();
    assert_eq!(seen.headers.get("cookie").unwrap(), "theme=dark");
}

#[tokio::test]
async fn bad_callbacks_and_bad_cookies_go_back_to_sign_in() {
    let w = world("").await;
    let mut b = w.browser();
    let to_login = b.open("/app/page").await;
    let location = to_login.header("location").unwrap().to_string();
    let query = location.split_once('?').unwrap().1.to_string();
    let form = format!(
        "{query}&username={}&password={}",
        issuer::DEMO_USERNAME,
        issuer::DEMO_PASSWORD
    );
    let r = request(
        b.issuer,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    let back = r
        .header("location")
        .unwrap()
        .strip_prefix(ORIGIN)
        .unwrap()
        .to_string();

    // Another browser (no login-state cookie), a wrong state, no state: 400.
    let other = request(b.sidecar, "GET", &back, &[], "").await;
    assert_eq!(other.status, 400, "{other:?}");
    let cookies = b.cookie_header();
    let forged = back.replace("state=", "state=x");
    let r = request(b.sidecar, "GET", &forged, &[("cookie", &cookies)], "").await;
    assert_eq!(r.status, 400);
    let code_only: String = back
        .split('&')
        .filter(|p| !p.starts_with("state="))
        .collect::<Vec<_>>()
        .join("&");
    let r = request(b.sidecar, "GET", &code_only, &[("cookie", &cookies)], "").await;
    assert_eq!(r.status, 400);
    // The real one works once; replayed, it is refused.
    let ok = request(b.sidecar, "GET", &back, &[("cookie", &cookies)], "").await;
    assert_eq!(ok.status, 302, "{ok:?}");
    b.keep(&ok);
    let replay = request(b.sidecar, "GET", &back, &[("cookie", &cookies)], "").await;
    assert_eq!(replay.status, 400, "{replay:?}");
    assert!(
        !replay.body.contains("code="),
        "no request data on the page"
    );

    // A tampered, truncated or foreign-key session: back to sign-in, and cleared.
    let good = b.jar.clone();
    let chunk0 = good.keys().find(|k| k.ends_with(".0")).unwrap().clone();
    let mut tampered = good.clone();
    let v = tampered.get_mut(&chunk0).unwrap();
    let flip = if v.ends_with('A') { 'B' } else { 'A' };
    v.pop();
    v.push(flip);
    let mut truncated = good.clone();
    truncated.retain(|k, _| k == &chunk0);
    for (what, jar) in [("tampered", tampered), ("truncated", truncated)] {
        b.jar = jar;
        let r = b.open("/app/page").await;
        if what == "truncated" && good.len() == 1 {
            continue;
        }
        assert_eq!(r.status, 302, "{what}: {r:?}");
        assert!(
            r.header("location").unwrap().contains("/oauth2/authorize?"),
            "{what}"
        );
        assert!(
            r.headers
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().contains("Max-Age=0")),
            "{what}: the bad session is cleared"
        );
    }
    // The good one still works.
    b.jar = good;
    assert_eq!(b.open("/app/page").await.status, 200);
}

#[tokio::test]
async fn a_due_session_is_refreshed_once_under_fifty_concurrent_requests() {
    // Every access token is "due": refresh_before exceeds the tokens' lifetime.
    let w = world("refresh_before = \"2h\"").await;
    let mut b = w.browser();
    let r = b.open("/app/page").await;
    let _ = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    let cookies = b.cookie_header();
    let addr = b.sidecar;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cookies = cookies.clone();
        tasks.push(tokio::spawn(async move {
            request(
                addr,
                "GET",
                "/app/page",
                &[("cookie", &cookies), ("accept", "text/html")],
                "",
            )
            .await
        }));
    }
    let mut set = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        if r.headers.get_all("set-cookie").iter().count() > 0 {
            set += 1;
        }
    }
    assert_eq!(set, 50, "each answer carries the refreshed session");
    // One refresh: every upstream request carried the same (new) access token's jti.
    let jtis: std::collections::BTreeSet<String> = w
        .upstream
        .seen()
        .iter()
        .rev()
        .take(50)
        .map(|s| {
            let claims = s.headers.get("x-auth-claims").unwrap().to_str().unwrap();
            let json =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                    .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            v["jti"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(jtis.len(), 1, "{jtis:?}");

    // Signed out (the refresh token revoked) before its next refresh: a copy of the old
    // cookie fails to refresh, and the session ends.
    let mut b2 = w.browser();
    let r = b2.open("/app/page").await;
    let _ = b2.sign_in(&r, issuer::DEMO_PASSWORD).await;
    let copy = b2.jar.clone();
    let cookies2 = b2.cookie_header();
    let out = request(
        b2.sidecar,
        "POST",
        "/oauth2/sign_out",
        &[("cookie", &cookies2), ("origin", ORIGIN)],
        "",
    )
    .await;
    assert_eq!(out.status, 302);
    b2.jar = copy;
    let r = b2.open("/app/page").await;
    assert_eq!(r.status, 302, "{r:?}");
    assert!(r.header("location").unwrap().contains("/oauth2/authorize?"));
    assert!(r
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("Max-Age=0")));
}

#[tokio::test]
async fn pass_access_token_sends_the_sessions_token_upstream() {
    let w = world("pass_access_token = true").await;
    let mut b = w.browser();
    let r = b.open("/app/page").await;
    let _ = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    assert_eq!(b.open("/app/page").await.status, 200);
    let seen = w.upstream.last();
    let auth = seen.headers.get("authorization").unwrap().to_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    // The session's access token (the one the sidecar verified), not an ID token.
    let payload = token.split('.').nth(1).unwrap();
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["username"], issuer::DEMO_USERNAME);
    assert_eq!(claims["client_id"], w.client_id.as_str());
    assert!(seen
        .headers
        .get("cookie")
        .is_none_or(|c| !c.to_str().unwrap().contains("sidecar_session")));
}

#[tokio::test]
async fn two_replicas_refreshing_one_rotated_session_at_once_both_succeed() {
    // The pool rotates refresh tokens; every request is due for a refresh.
    let w = world_with(true, "refresh_before = \"2h\"").await;
    let replica = cognito_sidecar::server::Sidecar::start(config(&w.text))
        .await
        .unwrap();
    let admin = replica.admin_addr().unwrap();
    eventually(std::time::Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;
    let mut b = w.browser();
    let r = b.open("/app/page").await;
    let _ = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    let cookies = b.cookie_header();
    let h = [("cookie", cookies.as_str()), ("accept", "text/html")];
    // The same session at both replicas at once: each refreshes with the same refresh
    // token; the second is within the rotation's grace period.
    let (a, c) = tokio::join!(
        request(w.sidecar.local_addr(), "GET", "/app/page", &h, ""),
        request(replica.local_addr(), "GET", "/app/page", &h, ""),
    );
    assert_eq!((a.status, c.status), (200, 200), "{a:?}\n{c:?}");
    // Each answer carries a session with its own new refresh token; both work on.
    for r in [&a, &c] {
        let mut next = w.browser();
        next.jar = b.jar.clone();
        next.keep(r);
        assert!(next.jar != b.jar, "a refreshed session was set");
        assert_eq!(next.open("/app/page").await.status, 200);
    }
    replica.shutdown().await;
}

#[tokio::test]
async fn the_demo_signs_a_browser_in_through_its_managed_login() {
    use cognito_sidecar::demo::run::{self, DemoAddrs};
    let addrs = DemoAddrs {
        proxy: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        admin: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        issuer: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        upstream: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        issuer_form: cognito_sidecar::config::IssuerForm::Original,
    };
    let demo = run::start(&addrs).await.unwrap();
    let mut b = Browser {
        sidecar: addrs.proxy,
        issuer: addrs.issuer,
        jar: BTreeMap::new(),
        origin: format!("http://{}", addrs.proxy),
    };
    let r = b.open("/").await;
    assert_eq!(r.status, 302, "{r:?}");
    let back = b.sign_in(&r, issuer::DEMO_PASSWORD).await;
    assert_eq!(back.header("location"), Some("/"));
    let page = b.open("/").await;
    assert_eq!(page.status, 200, "{page:?}");
    // What the demo's tokens make of the session: within the Cookie header budget.
    let header = b.cookie_header();
    let chunks = b
        .jar
        .keys()
        .filter(|k| k.starts_with("sidecar_session."))
        .count();
    assert!(
        header.len() < 8192 && chunks >= 1,
        "{chunks} chunks, {} bytes",
        header.len()
    );
    eprintln!(
        "demo session: {chunks} cookie(s), {} bytes in the Cookie header",
        header.len()
    );
    assert!(
        page.body
            .contains(&format!("Signed in as {}", issuer::DEMO_USERNAME)),
        "{}",
        page.body
    );
    // The demo's sign-out button posts from the same origin.
    let cookies = b.cookie_header();
    let out = request(
        addrs.proxy,
        "POST",
        "/oauth2/sign_out",
        &[
            ("cookie", &cookies),
            ("origin", &b.origin.clone()),
            ("host", &addrs.proxy.to_string()),
        ],
        "",
    )
    .await;
    assert_eq!(out.status, 302, "{out:?}");
    drop(demo);
}

#[test]
fn login_config_errors_name_the_key() {
    let base = |login: &str| {
        format!(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[issuers]]\nname = \"demo\"\nissuer = \"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_A\"\ntoken_use = [\"access\", \"id\"]\n[login]\n{login}\n[[routes]]\npath = \"/app/**\"\nauth = \"login\"\n"
        )
    };
    let good = format!("domain = \"https://p.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\ncookie_keys = [\"{KEY}\"]");
    assert!(cognito_sidecar::config::Config::from_toml_str("s.toml", &base(&good), &[]).is_ok());
    for (login, key) in [
        (
            good.replace("https://p.auth", "http://p.auth"),
            "login.domain",
        ),
        (good.replace("client_id = \"c\"\n", ""), "login.client_id"),
        (good.replace(KEY, "c2hvcnQ="), "login.cookie_keys"),
        (format!("{good}\nscopes = [\"email\"]"), "login.scopes"),
        (format!("{good}\nissuer = \"other\""), "login.issuer"),
        (
            format!("{good}\ncallback_path = \"/a/../b\""),
            "login.callback_path",
        ),
        (
            format!("{good}\nexternal_url = \"https://app.test/path\""),
            "login.external_url",
        ),
        (
            format!("{good}\ncookie_name = \"__Host-x\""),
            "login.cookie_name",
        ),
    ] {
        let Err(e) = cognito_sidecar::config::Config::from_toml_str("s.toml", &base(&login), &[])
        else {
            panic!("{key}: accepted")
        };
        let msg = e.to_string();
        assert!(msg.contains("s.toml") && msg.contains(key), "{key}: {msg}");
    }
    // A login route needs [login].
    let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[issuers]]\nuser_pool_id = \"eu-west-1_A\"\n[[routes]]\npath = \"/app\"\nauth = \"login\"\n";
    let Err(e) = cognito_sidecar::config::Config::from_toml_str("s.toml", text, &[]) else {
        panic!("a login route without [login] accepted")
    };
    assert!(e.to_string().contains("routes[0].auth"), "{e}");
}

use cognito_sidecar::token;
