#!/usr/bin/env bash
# Runs ferrodis as given (`with_replica.sh --port N [args...]`) with one ferrodis replica of it on
# a free loopback port, for benchmarks that start "a server" (../shared/bench/compare.sh
# --reference/--candidate). Both end when this script ends, however it ends (a watcher kills
# them by PID if this script is killed with SIGKILL). FERRODIS selects the binary. A
# `--sync-replicas N` argument is applied with CONFIG SET once the replica is online.
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${FERRODIS:-$here/target/release/ferrodis}"
port=""
prev=""
sync=""
args=()
for a in "$@"; do
    [ "$prev" = "--port" ] && port="$a"
    if [ "$prev" = "--sync-replicas" ]; then sync="$a"; unset 'args[${#args[@]}-1]'; prev=""; continue; fi
    args+=("$a")
    prev="$a"
done
[ -n "$port" ] || { echo "with_replica.sh: --port N is required" >&2; exit 2; }
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rdir=$(mktemp -d)
"$bin" "${args[@]}" &
master=$!
for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
(cd "$rdir" && exec "$bin" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --replicaof 127.0.0.1 "$port") &
replica=$!
# --sync-replicas N is applied once the replica is online, so no write meets a missing replica.
for _ in $(seq 100); do redis-cli -p "$port" INFO replication | grep -q "state=online" && break; sleep 0.05; done
[ -n "$sync" ] && redis-cli -p "$port" CONFIG SET sync-replicas "$sync" >/dev/null
me=$$
( while kill -0 "$me" 2>/dev/null; do sleep 0.5; done; kill "$master" "$replica" 2>/dev/null; rm -rf "$rdir" ) &
trap 'kill "$master" "$replica" 2>/dev/null; rm -rf "$rdir"' EXIT
wait "$master"
