//! The config vocabulary: every string-valued setting as an enum, each spelled, parsed
//! ([`FromStr`]), printed ([`fmt::Display`], [`Serialize`]) and listed (`VALUES`) in one place,
//! by `config_enums!`. Also the JWS algorithms the sidecar accepts and the Cognito user
//! pool id shape.
//!
//! A leaf: imports nothing from the crate, so the route table and the verifier can use these
//! types without depending on loading or validation. Reporting a bad value under its key is
//! left to the validators (`Problems::parse`).

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use serde::{Serialize, Serializer};

/// A string that is none of an enum's accepted values. Holds no copy of the input, so
/// parsing a claim on the request path does not allocate when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was being parsed (`"auth mode"`, `"token_use"`), for messages.
    pub what: &'static str,
    /// Every accepted spelling.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {}: expected {}",
            self.what,
            one_of(self.expected)
        )
    }
}

impl std::error::Error for UnknownValue {}

/// `["a", "b", "c"]` -> `"a", "b" or "c"`.
pub fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Declares config enums with their spellings: `as_str`, `VALUES`, `FromStr`, `Display` and
/// `Serialize` all come from the one list.
macro_rules! config_enums {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The spelling used in the config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        expected: Self::VALUES,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )+};
}

// One line each, so the spellings read as the table they are.
config_enums! {
    /// What a route (or `[default]`) requires of a request.
    pub enum AuthMode ("auth mode") { Required = "required", Public = "public", Deny = "deny", Login = "login", }
    /// Whether route patterns match paths case-sensitively.
    pub enum PathCase ("path_case") { Insensitive = "insensitive", Sensitive = "sensitive", }
    /// What happens to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`):
    /// checked like any other request, or forwarded without a token.
    pub enum Preflight ("preflight") { Check = "check", Forward = "forward", }
    /// The log line format.
    pub enum LogFormat ("log format") { Text = "text", Json = "json", }
    /// The Cognito token kinds (the `token_use` claim), as accepted by an issuer or route.
    pub enum TokenUse ("token_use") { Access = "access", Id = "id", }
    /// A user pool's `IssuerConfiguration`: which `iss` its tokens carry.
    pub enum IssuerForm ("issuer_form") { Original = "original", Updated = "updated", }
    /// Whether an issuer's user access tokens are checked against the pool (`GetUser`).
    pub enum RevocationMode ("revocation") { Off = "off", Online = "online", }
    /// What a token gets when its revocation cannot be checked.
    pub enum Fallback ("value") { Allow = "allow", Deny = "deny", }
    /// Which front proxy asks the decision listener, and so where the original request is.
    pub enum AuthzProtocol ("authz protocol") { Nginx = "nginx", Traefik = "traefik", Envoy = "envoy", }
    /// How an issuer's tokens are verified: a JWS against the issuer's JWKS (Cognito or any
    /// OIDC issuer), or an AWS ALB's `x-amzn-oidc-data` against the ALB's public key by `kid`.
    pub enum IssuerKind ("issuer kind") { Jwks = "jwks", Alb = "alb", }
    /// How requests reach the upstream: HTTP/1.1, HTTP/2 with prior knowledge over
    /// cleartext, or (for `https://`) whichever ALPN agrees on.
    pub enum UpstreamProtocol ("upstream protocol") { Http1 = "http1", H2c = "h2c", Auto = "auto", }
    /// How spans go to the OTLP collector.
    pub enum OtlpProtocol ("otlp_protocol") { HttpProtobuf = "http/protobuf", Grpc = "grpc", }
}

/// The `token_use` entry that makes an issuer non-Cognito (it cannot be combined).
pub const TOKEN_USE_ANY: &str = "any";

/// What `token_use` an issuer accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUsePolicy {
    /// Cognito semantics: `token_use` must be present and one of these.
    Cognito(Vec<TokenUse>),
    /// Non-Cognito issuer: `token_use` is not looked at; `aud` is checked against `audiences`.
    Any,
}

impl Serialize for TokenUsePolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TokenUsePolicy::Any => s.collect_seq([TOKEN_USE_ANY]),
            TokenUsePolicy::Cognito(kinds) => s.collect_seq(kinds),
        }
    }
}

/// Declares the accepted JWS algorithms once: their names and their parser.
macro_rules! algorithms {
    ($($alg:ident = $text:literal,)+) => {
        /// The JWS `alg` values an issuer may list and a token may carry (asymmetric only:
        /// never `HS*` or `none`).
        pub const ALGORITHM_NAMES: &[&str] = &[$($text),+];

        /// Reads a JWS `alg` name (config `algorithms` entry or a token header); `None` for
        /// anything not in [`ALGORITHM_NAMES`].
        pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
            match name {
                $($text => Some(Algorithm::$alg),)+
                _ => None,
            }
        }
    };
}

algorithms! {
    RS256 = "RS256",
    RS384 = "RS384",
    RS512 = "RS512",
    PS256 = "PS256",
    PS384 = "PS384",
    PS512 = "PS512",
    ES256 = "ES256",
    ES384 = "ES384",
}

/// `ap-south-1_p7GD1CkXO` -> region `ap-south-1`.
pub fn region_of_pool(pool: &str) -> Option<&str> {
    let (region, id) = pool.split_once('_')?;
    let valid_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (valid_region && valid_id).then_some(region)
}

/// The `iss` of a Cognito user pool in the original form.
pub fn cognito_issuer(region: &str, pool: &str) -> String {
    pool_issuer(IssuerForm::Original, region, pool)
}

/// The `iss` of a Cognito user pool: `https://cognito-idp.<region>.amazonaws.com/<pool>`
/// (original) or `https://issuer-cognito-idp.<region>.amazonaws.com/<pool>` (updated, where
/// region is the pool's primary region).
pub fn pool_issuer(form: IssuerForm, region: &str, pool: &str) -> String {
    let host = match form {
        IssuerForm::Original => "cognito-idp",
        IssuerForm::Updated => "issuer-cognito-idp",
    };
    format!("https://{host}.{region}.amazonaws.com/{pool}")
}

/// The user pool id of a Cognito `iss` of either form (the inverse of [`pool_issuer`]).
pub fn pool_of_issuer(issuer: &str) -> Option<&str> {
    let rest = issuer
        .strip_prefix("https://cognito-idp.")
        .or_else(|| issuer.strip_prefix("https://issuer-cognito-idp."))?;
    let (region, pool) = rest.split_once(".amazonaws.com/")?;
    (region_of_pool(pool) == Some(region)).then_some(pool)
}

/// The Cognito IdP API endpoint of a region (`InitiateAuth`, `GetUser`, ...).
pub fn idp_endpoint(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_spelling() {
        for v in AuthMode::VALUES {
            assert_eq!(v.parse::<AuthMode>().unwrap().to_string(), *v);
        }
        assert_eq!("id".parse::<TokenUse>(), Ok(TokenUse::Id));
        let e = "any".parse::<TokenUse>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown token_use: expected \"access\" or \"id\""
        );
        assert_eq!(
            one_of(AuthMode::VALUES),
            "\"required\", \"public\", \"deny\" or \"login\""
        );
    }

    #[test]
    fn only_asymmetric_algorithms_parse() {
        assert_eq!(parse_algorithm("ES384"), Some(Algorithm::ES384));
        for bad in ["HS256", "none", "rs256", "EdDSA", ""] {
            assert_eq!(parse_algorithm(bad), None, "{bad}");
        }
        for name in ALGORITHM_NAMES {
            let alg = parse_algorithm(name).unwrap();
            assert_eq!(serde_json::to_value(alg).unwrap(), *name);
        }
    }

    #[test]
    fn pool_ids_and_issuers_convert_both_ways() {
        let iss = cognito_issuer("ap-south-1", "ap-south-1_p7GD1CkXO");
        assert_eq!(pool_of_issuer(&iss), Some("ap-south-1_p7GD1CkXO"));
        assert_eq!(pool_of_issuer("https://login.example.com/"), None);
        assert_eq!(region_of_pool("nope"), None);
    }
}
