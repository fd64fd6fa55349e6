//! A local, in-memory, Cognito-compatible token issuer on loopback.
//!
//! It reproduces the two flows of the Cognito tutorial, and token revocation,
//! closely enough for the sidecar, the `token` subcommands and the AWS SDKs
//! to talk to it:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /oauth2/token` (form, `grant_type=client_credentials`, Basic or form client auth) | `{"access_token","expires_in","token_type":"Bearer"}`, or 400 `{"error":"invalid_client" \| "invalid_request" \| "unsupported_grant_type" \| "unauthorized_client" \| "invalid_scope"}` |
//! | `POST /oauth2/revoke` (form `token=<refresh token>`; Basic or form client auth, or `client_id` alone for a public client) | 200 with an empty body (also for an unknown token), or `{"error":..}`: 400 `invalid_request`, 401 `invalid_client` (bad credentials, or not the token's client), 400 `unsupported_token_type` (an access or id token) |
//! | `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth` (`USER_PASSWORD_AUTH`) | `{"AuthenticationResult":{AccessToken,IdToken,RefreshToken,ExpiresIn,TokenType},"ChallengeParameters":{}}`, or 400 `{"__type":..,"message":..}` |
//! | `POST /`, `AWSCognitoIdentityProviderService.GetUser` (`{"AccessToken"}`) | `{"Username","UserAttributes":[{"Name":"sub",..},{"Name":"email_verified",..},{"Name":"email",..}]}`, or 400 `NotAuthorizedException` (`Invalid Access Token`, `Access Token has expired`, `Access Token has been revoked`, `Access Token does not have required scopes`) / `UserNotFoundException` |
//! | `POST /`, `AWSCognitoIdentityProviderService.GlobalSignOut` (`{"AccessToken"}`) | `{}` (every token issued to the user so far is revoked), or the errors of `GetUser` |
//! | `POST /`, `AWSCognitoIdentityProviderService.RevokeToken` (`{"Token","ClientId","ClientSecret"?}`) | `{}` (also for an unknown token), or 401 `UnauthorizedException` / 400 `UnsupportedTokenTypeException` / 400 `InvalidParameterException` |
//! | `GET /<pool_id>/.well-known/jwks.json` | the JWKS (two RSA keys: one for access tokens, one for id tokens) |
//! | `GET /<pool_id>/.well-known/openid-configuration` | minimal OIDC discovery: `issuer` is the `iss`, the endpoints are on loopback |
//!
//! The issuer (`iss`) is the pool's real Cognito issuer, of the configured
//! form ([`IssuerConfig::issuer_form`]):
//! `https://cognito-idp.<region>.amazonaws.com/<pool_id>` or
//! `https://issuer-cognito-idp.<region>.amazonaws.com/<pool_id>`; nothing is
//! served there, so a verifier is given the loopback JWKS URL
//! ([`IssuerHandle::jwks_url`]). Revocation lives in memory: a refresh token
//! revokes its sign-in's tokens (the same `origin_jti`), a global sign-out
//! every sign-in of the user so far. Bodies over 64 KiB get 413; every other
//! malformed request gets a 400 with a JSON error; nothing here panics on
//! input.
//!
//! Where things are: the pool (`config`); the server, its router and the
//! discovery and JWKS documents (`server`), over the state every handler
//! reads (`state`) and what was issued and revoked (`sessions`);
//! `/oauth2/token` (`token_endpoint`) over the OAuth plumbing it shares with
//! `/oauth2/revoke` (`oauth`); the IdP API dispatcher (`idp`) and its
//! operations (`initiate_auth`; `GetUser` and `GlobalSignOut` in `user_api`)
//! over the AWS JSON plumbing (`amz`); both ways to revoke a refresh token
//! (`revoke`); checking a token handed back (`access_check`); and the
//! tokens themselves (`mint`).

mod access_check;
mod amz;
mod config;
mod idp;
mod initiate_auth;
mod mint;
mod oauth;
mod revoke;
mod server;
mod sessions;
mod state;
mod token_endpoint;
mod user_api;

pub use config::{
    demo_config, demo_config_with, random_client_id, random_client_secret, DemoClient, DemoUser,
    IssuerConfig, ResourceServer, DEMO_EMAIL, DEMO_GROUP, DEMO_M2M_CLIENT, DEMO_PASSWORD,
    DEMO_PASSWORD_CLIENT, DEMO_RESOURCE_SERVER, DEMO_SCOPE, DEMO_USERNAME,
};
pub use mint::USER_ADMIN_SCOPE;
pub use server::{start, IssuerHandle};
