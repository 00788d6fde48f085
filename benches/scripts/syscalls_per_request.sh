#!/usr/bin/env bash
# Syscalls per request, epoll vs io-uring: the echo example (1 shard, core 0)
# under strace -c -f, driven by shardloop-load (core 1) for 2 s. Needs a
# release build: cargo build --release -p shardloop --example echo and
# -p shardloop-loadgen --bin shardloop-load.
set -u
cd "$(dirname "$0")/../.."
for b in epoll io-uring; do
  ./target/release/examples/echo -s 1 -p 17100 --cores 0 --reactor-backend $b > /tmp/sx.log 2>&1 &
  SP=$!
  sleep 0.5
  strace -c -f -p $SP -o /tmp/strace_$b.txt &
  ST=$!
  sleep 0.5
  ./target/release/shardloop-load 127.0.0.1:17100 -c 64 -t 1 -d 2s --cores 1 --json /tmp/sl_$b.json > /dev/null 2>&1
  sleep 0.3
  kill -INT $ST; wait $ST 2>/dev/null
  kill $SP; wait $SP 2>/dev/null
  req=$(python3 -c "import json;print(json.load(open('/tmp/sl_$b.json'))['responses_ok'])")
  # The I/O calls: everything but the other threads' sleeps and clocks.
  calls=$(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" && $NF != "clock_nanosleep" && $NF != "clock_gettime" && $NF != "mprotect" && $NF != "restart_syscall" {n += $4} END {print n}' /tmp/strace_$b.txt)
  echo "$b: $req requests, $calls I/O syscalls, $(python3 -c "print(round($calls/$req,3))") per request"
  grep -E "^ *[0-9]" /tmp/strace_$b.txt | sort -k4 -n -r | head -6
done
