//! What every request handler of the issuer reads: the pool configuration,
//! the issuer's URLs, its two signing keys and the JWKS they make, and what
//! it issued and revoked.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::codes::Codes;
use super::config::IssuerConfig;
use super::sessions::Sessions;
use crate::config::pool_issuer;
use crate::demo::keys::{self, SigningKey};

/// The running issuer's state, shared by the server task and [`super::IssuerHandle`].
#[derive(Debug)]
pub(super) struct State {
    pub(super) cfg: IssuerConfig,
    /// `http://127.0.0.1:<port>`, the "hosted domain".
    pub(super) base: String,
    /// The pool's Cognito issuer of the configured form
    /// (`https://cognito-idp.<region>.amazonaws.com/<pool_id>`), the `iss` of every token.
    pub(super) issuer: String,
    /// Signs access tokens.
    pub(super) access_key: SigningKey,
    /// Signs id tokens.
    pub(super) id_key: SigningKey,
    /// The public halves of both keys, as served.
    pub(super) jwks: Value,
    sessions: Mutex<Sessions>,
    /// The codes managed login handed out.
    codes: Mutex<Codes>,
}

impl State {
    /// The state of an issuer at `base` (`http://<authority>`) for `cfg`.
    pub(super) fn new(
        cfg: IssuerConfig,
        base: String,
        access_key: SigningKey,
        id_key: SigningKey,
    ) -> Self {
        let issuer = pool_issuer(cfg.issuer_form, &cfg.region, &cfg.pool_id);
        let jwks = keys::jwks(&[&access_key, &id_key]);
        State {
            cfg,
            base,
            issuer,
            access_key,
            id_key,
            jwks,
            sessions: Mutex::default(),
            codes: Mutex::default(),
        }
    }

    /// What was issued and revoked. A handler that panicked while holding the
    /// lock left it consistent (every change is one step), so poison is ignored.
    pub(super) fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The codes managed login handed out (poison ignored, as for [`State::sessions`]).
    pub(super) fn codes(&self) -> MutexGuard<'_, Codes> {
        self.codes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `<base>/oauth2/authorize`: managed login.
    pub(super) fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.base)
    }

    /// `<base>/logout`.
    pub(super) fn logout_url(&self) -> String {
        format!("{}/logout", self.base)
    }

    /// `<base>/<pool_id>/.well-known/<name>`: the pool's documents, on loopback.
    fn well_known(&self, name: &str) -> String {
        format!("{}/{}/.well-known/{name}", self.base, self.cfg.pool_id)
    }

    /// `<base>/<pool_id>/.well-known/jwks.json`.
    pub(super) fn jwks_url(&self) -> String {
        self.well_known("jwks.json")
    }

    /// `<base>/<pool_id>/.well-known/openid-configuration`.
    pub(super) fn discovery_url(&self) -> String {
        self.well_known("openid-configuration")
    }

    /// `<base>/oauth2/token`.
    pub(super) fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base)
    }

    /// `<base>/oauth2/revoke`.
    pub(super) fn revoke_url(&self) -> String {
        format!("{}/oauth2/revoke", self.base)
    }
}
