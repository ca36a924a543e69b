#!/usr/bin/env bash
# meshctl's L4 forward, nginx `stream` and HAProxy against the least a forwarder can do per connection
# (examples/l4_floor: one epoll loop, no rules, no log, no timeouts), on new connections/s: how much of
# a proxy's CPU per connection is the kernel's TCP work that any proxy pays, and how much is left to
# win in the proxy itself (issue 4, "new connections/s ahead of both peers"; docs/BENCHMARKS.md, proxy
# section).
#
#   bench/l4-floor.sh        # ROUNDS=6 DUR=4 WRK_T=2 WRK_C=64 may be set
#
# Starts on 127.0.0.1 one nginx origin (:25471, a 64-byte page, bench/peers/nginx-origin.conf's
# settings), `meshctl proxy --workers 1 --no-access-log` forwarding :25472 to it (one EgressRule
# allowing it), nginx `stream` with one worker forwarding :25475 to it (bench/peers/nginx-proxy.conf's
# settings) and HAProxy in TCP mode with one thread forwarding :25476 to it (bench/peers/haproxy.cfg's
# settings); each round runs `wrk -tWRK_T -cWRK_C -dDUR -H "Connection: close"` against meshctl, nginx,
# HAProxy and a new l4_floor process (a port chosen by the OS), in an order rotated from round to round.
# Prints per round and as medians: connections/s and CPU per connection (utime+stime of the proxy's
# processes over the run; the floor reports its own). Needs nginx, libnginx-mod-stream, haproxy and wrk; stops
# every process it started by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
DUR=${DUR:-4}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-64}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools bench/l4-floor.sh nginx haproxy wrk python3
port_free bench/l4-floor.sh 25471 25472 25473 25474 25475 25476
cargo build --release --bin meshctl --example l4_floor >&2

bench_init l4-floor
mkdir -p "$RUN/rules"
start_origin 25471
cat > "$RUN/rules/origin.yaml" <<'YAML'
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: floor-origin
spec:
  destination:
    service: 127.0.0.1/32
  ports:
  - port: 25471
    protocol: tcp
YAML
target/release/meshctl proxy --workers 1 --no-access-log -f "$RUN/rules" --listen 127.0.0.1:25473 \
  --admin 127.0.0.1:25474 --forward 127.0.0.1:25472=127.0.0.1:25471 > "$RUN/meshctl.log" 2>&1 &
MESHCTL=$!; PIDS+=("$MESHCTL")
mkdir -p "$RUN"/nproxy/{logs,tmp}
sed -e '/proxy_pass 127.0.0.1:25201/d' -e 's/listen 127.0.0.1:25212/listen 127.0.0.1:25475/' \
  -e 's/proxy_pass 127.0.0.1:25301/proxy_pass 127.0.0.1:25471/' bench/peers/nginx-proxy.conf > "$RUN/nproxy.conf"
nginx -p "$RUN/nproxy/" -c "$RUN/nproxy.conf" -e "$RUN/nproxy/logs/error.log" \
  -g "daemon off; worker_processes 1;" > "$RUN/nproxy/logs/stdout.log" 2>&1 &
NGINX=$!; PIDS+=("$NGINX")
cat > "$RUN/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 9960
    pidfile $RUN/haproxy.pid
defaults
    timeout connect 5s
    timeout client  300s
    timeout server  300s
    option  dontlognull
frontend tcp_conn
    mode tcp
    bind 127.0.0.1:25476
    default_backend origin_tcp
backend origin_tcp
    mode tcp
    server s1 127.0.0.1:25471
CFG
haproxy -f "$RUN/haproxy.cfg" -db > "$RUN/haproxy.log" 2>&1 &
HAPROXY=$!; PIDS+=("$HAPROXY")
wait_port 25472 || true
wait_port 25475 || true
wait_port 25476 || true
sleep 1
curl -sf http://127.0.0.1:25472/ >/dev/null || { echo "bench/l4-floor.sh: meshctl does not serve the origin" >&2; cat "$RUN/meshctl.log" >&2; exit 1; }
curl -sf http://127.0.0.1:25475/ >/dev/null || { echo "bench/l4-floor.sh: nginx stream does not serve the origin" >&2; cat "$RUN/nproxy/logs/error.log" >&2; exit 1; }
curl -sf http://127.0.0.1:25476/ >/dev/null || { echo "bench/l4-floor.sh: HAProxy does not serve the origin" >&2; cat "$RUN/haproxy.log" >&2; exit 1; }

wrk_rate() {  # url -> conn/s
  timeout $((DUR + 20)) wrk -t"$WRK_T" -c"$WRK_C" -d"${DUR}s" -H "Connection: close" "$1" | awk '/Requests\/sec/ {print $2}'
}
hz=$(getconf CLK_TCK)
run_proxy() {  # name port pid
  local c0 c1 rate
  c0=$(ticks "$3")
  rate=$(wrk_rate "http://127.0.0.1:$2/")
  c1=$(ticks "$3")
  python3 -c "import sys; r=float(sys.argv[2]); print(sys.argv[1], r, (int(sys.argv[3]) / float(sys.argv[4])) / (r * float(sys.argv[5])) * 1e6)" \
    "$1" "${rate:-0}" "$((c1 - c0))" "$hz" "$DUR"
}
run_floor() {
  local out=$RUN/floor.txt addr rate pid
  target/release/examples/l4_floor --to 127.0.0.1:25471 --secs "$DUR" > "$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  addr=$(listening_addr "$out")
  rate=$(wrk_rate "http://$addr/")
  wait "$pid" || true
  echo "floor ${rate:-0} $(sed -n 's/.* \([0-9.]*\) µs CPU per connection$/\1/p' "$out")"
}
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${DUR}s; wrk -t$WRK_T -c$WRK_C, Connection: close"
wrk_rate http://127.0.0.1:25472/ > /dev/null
wrk_rate http://127.0.0.1:25475/ > /dev/null
wrk_rate http://127.0.0.1:25476/ > /dev/null
candidates=(meshctl nginx haproxy floor)
run_one() {
  case $1 in
    meshctl) run_proxy meshctl 25472 "$MESHCTL" ;;
    nginx) run_proxy nginx 25475 "$NGINX" ;;
    haproxy) run_proxy haproxy 25476 "$HAPROXY" ;;
    floor) run_floor ;;
  esac
}
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2 3; do run_one "${candidates[$(((r + i) % 4))]}"; done
done > "$RUN/results.txt"
python3 - "$RUN/results.txt" <<'PY'
import statistics as st
import sys

names = ["meshctl", "nginx", "haproxy", "floor"]
res = {n: [] for n in names}
for line in open(sys.argv[1]):
    name, rate, us = line.split()
    res[name].append((float(rate), float(us)))
print("| round | " + " | ".join(f"{n} conn/s" for n in names) + " | " + " | ".join(f"{n} CPU µs/conn" for n in names) + " |")
print("|---:" * (1 + 2 * len(names)) + "|")
for i, row in enumerate(zip(*(res[n] for n in names)), 1):
    print(f"| {i} | " + " | ".join(f"{r[0]:,.0f}" for r in row) + " | " + " | ".join(f"{r[1]:.1f}" for r in row) + " |")
med = {n: (st.median(x[0] for x in res[n]), st.median(x[1] for x in res[n])) for n in names}
print()
for n in names:
    print(f"{n}: {med[n][0]:,.0f} conn/s, {med[n][1]:.1f} µs CPU per connection (medians)")
for n in ["meshctl", "nginx", "haproxy"]:
    print(f"{n} / floor: {med[n][1] / med['floor'][1]:.2f}x CPU per connection, {med[n][0] / med['floor'][0]:.2f}x connections/s")
PY
