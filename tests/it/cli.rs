//! The binary as users run it: `check` exit codes and messages, SIGTERM drain, SIGHUP
//! reload (good and bad), and flat memory while streaming a large body.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .env_remove("SIDECAR_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/weatherforecast"), "{stdout}");
    assert!(
        stdout.contains("scopes all of [dotnet-demo/dotnet]"),
        "{stdout}"
    );
    assert!(stdout.contains("https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_p7GD1CkXO"));
}

#[test]
fn check_names_file_key_and_reason_for_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[upstream]\nurl = \"http://127.0.0.1:5000\"\nconnect_timeout = \"soon\"\n[[issuers]]\nuser_pool_id = \"nope\"\n[[routes]]\npath = \"/a\"\nscope = [\"x\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .env_remove("SIDECAR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // The unknown key stops deserialisation, so it is reported alone first.
    assert!(
        err.contains(&format!("{}: routes[0].scope: unknown key", file.display())),
        "{err}"
    );

    std::fs::write(
        &file,
        "[upstream]\nurl = \"http://127.0.0.1:5000\"\nconnect_timeout = \"soon\"\n[[issuers]]\nuser_pool_id = \"nope\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.connect_timeout: invalid duration"),
        "{err}"
    );
    assert!(err.contains("issuers[0].user_pool_id"), "{err}");

    // `run` refuses the same file before binding anything.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // A missing file is named.
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\nauth = \"public\"\n",
    );
    let p = Proc::spawn_file(&file);
    p.wait_ready().await;
    let addr = p.addr;
    let inflight = tokio::spawn(async move { get(addr, "/hold").await });
    eventually(Duration::from_secs(5), || async { upstream.hits() == 1 }).await;
    p.signal("-TERM");
    // Readiness drops while draining; the in-flight request still completes.
    let admin = p.admin;
    eventually(Duration::from_secs(5), || async move {
        match try_request(admin, "GET", "/readyz", &[], "").await {
            Ok(r) => r.status == 503,
            Err(_) => true,
        }
    })
    .await;
    upstream.release();
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200);
    let (code, out) = tokio::task::spawn_blocking(move || p.wait()).await.unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SIGTERM"), "{out}");
}

#[tokio::test]
async fn sighup_reloads_and_refuses_a_bad_file() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/open\"\nauth = \"public\"\n",
    );
    let p = Proc::spawn_file(&file);
    p.wait_ready().await;
    assert_eq!(get(p.addr, "/open").await.status, 200);

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("auth = \"public\"", "auth = \"deny\"")).unwrap();
    p.signal("-HUP");
    let addr = p.addr;
    eventually(Duration::from_secs(10), || async move {
        get(addr, "/open").await.status == 403
    })
    .await;

    std::fs::write(&file, "[listener\nbroken").unwrap();
    p.signal("-HUP");
    let admin = p.admin;
    eventually(Duration::from_secs(10), || async move {
        get(admin, "/metrics")
            .await
            .body
            .contains("sidecar_config_reloads_total{result=\"error\"} 1")
    })
    .await;
    assert_eq!(
        get(p.addr, "/open").await.status,
        403,
        "old config keeps serving"
    );
    p.signal("-TERM");
    let (code, out) = tokio::task::spawn_blocking(move || p.wait()).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains("config reloaded"), "{out}");
    assert!(out.contains("reload refused"), "{out}");
}

#[tokio::test]
async fn a_large_download_streams_with_flat_memory() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/**\"\nauth = \"public\"\n",
    );
    let p = Proc::spawn_file(&file);
    p.wait_ready().await;
    let idle = p.rss_peak_kib();
    upstream.release();
    // 4096 x 64 KiB = 256 MiB through the proxy.
    let r = get(p.addr, "/download?n=4096").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 256 * 1024 * 1024);
    let peak = p.rss_peak_kib();
    assert!(
        peak < idle + 32 * 1024,
        "peak RSS {peak} KiB vs idle {idle} KiB: the body was buffered"
    );
}

#[tokio::test]
async fn inspect_says_which_issuer_accepts_a_token_and_which_routes_it_may_call() {
    let jwks = Jwks::start(&[&KEY_A]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "http://127.0.0.1:5000",
        &jwks.url(),
        "[[routes]]\npath = \"/health\"\nauth = \"public\"\n[[routes]]\npath = \"/weatherforecast\"\nscopes = [\"dotnet-demo/dotnet\"]\n[[routes]]\npath = \"/me\"\ngroups_any = [\"readers\"]\n[[routes]]\npath = \"/admin/**\"\nauth = \"deny\"\n",
    );
    let inspect = |token: String| {
        let file = file.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(BIN)
                    .args(["inspect", "--config"])
                    .arg(&file)
                    .arg(token)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = inspect(sign(&access_claims("dotnet-demo/dotnet"))).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("accepted by issuer \"test\" (kid kid-a)"),
        "{text}"
    );
    assert!(text.contains(&format!("x-auth-sub: {CLIENT}")), "{text}");
    let verdict = |route: &str| {
        text.lines()
            .find(|l| l.starts_with(route))
            .unwrap_or_else(|| panic!("no line for {route}: {text}"))
            .to_string()
    };
    assert!(verdict("/health").ends_with("yes (public)"));
    assert!(verdict("/weatherforecast").ends_with("yes"));
    assert!(
        verdict("/me").contains("no: missing_group (needs groups any of [readers])"),
        "{text}"
    );
    assert!(verdict("/admin/**").contains("no: denied"));

    let mut expired = access_claims("dotnet-demo/dotnet");
    expired["exp"] = serde_json::json!(now() - 3600);
    let out = inspect(format!("Bearer {}", sign(&expired))).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rejected: expired"), "{text}");
    assert!(text.contains("no: token rejected"), "{text}");

    let mut other = access_claims("x");
    other["iss"] = serde_json::json!("https://elsewhere.example");
    let out = inspect(sign(&other)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "wrong_issuer: iss \"https://elsewhere.example\" is none of the configured issuers"
        ),
        "{text}"
    );

    let out = inspect("garbage".into()).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a JWT: malformed"));
}
