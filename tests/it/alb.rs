//! Behind an AWS ALB (`kind = "alb"`): the sidecar verifies the ALB's `x-amzn-oidc-data`.
//! A key server on 127.0.0.1 serves P-256 public keys (PEM) by `kid` the way
//! `public-keys.auth.elb.<region>.amazonaws.com` does; tokens are signed the AWS way (ES256,
//! raw `R || S`, padded base64url); the sidecar runs in-process with a real upstream, and a
//! JWKS issuer with the same `iss` runs beside the ALB issuer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const REGION: &str = "eu-west-1";
const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
/// The same load balancer name in another account.
const OTHER_ACCOUNT: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:210987654321:loadbalancer/app/web/50dc6c495c0c9188";
const OTHER_REGION: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";
const APP: &str = "alb-app-client";
const KID: &str = "7e1c6a3a-1d0f-4b8e-9c3a-6f1e2d3c4b5a";
const SUB: &str = "22222222-3333-4444-5555-666666666666";

/// A P-256 key as the ALB holds it: PKCS#8, for signing both ways (fixed and DER).
struct AlbKey {
    pkcs8: Vec<u8>,
    pem: String,
}

static KEY: LazyLock<AlbKey> = LazyLock::new(AlbKey::generate);

impl AlbKey {
    fn generate() -> AlbKey {
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap()
            .as_ref()
            .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let b64 = STANDARD.encode(spki.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        AlbKey { pkcs8, pem }
    }

    /// ES256 over `input`: raw `R || S` (`der = false`, what AWS sends) or DER.
    fn sign(&self, input: &str, der: bool) -> Vec<u8> {
        let alg = match der {
            false => &ECDSA_P256_SHA256_FIXED_SIGNING,
            true => &ECDSA_P256_SHA256_ASN1_SIGNING,
        };
        let pair = EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8).unwrap();
        pair.sign(&SystemRandom::new(), input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

fn alb_header() -> Value {
    json!({"typ": "JWT", "kid": KID, "alg": "ES256", "iss": ISS, "client": APP,
           "signer": ARN, "exp": now() + 120})
}

/// `v` with trailing spaces in its string field `field` until its JSON length is `rem`
/// modulo 3: 0 needs no base64 padding, 1 two `=`, 2 one.
fn sized(mut v: Value, field: &str, rem: usize) -> Value {
    while v.to_string().len() % 3 != rem {
        v[field] = json!(format!("{} ", v[field].as_str().unwrap()));
    }
    v
}

fn userinfo() -> Value {
    json!({"sub": SUB, "email_verified": "true", "email": "alice@example.com",
           "username": "alice", "exp": now() + 120, "iss": ISS})
}

/// Signs the AWS way: padded base64url segments, signature over them as sent.
fn mint(header: &Value, payload: &Value) -> String {
    mint_with(header, payload, false)
}

fn mint_with(header: &Value, payload: &Value, der: bool) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE.encode(header.to_string()),
        URL_SAFE.encode(payload.to_string())
    );
    format!("{input}.{}", URL_SAFE.encode(KEY.sign(&input, der)))
}

fn good() -> String {
    mint(&alb_header(), &userinfo())
}

/// A key server like public-keys.auth.elb.<region>.amazonaws.com: `GET /<kid>` is the PEM,
/// any other kid 404; counts requests by path.
struct KeyServer {
    addr: std::net::SocketAddr,
    asked: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KeyServer {
    async fn start() -> KeyServer {
        let asked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let total = Arc::new(AtomicUsize::new(0));
        let (a, t) = (asked.clone(), total.clone());
        let (addr, task) = serve(move |req| {
            let (a, t) = (a.clone(), t.clone());
            async move {
                let path = req.uri().path().to_string();
                *a.lock().unwrap().entry(path.clone()).or_default() += 1;
                t.fetch_add(1, Ordering::SeqCst);
                if path == format!("/{KID}") {
                    Response::new(full(KEY.pem.clone()))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(full("<Error>NoSuchKey</Error>"))
                        .unwrap()
                }
            }
        })
        .await;
        KeyServer {
            addr,
            asked,
            total,
            _task: AbortOnDrop(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn asked(&self, kid: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .get(&format!("/{kid}"))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

/// The ALB issuer (keys from `keys_url`) first, a JWKS issuer of the same `iss` second.
fn alb_config(upstream: &str, jwks: &str, keys_url: &str, extra: &str) -> String {
    format!(
        r#"
[listener]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "{upstream}"
request_timeout = "5s"
[[issuers]]
name = "alb"
kind = "alb"
region = "{REGION}"
signer_arns = ["{ARN}"]
issuer = "{ISS}"
client_ids = ["{APP}"]
keys_url = "{keys_url}"
keys_timeout = "2s"
keys_min_refetch = "1m"
[[issuers]]
name = "pool"
user_pool_id = "{POOL}"
jwks_url = "{jwks}"
client_ids = ["{CLIENT}"]
[[routes]]
path = "/public"
auth = "public"
{extra}
"#
    )
}

struct AlbEnv {
    keys: KeyServer,
    upstream: Upstream,
    _jwks: Jwks,
    sidecar: cognito_sidecar::Sidecar,
}

impl AlbEnv {
    async fn start() -> AlbEnv {
        let keys = KeyServer::start().await;
        let upstream = Upstream::start().await;
        let jwks = Jwks::start(&[&KEY_A]).await;
        let sidecar = start_ready(&alb_config(&upstream.url(), &jwks.url(), &keys.url(), "")).await;
        AlbEnv {
            keys,
            upstream,
            _jwks: jwks,
            sidecar,
        }
    }

    async fn send(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.sidecar.local_addr(), "GET", path, headers, "").await
    }

    async fn data(&self, token: &str) -> Reply {
        self.send("/api", &[("x-amzn-oidc-data", token)]).await
    }
}

/// 401 with `reason`, the RFC 6750 challenge, and nothing forwarded.
fn assert_refused(r: &Reply, reason: &str, upstream: &Upstream) {
    assert_eq!(r.status, 401, "{reason}: {r:?}");
    assert_eq!(
        r.www_authenticate(),
        format!(
            "Bearer realm=\"cognito-sidecar\", error=\"invalid_token\", error_description=\"{reason}\""
        )
    );
    assert_eq!(upstream.hits(), 0, "{reason}: the upstream was called");
}

#[tokio::test]
async fn a_valid_alb_token_is_forwarded_with_identity_headers_and_nothing_unverified() {
    let env = AlbEnv::start().await;
    let token = good();
    assert!(token.contains("=."), "AWS pads: {token}");
    let r = env
        .send(
            "/api",
            &[
                ("x-amzn-oidc-data", &token),
                ("x-amzn-oidc-identity", "someone-else"),
                ("x-amzn-oidc-accesstoken", "not-verified"),
                ("x_amzn_oidc_identity", "someone-else"),
                ("x-auth-sub", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    let id = identity_of(&seen);
    assert_eq!(id.get("x-auth-sub").map(String::as_str), Some(SUB));
    assert_eq!(id.get("x-auth-username").map(String::as_str), Some("alice"));
    // The claims header is the payload, base64url without padding.
    let claims = URL_SAFE_NO_PAD
        .decode(id.get("x-auth-claims").expect("claims header"))
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&claims).unwrap()["sub"],
        SUB
    );
    // The verified token goes on; the ALB's unsigned and unverified headers do not.
    assert_eq!(seen.headers.get_all("x-amzn-oidc-data").iter().count(), 1);
    assert_eq!(seen.headers["x-amzn-oidc-data"], token.as_str());
    for h in [
        "x-amzn-oidc-identity",
        "x-amzn-oidc-accesstoken",
        "x_amzn_oidc_identity",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} forwarded: {seen:?}");
    }
    // Once fetched, the key is kept: a second token costs no fetch.
    let mut h = alb_header();
    h["exp"] = json!(now() + 60);
    assert_eq!(env.data(&mint(&h, &userinfo())).await.status, 200);
    assert_eq!(env.keys.asked(KID), 1);
}

#[tokio::test]
async fn concurrent_requests_share_one_key_fetch() {
    let env = AlbEnv::start().await;
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            let mut p = userinfo();
            p["n"] = json!(i);
            mint(&alb_header(), &p)
        })
        .collect();
    let replies = futures_util::future::join_all(tokens.iter().map(|t| env.data(t))).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(env.keys.asked(KID), 1);
}

#[tokio::test]
async fn untrusted_signers_are_refused_without_asking_the_key_server() {
    let env = AlbEnv::start().await;
    for signer in [
        OTHER_ACCOUNT,
        OTHER_REGION,
        "",
        "arn:aws:iam::123456789012:root",
    ] {
        let mut h = alb_header();
        h["signer"] = json!(signer);
        let r = env.data(&mint(&h, &userinfo())).await;
        assert_refused(&r, "untrusted_signer", &env.upstream);
    }
    assert_eq!(env.keys.total(), 0);
    // A signer ARN of another region than the issuer's is not even configurable.
    let text = alb_config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "",
    )
    .replace(
        &format!("[\"{ARN}\"]"),
        &format!("[\"{ARN}\", \"{OTHER_REGION}\"]"),
    );
    let e = cognito_sidecar::Config::from_toml_str("alb.toml", &text, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("alb.toml: issuers[0].signer_arns[1]: ")
            && e.contains("not the issuer's region eu-west-1"),
        "{e}"
    );
}

#[tokio::test]
async fn forged_and_misencoded_tokens_are_refused() {
    let env = AlbEnv::start().await;
    // A header that needs two `=`, so that its padding can be got wrong.
    let token = mint(&sized(alb_header(), "typ", 1), &userinfo());
    assert!(token.contains("==."), "{token}");
    let (input, _) = token.rsplit_once('.').unwrap();
    let mut cases: Vec<(String, &str)> = vec![
        // The same claims signed with a DER signature, as most ECDSA libraries do by default.
        (mint_with(&alb_header(), &userinfo(), true), "bad_signature"),
        // Another payload under the good signature.
        (
            format!(
                "{}.{}.{}",
                input.split('.').next().unwrap(),
                URL_SAFE.encode(json!({"sub": "admin", "exp": now() + 60}).to_string()),
                token.rsplit('.').next().unwrap()
            ),
            "bad_signature",
        ),
        // RFC 7515's encoding (no padding), and padding where there is none to pad.
        (token.replace('=', ""), "malformed"),
        (format!("{token}="), "malformed"),
        (token.replacen("==.", "=.", 1), "malformed"),
        (token.replacen("==.", "===.", 1), "malformed"),
        (token.replacen("==.", ".", 1), "malformed"),
        (format!("{token}.x"), "malformed"),
    ];
    for alg in ["HS256", "none", "RS256", "ES384"] {
        let mut h = alb_header();
        h["alg"] = json!(alg);
        cases.push((mint(&h, &userinfo()), "alg_not_allowed"));
    }
    let mut h = alb_header();
    h["exp"] = json!(now() - 3600);
    cases.push((mint(&h, &userinfo()), "expired"));
    let mut p = userinfo();
    p["exp"] = json!(now() - 3600);
    cases.push((mint(&alb_header(), &p), "expired"));
    let mut h = alb_header();
    h["client"] = json!("another-app");
    cases.push((mint(&h, &userinfo()), "wrong_client"));
    let mut h = alb_header();
    h["iss"] = json!("https://login.example.com");
    cases.push((mint(&h, &userinfo()), "wrong_issuer"));
    let mut h = alb_header();
    h["kid"] = json!("../../jwks");
    cases.push((mint(&h, &userinfo()), "malformed"));
    for (t, reason) in &cases {
        let r = env.data(t).await;
        assert_refused(&r, reason, &env.upstream);
    }
    // Only the one good kid was ever fetched (the bad ones were refused before).
    assert_eq!(env.keys.total(), env.keys.asked(KID));
}

#[tokio::test]
async fn unknown_kids_are_401_and_asked_for_once() {
    let env = AlbEnv::start().await;
    let mut h = alb_header();
    h["kid"] = json!("00000000-0000-0000-0000-000000000000");
    let t = mint(&h, &userinfo());
    for _ in 0..3 {
        assert_refused(&env.data(&t).await, "unknown_kid", &env.upstream);
    }
    // The 404 is remembered for keys_min_refetch.
    assert_eq!(env.keys.asked("00000000-0000-0000-0000-000000000000"), 1);
    // Random kids: at most 10 fetches per keys_min_refetch; the rest wait (503).
    let mut statuses = Vec::new();
    for i in 0..15 {
        let mut h = alb_header();
        h["kid"] = json!(format!("random-{i}"));
        let r = env.data(&mint(&h, &userinfo())).await;
        statuses.push(r.status);
    }
    assert_eq!(env.keys.total(), 10, "{statuses:?}");
    assert!(statuses[..9].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[9..].iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(env.upstream.hits(), 0);
    let m = get(env.sidecar.admin_addr().unwrap(), "/metrics")
        .await
        .body;
    assert!(
        m.contains("sidecar_alb_key_fetches_total{issuer=\"alb\",result=\"limited\"} 6"),
        "{m}"
    );
}

#[tokio::test]
async fn key_server_down_is_503_and_readiness_does_not_wait_for_it() {
    let upstream = Upstream::start().await;
    let jwks = Jwks::start(&[&KEY_A]).await;
    let down = format!("http://127.0.0.1:{}", free_port());
    // Ready although no ALB key was ever fetched: an ALB issuer has no key set to wait for.
    let sidecar = start_ready(&alb_config(&upstream.url(), &jwks.url(), &down, "")).await;
    let r = request(
        sidecar.local_addr(),
        "GET",
        "/api",
        &[("x-amzn-oidc-data", &good())],
        "",
    )
    .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(r.json()["error_description"], "keys_unavailable");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn alb_and_jwks_issuers_of_one_iss_never_take_each_others_tokens() {
    let env = AlbEnv::start().await;
    let addr = env.sidecar.local_addr();
    // The JWKS issuer still works beside the ALB issuer.
    let cognito = sign(&access_claims("s"));
    assert_eq!(call(addr, "/api", &cognito).await.status, 200);
    // A JWKS token in x-amzn-oidc-data is not an ALB token.
    let r = env.data(&cognito).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_ne!(r.reason(), "");
    // A correctly signed ALB token as a bearer token: header and payload padded to whole
    // base64 groups, so that it reads as a JWS, and refused for its signer, not its form.
    let t = mint(
        &sized(alb_header(), "typ", 0),
        &sized(userinfo(), "email", 0),
    );
    assert_eq!(env.data(&t).await.status, 200);
    let before = env.upstream.hits();
    let r = call(addr, "/api", &t).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.reason(), "wrong_issuer");
    assert_eq!(env.upstream.hits(), before);
    // Both at once are two tokens.
    let r = env
        .send(
            "/api",
            &[
                ("x-amzn-oidc-data", &good()),
                ("authorization", &format!("Bearer {cognito}")),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error_description"], "multiple_tokens");
    assert_eq!(env.upstream.hits(), before);
}

#[tokio::test]
async fn client_sent_alb_headers_never_reach_the_upstream_on_a_public_route() {
    let env = AlbEnv::start().await;
    let token = good();
    let r = env
        .send(
            "/public",
            &[
                ("x-amzn-oidc-data", &token),
                ("x-amzn-oidc-identity", SUB),
                ("x-amzn-oidc-accesstoken", "eyJ.x.y"),
                ("X_Amzn_Oidc_Data", &token),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = env.upstream.last();
    let leaked: Vec<&str> = seen
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.replace('_', "-").starts_with("x-amzn-oidc"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(identity_of(&seen).is_empty(), "{seen:?}");
}

#[test]
fn check_names_file_and_key_of_alb_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = alb_config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "",
    );
    let file = dir.path().join("alb.toml");
    let check = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&file)
            .env_remove("SIDECAR_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check(&base);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("kind = \"alb\""), "{stdout}");
    let f = file.display().to_string();
    for (text, want) in [
        (
            format!("{base}[token]\nheader = \"x-amzn-oidc-accesstoken\"\n"),
            "token.header: x-amzn-oidc-accesstoken cannot be a token source beside an ALB issuer",
        ),
        (
            base.replace(&format!("region = \"{REGION}\"\n"), ""),
            "issuers[0].region: an ALB issuer needs region",
        ),
        (
            base.replace(&format!("signer_arns = [\"{ARN}\"]\n"), ""),
            "issuers[0].signer_arns: an ALB issuer needs signer_arns",
        ),
        (
            base.replace(ARN, "arn:aws:elasticloadbalancing:eu-west-1:1234:loadbalancer/app/web/x"),
            "issuers[0].signer_arns[0]: \"arn:aws:elasticloadbalancing:eu-west-1:1234:loadbalancer/app/web/x\" is not an ALB ARN",
        ),
        (
            base.replace("keys_timeout = \"2s\"", "keys_timeout = \"2s\"\njwks_url = \"https://x.example.com/\"\nrevocation = \"online\""),
            "issuers[0].jwks_url: applies to kind = \"jwks\" issuers only (this one is kind = \"alb\")",
        ),
        (
            base.replace("client_ids = [\"client-a\"]", "client_ids = [\"client-a\"]\nsigner_arns = []"),
            "issuers[1].signer_arns: applies to kind = \"alb\" issuers only",
        ),
    ] {
        let (code, _, stderr) = check(&text);
        assert_eq!(code, Some(1), "{want}: {stderr}");
        assert!(stderr.contains(&format!("{f}: {want}")), "{want}:\n{stderr}");
    }
}
