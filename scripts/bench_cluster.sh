#!/usr/bin/env bash
# redis-benchmark --cluster against a 3-master cluster of redis-server and of ferrodis, one after
# the other on the same machine, and the ratio. Usage: scripts/bench_cluster.sh [BIN] (default
# target/release/ferrodis). Env: N (requests, 200000), C (clients, 50), PIPE ("1 16"),
# TESTS ("set,get"), BASE (first port, 23000; bus ports are +10000), FERRODIS_ARGS (extra
# arguments for the ferrodis nodes, e.g. "--io-threads 1").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$PWD/target/release/ferrodis}
N=${N:-200000}; C=${C:-50}; PIPE=${PIPE:-"1 16"}; TESTS=${TESTS:-set,get}; BASE=${BASE:-23000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

run_one() { # name binary -> lines "name test P rps"
    local name=$1 bin=$2 ports=() hosts="" extra=()
    [ "$name" = ferrodis ] && read -r -a extra <<< "${FERRODIS_ARGS:-}"
    pids=()
    for i in 1 2 3; do
        local p=$((BASE + i)); ports+=("$p"); hosts="$hosts 127.0.0.1:$p"
        mkdir -p "$work/$name/$p"
        (cd "$work/$name/$p" && exec "$bin" --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
            --cluster-enabled yes --cluster-node-timeout 5000 "${extra[@]}" > log 2>&1) &
        pids+=($!)
    done
    sleep 0.5
    # shellcheck disable=SC2086
    redis-cli --cluster create $hosts --cluster-replicas 0 --cluster-yes > "$work/$name/create.log" 2>&1
    for _ in $(seq 100); do
        ok=1; for p in "${ports[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0; done
        [ $ok = 1 ] && break; sleep 0.1
    done
    for P in $PIPE; do
        redis-benchmark --cluster -p "${ports[0]}" -t "$TESTS" -n $((N * P)) -c "$C" -P "$P" -r 100000 --csv 2>/dev/null \
            | tr -d '"' | awk -F, -v n="$name" -v p="$P" '$1 ~ /^[A-Z]+$/ && $2 ~ /^[0-9.]+$/ {print n, $1, p, $2}'
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

{ run_one redis redis-server; run_one ferrodis "$BIN"; } > "$work/results"
echo "| test | P | redis ops/s | ferrodis ops/s | ratio |"
echo "|---|---|---|---|---|"
awk '{ k=$2" "$3; v[$1" "k]=$4; keys[k]=1 } END { for (k in keys) { split(k, a, " "); r=v["redis "k]; f=v["ferrodis "k]; printf "| %s | %s | %.0f | %.0f | %.2f |\n", a[1], a[2], r, f, (r>0? f/r : 0) } }' "$work/results" | sort
