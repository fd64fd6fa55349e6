//! The `token revoke` and `token sign-out` subcommands, run as the built binary against the
//! demo issuer started in-process: exit codes, the one line on stdout, the one line on stderr;
//! and the values `demo --issuer-form` takes.

use std::process::Command;

use cognito_sidecar::demo::issuer::{self, IssuerHandle};
use cognito_sidecar::token::{self, TokenClient, TokenError, DEFAULT_TIMEOUT, GET_USER_TARGET};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_cognito-sidecar");

/// `cognito-sidecar token <args>`, off the runtime thread: (exit code, stdout, stderr).
async fn token_cmd(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN)
            .arg("token")
            .args(&args)
            .output()
            .expect("run the binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// What `GetUser` says of `access_token`: `Ok(username)` or the error line.
async fn get_user(h: &IssuerHandle, access_token: &str) -> Result<String, String> {
    let input = json!({ "AccessToken": access_token });
    match TokenClient::new(DEFAULT_TIMEOUT)
        .unwrap()
        .idp_request(&h.idp_endpoint(), GET_USER_TARGET, &input)
        .await
    {
        Ok(v) => Ok(v["Username"].as_str().unwrap_or_default().to_owned()),
        Err(e @ TokenError::Cognito { .. }) => Err(e.to_string()),
        Err(other) => panic!("{other:?}"),
    }
}

async fn sign_in(h: &IssuerHandle) -> token::InitiateAuthResult {
    let app = h
        .config()
        .client_named(issuer::DEMO_PASSWORD_CLIENT)
        .unwrap();
    token::password(
        &h.idp_endpoint(),
        &app.client_id,
        issuer::DEMO_USERNAME,
        issuer::DEMO_PASSWORD,
        None,
    )
    .await
    .unwrap()
}

fn assert_one_error_line(code: Option<i32>, out: &str, err: &str, needle: &str) {
    assert_eq!(code, Some(1), "stdout {out:?} stderr {err:?}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
}

#[tokio::test]
async fn token_sign_out_revokes_the_users_tokens_and_says_so() {
    let h = issuer::start("127.0.0.1:0".parse().unwrap(), issuer::demo_config())
        .await
        .unwrap();
    let r = sign_in(&h).await;
    assert_eq!(
        get_user(&h, &r.access_token).await,
        Ok(issuer::DEMO_USERNAME.to_owned())
    );
    let sign_out = args(&[
        "sign-out",
        "--endpoint",
        &h.idp_endpoint(),
        "--access-token",
        &r.access_token,
    ]);
    let (code, out, err) = token_cmd(sign_out.clone()).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "signed out\n");
    assert!(err.is_empty(), "{err}");
    let revoked = "NotAuthorizedException: Access Token has been revoked";
    assert_eq!(get_user(&h, &r.access_token).await, Err(revoked.to_owned()));

    // The same token again: Cognito's refusal, one line, exit 1.
    let (code, out, err) = token_cmd(sign_out).await;
    assert_one_error_line(code, &out, &err, revoked);
    // Neither --region nor --endpoint.
    let (code, out, err) = token_cmd(args(&["sign-out", "--access-token", "x"])).await;
    assert_one_error_line(code, &out, &err, "--region");
}

#[tokio::test]
async fn token_revoke_revokes_a_refresh_tokens_sign_in_and_says_so() {
    let h = issuer::start("127.0.0.1:0".parse().unwrap(), issuer::demo_config())
        .await
        .unwrap();
    let app_id = h
        .config()
        .client_named(issuer::DEMO_PASSWORD_CLIENT)
        .unwrap()
        .client_id
        .clone();
    let r = sign_in(&h).await;
    let refresh = r.refresh_token.clone().unwrap();
    let revoke = |client_id: &str, secret: Option<&str>| {
        let mut a = args(&[
            "revoke",
            "--domain",
            &h.domain(),
            "--refresh-token",
            &refresh,
            "--client-id",
            client_id,
        ]);
        if let Some(s) = secret {
            a.extend(args(&["--client-secret", s]));
        }
        a
    };

    // Another client may not revoke it: exit 1, the token still works.
    let m2m = h.config().client_named(issuer::DEMO_M2M_CLIENT).unwrap();
    let other = revoke(&m2m.client_id, m2m.client_secret.as_deref());
    let (code, out, err) = token_cmd(other).await;
    assert_one_error_line(code, &out, &err, "invalid_client (HTTP 401 from ");
    assert!(get_user(&h, &r.access_token).await.is_ok());

    let (code, out, err) = token_cmd(revoke(&app_id, None)).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "revoked\n");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        get_user(&h, &r.access_token).await,
        Err("NotAuthorizedException: Access Token has been revoked".to_owned())
    );

    // An access token is not a refresh token.
    let mut with_access = revoke(&app_id, None);
    with_access[4] = r.access_token.clone();
    let (code, out, err) = token_cmd(with_access).await;
    assert_one_error_line(code, &out, &err, "unsupported_token_type");

    // Refresh tokens are base64url and may begin with '-': the value is still a value,
    // not an option. It reaches the issuer, which (RFC 7009 2.2) answers 200 for a token
    // it does not know.
    let mut hyphen = revoke(&app_id, None);
    hyphen[4] = "-Enot-a-refresh-token".to_owned();
    let (code, out, err) = token_cmd(hyphen).await;
    assert_eq!((code, out.as_str()), (Some(0), "revoked\n"), "{err}");
    h.shutdown().await;
}

#[test]
fn demo_issuer_form_takes_only_the_two_forms() {
    let out = Command::new(BIN)
        .args(["demo", "--issuer-form", "newest"])
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown issuer_form: expected \"original\" or \"updated\""),
        "{err}"
    );
}
