#!/usr/bin/env python3
"""Idle memory per connection, user and kernel side: the echo example's RSS
and the kernel's Slab (/proc/meminfo) before and after N idle connections,
per backend, 3 rounds. Slab counts both ends' sockets (the same for every
backend) plus what each backend keeps per connection in the kernel (an
epoll registration, an armed io_uring receive). Run from the repository
root after `cargo build --release -p shardloop --example echo`, with
`ulimit -n` above 2N:

    python3 benches/scripts/idle_kernel_memory.py 10000 epoll io-uring
"""
import os, socket, subprocess, sys, time
n=int(sys.argv[1]); backends=sys.argv[2:]
def meminfo(k):
    for l in open('/proc/meminfo'):
        if l.startswith(k+':'): return int(l.split()[1])*1024
def rss(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS:'): return int(l.split()[1])*1024
port=7600
for rnd in range(3):
  for b in backends:
    port+=1
    srv=subprocess.Popen(['taskset','-c','0','target/release/examples/echo','--port',str(port),'--shards','1','--reactor-backend',b],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    # one connection first: lazily built structures
    s0=socket.create_connection(('127.0.0.1',port)); time.sleep(0.2)
    subprocess.run(['sync']); time.sleep(0.3)
    r0=rss(srv.pid); k0=meminfo('Slab'); u0=meminfo('SUnreclaim')
    socks=[]
    for i in range(n):
        socks.append(socket.create_connection(('127.0.0.1',port)))
    time.sleep(1.0)
    r1=rss(srv.pid); k1=meminfo('Slab'); u1=meminfo('SUnreclaim')
    print(f"{b:8s} server RSS/conn {(r1-r0)/n:7.0f} B  kernel slab/conn {(k1-k0)/n:7.0f} B (unreclaimable {(u1-u0)/n:6.0f})  [both ends' sockets in slab]", flush=True)
    for s in socks: s.close()
    s0.close()
    srv.terminate(); srv.wait(); time.sleep(1.0)
