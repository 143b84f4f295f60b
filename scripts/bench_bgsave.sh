#!/usr/bin/env bash
# Client latency during a BGSAVE of 1M keys: redis-benchmark SET (50 clients, random keys) with
# and without a BGSAVE started one second in, for ferrodis and redis-server, on loopback ports.
# Prints redis-benchmark's CSV lines (p99 and max latency in ms) and how long each BGSAVE took.
# Usage: bash scripts/bench_bgsave.sh [path/to/ferrodis]   (after cargo build --release)
set -u
cd "$(dirname "$0")/.."
FERRODIS=${1:-$PWD/target/release/ferrodis}
run() {
  local name=$1 bin=$2 port=$3
  local dir
  dir=$(mktemp -d)
  "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no ${EXTRA:-} > "$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" eval "for i=1,1000000 do redis.call('set','key:'..i, string.rep('v', 100)) end" 0 > /dev/null
  echo "$name keys: $(redis-cli -p "$port" dbsize)"
  redis-benchmark -p "$port" -t set -n 600000 -r 1000000 -c 50 -d 100 --csv 2>/dev/null | tail -1 | sed "s/^/$name no-bgsave: /"
  (
    sleep 1
    local s e
    s=$(date +%s.%N)
    redis-cli -p "$port" bgsave > /dev/null
    while redis-cli -p "$port" info persistence | grep -q 'rdb_bgsave_in_progress:1'; do sleep 0.05; done
    e=$(date +%s.%N)
    echo "$name bgsave took $(echo "$e - $s" | bc) s"
  ) &
  local w=$!
  redis-benchmark -p "$port" -t set -n 600000 -r 1000000 -c 50 -d 100 --csv 2>/dev/null | tail -1 | sed "s/^/$name with-bgsave: /"
  wait $w
  kill "$pid"
  wait "$pid" 2> /dev/null
  rm -rf "$dir"
}
echo '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"'
run ferrodis "$FERRODIS" 7711
run redis redis-server 7712
