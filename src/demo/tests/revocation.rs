//! Revocation as Cognito does it: `GetUser` on live, revoked, expired,
//! unscoped and foreign tokens; `GlobalSignOut`; `RevokeToken` and
//! `POST /oauth2/revoke`, through `crate::token` and as raw requests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{client, jwks, loopback, oauth_error, raw_client, sign_in, test_config, verify};
use crate::config::IssuerForm;
use crate::demo::issuer::{self, DemoClient, IssuerHandle};
use crate::token::{
    self, TokenClient, TokenError, DEFAULT_TIMEOUT, GET_USER_TARGET, GLOBAL_SIGN_OUT_TARGET,
    REVOKE_TOKEN_TARGET,
};

/// One IdP API call on `h`.
async fn idp(h: &IssuerHandle, target: &str, input: Value) -> Result<Value, TokenError> {
    TokenClient::new(DEFAULT_TIMEOUT)
        .unwrap()
        .idp_request(&h.idp_endpoint(), target, &input)
        .await
}

async fn get_user(h: &IssuerHandle, access_token: &str) -> Result<Value, TokenError> {
    idp(h, GET_USER_TARGET, json!({ "AccessToken": access_token })).await
}

/// `(status, __type, message)` of a Cognito error.
fn refusal(r: Result<Value, TokenError>) -> (u16, String, String) {
    match r {
        Err(TokenError::Cognito {
            status,
            kind,
            message,
            ..
        }) => (status, kind, message),
        other => panic!("expected a Cognito error, got {other:?}"),
    }
}

fn not_authorized(message: &str) -> (u16, String, String) {
    (400, "NotAuthorizedException".into(), message.into())
}

const REVOKED: &str = "Access Token has been revoked";

/// The public password client, the confidential one and its secret.
fn password_clients(h: &IssuerHandle) -> (&DemoClient, &DemoClient, &str) {
    let sec = client(h, "secret-app");
    let secret = sec.client_secret.as_deref().unwrap();
    (client(h, issuer::DEMO_PASSWORD_CLIENT), sec, secret)
}

/// `GetUser` says `access_token` has been revoked.
async fn assert_revoked(h: &IssuerHandle, access_token: &str) {
    assert_eq!(
        refusal(get_user(h, access_token).await),
        not_authorized(REVOKED)
    );
}

#[tokio::test]
async fn get_user_answers_for_a_live_user_access_token() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let r = sign_in(&h, client(&h, issuer::DEMO_PASSWORD_CLIENT)).await;
    let user = &h.config().users[0];
    assert_eq!(
        get_user(&h, &r.access_token).await.unwrap(),
        json!({
            "Username": issuer::DEMO_USERNAME,
            "UserAttributes": [
                {"Name": "sub", "Value": user.sub.to_string()},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "email", "Value": issuer::DEMO_EMAIL},
            ],
        })
    );
}

#[tokio::test]
async fn get_user_refuses_what_is_not_a_live_scoped_user_access_token() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let r = sign_in(&h, app).await;
    let set = jwks(&h).await;
    let (live, _) = verify(&set, &h.issuer_url(), &r.access_token, None);
    let with = |changes: Value| {
        let mut c = live.clone();
        c.as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        c
    };
    let now = live["iat"].as_u64().unwrap();
    let access = |claims: Value| h.access_key().sign(&claims);

    // A client-credentials token: no user, no admin scope.
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
    let cc = token::client_credentials(
        &h.domain(),
        &m2m.client_id,
        m2m.client_secret.as_deref().unwrap(),
        None,
    )
    .await
    .unwrap()
    .access_token;
    let invalid = "Invalid Access Token";
    let expired = access(with(json!({"exp": now - 1, "iat": now - 3601})));
    let other_iss = access(with(json!({
        "iss": crate::config::pool_issuer(IssuerForm::Updated, "local-1", "local-1_DemoPool")
    })));
    let no_scope = access(with(json!({"scope": "openid email"})));
    let as_id = access(with(json!({"token_use": "id"})));
    let by_id_key = h.id_key().sign(&live);
    let ghost = access(with(json!({"username": "ghost"})));
    let recreated = access(with(json!({"sub": uuid::Uuid::new_v4().to_string()})));
    let no_user = "User does not exist.";
    // (what, token, answer)
    #[rustfmt::skip]
    let cases = [
        ("client credentials", cc.as_str(),          not_authorized("Access Token does not have required scopes")),
        ("no admin scope",     &no_scope,            not_authorized("Access Token does not have required scopes")),
        ("expired",            &expired,             not_authorized("Access Token has expired")),
        ("id token",           &r.id_token,          not_authorized(invalid)),
        ("token_use id",       &as_id,               not_authorized(invalid)),
        ("signed by id key",   &by_id_key,           not_authorized(invalid)),
        ("other iss",          &other_iss,           not_authorized(invalid)),
        ("garbage",            "garbage",            not_authorized(invalid)),
        ("three garbage parts", "a.b.c",             not_authorized(invalid)),
        ("empty",              "",                   not_authorized(invalid)),
        ("unknown user",       &ghost,               (400, "UserNotFoundException".into(), no_user.into())),
        ("recreated user",     &recreated,           (400, "UserNotFoundException".into(), no_user.into())),
    ];
    for (what, token, answer) in cases {
        assert_eq!(refusal(get_user(&h, token).await), answer, "{what}");
    }
    let (status, kind, message) = refusal(idp(&h, GET_USER_TARGET, json!({})).await);
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    assert!(message.contains("'accessToken'"), "{message}");
    // The live token still works after all that.
    assert!(get_user(&h, &r.access_token).await.is_ok());
}

#[tokio::test]
async fn global_sign_out_revokes_every_token_issued_to_the_user_so_far() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
    let sec = client(&h, "secret-app");
    // Two sign-ins, most likely in the same second, through two clients.
    let a = sign_in(&h, app).await;
    let b = sign_in(&h, sec).await;
    assert!(get_user(&h, &b.access_token).await.is_ok());

    token::sign_out(&h.idp_endpoint(), &a.access_token)
        .await
        .unwrap();
    for t in [&a.access_token, &b.access_token] {
        assert_revoked(&h, t).await;
    }
    // Signing out again with a revoked token is refused, in one line.
    let e = token::sign_out(&h.idp_endpoint(), &b.access_token)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), format!("NotAuthorizedException: {REVOKED}"));
    assert_eq!(refusal(Err(e)), not_authorized(REVOKED));
    // Revoking a refresh token of a signed-out sign-in is still a 200.
    let input = json!({"Token": a.refresh_token, "ClientId": app.client_id});
    assert_eq!(
        idp(&h, REVOKE_TOKEN_TARGET, input).await.unwrap(),
        json!({})
    );

    // A sign-in after the sign-out (in the same second, too) is live.
    let c = sign_in(&h, app).await;
    assert!(get_user(&h, &c.access_token).await.is_ok());
    let raw = idp(
        &h,
        GLOBAL_SIGN_OUT_TARGET,
        json!({"AccessToken": c.access_token}),
    )
    .await
    .unwrap();
    assert_eq!(raw, json!({}));
    assert_revoked(&h, &c.access_token).await;
    // What GetUser refuses, GlobalSignOut refuses.
    let e = token::sign_out(&h.idp_endpoint(), "garbage")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "NotAuthorizedException: Invalid Access Token"
    );
}

#[tokio::test]
async fn revoke_token_revokes_one_sign_in_for_its_own_client() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let (app, sec, secret) = password_clients(&h);
    let a = sign_in(&h, app).await;
    let b = sign_in(&h, app).await;
    let s = sign_in(&h, sec).await;
    let revoke = |input: Value| idp(&h, REVOKE_TOKEN_TARGET, input);

    assert_eq!(
        revoke(json!({"Token": a.refresh_token, "ClientId": app.client_id}))
            .await
            .unwrap(),
        json!({})
    );
    assert_revoked(&h, &a.access_token).await;
    // The other sign-in of the same user and client is untouched.
    assert!(get_user(&h, &b.access_token).await.is_ok());

    let unauthorized = (
        401,
        "UnauthorizedException".to_string(),
        "The client is not authorized to revoke this token.".to_string(),
    );
    let unsupported = (
        400,
        "UnsupportedTokenTypeException".to_string(),
        "Only refresh tokens can be revoked.".to_string(),
    );
    let (st, sid, aid) = (&s.refresh_token, &sec.client_id, &app.client_id);
    // (what, input, answer)
    #[rustfmt::skip]
    let cases = [
        ("no secret",       json!({"Token": st, "ClientId": sid}),                             &unauthorized),
        ("wrong secret",    json!({"Token": st, "ClientId": sid, "ClientSecret": "nope"}),     &unauthorized),
        ("other client",    json!({"Token": st, "ClientId": aid}),                             &unauthorized),
        ("secret, public",  json!({"Token": b.refresh_token, "ClientId": aid, "ClientSecret": secret}), &unauthorized),
        ("unknown client",  json!({"Token": st, "ClientId": "nosuchclient"}),                  &unauthorized),
        ("access token",    json!({"Token": s.access_token, "ClientId": sid, "ClientSecret": secret}), &unsupported),
        ("id token",        json!({"Token": s.id_token, "ClientId": sid, "ClientSecret": secret}),     &unsupported),
    ];
    for (what, input, answer) in cases {
        assert_eq!(&refusal(revoke(input).await), answer, "{what}");
    }
    assert!(get_user(&h, &s.access_token).await.is_ok());
    let (status, kind, _) = refusal(revoke(json!({"ClientId": sid})).await);
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    let (status, kind, _) =
        refusal(revoke(json!({"Token": st, "ClientId": sid, "ClientSecret": 5})).await);
    assert_eq!((status, kind.as_str()), (400, "SerializationException"));
    // An unknown token: 200, nothing revealed.
    let unknown = json!({"Token": "bm90LWEtdG9rZW4", "ClientId": sid, "ClientSecret": secret});
    assert_eq!(revoke(unknown).await.unwrap(), json!({}));

    let ok = json!({"Token": st, "ClientId": sid, "ClientSecret": secret});
    assert_eq!(revoke(ok.clone()).await.unwrap(), json!({}));
    assert_revoked(&h, &s.access_token).await;
    // Again: still 200.
    assert_eq!(revoke(ok).await.unwrap(), json!({}));
    assert!(get_user(&h, &b.access_token).await.is_ok());
}

/// POSTs `body` to `/oauth2/revoke` as `ctype`, with `authorization` when
/// given: the status, the body, and whether it said `Cache-Control: no-store`.
async fn post_revoke(
    h: &IssuerHandle,
    ctype: &str,
    auth: Option<&str>,
    body: String,
) -> (u16, String, bool) {
    let mut rb = raw_client()
        .post(h.revoke_url())
        .header("content-type", ctype)
        .body(body);
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let no_store = r
        .headers()
        .get("cache-control")
        .is_some_and(|v| v == "no-store");
    (status, r.text().await.unwrap(), no_store)
}

#[tokio::test]
async fn oauth2_revoke_takes_basic_form_and_public_client_auth() {
    let h = issuer::start(loopback(), test_config()).await.unwrap();
    let (app, sec, secret) = password_clients(&h);
    let domain = h.domain();

    // A public client names itself in the form.
    let a = sign_in(&h, app).await;
    token::revoke(
        &domain,
        a.refresh_token.as_deref().unwrap(),
        &app.client_id,
        None,
    )
    .await
    .unwrap();
    assert_revoked(&h, &a.access_token).await;

    // A confidential client with HTTP Basic (trailing slash on the domain too).
    let s = sign_in(&h, sec).await;
    token::revoke(
        &format!("{domain}/"),
        s.refresh_token.as_deref().unwrap(),
        &sec.client_id,
        Some(secret),
    )
    .await
    .unwrap();
    assert_revoked(&h, &s.access_token).await;

    // ... or with client_secret in the form: 200, empty body, not cached.
    let s2 = sign_in(&h, sec).await;
    let form = |token: &str, extra: &str| {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("token", token);
        format!("{}{extra}", f.finish())
    };
    let refresh2 = s2.refresh_token.as_deref().unwrap();
    let creds = format!("&client_id={}&client_secret={secret}", sec.client_id);
    let ctype = "application/x-www-form-urlencoded";
    assert_eq!(
        post_revoke(&h, ctype, None, form(refresh2, &creds)).await,
        (200, String::new(), true)
    );
    assert_revoked(&h, &s2.access_token).await;

    // Refusals, through crate::token.
    let live = sign_in(&h, sec).await;
    let live_refresh = live.refresh_token.as_deref().unwrap();
    // (what, token, client id, secret, status, error)
    #[rustfmt::skip]
    let cases = [
        ("wrong secret",  live_refresh,         &*sec.client_id, Some("nope"), 401, "invalid_client"),
        ("no secret",     live_refresh,         &*sec.client_id, None,         401, "invalid_client"),
        ("other client",  live_refresh,         &*app.client_id, None,         401, "invalid_client"),
        ("unknown client", live_refresh,        "nosuchclient",  None,         401, "invalid_client"),
        ("access token",  &*live.access_token,  &*sec.client_id, Some(secret), 400, "unsupported_token_type"),
        ("id token",      &*live.id_token,      &*sec.client_id, Some(secret), 400, "unsupported_token_type"),
    ];
    for (what, t, id, secret, status, error) in cases {
        let e = token::revoke(&domain, t, id, secret).await.unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "{error} (HTTP {status} from {domain}/oauth2/revoke)"
            )),
            "{what}: {shown}"
        );
        assert_eq!(oauth_error(e), (status, error.into()), "{what}");
    }
    assert!(get_user(&h, &live.access_token).await.is_ok());

    // Unknown token: 200, nothing revealed.
    token::revoke(&domain, "bm90LWEtdG9rZW4", &sec.client_id, Some(secret))
        .await
        .unwrap();

    // Raw requests for what the client function never sends.
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{secret}", sec.client_id))
    );
    let public_basic = format!("Basic {}", STANDARD.encode(format!("{}:", app.client_id)));
    let b2 = sign_in(&h, app).await;
    let err = |e: &str| json!({ "error": e }).to_string();
    let (invalid_request, invalid_client) = (err("invalid_request"), err("invalid_client"));
    let twice = format!("{}&{}", form(live_refresh, ""), form(live_refresh, ""));
    let both = form(live_refresh, &format!("&client_id={}", sec.client_id));
    // (what, content type, authorization, body, status, answer)
    #[rustfmt::skip]
    let cases = [
        ("no token",         ctype,              Some(basic.as_str()), String::new(),                400, &invalid_request),
        ("empty token",      ctype,              Some(basic.as_str()), "token=".to_string(),         400, &invalid_request),
        ("json body",        "application/json", Some(basic.as_str()), form(live_refresh, ""),       400, &invalid_request),
        ("token twice",      ctype,              Some(basic.as_str()), twice,                        400, &invalid_request),
        ("basic and form",   ctype,              Some(basic.as_str()), both,                         400, &invalid_request),
        ("no client",        ctype,              None,                 form(live_refresh, ""),       401, &invalid_client),
        ("bearer",           ctype,              Some("Bearer x"),     form(live_refresh, ""),       401, &invalid_client),
        ("bad basic",        ctype,              Some("Basic %%%"),    form(live_refresh, ""),       401, &invalid_client),
    ];
    for (what, ctype, auth, body, status, answer) in cases {
        let (s, text, no_store) = post_revoke(&h, ctype, auth, body).await;
        assert_eq!((s, &text), (status, answer), "{what}");
        assert!(no_store, "{what}");
    }
    assert!(get_user(&h, &live.access_token).await.is_ok());
    // A public client may send `Basic <id>:` (an empty secret).
    let b2_refresh = b2.refresh_token.as_deref().unwrap();
    assert_eq!(
        post_revoke(&h, ctype, Some(&public_basic), form(b2_refresh, ""))
            .await
            .0,
        200
    );
    assert_revoked(&h, &b2.access_token).await;
    // Over the 64 KiB body limit.
    let big = form(&"a".repeat(70 * 1024), "");
    assert_eq!(post_revoke(&h, ctype, Some(&basic), big).await.0, 413);
    // POST only.
    let r = raw_client().get(h.revoke_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}
