//! A local, in-memory, Cognito-compatible token issuer on loopback.
//!
//! It reproduces the two flows of the Cognito tutorial, managed login (the
//! authorization code flow with PKCE, OIDC), refresh (with optional
//! rotation) and token revocation, closely enough for the sidecar, the
//! `token` subcommands, OIDC relying parties and the AWS SDKs to talk to it:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /oauth2/token` (form, `grant_type=client_credentials`, Basic or form client auth) | `{"access_token","expires_in","token_type":"Bearer"}`, or 400 `{"error":"invalid_client" \| "invalid_request" \| "unsupported_grant_type" \| "unauthorized_client" \| "invalid_scope"}` |
//! | `GET /oauth2/authorize?response_type=code&client_id&redirect_uri&state?&nonce?&scope?&code_challenge?&code_challenge_method=S256` | 200 HTML sign-in form (`<title>Sign in</title>`, `<form id="signin-form" method="post" action="/login">`, inputs `username`, `password`, button `#signin`, the request in hidden fields); 400 HTML error page (`#error`) for a missing or unknown client, a `redirect_uri` not registered exactly, a `response_type` other than `code`; else 302 to `redirect_uri?error=unauthorized_client \| invalid_request \| invalid_scope&error_description&state` (PKCE: S256 only) |
//! | `GET /login` (the same query) | the same as `/oauth2/authorize` |
//! | `POST /login` (form: the hidden fields, `username`, `password`) | 302 to `redirect_uri?code=..&state=..` (a single-use code, 5 min); a wrong user or password: 200, the form again with `#error` "Incorrect username or password."; a bad request as `/oauth2/authorize` |
//! | `POST /oauth2/token` (`grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`; `client_id` alone for a public client, else Basic or form secret) | `{"id_token"(with `openid`),"access_token","refresh_token","expires_in","token_type":"Bearer"}`, or 400 `invalid_request` / `invalid_client` / `unauthorized_client` / `invalid_grant` (unknown, expired, used, other client, other `redirect_uri`, wrong or missing verifier; a reused code also revokes the tokens it gave) |
//! | `POST /oauth2/token` (`grant_type=refresh_token`, `refresh_token`, client auth as above) | `{"id_token","access_token","expires_in","token_type"}` of the same sign-in (`origin_jti`), plus `"refresh_token"` (a new one) with [`IssuerConfig::refresh_rotation`]; or 400 `invalid_grant` (unknown, revoked, another client's, rotated out past [`IssuerConfig::refresh_grace`]), `invalid_client`, `invalid_request` |
//! | `POST /oauth2/revoke` (form `token=<refresh token>`; Basic or form client auth, or `client_id` alone for a public client) | 200 with an empty body (also for an unknown token), or `{"error":..}`: 400 `invalid_request`, 401 `invalid_client` (bad credentials, or not the token's client), 400 `unsupported_token_type` (an access or id token) |
//! | `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth` (`USER_PASSWORD_AUTH`) | `{"AuthenticationResult":{AccessToken,IdToken,RefreshToken,ExpiresIn,TokenType},"ChallengeParameters":{}}`, or 400 `{"__type":..,"message":..}` |
//! | `POST /`, `AWSCognitoIdentityProviderService.GetUser` (`{"AccessToken"}`) | `{"Username","UserAttributes":[{"Name":"sub",..},{"Name":"email_verified",..},{"Name":"email",..}]}`, or 400 `NotAuthorizedException` (`Invalid Access Token`, `Access Token has expired`, `Access Token has been revoked`, `Access Token does not have required scopes`) / `UserNotFoundException` |
//! | `POST /`, `AWSCognitoIdentityProviderService.GlobalSignOut` (`{"AccessToken"}`) | `{}` (every token issued to the user so far is revoked), or the errors of `GetUser` |
//! | `POST /`, `AWSCognitoIdentityProviderService.RevokeToken` (`{"Token","ClientId","ClientSecret"?}`) | `{}` (also for an unknown token), or 401 `UnauthorizedException` / 400 `UnsupportedTokenTypeException` / 400 `InvalidParameterException` |
//! | `GET /<pool_id>/.well-known/jwks.json` | the JWKS (two RSA keys: one for access tokens, one for id tokens) |
//! | `GET /logout?client_id&logout_uri` | 302 to `logout_uri` if it is a sign-out URL of the client; with `redirect_uri`&`response_type` instead, 302 to `/oauth2/authorize` (same query) if `redirect_uri` is a callback URL; else 400 HTML error page |
//! | `GET /<pool_id>/.well-known/openid-configuration` | minimal OIDC discovery: `issuer` is the `iss`; `authorization_endpoint`, `token_endpoint`, `revocation_endpoint`, `end_session_endpoint` on loopback; `code_challenge_methods_supported: ["S256"]` |
//!
//! The issuer (`iss`) is the pool's real Cognito issuer, of the configured
//! form ([`IssuerConfig::issuer_form`]):
//! `https://cognito-idp.<region>.amazonaws.com/<pool_id>` or
//! `https://issuer-cognito-idp.<region>.amazonaws.com/<pool_id>`; nothing is
//! served there, so a verifier is given the loopback JWKS URL
//! ([`IssuerHandle::jwks_url`]). Revocation lives in memory: a refresh token
//! revokes its sign-in's tokens (the same `origin_jti`), a global sign-out
//! every sign-in of the user so far. Codes live five minutes, at most 1024
//! at once. Bodies over 64 KiB get 413; every other malformed request gets a
//! 400 with a JSON error (an HTML page on the browser endpoints); nothing
//! here panics on input.
//!
//! Where things are: the pool (`config`); the server, its router and the
//! discovery and JWKS documents (`server`), over the state every handler
//! reads (`state`) and what was issued and revoked (`sessions`);
//! `/oauth2/token` (`token_endpoint`) over the OAuth plumbing it shares with
//! `/oauth2/revoke` (`oauth`) and its user grants (`code_grant`); managed
//! login, `/oauth2/authorize`, `/login` and `/logout` (`login`) with its
//! pages (`html`) and codes (`codes`); the IdP API dispatcher (`idp`) and its
//! operations (`initiate_auth`; `GetUser` and `GlobalSignOut` in `user_api`)
//! over the AWS JSON plumbing (`amz`); both ways to revoke a refresh token
//! (`revoke`); checking a token handed back (`access_check`); and the
//! tokens themselves (`mint`).

mod access_check;
mod amz;
mod code_grant;
mod codes;
mod config;
mod html;
mod idp;
mod initiate_auth;
mod login;
mod mint;
mod oauth;
mod revoke;
mod server;
mod sessions;
mod state;
mod token_endpoint;
mod user_api;

pub use config::{
    demo_config, demo_config_for_login, demo_config_with, random_client_id, random_client_secret,
    DemoClient, DemoUser, IssuerConfig, ResourceServer, DEMO_EMAIL, DEMO_GROUP, DEMO_M2M_CLIENT,
    DEMO_OAUTH_SCOPES, DEMO_PASSWORD, DEMO_PASSWORD_CLIENT, DEMO_RESOURCE_SERVER, DEMO_SCOPE,
    DEMO_USERNAME, STANDARD_OAUTH_SCOPES,
};
pub use mint::USER_ADMIN_SCOPE;
pub use server::{start, IssuerHandle};
