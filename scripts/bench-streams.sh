#!/usr/bin/env bash
# Stream workloads, redis-server against ferrodis in one run (redis-benchmark, 50 clients):
#   xadd        XADD s * f v                                (unpipelined and -P 16)
#   xrange100   XRANGE s - + COUNT 100 on a 10k-entry stream
#   xreadgroup  XREADGROUP GROUP g c COUNT 1 STREAMS s >    (a delivery into the PEL)
#   xack        XACK s g <id>                               (acknowledging pending entries)
# and bytes per entry for N entries of 5 small fields (used_memory with the stream minus after
# DEL, so the replication backlog ferrodis keeps is not counted). Medians of ROUNDS rounds;
# ratios above 1 mean ferrodis is faster.
#
#   scripts/bench-streams.sh [--candidate target/release/ferrodis] [--rounds 3] [--requests 200000] [--entries 1000000]
set -euo pipefail
CAND=target/release/ferrodis ROUNDS=3 REQ=200000 ENTRIES=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --candidate) CAND=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --requests) REQ=$2; shift 2 ;;
    --entries) ENTRIES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # bin port
  "$1" --port "$2" --save "" --appendonly no >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$2" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "$1 did not start" >&2; exit 1
}
RP=$(free_port); FP=$(free_port)
start redis-server "$RP"; start "$CAND" "$FP"

bench() { # port pipeline command...
  local port=$1 p=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$REQ" -P "$p" -q "$@" 2>/dev/null | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1
}
prepare() { # port workload
  local c="redis-cli -p $1"
  $c FLUSHALL >/dev/null
  case $2 in
    xrange100)
      python3 -c "
import sys
sys.stdout.write(''.join('*5\r\n\$4\r\nXADD\r\n\$1\r\ns\r\n\$%d\r\n%s\r\n\$1\r\nf\r\n\$1\r\nv\r\n' % (len('%d-1' % i), '%d-1' % i) for i in range(1, 10001)))
" | $c --pipe >/dev/null ;;
    xreadgroup|xack)
      python3 -c "
import sys
sys.stdout.write(''.join('*5\r\n\$4\r\nXADD\r\n\$1\r\ns\r\n\$%d\r\n%s\r\n\$1\r\nf\r\n\$1\r\nv\r\n' % (len('%d-1' % i), '%d-1' % i) for i in range(1, $REQ + 1)))
" | $c --pipe >/dev/null
      $c XGROUP CREATE s g 0 >/dev/null
      if [ "$2" = xack ]; then $c XREADGROUP GROUP g c STREAMS s '>' >/dev/null; fi ;;
  esac
}
run() { # port workload pipeline
  case $2 in
    xadd) bench "$1" "$3" XADD s '*' f v ;;
    xrange100) bench "$1" "$3" XRANGE s - + COUNT 100 ;;
    xreadgroup) bench "$1" "$3" XREADGROUP GROUP g c COUNT 1 STREAMS s '>' ;;
    # __rand_int__ picks pending IDs (1..REQ)-1 at random: most are acknowledged once.
    xack) bench "$1" "$3" -r "$REQ" XACK s g __rand_int__-1 ;;
  esac
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf "%-12s %3s %12s %12s %7s\n" workload P redis ferrodis ratio
for w in xadd xrange100 xreadgroup xack; do
  for p in 1 16; do
    r=(); f=()
    for _ in $(seq "$ROUNDS"); do
      prepare "$RP" $w; r+=("$(run "$RP" $w $p)")
      prepare "$FP" $w; f+=("$(run "$FP" $w $p)")
    done
    rm=$(printf '%s\n' "${r[@]}" | median); fm=$(printf '%s\n' "${f[@]}" | median)
    printf "%-12s %3s %12s %12s %7.2f\n" $w $p "$rm" "$fm" "$(echo "$fm / $rm" | bc -l)"
  done
done

mem() { # port
  local c="redis-cli -p $1"
  $c FLUSHALL >/dev/null
  python3 -c "
import sys
out=[]
for i in range(1,$ENTRIES+1):
    a=['XADD','s','%d-1'%i,'name','user%d'%i,'age',str(i%90),'city','paris','score',str(i*7),'ok','1']
    out.append('*%d\r\n'%len(a)+''.join('\$%d\r\n%s\r\n'%(len(x),x) for x in a))
sys.stdout.write(''.join(out))
" | $c --pipe >/dev/null
  sleep 0.5
  local a; a=$($c INFO memory | grep '^used_memory:' | cut -d: -f2 | tr -d '\r')
  $c DEL s >/dev/null; sleep 0.5
  local b; b=$($c INFO memory | grep '^used_memory:' | cut -d: -f2 | tr -d '\r')
  echo $(( (a - b) / ENTRIES ))
}
echo "bytes per entry ($ENTRIES entries, 5 fields): redis $(mem "$RP"), ferrodis $(mem "$FP")"
