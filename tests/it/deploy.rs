//! Checks on the deployment files shipped in `deploy/`.
//!
//! `deploy/ecs/task-definition.json` is parsed and held to what the sidecar
//! pattern needs (Fargate, awsvpc, the sidecar as the only way in, non-root,
//! read-only root, a health check that works without a shell). The schema
//! itself (unknown keys, types) is checked by `deploy/ecs/validate.py` and the
//! Kubernetes manifests by `kubernetes-validate`, both run from `test.sh`.
//!
//! `deploy/ingress/` (the sidecar as a decision service for ingress-nginx, Traefik and
//! Istio): its ConfigMap's `config.toml` must pass `check`, and `deploy/ingress/check.py`
//! (PyYAML; there is no YAML parser among this crate's dependencies) holds the manifests,
//! CRD objects included, to the effective config this binary's `check` prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SIDECAR: &str = "cognito-sidecar";
const APP: &str = "app";

/// Top-level config sections (CONTRACT.md) an env override may start with,
/// plus `CONFIG` (`SIDECAR_CONFIG`, the config file path).
const SECTIONS: &[&str] = &[
    "CONFIG", "LISTENER", "RUNTIME", "ADMIN", "UPSTREAM", "ISSUERS", "DEFAULT", "ROUTES", "TOKEN",
    "FORWARD", "LOG",
];

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn task_definition() -> Value {
    let path = repo_path("deploy/ecs/task-definition.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn containers(td: &Value) -> &Vec<Value> {
    td["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions is an array")
}

fn container<'a>(td: &'a Value, name: &str) -> &'a Value {
    containers(td)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container named {name:?}"))
}

/// `(name, value)` pairs of a container's `environment`.
fn env(c: &Value) -> Vec<(&str, &str)> {
    c["environment"]
        .as_array()
        .map(|vars| {
            vars.iter()
                .map(|v| {
                    (
                        v["name"].as_str().expect("env name is a string"),
                        v["value"].as_str().expect("env value is a string"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `SIDECAR_` + upper-case segments joined by `__`; a segment may hold single
/// underscores (`USER_POOL_ID`) and digits (array indices), never start or end
/// with one, and the first names a config section.
fn sidecar_env_name_problem(name: &str) -> Option<String> {
    let rest = name.strip_prefix("SIDECAR_")?;
    if rest.is_empty() {
        return Some("nothing after SIDECAR_".into());
    }
    for segment in rest.split("__") {
        if segment.is_empty() || segment.starts_with('_') || segment.ends_with('_') {
            return Some(format!(
                "empty or badly joined segment {segment:?} (use `__` between levels)"
            ));
        }
        if !segment
            .chars()
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Some(format!("segment {segment:?} is not upper-case ASCII"));
        }
    }
    let section = rest.split("__").next().unwrap_or_default();
    if !SECTIONS.contains(&section) {
        return Some(format!("unknown section {section:?}"));
    }
    None
}

#[test]
fn env_name_rule_accepts_and_rejects() {
    for good in [
        "SIDECAR_UPSTREAM__URL",
        "SIDECAR_ISSUERS__0__USER_POOL_ID",
        "SIDECAR_ADMIN__ADDRESS",
        "SIDECAR_CONFIG",
        "RUST_LOG",
    ] {
        assert_eq!(sidecar_env_name_problem(good), None, "{good}");
    }
    for bad in [
        "SIDECAR_",
        "SIDECAR_upstream__url",
        "SIDECAR_UPSTREAM_URL",
        "SIDECAR_UPSTREAM___URL",
        "SIDECAR_ISSUERS__0__",
        "SIDECAR_UPSTREAM.URL",
        "SIDECAR_UPSTREAMS__URL",
    ] {
        assert!(
            sidecar_env_name_problem(bad).is_some(),
            "{bad} should be rejected"
        );
    }
}

#[test]
fn ecs_task_is_fargate_awsvpc() {
    let td = task_definition();
    assert!(
        td["family"].as_str().is_some_and(|f| !f.is_empty()),
        "family is set"
    );
    assert_eq!(td["networkMode"], "awsvpc");
    assert!(
        td["requiresCompatibilities"]
            .as_array()
            .is_some_and(|v| v.iter().any(|c| c == "FARGATE")),
        "requiresCompatibilities includes FARGATE"
    );
    // Task-level sizes are strings in the API, and must be a Fargate pair.
    assert_eq!(td["cpu"], "256");
    assert_eq!(td["memory"], "512");
    let names: Vec<&str> = containers(&td)
        .iter()
        .map(|c| c["name"].as_str().expect("container name"))
        .collect();
    assert_eq!(names.len(), 2, "sidecar and app: {names:?}");
    assert!(
        names.contains(&SIDECAR) && names.contains(&APP),
        "{names:?}"
    );
}

#[test]
fn ecs_sidecar_container() {
    let td = task_definition();
    let c = container(&td, SIDECAR);
    assert_eq!(c["essential"], true);

    let ports = c["portMappings"]
        .as_array()
        .expect("sidecar has portMappings");
    assert_eq!(ports.len(), 1, "only the listener is mapped: {ports:?}");
    assert_eq!(ports[0]["containerPort"], 8080);
    // awsvpc: hostPort, when given, must equal containerPort.
    if let Some(host) = ports[0].get("hostPort") {
        assert_eq!(host, 8080);
    }

    let env = env(c);
    let upstream = env
        .iter()
        .find(|(n, _)| *n == "SIDECAR_UPSTREAM__URL")
        .map(|(_, v)| *v)
        .expect("SIDECAR_UPSTREAM__URL is set");
    assert!(
        upstream.starts_with("http://127.0.0.1:"),
        "upstream is the app on loopback in the same task: {upstream}"
    );
    assert!(
        env.iter()
            .any(|(n, _)| *n == "SIDECAR_ISSUERS__0__USER_POOL_ID"),
        "an issuer is configured"
    );

    let user = c["user"].as_str().expect("user is set");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "runs as a numeric non-root uid, got {user:?}"
    );
    assert_eq!(c["readonlyRootFilesystem"], true);

    // distroless has no shell: CMD (exec form) with the binary, not CMD-SHELL.
    let check: Vec<&str> = c["healthCheck"]["command"]
        .as_array()
        .expect("healthCheck.command")
        .iter()
        .map(|s| s.as_str().expect("healthCheck argument is a string"))
        .collect();
    assert_eq!(check.first(), Some(&"CMD"), "{check:?}");
    assert_eq!(
        check.get(1),
        Some(&"/usr/local/bin/cognito-sidecar"),
        "{check:?}"
    );

    // Fargate allows stopTimeout up to 120 s; the drain needs ~30 s.
    let stop = c["stopTimeout"].as_u64().expect("stopTimeout is set");
    assert!((30..=120).contains(&stop), "stopTimeout {stop}");

    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
}

#[test]
fn ecs_app_is_reachable_only_through_the_sidecar() {
    let td = task_definition();
    let app = container(&td, APP);
    assert_eq!(app["essential"], true);
    // In awsvpc mode every mapped port is open on the task's ENI (subject to
    // its security group) and can be registered with a load balancer.
    assert!(
        app.get("portMappings")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty),
        "the app container maps no port: {:?}",
        app["portMappings"]
    );
    // The sidecar starts after the app and, because dependencies reverse on
    // shutdown, stops (drains) before it.
    let deps = container(&td, SIDECAR)["dependsOn"]
        .as_array()
        .expect("sidecar dependsOn the app");
    assert!(
        deps.iter().any(|d| d["containerName"] == APP
            && matches!(d["condition"].as_str(), Some("START" | "HEALTHY"))),
        "{deps:?}"
    );
}

#[test]
fn ecs_env_names_follow_the_override_scheme() {
    let td = task_definition();
    for c in containers(&td) {
        let env = env(c);
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &env {
            assert!(seen.insert(*name), "{}: {name} set twice", c["name"]);
            if let Some(problem) = sidecar_env_name_problem(name) {
                panic!("{}: {name}: {problem}", c["name"]);
            }
        }
    }
}

/// The `config.toml` embedded in the Kubernetes ConfigMap: the block under
/// `config.toml: |`, de-indented.
fn configmap_config_toml() -> String {
    config_toml_block("deploy/kubernetes/configmap.yaml")
}

/// The first `config.toml: |` block of a YAML file, de-indented; it ends at the first
/// line indented no deeper than its key (another key, or `---`).
fn config_toml_block(rel: &str) -> String {
    let path = repo_path(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines().skip_while(|l| l.trim() != "config.toml: |");
    let key = lines
        .next()
        .expect("configmap has a `config.toml: |` block");
    let key_indent = key.len() - key.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("config.toml block is not empty");
    body.iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `cognito-sidecar check` on `toml`: its stdout, or a panic with its output.
fn check_config(name: &str, toml: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "cognito-sidecar-deploy-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, toml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_cognito-sidecar"))
        .arg("check")
        .arg("--config")
        .arg(&file)
        .env_remove("SIDECAR_CONFIG")
        .output()
        .expect("run cognito-sidecar check");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "check failed on {name}'s config.toml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("check prints UTF-8")
}

#[test]
fn kubernetes_configmap_config_passes_check() {
    check_config("kubernetes", &configmap_config_toml());
}

#[test]
fn ingress_authz_config_passes_check() {
    let toml = config_toml_block("deploy/ingress/authz.yaml");
    assert!(toml.starts_with("[listener]\n"), "{toml}");
    assert!(!toml.contains("apiVersion"), "{toml}");
    let out = check_config("ingress", &toml);
    // The effective config: the decision listener on the Service's port, trusting a pod
    // network, and decision-only (no upstream, so no proxy listener).
    let authz = out
        .split("\n[authz]\n")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .unwrap_or_else(|| panic!("no [authz] table in check's output:\n{out}"));
    assert!(authz.contains("address = \"0.0.0.0:8181\""), "{authz}");
    assert!(
        authz.contains("trusted_proxies = [\"10.0.0.0/8\"]"),
        "{authz}"
    );
    assert!(
        out.contains("[upstream]\nurl = \"\"\n"),
        "decision-only (no upstream url):\n{out}"
    );
}

/// `deploy/ingress/check.py` against this binary's `check`, then its self-test (each
/// breakage of the manifests must be reported). Needs python3 >= 3.11 with PyYAML, which
/// `test.sh` installs (kubernetes-validate depends on it).
#[test]
fn ingress_manifests_agree_with_the_sidecar() {
    let out = Command::new("python3")
        .arg(repo_path("deploy/ingress/check.py"))
        .arg("--sidecar")
        .arg(env!("CARGO_BIN_EXE_cognito-sidecar"))
        .arg("--self-test")
        .env_remove("SIDECAR_CONFIG")
        .output()
        .expect("run python3 deploy/ingress/check.py (python3 with PyYAML is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "deploy/ingress/check.py failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("with `cognito-sidecar check`"), "{stdout}");
    assert!(
        !stdout.contains("skipped"),
        "every self-test case runs with the binary:\n{stdout}"
    );
}

#[test]
fn kubernetes_configmap_block_is_extracted() {
    let toml = configmap_config_toml();
    assert!(toml.starts_with("[listener]\n"), "{toml}");
    assert!(
        toml.contains("\n[[routes]]\npath = \"/weatherforecast\""),
        "{toml}"
    );
    assert!(!toml.contains("apiVersion"), "{toml}");
}
