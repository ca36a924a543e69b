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
if (exec 3<>/dev/tcp/127.0.0.1/25451) 2>/dev/null; then echo "bench/h1-cost.sh: port 25451 in use" >&2; exit 2; fi

cargo build --release --example h1_client_cost --example h1_server_cost >&2
RUN=$(mktemp -d -t h1-cost.XXXXXX)
chmod 755 "$RUN"
ORIGIN=""
SERVER=""
cleanup() {
  [ -n "$ORIGIN" ] && kill -TERM "$ORIGIN" 2>/dev/null || true
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
mkdir -p "$RUN"/origin/{logs,tmp,html}
printf '%s\n' "hello from the nginx origin; this static body is 64 bytes long." > "$RUN/origin/html/index.html"
sed 's/127.0.0.1:25301/127.0.0.1:25451/' bench/peers/nginx-origin.conf > "$RUN/origin.conf"
nginx -p "$RUN/origin/" -c "$RUN/origin.conf" -e "$RUN/origin/logs/error.log" \
  -g "daemon off; worker_processes 1;" > "$RUN/origin/logs/stdout.log" 2>&1 &
ORIGIN=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/25451) 2>/dev/null && break; sleep 0.05; done
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${SECS}s per candidate; $CONNS connections"
echo
echo "Client side (against the nginx origin):"
echo
target/release/examples/h1_client_cost 127.0.0.1:25451 --conns "$CONNS" --secs "$SECS" --rounds "$ROUNDS"

serve() {  # mode -> "mode µs-per-request"
  local out=$RUN/server-$1.txt addr=""
  target/release/examples/h1_server_cost "$1" --secs "$SECS" > "$out" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "bench/h1-cost.sh: h1_server_cost did not start:" >&2; cat "$out" >&2; exit 1; }
  timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"$((SECS + 1))s" "http://$addr/" > /dev/null
  wait "$SERVER"
  SERVER=""
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
