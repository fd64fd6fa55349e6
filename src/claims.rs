//! The vocabulary of a verified token, shared by the verifier (which makes it), the route
//! rules (which read a [`Grant`]), the identity headers and the log line: what a token was
//! found to be ([`Verified`]), what it offers to the rules ([`Grant`]), and why a token was
//! refused ([`AuthError`]).
//!
//! Imports no module that uses it: verification lives in `verify.rs`, the rules in
//! `routes.rs`, header rendering in `headers.rs`.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};

use crate::alb_key::AlbKey;
use crate::config::TokenUse;
use crate::jwks::VerifyKey;

/// Why a token was refused. Each is the `error_description`, the log reason and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    Missing,
    Malformed,
    TooLarge,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongTokenUse,
    WrongClient,
    WrongAudience,
    /// The token's issuer has no keys loaded yet: not the token's fault (503, not 401).
    KeysUnavailable,
    /// Revoked: by the pool (`GetUser` said so) or by the issuer's deny list.
    Revoked,
    /// The revocation check could not reach the pool, and `revocation_unavailable = "deny"`
    /// (503, not 401).
    RevocationUnavailable,
    /// The token cannot be checked for revocation (no `aws.cognito.signin.user.admin`
    /// scope, or an ID token) and the issuer's setting says to refuse such tokens.
    RevocationUnchecked,
    /// An ALB token (`x-amzn-oidc-data`) whose `signer` is in no ALB issuer's `signer_arns`.
    UntrustedSigner,
}

impl AuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TooLarge => "too_large",
            AuthError::AlgNotAllowed => "alg_not_allowed",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongTokenUse => "wrong_token_use",
            AuthError::WrongClient => "wrong_client",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::Revoked => "revoked",
            AuthError::RevocationUnavailable => "revocation_unavailable",
            AuthError::RevocationUnchecked => "revocation_unchecked",
            AuthError::UntrustedSigner => "untrusted_signer",
        }
    }

    /// Whether the sidecar, not the token, is the reason (503 + `Retry-After`).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            AuthError::KeysUnavailable | AuthError::RevocationUnavailable
        )
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which issuer verified a token, and with which key.
#[derive(Debug)]
pub enum Origin {
    /// A JWKS issuer (index in `Config::issuers`).
    Jwks {
        issuer: usize,
        /// Serial of the key set the token was verified with: while it is current, so is
        /// the key.
        key_set: u64,
        /// The key that verified the signature: after a refresh, a cache hit needs the
        /// issuer's set to still hold this key (not merely this `kid`) under its `kid`.
        key: Arc<VerifyKey>,
    },
    /// An ALB issuer (index in `Config::alb_issuers`): a cache hit needs its key cache to
    /// still hold this key.
    Alb { issuer: usize, key: Arc<AlbKey> },
}

/// A verified token: what the route rules, the identity headers and the log line need.
#[derive(Debug)]
pub struct Verified {
    pub origin: Origin,
    pub kid: Box<str>,
    pub exp: i64,
    pub token_use: Option<TokenUse>,
    /// `client_id` for access tokens, the `aud` values otherwise.
    pub clients: Vec<Box<str>>,
    pub scopes: Vec<Box<str>>,
    pub groups: Vec<Box<str>>,
    pub sub: Option<Box<str>>,
    pub client_id: Option<Box<str>>,
    pub jti: Option<Box<str>>,
    /// `origin_jti`: one per sign-in, shared by its access and ID tokens.
    pub origin_jti: Option<Box<str>>,
    /// `username` (Cognito user access tokens; client-credentials tokens have none).
    pub username: Option<Box<str>>,
    /// Identity headers rendered from the claims, ready to insert (`claims_header` aside).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The claims as CEL values, for the routes' `when` (kept only when a route has one).
    pub cel_claims: Option<crate::condition::Claims>,
}

impl Verified {
    /// What this token offers to the route rules.
    pub fn grant(&self) -> Grant<'_> {
        Grant {
            token_use: self.token_use,
            clients: &self.clients,
            scopes: &self.scopes,
            groups: &self.groups,
        }
    }
}

/// What a verified token offers to the route rules.
pub struct Grant<'a> {
    pub token_use: Option<TokenUse>,
    /// `client_id` (access token) or `aud` values (id token / OIDC).
    pub clients: &'a [Box<str>],
    pub scopes: &'a [Box<str>],
    pub groups: &'a [Box<str>],
}
