//! `cognito-sidecar demo`: the local issuer, the sample upstream and the sidecar in one
//! process, all on loopback, plus the shell lines that walk through both Cognito flows.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::{Config, IssuerForm};
use crate::demo::{issuer, upstream};
use crate::server::Sidecar;

/// Where the demo's three servers listen (loopback only), and which issuer form its pool
/// issues.
#[derive(Debug, Clone)]
pub struct DemoAddrs {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub issuer: SocketAddr,
    pub upstream: SocketAddr,
    pub issuer_form: IssuerForm,
}

/// The running demo.
pub struct Demo {
    pub sidecar: Sidecar,
    pub issuer: issuer::IssuerHandle,
    pub upstream: upstream::UpstreamHandle,
}

/// The sidecar config the demo runs with.
pub fn demo_config_text(
    addrs: &DemoAddrs,
    iss: &issuer::IssuerHandle,
    upstream_url: &str,
) -> String {
    let ids: Vec<String> = iss
        .config()
        .clients
        .iter()
        .map(|c| format!("{:?}", c.client_id))
        .collect();
    format!(
        r#"# The demo's sidecar configuration.
[listener]
address = "{proxy}"
[runtime]
worker_threads = 1
[admin]
address = "{admin}"
[upstream]
url = "{upstream_url}"
[[issuers]]
name = "demo"
# The pool's issuer (iss) is derived from its id and form, as for a real pool; its keys are
# served by the demo issuer on loopback.
user_pool_id = "{pool}"
issuer_form = "{form}"
jwks_url = "{jwks}"
client_ids = [{ids}]
token_use = ["access", "id"]
# Signed-out users' tokens are refused: each user access token is checked at the pool's
# GetUser. The demo asks on every request, so that a sign-out shows at once; the default
# holds an answer for 60s.
revocation = "online"
revocation_endpoint = "{idp}"
revocation_recheck = "0s"
[default]
auth = "required"
# People in browsers: sign-in through the demo issuer's managed login; plain HTTP on loopback
# (insecure_cookies), a fresh cookie key for each run.
[login]
domain = "{domain}"
issuer = "demo"
client_id = "{web_client}"
scopes = ["openid", "email", "aws.cognito.signin.user.admin", "{scope}"]
external_url = "http://{proxy}"
cookie_keys = ["{cookie_key}"]
insecure_cookies = true
[[routes]]
path = "/"
methods = ["GET"]
auth = "login"
[[routes]]
path = "/health"
auth = "public"
[[routes]]
path = "/weatherforecast"
methods = ["GET"]
scopes = ["{scope}"]
[[routes]]
path = "/me"
methods = ["GET"]
groups_any = ["{group}"]
"#,
        proxy = addrs.proxy,
        admin = addrs.admin,
        pool = iss.config().pool_id,
        form = iss.config().issuer_form,
        jwks = iss.jwks_url(),
        idp = iss.idp_endpoint(),
        ids = ids.join(", "),
        scope = issuer::DEMO_SCOPE,
        group = issuer::DEMO_GROUP,
        domain = iss.domain(),
        web_client = iss
            .config()
            .client_named(issuer::DEMO_PASSWORD_CLIENT)
            .map(|c| c.client_id.clone())
            .unwrap_or_default(),
        cookie_key = crate::session::CookieKeys::generate_base64().unwrap_or_default(),
    )
}

/// Starts issuer, upstream and sidecar; returns once the sidecar has the issuer's keys.
pub async fn start(addrs: &DemoAddrs) -> anyhow::Result<Demo> {
    for (name, a) in [
        ("--listen", addrs.proxy),
        ("--admin", addrs.admin),
        ("--issuer", addrs.issuer),
        ("--upstream", addrs.upstream),
    ] {
        if !a.ip().is_loopback() {
            bail!("{name} {a}: the demo binds loopback addresses only");
        }
    }
    let pool = issuer::demo_config_with(addrs.issuer_form).with_login_urls(
        &format!("http://{}/oauth2/idpresponse", addrs.proxy),
        &format!("http://{}/", addrs.proxy),
    );
    let iss = issuer::start(addrs.issuer, pool).await.with_context(|| {
        format!(
            "demo issuer on {} (pick another with --issuer)",
            addrs.issuer
        )
    })?;
    let up = upstream::start(addrs.upstream).await.with_context(|| {
        format!(
            "sample upstream on {} (pick another with --upstream)",
            addrs.upstream
        )
    })?;
    let text = demo_config_text(addrs, &iss, &up.url());
    let config = Config::from_toml_str("(demo)", &text, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sidecar = Sidecar::start(config)
        .await
        .context("the sidecar (pick other ports with --listen / --admin)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sidecar.shared().ready() {
        if Instant::now() > deadline {
            bail!("the sidecar did not load the demo issuer's keys within 10s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Demo {
        sidecar,
        issuer: iss,
        upstream: up,
    })
}

/// Single-quotes a value for POSIX shells.
fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// The walkthrough printed by `demo`: `export` lines, then curl commands using only them.
pub fn script(demo: &Demo) -> String {
    let cfg = demo.issuer.config();
    let cc = cfg
        .client_named(issuer::DEMO_M2M_CLIENT)
        .expect("demo config has the client-credentials client");
    let pw = cfg
        .client_named(issuer::DEMO_PASSWORD_CLIENT)
        .expect("demo config has the password client");
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# cognito-sidecar demo: a local Cognito-compatible issuer, a sample upstream and the"
    );
    let _ = writeln!(
        o,
        "# sidecar, all on 127.0.0.1. This is a demo: keys, clients and users live in memory only."
    );
    let _ = writeln!(
        o,
        "# Paste these lines into another shell. Ctrl-C here stops the demo."
    );
    let _ = writeln!(o);
    let vars = [
        (
            "SIDECAR_URL",
            format!("http://{}", demo.sidecar.local_addr()),
        ),
        ("COGNITO_TOKEN_URL", demo.issuer.token_url()),
        ("COGNITO_IDP_URL", demo.issuer.idp_url()),
        ("CC_CLIENT_ID", cc.client_id.clone()),
        (
            "CC_CLIENT_SECRET",
            cc.client_secret.clone().unwrap_or_default(),
        ),
        ("PW_CLIENT_ID", pw.client_id.clone()),
        ("DEMO_USERNAME", issuer::DEMO_USERNAME.to_string()),
        ("DEMO_PASSWORD", issuer::DEMO_PASSWORD.to_string()),
    ];
    for (k, v) in vars {
        let _ = writeln!(o, "export {k}={}", sh_quote(&v));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "# 1. No token: 401 with a WWW-Authenticate challenge; the upstream is never called."
    );
    let _ = writeln!(o, "curl -si \"$SIDECAR_URL/weatherforecast\"; echo");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "# 2. A machine gets a token by the client-credentials grant (POST /oauth2/token) ..."
    );
    let _ = writeln!(o, "CC_TOKEN=$(curl -s -u \"$CC_CLIENT_ID:$CC_CLIENT_SECRET\" -d grant_type=client_credentials -d scope={} \"$COGNITO_TOKEN_URL\" | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')", issuer::DEMO_SCOPE);
    let _ = writeln!(
        o,
        "# ... and calls the API: 200, with the identity the upstream received echoed back."
    );
    let _ = writeln!(
        o,
        "curl -si -H \"Authorization: Bearer $CC_TOKEN\" \"$SIDECAR_URL/weatherforecast\"; echo"
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "# 3. A person signs in with InitiateAuth USER_PASSWORD_AUTH (access token + ID token) ..."
    );
    let _ = writeln!(o, "PW_TOKEN=$(curl -s \"$COGNITO_IDP_URL\" -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth' -d \"{{\\\"AuthFlow\\\":\\\"USER_PASSWORD_AUTH\\\",\\\"ClientId\\\":\\\"$PW_CLIENT_ID\\\",\\\"AuthParameters\\\":{{\\\"USERNAME\\\":\\\"$DEMO_USERNAME\\\",\\\"PASSWORD\\\":\\\"$DEMO_PASSWORD\\\"}}}}\" | sed -n 's/.*\"AccessToken\":\"\\([^\"]*\\)\".*/\\1/p')");
    let _ = writeln!(o, "# ... whose access token carries only aws.cognito.signin.user.admin: 403 insufficient_scope here,");
    let _ = writeln!(
        o,
        "curl -si -H \"Authorization: Bearer $PW_TOKEN\" \"$SIDECAR_URL/weatherforecast\"; echo"
    );
    let _ = writeln!(
        o,
        "# ... but the user is in group {}: 200 on /me.",
        issuer::DEMO_GROUP
    );
    let _ = writeln!(
        o,
        "curl -si -H \"Authorization: Bearer $PW_TOKEN\" \"$SIDECAR_URL/me\"; echo"
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "# 4. The person signs out everywhere (GlobalSignOut; or: cognito-sidecar token sign-out) ..."
    );
    let _ = writeln!(o, "curl -s \"$COGNITO_IDP_URL\" -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AWSCognitoIdentityProviderService.GlobalSignOut' -d \"{{\\\"AccessToken\\\":\\\"$PW_TOKEN\\\"}}\"; echo");
    let _ = writeln!(
        o,
        "# ... and the same, still unexpired token is refused: 401 revoked (the sidecar asks the pool)."
    );
    let _ = writeln!(
        o,
        "curl -si -H \"Authorization: Bearer $PW_TOKEN\" \"$SIDECAR_URL/me\"; echo"
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "# 5. A person in a browser: open $SIDECAR_URL/ and sign in at the managed login as"
    );
    let _ = writeln!(
        o,
        "#    $DEMO_USERNAME / $DEMO_PASSWORD; the page shows who the app sees. Without a browser:"
    );
    let _ = writeln!(
        o,
        "curl -si -H 'Accept: text/html' \"$SIDECAR_URL/\" | grep -i '^location:'; echo"
    );
    let _ = writeln!(o, "{SCRIPT_END}");
    o
}

/// The script's last line (a comment), so that a reader knows where it ends.
pub const SCRIPT_END: &str = "# End of the walkthrough.";
