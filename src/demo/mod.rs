//! The offline demo: a local Cognito-compatible issuer, a sample upstream and the signing
//! keys they share. Never on the proxy's request path.

pub mod keys;
