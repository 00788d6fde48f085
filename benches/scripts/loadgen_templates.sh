#!/usr/bin/env bash
# Requests per load-generator CPU-second: a fixed RESP request against one
# drawn from a template (a Zipfian key and a 16-character random value),
# alternating, resp_kv pinned to core 0 and the load generator to core 1.
# Build first: cargo build --release -p shardloop --example resp_kv
#              cargo build --release -p shardloop-loadgen --bin shardloop-load
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-7379}
taskset -c 0 ./target/release/examples/resp_kv --shards 1 --port "$PORT" > /dev/null 2>&1 &
KV=$!
trap 'kill $KV 2>/dev/null' EXIT
sleep 1
run() {
  ./target/release/shardloop-load "127.0.0.1:$PORT" -t 1 -c 4 --pipeline 16 -d 4s --cores 1 \
    -w resp "$@" --json /tmp/loadgen_templates.json > /dev/null
  python3 -c "
import json; r = json.load(open('/tmp/loadgen_templates.json'))
cpu = sum(c for _, c in r['loadgen_cpu_percent']) / 100
print(f\"{r['throughput_rps']:.0f} req/s, loadgen cpu {cpu:.2f}, {r['throughput_rps'] / cpu:.0f} req per loadgen CPU-second\")"
}
for _ in 1 2 3; do
  echo -n "fixed:    "; run --command "SET user:12345 abcdefghijklmnop"
  echo -n "template: "; run --command "SET user:{{k}} {{v}}" --var k=int:1..1000000:zipf:1.1 --var v=str:16
done
