//! Integration tests: real sockets on 127.0.0.1, a real JWKS server, a real upstream, the
//! sidecar in-process (and, in `cli`, as a child process).

mod admin;
mod alb;
mod auth;
mod authz;
mod authz_grpc;
mod behaviour;
mod browser;
mod cli;
mod cognito;
mod demo;
mod demo_issuer;
mod deploy;
mod forward;
mod front;
mod front_envoy;
mod front_nginx;
mod grpc;
mod hardening;
mod interop;
mod log_schema;
mod login;
mod pool;
mod rate_limit;
mod revocation;
mod routes;
mod sources;
mod support;
mod tls;
mod tracing;
mod when;
