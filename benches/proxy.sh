#!/usr/bin/env bash
# Proxy throughput per proxy CPU-second: echo_client -> proxy -> echo,
# the proxy alone on one core, client and backend on another. Runs each
# proxy binary given, alternating, ROUNDS times per message size, and
# prints messages per second and messages per proxy CPU-second (utime +
# stime from /proc) for each run, then the medians.
#
#   benches/proxy.sh PROXY_BIN [PROXY_BIN_BEFORE]
#
# CALLGRIND=1 instead counts the proxy's marginal user-space instructions
# per message under callgrind ((Ir of a 6 s run - Ir of a 2 s run) /
# (messages 6 s - messages 2 s)), which repeat where timings do not.
#
# Needs release builds of the echo example and echo_client:
#   cargo build --release -p shardloop --example echo --example proxy \
#       -p shardloop-benches --bin echo_client
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bins=("$@")
rounds=${ROUNDS:-3}
secs=${SECS:-5}
sizes=${SIZES:-"64 16384"}
echo_bin="$root/target/release/examples/echo"
client="$root/target/release/echo_client"
tck=$(getconf CLK_TCK)
taskset -c 0 "$echo_bin" --shards 1 --port 7590 --no-pin >/dev/null 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do (echo >/dev/tcp/127.0.0.1/7590) 2>/dev/null && break; sleep 0.1; done
if [ -n "${CALLGRIND:-}" ]; then
  for size in $sizes; do
    for b in "${bins[@]}"; do
      w=$(mktemp -d)
      for d in 2 6; do
        valgrind --tool=callgrind --callgrind-out-file="$w/$d.out" "$b" --shards 1 --port 7592 \
          --backend 127.0.0.1:7590 >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/7592) 2>/dev/null && break; sleep 0.2; done
        "$client" --addr 127.0.0.1:7592 -c 16 --size "$size" --pipeline 2 -d $d --warmup 0 >"$w/$d.txt"
        kill -INT $pid; wait $pid 2>/dev/null || true
      done
      python3 - "$w" "$b" "$size" <<'PY'
import re, sys
w, b, size = sys.argv[1:]
def ir(p):
    for line in open(p):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
def n(d):
    return int(re.search(r": (\d+) messages", open(f"{w}/{d}.txt").read()).group(1))
print(f"{b} size={size}: {(ir(f'{w}/6.out') - ir(f'{w}/2.out')) / (n(6) - n(2)):.0f} instructions per message")
PY
    done
  done
  exit 0
fi
out=$(mktemp)
for size in $sizes; do
  for r in $(seq 1 "$rounds"); do
    for b in "${bins[@]}"; do
      taskset -c 1 "$b" --shards 1 --port 7591 --backend 127.0.0.1:7590 >/dev/null 2>&1 &
      pid=$!
      for _ in $(seq 1 50); do (echo >/dev/tcp/127.0.0.1/7591) 2>/dev/null && break; sleep 0.1; done
      t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
      line=$(taskset -c 0 "$client" --addr 127.0.0.1:7591 -c 32 --size "$size" --pipeline 4 -d "$secs" --warmup 0)
      t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
      kill -INT $pid; wait $pid 2>/dev/null || true
      rate=$(echo "$line" | sed -E 's/.* = ([0-9]+) msg\/s.*/\1/')
      cpu=$(python3 -c "print(($t1 - $t0) / $tck)")
      per=$(python3 -c "print(round($rate * $secs / max($cpu, 0.01)))")
      echo "$b size=$size round=$r: $rate msg/s, proxy CPU ${cpu}s, $per msg per proxy CPU-second"
      echo "$b $size $rate $per" >>"$out"
    done
  done
done
python3 - "$out" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, size, rate, per = line.split()
    rows[(b, int(size))].append((int(rate), int(per)))
for (b, size), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"median {b} size={size}: {statistics.median(r for r, _ in v):.0f} msg/s, "
          f"{statistics.median(p for _, p in v):.0f} msg per proxy CPU-second")
PY
