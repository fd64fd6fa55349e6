//! Validates `[authz]`: the decision listener that front proxies (nginx `auth_request`,
//! Traefik `forwardAuth`, Envoy `ext_authz`) ask. Answering them is `crate::authz`'s.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::listener::parse_addr;
use super::model::{AuthzConfig, AuthzListen};
use super::problems::Problems;
use super::raw::RawAuthz;
use super::types::AuthzProtocol;

/// The path of Envoy's gRPC `Check` method, which the decision listener also answers.
pub const GRPC_CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

pub(super) fn validate_authz(
    p: &mut Problems,
    raw: &RawAuthz,
    listener: SocketAddr,
    admin: Option<SocketAddr>,
) -> AuthzConfig {
    let address = match raw.address.trim() {
        "" => None,
        a => match a.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') && !path.contains('\0') => {
                Some(AuthzListen::Unix(PathBuf::from(path)))
            }
            Some(_) => {
                p.push(
                    "authz.address",
                    format!("{a:?}: a Unix socket is unix:<absolute path>, e.g. \"unix:/run/cognito-sidecar/authz.sock\""),
                );
                None
            }
            None => parse_addr(p, "authz.address", a).map(AuthzListen::Tcp),
        },
    };
    if let Some(AuthzListen::Tcp(a)) = &address {
        if a.port() != 0 && (*a == listener || Some(*a) == admin) {
            p.push(
                "authz.address",
                "must differ from listener.address and admin.address",
            );
        }
    }
    let socket_mode = match u32::from_str_radix(raw.socket_mode.trim().trim_start_matches("0o"), 8)
    {
        Ok(m) if m <= 0o777 && m & 0o007 == 0 => m,
        _ => {
            p.push(
                "authz.socket_mode",
                format!(
                    "{:?}: an octal file mode without permissions for others, e.g. \"0600\" or \"0660\"",
                    raw.socket_mode
                ),
            );
            0o600
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        let cidr = cidr.trim();
        // A bare address is its own /32 or /128.
        let net = cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => trusted_proxies.push(n.trunc()),
            Err(_) => p.push(
                format!("authz.trusted_proxies[{i}]"),
                format!("{cidr:?} is not a CIDR (e.g. \"10.0.0.0/8\") or an IP address"),
            ),
        }
    }
    let path_prefix = raw.path_prefix.trim().trim_end_matches('/').to_string();
    if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
        p.push("authz.path_prefix", "must start with '/' (or be empty)");
    }
    let protocol = p.parse("authz.protocol", &raw.protocol, AuthzProtocol::Nginx);
    if protocol != AuthzProtocol::Envoy && !path_prefix.is_empty() {
        p.push(
            "authz.path_prefix",
            "applies to protocol = \"envoy\" (nginx and Traefik send the original URI in a header)",
        );
    }
    if protocol == AuthzProtocol::Envoy && GRPC_CHECK_PATH.starts_with(path_prefix.as_str()) {
        p.push(
            "authz.path_prefix",
            format!(
                "must be set with protocol = \"envoy\" (e.g. \"/check\", the same as Envoy's \
                 http_service path_prefix) and not begin {GRPC_CHECK_PATH}: Envoy's HTTP \
                 service appends the client's path to it, and the client's path must not be \
                 able to reach the gRPC Check method on the same listener"
            ),
        );
    }
    AuthzConfig {
        address,
        socket_mode,
        protocol,
        trusted_proxies,
        path_prefix,
    }
}
