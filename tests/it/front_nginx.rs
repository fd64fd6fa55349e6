//! A real nginx (Debian's, installed by `./test.sh`) in front of a test upstream, asking the
//! decision listener with `auth_request`, configured as the README's snippet says: the client
//! meets nginx only; the upstream sees only what the sidecar allowed, as whom it said.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::front::{front_proxy_holds, ROUTES};
use crate::support::*;

const NGINX: &str = "/usr/sbin/nginx";

/// The address nginx makes its decision requests from: the sidecar trusts only it, so a
/// client on 127.0.0.1 cannot speak for an original request.
const NGINX_AUTHZ_SOURCE: &str = "127.0.0.2";

struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README's nginx snippet, with the test's addresses.
/// `authz`: nginx's `server` for the decision listener (`127.0.0.1:PORT` or `unix:PATH`).
fn nginx_conf(dir: &std::path::Path, port: u16, authz: &str, upstream: &str) -> String {
    let upstream = upstream.trim_start_matches("http://");
    // Over TCP, nginx's check requests come from their own address (trusted_proxies).
    let bind = if authz.starts_with("unix:") {
        String::new()
    } else {
        format!("proxy_bind {NGINX_AUTHZ_SOURCE};")
    };
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream sidecar_authz {{
    server {authz};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};

    location / {{
      auth_request /_sidecar_authz;
      # The identity the sidecar verified, from its answer ...
      auth_request_set $auth_sub $upstream_http_x_auth_sub;
      auth_request_set $auth_client_id $upstream_http_x_auth_client_id;
      auth_request_set $auth_scope $upstream_http_x_auth_scope;
      auth_request_set $auth_groups $upstream_http_x_auth_groups;
      auth_request_set $auth_username $upstream_http_x_auth_username;
      auth_request_set $auth_claims $upstream_http_x_auth_claims;
      # ... replaces whatever the client sent (an empty value removes the header).
      proxy_set_header X-Auth-Sub $auth_sub;
      proxy_set_header X-Auth-Client-Id $auth_client_id;
      proxy_set_header X-Auth-Scope $auth_scope;
      proxy_set_header X-Auth-Groups $auth_groups;
      proxy_set_header X-Auth-Username $auth_username;
      proxy_set_header X-Auth-Claims $auth_claims;
      # nginx would pass a client's underscore spellings on only with underscores_in_headers.
      error_page 500 = @sidecar_unavailable;
      proxy_pass http://{upstream};
    }}

    location @sidecar_unavailable {{
      add_header Retry-After 5 always;
      return 503;
    }}

    location = /_sidecar_authz {{
      internal;
      proxy_pass http://sidecar_authz;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      {bind}
      proxy_pass_request_body off;
      # Only what the decision needs: the original request's line and host, and the
      # headers the [token] sources read (one line each).
      proxy_pass_request_headers off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header Authorization $http_authorization;
      proxy_set_header Cookie $http_cookie;
      proxy_set_header X-Request-Id $http_x_request_id;
    }}
  }}
}}
"#
    )
}

async fn start_nginx(authz: &str, upstream: &str) -> Nginx {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "{NGINX} not found: ./test.sh installs Debian's nginx (apt-get install nginx)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nginx.conf");
    std::fs::File::create(&conf)
        .unwrap()
        .write_all(nginx_conf(dir.path(), port, authz, upstream).as_bytes())
        .unwrap();
    let out = Command::new(NGINX)
        .args(["-t", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -t refuses the README's snippet:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually(Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    Nginx {
        child,
        addr,
        _dir: dir,
    }
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_the_upstream() {
    let env = Env::start(&format!(
        "{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\nprotocol = \"nginx\"\ntrusted_proxies = [\"{NGINX_AUTHZ_SOURCE}/32\"]\n"
    ))
    .await;
    let authz = env.sidecar.authz_addr().unwrap();
    let nginx = start_nginx(&authz.to_string(), &env.upstream.url()).await;
    front_proxy_holds(nginx.addr, &env, false).await;

    // A forged original request straight at the decision listener, from outside
    // trusted_proxies: 403 untrusted_proxy.
    let r = request(
        authz,
        "GET",
        "/",
        &[("x-original-method", "GET"), ("x-original-uri", "/health")],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error_description"], "untrusted_proxy");
}

#[tokio::test]
async fn keys_unavailable_behind_nginx_is_503_with_retry_after() {
    // The JWKS never answers, so protected routes are 503 at the decision listener, which
    // nginx's auth_request turns into 500; the snippet's error_page makes it 503 again.
    let upstream = Upstream::start().await;
    let closed = format!(
        "http://127.0.0.1:{}/jwks.json",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let text = config_text(
        &upstream.url(),
        &closed,
        &format!(
            "{ROUTES}\n[authz]\naddress = \"127.0.0.1:0\"\ntrusted_proxies = [\"{NGINX_AUTHZ_SOURCE}/32\"]\n"
        ),
    );
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let nginx = start_nginx(&sidecar.authz_addr().unwrap().to_string(), &upstream.url()).await;
    let t = sign(&access_claims("dotnet-demo/dotnet"));
    let r = request(
        nginx.addr,
        "GET",
        "/api/items",
        &[("authorization", &format!("Bearer {t}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn nginx_auth_request_over_a_unix_socket() {
    // The socket lives in a directory of its own; its mode, not trusted_proxies (which
    // names no one here), says who may ask.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("authz.sock");
    let env = Env::start(&format!(
        "{ROUTES}\n[authz]\naddress = \"unix:{}\"\nprotocol = \"nginx\"\ntrusted_proxies = [\"192.0.2.1/32\"]\nsocket_mode = \"0660\"\n",
        sock.display()
    ))
    .await;
    assert_eq!(env.sidecar.authz_socket(), Some(sock.as_path()));
    assert_eq!(env.sidecar.authz_addr(), None);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let nginx = start_nginx(&format!("unix:{}", sock.display()), &env.upstream.url()).await;
    front_proxy_holds(nginx.addr, &env, false).await;
}

/// A config's directives, one per line: comments dropped, whitespace collapsed.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_snippet_is_the_one_tested() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let snippet = readme
        .split("```nginx\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("README has an nginx snippet");
    let dir = tempfile::tempdir().unwrap();
    let tested = directives(&nginx_conf(
        dir.path(),
        8080,
        "127.0.0.1:8181",
        "http://127.0.0.1:5000",
    ));
    let mut checked = 0;
    for line in directives(snippet) {
        // Where the README has placeholders (the sidecar's and the app's addresses) and
        // the block structure, the test has its own.
        if line.starts_with("server ") || line == "proxy_pass http://app;" || line == "}" {
            continue;
        }
        assert!(
            tested.contains(&line),
            "the README's nginx snippet has `{line}`, which tests/it/front_nginx.rs does not run"
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} lines compared");
}
