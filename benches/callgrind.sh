#!/usr/bin/env bash
# Marginal user-space instructions per request of an example server under
# callgrind: (Ir of a 6 s run - Ir of a 2 s run) / (requests 6 s - requests 2 s),
# so start-up and shutdown cancel. Instruction counts repeat on a noisy
# machine where timings do not.
#
#   benches/callgrind.sh echo|http_hello EXAMPLES_DIR [EXAMPLES_DIR_BEFORE]
#
# EXAMPLES_DIR is a target/release/examples directory; with a second one,
# both are measured (before and after). Needs valgrind and a release
# shardloop-load (cargo build --release -p shardloop-loadgen).
set -euo pipefail
ex=$1
dirs=("$2")
[ $# -ge 3 ] && dirs=("$3" "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
load="$root/target/release/shardloop-load"
work=$(mktemp -d)
port=7480
for dir in "${dirs[@]}"; do
  for d in 2 6; do
    port=$((port + 1))
    valgrind --tool=callgrind --callgrind-out-file="$work/$d.out" "$dir/$ex" --shards 1 --port $port --no-pin >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
    w=()
    [ "$ex" = http_hello ] && w=(-w http)
    "$load" 127.0.0.1:$port -t 1 -c 16 -d ${d}s "${w[@]}" --json "$work/$d.json" >/dev/null 2>&1
    kill -INT $pid
    wait $pid || true
  done
  python3 - "$work" "$dir" <<'PY'
import json, sys
work, name = sys.argv[1], sys.argv[2]
def ir(p):
    for line in open(p):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
req = lambda d: json.load(open(f"{work}/{d}.json"))["requests"]
print(f"{name}: {(ir(f'{work}/6.out') - ir(f'{work}/2.out')) / (req(6) - req(2)):.0f} instructions per request")
PY
done
rm -rf "$work"
