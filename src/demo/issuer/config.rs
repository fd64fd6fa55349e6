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
#[derive(Debug, Clone)]
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
}

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
/// [`DEMO_PASSWORD`] in group [`DEMO_GROUP`]. Client ids, the secret and the
/// user's `sub` are random on every call. Tokens carry the original form of
/// `iss` ([`demo_config_with`] picks the form).
pub fn demo_config() -> IssuerConfig {
    demo_config_with(IssuerForm::Original)
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
            },
            DemoClient {
                name: DEMO_PASSWORD_CLIENT.into(),
                client_id: random_client_id(),
                client_secret: None,
                client_credentials: false,
                allowed_scopes: vec![],
                user_password_auth: true,
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
    }
}
