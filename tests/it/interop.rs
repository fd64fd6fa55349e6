//! Interoperability with a real Cognito emulator. Our own test issuer only proves that we
//! agree with ourselves; here the tokens come from moto's Cognito (`moto_server`, a child
//! process on a free loopback port), provisioned over its AWS API by
//! `tests/interop/moto_fixture.py` and issued by a real `InitiateAuth` (`USER_PASSWORD_AUTH`).
//! The sidecar runs in-process with `user_pool_id` plus `jwks_url` (moto serves the JWKS on
//! its own address while `iss` names `cognito-idp.<region>.amazonaws.com`).
//!
//! moto must be installed (`./test.sh` installs the pinned `moto[server]` and boto3): without
//! it these tests fail with a message saying so. They never skip.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cognito_sidecar::verify::decode_unverified;
use cognito_sidecar::Sidecar;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/moto_fixture.py");
const PYTHON: &str = "python3";
const REGION: &str = "eu-west-1";
const INSTALL: &str = "moto is needed: ./test.sh installs it, or \
     `python3 -m pip install 'moto[server]==5.2.1' 'boto3==1.43.11'`";
/// The only scope a password-flow access token carries.
const USER_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

// === moto ===

/// A `moto_server` child process on 127.0.0.1; killed on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `moto_server` from PATH, else `python3 -m moto.server`.
fn moto_command() -> Command {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("moto_server"))
            .find(|f| f.is_file())
    });
    match on_path {
        Some(exe) => Command::new(exe),
        None => {
            let mut c = Command::new(PYTHON);
            c.args(["-m", "moto.server"]);
            c
        }
    }
}

impl Moto {
    /// Starts moto and waits (polling, bounded) until it answers HTTP.
    async fn start() -> Moto {
        // The free port may be taken between probing and binding: try a few.
        let mut failures = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let out: File = log.as_file().try_clone().unwrap();
            let err: File = log.as_file().try_clone().unwrap();
            let mut cmd = moto_command();
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto ({cmd:?}): {e}\n{INSTALL}"));
            let mut moto = Moto {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
            };
            match moto.wait_listening(Duration::from_secs(60)).await {
                Ok(()) => return moto,
                Err(why) if why.contains("Address already in use") => failures.push_str(&why),
                Err(why) => panic!("moto did not start ({cmd:?}): {why}\n{INSTALL}"),
            }
        }
        panic!("moto did not start: no free port after 3 tries:\n{failures}");
    }

    async fn wait_listening(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "exited ({status}) before listening:\n{}",
                    self.log()
                ));
            }
            if let Ok(r) = try_request(self.addr, "GET", "/moto-api/", &[], "").await {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not answering after {limit:?}:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Runs the fixture against this moto and parses what it printed.
    async fn provision(&self) -> Fixture {
        let run = tokio::process::Command::new(PYTHON)
            .arg(FIXTURE)
            .args(["--endpoint", &self.endpoint(), "--region", REGION])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_SESSION_TOKEN", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("moto_fixture.py did not finish within 120s")
            .unwrap_or_else(|e| panic!("cannot run {PYTHON} {FIXTURE}: {e}"));
        assert!(
            out.status.success(),
            "moto_fixture.py failed ({}):\n{}\n--- moto log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "moto_fixture.py printed no fixture JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The JWKS moto serves for `pool`.
    async fn jwks(&self, pool: &str) -> Value {
        let r = get(self.addr, &format!("/{pool}/.well-known/jwks.json")).await;
        assert_eq!(r.status, 200, "moto JWKS for {pool}: {r:?}");
        r.json()
    }
}

// === What the fixture prints ===
// It prints more than these tests read (pool B's JWKS URL, every password): hence the allows.

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Fixture {
    moto_version: String,
    endpoint: String,
    region: String,
    pool_a: PoolA,
    pool_b: PoolB,
    users: Users,
    tokens: Tokens,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct PoolA {
    id: String,
    issuer: String,
    jwks_url: String,
    client_a1: String,
    client_a2: String,
    client_a2_secret: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct PoolB {
    id: String,
    issuer: String,
    jwks_url: String,
    client: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct User {
    username: String,
    password: String,
    sub: String,
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Users {
    alice: User,
    bob: User,
    pool_b_alice: User,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Tokens {
    alice_access: String,
    alice_id: String,
    bob_access: String,
    pool_b_access: String,
    alice_access_a2: String,
}

/// Starts moto and provisions it; the fixture is checked for self-consistency.
async fn moto_with_fixture() -> (Moto, Fixture) {
    let moto = Moto::start().await;
    let fx = moto.provision().await;
    assert_eq!(fx.endpoint, moto.endpoint());
    assert_eq!(fx.region, REGION);
    assert_ne!(fx.pool_a.id, fx.pool_b.id);
    assert_ne!(fx.pool_a.issuer, fx.pool_b.issuer);
    assert_eq!(fx.users.alice.groups, ["readers"]);
    assert!(fx.users.bob.groups.is_empty());
    assert_eq!(fx.users.pool_b_alice.username, fx.users.alice.username);
    assert!(!fx.pool_a.client_a2_secret.is_empty());
    (moto, fx)
}

fn claims(token: &str) -> Value {
    decode_unverified(token)
        .unwrap_or_else(|e| panic!("not a JWT ({e}): {token}"))
        .1
}

// === The sidecar in front of an upstream ===

struct Proxy {
    upstream: Upstream,
    sidecar: Sidecar,
}

impl Proxy {
    /// The sidecar trusting pool A only (`client_ids = [A1]`), JWKS from moto, with `issuer`
    /// lines added to the issuer and `routes` appended.
    async fn start(fx: &Fixture, issuer: &str, routes: &str) -> Proxy {
        let upstream = Upstream::start().await;
        let text = format!(
            r#"
[listener]
address = "127.0.0.1:0"
header_read_timeout = "5s"
drain_timeout = "5s"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "{upstream}"
connect_timeout = "2s"
request_timeout = "5s"
[[issuers]]
name = "moto-pool-a"
user_pool_id = "{pool}"
jwks_url = "{jwks}"
client_ids = ["{a1}"]
{issuer}
[default]
auth = "required"
{routes}
"#,
            upstream = upstream.url(),
            pool = fx.pool_a.id,
            jwks = fx.pool_a.jwks_url,
            a1 = fx.pool_a.client_a1,
        );
        let sidecar = Sidecar::start(config(&text)).await.expect("sidecar starts");
        let admin = sidecar.admin_addr().expect("admin enabled");
        // Ready = pool A's keys were fetched from moto through `jwks_url`.
        eventually(Duration::from_secs(20), || async move {
            get(admin, "/readyz").await.status == 200
        })
        .await;
        Proxy { upstream, sidecar }
    }

    async fn call(&self, path: &str, token: &str) -> Reply {
        call(self.sidecar.local_addr(), path, token).await
    }

    /// `token` on `path` is refused with `status` and `reason`; the upstream is not called.
    async fn refused(&self, what: &str, path: &str, token: &str, status: u16, reason: &str) {
        let before = self.upstream.hits();
        let r = self.call(path, token).await;
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(r.reason(), reason, "{what}: {r:?}");
        let challenge = match status {
            401 => "Bearer realm=\"cognito-sidecar\", error=\"invalid_token\"",
            _ => "Bearer error=\"insufficient_scope\"",
        };
        assert!(r.www_authenticate().starts_with(challenge), "{what}: {r:?}");
        assert_eq!(
            self.upstream.hits(),
            before,
            "{what}: the upstream was called"
        );
    }

    /// `token` on `path` is forwarded (exactly one upstream hit); returns the identity headers.
    async fn forwarded(&self, what: &str, path: &str, token: &str) -> HashMap<String, String> {
        let before = self.upstream.hits();
        let r = self.call(path, token).await;
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert_eq!(self.upstream.hits(), before + 1, "{what}");
        identity_of(&self.upstream.last())
    }
}

/// The claims the sidecar forwarded in `X-Auth-Claims`.
fn forwarded_claims(identity: &mut HashMap<String, String>) -> Value {
    let b64 = identity
        .remove("x-auth-claims")
        .expect("x-auth-claims forwarded");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).expect("base64url")).expect("JSON")
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const PEOPLE_ROUTES: &str = r#"
[[routes]]
path = "/me"
methods = ["GET"]
groups_any = ["readers"]
"#;

// === Tests ===

/// moto's tokens are what the sidecar is built for, and every rule holds on them: alice (in
/// `readers`) passes with exactly her identity; the id token (issuer accepts access tokens
/// only), pool B's token (same signing key, other `iss`), client A2's token (`client_ids`
/// = A1) and bob (no group) are refused with their reasons, never reaching the upstream.
#[tokio::test]
async fn moto_tokens_through_the_sidecar() {
    let (moto, fx) = moto_with_fixture().await;
    let (a, t) = (&fx.pool_a, &fx.tokens);

    // What moto issues (the facts this test and the docs rely on).
    let (header, access) = decode_unverified(&t.alice_access).unwrap();
    assert_eq!(header["alg"], "RS256", "moto {}", fx.moto_version);
    let jwks_a = moto.jwks(&a.id).await;
    let kid = header["kid"].as_str().expect("kid");
    assert!(
        jwks_a["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid),
        "kid {kid} not in {jwks_a}"
    );
    assert_eq!(
        moto.jwks(&fx.pool_b.id).await,
        jwks_a,
        "moto {} signs pools with different keys: the wrong_issuer case below no longer \
         proves that `iss` alone separates pools",
        fx.moto_version
    );
    assert_eq!(access["iss"], a.issuer.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], a.client_a1.as_str());
    assert_eq!(access["username"], "alice");
    assert_eq!(access["sub"], fx.users.alice.sub.as_str());
    assert_eq!(access["scope"], USER_ADMIN_SCOPE);
    assert_eq!(access["cognito:groups"], json!(["readers"]));
    assert!(access.get("aud").is_none(), "{access}");
    let id = claims(&t.alice_id);
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], a.client_a1.as_str());
    assert_eq!(id["cognito:username"], "alice");
    assert_eq!(id["iss"], a.issuer.as_str());
    assert_eq!(claims(&t.pool_b_access)["iss"], fx.pool_b.issuer.as_str());
    assert_eq!(claims(&t.pool_b_access)["username"], "alice");
    assert_eq!(
        claims(&t.alice_access_a2)["client_id"],
        a.client_a2.as_str()
    );
    assert!(claims(&t.bob_access).get("cognito:groups").is_none());

    let proxy = Proxy::start(&fx, r#"token_use = ["access"]"#, PEOPLE_ROUTES).await;

    // alice: forwarded with exactly her identity, and the claims as moto signed them.
    let mut identity = proxy.forwarded("alice", "/me", &t.alice_access).await;
    assert_eq!(forwarded_claims(&mut identity), access);
    assert_eq!(
        identity,
        map(&[
            ("x-auth-sub", &fx.users.alice.sub),
            ("x-auth-username", "alice"),
            ("x-auth-groups", "readers"),
            ("x-auth-client-id", &a.client_a1),
            ("x-auth-scope", USER_ADMIN_SCOPE),
        ])
    );

    // The rejects.
    proxy
        .refused("id token", "/me", &t.alice_id, 401, "wrong_token_use")
        .await;
    proxy
        .refused("pool B", "/me", &t.pool_b_access, 401, "wrong_issuer")
        .await;
    proxy
        .refused("client A2", "/me", &t.alice_access_a2, 401, "wrong_client")
        .await;
    proxy
        .refused("bob", "/me", &t.bob_access, 403, "missing_group")
        .await;
    assert_eq!(proxy.upstream.hits(), 1, "only alice got through");
}

/// An issuer accepting both kinds, a route narrowed to `token_use = "access"`: the id token
/// is valid (forwarded elsewhere) but refused there with 403 `wrong_token_use`.
#[tokio::test]
async fn moto_id_token_on_a_route_narrowed_to_access() {
    let (_moto, fx) = moto_with_fixture().await;
    let routes = format!(
        r#"{PEOPLE_ROUTES}
[[routes]]
path = "/api/**"
token_use = "access"
"#
    );
    let proxy = Proxy::start(&fx, r#"token_use = ["access", "id"]"#, &routes).await;
    let t = &fx.tokens;

    proxy
        .refused(
            "id token",
            "/api/orders",
            &t.alice_id,
            403,
            "wrong_token_use",
        )
        .await;
    proxy
        .forwarded("access token", "/api/orders", &t.alice_access)
        .await;
    let mut identity = proxy.forwarded("id token", "/me", &t.alice_id).await;
    assert_eq!(forwarded_claims(&mut identity), claims(&t.alice_id));
    // An id token has `cognito:username`, not `username`, and no `client_id` or `scope`.
    assert_eq!(
        identity,
        map(&[
            ("x-auth-sub", &fx.users.alice.sub),
            ("x-auth-groups", "readers"),
        ])
    );
    assert_eq!(proxy.upstream.hits(), 2);
}

async fn run_bin(args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("cognito-sidecar {args:?} did not finish within 60s"))
        .expect("run cognito-sidecar")
}

/// `cognito-sidecar token password` against moto: the access token alone on stdout (and it
/// passes the sidecar), `--json` the whole AuthenticationResult, `--client-secret` for a
/// client with a secret, and a wrong password fails without printing a token.
#[tokio::test]
async fn moto_token_password_subcommand() {
    let help = run_bin(&["token", "--help"]).await;
    assert!(
        help.status.success(),
        "token subcommand missing: `cognito-sidecar token --help` exited {}:\n{}",
        help.status,
        String::from_utf8_lossy(&help.stderr)
    );

    let (moto, fx) = moto_with_fixture().await;
    let endpoint = format!("{}/", moto.endpoint());
    let a = &fx.pool_a;
    let alice = &fx.users.alice;
    let password = |client: &str, pw: &str, extra: &[&str]| {
        let mut args = vec![
            "token",
            "password",
            "--endpoint",
            &endpoint,
            "--region",
            REGION,
            "--client-id",
            client,
            "--username",
            &alice.username,
            "--password",
            pw,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_bin(&args).await;
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status, stdout, stderr)
    };

    // Plain: one line, the access token of alice via A1.
    let (status, stdout, stderr) = run(password(&a.client_a1, &alice.password, &[])).await;
    assert!(status.success(), "token password: {status}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {stdout:?}");
    let token = lines[0].trim();
    let c = claims(token);
    assert_eq!(c["token_use"], "access");
    assert_eq!(c["iss"], a.issuer.as_str());
    assert_eq!(c["client_id"], a.client_a1.as_str());
    assert_eq!(c["username"], "alice");
    assert_eq!(c["sub"], alice.sub.as_str());

    let proxy = Proxy::start(&fx, "", PEOPLE_ROUTES).await;
    let identity = proxy.forwarded("token password", "/me", token).await;
    assert_eq!(identity["x-auth-username"], "alice");
    assert_eq!(identity["x-auth-client-id"], a.client_a1);

    // --json: the whole AuthenticationResult. Cognito spells its fields in PascalCase; the
    // subcommand may print them in snake_case: either is accepted, the content is checked.
    let (status, stdout, stderr) = run(password(&a.client_a1, &alice.password, &["--json"])).await;
    assert!(
        status.success(),
        "token password --json: {status}\n{stderr}"
    );
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {stdout}"));
    // Cognito's own shape: {"AuthenticationResult": {"AccessToken", ...}}.
    let field = |pascal: &str, _snake: &str| -> Value {
        result["AuthenticationResult"]
            .get(pascal)
            .unwrap_or_else(|| panic!("--json has no AuthenticationResult.{pascal}: {result}"))
            .clone()
    };
    assert_eq!(field("TokenType", "token_type"), "Bearer", "{result}");
    assert_eq!(field("ExpiresIn", "expires_in"), 3600, "{result}");
    assert!(
        field("RefreshToken", "refresh_token").is_string(),
        "{result}"
    );
    let access = field("AccessToken", "access_token");
    let c = claims(access.as_str().expect("access token string"));
    assert_eq!(c["token_use"], "access");
    assert_eq!(c["client_id"], a.client_a1.as_str());
    let id = field("IdToken", "id_token");
    let c = claims(id.as_str().expect("id token string"));
    assert_eq!(c["token_use"], "id");
    assert_eq!(c["aud"], a.client_a1.as_str());
    assert_eq!(c["cognito:username"], "alice");

    // A client with a secret: SECRET_HASH is sent (moto does not check it; Cognito does).
    let (status, stdout, stderr) = run(password(
        &a.client_a2,
        &alice.password,
        &["--client-secret", &a.client_a2_secret],
    ))
    .await;
    assert!(
        status.success(),
        "token password --client-secret: {status}\n{stderr}"
    );
    assert_eq!(claims(stdout.trim())["client_id"], a.client_a2.as_str());

    // A wrong password: non-zero, and nothing on stdout that could be mistaken for a token.
    let (status, stdout, stderr) = run(password(&a.client_a1, "not-her-password", &[])).await;
    assert!(!status.success(), "wrong password accepted: {stdout}");
    assert!(stdout.trim().is_empty(), "stdout on failure: {stdout:?}");
    assert!(!stderr.trim().is_empty(), "a failure says why on stderr");
}

/// An AWS JSON 1.1 call to moto's IdP API (`operation` without the service prefix). moto
/// picks the region's backend from the credential scope of `Authorization` (and checks no
/// signature), as the AWS CLI would send it.
async fn idp_call(moto: &Moto, operation: &str, body: Value) -> Reply {
    let target = format!("AWSCognitoIdentityProviderService.{operation}");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0"
    );
    request(
        moto.addr,
        "POST",
        "/",
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
            ("authorization", &auth),
        ],
        &body.to_string(),
    )
    .await
}

/// Revocation end to end against moto, which implements GetUser, GlobalSignOut and
/// AdminUserGlobalSignOut: sign in (the fixture did), call (200), sign out, call again (401
/// `revoked` within `revocation_recheck`), and the upstream never sees the last call.
#[tokio::test]
async fn moto_sign_out_revokes_tokens_through_the_sidecar() {
    let (moto, fx) = moto_with_fixture().await;
    let issuer = format!(
        "revocation = \"online\"\nrevocation_endpoint = \"{}/\"\nrevocation_recheck = \"1s\"",
        moto.endpoint()
    );
    let proxy = Proxy::start(&fx, &issuer, "[[routes]]\npath = \"/**\"\n").await;
    let alice = &fx.tokens.alice_access;
    let bob = &fx.tokens.bob_access;
    proxy.forwarded("alice before sign-out", "/x", alice).await;
    proxy.forwarded("bob before sign-out", "/x", bob).await;

    // alice signs herself out (GlobalSignOut with her access token).
    let r = idp_call(&moto, "GlobalSignOut", json!({"AccessToken": alice})).await;
    assert_eq!(r.status, 200, "GlobalSignOut: {r:?}");
    let addr = proxy.sidecar.local_addr();
    eventually(Duration::from_secs(10), || async move {
        call(addr, "/x", alice).await.status == 401
    })
    .await;
    proxy
        .refused("alice after GlobalSignOut", "/x", alice, 401, "revoked")
        .await;
    // bob is still signed in.
    proxy
        .forwarded("bob after alice's sign-out", "/x", bob)
        .await;

    // An administrator signs bob out (AdminUserGlobalSignOut).
    let r = idp_call(
        &moto,
        "AdminUserGlobalSignOut",
        json!({"UserPoolId": fx.pool_a.id, "Username": fx.users.bob.username}),
    )
    .await;
    assert_eq!(r.status, 200, "AdminUserGlobalSignOut: {r:?}");
    eventually(Duration::from_secs(10), || async move {
        call(addr, "/x", bob).await.status == 401
    })
    .await;
    proxy
        .refused(
            "bob after AdminUserGlobalSignOut",
            "/x",
            bob,
            401,
            "revoked",
        )
        .await;
    let m = get(proxy.sidecar.admin_addr().unwrap(), "/metrics")
        .await
        .body;
    assert!(
        m.contains("sidecar_revocation_checks_total{result=\"revoked\"} 2"),
        "{m}"
    );
}
