#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, starting from the committed corpus.
#
#   fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]     (default: 60 s, every target)
#
# Installs cargo-fuzz (pinned) if it is missing. Only the stable toolchain is needed:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags. The sidecar has two audited unsafe calls (none on input), so the
# targets run without a sanitizer (--sanitizer none): they look for panics and broken
# properties (see each target's doc comment), at about twice the speed of ASan builds.
# New corpus entries go to a temporary directory, not to fuzz/corpus; a crash is saved under
# fuzz/artifacts/TARGET/ and fails the run (reproduce: cargo fuzz run -s none TARGET FILE).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CARGO_FUZZ_VERSION=0.13.2
seconds="${1:-60}"
shift || true

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none

for target in "${targets[@]}"; do
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "=== fuzz $target (${seconds}s) ==="
  log="$work/log"
  if ! cargo fuzz run --sanitizer none "$target" "$work" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $target: FAILED (artifact under fuzz/artifacts/$target/)"
    exit 1
  fi
  runs="$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)"
  echo "fuzz $target: ${runs:-?} runs in ${seconds}s, ${cov:-cov: ?}, no crash"
  rm -rf "$work"
  trap - EXIT
done
