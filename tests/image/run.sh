#!/usr/bin/env bash
# The container image, end to end, without pulling anything:
#
#   tests/image/run.sh target/debug/cognito-sidecar
#
# Assembles an image shaped like the Dockerfile's runtime stage FROM scratch: the given
# binary stripped as the Dockerfile strips it, the shared libraries it links (glibc,
# libgcc_s, the loader: the libraries the distroless cc base provides), CA certificates,
# /etc/passwd with the nonroot user, and the Dockerfile's own USER, EXPOSE, ENTRYPOINT and
# CMD lines. Then it runs the image with podman (host network, everything on 127.0.0.1)
# against a JWKS server and an upstream (servers.py) and checks that:
#   - the image config is USER 65532:65532 with the Dockerfile's ENTRYPOINT and CMD, and
#     the image holds no shell;
#   - the default CMD starts the sidecar from /etc/cognito-sidecar/config.toml and it gets
#     ready (/readyz on the admin port), fetching the JWKS from inside the container;
#   - a public route is proxied, a protected route answers 401 without a token and with a
#     forged one, and a signed token gets through with its subject forwarded;
#   - the process runs as uid/gid 65532 with no effective capabilities, `healthcheck`
#     (the ECS health check) works inside the image and /bin/sh cannot be exec'd;
#   - SIGTERM (podman stop) ends it by itself with exit code 0;
# then removes the container, the images and podman's storage (a temporary directory).
#
# Needs root (podman rootful) and installs what it needs with apt (podman, runc, curl,
# openssl, binutils, ca-certificates). If this machine cannot run containers at all (a
# probe image holding only the dynamic loader fails to run), it says so loudly with the
# error and exits 0; IMAGE_TEST_REQUIRE=1 makes that a failure.
set -euo pipefail

if [[ $# -ne 1 || ! -x $1 ]]; then
  echo "usage: $0 path/to/cognito-sidecar (an executable)" >&2
  exit 2
fi
binary="$(realpath "$1")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dockerfile="$here/../../Dockerfile"

fail() {
  echo "image test FAILED: $*" >&2
  exit 1
}
skip() {
  if [[ ${IMAGE_TEST_REQUIRE:-0} == 1 ]]; then
    fail "IMAGE_TEST_REQUIRE=1 and this machine cannot run containers: $*"
  fi
  printf '\n*** image test SKIPPED: this machine cannot run containers ***\n%s\n\n' "$*" >&2
  exit 0
}

[[ $(id -u) -eq 0 ]] || fail "needs root (rootful podman, apt-get)"

# --- the Dockerfile, as the image must mirror it -------------------------------
# The build stage strips the binary with this command; the test strips its binary the
# same way, so the two must agree.
strip_cmd=(objcopy --strip-debug)
grep -q -- "${strip_cmd[*]} /out/cognito-sidecar" "$dockerfile" ||
  fail "the Dockerfile no longer strips with '${strip_cmd[*]} /out/cognito-sidecar': update tests/image/run.sh to match"
runtime_stage="$(sed -n '/^FROM gcr\.io\/distroless\//,$p' "$dockerfile")"
[[ -n $runtime_stage ]] || fail "no 'FROM gcr.io/distroless/...' runtime stage in the Dockerfile"
grep -qx 'COPY --from=builder /out/cognito-sidecar /usr/local/bin/cognito-sidecar' <<<"$runtime_stage" ||
  fail "the runtime stage no longer installs the binary at /usr/local/bin/cognito-sidecar"
grep -qx 'COPY config.toml /etc/cognito-sidecar/config.toml' <<<"$runtime_stage" ||
  fail "the runtime stage no longer installs the config at /etc/cognito-sidecar/config.toml"
directives="$(grep -E '^(USER|EXPOSE|ENTRYPOINT|CMD) ' <<<"$runtime_stage" || true)"
[[ $(wc -l <<<"$directives") -eq 4 ]] ||
  fail "expected one USER, EXPOSE, ENTRYPOINT and CMD line in the runtime stage, got:"$'\n'"$directives"

# --- tools ------------------------------------------------------------------------
# runc, not Debian 12's default crun 1.8: crun refuses hosts with a hybrid cgroup layout
# whose cgroup2 hierarchy has controllers ("cgroups in hybrid mode not supported"); runc
# runs there and on plain cgroup v2 alike. No recommends: rootful, host network and the
# vfs driver need none of them (buildah, slirp4netns, fuse-overlayfs, uidmap, ...).
missing=()
command -v podman >/dev/null || missing+=(podman)
[[ -x /usr/sbin/runc || -x /usr/bin/runc ]] || missing+=(runc)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v objcopy >/dev/null || missing+=(binutils)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "$(podman --version), $(runc --version | head -n1), $(openssl version)"

# --- podman, isolated ---------------------------------------------------------------
# Its own storage (vfs: no overlay or fuse needed) and state under a temporary directory,
# cgroupfs (no systemd needed), events to a file (no journald needed).
work="$(mktemp -d /tmp/cognito-sidecar-image.XXXXXX)"
podman=(podman --root "$work/storage" --runroot "$work/run" --tmpdir "$work/libpod"
  --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc)
# Every container: host network (the JWKS, the upstream and the test client are on the
# host's 127.0.0.1), no proxy variables passed in, and explicit rlimits: podman's defaults
# (nofile 1048576, nproc 4194304) are above the hard limits wherever root lacks
# CAP_SYS_RESOURCE, and the runtime then fails to set them.
run_opts=(--network host --http-proxy=false --pull never --log-driver k8s-file
  --ulimit nofile=4096:4096 --ulimit nproc=1024:1024)
tag="localhost/cognito-sidecar-image-test:$$"
probe_tag="localhost/cognito-sidecar-image-probe:$$"
ctr="cognito-sidecar-image-test-$$"
fixture_pid=""

cleanup() {
  if [[ -n $fixture_pid ]]; then
    kill "$fixture_pid" 2>/dev/null || true
    wait "$fixture_pid" 2>/dev/null || true
  fi
  if [[ -d $work/storage ]]; then
    "${podman[@]}" rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
    "${podman[@]}" rmi -f "$tag" "$probe_tag" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- the image's files ---------------------------------------------------------------
rootfs="$work/ctx/rootfs"
install -d "$rootfs/usr/local/bin" "$rootfs/etc/cognito-sidecar" "$rootfs/etc/ssl/certs"
install -d -m 1777 "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/usr/local/bin/cognito-sidecar"
"${strip_cmd[@]}" "$rootfs/usr/local/bin/cognito-sidecar"
echo "binary: $(stat -c %s "$binary") bytes, stripped: $(stat -c %s "$rootfs/usr/local/bin/cognito-sidecar") bytes"

# The shared libraries, where the loader looks for them. distroless/cc-debian12 has glibc
# (libc, libm, the loader, ...), libgcc_s, libstdc++, libgomp and libssl3; a library outside
# that set would be missing in the real image, so it fails the test rather than being copied.
ldd_out="$(ldd "$binary" 2>&1)" || fail "ldd $binary: $ldd_out"
if grep -q 'not found' <<<"$ldd_out"; then fail "ldd: a library is not found:"$'\n'"$ldd_out"; fi
mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out")
loader=""
for lib in "${libs[@]}"; do
  case "${lib##*/}" in
    ld-linux*.so.*) loader="$lib" ;;
    libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | libresolv.so.2) ;;
    libgcc_s.so.1 | libstdc++.so.6 | libgomp.so.1 | libssl.so.3 | libcrypto.so.3) ;;
    *) fail "the binary links ${lib##*/}, which distroless/cc-debian12 does not have" ;;
  esac
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done
[[ -n $loader ]] || fail "no dynamic loader in ldd's output:"$'\n'"$ldd_out"
echo "libraries: ${libs[*]}"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
# As in distroless: root, nobody and nonroot (65532), no login shells.
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

# --- can this machine run a container at all? ------------------------------------------
# A probe image with nothing but the loader (it runs by itself: `ld.so --version`). If it
# fails, containers cannot run here: skip. Anything after this that fails is a failure.
probe="$work/probe"
install -D -m 0755 "$(readlink -f "$loader")" "$probe/rootfs$loader"
printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["%s"]\n' "$loader" >"$probe/Containerfile"
if ! out="$("${podman[@]}" build -q --pull=never -t "$probe_tag" "$probe" 2>&1)"; then
  skip "podman build of a FROM scratch probe image failed:"$'\n'"$out"
fi
if ! out="$("${podman[@]}" run --rm "${run_opts[@]}" "$probe_tag" --version 2>&1)"; then
  skip "podman run of the probe image (the dynamic loader only) failed:"$'\n'"$out"
fi
echo "probe container ran: $(head -n1 <<<"$out")"

# --- the outside world: JWKS and upstream on 127.0.0.1 -----------------------------------
python3 "$here/servers.py" "$work" >"$work/servers.log" 2>&1 &
fixture_pid=$!
for _ in $(seq 300); do
  [[ -f $work/ports ]] && break
  kill -0 "$fixture_pid" 2>/dev/null || fail "servers.py exited: $(cat "$work/servers.log")"
  sleep 0.1
done
[[ -f $work/ports ]] || fail "servers.py did not report its ports within 30 s"
read -r jwks_port upstream_port <"$work/ports"
token="$(cat "$work/token")"

# Both listeners on port 0: the sidecar logs the addresses it bound (JSON log).
cat >"$rootfs/etc/cognito-sidecar/config.toml" <<EOF
[listener]
address = "127.0.0.1:0"
drain_timeout = "5s"
[admin]
address = "127.0.0.1:0"
[upstream]
url = "http://127.0.0.1:$upstream_port"
[[issuers]]
name = "image-test"
user_pool_id = "local-1_ImagePool"
jwks_url = "http://127.0.0.1:$jwks_port/jwks.json"
client_ids = ["image-client"]
token_use = ["access"]
[default]
auth = "required"
[[routes]]
path = "/public/**"
auth = "public"
[[routes]]
path = "/private/**"
scopes = ["image-test/read"]
[log]
format = "json"
EOF

# --- build ------------------------------------------------------------------------------
{
  echo 'FROM scratch'
  echo 'COPY rootfs/ /'
  echo "$directives"
} >"$work/ctx/Containerfile"
echo "--- Containerfile"
cat "$work/ctx/Containerfile"
"${podman[@]}" build -q --pull=never -t "$tag" "$work/ctx" >/dev/null

config="$("${podman[@]}" image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$tag")"
want='65532:65532 ["/usr/local/bin/cognito-sidecar"] ["run","--config","/etc/cognito-sidecar/config.toml"]'
[[ $config == "$want" ]] || fail "image config: got '$config', want '$want'"
echo "image config: $config"

# --- run it with the Dockerfile's ENTRYPOINT and CMD ----------------------------------------
"${podman[@]}" run -d --name "$ctr" "${run_opts[@]}" "$tag" >/dev/null
logs() { "${podman[@]}" logs "$ctr" 2>&1; }
running() { [[ $("${podman[@]}" inspect --format '{{.State.Running}}' "$ctr") == true ]]; }

listening=""
for _ in $(seq 300); do
  listening="$(logs | grep -m1 '"message":"cognito-sidecar listening"' || true)"
  [[ -n $listening ]] && break
  running || fail "the container exited:"$'\n'"$(logs)"
  sleep 0.1
done
[[ -n $listening ]] || fail "no 'cognito-sidecar listening' log line within 30 s:"$'\n'"$(logs)"
proxy="$(sed -n 's/.*"proxy":"Some(\(127\.0\.0\.1:[0-9]*\))".*/\1/p' <<<"$listening")"
admin="$(sed -n 's/.*"admin":"Some(\(127\.0\.0\.1:[0-9]*\))".*/\1/p' <<<"$listening")"
[[ -n $proxy && -n $admin ]] || fail "cannot read the addresses from: $listening"

# One request; prints "<status> <body>" ("000 " if there was no answer).
http() {
  local code
  rm -f "$work/body"
  code="$(curl -sS --noproxy '*' --max-time 5 -o "$work/body" -w '%{http_code}' "$@")" || true
  printf '%s %s' "${code:-000}" "$(cat "$work/body" 2>/dev/null || true)"
}

ready=""
for _ in $(seq 300); do
  ready="$(http "http://$admin/readyz")"
  [[ $ready == "200 ready"* ]] && break
  running || fail "the container exited:"$'\n'"$(logs)"
  sleep 0.1
done
[[ $ready == "200 ready"* ]] || fail "/readyz did not answer 200 within 30 s (last: $ready):"$'\n'"$(logs)"
echo "ready: proxy $proxy, admin $admin"

expect() { # expect <what> <status> <body substring> -- curl args...
  local what="$1" status="$2" body="$3" got
  shift 4
  got="$(http "$@")"
  [[ $got == "$status "* && $got == *"$body"* ]] || fail "$what: got '$got', want $status with '$body'"
  echo "ok: $what -> $got"
}
expect "public route" 200 '"path": "/public/hello", "x-auth-sub": null' -- "http://$proxy/public/hello"
expect "protected route, no token" 401 '"error":"unauthorized","error_description":"missing"' -- "http://$proxy/private/data"
# The same token with its signature's first character changed (still base64url).
sig="${token##*.}"
if [[ ${sig:0:1} == A ]]; then first=B; else first=A; fi
forged="${token%.*}.$first${sig:1}"
expect "protected route, forged signature" 401 '"error":"invalid_token","error_description":"bad_signature"' -- \
  -H "Authorization: Bearer $forged" "http://$proxy/private/data"
expect "protected route, signed token" 200 '"path": "/private/data", "x-auth-sub": "image-client"' -- \
  -H "Authorization: Bearer $token" "http://$proxy/private/data"

# --- who it runs as, and what the image holds ------------------------------------------------
pid="$("${podman[@]}" inspect --format '{{.State.Pid}}' "$ctr")"
status="$(cat "/proc/$pid/status")"
grep -Eq '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || fail "process uids: $(grep '^Uid:' <<<"$status")"
grep -Eq '^Gid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || fail "process gids: $(grep '^Gid:' <<<"$status")"
grep -Eq '^CapEff:\s+0+$' <<<"$status" || fail "effective capabilities: $(grep '^CapEff:' <<<"$status")"
echo "ok: the sidecar (host pid $pid) runs as uid/gid 65532, no effective capabilities"

out="$("${podman[@]}" exec "$ctr" /usr/local/bin/cognito-sidecar healthcheck --url "http://$admin/readyz" 2>&1)" ||
  fail "healthcheck inside the container failed: $out"
echo "ok: cognito-sidecar healthcheck inside the container"
if out="$("${podman[@]}" exec "$ctr" /bin/sh -c true 2>&1)"; then
  fail "/bin/sh ran inside the container"
fi
grep -qi 'no such file' <<<"$out" || fail "exec /bin/sh failed, but not for want of a shell: $out"
"${podman[@]}" export -o "$work/fs.tar" "$ctr"
files="$(tar -tf "$work/fs.tar")"
shells="$(grep -E '(^|/)(sh|bash|dash|ash|busybox)$' <<<"$files" || true)"
[[ -z $shells ]] || fail "the image holds a shell: $shells"
echo "ok: no shell; the image holds: $(grep -v '/$' <<<"$files" | tr '\n' ' ')"

# --- SIGTERM ------------------------------------------------------------------------------------
# Stop with SIGTERM, allowing 20 s before SIGKILL: the sidecar (PID 1 here) must exit by itself.
"${podman[@]}" stop -t 20 "$ctr" >/dev/null
exit_code="$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$ctr")"
[[ $exit_code == 0 ]] || fail "exit code after SIGTERM: $exit_code (137 = killed):"$'\n'"$(logs)"
echo "ok: SIGTERM -> exit code 0"

"${podman[@]}" rm "$ctr" >/dev/null
"${podman[@]}" rmi "$tag" "$probe_tag" >/dev/null
[[ -z $("${podman[@]}" images -q) ]] || fail "images left behind: $("${podman[@]}" images)"
echo "image test: ok"
