#!/usr/bin/env bash
# Loopback load test: wrk straight at an nginx upstream vs through the sidecar.
#
#   bench/load.sh                    # 3 rounds each, alternating, 10 s per round
#   TARGETS=direct bench/load.sh     # nginx + wrk only (no sidecar build)
#
# Prints a markdown table (req/s, p50, p99, CPU per request, RSS) and the
# sidecar/direct ratios; a copy goes to bench/out/. Everything listens on
# 127.0.0.1 only; every round is bounded by DURATION.
#
# Knobs (env):
#   ROUNDS=3 DURATION=10s CONNECTIONS=32 WARMUP=2s   wrk settings (wrk -t1)
#   TARGETS="direct sidecar"                          which paths to measure
#   SIDECAR_BIN=...    use this binary instead of `cargo build --release`
#   RUST_LOG=info      sidecar log level (its log goes to a temp file)
# Hooks for an authenticated route (default: the route is public, and the
# issuer's jwks_url points at a closed loopback port, which a public route
# never needs):
#   TOKEN=<jwt>        sent as `Authorization: Bearer` on every request (both
#                      paths); the route becomes auth = "required" and the
#                      sidecar must be ready (/readyz) before the load starts
#   JWKS_FILE=path     served by the nginx upstream at /.well-known/jwks.json
#                      and used as the issuer's jwks_url
#   ISSUER=...         the token's `iss` (default http://127.0.0.1:9)
#   ROUTE_SCOPES='["dotnet-demo/dotnet"]'   scopes the route requires
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
TARGETS=${TARGETS:-direct sidecar}
TOKEN=${TOKEN:-}
JWKS_FILE=${JWKS_FILE:-}
ISSUER=${ISSUER:-http://127.0.0.1:9}
ROUTE_SCOPES=${ROUTE_SCOPES:-}
ROUTE_PATH=/weatherforecast
OUT_DIR=${OUT_DIR:-bench/out}
export RUST_LOG=${RUST_LOG:-info}

# shellcheck source=bench/lib.sh
. bench/lib.sh

# --- tools ------------------------------------------------------------------
apt_install_missing wrk:wrk nginx:nginx curl:curl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- processes we start, stopped on exit by their pid -----------------------
WORK=$(mktemp -d /tmp/cognito-sidecar-bench.XXXXXX)
NGINX_PID=
SIDECAR_PID=
cleanup() {
  local rc=$?
  for pid in "$SIDECAR_PID" "$NGINX_PID"; do
    if [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
    fi
  done
  if ((rc != 0)) && [[ -s $WORK/sidecar.log ]]; then
    log "sidecar log (last lines):"
    tail -n 20 "$WORK/sidecar.log" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- upstream: one nginx process, static answer -----------------------------
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
JWKS_LOCATION=
if [[ -n $JWKS_FILE ]]; then
  cp "$JWKS_FILE" "$WORK/nginx/jwks.json"
  JWKS_LOCATION="location = /.well-known/jwks.json { default_type application/json; alias $WORK/nginx/jwks.json; }"
fi
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    $JWKS_LOCATION
    location / {
      default_type application/json;
      return 200 '[{"date":"2025-01-01","temperatureC":21,"summary":"Mild"}]';
    }
  }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" &
NGINX_PID=$!
DIRECT_URL="http://127.0.0.1:$NGINX_PORT$ROUTE_PATH"
wait_http "$DIRECT_URL" "$NGINX_PID"
log "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NGINX_PORT (pid $NGINX_PID)"

# --- the sidecar --------------------------------------------------------------
SIDECAR_URL=
if [[ " $TARGETS " == *" sidecar "* ]]; then
  if [[ -z ${SIDECAR_BIN:-} ]]; then
    log "cargo build --release"
    cargo build --release --bin cognito-sidecar
    SIDECAR_BIN=target/release/cognito-sidecar
  fi
  SIDECAR_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  JWKS_URL=http://127.0.0.1:9/.well-known/jwks.json # closed port: never reached by a public route
  [[ -n $JWKS_FILE ]] && JWKS_URL="http://127.0.0.1:$NGINX_PORT/.well-known/jwks.json"
  ROUTE_AUTH=public
  READY_PATH=/healthz
  if [[ -n $TOKEN ]]; then
    ROUTE_AUTH=required
    READY_PATH=/readyz # keys must be loaded before the load starts
  fi
  {
    cat <<TOML
[listener]
address = "127.0.0.1:$SIDECAR_PORT"

[runtime]
worker_threads = 1

[admin]
address = "127.0.0.1:$ADMIN_PORT"

[upstream]
url = "http://127.0.0.1:$NGINX_PORT"

[[issuers]]
name = "bench"
issuer = "$ISSUER"
jwks_url = "$JWKS_URL"
token_use = ["any"]

[default]
auth = "deny"

[[routes]]
path = "$ROUTE_PATH"
auth = "$ROUTE_AUTH"
TOML
    if [[ -n $ROUTE_SCOPES ]]; then
      printf 'scopes = %s\n' "$ROUTE_SCOPES"
    fi
  } >"$WORK/config.toml"
  # SIDECAR_BIN would read as a config override (SIDECAR_<KEY>): not for the child.
  env -u SIDECAR_BIN "$SIDECAR_BIN" run --config "$WORK/config.toml" >"$WORK/sidecar.log" 2>&1 &
  SIDECAR_PID=$!
  wait_http "http://127.0.0.1:$ADMIN_PORT$READY_PATH" "$SIDECAR_PID"
  SIDECAR_URL="http://127.0.0.1:$SIDECAR_PORT$ROUTE_PATH"
  log "sidecar on 127.0.0.1:$SIDECAR_PORT, admin $ADMIN_PORT (pid $SIDECAR_PID), route auth=$ROUTE_AUTH"
fi

WRK_HEADERS=()
[[ -n $TOKEN ]] && WRK_HEADERS=(-H "Authorization: Bearer $TOKEN")
CURL_HEADERS=()
[[ -n $TOKEN ]] && CURL_HEADERS=(-H "Authorization: Bearer $TOKEN")

for url in "$DIRECT_URL" ${SIDECAR_URL:+"$SIDECAR_URL"}; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "${CURL_HEADERS[@]}" "$url")
  [[ $code == 200 ]] || die "GET $url answered $code, expected 200"
done

RSS_IDLE_KB=
[[ -n $SIDECAR_PID ]] && RSS_IDLE_KB=$(status_kb "$SIDECAR_PID" VmRSS)

# --- rounds -------------------------------------------------------------------
# run_wrk NAME URL DURATION -> sets RPS P50 P99 REQS, fails on errors
run_wrk() {
  local name=$1 url=$2 dur=$3 out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$dur" --latency "${WRK_HEADERS[@]}" "$url")
  printf '%s\n' "$out" >"$WORK/wrk-$name.txt"
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "$name: wrk saw errors or non-2xx answers"
  fi
  RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  REQS=$(awk '/ requests in / { print $1 }' <<<"$out")
  P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
}

ROWS=()
declare -A SERIES=()
for target in $TARGETS; do
  url=$DIRECT_URL
  [[ $target == sidecar ]] && url=$SIDECAR_URL
  [[ -n $url ]] || die "unknown target $target (use direct, sidecar)"
  log "warm-up $target ($WARMUP)"
  run_wrk "warmup-$target" "$url" "$WARMUP"
done

for ((round = 1; round <= ROUNDS; round++)); do
  for target in $TARGETS; do
    url=$DIRECT_URL
    [[ $target == sidecar ]] && url=$SIDECAR_URL
    ng0=$(cpu_ticks "$NGINX_PID")
    sc0=0
    [[ $target == sidecar ]] && sc0=$(cpu_ticks "$SIDECAR_PID")
    log "round $round/$ROUNDS: $target ($DURATION, $CONNECTIONS connections)"
    run_wrk "$target-$round" "$url" "$DURATION"
    ng_us=$(per_req_us $(($(cpu_ticks "$NGINX_PID") - ng0)) "$REQS")
    sc_us=-
    [[ $target == sidecar ]] && sc_us=$(per_req_us $(($(cpu_ticks "$SIDECAR_PID") - sc0)) "$REQS")
    ROWS+=("| $round | $target | $RPS | $P50 | $P99 | $sc_us | $ng_us |")
    SERIES[$target-rps]+="$RPS "
    SERIES[$target-p50]+="$P50 "
    SERIES[$target-p99]+="$P99 "
    [[ $target == sidecar ]] && SERIES[sidecar-cpu]+="$sc_us "
  done
done

RSS_PEAK_KB=
[[ -n $SIDECAR_PID ]] && RSS_PEAK_KB=$(status_kb "$SIDECAR_PID" VmHWM)

# --- report -------------------------------------------------------------------
report() {
  echo "## cognito-sidecar load test ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating; $(nproc) cores;" \
    "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') (1 process) upstream; sidecar worker_threads = 1;" \
    "route auth: ${ROUTE_AUTH:-n/a}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo "| round | path | req/s | p50 ms | p99 ms | sidecar CPU µs/req | nginx CPU µs/req |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
  if [[ -n $SIDECAR_PID && " $TARGETS " == *" direct "* ]]; then
    local d_rps s_rps d50 s50 d99 s99
    d_rps=$(num "$(median "${SERIES[direct-rps]}")" %.0f) s_rps=$(num "$(median "${SERIES[sidecar-rps]}")" %.0f)
    d50=$(median "${SERIES[direct-p50]}") s50=$(median "${SERIES[sidecar-p50]}")
    d99=$(median "${SERIES[direct-p99]}") s99=$(median "${SERIES[sidecar-p99]}")
    echo
    echo "| median | direct | sidecar | sidecar/direct |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| req/s | $d_rps | $s_rps | $(ratio "$s_rps" "$d_rps") |"
    echo "| p50 ms | $d50 | $s50 | $(ratio "$s50" "$d50") |"
    echo "| p99 ms | $d99 | $s99 | $(ratio "$s99" "$d99") |"
  fi
  if [[ -n $SIDECAR_PID ]]; then
    echo
    echo "sidecar: CPU $(num "$(median "${SERIES[sidecar-cpu]}")" %.1f) µs/request (median);" \
      "RSS idle $((RSS_IDLE_KB / 1024)) MiB ($RSS_IDLE_KB kB), peak (VmHWM) $((RSS_PEAK_KB / 1024)) MiB ($RSS_PEAK_KB kB)"
  fi
}

mkdir -p "$OUT_DIR"
REPORT_FILE="$OUT_DIR/load-$(date -u +%Y%m%dT%H%M%SZ).md"
report | tee "$REPORT_FILE"
log "saved $REPORT_FILE"
