//! Online revocation checks: does Cognito still honour this access token?
//!
//! A revoked Cognito token still verifies offline until it expires (an hour by default, up to
//! a day). With `revocation = "online"`, a user access token (one with `username`;
//! client-credentials tokens cannot be revoked) that has not been checked within
//! `revocation_recheck` is sent to the pool's `GetUser` (`POST <endpoint>/`, `X-Amz-Target:
//! AWSCognitoIdentityProviderService.GetUser`), which answers for the token itself:
//!
//! | GetUser answers | verdict |
//! | --- | --- |
//! | 200 | active (forwarded; asked again after `revocation_recheck`) |
//! | `NotAuthorizedException` (any message but the one below), `UserNotFoundException` | revoked (401 `revoked`, for the rest of the token's life) |
//! | `NotAuthorizedException` "... does not have required scopes" | not checkable (`revocation_unscoped`) |
//! | `TooManyRequestsException`, 5xx, other errors, timeout, no connection | unavailable (`revocation_unavailable`; asked again after a second) |
//!
//! `GetUser` only accepts tokens with the scope `aws.cognito.signin.user.admin`; tokens
//! without it are not sent at all. ID tokens cannot be checked by `GetUser`: they are refused
//! when an access token of the same sign-in (`origin_jti`) was found revoked, and otherwise
//! get what `revocation_id_tokens` says.
//!
//! Checks are single-flight per token (concurrent requests with one token wait for one
//! call), bounded by `revocation_timeout`, and their verdicts held in a bounded cache keyed by
//! the token's SHA-256.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::claims::{AuthError, Verified};
use crate::config::{Fallback, RevocationPolicy, TokenUse};
use crate::metrics::Metrics;
use crate::token::GET_USER_TARGET;

/// The scope `GetUser` needs in the access token.
pub const USER_ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";
/// How long an unavailable verdict holds before the pool is asked again.
const UNAVAILABLE_HOLD: Duration = Duration::from_secs(1);

/// What the pool said about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Active,
    Revoked,
    /// The token lacks the scope `GetUser` needs.
    Unscoped,
    /// The pool could not be asked (throttled, down, slow).
    Unavailable,
}

impl Verdict {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Active => "active",
            Verdict::Revoked => "revoked",
            Verdict::Unscoped => "unscoped",
            Verdict::Unavailable => "unavailable",
        }
    }

    /// How long the verdict holds.
    fn holds_for(self, recheck: Duration) -> Option<Duration> {
        match self {
            Verdict::Active => Some(recheck),
            Verdict::Unavailable => Some(UNAVAILABLE_HOLD.min(recheck)),
            // A revoked token stays revoked, and a token's scopes never change.
            Verdict::Revoked | Verdict::Unscoped => None,
        }
    }
}

struct Check {
    at: Instant,
    verdict: Verdict,
}

/// Cognito's JSON error body: `{"__type": "NotAuthorizedException", "message": "..."}`.
#[derive(Deserialize)]
struct AmzError {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The online checker of one issuer.
pub struct Revocation {
    policy: RevocationPolicy,
    endpoint: String,
    client: reqwest::Client,
    checks: quick_cache::sync::Cache<[u8; 32], Arc<Check>>,
    /// `origin_jti`s of access tokens found revoked: an ID token of the same sign-in is
    /// refused too.
    revoked_origins: quick_cache::sync::Cache<Box<str>, ()>,
    metrics: Arc<Metrics>,
    unchecked_unscoped: prometheus::IntCounter,
    unchecked_id: prometheus::IntCounter,
    unchecked_unavailable: prometheus::IntCounter,
}

impl Revocation {
    /// A checker for `policy`, holding at most `entries` verdicts.
    pub fn new(
        policy: &RevocationPolicy,
        entries: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Revocation> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config(None)?)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("cognito-sidecar/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()?;
        let entries = entries.max(1);
        let endpoint = policy
            .endpoint
            .clone()
            .ok_or_else(|| anyhow::anyhow!("online revocation without an endpoint"))?;
        Ok(Revocation {
            policy: policy.clone(),
            endpoint,
            client,
            checks: quick_cache::sync::Cache::new(entries),
            revoked_origins: quick_cache::sync::Cache::new(entries),
            unchecked_unscoped: metrics
                .revocation_unchecked
                .with_label_values(&["unscoped"]),
            unchecked_id: metrics
                .revocation_unchecked
                .with_label_values(&["id_token"]),
            unchecked_unavailable: metrics
                .revocation_unchecked
                .with_label_values(&["unavailable"]),
            metrics,
        })
    }

    /// The answer for `v` when it needs no call: a token that cannot be checked, or one whose
    /// verdict is held. `None`: ask with [`Revocation::check`]. The common path of every
    /// request to an online issuer, so it is synchronous and allocates nothing.
    pub fn check_now(&self, digest: &[u8; 32], v: &Verified) -> Option<Result<(), AuthError>> {
        if let Some(r) = self.uncheckable(v) {
            return Some(r);
        }
        self.held(digest).map(|verdict| self.conclude(verdict, v))
    }

    /// Whether `v` (verified from `token`, whose SHA-256 is `digest`) may pass: `Ok` when
    /// active, or not checkable and allowed; `Err(Revoked)`, `Err(RevocationUnchecked)` or
    /// `Err(RevocationUnavailable)`. Asks the pool when no verdict is held.
    pub async fn check(
        &self,
        token: &str,
        digest: &[u8; 32],
        v: &Verified,
    ) -> Result<(), AuthError> {
        if let Some(r) = self.uncheckable(v) {
            return r;
        }
        let verdict = self.verdict(token, digest).await;
        self.conclude(verdict, v)
    }

    /// What a token `GetUser` cannot check gets (`None`: it can be checked).
    fn uncheckable(&self, v: &Verified) -> Option<Result<(), AuthError>> {
        match v.token_use {
            Some(TokenUse::Id) => {
                if v.origin_jti()
                    .is_some_and(|o| self.revoked_origins.get(o).is_some())
                {
                    return Some(Err(AuthError::Revoked));
                }
                Some(self.fallback(self.policy.id_tokens, &self.unchecked_id))
            }
            Some(TokenUse::Access) if v.username().is_some() => {
                if v.scopes().contains(USER_ADMIN_SCOPE) {
                    None
                } else {
                    Some(self.fallback(self.policy.unscoped, &self.unchecked_unscoped))
                }
            }
            // Client-credentials tokens cannot be revoked; other issuers have no GetUser.
            _ => Some(Ok(())),
        }
    }

    /// The held verdict for `digest`, if it is still fresh.
    fn held(&self, digest: &[u8; 32]) -> Option<Verdict> {
        let check = self.checks.get(digest)?;
        let fresh = check
            .verdict
            .holds_for(self.policy.recheck)
            .is_none_or(|d| check.at.elapsed() < d);
        fresh.then_some(check.verdict)
    }

    /// What a verdict means for the request.
    fn conclude(&self, verdict: Verdict, v: &Verified) -> Result<(), AuthError> {
        match verdict {
            Verdict::Active => Ok(()),
            Verdict::Revoked => {
                if let Some(o) = v.origin_jti() {
                    self.revoked_origins.insert(o.into(), ());
                }
                Err(AuthError::Revoked)
            }
            Verdict::Unscoped => self.fallback(self.policy.unscoped, &self.unchecked_unscoped),
            Verdict::Unavailable => match self.policy.unavailable {
                Fallback::Allow => {
                    self.unchecked_unavailable.inc();
                    tracing::warn!(
                        sub = v.sub(),
                        jti = v.jti(),
                        "revocation check unavailable; forwarding (revocation_unavailable = \"allow\")"
                    );
                    Ok(())
                }
                Fallback::Deny => Err(AuthError::RevocationUnavailable),
            },
        }
    }

    /// What an unchecked token gets, counted.
    fn fallback(
        &self,
        policy: Fallback,
        counter: &prometheus::IntCounter,
    ) -> Result<(), AuthError> {
        counter.inc();
        match policy {
            Fallback::Allow => Ok(()),
            Fallback::Deny => Err(AuthError::RevocationUnchecked),
        }
    }

    /// The held verdict for `token`, or a new one from one `GetUser` call shared by every
    /// request that asks meanwhile.
    async fn verdict(&self, token: &str, digest: &[u8; 32]) -> Verdict {
        let key = *digest;
        loop {
            match self.checks.get_value_or_guard_async(&key).await {
                Ok(check) => {
                    let fresh = check
                        .verdict
                        .holds_for(self.policy.recheck)
                        .is_none_or(|d| check.at.elapsed() < d);
                    if fresh {
                        return check.verdict;
                    }
                    // Stale: the first to notice asks again; the others wait for it.
                    self.checks.remove(&key);
                }
                Err(guard) => {
                    let verdict = self.ask(token).await;
                    let _ = guard.insert(Arc::new(Check {
                        at: Instant::now(),
                        verdict,
                    }));
                    return verdict;
                }
            }
        }
    }

    /// One `GetUser` call.
    async fn ask(&self, token: &str) -> Verdict {
        let started = Instant::now();
        let verdict = match self.get_user(token).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %self.endpoint, "revocation check failed");
                Verdict::Unavailable
            }
        };
        self.metrics
            .revocation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .revocation_checks
            .with_label_values(&[verdict.as_str()])
            .inc();
        verdict
    }

    async fn get_user(&self, token: &str) -> Result<Verdict, reqwest::Error> {
        let resp = self
            .client
            .post(&self.endpoint)
            .header("x-amz-target", GET_USER_TARGET)
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .body(serde_json::json!({ "AccessToken": token }).to_string())
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Verdict::Active);
        }
        if status.is_server_error() {
            return Ok(Verdict::Unavailable);
        }
        let body = resp.bytes().await?;
        let err: AmzError = serde_json::from_slice(&body).unwrap_or(AmzError {
            kind: String::new(),
            message: String::new(),
        });
        Ok(classify(&err.kind, &err.message))
    }
}

/// Maps a Cognito error (`__type`, possibly namespaced as `prefix#Name`, and message) to a
/// verdict.
fn classify(kind: &str, message: &str) -> Verdict {
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    match kind {
        "NotAuthorizedException" if message.contains("does not have required scopes") => {
            Verdict::Unscoped
        }
        "NotAuthorizedException" | "UserNotFoundException" => Verdict::Revoked,
        _ => Verdict::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_answers_map_exactly() {
        for (kind, message, want) in [
            (
                "NotAuthorizedException",
                "Access Token has been revoked",
                Verdict::Revoked,
            ),
            (
                "NotAuthorizedException",
                "User is disabled.",
                Verdict::Revoked,
            ),
            ("NotAuthorizedException", "Invalid token", Verdict::Revoked),
            (
                "com.amazonaws.cognito#NotAuthorizedException",
                "Access Token has been revoked",
                Verdict::Revoked,
            ),
            (
                "UserNotFoundException",
                "User does not exist.",
                Verdict::Revoked,
            ),
            (
                "NotAuthorizedException",
                "Access Token does not have required scopes",
                Verdict::Unscoped,
            ),
            (
                "TooManyRequestsException",
                "Rate exceeded",
                Verdict::Unavailable,
            ),
            ("InternalErrorException", "", Verdict::Unavailable),
            ("", "", Verdict::Unavailable),
        ] {
            assert_eq!(classify(kind, message), want, "{kind}: {message}");
        }
    }

    #[test]
    fn verdicts_hold_as_long_as_they_can_change() {
        let recheck = Duration::from_secs(60);
        assert_eq!(Verdict::Active.holds_for(recheck), Some(recheck));
        assert_eq!(Verdict::Revoked.holds_for(recheck), None);
        assert_eq!(Verdict::Unscoped.holds_for(recheck), None);
        assert_eq!(
            Verdict::Unavailable.holds_for(recheck),
            Some(Duration::from_secs(1))
        );
    }
}
