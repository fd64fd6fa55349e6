//! Route conditions: a route's `when = "<CEL>"`, compiled once when the config is loaded
//! ([`Condition::compile`]) and evaluated per request after the route's other rules
//! ([`Condition::evaluate`]). CEL is the `cel` crate's (cel-rust); this module owns what
//! an expression may name, the bounds it must keep, the CEL form of the verified claims
//! ([`Claims`]) and of the request ([`Request`]).
//!
//! Declared names: `claims`, a map of string to dynamic values (the verified token's
//! payload: JSON numbers become `int` when integral, else `double`), and `request`, with
//! `method`, `path` (normalised), `host`, `headers` (lower-case names; identity headers
//! left out; repeated headers joined with `,`) and, when the route has `*` segments,
//! `path_params` (their values, percent-decoded, in order). Anything else is refused when
//! the config is loaded, with the column and the problem, and so are `request` fields that
//! do not exist and `path_params` on a route without `*` segments.
//!
//! # The cost bound
//!
//! cel-rust 0.15 has no cost budget, so evaluation is bounded by what is accepted at load:
//!
//! - the source is at most [`MAX_SOURCE_BYTES`] (4 KiB);
//! - the parsed expression has at most [`MAX_NODES`] (256) nodes, nested at most
//!   [`MAX_DEPTH`] (32) deep (so evaluation, which recurses once per level, cannot exhaust
//!   the stack);
//! - there are no comprehensions: the environment declares none of CEL's comprehension
//!   macros (`all`, `exists`, `exists_one`, `map`, `filter`), only `has()` (a field test), so
//!   an expression has no loop and no variable binding;
//! - only the functions in [`FUNCTIONS`] may be called (plus CEL's operators), each of which
//!   runs in time linear in its arguments; no regular expressions (`matches` is not
//!   compiled in: it would compile its pattern on every evaluation).
//!
//! So one evaluation visits each of at most 256 nodes at most once, and no value it makes is
//! bigger than (the number of leaves) x (the biggest input value: a claim, bounded by
//! `max_token_bytes`, or a header, bounded by the listener's header limit): at most 256
//! operations per request, each linear in at most 256 x that input.
//!
//! # Errors on one side of `||` and `&&`
//!
//! CEL's logical operators are commutative over errors: `error || true` and `true ||
//! error` are `true`, `error && false` and `false && error` are `false`. cel-rust 0.15
//! evaluates them this way (`Value::resolve_val`, `LOGICAL_OR` / `LOGICAL_AND`: an error on
//! the left is kept while the right is evaluated, and dropped when the right decides); the
//! tests below hold it to that, so an upgrade that changes it fails here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::parser::Macro;
use cel::{Context, Env, ExecutionError, Program, Value};
use http::HeaderMap;

/// The longest `when` accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// The most nodes a parsed condition may have.
pub const MAX_NODES: usize = 256;
/// The deepest a parsed condition may nest.
pub const MAX_DEPTH: usize = 32;

/// The names a condition may refer to.
pub const DECLARED: [&str; 2] = ["claims", "request"];

/// The fields of `request`.
pub const REQUEST_FIELDS: [&str; 5] = ["method", "path", "host", "headers", "path_params"];

/// The functions a condition may call (besides CEL's operators): CEL's standard string,
/// size and conversion functions, each linear in its arguments.
pub const FUNCTIONS: [&str; 11] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "dyn",
];

/// Type names, which CEL lets an expression compare `type(x)` with.
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// A compiled `when`.
pub struct Condition {
    source: Box<str>,
    program: Program,
    env: Arc<Env>,
    uses_request: bool,
    /// This compilation's own number, for the verdicts a token's [`Claims`] remember.
    id: u64,
}

/// Numbers every compiled condition (a reload compiles new ones, with new numbers).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Verdicts one token's claims remember, at most (past it, conditions are evaluated).
const REMEMBERED: usize = 8;

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// What is wrong with a `when`, and where (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub problem: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 1 {
            write!(f, "line {}, ", self.line)?;
        }
        write!(f, "column {}: {}", self.column, self.problem)
    }
}

/// Why an evaluation did not give `true` or `false`, in words that name no claim value (the
/// log line may carry only `sub`, `client_id` and `jti` of a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The CEL environment every condition is compiled and evaluated in: the standard functions,
/// no optional syntax, and of the standard macros only `has()`.
fn environment() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    Arc::clone(ENV.get_or_init(|| {
        let mut env = Env::default().with_optional_support(false).with_stdlib();
        // `has(a.b)`: the field test, as the standard macro writes it. Declined for any
        // other argument, which then fails the function check below with a clear message.
        let has = Macro::global(operators::HAS, 1, |helper, _target, args| {
            match args.first().map(|a| &a.expr) {
                Some(Expr::Select(_)) => {
                    let Some(IdedExpr {
                        expr: Expr::Select(mut select),
                        ..
                    }) = args.pop()
                    else {
                        return Ok(None);
                    };
                    select.test = true;
                    Ok(Some(helper.next_expr(Expr::Select(select))))
                }
                _ => Ok(None),
            }
        });
        env.add_macro(has)
            .expect("has() is the only macro of an environment without the standard ones");
        Arc::new(env)
    }))
}

impl Condition {
    /// Compiles `source` for a route with `path_params` `*` segments. `Err` lists every
    /// problem found, each with its place in `source`.
    pub fn compile(source: &str, path_params: usize) -> Result<Condition, Vec<CompileError>> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(vec![CompileError {
                line: 1,
                column: 1,
                problem: format!(
                    "the expression is {} bytes; at most {MAX_SOURCE_BYTES} are accepted",
                    source.len()
                ),
            }]);
        }
        if source.trim().is_empty() {
            return Err(vec![CompileError {
                line: 1,
                column: 1,
                problem: "empty expression (omit `when` for no condition)".into(),
            }]);
        }
        let env = environment();
        let program = env.compile(source).map_err(|errors| {
            errors
                .errors
                .iter()
                .map(|e| CompileError {
                    line: usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    column: usize::try_from(e.pos.1).unwrap_or(0) + 1,
                    problem: e.msg.clone(),
                })
                .collect::<Vec<_>>()
        })?;
        let mut check = Check {
            source,
            program: &program,
            path_params,
            nodes: 0,
            uses_request: false,
            errors: Vec::new(),
        };
        check.expr(program.expression(), 1);
        if check.nodes > MAX_NODES {
            check.errors.push(CompileError {
                line: 1,
                column: 1,
                problem: format!(
                    "the expression has {} nodes; at most {MAX_NODES} are accepted",
                    check.nodes
                ),
            });
        }
        if !check.errors.is_empty() {
            return Err(check.errors);
        }
        let uses_request = check.uses_request;
        Ok(Condition {
            source: source.into(),
            program,
            env,
            uses_request,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition: `Ok(true)` lets the request pass; `Ok(false)` and `Err`
    /// refuse it (`condition_failed`).
    ///
    /// A condition over `claims` alone is a function of the token (CEL has no side effects,
    /// and this environment no clock): its verdict is remembered with the token's claims,
    /// which live in the token cache, so a cached token evaluates it once. Errors are not
    /// remembered (each refused request logs its line).
    pub fn evaluate(&self, claims: &Claims, request: &Request<'_>) -> Result<bool, EvalError> {
        if !self.uses_request {
            if let Some(v) = claims.remembered(self.id) {
                return Ok(v);
            }
        }
        let result = self.run(claims, request);
        if let (false, Ok(v)) = (self.uses_request, &result) {
            claims.remember(self.id, *v);
        }
        result
    }

    fn run(&self, claims: &Claims, request: &Request<'_>) -> Result<bool, EvalError> {
        let resolver = Resolver {
            claims,
            request,
            request_value: OnceLock::new(),
            uses_request: self.uses_request,
        };
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.set_variable_resolver(&resolver);
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError(format!(
                "the expression gave a {}, not a bool",
                other.type_of()
            ))),
            Err(e) => Err(EvalError(describe(&e))),
        }
    }
}

/// The load-time checks, over the parsed expression.
struct Check<'a> {
    source: &'a str,
    program: &'a Program,
    path_params: usize,
    nodes: usize,
    uses_request: bool,
    errors: Vec<CompileError>,
}

impl Check<'_> {
    fn error(&mut self, id: u64, problem: impl Into<String>) {
        let (line, column) = self
            .program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| line_column(self.source, start as usize))
            .unwrap_or((1, 1));
        self.errors.push(CompileError {
            line,
            column,
            problem: problem.into(),
        });
    }

    fn expr(&mut self, e: &IdedExpr, depth: usize) {
        self.nodes += 1;
        if depth > MAX_DEPTH {
            // Reported once, at the first node past the limit.
            if !self.errors.iter().any(|e| e.problem.contains("nested")) {
                self.error(
                    e.id,
                    format!("the expression is nested more than {MAX_DEPTH} deep"),
                );
            }
            return;
        }
        let next = depth + 1;
        match &e.expr {
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr {
                    if root == "request" {
                        self.nodes += 1;
                        self.uses_request = true;
                        self.request_field(e.id, &select.field);
                        return;
                    }
                }
                self.expr(&select.operand, next);
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let is_operator = !name.starts_with(|c: char| c.is_ascii_alphabetic());
                if name == operators::INDEX {
                    self.index(call.args.as_slice(), e.id);
                } else if name == operators::HAS {
                    self.error(
                        e.id,
                        "has() takes a field selection, e.g. has(claims.email)",
                    );
                } else if !is_operator && !FUNCTIONS.contains(&name) {
                    self.error(
                        e.id,
                        format!(
                            "unknown function {name:?} (available: {})",
                            FUNCTIONS.join(", ")
                        ),
                    );
                }
                if let Some(t) = &call.target {
                    self.expr(t, next);
                }
                for a in &call.args {
                    self.expr(a, next);
                }
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.expr(item, next);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.expr(&m.key, next);
                        self.expr(&m.value, next);
                    }
                }
            }
            Expr::Literal(_) => {}
            Expr::Comprehension(_) => self.error(
                e.id,
                "comprehensions (all, exists, exists_one, map, filter) are not supported",
            ),
            Expr::Struct(_) => self.error(e.id, "message construction is not supported"),
            Expr::Unspecified => self.error(e.id, "incomplete expression"),
        }
    }

    fn ident(&mut self, id: u64, name: &str) {
        if name == "request" {
            self.uses_request = true;
        }
        if !DECLARED.contains(&name) && !TYPE_NAMES.contains(&name) {
            self.error(
                id,
                format!(
                    "undeclared name {name:?} (declared: {})",
                    DECLARED.join(", ")
                ),
            );
        }
    }

    fn request_field(&mut self, id: u64, field: &str) {
        if !REQUEST_FIELDS.contains(&field) {
            self.error(
                id,
                format!(
                    "request has no field {field:?} (it has {})",
                    REQUEST_FIELDS.join(", ")
                ),
            );
        } else if field == "path_params" && self.path_params == 0 {
            self.error(
                id,
                "request.path_params: this route's path has no `*` segments",
            );
        }
    }

    /// `a[b]`: `request["field"]` and `request.path_params[n]` with literals are checked
    /// (reported where `a` starts).
    fn index(&mut self, args: &[IdedExpr], _id: u64) {
        let [target, index] = args else { return };
        let id = leftmost(target);
        let literal = match &index.expr {
            Expr::Literal(l) => Some(l),
            _ => None,
        };
        match (&target.expr, literal) {
            (Expr::Ident(root), Some(LiteralValue::String(field))) if root == "request" => {
                self.request_field(id, field.inner());
            }
            (Expr::Select(select), Some(LiteralValue::Int(n)))
                if select.field == "path_params"
                    && matches!(&select.operand.expr, Expr::Ident(r) if r == "request") =>
            {
                let n = *n.inner();
                if self.path_params > 0 && (n < 0 || n as u64 >= self.path_params as u64) {
                    self.error(
                        id,
                        format!(
                            "request.path_params[{n}]: this route's path has {} `*` segment(s), indexed from 0",
                            self.path_params
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The node where `e` starts in the source: its operand's, for a selection or a member call.
fn leftmost(e: &IdedExpr) -> u64 {
    match &e.expr {
        Expr::Select(s) => leftmost(&s.operand),
        Expr::Call(c) => match (&c.target, c.args.first()) {
            (Some(t), _) => leftmost(t),
            (None, Some(a)) if c.func_name == operators::INDEX => leftmost(a),
            _ => e.id,
        },
        _ => e.id,
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(source.len());
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    let before = &source[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// An evaluation error in words that carry no value, only kinds, types and names from the
/// expression.
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(_) => "no such key (a claim, header or field is missing)".into(),
        ExecutionError::NoSuchOverload(o) => format!(
            "no overload of {:?} for ({})",
            o.function(),
            o.argument_types().join(", ")
        ),
        ExecutionError::UnexpectedType { got, want } => {
            format!("unexpected type: got {got}, want {want}")
        }
        ExecutionError::ValuesNotComparable(a, b) => format!(
            "a {} cannot be compared with a {}",
            a.type_of(),
            b.type_of()
        ),
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".into(),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".into(),
        ExecutionError::Overflow(op, _, _) => format!("overflow in {op}"),
        ExecutionError::UnsupportedIndex(a, b) => {
            format!("a {} cannot index a {}", a.type_of(), b.type_of())
        }
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference to {name:?}"),
        ExecutionError::FunctionError { function, .. } => format!("{function} failed"),
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("expected {expected} arguments, got {actual}")
        }
        _ => "evaluation error".into(),
    }
}

// === impl Claims ===

/// The verified claims as a CEL map, built once per verified token (and cached with it),
/// with the verdicts of the claims-only conditions evaluated over them.
pub struct Claims {
    value: Box<dyn Val>,
    verdicts: Mutex<smallvec::SmallVec<[(u64, bool); 2]>>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Claims(..)")
    }
}

impl Claims {
    pub fn from_json(claims: &serde_json::Map<String, serde_json::Value>) -> Claims {
        Claims {
            value: Box::new(map_of(claims)),
            verdicts: Mutex::new(smallvec::SmallVec::new()),
        }
    }

    fn verdicts(&self) -> std::sync::MutexGuard<'_, smallvec::SmallVec<[(u64, bool); 2]>> {
        // A panic while holding the lock leaves a list that is still valid.
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remembered(&self, condition: u64) -> Option<bool> {
        self.verdicts()
            .iter()
            .find(|(id, _)| *id == condition)
            .map(|(_, v)| *v)
    }

    fn remember(&self, condition: u64, verdict: bool) {
        let mut v = self.verdicts();
        if v.len() < REMEMBERED && !v.iter().any(|(id, _)| *id == condition) {
            v.push((condition, verdict));
        }
    }
}

fn map_of(m: &serde_json::Map<String, serde_json::Value>) -> CelMap<'static> {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = m
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.clone()), value_of(v)))
        .collect();
    CelMap::from(map)
}

fn value_of(v: &serde_json::Value) -> Box<dyn Val> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Box::new(CelInt::from(i)),
            (None, Some(u), _) => Box::new(CelUInt::from(u)),
            (_, _, f) => Box::new(CelDouble::from(f.unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.clone())),
        J::Array(items) => Box::new(CelList::from(
            items.iter().map(value_of).collect::<Vec<_>>(),
        )),
        J::Object(m) => Box::new(map_of(m)),
    }
}

// === impl Request ===

/// The request side of a condition: borrowed from the request being decided.
pub struct Request<'a> {
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a str,
    /// The `Host` (or the original request's host, on the decision listener); `""` if none.
    pub host: &'a str,
    pub headers: &'a HeaderMap,
    /// Whether a header is left out of `request.headers` (the identity headers).
    pub hidden: &'a (dyn Fn(&str) -> bool + Sync),
    /// The values of the route's `*` segments, in order.
    pub path_params: Vec<Cow<'a, str>>,
}

impl Request<'_> {
    fn to_cel(&self) -> CelMap<'_> {
        let mut headers: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = HashMap::new();
        for name in self.headers.keys() {
            if (self.hidden)(name.as_str()) {
                continue;
            }
            let mut values = self.headers.get_all(name).iter();
            let value: Cow<'_, str> = match (values.next(), values.next()) {
                (Some(v), None) => String::from_utf8_lossy(v.as_bytes()),
                _ => {
                    let all: Vec<Cow<'_, str>> = self
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()))
                        .collect();
                    Cow::Owned(all.join(","))
                }
            };
            headers.insert(
                CelMapKey::from(name.as_str()),
                Box::new(CelString::from(value)),
            );
        }
        let params: Vec<Box<dyn Val + '_>> = self
            .path_params
            .iter()
            .map(|p| Box::new(CelString::from(p.as_ref())) as Box<dyn Val + '_>)
            .collect();
        let fields: [(&str, Box<dyn Val + '_>); 5] = [
            ("method", Box::new(CelString::from(self.method))),
            ("path", Box::new(CelString::from(self.path))),
            ("host", Box::new(CelString::from(self.host))),
            ("headers", Box::new(CelMap::from(headers))),
            ("path_params", Box::new(CelList::from(params))),
        ];
        CelMap::from(
            fields
                .into_iter()
                .map(|(k, v)| (CelMapKey::from(k), v))
                .collect::<HashMap<_, _>>(),
        )
    }
}

/// The two declared names, for one evaluation; `request` is built on first use.
struct Resolver<'a> {
    claims: &'a Claims,
    request: &'a Request<'a>,
    request_value: OnceLock<CelMap<'a>>,
    uses_request: bool,
}

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "claims" => Some(CowVal::Borrowed(&*self.claims.value)),
            "request" if self.uses_request => Some(CowVal::Borrowed(
                self.request_value.get_or_init(|| self.request.to_cel()),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> Claims {
        Claims::from_json(v.as_object().expect("an object"))
    }

    fn no_headers() -> HeaderMap {
        HeaderMap::new()
    }

    fn eval(source: &str, params: &[&str], c: serde_json::Value) -> Result<bool, EvalError> {
        let headers = no_headers();
        eval_with(source, params, c, &headers)
    }

    fn eval_with(
        source: &str,
        params: &[&str],
        c: serde_json::Value,
        headers: &HeaderMap,
    ) -> Result<bool, EvalError> {
        let cond =
            Condition::compile(source, params.len()).unwrap_or_else(|e| panic!("{source}: {e:?}"));
        let hidden = |n: &str| n == "x-auth-sub";
        let req = Request {
            method: "GET",
            path: "/tenants/acme/orders",
            host: "api.example.com",
            headers,
            hidden: &hidden,
            path_params: params.iter().map(|p| Cow::Borrowed(*p)).collect(),
        };
        cond.evaluate(&claims(c), &req)
    }

    #[test]
    fn a_claims_only_verdict_is_remembered_with_the_claims_and_a_request_one_is_not() {
        let headers = no_headers();
        let hidden = |_: &str| false;
        let req = |path: &'static str, param: &'static str| Request {
            method: "GET",
            path,
            host: "",
            headers: &headers,
            hidden: &hidden,
            path_params: vec![Cow::Borrowed(param)],
        };
        let c = claims(json!({"client_id": "abc", "custom:tenant": "acme"}));
        let by_client = Condition::compile(r#"claims.client_id == "abc""#, 0).unwrap();
        assert_eq!(by_client.evaluate(&c, &req("/a", "x")), Ok(true));
        assert_eq!(c.remembered(by_client.id), Some(true));
        assert_eq!(by_client.evaluate(&c, &req("/b", "y")), Ok(true));
        // Another compilation (a reload) is another condition: evaluated afresh.
        let other = Condition::compile(r#"claims.client_id == "xyz""#, 0).unwrap();
        assert_eq!(other.evaluate(&c, &req("/a", "x")), Ok(false));
        assert_eq!(c.remembered(other.id), Some(false));
        // One that reads the request is evaluated every time.
        let tenant =
            Condition::compile(r#"claims["custom:tenant"] == request.path_params[0]"#, 1).unwrap();
        assert_eq!(tenant.evaluate(&c, &req("/t/acme", "acme")), Ok(true));
        assert_eq!(tenant.evaluate(&c, &req("/t/other", "other")), Ok(false));
        assert_eq!(c.remembered(tenant.id), None);
        // Errors are not remembered.
        let missing = Condition::compile(r#"claims.email.endsWith("@example.com")"#, 0).unwrap();
        assert!(missing.evaluate(&c, &req("/a", "x")).is_err());
        assert_eq!(c.remembered(missing.id), None);
        // At most REMEMBERED verdicts per token.
        let many: Vec<_> = (0..REMEMBERED + 2)
            .map(|i| Condition::compile(&format!(r#"claims.client_id != "n{i}""#), 0).unwrap())
            .collect();
        for m in &many {
            assert_eq!(m.evaluate(&c, &req("/a", "x")), Ok(true));
        }
        assert_eq!(c.verdicts().len(), REMEMBERED);
        assert_eq!(many.last().unwrap().evaluate(&c, &req("/a", "x")), Ok(true));
    }

    fn refused(source: &str, params: usize) -> Vec<CompileError> {
        match Condition::compile(source, params) {
            Ok(_) => panic!("{source} compiled"),
            Err(e) => e,
        }
    }

    #[test]
    fn tenant_matches_the_path_parameter() {
        let src = r#"claims["custom:tenant"] == request.path_params[0]"#;
        assert_eq!(
            eval(src, &["acme"], json!({"custom:tenant": "acme"})),
            Ok(true)
        );
        assert_eq!(
            eval(src, &["other"], json!({"custom:tenant": "acme"})),
            Ok(false)
        );
        // No such claim: an error, which refuses.
        assert!(eval(src, &["acme"], json!({})).is_err());
    }

    #[test]
    fn email_domain() {
        let src = r#"claims.email.endsWith("@example.com")"#;
        assert_eq!(eval(src, &[], json!({"email": "a@example.com"})), Ok(true));
        assert_eq!(eval(src, &[], json!({"email": "a@example.org"})), Ok(false));
        assert_eq!(
            eval(src, &[], json!({"email": "a@example.com.evil"})),
            Ok(false)
        );
        // Wrong type: an error naming the types, never the value.
        let e = eval(src, &[], json!({"email": 7})).unwrap_err();
        assert!(e.0.contains("endsWith") && e.0.contains("int"), "{e}");
        assert!(eval(src, &[], json!({})).is_err());
    }

    /// The third example: `||` absorbs the error of a missing `cognito:groups` when the
    /// other side is true, on either side; `&&` absorbs it when the other side is false.
    #[test]
    fn logical_operators_absorb_an_error_the_other_side_decides() {
        let src = r#""admins" in claims["cognito:groups"] || claims.client_id == "abc""#;
        assert_eq!(eval(src, &[], json!({"client_id": "abc"})), Ok(true));
        assert!(eval(src, &[], json!({"client_id": "xyz"})).is_err());
        assert_eq!(
            eval(
                src,
                &[],
                json!({"cognito:groups": ["admins"], "client_id": "x"})
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                src,
                &[],
                json!({"cognito:groups": ["users"], "client_id": "x"})
            ),
            Ok(false)
        );
        let flipped = r#"claims.client_id == "abc" || "admins" in claims["cognito:groups"]"#;
        assert_eq!(eval(flipped, &[], json!({"client_id": "abc"})), Ok(true));
        let and = r#"claims.missing == 1 && claims.client_id == "abc""#;
        assert_eq!(eval(and, &[], json!({"client_id": "xyz"})), Ok(false));
        assert!(eval(and, &[], json!({"client_id": "abc"})).is_err());
        let and = r#"claims.client_id == "abc" && claims.missing == 1"#;
        assert_eq!(eval(and, &[], json!({"client_id": "xyz"})), Ok(false));
    }

    #[test]
    fn request_fields_and_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-tenant", "acme".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "b".parse().unwrap());
        h.insert("x-auth-sub", "spoofed".parse().unwrap());
        let c = || json!({"sub": "s"});
        for (src, want) in [
            (r#"request.method == "GET""#, Ok(true)),
            (r#"request.path == "/tenants/acme/orders""#, Ok(true)),
            (r#"request.host == "api.example.com""#, Ok(true)),
            (r#"request.headers["x-tenant"] == "acme""#, Ok(true)),
            (r#"request.headers["x-multi"] == "a,b""#, Ok(true)),
            (r#""x-auth-sub" in request.headers"#, Ok(false)),
            (r#"has(request.headers.x) "#, Ok(false)),
            (r#"size(request.headers) == 2"#, Ok(true)),
            (r#"request["method"] == "GET""#, Ok(true)),
        ] {
            assert_eq!(eval_with(src, &[], c(), &h), want, "{src}");
        }
        assert!(eval_with(
            r#"request.headers["x-auth-sub"] == "spoofed""#,
            &[],
            c(),
            &h
        )
        .is_err());
    }

    #[test]
    fn non_bool_results_are_errors() {
        let e = eval("claims.sub", &[], json!({"sub": "s"})).unwrap_err();
        assert!(e.0.contains("not a bool"), "{e}");
        assert_eq!(eval("has(claims.sub)", &[], json!({"sub": "s"})), Ok(true));
        assert_eq!(eval("has(claims.sub)", &[], json!({})), Ok(false));
        assert_eq!(
            eval("claims.exp > 1000", &[], json!({"exp": 2000})),
            Ok(true)
        );
        assert_eq!(eval("claims.n == 1.5", &[], json!({"n": 1.5})), Ok(true));
        assert_eq!(
            eval("claims.o.p == true", &[], json!({"o": {"p": true}})),
            Ok(true)
        );
    }

    #[test]
    fn errors_at_load_name_the_column_and_the_problem() {
        let e = refused("claims.sub == ", 0);
        assert_eq!(e[0].line, 1);
        assert!(e[0].column >= 13, "{e:?}");
        let e = refused(r#"user.sub == "x""#, 0);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].column), (1, 1), "{e:?}");
        assert!(e[0].problem.contains("undeclared name \"user\""), "{e:?}");
        let e = refused(r#"claims.sub == "x" && reqest.method == "GET""#, 0);
        assert_eq!(e[0].column, 22, "{e:?}");
        let e = refused(r#"request.verb == "GET""#, 0);
        assert!(e[0].problem.contains("no field \"verb\""), "{e:?}");
        let e = refused(r#"request.path_params[0] == "a""#, 0);
        assert!(e[0].problem.contains("no `*` segments"), "{e:?}");
        let e = refused(r#"request.path_params[1] == "a""#, 1);
        assert!(e[0].problem.contains("1 `*` segment"), "{e:?}");
        let e = refused(r#"claims.email.matches(".*")"#, 0);
        assert!(
            e[0].problem.contains("unknown function \"matches\""),
            "{e:?}"
        );
        let e = refused(r#"claims.g.exists(g, g == "a")"#, 0);
        assert!(
            e[0].problem.contains("unknown function \"exists\""),
            "{e:?}"
        );
        let e = refused("has(claims)", 0);
        assert!(e[0].problem.contains("has()"), "{e:?}");
        let e = refused("x.y{a: 1}", 0);
        assert!(!e.is_empty());
        let e = refused("\n  nope", 0);
        assert_eq!((e[0].line, e[0].column), (2, 3), "{e:?}");
        let e = refused("", 0);
        assert!(e[0].problem.contains("empty"), "{e:?}");
    }

    #[test]
    fn bounds_are_refused_at_load() {
        let long = format!("claims.sub == \"{}\"", "a".repeat(MAX_SOURCE_BYTES));
        assert!(refused(&long, 0)[0].problem.contains("bytes"));
        let many = vec!["claims.a == 1"; 100].join(" || ");
        assert!(many.len() < MAX_SOURCE_BYTES);
        assert!(refused(&many, 0)[0].problem.contains("nodes"));
        let deep = format!("{}true{}", "!(".repeat(40), ")".repeat(40));
        assert!(refused(&deep, 0)
            .iter()
            .any(|e| e.problem.contains("nested")));
        // Just inside the bounds.
        let ok = vec!["claims.a == 1"; 20].join(" || ");
        assert!(Condition::compile(&ok, 0).is_ok());
    }

    #[test]
    fn every_listed_function_exists() {
        for (src, want) in [
            ("size(claims.s) == 3", true),
            (r#"claims.s.contains("b")"#, true),
            (r#"claims.s.startsWith("a")"#, true),
            (r#"claims.s.endsWith("c")"#, true),
            (r#"string(claims.n) == "7""#, true),
            (r#"int("7") == claims.n"#, true),
            ("uint(claims.n) == 7u", true),
            ("double(claims.n) == 7.0", true),
            (r#"bool("true")"#, true),
            ("type(claims.s) == string", true),
            ("dyn(claims.n) == 7", true),
        ] {
            assert_eq!(
                eval(src, &[], json!({"s": "abc", "n": 7})),
                Ok(want),
                "{src}"
            );
        }
    }
}
