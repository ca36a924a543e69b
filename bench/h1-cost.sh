#!/usr/bin/env bash
# What hyper's HTTP/1 client and server cost per request, each next to a minimal one that frames
# HTTP/1 itself: the measurement behind the estimate "what hand-framed HTTP/1 could save" in
# docs/BENCHMARKS.md (routing section). Not a target of its own; it tells how much of meshctl's
# per-request CPU a hand-written HTTP/1 path could save on each side of the proxy.
#
#   bench/h1-cost.sh        # ROUNDS=6 SECS=4 CONNS=16 may be set
#
# Client side: starts one nginx origin on 127.0.0.1:25451 (a 64-byte page, bench/peers/nginx-origin.conf's
# settings) and runs examples/h1_client_cost against it (CONNS keep-alive connections, one thread).
# Server side: runs examples/h1_server_cost (hyper, then minimal, alternating each round; 127.0.0.1,
# a port chosen by the OS) under `wrk -t1 -cCONNS`. Needs nginx and wrk; stops what it started by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
SECS=${SECS:-4}
CONNS=${CONNS:-16}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "bench/h1-cost.sh: $tool is missing (apt-get install -y nginx wrk)" >&2; exit 2; }
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
port_free bench/h1-cost.sh 25451

cargo build --release --example h1_client_cost --example h1_server_cost >&2
bench_init h1-cost
start_origin 25451
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${SECS}s per candidate; $CONNS connections"
echo
echo "Client side (against the nginx origin):"
echo
target/release/examples/h1_client_cost 127.0.0.1:25451 --conns "$CONNS" --secs "$SECS" --rounds "$ROUNDS"

serve() {  # mode -> "mode µs-per-request"
  local out=$RUN/server-$1.txt addr pid
  target/release/examples/h1_server_cost "$1" --secs "$SECS" > "$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  addr=$(listening_addr "$out")
  timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"$((SECS + 1))s" "http://$addr/" > /dev/null
  wait "$pid"
  sed -n 's/.* \([0-9.]*\) µs CPU per request$/\1/p' "$out" | sed "s/^/$1 /"
}
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then serve hyper; serve minimal; else serve minimal; serve hyper; fi
done > "$RUN/server.txt"
echo
echo "Server side (wrk -t1 -c$CONNS, keep-alive):"
echo
python3 - "$RUN/server.txt" <<'PY'
import statistics as st
import sys

res = {"hyper": [], "minimal": []}
for line in open(sys.argv[1]):
    mode, us = line.split()
    res[mode].append(float(us))
print("| round | hyper CPU µs/req | minimal CPU µs/req |")
print("|---:|---:|---:|")
for i, (h, m) in enumerate(zip(res["hyper"], res["minimal"]), 1):
    print(f"| {i} | {h:.2f} | {m:.2f} |")
h, m = st.median(res["hyper"]), st.median(res["minimal"])
print()
print(f"medians: hyper {h:.2f} µs CPU per request, minimal {m:.2f} µs; difference {h - m:.2f} µs")
PY
