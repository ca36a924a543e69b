#!/usr/bin/env bash
# meshctl serve on a 3-member etcd cluster, side by side with meshctl serve on sqlite, with etcd's own
# rate through the same JSON gateway as the floor, and watch fan-out over two replicas (issue 6's
# performance part).
#
# Needs (Debian 12 packages): etcd-server etcd-client wrk, plus python3, coreutils' timeout and a Rust
# toolchain; installs nothing, and exits 2 naming what is missing. Every listener is on 127.0.0.1 (etcd
# on ports ETCD_PORT+1..+3 for clients and ETCD_PORT+11..+13 for peers, default 25501-25503 and
# 25511-25513; meshctl serve on free ports it picks itself); every process started here is stopped by
# its PID on exit, and every measurement is bounded by `timeout`.
#
#   bench/etcd.sh                       # ROUNDS=5 REQUESTS=10000 CLIENTS=16 DUR=5 WATCHERS=100 CHANGES=200
#   ROUNDS=3 bench/etcd.sh              # the run in docs/BENCHMARKS.md
#   QUICK=1 bench/etcd.sh               # smoke run: 1 round, 1,000 objects, wrk 1 s, 50 changes
#   KEEP=1 ...                          # keep the run directory (etcd data, logs, raw results)
#   LISTS=5 DUR=5 WATCHERS=100 CHANGES=200 INTERVAL_MS=10 WRK_T=2 LEADER=1 TIMEOUT=300 ETCD_PORT=25500
#   may be set too.
#
# Builds release once, starts a 3-member etcd cluster (data directories in the run's temporary
# directory, whose file system is printed: tmpfs or disk), waits until every member is healthy, and moves
# the leadership to member LEADER (1: the member that meshctl and wrk send to, so a write is not
# forwarded; 2: a follower gets every request). Then an uncounted warm-up round (at most 2,000 objects,
# wrk 1 s, 20 changes), then ROUNDS rounds; in every round each target runs once, in an order rotated
# from round to round, and each uses its own key prefix /bench/rN/TARGET/ (deleted, and etcd's history
# compacted, after the round):
#   serve-sqlite  `meshctl serve --listen 127.0.0.1:0 --store sqlite:FILE` on a new file, then
#                 `examples/load http`: CLIENTS threads each on one keep-alive connection, REQUESTS
#                 creates (POST, 201), then REQUESTS gets (GET by name, 200), then LISTS lists of every
#                 EgressRule (GET /apis/config.istio.io/v1alpha2/egressrules: REQUESTS items) one after
#                 another from one client;
#   serve-etcd    the same against `meshctl serve --store etcd://E1,E2,E3 --etcd-prefix /bench/rN/serve/`;
#   direct        `examples/load etcd`: the same creates, gets and lists from CLIENTS threads calling
#                 meshctl::store::etcd::EtcdStore directly (what serve calls), so the difference to
#                 serve-etcd is HTTP and JSON on meshctl's side;
#   raw           etcd's own rate through the gateway meshctl uses, on the endpoint meshctl sends to (E1):
#                 wrk -tWRK_T -cCLIENTS -dDUR with bench/etcd-kv.lua, distinct keys, values the size of a
#                 stored rule (a median-sized value meshctl stored in the warm-up): /v3/kv/put, then
#                 /v3/kv/txn (create-if-absent, the request meshctl sends for a create), then
#                 /v3/kv/range of one key written by the txn run (what meshctl sends for a get);
#   watch         two `meshctl serve` replicas (A, B) on the cluster with one prefix; `examples/load watch`
#                 opens WATCHERS streaming watches (half on each, ?watch=true&resourceVersion=R), then makes
#                 CHANGES creates through A one after another (INTERVAL_MS apart); delivery latency =
#                 the time a watcher reads the ADDED line minus the time the 201 was read, per watcher and
#                 change; every watcher must see every change.
# CPU time (user + system, all threads, from /proc/PID/stat) is read at every phase boundary for the
# etcd members (together), meshctl serve and the load generator, and reported per request: where the
# two cores go. Also meshctl serve's peak resident size (VmHWM) after each serve target's run.
# Prints a summary as markdown tables on stdout; progress and per-run figures go to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
NAME=bench/etcd.sh
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1}; REQUESTS=${REQUESTS:-1000}; DUR=${DUR:-1}; CHANGES=${CHANGES:-50}; LISTS=${LISTS:-3}
fi
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-10000}
CLIENTS=${CLIENTS:-16}
LISTS=${LISTS:-5}
DUR=${DUR:-5}
WRK_T=${WRK_T:-2}
WATCHERS=${WATCHERS:-100}
CHANGES=${CHANGES:-200}
INTERVAL_MS=${INTERVAL_MS:-10}
LEADER=${LEADER:-1}
TIMEOUT=${TIMEOUT:-300}
ETCD_PORT=${ETCD_PORT:-25500}
KEEP=${KEEP:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for t in etcd etcdctl wrk python3 timeout df; do
  command -v "$t" >/dev/null || { echo "$NAME: missing tool: $t (apt-get install -y etcd-server etcd-client wrk python3)" >&2; exit 2; }
done
command -v cargo >/dev/null || { echo "$NAME: missing cargo (a Rust toolchain)" >&2; exit 2; }
for v in ROUNDS REQUESTS CLIENTS LISTS DUR WRK_T WATCHERS CHANGES INTERVAL_MS TIMEOUT ETCD_PORT; do
  case ${!v} in ''|*[!0-9]*) echo "$NAME: $v='${!v}' is not a number" >&2; exit 2;; esac
done
for v in ROUNDS REQUESTS CLIENTS DUR WRK_T WATCHERS CHANGES; do
  [ "${!v}" -ge 1 ] || { echo "$NAME: $v must be at least 1" >&2; exit 2; }
done
case $LEADER in 1|2|3) ;; *) echo "$NAME: LEADER must be 1, 2 or 3" >&2; exit 2;; esac
[ "$CLIENTS" -ge "$WRK_T" ] || { echo "$NAME: CLIENTS ($CLIENTS) must be at least WRK_T ($WRK_T)" >&2; exit 2; }

CPORTS=() PPORTS=()
for i in 1 2 3; do CPORTS+=($((ETCD_PORT + i))); PPORTS+=($((ETCD_PORT + 10 + i))); done
for p in "${CPORTS[@]}" "${PPORTS[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then echo "$NAME: port 127.0.0.1:$p already in use; aborting (set ETCD_PORT)" >&2; exit 2; fi
done
EPS="127.0.0.1:${CPORTS[0]},127.0.0.1:${CPORTS[1]},127.0.0.1:${CPORTS[2]}"
E1=http://127.0.0.1:${CPORTS[0]}

cargo build --release --bin meshctl --example load
meshctl=$TARGET_DIR/release/meshctl
load=$TARGET_DIR/release/examples/load
if ! "$meshctl" serve --help 2>/dev/null | grep -q -- '--etcd-prefix'; then
  echo "$NAME: $meshctl serve has no --etcd-prefix option (the etcd backend, issue 6, is not in this build)" >&2; exit 2
fi

RUN=$(mktemp -d -t etcd-bench.XXXXXX)
RES=$RUN/results.jsonl
: > "$RES"
PIDS=()
ETCD_PIDS=()
cleanup() {
  local p
  # meshctl, the load generator and wrk first, all at once; then the etcd members one at a time, each
  # while the others still run (a leader hands leadership over before it stops, which needs a follower)
  for p in "${PIDS[@]:-}"; do if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null || true; fi; done
  for p in "${PIDS[@]:-}" "${ETCD_PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "run directory kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {  # drop a reaped process from PIDS
  local q keep=()
  for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
stop_pid() {  # stop one process started here, by PID, and forget it
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}
bounded() {  # seconds command...: runs it under `timeout`, in the background and waited for, so that an
  # INT or TERM to this script is acted on at once (cleanup then stops it by its PID with the rest)
  local secs=$1 p rc=0; shift
  timeout "$secs" "$@" &
  p=$!; PIDS+=("$p")
  wait "$p" || rc=$?
  forget_pid "$p"
  return "$rc"
}
HZ=$(getconf CLK_TCK)
cpu_ticks() {  # user+sys clock ticks of the given processes (all threads)
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN{printf "%.2f", t/hz}'; }
ctl() { timeout 30 etcdctl --endpoints="$EPS" --command-timeout=20s "$@"; }

# ---------- the etcd cluster ----------
FSTYPE=$(df --output=fstype "$RUN" | tail -n1)
case $FSTYPE in tmpfs|ramfs) MEDIUM="memory (tmpfs: no disk syncs)";; *) MEDIUM="disk ($FSTYPE: every commit is fsync'd)";; esac
CLUSTER="e1=http://127.0.0.1:${PPORTS[0]},e2=http://127.0.0.1:${PPORTS[1]},e3=http://127.0.0.1:${PPORTS[2]}"
for i in 1 2 3; do
  c=${CPORTS[$((i - 1))]} p=${PPORTS[$((i - 1))]}
  mkdir -p "$RUN/etcd"
  etcd --name "e$i" --data-dir "$RUN/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$CLUSTER" --initial-cluster-token "meshctl-bench-$$" --initial-cluster-state new \
    --logger=zap --log-outputs=stderr --log-level=warn > "$RUN/etcd/e$i.log" 2>&1 &
  ETCD_PIDS+=($!)
done
t0=$(date +%s.%N)
healthy=0
for _ in $(seq 300); do
  for p in "${ETCD_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "$NAME: an etcd member exited:" >&2; tail -n 20 "$RUN"/etcd/e*.log >&2; exit 1; }
  done
  if timeout 5 etcdctl --endpoints="$EPS" --command-timeout=2s endpoint health >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.1
done
[ "$healthy" = 1 ] || { echo "$NAME: the etcd cluster is not healthy after 30 s:" >&2; tail -n 20 "$RUN"/etcd/e*.log >&2; exit 1; }
HEALTHY_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')

status_json() { ctl endpoint status -w json; }
leader_member() {  # the number (1-3) of the member that leads
  status_json | python3 -c '
import json, sys
st = json.load(sys.stdin)
for i, s in enumerate(st, 1):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(i)
        break
'
}
member_id() {  # the hex id of member $1
  status_json | python3 -c '
import json, sys
print("%x" % json.load(sys.stdin)[int(sys.argv[1]) - 1]["Status"]["header"]["member_id"])' "$1"
}
lead=$(leader_member)
if [ "$lead" != "$LEADER" ]; then
  timeout 30 etcdctl --endpoints="127.0.0.1:${CPORTS[$((lead - 1))]}" move-leader "$(member_id "$LEADER")" >/dev/null
  for _ in $(seq 50); do lead=$(leader_member); [ "$lead" = "$LEADER" ] && break; sleep 0.1; done
fi
[ "$lead" = "$LEADER" ] || { echo "$NAME: could not make member $LEADER the leader (it is $lead)" >&2; exit 1; }

# ---------- targets ----------
round_tag() { if [ "$1" = 0 ]; then echo warm; else echo "r$1"; fi; }
tag_json() {  # round: prefix every JSON line on stdin with "round"
  sed "s/^{/{\"round\":$1,/"
}
SERVE_PID=
start_serve() {  # log-file store-args...: starts meshctl serve, sets SERVE_PID and SERVE_URL
  local log=$1; shift
  : > "$log"   # exists before the first look at it (the background child opens it when it gets to run)
  "$meshctl" serve --listen 127.0.0.1:0 "$@" 2>>"$log" &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  SERVE_URL=
  for _ in $(seq 400); do
    SERVE_URL=$(sed -n 's/^meshctl serve: listening on \(http:[^ ]*\)$/\1/p' "$log" | head -n1)
    [ -n "$SERVE_URL" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { echo "$NAME: meshctl serve exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$SERVE_URL" ] || { echo "$NAME: meshctl serve did not say where it listens:" >&2; cat "$log" >&2; exit 1; }
}
run_load() {  # round out-file load-args...: one bounded load run; its JSON line to the results
  local r=$1 out=$2; shift 2
  local cpu=(--cpu "etcd=$(IFS=,; echo "${ETCD_PIDS[*]}")") hwm=0
  [ -n "$SERVE_PID" ] && cpu+=(--cpu "serve=$SERVE_PID")
  if ! bounded "$TIMEOUT" "$load" "$@" "${cpu[@]}" > "$out.json" 2> "$out.err"; then
    echo "$NAME: examples/load $* failed or took over ${TIMEOUT} s:" >&2; tail -n 20 "$out.err" >&2; exit 1
  fi
  # the server's peak resident size over its life (lists of every object are the big answers)
  [ -n "$SERVE_PID" ] && hwm=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVE_PID/status" 2>/dev/null || echo 0)
  sed 's/^load: /    /' "$out.err" >&2
  sed "s/}\$/,\"serve_peak_rss_mb\":${hwm:-0}}/" "$out.json" | tag_json "$r" >> "$RES"
}

run_serve_sqlite() {
  local r=$1 d; d=$RUN/$(round_tag "$1")/serve-sqlite; mkdir -p "$d"
  start_serve "$d/serve.log" --store "sqlite:$d/store.db"
  run_load "$r" "$d/load" http --url "$SERVE_URL" --clients "$CLIENTS" --requests "$N" --lists "$LISTS" --label "serve sqlite"
  stop_pid "$SERVE_PID"; SERVE_PID=
}
run_serve_etcd() {
  local r=$1 d; d=$RUN/$(round_tag "$1")/serve-etcd; mkdir -p "$d"
  start_serve "$d/serve.log" --store "etcd://$EPS" --etcd-prefix "/bench/$(round_tag "$r")/serve/"
  run_load "$r" "$d/load" http --url "$SERVE_URL" --clients "$CLIENTS" --requests "$N" --lists "$LISTS" --label "serve etcd"
  stop_pid "$SERVE_PID"; SERVE_PID=
}
run_direct() {
  local r=$1 d; d=$RUN/$(round_tag "$1")/direct; mkdir -p "$d"
  run_load "$r" "$d/load" etcd --endpoints "$EPS" --prefix "/bench/$(round_tag "$r")/direct/" \
    --clients "$CLIENTS" --requests "$N" --lists "$LISTS" --label "EtcdStore direct"
}

b64() { printf '%s' "$1" | base64 -w0; }
key_prefix() {  # a prefix padded with '_' to a multiple of 3 bytes, base64
  local p=$1
  while [ $((${#p} % 3)) != 0 ]; do p="${p}_"; done
  b64 "$p"
}
wrk_run() {  # out op prefix-b64 [keys]: one bounded wrk run against E1
  local out=$1; shift
  bounded $((D + 30)) wrk -t"$WRK_T" -c"$CLIENTS" -d"${D}s" --latency -s "$ROOT/bench/etcd-kv.lua" "$E1" \
    -- "$1" "$2" "$VALUE_B64" "${3:-0}" > "$out" 2>&1 \
    || { echo "$NAME: wrk $1 failed or took too long:" >&2; cat "$out" >&2; exit 1; }
}
run_raw() {
  local r=$1 d t pp tp e0 e1 keys count done_txn
  t=$(round_tag "$r"); d=$RUN/$t/raw; mkdir -p "$d"
  pp=$(key_prefix "/bench/$t/put/"); tp=$(key_prefix "/bench/$t/txn/")
  e0=$(cpu_ticks "${ETCD_PIDS[@]}")
  wrk_run "$d/put.txt" put "$pp"
  e1=$(cpu_ticks "${ETCD_PIDS[@]}"); echo $((e1 - e0)) > "$d/put.cpu"; e0=$e1
  wrk_run "$d/txn.txt" txn "$tp"
  e1=$(cpu_ticks "${ETCD_PIDS[@]}"); echo $((e1 - e0)) > "$d/txn.cpu"; e0=$e1
  # every range reads a key the txn run wrote: below the fewest any thread generated, less those in flight
  keys=$(sed -n 's/^thread [0-9]*: \([0-9]*\)$/\1/p' "$d/txn.txt" | sort -n | head -n1)
  keys=$((keys - CLIENTS))
  [ "$keys" -ge 1 ] || { echo "$NAME: the txn run wrote too few keys to read back" >&2; cat "$d/txn.txt" >&2; exit 1; }
  wrk_run "$d/range.txt" range "$tp" "$keys"
  e1=$(cpu_ticks "${ETCD_PIDS[@]}"); echo $((e1 - e0)) > "$d/range.cpu"
  # the txn run's creates must have happened: etcd holds at least as many keys as it completed
  count=$(ctl get "/bench/$t/txn/" --prefix --keys-only --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))')
  done_txn=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$d/txn.txt")
  [ "${count:-0}" -ge "${done_txn:-1}" ] || { echo "$NAME: the txn run completed $done_txn requests but etcd holds $count keys" >&2; exit 1; }
  python3 - "$d" "$r" "$HZ" "$count" >> "$RES" <<'PY'
import json, re, sys
d, rnd, hz, stored = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
out = {"round": rnd, "mode": "raw etcd (wrk)", "txn_keys_stored": stored}
for op in ("put", "txn", "range"):
    t = open(f"{d}/{op}.txt").read()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    err = re.search(r"Socket errors: (.*)", t)
    if bad or err:
        sys.exit(f"bench/etcd.sh: wrk {op}: {(bad or err).group(0)}\n{t}")
    out[f"{op}s_per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    out[f"{op}_p50_ms"] = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
    out[f"{op}_p99_ms"] = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
    out[f"{op}_requests"] = int(re.search(r"^\s*(\d+) requests in", t, re.M).group(1))
    # etcd's CPU (3 members) per request, over the run (the requests in flight at the end are few)
    out[f"cpu_etcd_{op}_us"] = int(open(f"{d}/{op}.cpu").read()) / hz * 1e6 / out[f"{op}_requests"]
print(json.dumps(out))
PY
  tail -n1 "$RES" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("    raw etcd (wrk): " + ", ".join("%s %.0f/s p50 %.2f ms p99 %.2f ms" % (op, r[op + "s_per_s"], r[op + "_p50_ms"], r[op + "_p99_ms"]) for op in ("put", "txn", "range")))' >&2
}

run_watch() {
  local r=$1 d t a_pid a_url b_pid
  t=$(round_tag "$r"); d=$RUN/$t/watch; mkdir -p "$d"
  start_serve "$d/serve-a.log" --store "etcd://$EPS" --etcd-prefix "/bench/$t/watch/"
  a_pid=$SERVE_PID; a_url=$SERVE_URL
  start_serve "$d/serve-b.log" --store "etcd://$EPS" --etcd-prefix "/bench/$t/watch/"
  b_pid=$SERVE_PID; SERVE_PID=
  run_load "$r" "$d/load" watch --urls "$a_url,$SERVE_URL" --watchers "$WATCHERS" --changes "$C" \
    --interval-ms "$INTERVAL_MS" --label "watch" --cpu "a=$a_pid" --cpu "b=$b_pid"
  stop_pid "$a_pid"; stop_pid "$b_pid"
}

end_round() {  # drop the round's keys and compact etcd's history, so every round starts alike
  local t rev
  t=$(round_tag "$1")
  ctl del "/bench/$t/" --prefix >/dev/null
  rev=$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
  ctl compaction "$rev" >/dev/null
}

stored_value() {  # a median-sized value of what meshctl stored under a prefix (for wrk's values)
  ctl get "$1" --prefix --limit 1000 -w json | python3 -c '
import base64, json, sys
vals = sorted((base64.b64decode(kv["value"]) for kv in json.load(sys.stdin).get("kvs", [])), key=len)
if not vals:
    sys.exit("no values stored")
sys.stdout.write(base64.b64encode(vals[len(vals) // 2]).decode())'
}

rotate() {  # r list...: the list rotated left by r
  local r=$1; shift
  local a=("$@") n=$# i
  for i in $(seq 0 $((n - 1))); do echo -n "${a[$(((i + r) % n))]} "; done
}

# ---------- run ----------
{
  echo
  echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown); $(etcd --version | head -n1); $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "etcd: 3 members on 127.0.0.1 (clients :${CPORTS[0]} :${CPORTS[1]} :${CPORTS[2]}), healthy after ${HEALTHY_S} s, leader e$LEADER; data dirs on $MEDIUM"
  df -T "$RUN" | sed 's/^/  df -T: /'
  echo "ROUNDS=$ROUNDS REQUESTS=$REQUESTS CLIENTS=$CLIENTS LISTS=$LISTS DUR=${DUR}s WRK_T=$WRK_T WATCHERS=$WATCHERS CHANGES=$CHANGES INTERVAL_MS=$INTERVAL_MS"
  echo
} | tee "$RUN/header.txt" >&2

TARGETS="serve-sqlite serve-etcd direct raw watch"
WARM_N=$((REQUESTS < 2000 ? REQUESTS : 2000))
for r in $(seq 0 "$ROUNDS"); do
  if [ "$r" = 0 ]; then
    N=$WARM_N D=1 C=$((CHANGES < 20 ? CHANGES : 20))
    echo "warm-up (not counted): $N objects, wrk 1 s, $C changes" >&2
    # serve-etcd first, so the warm-up measures the size of a stored value for wrk
    order="serve-etcd serve-sqlite direct raw watch"
  else
    N=$REQUESTS D=$DUR C=$CHANGES
    # shellcheck disable=SC2086
    order=$(rotate "$((r - 1))" $TARGETS)
    echo "round $r/$ROUNDS: $order" >&2
  fi
  for target in $order; do
    if [ "$r" = 0 ] && [ "$target" = raw ]; then
      VALUE_B64=$(stored_value "/bench/warm/serve/")
      echo "  wrk values: $(printf '%s' "$VALUE_B64" | base64 -d | wc -c) bytes (a median-sized value meshctl stored)" >&2
    fi
    echo "  $target" >&2
    case $target in
      serve-sqlite) run_serve_sqlite "$r";;
      serve-etcd) run_serve_etcd "$r";;
      direct) run_direct "$r";;
      raw) run_raw "$r";;
      watch) run_watch "$r";;
    esac
  done
  end_round "$r"
done
VALUE_BYTES=$(printf '%s' "$VALUE_B64" | base64 -d | wc -c)

cat "$RUN/header.txt"
python3 - "$RES" "$VALUE_BYTES" "$N" "$INTERVAL_MS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
value_bytes, n_objects, interval_ms = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [r for r in rows if r["round"] > 0]
rounds = sorted({r["round"] for r in rows})
med = statistics.median
by = lambda mode: {r["round"]: r for r in rows if r["mode"] == mode}
sq, et, di, raw, w = by("serve sqlite"), by("serve etcd"), by("EtcdStore direct"), by("raw etcd (wrk)"), by("watch")
def m(runs, key):
    vals = [r[key] for r in runs.values() if r.get(key) is not None]
    return med(vals) if vals else float("nan")

print(f"Medians of {len(rounds)} rounds (after 1 warm-up round); every target once per round, in rotated order.\n")
print(f"| target ({n_objects:,} objects, {next(iter(sq.values()))['clients']} clients) | creates/s | create p50 (ms) | create p99 (ms) "
      "| gets/s | get p50 (ms) | get p99 (ms) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, runs in (("meshctl serve, sqlite", sq), ("meshctl serve, etcd (3 members)", et), ("EtcdStore called directly", di)):
    print(f"| {name} | {m(runs, 'creates_per_s'):.0f} | {m(runs, 'create_p50_ms'):.2f} | {m(runs, 'create_p99_ms'):.2f} "
          f"| {m(runs, 'gets_per_s'):.0f} | {m(runs, 'get_p50_ms'):.2f} | {m(runs, 'get_p99_ms'):.2f} |")
print(f"| etcd gateway (wrk): txn create-if-absent; range of one key | {m(raw, 'txns_per_s'):.0f} | {m(raw, 'txn_p50_ms'):.2f} "
      f"| {m(raw, 'txn_p99_ms'):.2f} | {m(raw, 'ranges_per_s'):.0f} | {m(raw, 'range_p50_ms'):.2f} | {m(raw, 'range_p99_ms'):.2f} |")
print(f"| etcd gateway (wrk): plain put | {m(raw, 'puts_per_s'):.0f} | {m(raw, 'put_p50_ms'):.2f} | {m(raw, 'put_p99_ms'):.2f} | | | |")
print(f"\n(wrk: distinct keys, values of {value_bytes} bytes, a median-sized rule as meshctl stored it.)\n")

print(f"| list of all {n_objects:,} EgressRules | median (ms) | min (ms) | max (ms) | answer | server peak RSS |")
print("|---|---:|---:|---:|---:|---:|")
for name, runs in (("meshctl serve, sqlite", sq), ("meshctl serve, etcd", et), ("EtcdStore::list directly", di)):
    if "list_median_ms" not in next(iter(runs.values())):
        continue
    size = m(runs, "list_bytes")
    rss = m(runs, "serve_peak_rss_mb")
    print(f"| {name} | {m(runs, 'list_median_ms'):.1f} | {min(r['list_min_ms'] for r in runs.values()):.1f} "
          f"| {max(r['list_max_ms'] for r in runs.values()):.1f} | {f'{size / 1e6:.2f} MB' if size else '-'} "
          f"| {f'{rss:.0f} MB' if rss else '-'} |")

def ratio(a, ka, b, kb, label):
    common = [x for x in rounds if x in a and x in b]
    rm = med(a[x][ka] for x in common) / med(b[x][kb] for x in common)
    pr = med(a[x][ka] / b[x][kb] for x in common)
    print(f"| {label} | {rm:.2f}× | {pr:.2f}× |")
print("\n| ratio | of medians | median of per-round ratios |")
print("|---|---:|---:|")
ratio(et, "creates_per_s", raw, "txns_per_s", "serve on etcd creates/s ÷ etcd txn/s")
ratio(et, "gets_per_s", raw, "ranges_per_s", "serve on etcd gets/s ÷ etcd range/s")
ratio(di, "creates_per_s", raw, "txns_per_s", "EtcdStore creates/s ÷ etcd txn/s")
ratio(di, "gets_per_s", raw, "ranges_per_s", "EtcdStore gets/s ÷ etcd range/s")
ratio(et, "creates_per_s", sq, "creates_per_s", "serve on etcd ÷ serve on sqlite, creates/s")
ratio(et, "gets_per_s", sq, "gets_per_s", "serve on etcd ÷ serve on sqlite, gets/s")
if "list_median_ms" in next(iter(et.values())):
    ratio(et, "list_median_ms", sq, "list_median_ms", "serve on etcd ÷ serve on sqlite, list time")
    ratio(et, "list_median_ms", di, "list_median_ms", "serve on etcd ÷ EtcdStore::list, list time")

def cell(runs, k):
    v = m(runs, k) if runs else float("nan")
    return "-" if v != v else f"{v:.0f}"
print("\nCPU per request (user + system, all threads; medians): µs per create and per get, ms per list. "
      "etcd is the 3 members together; client is the load generator (for EtcdStore directly, it holds the store).\n")
print("| target | create: client | serve | etcd | get: client | serve | etcd | list: serve | etcd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, runs in (("meshctl serve, sqlite", sq), ("meshctl serve, etcd", et), ("EtcdStore called directly", di)):
    print(f"| {name} | {cell(runs, 'cpu_client_create_us')} | {cell(runs, 'cpu_serve_create_us')} | {cell(runs, 'cpu_etcd_create_us')} "
          f"| {cell(runs, 'cpu_client_get_us')} | {cell(runs, 'cpu_serve_get_us')} | {cell(runs, 'cpu_etcd_get_us')} "
          f"| {cell(runs, 'cpu_serve_list_ms')} | {cell(runs, 'cpu_etcd_list_ms')} |")
print(f"| etcd gateway (wrk): txn; range | - | - | {cell(raw, 'cpu_etcd_txn_us')} | - | - | {cell(raw, 'cpu_etcd_range_us')} | | |")
print(f"| etcd gateway (wrk): put | - | - | {cell(raw, 'cpu_etcd_put_us')} | | | | | |")

if w:
    one = next(iter(w.values()))
    print(f"\nWatch fan-out: {one['watchers']} watchers (plain HTTP streaming watches), half on each of {one['replicas']} "
          f"meshctl serve replicas A and B sharing the cluster; {one['changes']} creates through A, one after another, "
          f"{interval_ms} ms apart. Delivery latency per watcher and change (medians over rounds; max over all):\n")
    print("| delivered | watchers that saw every change | since the 201: p50 (ms) | p99 (ms) | max (ms) "
          "| since the POST: p50 (ms) | p99 (ms) | on A: p50 / p99 (ms) | on B: p50 / p99 (ms) | create p50 (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---:|")
    delivered = sum(r["delivered"] for r in w.values())
    expected = sum(r["expected"] for r in w.values())
    complete = min(r["complete_watchers"] for r in w.values())
    print(f"| {delivered:,}/{expected:,} | {complete}/{one['watchers']} (fewest in a round) "
          f"| {m(w, 'ack_p50_ms'):.2f} | {m(w, 'ack_p99_ms'):.2f} | {max(r['ack_max_ms'] for r in w.values()):.2f} "
          f"| {m(w, 'send_p50_ms'):.2f} | {m(w, 'send_p99_ms'):.2f} | {m(w, 'r0_ack_p50_ms'):.2f} / {m(w, 'r0_ack_p99_ms'):.2f} "
          f"| {m(w, 'r1_ack_p50_ms'):.2f} / {m(w, 'r1_ack_p99_ms'):.2f} | {m(w, 'create_p50_ms'):.2f} |")
    dup = sum(r["duplicates"] for r in w.values())
    errs = sum(r["watch_errors"] for r in w.values())
    print(f"\nDuplicates: {dup}; watchers with an error: {errs}. CPU per change while the watchers followed "
          f"(ms, medians): etcd {m(w, 'cpu_etcd_per_change_ms'):.2f}, replica A {m(w, 'cpu_a_per_change_ms'):.2f}, "
          f"replica B {m(w, 'cpu_b_per_change_ms'):.2f}, watchers (client) {m(w, 'cpu_client_per_change_ms'):.2f}.")
    if delivered != expected or dup or errs:
        print("\n**Not every watcher saw every change exactly once.**")
print()
PY
