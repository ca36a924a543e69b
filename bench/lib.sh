# shellcheck shell=bash
# Shared pieces of the small side-by-side bench scripts (proxy-ab.sh, route-ab.sh, route-instructions.sh,
# h1-cost.sh, l4-floor.sh).
# Sourced, not run. Everything listens on 127.0.0.1; what is started is stopped by its PID.

# bench_init NAME: a run directory in $RUN, the started processes in $PIDS, and an EXIT trap that
# stops them and removes the directory.
bench_init() {
  RUN=$(mktemp -d -t "$1.XXXXXX")
  chmod 755 "$RUN"   # nginx workers run as another user
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do
    if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}

# need_tools NAME TOOL...: exits 2 naming the first tool that is not installed.
need_tools() {
  local name=$1 t
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$name: $t is missing" >&2; exit 2; }
  done
}

# port_free NAME PORT...: exits 2 naming the first port already in use.
port_free() {
  local name=$1 p
  shift
  for p in "$@"; do
    if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then echo "$name: port $p in use" >&2; exit 2; fi
  done
}

# wait_port PORT: waits up to 5 s for something to listen on 127.0.0.1:PORT.
wait_port() {
  local _
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# start_origin PORT: an nginx origin on 127.0.0.1:PORT serving a 64-byte page, with
# bench/peers/nginx-origin.conf's settings and one worker; waits until it listens.
start_origin() {
  local port=$1 dir=$RUN/origin-$1
  mkdir -p "$dir"/{logs,tmp,html}
  printf '%s\n' "hello from the nginx origin; this static body is 64 bytes long." > "$dir/html/index.html"
  sed "s/127.0.0.1:25301/127.0.0.1:$port/" "$(dirname "${BASH_SOURCE[0]}")/peers/nginx-origin.conf" > "$dir/origin.conf"
  nginx -p "$dir/" -c "$dir/origin.conf" -e "$dir/logs/error.log" \
    -g "daemon off; worker_processes 1;" > "$dir/logs/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "the nginx origin on :$port did not start:" >&2; cat "$dir/logs/error.log" >&2; exit 1; }
}

# listening_addr FILE: waits up to 5 s for a "listening on ADDR" line in FILE and prints ADDR.
listening_addr() {
  local addr="" _
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$1")
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.05
  done
  echo "nothing listening after 5 s:" >&2
  cat "$1" >&2
  return 1
}

# ticks PID: user+system CPU time of PID and its children so far, in clock ticks.
ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# ab_rounds PORT_A PID_A PORT_B PID_B WRK_ARGS...: one uncounted warm-up run of each, then $ROUNDS
# rounds of `wrk -t$WRK_T -c$WRK_C -d${DUR}s WRK_ARGS... http://127.0.0.1:PORT/` against A and B, the
# order swapped every round. Writes "A|B rate cpu-ticks" lines (the proxy's CPU over each run) to
# $RUN/results.txt, the input of bench/ab_report.py.
ab_rounds() {
  local port_a=$1 pid_a=$2 port_b=$3 pid_b=$4 r
  shift 4
  ab_run() {  # label port pid -> "label rate cpu-ticks"
    local c0 c1 rate
    c0=$(ticks "$3")
    rate=$(timeout $((DUR + 20)) wrk -t"$WRK_T" -c"$WRK_C" -d"${DUR}s" "${@:4}" "http://127.0.0.1:$2/" \
      | awk '/Requests\/sec/ {print $2}')
    c1=$(ticks "$3")
    echo "$1 ${rate:-0} $((c1 - c0))"
  }
  ab_run warmup "$port_a" "$pid_a" "$@" >/dev/null
  ab_run warmup "$port_b" "$pid_b" "$@" >/dev/null
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
      ab_run A "$port_a" "$pid_a" "$@"; ab_run B "$port_b" "$pid_b" "$@"
    else
      ab_run B "$port_b" "$pid_b" "$@"; ab_run A "$port_a" "$pid_a" "$@"
    fi
  done > "$RUN/results.txt"
}
