#!/usr/bin/env bash
# meshctl serve under load from 16 concurrent clients, next to the embedded store's own rate.
#
#   bench/serve.sh                 # 5 rounds of 10,000 creates then 10,000 gets, 16 clients
#   ROUNDS=9 REQUESTS=20000 bench/serve.sh   # ROUNDS, REQUESTS and CLIENTS can be set
#
# Builds release, then in every round (the order of the two alternating from round to round):
#   serve     starts `meshctl serve --listen 127.0.0.1:0 --store sqlite:FILE` on a new temporary store,
#             reads the port from its start-up line, runs `examples/load http` against it (CLIENTS
#             threads, each on one keep-alive HTTP/1.1 connection: REQUESTS creates, then REQUESTS gets
#             of the same rules), then stops it (SIGTERM, by PID);
#   embedded  runs `examples/load embedded` on another new temporary store: the same creates and gets
#             from the same number of threads, calling SqliteStore directly (what serve calls).
# Prints creates/s, gets/s and latency percentiles of each (medians over the rounds) as a table.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-10000}
CLIENTS=${CLIENTS:-16}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release --examples --bins
meshctl=$TARGET_DIR/release/meshctl
load=$TARGET_DIR/release/examples/load

work=$(mktemp -d)
server=
stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    fi
}
trap 'stop_server; rm -rf "$work"' EXIT

run_serve() {
    local dir=$1
    mkdir -p "$dir"
    # Request log lines go to the file too: the server writes them as it does in production.
    # The log exists before the server starts, so reading it at once cannot race its creation.
    : > "$dir/serve.log"
    "$meshctl" serve --listen 127.0.0.1:0 --store "sqlite:$dir/store.db" 2>"$dir/serve.log" &
    server=$!
    local url=
    for _ in $(seq 1 200); do
        url=$(sed -n 's/^meshctl serve: listening on \(http:[^ ]*\)$/\1/p' "$dir/serve.log" | head -n1)
        [ -n "$url" ] && break
        if ! kill -0 "$server" 2>/dev/null; then
            echo "bench/serve.sh: meshctl serve exited:" >&2
            cat "$dir/serve.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    if [ -z "$url" ]; then
        echo "bench/serve.sh: meshctl serve did not say where it listens:" >&2
        cat "$dir/serve.log" >&2
        exit 1
    fi
    "$load" http --url "$url" --clients "$CLIENTS" --requests "$REQUESTS" >>"$work/results.jsonl"
    stop_server
}

run_embedded() {
    local dir=$1
    mkdir -p "$dir"
    "$load" embedded --store "$dir/store.db" --clients "$CLIENTS" --requests "$REQUESTS" >>"$work/results.jsonl"
}

echo
echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); store files in $(df --output=fstype "$work" | tail -n1) ($work)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ROUNDS rounds of $REQUESTS creates then $REQUESTS gets, $CLIENTS clients"
echo
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        run_serve "$work/serve-$round"
        run_embedded "$work/embedded-$round"
    else
        run_embedded "$work/embedded-$round"
        run_serve "$work/serve-$round"
    fi
    echo "round $round/$ROUNDS" >&2
done

python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
modes = list(dict.fromkeys(r["mode"] for r in runs))
med = lambda mode, key: statistics.median(r[key] for r in runs if r["mode"] == mode)
n = sum(1 for r in runs if r["mode"] == modes[0])
print(f"Medians of {n} rounds (each on a new store; the two alternate in order).\n")
print("| target | creates/s | create p50 (ms) | create p99 (ms) | gets/s | get p50 (ms) | get p99 (ms) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in modes:
    print(f"| {m} | {med(m, 'creates_per_s'):.0f} | {med(m, 'create_p50_ms'):.2f} | {med(m, 'create_p99_ms'):.2f} "
          f"| {med(m, 'gets_per_s'):.0f} | {med(m, 'get_p50_ms'):.3f} | {med(m, 'get_p99_ms'):.3f} |")
if len(modes) == 2:
    a, b = modes
    print(f"\n{a} / {b}: creates/s {med(a, 'creates_per_s') / med(b, 'creates_per_s'):.2f}x, "
          f"gets/s {med(a, 'gets_per_s') / med(b, 'gets_per_s'):.2f}x")
print()
PY
