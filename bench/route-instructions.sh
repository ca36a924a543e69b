#!/usr/bin/env bash
# User-space instructions per routed request, counted by callgrind: a figure that, unlike CPU time on
# this shared 2-core guest, repeats from run to run to within a few per cent. For each meshctl binary
# given, and for nginx as the same reverse proxy as in bench/route.sh, the proxy runs under
# `valgrind --tool=callgrind`; after a 3 s warm-up its counters are zeroed, `wrk -t1 -c4 -d10s` runs
# through it, the counters are dumped, and the instructions are divided by the requests wrk completed.
# Kernel time (the system calls, the same four per request for both) is not counted.
#
#   bench/route-instructions.sh BINARY...        # e.g. target/release/meshctl /tmp/meshctl-before
#
# Uses bench/route-ab.sh's origins and rule (reviews 80/20 over :25401 / :25402), nginx with
# bench/peers/nginx-route-proxy.conf (one process: master_process off). Needs valgrind, nginx, wrk;
# stops what it started by its PID.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/route-instructions.sh BINARY..." >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
need_tools bench/route-instructions.sh valgrind callgrind_control callgrind_annotate nginx wrk curl
port_free bench/route-instructions.sh 25401 25402 25411 25481 25482

bench_init route-instr
mkdir -p "$RUN"/origin/{logs,tmp,html-v1,html-v2} "$RUN"/nproxy/{logs,tmp} "$RUN/rules"
printf '%s\n' "hello from reviews v1; a static page of exactly 64 bytes, v1 ok" > "$RUN/origin/html-v1/index.html"
printf '%s\n' "hello from reviews v2; a static page of exactly 64 bytes, v2 ok" > "$RUN/origin/html-v2/index.html"
nginx -p "$RUN/origin/" -c "$HERE/peers/nginx-route-origin.conf" -e "$RUN/origin/logs/error.log" \
  -g "daemon off; worker_processes 1;" > /dev/null 2>&1 &
PIDS+=($!)
wait_port 25401 || { echo "bench/route-instructions.sh: the origin did not start" >&2; exit 1; }
printf 'services:\n- name: reviews\n  port: 9080\n  endpoints:\n  - address: 127.0.0.1:25401\n    labels: {version: v1}\n  - address: 127.0.0.1:25402\n    labels: {version: v2}\n' \
  > "$RUN/services.yaml"
printf 'apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n  name: reviews-80-20\nspec:\n  destination:\n    name: reviews\n  route:\n  - labels: {version: v1}\n    weight: 80\n  - labels: {version: v2}\n    weight: 20\n' \
  > "$RUN/rules/reviews.yaml"

count() {  # label port command... -> "label instructions requests instructions/request"
  local label=$1 port=$2 pid out requests total
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$RUN/cg.$label.%p" "$@" > "$RUN/$label.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
  timeout 60 wrk -t1 -c4 -d3s "http://127.0.0.1:$port/" > /dev/null
  callgrind_control -z "$pid" > /dev/null 2>&1
  requests=$(timeout 60 wrk -t1 -c4 -d10s "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" > /dev/null 2>&1
  out=$(ls "$RUN"/cg."$label".*.1)
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$label $total $requests $((total / requests))"
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'); wrk -t1 -c4 -d10s after a 3 s warm-up; user-space instructions (callgrind)"
echo
echo "| proxy | instructions | requests | instructions per request |"
echo "|---|---:|---:|---:|"
i=0
for bin in "$@"; do
  i=$((i + 1))
  read -r label total requests per < <(count "meshctl-$i" 25481 "$bin" proxy --workers 1 --no-access-log \
    --services "$RUN/services.yaml" -f "$RUN/rules" --listen 127.0.0.1:25482 --admin 127.0.0.1:0 \
    --forward 127.0.0.1:25481=reviews:9080)
  printf '| %s (%s) | %s | %s | %s |\n' "$label" "$bin" "$total" "$requests" "$per"
done
read -r label total requests per < <(count nginx 25411 nginx -p "$RUN/nproxy/" -c "$HERE/peers/nginx-route-proxy.conf" \
  -e "$RUN/nproxy/logs/error.log" -g "daemon off; master_process off; worker_processes 1;")
printf '| nginx %s | %s | %s | %s |\n' "$(nginx -v 2>&1 | sed 's|.*nginx/||')" "$total" "$requests" "$per"
