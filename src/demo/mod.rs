//! The offline demo: a local Cognito-compatible issuer ([`issuer`]), a sample
//! upstream ([`upstream`]) and the RSA keys behind the issuer ([`keys`]).
//!
//! Everything here is also meant for tests: the issuer mints real RS256
//! tokens, serves them the way Cognito does and publishes its JWKS, all on
//! loopback with keys that only live in memory.

pub mod issuer;
pub mod keys;
pub mod run;
mod serve;
pub mod upstream;

#[cfg(test)]
mod tests;
