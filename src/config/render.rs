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

use super::model::Config;

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
