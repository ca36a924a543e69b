#!/usr/bin/env bash
# Two builds of meshctl's proxy side by side, in the same run, on routed keep-alive HTTP requests: the
# A/B used to decide whether a change to the mesh routing path is kept (docs/BENCHMARKS.md, mesh routing
# section). bench/route.sh compares meshctl with nginx; a change to meshctl alone shows best when both
# builds share every round.
#
#   bench/route-ab.sh A_BINARY B_BINARY        # ROUNDS=8 DUR=4 WRK_T=2 WRK_C=16 may be set
#
# e.g.  git stash; cargo build --release; cp target/release/meshctl /tmp/meshctl-before; git stash pop
#       cargo build --release; bench/route-ab.sh target/release/meshctl /tmp/meshctl-before
#
# Starts on 127.0.0.1 the two reviews origins of bench/route.sh (one nginx process,
# bench/peers/nginx-route-origin.conf: v1 on :25401, v2 on :25402, 64-byte pages) and the two proxies
# (`meshctl proxy --workers 1 --no-access-log --services S -f R`, S registering reviews:9080 with both
# origins, R the RouteRule reviews-80-20; forwards :25481 and :25491 to reviews:9080), then runs
# `wrk -tWRK_T -cWRK_C -dDUR` against A and B alternately, ROUNDS times each, the order swapped every
# round. Prints per round and in total: requests/s, each proxy's CPU per request (utime+stime over the
# run / requests), and the A/B ratios. Needs nginx and wrk; stops every process it started by its PID.
set -euo pipefail

A=${1:?usage: bench/route-ab.sh A_BINARY B_BINARY}
B=${2:?usage: bench/route-ab.sh A_BINARY B_BINARY}
ROUNDS=${ROUNDS:-8}
DUR=${DUR:-4}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-16}
for bin in "$A" "$B"; do
  "$bin" proxy --help 2>/dev/null | grep -q -- --services \
    || { echo "bench/route-ab.sh: $bin is not a meshctl with 'proxy --services'" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need_tools bench/route-ab.sh nginx wrk python3 curl
port_free bench/route-ab.sh 25401 25402 25481 25482 25491 25492

bench_init route-ab
mkdir -p "$RUN"/origin/{logs,tmp,html-v1,html-v2} "$RUN/rules"
printf '%s\n' "hello from reviews v1; a static page of exactly 64 bytes, v1 ok" > "$RUN/origin/html-v1/index.html"
printf '%s\n' "hello from reviews v2; a static page of exactly 64 bytes, v2 ok" > "$RUN/origin/html-v2/index.html"
nginx -p "$RUN/origin/" -c "$HERE/peers/nginx-route-origin.conf" -e "$RUN/origin/logs/error.log" \
  -g "daemon off; worker_processes 1;" > "$RUN/origin/logs/stdout.log" 2>&1 &
PIDS+=($!)
wait_port 25401 || { echo "bench/route-ab.sh: the origin did not start" >&2; cat "$RUN/origin/logs/error.log" >&2; exit 1; }
cat > "$RUN/services.yaml" <<'YAML'
services:
- name: reviews
  port: 9080
  endpoints:
  - address: 127.0.0.1:25401
    labels: {version: v1}
  - address: 127.0.0.1:25402
    labels: {version: v2}
YAML
cat > "$RUN/rules/reviews.yaml" <<'YAML'
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-80-20
spec:
  destination:
    name: reviews
  route:
  - labels: {version: v1}
    weight: 80
  - labels: {version: v2}
    weight: 20
YAML
start() {  # binary forward-port listen-port admin-port log -> PID
  "$1" proxy --workers 1 --no-access-log --services "$RUN/services.yaml" -f "$RUN/rules" \
    --listen "127.0.0.1:$3" --admin "127.0.0.1:$4" --forward "127.0.0.1:$2=reviews:9080" > "$5" 2>&1 &
  echo $!
}
PID_A=$(start "$A" 25481 25482 0 "$RUN/a.log"); PIDS+=("$PID_A")
PID_B=$(start "$B" 25491 25492 0 "$RUN/b.log"); PIDS+=("$PID_B")
wait_port 25481 || true
wait_port 25491 || true
sleep 1
curl -sf http://127.0.0.1:25481/ | grep -q 'reviews v' && curl -sf http://127.0.0.1:25491/ | grep -q 'reviews v' \
  || { echo "bench/route-ab.sh: a proxy does not route to reviews" >&2; cat "$RUN"/a.log "$RUN"/b.log >&2; exit 1; }

echo "A: $A"
echo "B: $B"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${DUR}s; wrk -t$WRK_T -c$WRK_C, keep-alive"
ab_rounds 25481 "$PID_A" 25491 "$PID_B"
python3 "$HERE/ab_report.py" "$RUN/results.txt" "$DUR" "$(getconf CLK_TCK)" requests req
