#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against the real binary, and the
# differential tests against Debian's redis-server 7.0.15 (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-sentinel >/dev/null 2>&1; then
    echo "== installing Debian's redis-server, redis-tools and redis-sentinel (the reference for differential tests)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools redis-sentinel >/dev/null
fi
redis-server --version

if ! python3 -c "import redis" >/dev/null 2>&1; then
    echo "== installing redis-py (the real-client tests use it)"
    python3 -m pip install -q redis
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test --workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^passed/) n += $(i-1) } END { print n + 0 }' "$log")
failed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^failed/) n += $(i-1) } END { print n + 0 }' "$log")
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
[ "$status" -eq 0 ] || exit "$status"

# Redis's own test suite (types and core groups) against the binary cargo test just built.
echo "== Redis 7.0.15's test suite: types and core (scripts/conformance-gate.sh)"
bash scripts/conformance-gate.sh
