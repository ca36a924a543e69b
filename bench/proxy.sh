#!/usr/bin/env bash
# meshctl proxy (--forward, L4) against nginx stream and HAProxy on loopback, measured side by side in
# the same run, with a direct connection as the ceiling (issue 4's performance part).
#
# Needs (Debian 12 packages): iperf3 nginx libnginx-mod-stream haproxy wrk, plus python3 and a Rust
# toolchain; installs nothing, and exits 2 naming what is missing. Every listener is on 127.0.0.1;
# every process started here is stopped by its PID on exit, and every measurement is bounded by
# `timeout`. The method and the peers' configurations follow the shared peer baseline
# (../shared/bench/peers/run.sh); the configurations used are the copies in bench/peers/.
#
#   bench/proxy.sh                       # REPS=3 DUR=10 WORKERS=1
#   REPS=3 DUR=5 bench/proxy.sh          # the run in docs/BENCHMARKS.md
#   QUICK=1 bench/proxy.sh               # smoke run: 1 round of 1 s, fewer connections
#   WORKERS=2 bench/proxy.sh             # meshctl --workers / nginx worker_processes / haproxy nbthread
#   ONLY="tcp1 conn" bench/proxy.sh      # a subset of: tcp1 tcp8 conn serial rules mem
#   MESHCTL=0 bench/proxy.sh             # the peers alone (no meshctl build, no meshctl targets)
#   KEEP=1 ...                           # keep the run directory (configs, logs, raw output)
#   RULE_COUNTS="10 1000 100000" SERIAL_N=2000 MEM_CONNS=9900 MEM_USED_CONNS=3000 WRK_T=2 WRK_C=64
#   may be set too.
#
# Builds `cargo build --release` once, then starts on 127.0.0.1:
#   iperf3 server :25201, nginx origin :25301 (a 64-byte static page),
#   nginx stream  :25211 -> :25201, :25212 -> :25301
#   haproxy tcp   :25221 -> :25201, :25222 -> :25301
#   meshctl proxy --workers $WORKERS -f RULES --listen 127.0.0.1:0 --admin 127.0.0.1:0
#                 --forward 127.0.0.1:25231=127.0.0.1:25201 --forward 127.0.0.1:25232=127.0.0.1:25301
#                 --no-access-log (ACCESS_LOG=devnull: --access-log /dev/null instead; the peers
#                 are configured without access logs, so the default compares like with like)
#     where RULES holds one EgressRule allowing 127.0.0.1/32 on ports 25201 and 25301 (tcp), and, for
#     the rules test, one more meshctl per entry of RULE_COUNTS (:25233, :25234, ... -> :25301), each
#     with a generated file of that many EgressRules (distinct /32 and /24 CIDRs in 10.0.0.0/8 on other
#     ports, then the one that allows the target, last).
# Tests (one uncounted warm-up round, then REPS rounds; in every round each target runs once, in an
# order rotated from round to round):
#   tcp1 / tcp8 : iperf3 -t DUR, 1 and 8 parallel streams, Gbit/s received
#                 (direct :25201, nginx :25211, haproxy :25221, meshctl :25231)
#   conn        : new connections/s: wrk -tWRK_T -cWRK_C -d DUR with "Connection: close" to the
#                 origin, one tiny request/response per connection (direct :25301, nginx :25212,
#                 haproxy :25222, meshctl :25232)
#   serial      : serial connection latency (python: connect, GET, read to EOF, close), SERIAL_N
#                 connections, p50/p99 in microseconds, same ports as conn
#   rules       : conn and serial through the meshctl instances with RULE_COUNTS rules
#   mem         : before the rounds, once per proxy and kind, each time on a newly started proxy
#                 process (restarted by PID): idle connections through it to the origin, opened one after another and held; the proxy's resident size (VmRSS, all
#                 its processes) and open descriptors before, with them open, and after closing
#                 them; per connection: (with - before) / connections still open. Two kinds:
#                   never used:        MEM_CONNS connections that carry no byte (connect only)
#                   after one request: MEM_USED_CONNS keep-alive connections that have carried one
#                                      request and its answer
#                 MEM_CONNS is 9,900, not 10,000: a proxy holds at least two descriptors per
#                 connection and the hard open-files limit here is 20,000 per process. A proxy that
#                 holds more descriptors per used connection runs out sooner (an early meshctl kept
#                 two pipes per used connection; its pipes are now pooled and held only while bytes
#                 are in them), hence the smaller MEM_USED_CONNS; the table says how many stayed
#                 open and the first error.
# The proxy CPU column is the CPU seconds (user+sys) the proxy process(es) used during the test.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
HERE=$ROOT/bench/peers
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}; DUR=${DUR:-1}; SERIAL_N=${SERIAL_N:-200}; MEM_CONNS=${MEM_CONNS:-1000}; MEM_USED_CONNS=${MEM_USED_CONNS:-1000}
fi
REPS=${REPS:-3}
DUR=${DUR:-10}
WORKERS=${WORKERS:-1}
ORIGIN_WORKERS=${ORIGIN_WORKERS:-1}
SERIAL_N=${SERIAL_N:-2000}
MEM_CONNS=${MEM_CONNS:-9900}
MEM_USED_CONNS=${MEM_USED_CONNS:-3000}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-64}
RULE_COUNTS=${RULE_COUNTS:-"10 1000 100000"}
ONLY=${ONLY:-"tcp1 tcp8 conn serial rules mem"}
MESHCTL=${MESHCTL:-1}
KEEP=${KEEP:-0}
ACCESS_LOG=${ACCESS_LOG:-none}
case $ACCESS_LOG in
  none) LOG_ARGS=(--no-access-log) ;;
  devnull) LOG_ARGS=(--access-log /dev/null) ;;
  *) echo "bench/proxy.sh: ACCESS_LOG is none or devnull, not '$ACCESS_LOG'" >&2; exit 2 ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-target}

need="iperf3 nginx libnginx-mod-stream haproxy wrk"
for t in iperf3 nginx haproxy wrk python3 timeout; do
  command -v "$t" >/dev/null || { echo "bench/proxy.sh: missing tool: $t (apt-get install -y $need python3)" >&2; exit 2; }
done
[ -f /usr/share/nginx/modules/ngx_stream_module.so ] || { echo "bench/proxy.sh: missing the nginx stream module (apt-get install -y libnginx-mod-stream)" >&2; exit 2; }
[ "$MESHCTL" = 0 ] || command -v cargo >/dev/null || { echo "bench/proxy.sh: missing cargo (a Rust toolchain), or run MESHCTL=0 for the peers alone" >&2; exit 2; }
case " $ONLY " in *" rules "*|*" mem "*|*" tcp1 "*|*" tcp8 "*|*" conn "*|*" serial "*) ;; *) echo "bench/proxy.sh: ONLY='$ONLY' names no test" >&2; exit 2;; esac
for t in $ONLY; do case $t in tcp1|tcp8|conn|serial|rules|mem) ;; *) echo "bench/proxy.sh: unknown test '$t'" >&2; exit 2;; esac; done
has() { case " $ONLY " in *" $1 "*) return 0;; *) return 1;; esac; }

meshctl=$TARGET_DIR/release/meshctl
TARGETS="direct nginx haproxy"
if [ "$MESHCTL" != 0 ]; then
  cargo build --release
  if ! "$meshctl" proxy --help >/dev/null 2>&1; then
    echo "bench/proxy.sh: $meshctl has no 'proxy' command (MESHCTL=0 runs the peers alone)" >&2; exit 2
  fi
  TARGETS="direct nginx haproxy meshctl"
else
  has rules && ONLY=$(echo " $ONLY " | sed 's/ rules / /; s/^ *//; s/ *$//')
fi

RULE_PORTS=()
i=0
for n in $RULE_COUNTS; do RULE_PORTS+=($((25233 + i))); i=$((i + 1)); done
PORTS="25201 25211 25212 25221 25222 25301"
[ "$MESHCTL" != 0 ] && PORTS="$PORTS 25231 25232"
has rules && PORTS="$PORTS ${RULE_PORTS[*]}"
for p in $PORTS; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "bench/proxy.sh: port 127.0.0.1:$p already in use; aborting" >&2; exit 2; fi
done

RUN=$(mktemp -d -t proxy-bench.XXXXXX)
chmod 755 "$RUN"   # nginx workers run as nobody and must read html/
RES=$RUN/results.tsv
MEMRES=$RUN/memory.tsv
INFO=$RUN/info.tsv
: > "$RES"; : > "$MEMRES"; : > "$INFO"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "run directory kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait up to 5 s for 127.0.0.1:$1 to accept
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done
  echo "bench/proxy.sh: port $1 did not come up" >&2; return 1
}
now() { date +%s.%N; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------- rules ----------
gen_rules() {  # count file: count-1 generated EgressRules on other ports, then the benchmark's own, last
  python3 - "$1" "$2" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w") as f:
    for i in range(n - 1):
        if i % 4 == 3:   # every 4th rule a /24 in 10.128.0.0/9 (32,768 of them available)
            j = i // 4
            cidr = "10.%d.%d.0/24" % (128 + (j >> 8) % 128, j & 255)
        else:            # the others /32s in 10.0.0.0/9
            cidr = "10.%d.%d.%d/32" % ((i >> 16) & 127, (i >> 8) & 255, i & 255)
        p = 1024 + (i * 7919) % 20000   # 1024..21023: never the benchmark's ports
        f.write("apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n"
                "  name: bench-%06d\n  namespace: default\nspec:\n  destination:\n"
                "    service: %s\n  ports:\n  - port: %d\n    protocol: tcp\n" % (i, cidr, p))
        if i % 3 == 0:   # a third of them with a second port
            f.write("  - port: %d\n    protocol: tcp\n" % (p + 1))
        f.write("---\n")
    f.write("apiVersion: config.istio.io/v1alpha2\nkind: EgressRule\nmetadata:\n"
            "  name: zz-bench-target\n  namespace: default\nspec:\n  destination:\n"
            "    service: 127.0.0.1/32\n  ports:\n  - port: 25201\n    protocol: tcp\n"
            "  - port: 25301\n    protocol: tcp\n")
PY
}

if [ "$MESHCTL" != 0 ]; then
  mkdir -p "$RUN/rules"
  gen_rules 1 "$RUN/rules/rules.yaml"
  "$meshctl" validate -q --strict -f "$RUN/rules" || { echo "bench/proxy.sh: the benchmark's rule does not validate" >&2; exit 1; }
  if has rules; then
    for n in $RULE_COUNTS; do
      mkdir -p "$RUN/rules-$n"
      gen_rules "$n" "$RUN/rules-$n/rules.yaml"
      t0=$(now)
      "$meshctl" validate -q --strict -f "$RUN/rules-$n" || { echo "bench/proxy.sh: the $n generated rules do not validate" >&2; exit 1; }
      t1=$(now)
      printf 'validate\t%s\t%s\t%s\n' "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" \
        "$(stat -c %s "$RUN/rules-$n/rules.yaml")" >> "$INFO"
    done
  fi
fi

# ---------- start peers ----------
mkdir -p "$RUN"/origin/{logs,tmp,html} "$RUN"/nproxy/{logs,tmp} "$RUN"/haproxy
printf '%s\n' "hello from the nginx origin; this static body is 64 bytes long." > "$RUN/origin/html/index.html"

iperf3 -s -B 127.0.0.1 -p 25201 > "$RUN/iperf3-server.log" 2>&1 &
IPERF_PID=$!; PIDS+=("$IPERF_PID")

nginx -p "$RUN/origin/" -c "$HERE/nginx-origin.conf" -e "$RUN/origin/logs/error.log" \
  -g "daemon off; worker_processes $ORIGIN_WORKERS;" > "$RUN/origin/logs/stdout.log" 2>&1 &
ORIGIN_PID=$!; PIDS+=("$ORIGIN_PID")

start_nginx() {
  nginx -p "$RUN/nproxy/" -c "$HERE/nginx-proxy.conf" -e "$RUN/nproxy/logs/error.log" \
    -g "daemon off; worker_processes $WORKERS;" >> "$RUN/nproxy/logs/stdout.log" 2>&1 &
  NGINX_PID=$!; PIDS+=("$NGINX_PID")
}
start_haproxy() {
  HAP_THREADS=$WORKERS HAP_PIDFILE="$RUN/haproxy/haproxy.pid" \
    haproxy -f "$HERE/haproxy.cfg" -db >> "$RUN/haproxy/haproxy.log" 2>&1 &
  HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID")
}
stop_pid() {  # stop one process started here (TERM, then KILL after 5 s) and forget it
  local p=$1 q keep=()
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
start_nginx
start_haproxy

declare -A MPID=()   # meshctl instance name -> PID
start_meshctl() {  # name rulesdir forward...: start, wait for "ready", record start-up time and idle RSS
  local name=$1 dir=$2 log=$RUN/meshctl-$1.log args=() f t0 t1 pid
  shift 2
  for f in "$@"; do args+=(--forward "$f"); done
  t0=$(now)
  "$meshctl" proxy --workers "$WORKERS" -f "$dir" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    "${args[@]}" "${LOG_ARGS[@]}" > "$RUN/meshctl-$name.stdout" 2> "$log" &
  pid=$!; PIDS+=("$pid"); MPID[$name]=$pid
  for _ in $(seq 1200); do
    grep -q '^meshctl proxy: ready' "$log" && break
    kill -0 "$pid" 2>/dev/null || { echo "bench/proxy.sh: meshctl ($name) exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  grep -q '^meshctl proxy: ready' "$log" || { echo "bench/proxy.sh: meshctl ($name) not ready after 60 s:" >&2; cat "$log" >&2; exit 1; }
  t1=$(now)
  sleep 0.5
  printf 'start\t%s\t%s\t%s\t%s\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" \
    "$(rss_kb "$pid")" "$(grep -m1 '^meshctl proxy: rules at revision' "$log" | sed 's/^meshctl proxy: //')" >> "$INFO"
}

start_main_meshctl() {
  start_meshctl meshctl "$RUN/rules" 127.0.0.1:25231=127.0.0.1:25201 127.0.0.1:25232=127.0.0.1:25301
}
restart() {  # target: a new process, so that each memory measurement starts from a fresh one
  case $1 in
    nginx) stop_pid "$NGINX_PID"; start_nginx; wait_port 25211; wait_port 25212 ;;
    haproxy) stop_pid "$HAPROXY_PID"; start_haproxy; wait_port 25221; wait_port 25222 ;;
    meshctl) stop_pid "${MPID[meshctl]}"; start_main_meshctl ;;
  esac
  sleep 1   # nginx's worker is up, and every process has settled
}
if [ "$MESHCTL" != 0 ]; then
  start_main_meshctl
  if has rules; then
    i=0
    for n in $RULE_COUNTS; do
      start_meshctl "rules-$n" "$RUN/rules-$n" "127.0.0.1:${RULE_PORTS[$i]}=127.0.0.1:25301"
      i=$((i + 1))
    done
  fi
fi

for p in $PORTS; do wait_port "$p"; done
# sanity: the static page through every path to the origin
SANITY="25301 25212 25222"
[ "$MESHCTL" != 0 ] && SANITY="$SANITY 25232"
has rules && SANITY="$SANITY ${RULE_PORTS[*]}"
for p in $SANITY; do
  body=$(timeout 5 python3 - "$p" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
d = b""
while (c := s.recv(65536)): d += c
print(d.split(b"\r\n\r\n", 1)[1].decode().strip())
PY
) || true
  case "$body" in hello*) ;; *) echo "bench/proxy.sh: sanity check failed on port $p: '$body'" >&2; exit 1;; esac
done

# ---------- helpers ----------
pids_of() {  # a process and its direct children (nginx workers)
  echo "$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
}
proc_cpu() {  # user+sys clock ticks of a process and its direct children
  local total=0 p
  for p in $(pids_of "$1"); do
    [ -r /proc/$p/stat ] || continue
    total=$(( total + $(awk '{print $14 + $15}' /proc/$p/stat) ))
  done
  echo "$total"
}
pid_of() {  # target -> PID of the proxy process ("" for direct)
  case $1 in nginx) echo "$NGINX_PID";; haproxy) echo "$HAPROXY_PID";; direct) echo "";; *) echo "${MPID[$1]}";; esac
}
cpu_of() { local p; p=$(pid_of "$1"); if [ -n "$p" ]; then proc_cpu "$p"; else echo 0; fi; }
HZ=$(getconf CLK_TCK)

record() {  # test target rep value p50 p99 cpu_ticks errors
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
    "$(awk -v t="$7" -v hz="$HZ" 'BEGIN{printf "%.2f", t/hz}')" "$8" >> "$RES"
}

port_of() {  # kind target -> port (kind: tput for iperf3, origin for the HTTP origin)
  case $1:$2 in
    tput:direct) echo 25201;; tput:nginx) echo 25211;; tput:haproxy) echo 25221;; tput:meshctl) echo 25231;;
    origin:direct) echo 25301;; origin:nginx) echo 25212;; origin:haproxy) echo 25222;; origin:meshctl) echo 25232;;
    origin:rules-*)
      local i=0 n
      for n in $RULE_COUNTS; do [ "rules-$n" = "$2" ] && { echo "${RULE_PORTS[$i]}"; return; }; i=$((i + 1)); done ;;
  esac
}

run_iperf() {  # test target port streams rep
  local out=$RUN/iperf-$1-$2-$5.json c0 c1 v
  c0=$(cpu_of "$2")
  timeout $((DUR + 20)) iperf3 -c 127.0.0.1 -p "$3" -t "$DUR" -P "$4" -J > "$out" 2>&1 || true
  c1=$(cpu_of "$2")
  v=$(python3 -c 'import json,sys
try:
    j=json.load(open(sys.argv[1])); print("%.2f" % (j["end"]["sum_received"]["bits_per_second"]/1e9))
except Exception as e: print("ERR")' "$out")
  record "$1" "$2" "$5" "$v" "" "" $((c1 - c0)) ""
}

parse_wrk() {  # file -> "rps p50_us p99_us errors"
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m: return ""
    v, u = float(m.group(1)), m.group(2)
    return "%.0f" % (v * {"us": 1, "ms": 1e3, "s": 1e6}[u])
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
err = re.search(r"Socket errors: (.*)", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
e = []
if err: e.append(err.group(1).replace(" ", ""))
if non2xx: e.append("non2xx=" + non2xx.group(1))
print(rps.group(1) if rps else "ERR", us(p50.group(1)) if p50 else "-", us(p99.group(1)) if p99 else "-",
      ";".join(e) if e else "-")
PY
}

run_wrk() {  # test target port rep dur [extra wrk args...]
  local test=$1 target=$2 port=$3 rep=$4 dur=$5; shift 5
  local out=$RUN/wrk-$test-$target-$rep.txt c0 c1 rps p50 p99 err
  c0=$(cpu_of "$target")
  timeout $((dur + 20)) wrk -t"$WRK_T" -c"$WRK_C" -d"${dur}s" --latency "$@" "http://127.0.0.1:$port/" > "$out" 2>&1 || true
  c1=$(cpu_of "$target")
  read -r rps p50 p99 err < <(parse_wrk "$out")
  record "$test" "$target" "$rep" "$rps" "$p50" "$p99" $((c1 - c0)) "${err/-/}"
}

run_serial() {  # test target port rep n
  local c0 c1 out rate p50 p99
  c0=$(cpu_of "$2")
  out=$(timeout 120 python3 - "$3" "$5" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
lat = []
deadline = time.monotonic() + 60
for i in range(n):
    if time.monotonic() > deadline: break
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    while s.recv(65536): pass
    s.close()
    lat.append(time.perf_counter() - t0)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print("%.0f %.0f %.0f" % (len(lat) / sum(lat), q(0.50), q(0.99)))
PY
) || out="ERR - -"
  c1=$(cpu_of "$2")
  read -r rate p50 p99 <<< "$out"
  record "$1" "$2" "$4" "$rate" "$p50" "$p99" $((c1 - c0)) ""
}

run_mem() {  # target mode n: n idle connections through the proxy to the origin; its RSS and open FDs
  local target=$1 mode=$2 n=$3 port pids out
  port=$(port_of origin "$target")
  pids=$(pids_of "$(pid_of "$target")")
  out=$(timeout 300 python3 - "$port" "$mode" "$n" $pids <<'PY'
import os, resource, select, socket, struct, sys, time
port, mode, n, pids = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():  # kB, summed over the proxy's processes (nginx: master and workers)
    total = 0
    for p in pids:
        for line in open("/proc/%s/status" % p):
            if line.startswith("VmRSS:"): total += int(line.split()[1])
    return total
def fds(): return sum(len(os.listdir("/proc/%s/fd" % p)) for p in pids)
time.sleep(1)
before, fds_before = rss(), fds()
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"   # keep-alive: the connection stays open after the answer
socks, t0, failed = [], time.monotonic(), ""
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        if mode == "used":    # one request and its answer, then idle
            s.sendall(req)
            d = b""
            while not (b"\r\n\r\n" in d and d.endswith(b"long.\n")):
                c = s.recv(4096)
                if not c: raise OSError("closed by the proxy")
                d += c
    except OSError as e:
        failed = "connection %d: %s" % (i + 1, e)
        break
opened = time.monotonic() - t0
time.sleep(3)
with_open, fds_with = rss(), fds()
p = select.poll()
for s in socks: p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
alive = len(socks) - len(p.poll(0))         # an idle connection that is still open has nothing to read
for s in socks:                              # close with RST: no TIME_WAIT left for the later tests
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
time.sleep(2)
after = rss()
print(before, with_open, after, alive, "%.1f" % opened, fds_before, fds_with, failed.replace("\t", " ") or "-", sep="\t")
PY
) || out=$(printf 'ERR\tERR\tERR\t0\t-\t0\t0\tclient failed')
  printf '%s\t%s\t%s\t%s\n' "$target" "$mode" "$n" "$out" >> "$MEMRES"
  echo "  mem $mode $target: $(echo "$out" | tr '\t' ' ') (RSS kB before, with them open, after closing; still open; s to open; FDs before, with; error)" >&2
}

rotate() {  # rep list...: the list rotated left by rep
  local r=$1; shift
  local a=("$@") n=$#
  local i
  for i in $(seq 0 $((n - 1))); do echo -n "${a[$(((i + r) % n))]} "; done
}

measure() {  # test target rep dur serial_n
  local test=$1 target=$2 rep=$3 dur=$4 sn=$5
  case $test in
    tcp1|tcp8) [ "$rep" = 0 ] && return 0
               run_iperf "$test" "$target" "$(port_of tput "$target")" "${test#tcp}" "$rep" ;;
    conn|rconn) run_wrk "$test" "$target" "$(port_of origin "$target")" "$rep" "$dur" -H "Connection: close" ;;
    serial|rserial) run_serial "$test" "$target" "$(port_of origin "$target")" "$rep" "$sn" ;;
  esac
  echo "  rep $rep $test $target: $(tail -n1 "$RES" | cut -f4-8)" >&2
  sleep 1
}

# ---------- measure ----------
{
  echo "meshctl $([ "$MESHCTL" != 0 ] && (git describe --always --dirty 2>/dev/null || echo unknown) || echo '(not run)')"
  echo "started: iperf3=$IPERF_PID origin-nginx=$ORIGIN_PID proxy-nginx=$NGINX_PID haproxy=$HAPROXY_PID meshctl=${MPID[*]:-}"
  echo "REPS=$REPS DUR=${DUR}s WORKERS=$WORKERS ONLY='$ONLY' RULE_COUNTS='$RULE_COUNTS' SERIAL_N=$SERIAL_N MEM_CONNS=$MEM_CONNS MEM_USED_CONNS=$MEM_USED_CONNS"
} >&2

if has mem; then
  # Each measurement on a newly started proxy: what one left allocated would hide the next one's cost.
  for target in $TARGETS; do [ "$target" = direct ] || { restart "$target"; run_mem "$target" fresh "$MEM_CONNS"; }; done
  for target in $TARGETS; do [ "$target" = direct ] || { restart "$target"; run_mem "$target" used "$MEM_USED_CONNS"; }; done
  for target in $TARGETS; do [ "$target" = direct ] || restart "$target"; done
fi

RULE_TARGETS=""
for n in $RULE_COUNTS; do RULE_TARGETS="$RULE_TARGETS rules-$n"; done
# Round 0 is the warm-up (1 s and a tenth of the serial connections per target; not counted).
for rep in $(seq 0 "$REPS"); do
  if [ "$rep" = 0 ]; then d=1; sn=$(( SERIAL_N / 10 + 1 )); else d=$DUR; sn=$SERIAL_N; fi
  for test in $ONLY; do
    case $test in
      mem) ;;
      rules)
        # shellcheck disable=SC2086
        for target in $(rotate "$rep" $RULE_TARGETS); do measure rconn "$target" "$rep" "$d" "$sn"; done
        # shellcheck disable=SC2086
        for target in $(rotate "$rep" $RULE_TARGETS); do measure rserial "$target" "$rep" "$d" "$sn"; done ;;
      *)
        # shellcheck disable=SC2086
        for target in $(rotate "$rep" $TARGETS); do measure "$test" "$target" "$rep" "$d" "$sn"; done ;;
    esac
  done
done

# ---------- report ----------
python3 - "$RES" "$MEMRES" "$INFO" "$REPS" "$DUR" "$WORKERS" "$WRK_T" "$WRK_C" "$SERIAL_N" <<'PY'
import sys, statistics, subprocess, platform, os, datetime
res, memres, info, reps, dur, workers, wrk_t, wrk_c, serial_n = sys.argv[1:10]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
rows = [r for r in rows if r[2] != "0"]          # round 0 is the warm-up
mem = [l.rstrip("\n").split("\t") for l in open(memres) if l.strip()]
inf = [l.rstrip("\n").split("\t") for l in open(info) if l.strip()]
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().splitlines()[0]
    except Exception: return "?"
model = ver("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
print()
print(f"# {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; kernel {platform.release()}, {os.cpu_count()} CPUs ({model}); "
      f"{reps} rounds of {dur} s (+1 warm-up); proxy workers/threads={workers}; wrk -t{wrk_t} -c{wrk_c}; serial n={serial_n}")
print(f"# {ver('iperf3 --version')} | {ver('nginx -v 2>&1')} | {ver('haproxy -v')} | {ver('wrk -v 2>&1')}")
units = {"tcp1": "Gbit/s", "tcp8": "Gbit/s", "conn": "conn/s", "serial": "conn/s", "rconn": "conn/s", "rserial": "conn/s"}
desc = {"tcp1": "TCP throughput, 1 stream", "tcp8": "TCP throughput, 8 streams",
        "conn": "new connections/s (wrk, Connection: close)", "serial": "serial connections (1 at a time)",
        "rconn": "new connections/s", "rserial": "serial connections"}
def num(x):
    try: return float(x)
    except ValueError: return None
def med(vals):
    v = [num(x) for x in vals]
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
def fmt(x, nd=2):
    if x is None: return "-"
    return f"{x:,.{nd}f}"
def sel(test, target): return [r for r in rows if r[0] == test and r[1] == target]
def per_round(test, a, b, col=3):  # median over rounds of a/b
    ra = {r[2]: num(r[col]) for r in sel(test, a)}
    rb = {r[2]: num(r[col]) for r in sel(test, b)}
    v = [ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]]
    return statistics.median(v) if v else None
order = []
for r in rows:
    if (r[0], r[1]) not in order: order.append((r[0], r[1]))
main = [k for k in order if not k[0].startswith("r")]
if main:
    print()
    print("| test | target | median | unit | rounds | vs direct | p50 µs | p99 µs | proxy CPU s | CPU µs/conn | errors |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---|")
    for test in ["tcp1", "tcp8", "conn", "serial"]:
        for target in ["direct", "nginx", "haproxy", "meshctl"]:
            s = sel(test, target)
            if not s: continue
            m, base = med(r[3] for r in s), med(r[3] for r in sel(test, "direct"))
            nd = 2 if units[test] == "Gbit/s" else 0
            rel = "-" if target == "direct" or not base or m is None else f"{100 * m / base:.0f}%"
            cpu = med(r[6] for r in s)
            cpc = "-"
            if test == "conn" and target != "direct":
                v = [num(r[6]) / (num(r[3]) * float(dur)) * 1e6 for r in s if num(r[3]) and num(r[6]) is not None]
                cpc = fmt(statistics.median(v), 1) if v else "-"
            errs = ",".join(sorted({r[7] for r in s if r[7]}))
            print(f"| {desc[test]} | {target} | {fmt(m, nd)} | {units[test]} | {' / '.join(r[3] for r in s)} | {rel} | "
                  f"{fmt(med(r[4] for r in s), 0)} | {fmt(med(r[5] for r in s), 0)} | "
                  f"{fmt(cpu, 2) if target != 'direct' else '-'} | {cpc} | {errs} |")
    if sel("conn", "meshctl") or sel("tcp1", "meshctl"):
        print()
        print("| meshctl / ... | test | of medians | median of per-round ratios |")
        print("|---|---|---:|---:|")
        for other in ["direct", "nginx", "haproxy"]:
            for test in ["tcp1", "tcp8", "conn", "serial"]:
                a, b = med(r[3] for r in sel(test, "meshctl")), med(r[3] for r in sel(test, other))
                if a is None or not b: continue
                pr = per_round(test, "meshctl", other)
                print(f"| {other} | {desc[test]} | {a / b:.2f}× | {fmt(pr)}× |")
            a, b = med(r[4] for r in sel("serial", "meshctl")), med(r[4] for r in sel("serial", other))
            if a and b:
                print(f"| {other} | serial p50 latency (lower is better) | {a / b:.2f}× | {fmt(per_round('serial', 'meshctl', other, 4))}× |")
starts = {r[1]: r for r in inf if r[0] == "start"}
valid = {r[1]: r for r in inf if r[0] == "validate"}
rt = sorted({k[1] for k in order if k[0] == "rconn"}, key=lambda t: int(t[6:]))
if rt:
    base = rt[0]
    print()
    print(f"| EgressRules | file | validate s | start to ready s | idle RSS MB | conn/s | vs {base[6:]} | serial conn/s | serial p50 µs | vs {base[6:]} | serial p99 µs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in rt:
        n = t[6:]
        c, cb = med(r[3] for r in sel("rconn", t)), med(r[3] for r in sel("rconn", base))
        p, pb = med(r[4] for r in sel("rserial", t)), med(r[4] for r in sel("rserial", base))
        v, st = valid.get(n), starts.get(t)
        print(f"| {int(n):,} | {int(v[3]) / 1e6:.1f} MB | {v[2] if v else '-'} | {st[2] if st else '-'} | "
              f"{int(st[3]) / 1024:.1f} | {fmt(c, 0)} | "
              f"{c / cb:.2f}× ({fmt(per_round('rconn', t, base))}×) | {fmt(med(r[3] for r in sel('rserial', t)), 0)} | "
              f"{fmt(p, 0)} | {p / pb:.2f}× ({fmt(per_round('rserial', t, base, 4))}×) | {fmt(med(r[5] for r in sel('rserial', t)), 0)} |"
              if c and cb and p and pb else f"| {n} | - | - | - | - | - | - | - | - | - | - |")
if mem:
    print()
    print("| proxy | idle connections | asked | held open | RSS before MB | RSS with them open MB | after closing MB | KiB per connection | FDs per connection | s to open | error |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    what = {"fresh": "never used", "used": "after one request"}
    for r in mem:
        t, mode, n, b, w, a, alive, secs, fb, fw, err = (r + [""] * 11)[:11]
        if b == "ERR" or not int(alive):
            print(f"| {t} | {what[mode]} | {int(n):,} | {alive} | - | - | - | - | - | - | {err} |"); continue
        k = int(alive)
        print(f"| {t} | {what[mode]} | {int(n):,} | {k:,} | {int(b) / 1024:.1f} | {int(w) / 1024:.1f} | {int(a) / 1024:.1f} | "
              f"{(int(w) - int(b)) / k:.1f} | {(int(fw) - int(fb)) / k:.2f} | {secs} | {'' if err == '-' else err} |")
for r in [r for r in inf if r[0] == "start" and r[1] == "meshctl"][:1]:
    print(f"\n# meshctl (1 rule): ready {r[2]} s after start, idle RSS {int(r[3]) / 1024:.1f} MB; {r[4]}")
PY
