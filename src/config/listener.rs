//! Validates `[listener]`, `[admin]` and `[runtime]`: where the sidecar listens and how it
//! runs. Binding and serving are left to `crate::server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::model::{AdminConfig, ListenerConfig, RuntimeConfig, TlsFiles};
use super::problems::Problems;
use super::raw::{RawAdmin, RawListener, RawRuntime};

pub(super) fn parse_addr(p: &mut Problems, key: &str, value: &str) -> Option<SocketAddr> {
    match value.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(
                key,
                format!(
                    "invalid socket address {value:?} (expected IP:PORT, e.g. \"0.0.0.0:8080\")"
                ),
            );
            None
        }
    }
}

pub(super) fn validate_listener(p: &mut Problems, raw: &RawListener) -> ListenerConfig {
    let address = parse_addr(p, "listener.address", &raw.address)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
    let header_read_timeout = p.duration("listener.header_read_timeout", &raw.header_read_timeout);
    if header_read_timeout.is_zero() {
        p.push("listener.header_read_timeout", "must be greater than zero");
    }
    let drain_timeout = p.duration("listener.drain_timeout", &raw.drain_timeout);
    if raw.max_connections == 0 {
        p.push("listener.max_connections", "must be at least 1");
    }
    if raw.max_header_bytes < 8192 || raw.max_header_bytes > 1 << 20 {
        p.push(
            "listener.max_header_bytes",
            "must be between 8192 and 1048576",
        );
    }
    let tls = raw.tls.as_ref().map(|t| {
        for (k, v) in [("cert", &t.cert), ("key", &t.key)] {
            if !Path::new(v).is_file() {
                p.push(format!("listener.tls.{k}"), format!("file {v:?} not found"));
            }
        }
        TlsFiles {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
        }
    });
    ListenerConfig {
        address,
        header_read_timeout,
        tls,
        max_connections: raw.max_connections,
        max_header_bytes: raw.max_header_bytes,
        drain_timeout,
    }
}

pub(super) fn validate_runtime(p: &mut Problems, raw: &RawRuntime) -> RuntimeConfig {
    if raw.worker_threads > 1024 {
        p.push(
            "runtime.worker_threads",
            "must be at most 1024 (0 = one per core)",
        );
    }
    RuntimeConfig {
        worker_threads: raw.worker_threads,
        release_startup_code: raw.release_startup_code,
    }
}

/// `[admin]`; `listener` is the main listener's address, which the admin one must not reuse.
pub(super) fn validate_admin(
    p: &mut Problems,
    raw: &RawAdmin,
    listener: SocketAddr,
) -> AdminConfig {
    let address = if raw.address.trim().is_empty() {
        None
    } else {
        parse_addr(p, "admin.address", &raw.address)
    };
    if address.is_some_and(|a| listener.port() != 0 && a == listener) {
        p.push("admin.address", "must differ from listener.address");
    }
    AdminConfig { address }
}
