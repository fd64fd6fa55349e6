//! The tutorial, end to end: `cognito-sidecar demo` as a child process, followed the way a
//! newcomer would (its printed lines pasted into bash, and the same flows replayed here), and
//! the `token` subcommands against the demo issuer, including each failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cognito_sidecar::demo::issuer;

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

struct DemoProc(Child);

impl Drop for DemoProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `demo` (its pool issuing `form`) on free ports and reads its script.
fn start_demo_with(form: &str) -> (DemoProc, String) {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--issuer",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:0",
            "--issuer-form",
            form,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().unwrap();
    let proc = DemoProc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut script = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line == cognito_sidecar::demo::run::SCRIPT_END;
            script.push_str(&line);
            script.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(script);
    });
    let script = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("demo printed its script");
    (proc, script)
}

fn start_demo() -> (DemoProc, String) {
    start_demo_with("original")
}

fn exports(script: &str) -> HashMap<String, String> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[test]
fn demo_prints_exactly_the_promised_variables_and_the_script_works_in_bash() {
    for form in ["original", "updated"] {
        demo_script_works_in_bash(form);
    }
}

/// The whole walkthrough, pasted into bash, with the pool issuing `form`.
fn demo_script_works_in_bash(form: &str) {
    let (_demo, script) = start_demo_with(form);
    let vars = exports(&script);
    let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "CC_CLIENT_ID",
            "CC_CLIENT_SECRET",
            "COGNITO_IDP_URL",
            "COGNITO_TOKEN_URL",
            "DEMO_PASSWORD",
            "DEMO_USERNAME",
            "PW_CLIENT_ID",
            "SIDECAR_URL"
        ]
    );
    assert!(vars["SIDECAR_URL"].starts_with("http://127.0.0.1:"));
    // Every command uses only those variables (and the two tokens it creates).
    for line in script
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("export"))
    {
        for var in line.split('$').skip(1) {
            let name: String = var
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if name.is_empty() {
                continue; // $( ... )
            }
            assert!(
                vars.contains_key(&name) || name == "CC_TOKEN" || name == "PW_TOKEN",
                "{name} in {line}"
            );
        }
    }
    // Paste the whole output into a shell.
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(|l| &l[9..12])
        .collect();
    // No token, a machine, a person without the scope, the person's group route, and the
    // person's token after signing out.
    assert_eq!(
        statuses,
        vec!["401", "200", "403", "200", "401"],
        "{form}: {stdout}"
    );
    assert!(
        stdout.contains("error=\"invalid_token\", error_description=\"revoked\""),
        "{form}: {stdout}"
    );
    // The tokens carry the pool's issuer in the form asked for.
    let host = match form {
        "updated" => "issuer-cognito-idp",
        _ => "cognito-idp",
    };
    let iss = format!("https://{host}.local-1.amazonaws.com/local-1_DemoPool");
    let claims = stdout
        .split("\"x-auth-claims\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the upstream echoed X-Auth-Claims");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], iss.as_str(), "{form}");
    assert!(
        stdout.contains("error=\"insufficient_scope\", scope=\"dotnet-demo/dotnet\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"x-auth-groups\":\"readers\""), "{stdout}");
    assert!(
        stdout.contains(&format!("\"x-auth-sub\":\"{}\"", vars["CC_CLIENT_ID"])),
        "{stdout}"
    );
}

#[tokio::test]
async fn demo_flows_replayed_with_the_token_commands() {
    let (_demo, script) = tokio::task::spawn_blocking(start_demo).await.unwrap();
    let v = exports(&script);
    let token = |args: &[&str]| {
        let out = Command::new(BIN).arg("token").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    let domain = v["COGNITO_TOKEN_URL"]
        .trim_end_matches("/oauth2/token")
        .to_string();
    let (code, cc, err) = token(&[
        "client-credentials",
        "--domain",
        &domain,
        "--client-id",
        &v["CC_CLIENT_ID"],
        "--client-secret",
        &v["CC_CLIENT_SECRET"],
        "--scope",
        issuer::DEMO_SCOPE,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, pw, err) = token(&[
        "password",
        "--endpoint",
        &v["COGNITO_IDP_URL"],
        "--client-id",
        &v["PW_CLIENT_ID"],
        "--username",
        &v["DEMO_USERNAME"],
        "--password",
        &v["DEMO_PASSWORD"],
    ]);
    assert_eq!(code, Some(0), "{err}");
    let sidecar: std::net::SocketAddr = v["SIDECAR_URL"]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    use crate::support::{call, get};
    assert_eq!(get(sidecar, "/weatherforecast").await.status, 401);
    let r = call(sidecar, "/weatherforecast", &cc).await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["forecasts"].as_array().unwrap().len(), 5);
    assert_eq!(body["identity"]["x-auth-sub"], v["CC_CLIENT_ID"].as_str());
    let r = call(sidecar, "/weatherforecast", &pw).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "missing_scope");
    let r = call(sidecar, "/me", &pw).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["identity"]["x-auth-username"],
        issuer::DEMO_USERNAME
    );
    assert_eq!(get(sidecar, "/health").await.status, 200);

    // --json gives the whole answer; the ID token is accepted too (token_use id) on /me.
    let (code, json, _) = token(&[
        "password",
        "--endpoint",
        &v["COGNITO_IDP_URL"],
        "--client-id",
        &v["PW_CLIENT_ID"],
        "--username",
        &v["DEMO_USERNAME"],
        "--password",
        &v["DEMO_PASSWORD"],
        "--json",
    ]);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = json["AuthenticationResult"]["IdToken"].as_str().unwrap();
    assert_eq!(json["AuthenticationResult"]["TokenType"], "Bearer");
    assert_eq!(call(sidecar, "/me", id).await.status, 200);

    // Each failure: exit 1 and one clear line.
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "client-credentials",
                "--domain",
                &domain,
                "--client-id",
                &v["CC_CLIENT_ID"],
                "--client-secret",
                "wrong",
            ],
            "invalid_client",
        ),
        (
            vec![
                "client-credentials",
                "--domain",
                &domain,
                "--client-id",
                &v["CC_CLIENT_ID"],
                "--client-secret",
                &v["CC_CLIENT_SECRET"],
                "--scope",
                "dotnet-demo/admin",
            ],
            "invalid_scope",
        ),
        (
            vec![
                "password",
                "--endpoint",
                &v["COGNITO_IDP_URL"],
                "--client-id",
                &v["PW_CLIENT_ID"],
                "--username",
                &v["DEMO_USERNAME"],
                "--password",
                "nope",
            ],
            "NotAuthorizedException",
        ),
        (
            vec![
                "password",
                "--endpoint",
                "http://127.0.0.1:9/",
                "--client-id",
                "x",
                "--username",
                "u",
                "--password",
                "p",
            ],
            "cannot reach http://127.0.0.1:9/",
        ),
        (
            vec![
                "password",
                "--endpoint",
                &v["SIDECAR_URL"],
                "--client-id",
                "x",
                "--username",
                "u",
                "--password",
                "p",
            ],
            "HTTP",
        ),
    ];
    for (args, needle) in cases {
        let (code, out, err) = token(&args);
        assert_eq!(code, Some(1), "{args:?}: {out} {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
