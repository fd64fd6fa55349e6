//! cognito-sidecar: an authenticating reverse proxy that sits in front of a service and lets
//! through only requests bearing a valid Amazon Cognito (or any OIDC issuer's) JWT, with the
//! caller's identity injected as headers.
//!
//! The binary is a thin shell over this library: [`config::Config`] loads and validates the
//! configuration, [`server::Sidecar::start`] binds and serves, [`lifecycle::run`] adds the
//! signal handling (SIGHUP reload, SIGTERM/SIGINT drain).

// No unsafe code, but for two audited calls, each allowed where it is alone: `memory` (madvise)
// and `otlp` (sched_setscheduler, the export thread's SCHED_BATCH).
#![deny(unsafe_code)]

pub mod access;
pub mod admin;
pub mod admission;
pub mod alb;
pub mod alb_key;
pub mod authz;
pub mod authz_grpc;
pub mod bearer;
pub mod check;
pub mod claims;
pub mod condition;
pub mod config;
pub mod decide;
pub mod demo;
pub mod denylist;
pub mod describe;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod inspect;
pub mod jwks;
pub mod jws;
pub mod lifecycle;
pub mod logbuf;
pub mod login;
pub mod memory;
pub mod metrics;
pub mod otlp;
pub mod path;
pub mod proxy;
pub mod ratelimit;
pub mod revocation;
pub mod routes;
pub mod server;
pub mod session;
pub mod state;
pub mod tls;
pub mod token;
pub mod trace;
pub mod upstream;
pub mod verify;

pub use config::Config;
pub use server::Sidecar;
