# syntax=docker/dockerfile:1
#
# cognito-sidecar container image.
#
#   docker build -t cognito-sidecar .
#   docker run --rm -p 8080:8080 \
#     -e SIDECAR_UPSTREAM__URL=http://127.0.0.1:5000 \
#     -e SIDECAR_ISSUERS__0__USER_POOL_ID=ap-south-1_p7GD1CkXO \
#     cognito-sidecar
#
# Configuration: the default file /etc/cognito-sidecar/config.toml (copied below)
# can be replaced by mounting a file or a ConfigMap over /etc/cognito-sidecar/,
# and every key can be overridden with SIDECAR_<SECTION>__<KEY> environment
# variables (see the README's Configuration section).

# --- build stage ------------------------------------------------------------
# Bookworm (glibc 2.36) to match the distroless cc-debian12 runtime below.
# aws-lc-sys builds with the C compiler already in this image (gcc, make) on
# x86_64 and aarch64 Linux, using pregenerated bindings: no cmake/clang needed.
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The crate (Cargo.toml, Cargo.lock, src/, and benches/ or tests/ when the
# manifest declares them); .dockerignore keeps target/, .git/, bench/out/ and
# deploy/ out of the context.
COPY . .

# Cache mounts keep the crates.io download and the target dir between builds
# (BuildKit); the binary is copied out of the cache mount inside the same RUN.
# The release profile keeps line tables (debug = "line-tables-only", for local
# profiling): about 50 MB. `objcopy --strip-debug` drops them (about 12 MB left)
# and keeps the symbol table, so a RUST_BACKTRACE=1 backtrace still names the
# functions (without file:line); a panic message keeps its file:line, which is
# in .rodata. (`strip --strip-all` saves 1.5 MB more but leaves no frames at all.)
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cognito-sidecar \
    && install -D -m 0755 target/release/cognito-sidecar /out/cognito-sidecar \
    && objcopy --strip-debug /out/cognito-sidecar

# --- runtime stage ----------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=builder /out/cognito-sidecar /usr/local/bin/cognito-sidecar
COPY config.toml /etc/cognito-sidecar/config.toml

# uid/gid 65532 = "nonroot" in distroless.
USER 65532:65532

# 8080: the authenticating listener. 9901: admin (/healthz, /readyz, /metrics);
# it binds 127.0.0.1 by default, set SIDECAR_ADMIN__ADDRESS=0.0.0.0:9901 for
# kubelet probes.
EXPOSE 8080 9901

# No HEALTHCHECK: distroless has no shell or curl. Orchestrators probe the admin
# port instead (Kubernetes httpGet /healthz and /readyz on 9901; ECS runs
# `cognito-sidecar healthcheck --url http://127.0.0.1:9901/readyz`).
ENTRYPOINT ["/usr/local/bin/cognito-sidecar"]
CMD ["run", "--config", "/etc/cognito-sidecar/config.toml"]
