#!/usr/bin/env bash
# Two builds of meshctl's proxy side by side, in the same run, on new connections/s: the A/B used to
# decide whether a change to the L4 path is kept (docs/BENCHMARKS.md, proxy section). A change worth
# less than the round-to-round noise of bench/proxy.sh only shows when both builds share each round.
#
#   bench/proxy-ab.sh A_BINARY B_BINARY        # ROUNDS=8 DUR=4 WRK_T=2 WRK_C=64 may be set
#
# e.g.  git stash; cargo build --release; cp target/release/meshctl /tmp/meshctl-before; git stash pop
#       cargo build --release; bench/proxy-ab.sh target/release/meshctl /tmp/meshctl-before
#
# Starts on 127.0.0.1 one nginx origin (:25351, a 64-byte page, bench/peers/nginx-origin.conf's
# settings) and the two proxies (`meshctl proxy --workers 1 --no-access-log`, forwards :25352 and
# :25362 to the origin, one EgressRule allowing it), then runs `wrk -tWRK_T -cWRK_C -dDUR -H
# "Connection: close"` against A and B alternately, ROUNDS times each, the order swapped every round.
# Prints per round and in total: connections/s, each proxy's CPU per connection (utime+stime over the
# run / connections), and the A/B ratios (median of per-round ratios). Needs nginx and wrk; stops every
# process it started by its PID.
set -euo pipefail

A=${1:?usage: bench/proxy-ab.sh A_BINARY B_BINARY}
B=${2:?usage: bench/proxy-ab.sh A_BINARY B_BINARY}
ROUNDS=${ROUNDS:-8}
DUR=${DUR:-4}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-64}
for bin in "$A" "$B"; do
  "$bin" proxy --help >/dev/null 2>&1 || { echo "bench/proxy-ab.sh: $bin is not a meshctl with 'proxy'" >&2; exit 2; }
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_tools bench/proxy-ab.sh nginx wrk python3
port_free bench/proxy-ab.sh 25351 25352 25353 25354 25362 25363 25364

bench_init proxy-ab
mkdir -p "$RUN/rules"
start_origin 25351
cat > "$RUN/rules/origin.yaml" <<'EOF'
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata:
  name: ab-origin
spec:
  destination:
    service: 127.0.0.1/32
  ports:
  - port: 25351
    protocol: tcp
EOF
"$A" proxy --workers 1 --no-access-log -f "$RUN/rules" --listen 127.0.0.1:25353 --admin 127.0.0.1:25354 \
  --forward 127.0.0.1:25352=127.0.0.1:25351 > "$RUN/a.log" 2>&1 &
PID_A=$!; PIDS+=("$PID_A")
"$B" proxy --workers 1 --no-access-log -f "$RUN/rules" --listen 127.0.0.1:25363 --admin 127.0.0.1:25364 \
  --forward 127.0.0.1:25362=127.0.0.1:25351 > "$RUN/b.log" 2>&1 &
PID_B=$!; PIDS+=("$PID_B")
wait_port 25352 || true
wait_port 25362 || true
sleep 1
curl -sf http://127.0.0.1:25352/ >/dev/null && curl -sf http://127.0.0.1:25362/ >/dev/null \
  || { echo "bench/proxy-ab.sh: a proxy does not serve the origin" >&2; cat "$RUN"/a.log "$RUN"/b.log >&2; exit 1; }

echo "A: $A"
echo "B: $B"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${DUR}s; wrk -t$WRK_T -c$WRK_C, Connection: close"
ab_rounds 25352 "$PID_A" 25362 "$PID_B" -H "Connection: close"
python3 "$(dirname "$0")/ab_report.py" "$RUN/results.txt" "$DUR" "$(getconf CLK_TCK)" connections conn
