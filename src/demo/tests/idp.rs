//! The IdP API (`POST /`): `InitiateAuth` with `USER_PASSWORD_AUTH`, the
//! access and id tokens it issues, Cognito's refusals and malformed requests.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::{client, jwks, loopback, raw_client, sign_in, test_config, verify};
use crate::demo::issuer;
use crate::token::{self, TokenError};

#[tokio::test]
async fn password_flow_issues_access_and_id_tokens_signed_by_different_keys() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let r = sign_in(&h, app).await;
    assert_eq!(r.expires_in, 3600);
    assert_eq!(r.token_type, "Bearer");
    let refresh = r.refresh_token.as_deref().unwrap();
    assert!(refresh.len() >= 100);
    assert_eq!(refresh.split('.').count(), 1, "refresh token is opaque");

    let set = jwks(&h).await;
    let iss = h.issuer_url();
    let (access, akid) = verify(&set, &iss, &r.access_token, None);
    let (id, ikid) = verify(&set, &iss, &r.id_token, Some(&app.client_id));
    assert_eq!(akid, h.access_key().kid());
    assert_eq!(ikid, h.id_key().kid());
    assert_ne!(akid, ikid);

    let user = &h.config().users[0];
    let sub = user.sub.to_string();
    assert_eq!(access["sub"], sub.as_str());
    assert_eq!(access["username"], issuer::DEMO_USERNAME);
    assert_eq!(access["client_id"], app.client_id.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["scope"], issuer::USER_ADMIN_SCOPE);
    assert_eq!(access["cognito:groups"], json!([issuer::DEMO_GROUP]));
    assert!(access.get("aud").is_none());
    assert!(access.get("email").is_none());

    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["aud"], app.client_id.as_str());
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["cognito:username"], issuer::DEMO_USERNAME);
    assert_eq!(id["email"], issuer::DEMO_EMAIL);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["cognito:groups"], json!([issuer::DEMO_GROUP]));
    assert!(id.get("client_id").is_none());
    assert!(id.get("username").is_none());
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert_eq!(id["event_id"], access["event_id"]);
    assert_ne!(id["jti"], access["jti"]);

    // The access token does not verify with the id-token key.
    let wrong = DecodingKey::from_jwk(set.find(&ikid).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    assert!(decode::<Value>(&r.access_token, &wrong, &v).is_err());

    // A confidential client with the right SECRET_HASH.
    let sec = client(&h, "secret-app");
    let r2 = sign_in(&h, sec).await;
    let (id2, _) = verify(&set, &iss, &r2.id_token, Some(&sec.client_id));
    assert_eq!(id2["aud"], sec.client_id.as_str());
}

#[tokio::test]
async fn user_without_groups_has_no_groups_claim() {
    let mut cfg = issuer::demo_config();
    cfg.users[0].groups.clear();
    let h = issuer::start(loopback(), cfg).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let r = sign_in(&h, app).await;
    let set = jwks(&h).await;
    let (access, _) = verify(&set, &h.issuer_url(), &r.access_token, None);
    let (id, _) = verify(&set, &h.issuer_url(), &r.id_token, Some(&app.client_id));
    assert!(access.get("cognito:groups").is_none());
    assert!(id.get("cognito:groups").is_none());
}

fn cognito_error(e: TokenError) -> (String, String) {
    match e {
        TokenError::Cognito {
            status,
            kind,
            message,
            ..
        } => {
            assert_eq!(status, 400);
            (kind, message)
        }
        other => panic!("expected a Cognito error, got {other:?}"),
    }
}

#[tokio::test]
async fn password_errors_are_cognitos() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = &*client(&h, issuer::DEMO_PASSWORD_CLIENT).client_id;
    let sec = &*client(&h, "secret-app").client_id;
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let (user, pass) = (issuer::DEMO_USERNAME, issuer::DEMO_PASSWORD);
    let (na, rnf, ipe) = (
        "NotAuthorizedException",
        "ResourceNotFoundException",
        "InvalidParameterException",
    );
    let wrong = "Incorrect username or password.";
    let no_hash =
        format!("Client {sec} is configured with secret but SECRET_HASH was not received");
    let bad_hash = format!("Unable to verify secret hash for client {sec}");
    let no_client = "User pool client nosuchclient does not exist.";
    let not_enabled = "USER_PASSWORD_AUTH flow not enabled for this client";
    let no_user = "Missing required parameter USERNAME";
    let (m2m_id, m2m_secret) = (&*m2m.client_id, m2m.client_secret.as_deref());

    // (what, client id, username, password, client secret, __type, message)
    #[rustfmt::skip]
    let cases = [
        ("wrong password",       app,            user,     "wrong", None,                   na,  wrong),
        // Unknown users are indistinguishable from wrong passwords.
        ("unknown user",         app,            "nobody", "x",     None,                   na,  wrong),
        ("no SECRET_HASH",       sec,            user,     pass,    None,                   na,  &no_hash),
        ("wrong SECRET_HASH",    sec,            user,     pass,    Some("not-the-secret"), na,  &bad_hash),
        // The secret hash is checked before the password.
        ("hash before password", sec,            user,     "wrong", Some("nope"),           na,  &bad_hash),
        ("unknown client",       "nosuchclient", user,     "x",     None,                   rnf, no_client),
        // The m2m client is not enabled for USER_PASSWORD_AUTH.
        ("m2m client",           m2m_id,         user,     pass,    m2m_secret,             ipe, not_enabled),
        ("no username",          app,            "",       "x",     None,                   ipe, no_user),
    ];
    for (what, id, user, pass, secret, kind, message) in cases {
        let e = token::password(&h.idp_url(), id, user, pass, secret)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), format!("{kind}: {message}"), "{what}");
        assert_eq!(cognito_error(e), (kind.into(), message.into()), "{what}");
    }
}

/// What the IdP API answer's `message` must be.
enum Message {
    Any,
    Contains(&'static str),
    Is(&'static str),
}

#[tokio::test]
async fn idp_api_rejects_malformed_requests_with_json_errors() {
    use Message::{Any, Contains, Is};
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app_id = client(&h, issuer::DEMO_PASSWORD_CLIENT).client_id.clone();
    let send = |target: &'static str, ctype: &'static str, body: String| {
        let url = h.idp_url();
        async move {
            let r = raw_client()
                .post(url)
                .header("content-type", ctype)
                .header("x-amz-target", target)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!(r.headers().contains_key("x-amzn-requestid"));
            let v: Value = r.json().await.unwrap();
            (status, v["__type"].as_str().unwrap_or("").to_owned(), v)
        }
    };
    let amz = "application/x-amz-json-1.1";
    let ia = token::INITIATE_AUTH_TARGET;
    let auth = |input: Value| {
        let mut body = json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": app_id});
        body.as_object_mut()
            .unwrap()
            .extend(input.as_object().unwrap().clone());
        body.to_string()
    };
    let (ser, inv) = ("SerializationException", "InvalidParameterException");

    let (sign_up, unknown) = (
        "AWSCognitoIdentityProviderService.SignUp",
        "UnknownOperationException",
    );
    let no_client_id = json!({"AuthFlow": "USER_PASSWORD_AUTH"}).to_string();
    let srp = "USER_SRP_AUTH flow not enabled for this client";
    let no_password = "Missing required parameter PASSWORD";
    let magic_flow = auth(json!({"AuthFlow": "MAGIC"}));
    let srp_flow = auth(json!({"AuthFlow": "USER_SRP_AUTH"}));
    let number_username = auth(json!({"AuthParameters": {"USERNAME": 5}}));
    let user_only = auth(json!({"AuthParameters": {"USERNAME": "demo-user"}}));
    let too_large = format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024));
    // (target, content type, body, status, __type, message)
    #[rustfmt::skip]
    let cases = [
        (sign_up, amz,          "{}".into(),        400, unknown, Any),
        ("",      amz,          "{}".into(),        400, unknown, Any),
        (ia,      amz,          "{not json".into(), 400, ser,     Any),
        (ia,      amz,          "[1,2]".into(),     400, ser,     Any),
        (ia,      "text/plain", "{}".into(),        400, ser,     Any),
        (ia,      amz,          no_client_id,       400, inv,     Contains("'clientId'")),
        (ia,      amz,          magic_flow,         400, inv,     Contains("enum value set")),
        (ia,      amz,          srp_flow,           400, inv,     Is(srp)),
        (ia,      amz,          number_username,    400, ser,     Any),
        (ia,      amz,          user_only,          400, inv,     Is(no_password)),
        // Over the 64 KiB body limit.
        (ia,      amz,          too_large,          413, ser,     Any),
    ];
    for (target, ctype, body, status, kind, message) in cases {
        let what = format!("{target} {ctype} {}", &body[..body.len().min(80)]);
        let (s, t, v) = send(target, ctype, body).await;
        assert_eq!((s, t.as_str()), (status, kind), "{what}");
        let m = v["message"].as_str();
        match message {
            Any => {}
            Contains(part) => assert!(m.unwrap().contains(part), "{what}: {v}"),
            Is(exact) => assert_eq!(m, Some(exact), "{what}"),
        }
    }
    // Still answers a good request.
    let (s, _, v) = send(
        ia,
        amz,
        auth(
            json!({"AuthParameters": {"USERNAME": "demo-user", "PASSWORD": issuer::DEMO_PASSWORD}}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v["AuthenticationResult"]["AccessToken"].is_string());
    assert_eq!(v["ChallengeParameters"], json!({}));

    // Unknown paths and methods: JSON too.
    let r = raw_client()
        .get(format!("{}/nope", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    let r = raw_client().get(h.token_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}
