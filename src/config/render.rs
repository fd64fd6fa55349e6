//! The effective configuration as TOML, for `check`: the validated [`Config`] serialised
//! (see `model`) and rendered in the schema's key order. An unset optional key is printed as
//! a comment (`# jwks_ca_file = (not set)`), so every key of the schema appears.
//!
//! The route table view (`describe::route_table`) is left to `crate::describe`.
//!
//! serde_json writes struct fields in declaration order, but its `Value` map sorts keys
//! (without the `preserve_order` feature, which would also change every JSON map on the
//! request path), so the JSON text is read back into [`Node`], which keeps the order.

use std::fmt::Write;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::root::Config;

/// The effective configuration (defaults filled in, derived values shown) as TOML.
pub fn effective(c: &Config) -> String {
    let json = serde_json::to_string(c).expect("the config serialises");
    let tree: Node = serde_json::from_str(&json).expect("serde_json reads its own output");
    let mut o = String::new();
    let Node::Map(sections) = tree else {
        unreachable!("Config serialises as a map")
    };
    for (name, value) in &sections {
        match value {
            Node::Map(entries) => table(&mut o, name, entries, false),
            Node::Seq(items) if items.is_empty() => {
                let _ = writeln!(o, "\n# [[{name}]] (none)");
            }
            Node::Seq(items) => {
                for item in items {
                    if let Node::Map(entries) = item {
                        table(&mut o, name, entries, true);
                    }
                }
            }
            other => {
                let _ = writeln!(o, "{} = {}", key(name), inline(other));
            }
        }
    }
    o.trim_start().to_string()
}

/// `[path]` (or `[[path]]`), its plain keys, then its sub-tables.
fn table(o: &mut String, path: &str, entries: &[(String, Node)], array: bool) {
    let (open, close) = if array { ("[[", "]]") } else { ("[", "]") };
    let _ = writeln!(o, "\n{open}{path}{close}");
    for (k, v) in entries {
        match v {
            Node::Map(_) => {}
            Node::Null => {
                let _ = writeln!(o, "# {} = (not set)", key(k));
            }
            v => {
                let _ = writeln!(o, "{} = {}", key(k), inline(v));
            }
        }
    }
    for (k, v) in entries {
        if let Node::Map(sub) = v {
            table(o, &format!("{path}.{}", key(k)), sub, false);
        }
    }
}

/// A TOML key: bare when it can be, else a basic string.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A JSON string is a valid TOML basic string (the same escapes).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn inline(v: &Node) -> String {
    match v {
        Node::Null => "\"\"".into(),
        Node::Bool(b) => b.to_string(),
        Node::Num(n) => n.clone(),
        Node::Str(s) => quote(s),
        Node::Seq(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Node::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

/// A serialised value with its map keys in serialisation order.
enum Node {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Num(n.to_string()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
        Ok(Node::Num(n.to_string()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
        Ok(Node::Num(n.to_string()))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::raw::{RawConfig, RawIssuer, RawRoute, RawTls};
    use super::super::types::IssuerKind;
    use super::*;

    /// Every key path of the schema (`issuers[].jwks_timeout`, `listener.tls.cert`), from a
    /// [`RawConfig`] with one issuer, one route, and every optional table present.
    fn schema_keys() -> Vec<String> {
        let mut raw = RawConfig::default();
        raw.listener.tls = Some(RawTls {
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        });
        raw.issuers.push(RawIssuer::default());
        raw.routes.push(RawRoute {
            path: "/".into(),
            methods: Some(vec!["GET".into()]),
            auth: "required".into(),
            scopes: vec![],
            scopes_any: vec![],
            groups_any: vec![],
            token_use: Some("access".into()),
            client_ids: Some(vec!["c".into()]),
            when: Some("claims.sub == \"x\"".into()),
            rate_limit: Some(super::super::raw::RawRateLimit {
                key: "sub".into(),
                requests: 10,
                per: "1m".into(),
                burst: Some(5),
                max_keys: Some(100),
            }),
        });
        // A map whose keys are data (header names), not schema.
        raw.forward.headers.clear();
        let mut out = Vec::new();
        collect("", &serde_json::to_value(&raw).unwrap(), &mut out);
        out
    }

    fn collect(path: &str, v: &Value, out: &mut Vec<String>) {
        let join = |k: &str| match path {
            "" => k.to_string(),
            p => format!("{p}.{k}"),
        };
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    collect(&join(k), v, out);
                }
            }
            Value::Array(items) if items.first().is_some_and(Value::is_object) => {
                collect(&format!("{path}[]"), &items[0], out)
            }
            _ => out.push(path.to_string()),
        }
    }

    /// The key paths `effective` printed: set ones, and unset ones (`# key = (not set)`).
    fn printed_keys(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut set, mut unset) = (BTreeSet::new(), BTreeSet::new());
        let mut section = String::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                section = format!("{name}[]");
                set.insert(name.to_string());
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                // A sub-table of the last `[[array]]` entry (`[routes.rate_limit]`).
                section = match section.strip_suffix("[]").and_then(|a| {
                    name.strip_prefix(a)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .map(|rest| format!("{a}[].{rest}"))
                }) {
                    Some(sub) => sub,
                    None => name.to_string(),
                };
                set.insert(section.clone());
            } else if let Some((k, _)) = line.split_once(" = ") {
                let (k, target) = match k.strip_prefix("# ") {
                    Some(k) => (k, &mut unset),
                    None => (k, &mut set),
                };
                target.insert(format!("{section}.{k}"));
            }
        }
        (set, unset)
    }

    fn assert_every_schema_key_printed(c: &Config) {
        let text = effective(c);
        let (set, unset) = printed_keys(&text);
        let keys = schema_keys();
        assert!(keys.len() > 40, "{keys:?}");
        // The keys of an issuer kind the config has no issuer of are not printed.
        let absent: Vec<String> = super::super::issuers::kind_keys(&RawIssuer::default())
            .into_iter()
            .filter(|(_, kind, _)| match kind {
                IssuerKind::Jwks => c.issuers.is_empty(),
                IssuerKind::Alb => c.alb_issuers.is_empty(),
            })
            .map(|(k, _, _)| format!("issuers[].{k}"))
            .collect();
        for key in keys.into_iter().filter(|k| !absent.contains(k)) {
            let mut prefix = String::new();
            let covered_by_unset = key.split('.').any(|part| {
                prefix = if prefix.is_empty() {
                    part.to_string()
                } else {
                    format!("{prefix}.{part}")
                };
                unset.contains(&prefix)
            });
            assert!(
                set.contains(&key) || covered_by_unset,
                "schema key {key} is not printed:\n{text}"
            );
        }
    }

    fn load(text: &str) -> Config {
        Config::from_toml_str("t.toml", text, &[]).unwrap()
    }

    #[test]
    fn every_schema_key_is_printed_when_set() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let dir = tempfile::tempdir().unwrap();
        let revoked = dir.path().join("revoked.txt");
        std::fs::write(&revoked, "jti:abc\n").unwrap();
        let revoked = revoked.display();
        let keys = dir.path().join("cookie_keys.txt");
        std::fs::write(&keys, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
        let keys = keys.display();
        let c = load(&format!(
            r#"
[listener]
tls = {{ cert = "{file}", key = "{file}" }}
[upstream]
url = "https://127.0.0.1:5000"
ca_file = "{file}"
[[issuers]]
user_pool_id = "ap-south-1_p7GD1CkXO"
jwks_url = "https://keys.example.com/jwks.json"
jwks_ca_file = "{file}"
revoked_file = "{revoked}"
token_use = ["access", "id"]
[[routes]]
path = "/a"
methods = ["GET"]
token_use = "access"
client_ids = ["c"]
when = 'claims.sub == "x"'
rate_limit = {{ key = "sub", requests = 10, per = "1m", burst = 5, max_keys = 100 }}
[token]
cookie = "access_token"
query = "access_token"
header = "x-amzn-oidc-accesstoken"
[authz]
address = "127.0.0.1:8181"
[login]
domain = "https://p.auth.ap-south-1.amazoncognito.com"
client_id = "c"
client_secret = "s"
external_url = "https://app.example.com"
cookie_keys_file = "{keys}"
"#
        ));
        assert_every_schema_key_printed(&c);
        let text = effective(&c);
        assert!(!text.contains("(not set)"), "{text}");
        assert!(text.contains("jwks_timeout = \"5s\""), "{text}");
    }

    const ALB_ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";

    #[test]
    fn every_alb_key_is_printed_in_file_order() {
        let c = load(&format!(
            r#"
[upstream]
url = "http://127.0.0.1:5000"
[[issuers]]
name = "alb"
kind = "alb"
region = "eu-west-1"
signer_arns = ["{ALB_ARN}"]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
client_ids = ["app"]
[[issuers]]
name = "pool"
issuer = "https://login.example.com"
token_use = ["any"]
[[routes]]
path = "/a"
methods = ["GET"]
client_ids = ["app"]
"#
        ));
        assert_every_schema_key_printed(&c);
        let text = effective(&c);
        let alb = text.find("name = \"alb\"").expect("alb issuer printed");
        let pool = text.find("name = \"pool\"").expect("pool issuer printed");
        assert!(alb < pool, "{text}");
        for line in [
            "kind = \"alb\"",
            "kind = \"jwks\"",
            "keys_url = \"https://public-keys.auth.elb.eu-west-1.amazonaws.com\"",
            "keys_min_refetch = \"10s\"",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // The ALB issuer prints none of the JWKS keys.
        let alb_part = &text[alb..pool];
        assert!(!alb_part.contains("jwks_url"), "{alb_part}");
        let again = Config::from_toml_str("printed", &text, &[]);
        let again = again.unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(effective(&again), text);
    }

    #[test]
    fn unset_keys_are_printed_as_comments() {
        let c = load(
            "[upstream]\nurl = \"http://127.0.0.1:5000\"\n[[issuers]]\nissuer = \"https://login.example.com\"\ntoken_use = [\"any\"]\n[[routes]]\npath = \"/a\"\n",
        );
        assert_every_schema_key_printed(&c);
        let text = effective(&c);
        for line in [
            "# tls = (not set)",
            "# user_pool_id = (not set)",
            "# jwks_ca_file = (not set)",
            "token_use = [\"any\"]",
            "# cookie = (not set)",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_printed_config_loads_back_to_the_same_config() {
        let c = load(include_str!("../../config.toml"));
        let text = effective(&c);
        // `issuer` is shown as derived from user_pool_id; a file sets one of them.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("issuer = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let again = Config::from_toml_str("printed", &text, &[]).unwrap();
        assert_eq!(effective(&again), effective(&c));
    }
}
