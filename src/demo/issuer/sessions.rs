//! What the issuer handed out and what was revoked, in memory: each refresh
//! token with its user, client and `origin_jti`, every `origin_jti` issued
//! to each user, and the revoked `origin_jti`s. An access or id token is
//! revoked when its `origin_jti` is. With refresh token rotation, a
//! rotated-out refresh token keeps working until its deadline.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// One sign-in: the refresh token's owner, the `origin_jti` shared by every
/// token of that sign-in, and what refreshed tokens carry again.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) username: String,
    pub(super) client_id: String,
    pub(super) origin_jti: String,
    /// The access token's `scope`, in order.
    pub(super) scopes: Vec<String>,
    /// When the user signed in (`auth_time` of every token of the sign-in).
    pub(super) auth_time: u64,
    /// Whether refreshing answers an id token (`InitiateAuth` always; the
    /// code flow when `openid` was granted).
    pub(super) id_token: bool,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// Refresh token -> its sign-in.
    by_refresh: HashMap<String, Session>,
    /// Rotated-out refresh token -> when it stops working.
    retiring: HashMap<String, Instant>,
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

    /// The sign-in of a refresh token this issuer handed out (also one
    /// rotated out, within or past its grace period: revoking it still works).
    pub(super) fn by_refresh(&self, refresh_token: &str) -> Option<&Session> {
        self.by_refresh.get(refresh_token)
    }

    /// The sign-in of a refresh token that may still be used to refresh at
    /// `now`: handed out, not revoked, and not rotated out past its deadline.
    pub(super) fn usable(&self, refresh_token: &str, now: Instant) -> Option<&Session> {
        let session = self.by_refresh.get(refresh_token)?;
        if self.is_revoked(&session.origin_jti) {
            return None;
        }
        match self.retiring.get(refresh_token) {
            Some(deadline) if now >= *deadline => None,
            _ => Some(session),
        }
    }

    /// Rotation: `new` joins the sign-in of `old`, which stops working at
    /// `deadline` (a deadline already set is kept). Forgets the rotated-out
    /// tokens that are past their deadline.
    pub(super) fn rotate(&mut self, old: &str, new: String, deadline: Instant, now: Instant) {
        let Some(session) = self.by_refresh.get(old).cloned() else {
            return;
        };
        self.by_refresh.insert(new, session);
        self.retiring.entry(old.to_owned()).or_insert(deadline);
        let dead: Vec<String> = self
            .retiring
            .iter()
            .filter(|(_, d)| now >= **d)
            .map(|(t, _)| t.clone())
            .collect();
        for t in dead {
            self.retiring.remove(&t);
            self.by_refresh.remove(&t);
        }
    }

    /// Revokes every token of one sign-in.
    pub(super) fn revoke(&mut self, session: &Session) {
        self.revoke_origin(&session.username, &session.origin_jti);
    }

    /// Revokes every token of the sign-in of `username` with this `origin_jti`.
    pub(super) fn revoke_origin(&mut self, username: &str, origin_jti: &str) {
        if let Some(live) = self.live.get_mut(username) {
            live.retain(|o| o != origin_jti);
        }
        self.revoked.insert(origin_jti.to_owned());
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
