# shellcheck shell=bash
# Helpers shared by bench/load.sh and bench/compare. Sourced, never run.

log() { printf '>> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0#./}" "$*" >&2; exit 1; }

# apt_install_missing CMD:PACKAGE... -- installs the packages whose command is
# missing, with one `apt-get update` first (only when something is missing).
apt_install_missing() {
  local pair cmd missing=()
  for pair in "$@"; do
    cmd=${pair%%:*}
    command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || missing+=("${pair#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID [CURL_ARGS...] -- poll URL until it answers 2xx, at most ~10 s;
# fail early if PID died. CURL_ARGS: e.g. --cacert for an https URL.
wait_http() {
  local url=$1 pid=$2 i
  shift 2
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || die "process $pid exited while waiting for $url"
    curl -fsS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  die "no 2xx from $url within ~10 s"
}

# CPU ticks (utime + stime, all threads) and /proc/PID/status fields in kB.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# us of CPU per request from a tick delta: per_req_us TICKS REQUESTS
per_req_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0 }'; }

# wrk prints latencies as 123.45us / 1.23ms / 1.23s: normalise to ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# median "1 2 3" -> 2; min / max of the same kind of list.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
min_of() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -n 1; }
max_of() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n 1; }
num() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
