//! The user pool the issuer pretends to be: [`IssuerConfig`] with its app
//! clients, users and resource servers, the checks [`super::start`] runs on
//! it, the tutorial's pool ([`demo_config`]) and Cognito-shaped random client
//! ids and secrets.

use std::time::Duration;

use anyhow::bail;
use aws_lc_rs::constant_time;
use rand::distr::{Distribution as _, Uniform};
use uuid::Uuid;

use crate::config::IssuerForm;

/// Name of the client-credentials app client in [`demo_config`].
pub const DEMO_M2M_CLIENT: &str = "dotnet-demo-m2m";
/// Name of the password (public, no secret) app client in [`demo_config`].
pub const DEMO_PASSWORD_CLIENT: &str = "dotnet-demo-app";
/// Resource server identifier in [`demo_config`].
pub const DEMO_RESOURCE_SERVER: &str = "dotnet-demo";
/// The one custom scope of [`demo_config`], as clients request it.
pub const DEMO_SCOPE: &str = "dotnet-demo/dotnet";
/// The demo user's username.
pub const DEMO_USERNAME: &str = "demo-user";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "Passw0rd!demo";
/// The demo user's email.
pub const DEMO_EMAIL: &str = "demo-user@example.com";
/// The demo user's group.
pub const DEMO_GROUP: &str = "readers";

/// The scope Cognito puts in access tokens from `InitiateAuth`.
pub const USER_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";
/// The OAuth scopes [`DEMO_PASSWORD_CLIENT`] may get through managed login.
pub const DEMO_OAUTH_SCOPES: [&str; 5] =
    ["openid", "email", "profile", USER_ADMIN_SCOPE, DEMO_SCOPE];

/// The user pool the issuer pretends to be.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// E.g. `local-1`.
    pub region: String,
    /// E.g. `local-1_DemoPool`.
    pub pool_id: String,
    /// Which Cognito `iss` the tokens carry: `https://cognito-idp.<region>.amazonaws.com/<pool_id>`
    /// (original) or `https://issuer-cognito-idp.<region>.amazonaws.com/<pool_id>` (updated).
    /// Everything is still served on loopback.
    pub issuer_form: IssuerForm,
    pub clients: Vec<DemoClient>,
    pub users: Vec<DemoUser>,
    pub resource_servers: Vec<ResourceServer>,
    /// Lifetime of access and id tokens (`exp - iat`, `expires_in`).
    pub access_ttl: Duration,
    /// Refresh token rotation: the `refresh_token` grant of `/oauth2/token`
    /// also answers a new refresh token, and the one given stays usable for
    /// [`IssuerConfig::refresh_grace`] more (Cognito's
    /// `RefreshTokenRotation.Feature = ENABLED`). Off: the refresh token is kept.
    pub refresh_rotation: bool,
    /// How long a rotated-out refresh token still works (Cognito's
    /// `RetryGracePeriodSeconds`: 0 to 60 s, 60 s by default). 0 = not at all.
    pub refresh_grace: Duration,
}

/// A resource server: custom scopes are `<identifier>/<scope>`.
#[derive(Debug, Clone)]
pub struct ResourceServer {
    /// E.g. `dotnet-demo`.
    pub identifier: String,
    /// Short scope names, e.g. `dotnet`.
    pub scopes: Vec<String>,
}

/// An app client.
#[derive(Debug, Clone, Default)]
pub struct DemoClient {
    /// Display name, e.g. [`DEMO_M2M_CLIENT`].
    pub name: String,
    pub client_id: String,
    /// `None` = public client (no secret; cannot use client credentials).
    pub client_secret: Option<String>,
    /// May use `grant_type=client_credentials` on `/oauth2/token`.
    pub client_credentials: bool,
    /// Full custom scopes (`<resource-server>/<scope>`) it may ask for.
    pub allowed_scopes: Vec<String>,
    /// `ALLOW_USER_PASSWORD_AUTH`: may use `InitiateAuth` with `USER_PASSWORD_AUTH`.
    pub user_password_auth: bool,
    /// Allowed OAuth flow `code`: may sign users in through managed login
    /// (`/oauth2/authorize`, `/login`) and redeem the code on `/oauth2/token`.
    pub authorization_code: bool,
    /// Callback URLs: where `/oauth2/authorize` may send the browser back
    /// (`redirect_uri`, compared exactly).
    pub callback_urls: Vec<String>,
    /// Sign-out URLs: where `/logout` may send the browser (`logout_uri`, exactly).
    pub logout_urls: Vec<String>,
    /// The scopes the code flow may grant: `openid`, `email`, `phone`,
    /// `profile`, `aws.cognito.signin.user.admin` and custom scopes
    /// (`<resource-server>/<scope>`). No `scope` asked = all of them.
    pub allowed_oauth_scopes: Vec<String>,
}

/// The scopes Cognito defines itself, besides resource servers' custom scopes.
pub const STANDARD_OAUTH_SCOPES: [&str; 5] =
    ["openid", "email", "phone", "profile", USER_ADMIN_SCOPE];

/// A user of the pool.
#[derive(Debug, Clone)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub email: String,
    /// `cognito:groups`; the claim is left out when empty, as Cognito does.
    pub groups: Vec<String>,
    pub sub: Uuid,
}

impl IssuerConfig {
    /// The app client with this display name.
    pub fn client_named(&self, name: &str) -> Option<&DemoClient> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The app client with this client id.
    pub fn client_by_id(&self, client_id: &str) -> Option<&DemoClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// The user with this username and password; `None` for an unknown user
    /// and for a wrong password alike. The password is compared in constant time.
    pub(super) fn user_with_password(&self, username: &str, password: &str) -> Option<&DemoUser> {
        let user = self.users.iter().find(|u| u.username == username);
        user.filter(|u| eq_ct(&u.password, password))
    }

    /// Every custom scope of every resource server, as `<identifier>/<scope>`.
    pub(super) fn custom_scopes(&self) -> impl Iterator<Item = String> + '_ {
        self.resource_servers.iter().flat_map(|rs| {
            rs.scopes
                .iter()
                .map(move |s| format!("{}/{s}", rs.identifier))
        })
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            bail!(
                "region {:?} must be non-empty lowercase letters, digits and '-'",
                self.region
            );
        }
        if self.pool_id.is_empty() || self.pool_id.contains(['/', '?', '#', ' ']) {
            bail!(
                "pool_id {:?} must be non-empty without '/', '?', '#' or spaces",
                self.pool_id
            );
        }
        if self.access_ttl.as_secs() == 0 {
            bail!("access_ttl must be at least one second");
        }
        if self.refresh_grace > Duration::from_secs(60) {
            bail!("refresh_grace must be at most 60 seconds");
        }
        let known: Vec<String> = self.custom_scopes().collect();
        for (i, c) in self.clients.iter().enumerate() {
            if c.client_id.is_empty() {
                bail!("client {:?} has an empty client_id", c.name);
            }
            if self.clients[..i].iter().any(|o| o.client_id == c.client_id) {
                bail!("client_id {:?} is used twice", c.client_id);
            }
            if c.client_credentials && c.client_secret.is_none() {
                bail!(
                    "client {:?} allows client_credentials but has no secret",
                    c.name
                );
            }
            if let Some(s) = c.allowed_scopes.iter().find(|s| !known.contains(s)) {
                bail!(
                    "client {:?} allows scope {s:?}, which no resource server defines",
                    c.name
                );
            }
            let oauth_scope_ok =
                |s: &String| STANDARD_OAUTH_SCOPES.contains(&s.as_str()) || known.contains(s);
            if let Some(s) = c.allowed_oauth_scopes.iter().find(|s| !oauth_scope_ok(s)) {
                bail!(
                    "client {:?} allows OAuth scope {s:?}, which is neither a standard scope nor defined by a resource server",
                    c.name
                );
            }
            for url in c.callback_urls.iter().chain(&c.logout_urls) {
                let absolute = url.starts_with("http://") || url.starts_with("https://");
                if !absolute || url.contains('#') || url.chars().any(char::is_whitespace) {
                    bail!(
                        "client {:?}: URL {url:?} must be an absolute http(s) URL without a fragment",
                        c.name
                    );
                }
            }
        }
        for (i, u) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|o| o.username == u.username) {
                bail!("username {:?} is used twice", u.username);
            }
        }
        Ok(())
    }
}

impl DemoClient {
    /// Whether `given` is this client's secret, compared in constant time;
    /// always false for a public client.
    pub(super) fn has_secret(&self, given: &str) -> bool {
        self.client_secret
            .as_deref()
            .is_some_and(|expected| eq_ct(expected, given))
    }

    /// Whether a request that names this client and gives `secret` is this
    /// client: a client with a secret must give it, a public client must give none.
    pub(super) fn authenticates(&self, secret: Option<&str>) -> bool {
        match (&self.client_secret, secret) {
            (None, None) => true,
            (Some(_), Some(given)) => self.has_secret(given),
            _ => false,
        }
    }
}

fn eq_ct(a: &str, b: &str) -> bool {
    constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn random_lower_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let dist = Uniform::new(0, CHARS.len()).expect("non-empty range");
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[dist.sample(&mut rng)]))
        .collect()
}

/// A Cognito-shaped app client id: 26 lowercase letters and digits.
pub fn random_client_id() -> String {
    random_lower_alnum(26)
}

/// A Cognito-shaped app client secret: 51 lowercase letters and digits.
pub fn random_client_secret() -> String {
    random_lower_alnum(51)
}

/// The tutorial's pool: resource server `dotnet-demo` with scope `dotnet`; a
/// client-credentials client [`DEMO_M2M_CLIENT`] (with secret, scope
/// [`DEMO_SCOPE`]); a public password client [`DEMO_PASSWORD_CLIENT`]
/// (`ALLOW_USER_PASSWORD_AUTH`, no secret); user [`DEMO_USERNAME`] /
/// [`DEMO_PASSWORD`] in group [`DEMO_GROUP`]. The password client also allows
/// the code flow (scopes [`DEMO_OAUTH_SCOPES`]) but has no callback URL:
/// [`demo_config_for_login`] gives it one. Client ids, the secret and the
/// user's `sub` are random on every call. Tokens carry the original form of
/// `iss` ([`demo_config_with`] picks the form).
pub fn demo_config() -> IssuerConfig {
    demo_config_with(IssuerForm::Original)
}

/// [`demo_config`] whose password client [`DEMO_PASSWORD_CLIENT`] signs users
/// in through managed login (the code flow, with or without PKCE) back to
/// `callback_url`, and may sign out to `logout_url`.
pub fn demo_config_for_login(callback_url: &str, logout_url: &str) -> IssuerConfig {
    demo_config().with_login_urls(callback_url, logout_url)
}

impl IssuerConfig {
    /// This pool with [`DEMO_PASSWORD_CLIENT`]'s callback URLs set to
    /// `[callback_url]` and its sign-out URLs to `[logout_url]` (it allows
    /// the code flow already). For another issuer form:
    /// `demo_config_with(form).with_login_urls(..)`.
    pub fn with_login_urls(mut self, callback_url: &str, logout_url: &str) -> Self {
        if let Some(c) = self
            .clients
            .iter_mut()
            .find(|c| c.name == DEMO_PASSWORD_CLIENT)
        {
            c.callback_urls = vec![callback_url.to_owned()];
            c.logout_urls = vec![logout_url.to_owned()];
        }
        self
    }
}

/// [`demo_config`] whose tokens carry the `iss` of `issuer_form`.
pub fn demo_config_with(issuer_form: IssuerForm) -> IssuerConfig {
    IssuerConfig {
        region: "local-1".into(),
        pool_id: "local-1_DemoPool".into(),
        issuer_form,
        clients: vec![
            DemoClient {
                name: DEMO_M2M_CLIENT.into(),
                client_id: random_client_id(),
                client_secret: Some(random_client_secret()),
                client_credentials: true,
                allowed_scopes: vec![DEMO_SCOPE.into()],
                user_password_auth: false,
                ..DemoClient::default()
            },
            DemoClient {
                name: DEMO_PASSWORD_CLIENT.into(),
                client_id: random_client_id(),
                client_secret: None,
                client_credentials: false,
                allowed_scopes: vec![],
                user_password_auth: true,
                authorization_code: true,
                callback_urls: vec![],
                logout_urls: vec![],
                allowed_oauth_scopes: DEMO_OAUTH_SCOPES.iter().map(|s| s.to_string()).collect(),
            },
        ],
        users: vec![DemoUser {
            username: DEMO_USERNAME.into(),
            password: DEMO_PASSWORD.into(),
            email: DEMO_EMAIL.into(),
            groups: vec![DEMO_GROUP.into()],
            sub: Uuid::new_v4(),
        }],
        resource_servers: vec![ResourceServer {
            identifier: DEMO_RESOURCE_SERVER.into(),
            scopes: vec!["dotnet".into()],
        }],
        access_ttl: Duration::from_secs(3600),
        refresh_rotation: false,
        refresh_grace: Duration::from_secs(60),
    }
}
