//! Revoked tokens: the online check (`revocation = "online"`, Cognito's `GetUser`, here a
//! stand-in pool on 127.0.0.1 that answers as Cognito does) and the deny list
//! (`revoked_file`). Every refusal leaves the upstream untouched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::support::*;

/// What the stand-in pool answers to `GetUser`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Active,
    Revoked,
    Disabled,
    UserGone,
    Unscoped,
    Throttled,
    ServerError,
    /// Answers only after the sidecar's revocation_timeout.
    Hang,
}

/// A `GetUser` endpoint that counts its calls and records what it was sent.
struct Pool {
    url: String,
    calls: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
    /// How long each answer takes.
    delay: Arc<Mutex<Duration>>,
    /// (x-amz-target, content-type, body) of the last call.
    last: Arc<Mutex<Option<(String, String, Value)>>>,
}

impl Pool {
    async fn start(answer: Answer) -> Pool {
        let calls = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new(answer));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let last = Arc::new(Mutex::new(None));
        let (c, a, d, l) = (calls.clone(), answer.clone(), delay.clone(), last.clone());
        let (addr, _task) = serve(move |req| {
            let (c, a, d, l) = (c.clone(), a.clone(), d.clone(), l.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let h = |n: &str| {
                    req.headers()
                        .get(n)
                        .map(|v| v.to_str().unwrap_or("").to_string())
                        .unwrap_or_default()
                };
                let (target, ctype) = (h("x-amz-target"), h("content-type"));
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                *l.lock().unwrap() = Some((target, ctype, body));
                let answer = *a.lock().unwrap();
                let delay = *d.lock().unwrap();
                if answer == Answer::Hang {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                tokio::time::sleep(delay).await;
                let (status, body) = match answer {
                    Answer::Active | Answer::Hang => (
                        200,
                        json!({"Username": "alice", "UserAttributes": [{"Name": "sub", "Value": "x"}]}),
                    ),
                    Answer::Revoked => (400, amz("NotAuthorizedException", "Access Token has been revoked")),
                    Answer::Disabled => (400, amz("NotAuthorizedException", "User is disabled.")),
                    Answer::UserGone => (400, amz("UserNotFoundException", "User does not exist.")),
                    Answer::Unscoped => (
                        400,
                        amz("NotAuthorizedException", "Access Token does not have required scopes"),
                    ),
                    Answer::Throttled => (400, amz("TooManyRequestsException", "Rate exceeded")),
                    Answer::ServerError => (500, amz("InternalErrorException", "oops")),
                };
                let mut r = Response::new(full(body.to_string()));
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                r.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                r
            }
        })
        .await;
        Pool {
            url: format!("http://{addr}/"),
            calls,
            answer,
            delay,
            last,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }
}

fn amz(kind: &str, message: &str) -> Value {
    json!({"__type": kind, "message": message})
}

/// Routes plus the issuer's revocation lines (appended to the test issuer).
fn setup(pool: &Pool, issuer_extra: &str) -> String {
    format!(
        "revocation = \"online\"\nrevocation_endpoint = \"{}\"\n{issuer_extra}\n[[routes]]\npath = \"/**\"\n",
        pool.url
    )
}

/// A password-flow user access token (with `username` and the admin scope), unique by `jti`.
fn user_token(jti: &str) -> String {
    let mut c = user_access_claims(&["readers"]);
    c["jti"] = json!(jti);
    c["origin_jti"] = json!(format!("origin-{jti}"));
    sign(&c)
}

async fn expect_refused(env: &Env, token: &str, status: u16, reason: &str) -> Reply {
    let before = env.upstream.hits();
    let r = call(env.addr(), "/x", token).await;
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.json()["error_description"], reason, "{r:?}");
    assert_eq!(
        env.upstream.hits(),
        before,
        "the upstream saw a refused request"
    );
    r
}

#[tokio::test]
async fn get_user_is_asked_once_per_recheck_and_a_revoked_token_is_401_revoked() {
    let pool = Pool::start(Answer::Active).await;
    let env = Env::start(&setup(&pool, "")).await;
    let t = user_token("a");
    for _ in 0..3 {
        assert_eq!(call(env.addr(), "/x", &t).await.status, 200);
    }
    assert_eq!(pool.calls(), 1, "one check holds for revocation_recheck");
    let (target, ctype, body) = pool.last.lock().unwrap().clone().unwrap();
    assert_eq!(target, "AWSCognitoIdentityProviderService.GetUser");
    assert_eq!(ctype, "application/x-amz-json-1.1");
    assert_eq!(body, json!({"AccessToken": t}));

    for (answer, jti) in [
        (Answer::Revoked, "b"),
        (Answer::Disabled, "c"),
        (Answer::UserGone, "d"),
    ] {
        pool.set(answer);
        let t = user_token(jti);
        let r = expect_refused(&env, &t, 401, "revoked").await;
        assert_eq!(
            r.www_authenticate(),
            "Bearer realm=\"cognito-sidecar\", error=\"invalid_token\", error_description=\"revoked\""
        );
        // Revoked stays revoked: no second call for the same token.
        let calls = pool.calls();
        expect_refused(&env, &t, 401, "revoked").await;
        assert_eq!(pool.calls(), calls, "{answer:?}");
    }
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_revocation_checks_total{result=\"active\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_revocation_checks_total{result=\"revoked\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_requests_total{outcome=\"revoked\",route=\"/**\"} 6"),
        "{m}"
    );
}

#[tokio::test]
async fn a_token_revoked_after_its_check_is_refused_within_the_recheck() {
    let pool = Pool::start(Answer::Active).await;
    let env = Env::start(&setup(&pool, "revocation_recheck = \"1s\"")).await;
    let t = user_token("a");
    assert_eq!(call(env.addr(), "/x", &t).await.status, 200);
    pool.set(Answer::Revoked);
    let addr = env.addr();
    let t2 = t.clone();
    eventually(Duration::from_secs(5), || {
        let t = t2.clone();
        async move { call(addr, "/x", &t).await.status == 401 }
    })
    .await;
    expect_refused(&env, &t, 401, "revoked").await;
    assert_eq!(pool.calls(), 2);
}

#[tokio::test]
async fn a_thousand_concurrent_requests_with_one_unchecked_token_make_one_call() {
    let pool = Pool::start(Answer::Active).await;
    // The answer takes a while, so the requests pile up behind the one call.
    *pool.delay.lock().unwrap() = Duration::from_millis(300);
    let env = Env::start(&setup(&pool, "")).await;
    let t = Arc::new(user_token("flood"));
    let addr = env.addr();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let t = Arc::clone(&t);
            tokio::spawn(async move { call(addr, "/x", &t).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(
        pool.calls(),
        1,
        "one GetUser call for 1000 concurrent requests"
    );
    assert_eq!(env.upstream.hits(), 1000);
}

#[tokio::test]
async fn tokens_that_get_user_cannot_check() {
    let pool = Pool::start(Answer::Active).await;
    let env = Env::start(&setup(&pool, "")).await;
    // Client-credentials tokens (no username) cannot be revoked: never asked.
    let cc = sign(&access_claims("x"));
    assert_eq!(call(env.addr(), "/x", &cc).await.status, 200);
    // A user token without aws.cognito.signin.user.admin: not sent, allowed by default.
    let mut c = user_access_claims(&[]);
    c["scope"] = json!("openid email");
    let unscoped = sign(&c);
    assert_eq!(call(env.addr(), "/x", &unscoped).await.status, 200);
    // An ID token: allowed by default.
    let id = sign(&id_claims());
    assert_eq!(call(env.addr(), "/x", &id).await.status, 200);
    assert_eq!(pool.calls(), 0);
    // The pool saying "does not have required scopes" counts as unscoped (allowed).
    pool.set(Answer::Unscoped);
    assert_eq!(call(env.addr(), "/x", &user_token("u")).await.status, 200);
    assert_eq!(pool.calls(), 1);
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_revocation_unchecked_total{why=\"unscoped\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_revocation_unchecked_total{why=\"id_token\"} 1"),
        "{m}"
    );

    // With both policies at "deny".
    let pool = Pool::start(Answer::Active).await;
    let env = Env::start(&setup(
        &pool,
        "revocation_unscoped = \"deny\"\nrevocation_id_tokens = \"deny\"",
    ))
    .await;
    expect_refused(&env, &unscoped, 401, "revocation_unchecked").await;
    expect_refused(&env, &id, 401, "revocation_unchecked").await;
    assert_eq!(call(env.addr(), "/x", &cc).await.status, 200);
}

#[tokio::test]
async fn an_id_token_of_a_revoked_sign_in_is_refused() {
    let pool = Pool::start(Answer::Revoked).await;
    let env = Env::start(&setup(&pool, "")).await;
    let mut access = user_access_claims(&[]);
    access["origin_jti"] = json!("sign-in-1");
    expect_refused(&env, &sign(&access), 401, "revoked").await;
    let mut id = id_claims();
    id["origin_jti"] = json!("sign-in-1");
    expect_refused(&env, &sign(&id), 401, "revoked").await;
    // Another sign-in's ID token is not.
    id["origin_jti"] = json!("sign-in-2");
    assert_eq!(call(env.addr(), "/x", &sign(&id)).await.status, 200);
}

#[tokio::test]
async fn an_unreachable_pool_is_503_by_default_and_forwarded_when_allowed() {
    for answer in [Answer::Throttled, Answer::ServerError, Answer::Hang] {
        let pool = Pool::start(answer).await;
        let env = Env::start(&setup(&pool, "revocation_timeout = \"300ms\"")).await;
        let r = expect_refused(&env, &user_token("a"), 503, "revocation_unavailable").await;
        assert!(r.headers.contains_key("retry-after"), "{answer:?}: {r:?}");
        assert!(!r.headers.contains_key("www-authenticate"), "{answer:?}");
        assert_eq!(pool.calls(), 1, "{answer:?}");
    }
    // A closed port.
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let env = Env::start(&format!(
        "revocation = \"online\"\nrevocation_endpoint = \"{closed}\"\n[[routes]]\npath = \"/**\"\n"
    ))
    .await;
    expect_refused(&env, &user_token("a"), 503, "revocation_unavailable").await;

    let pool = Pool::start(Answer::ServerError).await;
    let env = Env::start(&setup(&pool, "revocation_unavailable = \"allow\"")).await;
    assert_eq!(call(env.addr(), "/x", &user_token("a")).await.status, 200);
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_revocation_unchecked_total{why=\"unavailable\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sidecar_revocation_checks_total{result=\"unavailable\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn the_deny_list_refuses_at_once_and_follows_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revoked.txt");
    std::fs::write(&file, "# kills\njti:jti-dead\n").unwrap();
    let env = Env::start(&format!(
        "revoked_file = \"{}\"\n[[routes]]\npath = \"/**\"\n",
        file.display()
    ))
    .await;
    let mut c = user_access_claims(&[]);
    c["jti"] = json!("jti-dead");
    expect_refused(&env, &sign(&c), 401, "revoked").await;
    // A token verified (and cached) before it was listed is refused once it is.
    let live = sign(&access_claims("x"));
    for _ in 0..2 {
        // The second use caches it (admission.rs).
        assert_eq!(call(env.addr(), "/x", &live).await.status, 200);
    }
    std::fs::write(&file, format!("jti:jti-dead\nclient_id:{CLIENT}\n")).unwrap();
    let addr = env.addr();
    let l = live.clone();
    eventually(Duration::from_secs(5), || {
        let l = l.clone();
        async move { call(addr, "/x", &l).await.status == 401 }
    })
    .await;
    expect_refused(&env, &live, 401, "revoked").await;
    let m = env.metrics().await;
    assert!(
        m.contains("sidecar_denylist_entries{issuer=\"test\"} 2"),
        "{m}"
    );
    // A bad line: the old list keeps serving, and the refusal is counted.
    std::fs::write(&file, "jti:jti-dead\nclient:oops\n").unwrap();
    let admin = env.admin();
    eventually(Duration::from_secs(5), || async move {
        get(admin, "/metrics")
            .await
            .body
            .contains("sidecar_denylist_errors_total{issuer=\"test\"} 1")
    })
    .await;
    expect_refused(&env, &live, 401, "revoked").await;
    // sub and origin_jti entries.
    std::fs::write(&file, "sub:user-9\norigin_jti:o-9\n").unwrap();
    let mut by_sub = user_access_claims(&[]);
    by_sub["sub"] = json!("user-9");
    let by_sub = sign(&by_sub);
    let mut by_origin = id_claims();
    by_origin["origin_jti"] = json!("o-9");
    let by_origin = sign(&by_origin);
    eventually(Duration::from_secs(5), || {
        let (a, b) = (by_sub.clone(), by_origin.clone());
        async move {
            call(addr, "/x", &a).await.status == 401 && call(addr, "/x", &b).await.status == 401
        }
    })
    .await;
    expect_refused(&env, &by_sub, 401, "revoked").await;
    expect_refused(&env, &by_origin, 401, "revoked").await;
    assert_eq!(
        call(env.addr(), "/x", &live).await.status,
        200,
        "unlisted again"
    );
}

#[test]
fn a_bad_deny_list_or_revocation_setting_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revoked.txt");
    std::fs::write(&file, "jti:a\n\nsubject:b\n").unwrap();
    let base =
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[issuers]]\nuser_pool_id = \"eu-west-1_A\"\n";
    let err = |extra: &str| {
        cognito_sidecar::Config::from_toml_str("t.toml", &format!("{base}{extra}"), &[])
            .unwrap_err()
            .to_string()
    };
    let e = err(&format!("revoked_file = \"{}\"\n", file.display()));
    assert!(
        e.contains("issuers[0].revoked_file") && e.contains(":3: unknown kind"),
        "{e}"
    );
    let e = err("revocation = \"sometimes\"\n");
    assert!(
        e.contains("issuers[0].revocation") && e.contains("\"online\""),
        "{e}"
    );
    let e = err("revocation_timeout = \"0s\"\n");
    assert!(e.contains("issuers[0].revocation_timeout"), "{e}");
    let e = cognito_sidecar::Config::from_toml_str(
        "t.toml",
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[[issuers]]\nissuer = \"https://idp.example\"\ntoken_use = [\"any\"]\nrevocation = \"online\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("issuers[0].revocation"), "{e}");
}
