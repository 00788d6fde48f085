#!/usr/bin/env bash
# HTTP/2 over TLS, side by side: shardloop's http_hello (one shard, ALPN
# h2) against nginx (one worker, `listen ... ssl http2`), both on core
# 0, h2load on core 1, alternating each round. Prints, per round and as
# medians, requests per second and requests per server CPU-second (the
# server's utime+stime from /proc around the h2load run).
#
#   benches/h2load.sh [ROUNDS] [SECONDS]     (defaults: 5 rounds of 4 s)
#
# Needs a release http_hello (cargo build --release -p shardloop --example
# http_hello), nginx, h2load (nghttp2-client) and openssl.
set -euo pipefail
rounds=${1:-5}
secs=${2:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
  -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work;
  server {
    # nginx 1.22 (Debian 12) spells it on the listen line; 1.25+ says "http2 on;".
    listen 127.0.0.1:7591 ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 128;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
EOF
# nginx: the worker is the one to measure (the master only waits).
taskset -c 0 nginx -c "$work/nginx.conf" >/dev/null 2>&1 &
taskset -c 0 "$root/target/release/examples/http_hello" --shards 1 --cores 0 --port 7592 \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --tls-alpn h2,http/1.1 >/dev/null 2>&1 &
sl=$!
for port in 7591 7592; do
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 1 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
ngx=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
[ -n "$ngx" ] || { echo "no nginx worker" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # name pid port
  local before after out rps
  before=$(ticks "$2")
  out=$(taskset -c 1 h2load -D "$secs" -c 64 -m 16 -t 1 "https://localhost:$3/" 2>&1)
  after=$(ticks "$2")
  rps=$(echo "$out" | awk '/finished in/ {print $4}')
  ok=$(echo "$out" | awk '/^requests:/ {print $8}')
  echo "$1 $rps $ok $(( after - before ))" >>"$work/results"
  echo "$1: $rps req/s, $ok succeeded, $(( after - before )) ticks of server CPU"
}
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run shardloop "$sl" 7592
  run nginx "$ngx" 7591
done
python3 - "$work/results" "$hz" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
hz = int(sys.argv[2])
per = {}
for name, rps, ok, ticks in rows:
    per.setdefault(name, []).append((float(rps), int(ok) / (int(ticks) / hz)))
for name, v in per.items():
    print(f"{name}: median {statistics.median(r for r, _ in v):,.0f} req/s, "
          f"{statistics.median(c for _, c in v):,.0f} req per server CPU-second")
ratios = [a[1] / b[1] for a, b in zip(per["shardloop"], per["nginx"])]
print(f"per core, shardloop / nginx: median {statistics.median(ratios):.2f} "
      f"({min(ratios):.2f}-{max(ratios):.2f})")
PY
