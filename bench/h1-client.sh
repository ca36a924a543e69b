#!/usr/bin/env bash
# What hyper's HTTP/1 client costs per request, next to a minimal client that frames HTTP/1 itself:
# the measurement behind the "upstream side" estimate in docs/BENCHMARKS.md (routing section). Not a
# target of its own; it tells how much of meshctl's per-request CPU a hand-written upstream path
# could save.
#
#   bench/h1-client.sh        # ROUNDS=6 SECS=4 CONNS=16 may be set
#
# Starts one nginx origin on 127.0.0.1:25451 (a 64-byte page, bench/peers/nginx-origin.conf's
# settings), builds examples/h1_client_cost and runs it against the origin; stops the origin by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
SECS=${SECS:-4}
CONNS=${CONNS:-16}
command -v nginx >/dev/null || { echo "bench/h1-client.sh: nginx is missing (apt-get install -y nginx)" >&2; exit 2; }
if (exec 3<>/dev/tcp/127.0.0.1/25451) 2>/dev/null; then echo "bench/h1-client.sh: port 25451 in use" >&2; exit 2; fi

cargo build --release --example h1_client_cost >&2
RUN=$(mktemp -d -t h1-client.XXXXXX)
chmod 755 "$RUN"
ORIGIN=""
cleanup() {
  [ -n "$ORIGIN" ] && kill -TERM "$ORIGIN" 2>/dev/null || true
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
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $ROUNDS rounds of ${SECS}s per client; $CONNS connections"
target/release/examples/h1_client_cost 127.0.0.1:25451 --conns "$CONNS" --secs "$SECS" --rounds "$ROUNDS"
