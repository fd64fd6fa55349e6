//! The `SIDECAR_` environment overlay: `SIDECAR_A__B__0__C=value` set onto the file's tree
//! before it is deserialised.
//!
//! The schema decides the type: a scalar value is always set as the string typed, and the
//! loader extracts with figment's lossy interpreter, which reads a string as a number or a
//! boolean only where the field is one. So `SIDECAR_LISTENER__MAX_CONNECTIONS=5` is a number
//! and a client id of digits stays a string. Arrays and tables (`["123"]`) are parsed.
//!
//! Every key lives in a section, so a variable without `__` (`SIDECAR_URL`, which the demo's
//! walkthrough exports, or `SIDECAR_CONFIG`) names no key and is left alone.

use figment::value::{Dict, Value};

use super::problems::Problem;

/// Environment variables with this prefix override file keys (`__` separates levels).
pub const ENV_PREFIX: &str = "SIDECAR_";
/// The variable naming the config file when `--config` is absent.
pub const ENV_CONFIG_FILE: &str = "SIDECAR_CONFIG";

/// Where each override went: (key path, variable name), for naming it in messages.
pub(super) type EnvKeys = Vec<(Vec<String>, String)>;

/// Applies `SIDECAR_A__B__0__C=value` overrides onto the file's tree. Numeric levels index
/// into arrays (`issuers__0`), extending an array by one when the index is its length.
pub(super) fn apply_env(dict: &mut Dict, env: &[(String, String)]) -> Result<EnvKeys, Problem> {
    let mut env_keys = Vec::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| {
            k.len() > ENV_PREFIX.len()
                && k[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
                && !k.eq_ignore_ascii_case(ENV_CONFIG_FILE)
                // Only `SECTION__KEY...` can name a key.
                && k[ENV_PREFIX.len()..].contains("__")
        })
        .collect();
    // Apply in a stable order so `__0__` comes before `__1__`.
    vars.sort();
    for (name, value) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|s| s.is_empty()) {
            return Err(Problem {
                key: format!("env {name}"),
                reason: "empty key level (use `__` between levels)".into(),
            });
        }
        set_path(dict, &path, env_value(value)).map_err(|reason| Problem {
            key: format!("env {name}"),
            reason,
        })?;
        env_keys.push((path, name.clone()));
    }
    Ok(env_keys)
}

/// A variable's value as a figment value: arrays, tables and quoted strings as written,
/// every other scalar as the string typed (the lossy extraction reads it by the schema).
fn env_value(value: &str) -> Value {
    match value.parse::<Value>() {
        Ok(v @ (Value::Array(..) | Value::Dict(..) | Value::String(..))) => v,
        _ => Value::from(value.to_string()),
    }
}

fn set_path(dict: &mut Dict, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("non-empty env path");
    if rest.is_empty() {
        dict.insert(first.clone(), value);
        return Ok(());
    }
    let child = dict
        .entry(first.clone())
        .or_insert_with(|| empty_container(&rest[0]));
    set_in_value(child, rest, value)
}

fn empty_container(next_key: &str) -> Value {
    if next_key.parse::<usize>().is_ok() {
        Value::from(Vec::<Value>::new())
    } else {
        Value::from(Dict::new())
    }
}

fn set_in_value(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("non-empty env path");
    match node {
        Value::Dict(_, d) => {
            if rest.is_empty() {
                d.insert(first.clone(), value);
                Ok(())
            } else {
                let child = d
                    .entry(first.clone())
                    .or_insert_with(|| empty_container(&rest[0]));
                set_in_value(child, rest, value)
            }
        }
        Value::Array(_, a) => {
            let idx: usize = first
                .parse()
                .map_err(|_| format!("{first:?} is not an array index"))?;
            if idx > a.len() {
                return Err(format!(
                    "array index {idx} skips entries (the array has {} entries)",
                    a.len()
                ));
            }
            if idx == a.len() {
                a.push(if rest.is_empty() {
                    Value::from(Dict::new())
                } else {
                    empty_container(&rest[0])
                });
            }
            if rest.is_empty() {
                a[idx] = value;
                Ok(())
            } else {
                set_in_value(&mut a[idx], rest, value)
            }
        }
        _ => Err(format!("cannot set {first:?} inside a plain value")),
    }
}
