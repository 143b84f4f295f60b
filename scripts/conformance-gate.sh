#!/usr/bin/env bash
# Redis 7.0.15's own test suite against ferrodis, as a gate: runs the `types` and `core` groups of
# ../shared/conformance/redis-suite.sh with ferrodis in redis-server's place (no log shim: ferrodis
# prints the startup lines runtest waits for) and fails when a group passes fewer tests than the
# floor recorded in scripts/conformance-floor.txt. The floor only goes up: raise it when a change
# makes more tests pass.
#
#   bash scripts/conformance-gate.sh                 # the binary cargo test built (target/debug)
#   SERVER_BIN=$PWD/target/release/ferrodis bash scripts/conformance-gate.sh
#   CONFORMANCE_GROUPS="types" bash scripts/conformance-gate.sh  # one group
#
# The other groups (persistence, replication, cluster, tools, internals) run the same way by hand:
#   SERVER_BIN=$PWD/target/release/ferrodis ../shared/conformance/redis-suite.sh persistence
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
suite=$root/../shared/conformance/redis-suite.sh
if [ ! -f "$suite" ]; then
    echo "conformance gate: $suite not found (../shared is not beside this checkout): skipped"
    exit 0
fi
if ! command -v tclsh >/dev/null 2>&1; then
    echo "== installing tcl (Redis's test suite runs on it)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tcl >/dev/null
fi
bin=${SERVER_BIN:-$root/target/debug/ferrodis}
if [ ! -x "$bin" ]; then
    cargo build --locked --bin ferrodis
    bin=$root/target/debug/ferrodis
fi
floor_file=$root/scripts/conformance-floor.txt
status=0
for group in ${CONFORMANCE_GROUPS:-types core}; do
    floor=$(awk -v g="$group" '$1 == g { print $2 }' "$floor_file")
    out=$(mktemp)
    echo "== conformance: group $group (floor ${floor:-none})"
    # A test that stalls (a hang) fails after a minute rather than runtest's five.
    SERVER_BIN=$bin STALL_TIMEOUT=${STALL_TIMEOUT:-60} bash "$suite" "$group" 2>&1 | tee "$out" || true
    passed=$(sed -n "s/^== group $group: passed=\([0-9]*\).*/\1/p" "$out" | tail -1)
    rm -f "$out"
    if [ -z "$passed" ]; then
        echo "conformance: group $group did not report a result"
        status=1
    elif [ -n "$floor" ] && [ "$passed" -lt "$floor" ]; then
        echo "conformance: group $group passed $passed, below the floor of $floor"
        status=1
    else
        echo "conformance: group $group passed $passed (floor ${floor:-none})"
    fi
done
exit $status
