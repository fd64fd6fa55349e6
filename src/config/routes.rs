//! Validates `[default]` and `[[routes]]` and compiles the routes into a
//! [`RouteTable`](crate::routes::RouteTable); problems are keyed `routes[i].field`.
//!
//! Pattern syntax, matching and the authorization rules belong to `crate::routes`; this
//! module checks what a file says against them (and against the configured issuers).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::model::{DefaultPolicy, IssuerConfig};
use super::problems::Problems;
use super::raw::{RawDefault, RawRateLimit, RawRoute};
use super::types::{AuthMode, PathCase, Preflight, TokenUse, TokenUsePolicy};
use crate::condition::Condition;
use crate::ratelimit::{KeyKind, Limit, DEFAULT_MAX_KEYS};
use crate::routes::{Pattern, RouteTable, Rule};

pub(super) fn validate_default(
    p: &mut Problems,
    raw: &RawDefault,
    has_issuers: bool,
) -> DefaultPolicy {
    let auth = p.parse("default.auth", &raw.auth, AuthMode::Deny);
    if auth == AuthMode::Required && !has_issuers {
        p.push(
            "default.auth",
            "\"required\" needs at least one [[issuers]] entry (or set \"deny\" / \"public\")",
        );
    }
    DefaultPolicy {
        auth,
        preflight_forward: p.parse("default.preflight", &raw.preflight, Preflight::Check)
            == Preflight::Forward,
        path_case: p.parse("default.path_case", &raw.path_case, PathCase::Insensitive),
    }
}

/// Compiles `[[routes]]` in file order, with `default` for the requests none matches.
/// `issuers` are the JWKS issuers; `has_issuers` counts ALB issuers too (whose tokens have
/// no `token_use`).
pub(super) fn validate_routes(
    p: &mut Problems,
    raw: &[RawRoute],
    default: &DefaultPolicy,
    issuers: &[IssuerConfig],
    has_issuers: bool,
) -> RouteTable {
    let mut rules: Vec<Rule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let key = |f: &str| format!("routes[{i}].{f}");
        let pattern = match Pattern::parse(&r.path, default.path_case) {
            Ok(pattern) => Some(pattern),
            Err(errors) => {
                for e in errors {
                    p.push(key("path"), e);
                }
                None
            }
        };
        let compiled = pattern.is_some();
        let methods = r.methods.as_ref().map(|ms| methods(p, i, ms));
        let auth = p.parse(&key("auth"), &r.auth, AuthMode::Deny);
        check_auth(p, &key, r, auth, has_issuers);
        check_names(p, i, r);
        let token_use = token_use(p, &key("token_use"), r, issuers, has_issuers);
        if r.client_ids.as_ref().is_some_and(Vec::is_empty) {
            p.push(
                key("client_ids"),
                "empty list (omit the key to allow the issuer's clients)",
            );
        }
        let condition = r.when.as_deref().and_then(|src| {
            condition(
                p,
                &key("when"),
                r,
                src,
                pattern.as_ref().map_or(0, Pattern::params),
            )
        });
        let rate_limit = r
            .rate_limit
            .as_ref()
            .and_then(|raw| rate_limit(p, &key("rate_limit"), raw, auth));
        let rule = Rule {
            index: Some(i),
            label: r.path.trim().to_string(),
            pattern: pattern.unwrap_or_else(never),
            methods,
            auth,
            scopes: r.scopes.clone(),
            scopes_any: r.scopes_any.clone(),
            groups_any: r.groups_any.clone(),
            token_use,
            client_ids: r.client_ids.clone(),
            scope_hint: scope_hint(r),
            condition,
            rate_limit,
        };
        if compiled {
            if let Some(earlier) = rules.iter().find(|e| e.shadows(&rule)) {
                p.push(
                    key("path"),
                    format!(
                        "route {:?} can never match: routes[{}] ({:?}) matches first",
                        rule.label,
                        earlier.index.unwrap_or(0),
                        earlier.label
                    ),
                );
            }
        }
        rules.push(rule);
    }
    RouteTable::new(rules, default.auth, default.path_case)
}

/// Stands in for a pattern that failed to compile (the config is refused anyway).
fn never() -> Pattern {
    Pattern::parse("/", PathCase::Sensitive).expect("\"/\" is a pattern")
}

fn methods(p: &mut Problems, i: usize, raw: &[String]) -> Vec<Method> {
    if raw.is_empty() {
        p.push(
            format!("routes[{i}].methods"),
            "empty list (omit the key to allow any method)",
        );
    }
    let mut out: Vec<Method> = Vec::new();
    for (j, m) in raw.iter().enumerate() {
        let key = format!("routes[{i}].methods[{j}]");
        match Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()) {
            Ok(m) if m == Method::CONNECT => p.push(key, "CONNECT is never proxied"),
            Ok(m) => {
                if !out.contains(&m) {
                    out.push(m)
                }
            }
            Err(_) => p.push(key, format!("invalid method {m:?}")),
        }
    }
    out
}

/// Rules need `auth = "required"`, which needs an issuer.
fn check_auth(
    p: &mut Problems,
    key: &dyn Fn(&str) -> String,
    r: &RawRoute,
    auth: AuthMode,
    has_issuers: bool,
) {
    let has_rules = !r.scopes.is_empty()
        || !r.scopes_any.is_empty()
        || !r.groups_any.is_empty()
        || r.token_use.is_some()
        || r.client_ids.is_some()
        || r.when.is_some();
    if !matches!(auth, AuthMode::Required | AuthMode::Login) && has_rules {
        p.push(
            key("auth"),
            format!(
                "scopes, scopes_any, groups_any, token_use, client_ids and when need auth = \"required\" or \"login\" (this route is {:?})",
                auth.as_str()
            ),
        );
    }
    if matches!(auth, AuthMode::Required | AuthMode::Login) && !has_issuers {
        p.push(
            key("auth"),
            "auth = \"required\" needs at least one [[issuers]] entry",
        );
    }
}

/// The route's `when`, compiled; each problem names the route, the column and what is wrong.
fn condition(
    p: &mut Problems,
    key: &str,
    r: &RawRoute,
    source: &str,
    params: usize,
) -> Option<Arc<Condition>> {
    match Condition::compile(source, params) {
        Ok(c) => Some(Arc::new(c)),
        Err(errors) => {
            for e in errors {
                p.push(key, format!("route {:?}: {e}", r.path.trim()));
            }
            None
        }
    }
}

/// The longest a burst may take to replenish (GCRA's arithmetic is in u64 nanoseconds).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The route's `rate_limit`, validated.
fn rate_limit(p: &mut Problems, key: &str, raw: &RawRateLimit, auth: AuthMode) -> Option<Limit> {
    let before = p.0.len();
    let kind = KeyKind::parse(raw.key.trim());
    match kind {
        None => p.push(
            format!("{key}.key"),
            format!(
                "unknown key {:?} (expected \"sub\", \"client_id\" or \"ip\")",
                raw.key
            ),
        ),
        Some(KeyKind::Sub | KeyKind::ClientId)
            if !matches!(auth, AuthMode::Required | AuthMode::Login) =>
        {
            p.push(
                format!("{key}.key"),
                format!(
                    "{:?} is a claim of the verified token: it needs auth = \"required\" or \"login\" (use key = \"ip\" on a {:?} route)",
                    raw.key.trim(),
                    auth.as_str()
                ),
            )
        }
        Some(_) if auth == AuthMode::Deny => p.push(
            key,
            "auth = \"deny\" answers every request 403 before any limit",
        ),
        Some(_) => {}
    }
    let count = |p: &mut Problems, field: &str, v: u64| -> Option<NonZeroU32> {
        match u32::try_from(v).ok().and_then(NonZeroU32::new) {
            Some(n) => Some(n),
            None => {
                p.push(
                    format!("{key}.{field}"),
                    format!("{v} is not a count from 1 to {}", u32::MAX),
                );
                None
            }
        }
    };
    let requests = count(p, "requests", raw.requests);
    let burst = match raw.burst {
        Some(b) => count(p, "burst", b),
        None => requests,
    };
    let per_problems = p.0.len();
    let per = p.duration(&format!("{key}.per"), &raw.per);
    if per.is_zero() && p.0.len() == per_problems {
        p.push(format!("{key}.per"), "must be longer than 0s (e.g. \"1m\")");
    }
    let max_keys = raw.max_keys.unwrap_or(DEFAULT_MAX_KEYS as u64);
    if !(1..=10_000_000).contains(&max_keys) {
        p.push(
            format!("{key}.max_keys"),
            format!("{max_keys} is not from 1 to 10000000"),
        );
    }
    let (Some(kind), Some(requests), Some(burst)) = (kind, requests, burst) else {
        return None;
    };
    if p.0.len() != before {
        return None;
    }
    let limit = Limit {
        key: kind,
        requests,
        per,
        burst,
        max_keys: max_keys as usize,
    };
    if u128::from(requests.get()) > per.as_nanos() {
        p.push(
            format!("{key}.requests"),
            "more than one request per nanosecond",
        );
        return None;
    }
    if limit.window() > MAX_WINDOW {
        p.push(
            format!("{key}.burst"),
            format!(
                "a burst of {burst} at {requests} per {} takes longer than a year to replenish",
                humantime::format_duration(per)
            ),
        );
        return None;
    }
    Some(limit)
}

/// Scope and group names.
fn check_names(p: &mut Problems, i: usize, r: &RawRoute) {
    for (field, list) in [
        ("scopes", &r.scopes),
        ("scopes_any", &r.scopes_any),
        ("groups_any", &r.groups_any),
    ] {
        for (j, s) in list.iter().enumerate() {
            if s.trim().is_empty() || s.contains(char::is_whitespace) || s.contains('"') {
                p.push(
                    format!("routes[{i}].{field}[{j}]"),
                    format!("invalid value {s:?}"),
                );
            }
        }
    }
}

/// The route's `token_use`, which some issuer must accept.
fn token_use(
    p: &mut Problems,
    key: &str,
    r: &RawRoute,
    issuers: &[IssuerConfig],
    has_issuers: bool,
) -> Option<TokenUse> {
    let raw = r.token_use.as_deref()?;
    let tu = match raw.parse::<TokenUse>() {
        Ok(tu) => tu,
        Err(e) => {
            p.push(key, super::problems::unknown(raw, e));
            return None;
        }
    };
    let accepted = issuers.iter().any(|iss| match &iss.token_use {
        TokenUsePolicy::Any => true,
        TokenUsePolicy::Cognito(kinds) => kinds.contains(&tu),
    });
    if !accepted && has_issuers {
        p.push(
            key,
            format!(
                "no issuer accepts {:?} tokens, so this route could never be called",
                tu.as_str()
            ),
        );
    }
    Some(tu)
}

/// The `scope` parameter of a 403's `WWW-Authenticate` (RFC 6750 §3).
fn scope_hint(r: &RawRoute) -> String {
    let mut hint: Vec<&str> = r.scopes.iter().map(String::as_str).collect();
    hint.extend(r.scopes_any.iter().map(String::as_str));
    hint.join(" ")
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::super::problems::Problem;
    use super::super::root::Config;
    use super::super::types::{PathCase, TokenUse};
    use crate::claims::TestGrant;
    use crate::routes::{Forbidden, Lookup, RouteTable, Rule};

    /// Compiles `routes` (TOML `[[routes]]` entries) with one Cognito issuer.
    fn table(routes: &str, case: PathCase) -> Result<RouteTable, Vec<Problem>> {
        let text = format!(
            "{routes}\n[upstream]\nurl=\"http://127.0.0.1:1\"\n[[issuers]]\nuser_pool_id=\"eu-west-1_A\"\n\
             [default]\npath_case = \"{case}\"\n"
        );
        Config::from_toml_str("t", &text, &[])
            .map(|c| c.routes)
            .map_err(|e| e.problems)
    }

    /// The problems with `routes` in a case-insensitive table.
    fn refused(routes: &str) -> Vec<Problem> {
        table(routes, PathCase::Insensitive).expect_err("routes should be refused")
    }

    fn label(t: &RouteTable, m: &str, p: &str) -> String {
        match t.lookup(&Method::from_bytes(m.as_bytes()).unwrap(), p) {
            Lookup::Route(r) => r.label.clone(),
            Lookup::MethodNotAllowed(a) => format!("405 {a}"),
        }
    }

    const ROUTES: &str = r#"routes = [
    { auth = "public", path = "/health" },
    { path = "/weatherforecast", scopes = ["dotnet-demo/dotnet"], methods = ["GET"] },
    { path = "/admin/**", methods = ["GET"], groups_any = ["admins"] },
    { path = "/users/*/profile" },
    { path = "/", auth = "public" },
]
"#;

    #[test]
    fn escaped_segments_compile_in_both_case_modes() {
        let routes = "[[routes]]\npath = \"/caf%C3%A9/**\"\nauth = \"deny\"\n";
        for case in [PathCase::Insensitive, PathCase::Sensitive] {
            let t = table(routes, case).unwrap_or_else(|e| panic!("{case:?}: {e:?}"));
            assert_eq!(label(&t, "GET", "/caf%C3%A9/x"), "/caf%C3%A9/**");
        }
        let t = table(routes, PathCase::Insensitive).unwrap();
        assert_eq!(label(&t, "GET", "/CAF%C3%A9/x"), "/caf%C3%A9/**");
        let t = table(routes, PathCase::Sensitive).unwrap();
        assert_eq!(label(&t, "GET", "/CAF%C3%A9/x"), "default");
        // Still refused when not in normal form as written.
        assert!(table("[[routes]]\npath = \"/caf%c3%a9\"\n", PathCase::Insensitive).is_err());
    }

    #[test]
    fn lookup_follows_file_order_and_patterns() {
        let t = table(ROUTES, PathCase::Insensitive).unwrap();
        let cases = [
            ("GET", "/health", "/health"),
            ("GET", "/health/", "/health"),
            ("GET", "/HEALTH", "/health"),
            ("GET", "/weatherforecast", "/weatherforecast"),
            ("HEAD", "/weatherforecast", "/weatherforecast"),
            ("POST", "/weatherforecast", "405 GET, HEAD"),
            ("GET", "/admin", "/admin/**"),
            ("GET", "/ADMIN/x/y", "/admin/**"),
            ("DELETE", "/admin/x", "405 GET, HEAD"),
            ("GET", "/users/7/profile", "/users/*/profile"),
            ("GET", "/users//profile", "default"),
            ("GET", "/users/profile", "default"),
            ("GET", "/users/7/8/profile", "default"),
            ("GET", "/", "/"),
            ("GET", "/healthz", "default"),
            ("GET", "/adminx", "default"),
        ];
        for (m, p, want) in cases {
            assert_eq!(label(&t, m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn case_sensitive_tables_do_not_fold() {
        let t = table(ROUTES, PathCase::Sensitive).unwrap();
        assert_eq!(label(&t, "GET", "/HEALTH"), "default");
        assert_eq!(label(&t, "GET", "/health"), "/health");
    }

    #[test]
    fn shadowed_routes_are_errors() {
        let e = refused(
            "[[routes]]\npath=\"/api/**\"\n[[routes]]\npath=\"/api/users\"\nmethods=[\"GET\"]\n",
        );
        assert_eq!(e[0].key, "routes[1].path");
        assert!(e[0].reason.contains("can never match"), "{:?}", e);
        for (routes, shadowed) in [
            // A GET-only earlier route does not shadow a POST route on the same path.
            ("[[routes]]\npath=\"/a\"\nmethods=[\"GET\"]\n[[routes]]\npath=\"/a\"\nmethods=[\"POST\"]\n", false),
            // `*` covers a literal; a literal does not cover `*`.
            ("[[routes]]\npath=\"/a/*\"\n[[routes]]\npath=\"/a/b\"\n", true),
            ("[[routes]]\npath=\"/a/b\"\n[[routes]]\npath=\"/a/*\"\n", false),
        ] {
            assert_eq!(
                table(routes, PathCase::Insensitive).is_err(),
                shadowed,
                "{routes}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for (pat, needle) in [
            ("api", "must start with '/'"),
            ("/a/**/b", "last segment"),
            ("/a*", "whole segment"),
            ("/a/../b", "dot segments"),
            ("/a%2Fb", "encoded"),
            ("/%61", "normal form"),
        ] {
            let e = table(&format!("[[routes]]\npath={pat:?}\n"), PathCase::Sensitive).unwrap_err();
            assert_eq!(e[0].key, "routes[0].path");
            assert!(e[0].reason.contains(needle), "{pat}: {:?}", e);
        }
    }

    #[test]
    fn rate_limits_are_validated_with_their_keys() {
        let t = table(
            "[[routes]]\npath=\"/a\"\nrate_limit = { key = \"sub\", requests = 100, per = \"1m\" }\n",
            PathCase::Insensitive,
        )
        .unwrap();
        let l = t.rules()[0].rate_limit.as_ref().unwrap();
        assert_eq!((l.requests.get(), l.burst.get()), (100, 100));
        assert_eq!(l.max_keys, crate::ratelimit::DEFAULT_MAX_KEYS);
        for (limit, key, needle) in [
            (
                r#"{ key = "jti", requests = 1, per = "1s" }"#,
                "routes[0].rate_limit.key",
                "unknown key",
            ),
            (
                r#"{ key = "sub", requests = 0, per = "1s" }"#,
                "routes[0].rate_limit.requests",
                "not a count",
            ),
            (
                r#"{ key = "sub", requests = 1, per = "0s" }"#,
                "routes[0].rate_limit.per",
                "longer than 0s",
            ),
            (
                r#"{ key = "sub", requests = 1, per = "soon" }"#,
                "routes[0].rate_limit.per",
                "invalid duration",
            ),
            (
                r#"{ key = "sub", requests = 1, per = "1s", burst = 0 }"#,
                "routes[0].rate_limit.burst",
                "not a count",
            ),
            (
                r#"{ key = "sub", requests = 1, per = "1s", max_keys = 0 }"#,
                "routes[0].rate_limit.max_keys",
                "not from 1",
            ),
            (
                r#"{ key = "sub", requests = 1, per = "1d", burst = 4000 }"#,
                "routes[0].rate_limit.burst",
                "longer than a year",
            ),
            (
                r#"{ key = "sub", requests = 2000000000, per = "1s" }"#,
                "routes[0].rate_limit.requests",
                "per nanosecond",
            ),
        ] {
            let e = refused(&format!("[[routes]]\npath=\"/a\"\nrate_limit = {limit}\n"));
            assert_eq!(e[0].key, key, "{limit}: {e:?}");
            assert!(e[0].reason.contains(needle), "{limit}: {e:?}");
        }
        // Unknown keys inside the table are refused by the schema.
        assert!(table(
            "[[routes]]\npath=\"/a\"\nrate_limit = { key = \"sub\", requests = 1, per = \"1s\", brust = 2 }\n",
            PathCase::Insensitive
        )
        .is_err());
        // A claim key needs a verified token; an address key does not.
        let e = refused("[[routes]]\npath=\"/a\"\nauth=\"public\"\nrate_limit = { key = \"sub\", requests = 1, per = \"1s\" }\n");
        assert_eq!(e[0].key, "routes[0].rate_limit.key");
        assert!(table(
            "[[routes]]\npath=\"/a\"\nauth=\"public\"\nrate_limit = { key = \"ip\", requests = 1, per = \"1s\" }\n",
            PathCase::Insensitive
        )
        .is_ok());
        let e = refused("[[routes]]\npath=\"/a\"\nauth=\"deny\"\nrate_limit = { key = \"ip\", requests = 1, per = \"1s\" }\n");
        assert_eq!(e[0].key, "routes[0].rate_limit");
    }

    #[test]
    fn conditions_are_compiled_with_the_routes_path_parameters() {
        let t = table(
            "[[routes]]\npath=\"/t/*/x/*\"\nwhen = 'request.path_params[1] == claims.sub'\n",
            PathCase::Insensitive,
        )
        .unwrap();
        assert!(t.rules()[0].condition.is_some());
        let e =
            refused("[[routes]]\npath=\"/t/*\"\nwhen = 'request.path_params[1] == claims.sub'\n");
        assert_eq!(e[0].key, "routes[0].when");
        assert!(
            e[0].reason
                .starts_with("route \"/t/*\": column 1: request.path_params[1]"),
            "{e:?}"
        );
        let e = refused("[[routes]]\npath=\"/t\"\nauth = \"public\"\nwhen = 'true'\n");
        assert_eq!(e[0].key, "routes[0].auth");
    }

    #[test]
    fn rules_need_required_auth() {
        let e = refused("[[routes]]\npath=\"/a\"\nauth=\"public\"\nscopes=[\"x\"]\n");
        assert_eq!(e[0].key, "routes[0].auth");
    }

    #[test]
    fn authorize_is_exact_membership() {
        let t = table(ROUTES, PathCase::Insensitive).unwrap();
        let weather = &t.rules()[1];
        let admin = &t.rules()[2];
        let check = |r: &Rule, s: &[&str], gr: &[&str]| {
            r.authorize(&TestGrant::new(Some(TokenUse::Access), &["c1"], s, gr).grant())
        };
        assert_eq!(check(weather, &["dotnet-demo/dotnet"], &[]), Ok(()));
        assert_eq!(
            check(weather, &["dotnet-demo/dotnet2"], &[]),
            Err(Forbidden::MissingScope)
        );
        assert_eq!(
            check(weather, &["dotnet-demo/dotnetx", "dotnet-demo"], &[]),
            Err(Forbidden::MissingScope)
        );
        assert_eq!(check(admin, &[], &["admins"]), Ok(()));
        assert_eq!(
            check(admin, &[], &["superadmins"]),
            Err(Forbidden::MissingGroup)
        );
        assert_eq!(check(admin, &[], &[]), Err(Forbidden::MissingGroup));
    }
}
