//! The route table: `[[routes]]` compiled once into matchers, looked up per request by
//! (method, normalised path), first match in file order. Also the per-route authorization
//! rules (scopes, groups, token kinds, clients) applied to a verified token.
//!
//! Pattern syntax: `/exact/path`, `*` for exactly one segment, `/**` as the last segment for
//! that path and everything below it. A trailing slash is not significant (`/admin/` matches
//! `/admin`), so a spelling of the path cannot dodge its rule.

use std::collections::BTreeSet;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::config::{AuthMode, IssuerConfig, PathCase, Problems, TokenUse, TokenUsePolicy};

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub groups_any: Vec<String>,
    #[serde(default)]
    pub token_use: Option<String>,
    #[serde(default)]
    pub client_ids: Option<Vec<String>>,
}

fn default_auth() -> String {
    "required".into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    One,
    Rest,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in the file (`routes[index]`); `None` for the default rule.
    pub index: Option<usize>,
    /// The pattern as written; `default` for the default rule. Used as the metrics label.
    pub label: String,
    segs: Vec<Seg>,
    pub methods: Option<Vec<Method>>,
    pub auth: AuthMode,
    pub scopes: Vec<String>,
    pub scopes_any: Vec<String>,
    pub groups_any: Vec<String>,
    pub token_use: Option<TokenUse>,
    pub client_ids: Option<Vec<String>>,
    /// The `scope` parameter of a 403's `WWW-Authenticate` (RFC 6750 §3).
    pub scope_hint: String,
}

/// Why a verified token may not use a route (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    MissingScope,
    MissingGroup,
    WrongTokenUse,
    WrongClient,
}

impl Forbidden {
    pub fn as_str(self) -> &'static str {
        match self {
            Forbidden::MissingScope => "missing_scope",
            Forbidden::MissingGroup => "missing_group",
            Forbidden::WrongTokenUse => "wrong_token_use",
            Forbidden::WrongClient => "wrong_client",
        }
    }
}

pub use crate::claims::Grant;

impl Rule {
    fn default_rule(auth: AuthMode) -> Rule {
        Rule {
            index: None,
            label: "default".into(),
            segs: vec![Seg::Rest],
            methods: None,
            auth,
            scopes: vec![],
            scopes_any: vec![],
            groups_any: vec![],
            token_use: None,
            client_ids: None,
            scope_hint: String::new(),
        }
    }

    fn path_matches(&self, path: &[&str]) -> bool {
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Rest => return true,
                Seg::One => {
                    if path.get(i).is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
                Seg::Lit(l) => {
                    if path.get(i).copied() != Some(&**l) {
                        return false;
                    }
                }
            }
        }
        self.segs.len() == path.len()
    }

    fn method_matches(&self, m: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(ms) => ms.contains(m) || (m == Method::HEAD && ms.contains(&Method::GET)),
        }
    }

    /// Applies the route's rules to a verified token. Exact membership: `admin` never
    /// matches `superadmin`.
    pub fn authorize(&self, g: &Grant<'_>) -> Result<(), Forbidden> {
        if let Some(tu) = self.token_use {
            if g.token_use != Some(tu) {
                return Err(Forbidden::WrongTokenUse);
            }
        }
        if let Some(allowed) = &self.client_ids {
            if !g.clients.iter().any(|c| allowed.iter().any(|a| **a == **c)) {
                return Err(Forbidden::WrongClient);
            }
        }
        let has = |set: &[Box<str>], want: &str| set.iter().any(|s| &**s == want);
        if !self.scopes.iter().all(|s| has(g.scopes, s)) {
            return Err(Forbidden::MissingScope);
        }
        if !self.scopes_any.is_empty() && !self.scopes_any.iter().any(|s| has(g.scopes, s)) {
            return Err(Forbidden::MissingScope);
        }
        if !self.groups_any.is_empty() && !self.groups_any.iter().any(|s| has(g.groups, s)) {
            return Err(Forbidden::MissingGroup);
        }
        Ok(())
    }

    /// Human description of the methods, for `check` and `inspect`.
    pub fn methods_label(&self) -> String {
        match &self.methods {
            None => "*".into(),
            Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        }
    }
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route (or the default) applies.
    Route(&'a Rule),
    /// Routes match the path but none lists the method; carries the `Allow` value.
    MethodNotAllowed(String),
}

impl Lookup<'_> {
    /// Whether a route (or the default) applies.
    pub fn is_route(&self) -> bool {
        matches!(self, Lookup::Route(_))
    }
}

/// The compiled `[[routes]]` plus the default rule.
#[derive(Debug, Clone)]
pub struct RouteTable {
    rules: Vec<Rule>,
    default: Rule,
    case: PathCase,
}

impl RouteTable {
    /// The rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn default_rule(&self) -> &Rule {
        &self.default
    }

    /// Finds the rule for a normalised path. First match in file order wins; a path matched
    /// only by routes for other methods is a 405, never the default.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let lowered;
        let path = match self.case {
            PathCase::Insensitive if path.bytes().any(|b| b.is_ascii_uppercase()) => {
                lowered = path.to_ascii_lowercase();
                lowered.as_str()
            }
            _ => path,
        };
        // Inline for the usual path depth: no allocation per lookup.
        let mut segs: smallvec::SmallVec<[&str; 16]> = path.split('/').skip(1).collect();
        if segs.last() == Some(&"") {
            segs.pop();
        }
        let mut path_matched = false;
        for rule in &self.rules {
            if rule.path_matches(&segs) {
                if rule.method_matches(method) {
                    return Lookup::Route(rule);
                }
                path_matched = true;
            }
        }
        if path_matched {
            let mut allow = BTreeSet::new();
            for rule in &self.rules {
                if rule.path_matches(&segs) {
                    if let Some(ms) = &rule.methods {
                        for m in ms {
                            allow.insert(m.as_str().to_string());
                            if m == Method::GET {
                                allow.insert("HEAD".into());
                            }
                        }
                    }
                }
            }
            return Lookup::MethodNotAllowed(allow.into_iter().collect::<Vec<_>>().join(", "));
        }
        Lookup::Route(&self.default)
    }
}

/// `a` matches every path `b` matches.
fn covers(a: &[Seg], b: &[Seg]) -> bool {
    for (i, sa) in a.iter().enumerate() {
        match (sa, b.get(i)) {
            (Seg::Rest, _) => return true,
            (_, None) | (_, Some(Seg::Rest)) => return false,
            (Seg::One, Some(_)) => {}
            (Seg::Lit(x), Some(Seg::Lit(y))) if x == y => {}
            (Seg::Lit(_), Some(_)) => return false,
        }
    }
    a.len() == b.len()
}

fn methods_cover(a: &Option<Vec<Method>>, b: &Option<Vec<Method>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|m| a.contains(m)),
    }
}

fn compile_pattern(p: &mut Problems, key: &str, raw: &str, case: PathCase) -> Vec<Seg> {
    let raw = raw.trim();
    if !raw.starts_with('/') {
        p.push(
            key,
            format!("route path {raw:?} must start with '/' (e.g. \"/api/**\")"),
        );
        return vec![];
    }
    let mut parts: Vec<&str> = raw.split('/').skip(1).collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    let mut segs = Vec::with_capacity(parts.len());
    let n = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        match part {
            "**" if i + 1 == n => segs.push(Seg::Rest),
            "**" => p.push(key, format!("{raw:?}: `**` may only be the last segment")),
            "*" => segs.push(Seg::One),
            "" => p.push(key, format!("{raw:?}: empty segment (`//`)")),
            "." | ".." => p.push(key, format!("{raw:?}: dot segments are not allowed")),
            lit if lit.contains('*') => {
                p.push(key, format!("{raw:?}: `*` must be a whole segment"))
            }
            lit => {
                // The pattern must itself be in normal form, or it could never match. Checked
                // as written: lower-casing first would turn `%C3%A9` into a non-normal `%c3%a9`.
                match crate::path::normalize(&format!("/{lit}")) {
                    Ok(n) if n.as_ref() == format!("/{lit}") => segs.push(Seg::Lit(match case {
                        PathCase::Insensitive => lit.to_ascii_lowercase().into(),
                        PathCase::Sensitive => lit.into(),
                    })),
                    Ok(n) => p.push(
                        key,
                        format!(
                            "{raw:?}: segment {lit:?} is not in normal form (write {:?})",
                            &n[1..]
                        ),
                    ),
                    Err(e) => p.push(key, format!("{raw:?}: {}", e.as_str())),
                }
            }
        }
    }
    segs
}

/// Compiles `[[routes]]`; problems are keyed `routes[i].field`.
pub(crate) fn compile(
    p: &mut Problems,
    raw: &[RawRoute],
    case: PathCase,
    issuers: &[IssuerConfig],
) -> RouteTable {
    let mut rules: Vec<Rule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let k = |f: &str| format!("routes[{i}].{f}");
        let segs = compile_pattern(p, &k("path"), &r.path, case);
        let methods = r.methods.as_ref().map(|ms| {
            if ms.is_empty() {
                p.push(
                    k("methods"),
                    "empty list (omit the key to allow any method)",
                );
            }
            let mut out: Vec<Method> = Vec::new();
            for (j, m) in ms.iter().enumerate() {
                match Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()) {
                    Ok(m) if m == Method::CONNECT => p.push(
                        format!("routes[{i}].methods[{j}]"),
                        "CONNECT is never proxied",
                    ),
                    Ok(m) => {
                        if !out.contains(&m) {
                            out.push(m)
                        }
                    }
                    Err(_) => p.push(
                        format!("routes[{i}].methods[{j}]"),
                        format!("invalid method {m:?}"),
                    ),
                }
            }
            out
        });
        let auth = AuthMode::parse(&r.auth).unwrap_or_else(|e| {
            p.push(k("auth"), e);
            AuthMode::Deny
        });
        let has_rules = !r.scopes.is_empty()
            || !r.scopes_any.is_empty()
            || !r.groups_any.is_empty()
            || r.token_use.is_some()
            || r.client_ids.is_some();
        if auth != AuthMode::Required && has_rules {
            p.push(
                k("auth"),
                format!(
                    "scopes, scopes_any, groups_any, token_use and client_ids need auth = \"required\" (this route is {:?})",
                    auth.as_str()
                ),
            );
        }
        if auth == AuthMode::Required && issuers.is_empty() {
            p.push(
                k("auth"),
                "auth = \"required\" needs at least one [[issuers]] entry",
            );
        }
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
        let token_use = r.token_use.as_deref().and_then(|t| match t {
            "access" => Some(TokenUse::Access),
            "id" => Some(TokenUse::Id),
            other => {
                p.push(
                    k("token_use"),
                    format!("unknown token_use {other:?}: expected \"access\" or \"id\""),
                );
                None
            }
        });
        if let Some(tu) = token_use {
            let accepted = issuers.iter().any(|iss| match &iss.token_use {
                TokenUsePolicy::Any => true,
                TokenUsePolicy::Cognito(kinds) => kinds.contains(&tu),
            });
            if !accepted && !issuers.is_empty() {
                p.push(
                    k("token_use"),
                    format!(
                        "no issuer accepts {:?} tokens, so this route could never be called",
                        tu.as_str()
                    ),
                );
            }
        }
        if let Some(ids) = &r.client_ids {
            if ids.is_empty() {
                p.push(
                    k("client_ids"),
                    "empty list (omit the key to allow the issuer's clients)",
                );
            }
        }
        let mut hint: Vec<&str> = r.scopes.iter().map(String::as_str).collect();
        hint.extend(r.scopes_any.iter().map(String::as_str));
        let rule = Rule {
            index: Some(i),
            label: r.path.trim().to_string(),
            segs,
            methods,
            auth,
            scopes: r.scopes.clone(),
            scopes_any: r.scopes_any.clone(),
            groups_any: r.groups_any.clone(),
            token_use,
            client_ids: r.client_ids.clone(),
            scope_hint: hint.join(" "),
        };
        if !rule.segs.is_empty() || r.path.trim() == "/" {
            if let Some(earlier) = rules
                .iter()
                .find(|e| covers(&e.segs, &rule.segs) && methods_cover(&e.methods, &rule.methods))
            {
                p.push(
                    k("path"),
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
    RouteTable {
        rules,
        default: Rule::default_rule(AuthMode::Deny),
        case,
    }
}

impl RouteTable {
    /// Sets the rule for unmatched requests (`[default] auth`).
    pub(crate) fn set_default(&mut self, auth: AuthMode) {
        self.default.auth = auth;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &str, case: PathCase) -> Result<RouteTable, Vec<crate::config::Problem>> {
        #[derive(Deserialize)]
        struct W {
            routes: Vec<RawRoute>,
        }
        let w: W = toml_from(routes);
        let mut p = Problems::default();
        let iss = crate::config::Config::from_toml_str(
            "t",
            "[upstream]\nurl=\"http://127.0.0.1:1\"\n[[issuers]]\nuser_pool_id=\"eu-west-1_A\"\n",
            &[],
        )
        .unwrap()
        .issuers;
        let mut t = compile(&mut p, &w.routes, case, &iss);
        t.set_default(AuthMode::Required);
        if p.0.is_empty() {
            Ok(t)
        } else {
            Err(p.0)
        }
    }

    fn toml_from<T: serde::de::DeserializeOwned>(s: &str) -> T {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(s))
            .extract()
            .unwrap()
    }

    fn label(t: &RouteTable, m: &str, p: &str) -> String {
        match t.lookup(&Method::from_bytes(m.as_bytes()).unwrap(), p) {
            Lookup::Route(r) => r.label.clone(),
            Lookup::MethodNotAllowed(a) => format!("405 {a}"),
        }
    }

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
methods = ["GET"]
groups_any = ["admins"]
[[routes]]
path = "/users/*/profile"
[[routes]]
path = "/"
auth = "public"
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
        let e = table(
            "[[routes]]\npath=\"/api/**\"\n[[routes]]\npath=\"/api/users\"\nmethods=[\"GET\"]\n",
            PathCase::Insensitive,
        )
        .unwrap_err();
        assert_eq!(e[0].key, "routes[1].path");
        assert!(e[0].reason.contains("can never match"), "{:?}", e);
        // A GET-only earlier route does not shadow a POST route on the same path.
        assert!(table(
            "[[routes]]\npath=\"/a\"\nmethods=[\"GET\"]\n[[routes]]\npath=\"/a\"\nmethods=[\"POST\"]\n",
            PathCase::Insensitive
        )
        .is_ok());
        // `*` covers a literal; a literal does not cover `*`.
        assert!(table(
            "[[routes]]\npath=\"/a/*\"\n[[routes]]\npath=\"/a/b\"\n",
            PathCase::Insensitive
        )
        .is_err());
        assert!(table(
            "[[routes]]\npath=\"/a/b\"\n[[routes]]\npath=\"/a/*\"\n",
            PathCase::Insensitive
        )
        .is_ok());
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
    fn rules_need_required_auth() {
        let e = table(
            "[[routes]]\npath=\"/a\"\nauth=\"public\"\nscopes=[\"x\"]\n",
            PathCase::Insensitive,
        )
        .unwrap_err();
        assert_eq!(e[0].key, "routes[0].auth");
    }

    fn boxed(v: &[&str]) -> Vec<Box<str>> {
        v.iter().map(|s| (*s).into()).collect()
    }

    #[test]
    fn authorize_is_exact_membership() {
        let t = table(ROUTES, PathCase::Insensitive).unwrap();
        let weather = &t.rules()[1];
        let admin = &t.rules()[2];
        let clients = boxed(&["c1"]);
        let g = |scopes: &[&str], groups: &[&str]| (boxed(scopes), boxed(groups));
        let check = |r: &Rule, s: &[&str], gr: &[&str]| {
            let (s, gr) = g(s, gr);
            r.authorize(&Grant {
                token_use: Some(TokenUse::Access),
                clients: &clients,
                scopes: &s,
                groups: &gr,
            })
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
