//! The route table: `[[routes]]` compiled once into matchers, looked up per request by
//! (method, normalised path), first match in file order. Also the per-route authorization
//! rules (scopes, groups, token kinds, clients) applied to a verified token.
//!
//! Pattern syntax: `/exact/path`, `*` for exactly one segment, `/**` as the last segment for
//! that path and everything below it. A trailing slash is not significant (`/admin/` matches
//! `/admin`), so a spelling of the path cannot dodge its rule.
//!
//! Reading `[[routes]]` from the file and reporting what is wrong with it is left to the
//! config validator (`config::routes`), which builds the table with [`Pattern::parse`],
//! [`Rule::shadows`] and [`RouteTable::new`]. Only the config vocabulary
//! (`config::types`) is imported from there.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use http::Method;

use crate::condition::Condition;
use crate::config::types::{AuthMode, PathCase, TokenUse};
use crate::ratelimit::Limit;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    One,
    Rest,
}

/// A compiled path pattern (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Seg>);

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in the file (`routes[index]`); `None` for the default rule.
    pub index: Option<usize>,
    /// The pattern as written; `default` for the default rule. Used as the metrics label.
    pub label: String,
    pub pattern: Pattern,
    pub methods: Option<Vec<Method>>,
    pub auth: AuthMode,
    pub scopes: Vec<String>,
    pub scopes_any: Vec<String>,
    pub groups_any: Vec<String>,
    pub token_use: Option<TokenUse>,
    pub client_ids: Option<Vec<String>>,
    /// The `scope` parameter of a 403's `WWW-Authenticate` (RFC 6750 §3).
    pub scope_hint: String,
    /// `when`: evaluated after the rules above.
    pub condition: Option<Arc<Condition>>,
    /// `rate_limit` (its live state is the running `State`'s).
    pub rate_limit: Option<Limit>,
}

/// Why a verified token may not use a route (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    MissingScope,
    MissingGroup,
    WrongTokenUse,
    WrongClient,
    /// The route's `when` was false, or could not be evaluated.
    ConditionFailed,
}

impl Forbidden {
    pub fn as_str(self) -> &'static str {
        match self {
            Forbidden::MissingScope => "missing_scope",
            Forbidden::MissingGroup => "missing_group",
            Forbidden::WrongTokenUse => "wrong_token_use",
            Forbidden::WrongClient => "wrong_client",
            Forbidden::ConditionFailed => "condition_failed",
        }
    }
}

pub use crate::claims::Grant;

impl Rule {
    fn default_rule(auth: AuthMode) -> Rule {
        Rule {
            index: None,
            label: "default".into(),
            pattern: Pattern(vec![Seg::Rest]),
            methods: None,
            auth,
            scopes: vec![],
            scopes_any: vec![],
            groups_any: vec![],
            token_use: None,
            client_ids: None,
            scope_hint: String::new(),
            condition: None,
            rate_limit: None,
        }
    }

    /// The values of this rule's `*` segments in `path` (normalised, which this rule
    /// matches), percent-decoded where that gives UTF-8, in order.
    pub fn path_params<'p>(&self, path: &'p str) -> Vec<Cow<'p, str>> {
        let segs = path.split('/').skip(1);
        self.pattern
            .0
            .iter()
            .zip(segs)
            .filter(|(seg, _)| **seg == Seg::One)
            .map(
                |(_, s)| match percent_encoding::percent_decode_str(s).decode_utf8() {
                    Ok(d) => d,
                    Err(_) => Cow::Borrowed(s),
                },
            )
            .collect()
    }

    fn path_matches(&self, path: &[&str]) -> bool {
        for (i, seg) in self.pattern.0.iter().enumerate() {
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
        self.pattern.0.len() == path.len()
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
            if !allowed.iter().any(|a| g.clients.contains(a)) {
                return Err(Forbidden::WrongClient);
            }
        }
        if !self.scopes.iter().all(|s| g.scopes.contains(s)) {
            return Err(Forbidden::MissingScope);
        }
        if !self.scopes_any.is_empty() && !self.scopes_any.iter().any(|s| g.scopes.contains(s)) {
            return Err(Forbidden::MissingScope);
        }
        if !self.groups_any.is_empty() && !self.groups_any.iter().any(|s| g.groups.contains(s)) {
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
    /// Whether `rule` matches `method` and the normalised `path` (whatever comes before it).
    pub fn rule_matches(&self, rule: &Rule, method: &Method, path: &str) -> bool {
        let path = match self.case {
            PathCase::Insensitive => path.to_ascii_lowercase(),
            PathCase::Sensitive => path.to_string(),
        };
        let mut segs: Vec<&str> = path.split('/').skip(1).collect();
        if segs.last() == Some(&"") {
            segs.pop();
        }
        rule.path_matches(&segs) && rule.method_matches(method)
    }

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

impl RouteTable {
    /// The table for `rules` (in file order) with a default rule of `default_auth` for the
    /// requests none matches. Paths are folded to lower case first when `case` says so.
    pub fn new(rules: Vec<Rule>, default_auth: AuthMode, case: PathCase) -> RouteTable {
        RouteTable {
            rules,
            default: Rule::default_rule(default_auth),
            case,
        }
    }
}

impl Rule {
    /// Whether this rule matches every request `later` matches (so `later` could never be
    /// reached after it).
    pub fn shadows(&self, later: &Rule) -> bool {
        self.pattern.covers(&later.pattern) && methods_cover(&self.methods, &later.methods)
    }
}

impl Pattern {
    /// The number of `*` segments.
    pub fn params(&self) -> usize {
        self.0.iter().filter(|s| **s == Seg::One).count()
    }

    /// Compiles a pattern as written in `routes[].path`; `Err` lists what is wrong with it.
    /// Literal segments are lower-cased for a case-insensitive table.
    pub fn parse(raw: &str, case: PathCase) -> Result<Pattern, Vec<String>> {
        let raw = raw.trim();
        if !raw.starts_with('/') {
            return Err(vec![format!(
                "route path {raw:?} must start with '/' (e.g. \"/api/**\")"
            )]);
        }
        let mut parts: Vec<&str> = raw.split('/').skip(1).collect();
        if parts.last() == Some(&"") {
            parts.pop();
        }
        let mut segs = Vec::with_capacity(parts.len());
        let mut errors = Vec::new();
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            match part {
                "**" if i + 1 == n => segs.push(Seg::Rest),
                "**" => errors.push(format!("{raw:?}: `**` may only be the last segment")),
                "*" => segs.push(Seg::One),
                "" => errors.push(format!("{raw:?}: empty segment (`//`)")),
                "." | ".." => errors.push(format!("{raw:?}: dot segments are not allowed")),
                lit if lit.contains('*') => {
                    errors.push(format!("{raw:?}: `*` must be a whole segment"))
                }
                lit => match literal(lit, case) {
                    Ok(seg) => segs.push(seg),
                    Err(e) => errors.push(format!("{raw:?}: {e}")),
                },
            }
        }
        if errors.is_empty() {
            Ok(Pattern(segs))
        } else {
            Err(errors)
        }
    }

    /// `self` matches every path `other` matches.
    pub fn covers(&self, other: &Pattern) -> bool {
        let (a, b) = (&self.0, &other.0);
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
}

/// A literal segment, which must itself be in normal form or it could never match. Checked
/// as written: lower-casing first would turn `%C3%A9` into a non-normal `%c3%a9`.
fn literal(lit: &str, case: PathCase) -> Result<Seg, String> {
    match crate::path::normalize(&format!("/{lit}")) {
        Ok(n) if n.as_ref() == format!("/{lit}") => Ok(Seg::Lit(match case {
            PathCase::Insensitive => lit.to_ascii_lowercase().into(),
            PathCase::Sensitive => lit.into(),
        })),
        Ok(n) => Err(format!(
            "segment {lit:?} is not in normal form (write {:?})",
            &n[1..]
        )),
        Err(e) => Err(e.as_str().to_string()),
    }
}

fn methods_cover(a: &Option<Vec<Method>>, b: &Option<Vec<Method>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|m| a.contains(m)),
    }
}
