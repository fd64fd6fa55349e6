//! What the issuer handed out and what was revoked, in memory: each refresh
//! token with its user, client and `origin_jti`, every `origin_jti` issued
//! to each user, and the revoked `origin_jti`s. An access or id token is
//! revoked when its `origin_jti` is.

use std::collections::{HashMap, HashSet};

/// One sign-in: the refresh token's owner and the `origin_jti` shared by
/// every token of that sign-in.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) username: String,
    pub(super) client_id: String,
    pub(super) origin_jti: String,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// Refresh token -> its sign-in.
    by_refresh: HashMap<String, Session>,
    /// Username -> the `origin_jti`s issued to that user and not yet revoked.
    live: HashMap<String, Vec<String>>,
    revoked: HashSet<String>,
}

impl Sessions {
    /// Records a sign-in whose tokens share `session.origin_jti`.
    pub(super) fn issued(&mut self, refresh_token: String, session: Session) {
        self.live
            .entry(session.username.clone())
            .or_default()
            .push(session.origin_jti.clone());
        self.by_refresh.insert(refresh_token, session);
    }

    /// The sign-in of a refresh token this issuer handed out.
    pub(super) fn by_refresh(&self, refresh_token: &str) -> Option<&Session> {
        self.by_refresh.get(refresh_token)
    }

    /// Revokes every token of one sign-in.
    pub(super) fn revoke(&mut self, session: &Session) {
        if let Some(live) = self.live.get_mut(&session.username) {
            live.retain(|o| *o != session.origin_jti);
        }
        self.revoked.insert(session.origin_jti.clone());
    }

    /// Revokes every token issued to `username` so far (`GlobalSignOut`).
    /// By `origin_jti`, not by time: a sign-in in the same second after this
    /// one is not affected.
    pub(super) fn sign_out(&mut self, username: &str) {
        if let Some(live) = self.live.remove(username) {
            self.revoked.extend(live);
        }
    }

    /// Whether the tokens of the sign-in with this `origin_jti` are revoked.
    pub(super) fn is_revoked(&self, origin_jti: &str) -> bool {
        self.revoked.contains(origin_jti)
    }
}
