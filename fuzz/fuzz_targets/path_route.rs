//! Path normalisation and route matching: `path::normalize`, then `RouteTable::lookup`.
//!
//! Properties: never panics; a normalised path starts with `/` and holds no `//`, `/./`,
//! `/../`, trailing dot segment, `%2F`, `%5C`, `%25`, `\`, `;` or control byte; normalising it
//! again changes nothing; in a case-insensitive table, case never changes the rule; a rule is
//! chosen only for a path whose segments it matches.

#![no_main]

use std::sync::OnceLock;

use cognito_sidecar::path::normalize;
use cognito_sidecar::routes::Lookup;
use cognito_sidecar::Config;
use http::Method;
use libfuzzer_sys::fuzz_target;

const ROUTES: &str = r#"
[upstream]
url = "http://127.0.0.1:9"
[[issuers]]
user_pool_id = "local-1_FuzzPool"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/admin/**"
methods = ["GET"]
groups_any = ["admins"]
[[routes]]
path = "/users/*/profile"
auth = "public"
[[routes]]
path = "/api/v1/orders"
methods = ["GET", "POST"]
[[routes]]
path = "/caf%C3%A9/**"
auth = "deny"
"#;

fn tables() -> &'static (Config, Config) {
    static T: OnceLock<(Config, Config)> = OnceLock::new();
    T.get_or_init(|| {
        let insensitive = Config::from_toml_str("fuzz.toml", ROUTES, &[]).expect("config");
        let sensitive = Config::from_toml_str(
            "fuzz.toml",
            &format!("{ROUTES}\n[default]\npath_case = \"sensitive\"\n"),
            &[],
        )
        .expect("config");
        (insensitive, sensitive)
    })
}

fn rule_of(l: &Lookup<'_>) -> String {
    match l {
        Lookup::Route(r) => r.label.clone(),
        Lookup::MethodNotAllowed(allow) => format!("405 {allow}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = [
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ][m as usize % 5]
        .clone();
    let input = String::from_utf8_lossy(rest);
    let Ok(n) = normalize(&input) else {
        return;
    };
    let n: &str = &n;
    assert!(n.starts_with('/'), "{input:?} -> {n:?}");
    for bad in [
        "//", "/./", "/../", "%2F", "%2f", "%5C", "%5c", "%25", "\\", ";", "\0",
    ] {
        assert!(!n.contains(bad), "{input:?} -> {n:?} contains {bad:?}");
    }
    assert!(
        !n.ends_with("/.") && !n.ends_with("/.."),
        "{input:?} -> {n:?}"
    );
    assert!(
        !n.bytes().any(|b| b < 0x20 || b == 0x7f),
        "{input:?} -> {n:?}"
    );
    assert_eq!(
        normalize(n).as_deref(),
        Ok(n),
        "normalize is not idempotent on {input:?}"
    );

    let (insensitive, sensitive) = tables();
    let hit = insensitive.routes.lookup(&method, n);
    let _ = sensitive.routes.lookup(&method, n);
    for other in [n.to_ascii_uppercase(), n.to_ascii_lowercase()] {
        assert_eq!(
            rule_of(&insensitive.routes.lookup(&method, &other)),
            rule_of(&hit),
            "case changed the rule for {n:?}"
        );
    }
    // A rule is chosen only for paths its segments match.
    let lower = n.to_ascii_lowercase();
    let first = lower.split('/').nth(1).unwrap_or("");
    if let Lookup::Route(r) = &hit {
        match r.label.as_str() {
            "/public/**" => assert_eq!(first, "public", "{n:?}"),
            "/admin/**" => assert_eq!(first, "admin", "{n:?}"),
            "/users/*/profile" => assert!(lower.starts_with("/users/"), "{n:?}"),
            "/api/v1/orders" => assert!(
                lower == "/api/v1/orders" || lower == "/api/v1/orders/",
                "{n:?}"
            ),
            "/caf%C3%A9/**" => assert_eq!(first, "caf%c3%a9", "{n:?}"),
            _ => {}
        }
    }
});
