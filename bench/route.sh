#!/usr/bin/env bash
# meshctl proxy routing mesh HTTP requests (RouteRules, --services) against nginx as an HTTP reverse
# proxy with a weighted upstream, measured side by side in the same run, with a direct connection to
# one origin as the floor (issue 5's performance part).
#
# Needs (Debian 12 packages): nginx wrk, plus python3 and a Rust toolchain; installs nothing, and exits
# 2 naming what is missing. Every listener is on 127.0.0.1; every process started here is stopped by
# its PID on exit, and every measurement is bounded by `timeout`. The method follows bench/proxy.sh and
# the shared peer baseline (../shared/bench/peers/run.sh); the nginx configurations used are
# bench/peers/nginx-route-origin.conf and bench/peers/nginx-route-proxy.conf.
#
#   bench/route.sh                       # REPS=3 DUR=10 WORKERS=1
#   REPS=3 DUR=5 bench/route.sh          # the run in docs/BENCHMARKS.md
#   QUICK=1 bench/route.sh               # smoke run: 1 round of 1 s, 1,000 extra rules
#   WORKERS=2 bench/route.sh             # meshctl --workers / nginx worker_processes
#   ONLY="rps cost" bench/route.sh       # a subset of: rps rules cost
#   KEEP=1 ...                           # keep the run directory (configs, logs, raw output)
#   RULE_COUNTS="10 10000" WRK_T=2 WRK_C=16 IDLE_S=5 ORIGIN_WORKERS=1  may be set too.
#
# Builds `cargo build --release` once, then starts on 127.0.0.1:
#   nginx origin  :25401 (reviews v1) and :25402 (reviews v2), one process, each a 64-byte static page
#                 naming its version, each with its own access log (to count the split)
#   nginx proxy   :25411 -> upstream { :25401 weight=4; :25402 weight=1; keepalive 128 },
#                 proxy_http_version 1.1
#   meshctl proxy --workers $WORKERS --services SERVICES -f RULES --source-labels app=productpage,version=v1
#                 --listen 127.0.0.1:25420 --admin 127.0.0.1:0 --forward 127.0.0.1:25421=reviews:9080
#                 --no-access-log (nginx runs with access_log off)
#     where SERVICES registers reviews (port 9080) with the endpoints 127.0.0.1:25401 {version: v1} and
#     127.0.0.1:25402 {version: v2}, and RULES holds the RouteRule reviews-80-20 (v1 weight 80, v2 weight
#     20); both also hold the first RULE_COUNTS entry (10) of OTHER services, one endpoint each, and one
#     RouteRule per such service (plain routes, uri-prefix and header-regex matches, source matches).
#     For the rules test, one more meshctl per further RULE_COUNTS entry (10,000: :25422, :25423, ...),
#     the same but with that many other services and rules.
# Tests (one uncounted warm-up round of 1 s, then REPS rounds; in every round each target runs once, in
# an order rotated from round to round):
#   rps   : HTTP keep-alive requests/s, latency p50/p99: wrk -tWRK_T -cWRK_C -d DUR --latency
#           (direct :25401, nginx :25411, meshctl :25421). The v1/v2 split is counted from the
#           origin's two access logs over each run (the share of v1 should be 80%).
#   rules : the same wrk run through meshctl with 10 and with 10,000 other services and RouteRules
#           (:25421 and :25422); requests/s and CPU µs per request (utime+stime of the process over
#           the run / requests served). Target: within 10%.
#   cost  : from the rps runs: the proxy's CPU seconds over the run / requests served x 1,000 = vCPU
#           at 1,000 requests/s, and its resident size (VmRSS, all its processes) sampled near the end
#           of the run, next to Istio's published Envoy figure (0.35 vCPU and 40 MB per 1,000 req/s)
#           and nginx measured the same way.
# Before anything is timed: every generated rule set passes `meshctl validate --strict`, `meshctl check`
# must apply reviews-80-20 to http://reviews:9080/ and the generated rule to the last generated service,
# and 50 keep-alive requests through every path (absolute-form on the meshctl proxy port :25420 too) must
# get a version's page, both versions through the proxies. `cost` is computed from the rps runs (ONLY=cost
# runs and prints them too).
# Before the rounds, every proxy is left idle for IDLE_S seconds and its CPU time over that pause is
# recorded (a registry or rules poll that costs CPU shows there).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
HERE=$ROOT/bench/peers
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1}; DUR=${DUR:-1}; RULE_COUNTS=${RULE_COUNTS:-"10 1000"}; IDLE_S=${IDLE_S:-1}
fi
REPS=${REPS:-3}
DUR=${DUR:-10}
WORKERS=${WORKERS:-1}
ORIGIN_WORKERS=${ORIGIN_WORKERS:-1}
WRK_T=${WRK_T:-2}
WRK_C=${WRK_C:-16}
IDLE_S=${IDLE_S:-5}
RULE_COUNTS=${RULE_COUNTS:-"10 10000"}
ONLY=${ONLY:-"rps rules cost"}
KEEP=${KEEP:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SOURCE_LABELS="app=productpage,version=v1"

for t in nginx wrk python3 timeout; do
  command -v "$t" >/dev/null || { echo "bench/route.sh: missing tool: $t (apt-get install -y nginx wrk python3)" >&2; exit 2; }
done
command -v cargo >/dev/null || { echo "bench/route.sh: missing cargo (a Rust toolchain)" >&2; exit 2; }
for t in $ONLY; do case $t in rps|rules|cost) ;; *) echo "bench/route.sh: unknown test '$t' (rps rules cost)" >&2; exit 2;; esac; done
[ -n "${ONLY// /}" ] || { echo "bench/route.sh: ONLY='$ONLY' names no test" >&2; exit 2; }
has() { case " $ONLY " in *" $1 "*) return 0;; *) return 1;; esac; }
# shellcheck disable=SC2206
COUNTS=($RULE_COUNTS)
[ "${#COUNTS[@]}" -ge 1 ] || { echo "bench/route.sh: RULE_COUNTS is empty" >&2; exit 2; }
for n in "${COUNTS[@]}"; do
  case $n in ''|*[!0-9]*) echo "bench/route.sh: RULE_COUNTS: '$n' is not a number" >&2; exit 2;; esac
  [ "$n" -le 99999 ] || { echo "bench/route.sh: RULE_COUNTS: at most 99999 other services" >&2; exit 2; }
done
has rules && [ "${#COUNTS[@]}" -lt 2 ] && { echo "bench/route.sh: the rules test needs two RULE_COUNTS" >&2; exit 2; }

meshctl=$TARGET_DIR/release/meshctl
cargo build --release
if ! "$meshctl" proxy --help 2>/dev/null | grep -q -- '--services'; then
  echo "bench/route.sh: $meshctl proxy has no --services option (mesh routing, issue 5, is not in this build)" >&2; exit 2
fi

RULE_PORTS=()   # RULE_PORTS[i]: the forward port of the instance with COUNTS[i] other services
RULE_PORTS+=(25421)
for i in $(seq 1 $((${#COUNTS[@]} - 1))); do RULE_PORTS+=($((25421 + i))); done
PORTS="25401 25402 25411 25420 25421"
has rules && PORTS="$PORTS ${RULE_PORTS[*]:1}"
for p in $PORTS; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then echo "bench/route.sh: port 127.0.0.1:$p already in use; aborting" >&2; exit 2; fi
done

RUN=$(mktemp -d -t route-bench.XXXXXX)
chmod 755 "$RUN"   # nginx workers run as nobody and must read html-v1/, html-v2/
RES=$RUN/results.tsv
INFO=$RUN/info.tsv
: > "$RES"; : > "$INFO"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null || true; fi; done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "run directory kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # wait up to 5 s for 127.0.0.1:$1 to accept
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench/route.sh: port $1 did not come up" >&2; return 1
}
forget_pid() {  # drop a reaped process from PIDS
  local q keep=()
  for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
now() { date +%s.%N; }
pids_of() {  # a process and its direct children (nginx workers)
  echo "$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
}
rss_kb() {  # VmRSS of a process and its direct children, kB
  local total=0 p v
  for p in $(pids_of "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
proc_cpu() {  # user+sys clock ticks of a process (all its threads) and its direct children
  local total=0 p
  for p in $(pids_of "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

# ---------- services and rules ----------
gen_config() {  # n dir: services.yaml (reviews + n other services) and rules/ (reviews-80-20 + n RouteRules)
  mkdir -p "$2/rules"
  python3 - "$1" "$2" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
def ns(i): return "default" if i % 2 == 0 else "team-%02d" % (i % 40)
with open(out + "/services.yaml", "w") as f:
    f.write("services:\n"
            "- name: reviews\n  port: 9080\n  endpoints:\n"
            "  - address: 127.0.0.1:25401\n    labels: {version: v1}\n"
            "  - address: 127.0.0.1:25402\n    labels: {version: v2}\n")
    for i in range(n):   # never contacted: 10.0.0.0/8 addresses, no request names them
        f.write("- name: svc-%05d\n  namespace: %s\n  port: %d\n  endpoints:\n"
                "  - address: 10.%d.%d.%d:%d\n    labels: {version: v1, app: svc-%05d}\n"
                % (i, ns(i), 9080 + i % 7, 1 + (i >> 16) % 200, (i >> 8) & 255, i & 255, 8080 + i % 7, i))
with open(out + "/rules/reviews.yaml", "w") as f:
    f.write("apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n"
            "  name: reviews-80-20\n  namespace: default\nspec:\n  destination:\n    name: reviews\n"
            "  precedence: 1\n  route:\n  - labels:\n      version: v1\n    weight: 80\n"
            "  - labels:\n      version: v2\n    weight: 20\n")
with open(out + "/rules/others.yaml", "w") as f:
    for i in range(n):
        f.write("apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata:\n"
                "  name: svc-%05d-route\n  namespace: %s\nspec:\n  destination:\n    name: svc-%05d\n"
                "  precedence: %d\n" % (i, ns(i), i, 1 + i % 3))
        k = i % 4
        if k == 1:     # a uri prefix
            f.write("  match:\n    request:\n      headers:\n        uri:\n          prefix: /api/v%d/\n" % (i % 9))
        elif k == 2:   # a header regex (the whole value must match)
            f.write("  match:\n    request:\n      headers:\n        cookie:\n"
                    "          regex: \"^(.*?;)?(user=u%05d)(;.*)?$\"\n" % i)
        elif k == 3:   # the source service and labels
            f.write("  match:\n    source:\n      name: productpage\n      namespace: default\n"
                    "      labels:\n        version: v1\n")   # a source's namespace defaults to the rule's
        f.write("  route:\n  - labels:\n      version: v1\n")
        if i % 5 == 0:
            f.write("  httpReqTimeout:\n    simpleTimeout:\n      timeout: 2s\n")
        f.write("---\n")
PY
}

NCONF=${#COUNTS[@]}
has rules || NCONF=1
for i in $(seq 0 $((NCONF - 1))); do
  n=${COUNTS[$i]}
  gen_config "$n" "$RUN/conf-$n"
  t0=$(now)
  "$meshctl" validate -q --strict -f "$RUN/conf-$n/rules" || { echo "bench/route.sh: the rules with $n other services do not validate" >&2; exit 1; }
  t1=$(now)
  printf 'validate\t%s\t%s\t%s\t%s\n' "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" \
    "$(cat "$RUN/conf-$n/rules/"*.yaml | wc -c)" "$(stat -c %s "$RUN/conf-$n/services.yaml")" >> "$INFO"
  # what meshctl itself decides for the benchmark's request and for the last generated service
  out=$("$meshctl" check http://reviews:9080/ --services "$RUN/conf-$n/services.yaml" \
        --source-labels "$SOURCE_LABELS" -f "$RUN/conf-$n/rules" 2>&1) \
    || { echo "bench/route.sh: meshctl check http://reviews:9080/ failed with $n other services:" >&2; echo "$out" >&2; exit 1; }
  case $out in *reviews-80-20*) ;; *) echo "bench/route.sh: meshctl check does not apply reviews-80-20 with $n other services:" >&2; echo "$out" >&2; exit 1;; esac
  [ "$i" = 0 ] && echo "$out" > "$RUN/check-reviews.txt"
  if [ "$n" -gt 0 ]; then
    last=$((n - 1)); lns=default; [ $((last % 2)) = 1 ] && lns=$(printf 'team-%02d' $((last % 40)))
    url=$(printf 'http://svc-%05d.%s:%d/api/v%d/x' "$last" "$lns" $((9080 + last % 7)) $((last % 9)))
    out=$("$meshctl" check "$url" -H "cookie: user=$(printf 'u%05d' "$last")" --services "$RUN/conf-$n/services.yaml" \
          --source-labels "$SOURCE_LABELS" -f "$RUN/conf-$n/rules" 2>&1) \
      || { echo "bench/route.sh: meshctl check $url failed:" >&2; echo "$out" >&2; exit 1; }
    case $out in *"$(printf 'svc-%05d-route' "$last")"*) ;; *) echo "bench/route.sh: the generated rule does not apply to $url:" >&2; echo "$out" >&2; exit 1;; esac
  fi
done

# ---------- start the origin and nginx ----------
mkdir -p "$RUN"/origin/{logs,tmp,html-v1,html-v2} "$RUN"/nproxy/{logs,tmp}
printf '%s\n' "hello from reviews v1; a static page of exactly 64 bytes, v1 ok" > "$RUN/origin/html-v1/index.html"
printf '%s\n' "hello from reviews v2; a static page of exactly 64 bytes, v2 ok" > "$RUN/origin/html-v2/index.html"

nginx -p "$RUN/origin/" -c "$HERE/nginx-route-origin.conf" -e "$RUN/origin/logs/error.log" \
  -g "daemon off; worker_processes $ORIGIN_WORKERS;" > "$RUN/origin/logs/stdout.log" 2>&1 &
ORIGIN_PID=$!; PIDS+=("$ORIGIN_PID")
nginx -p "$RUN/nproxy/" -c "$HERE/nginx-route-proxy.conf" -e "$RUN/nproxy/logs/error.log" \
  -g "daemon off; worker_processes $WORKERS;" > "$RUN/nproxy/logs/stdout.log" 2>&1 &
NGINX_PID=$!; PIDS+=("$NGINX_PID")

declare -A MPID=()    # meshctl instance name -> PID
declare -A MADMIN=()  # meshctl instance name -> admin address
start_meshctl() {  # name n forward-port [listen-port]: start, wait for "ready", record start-up time and idle RSS
  local name=$1 n=$2 port=$3 listen=${4:-0} log=$RUN/meshctl-$1.log t0 t1 pid
  t0=$(now)
  "$meshctl" proxy --workers "$WORKERS" --services "$RUN/conf-$n/services.yaml" -f "$RUN/conf-$n/rules" \
    --source-labels "$SOURCE_LABELS" --listen "127.0.0.1:$listen" --admin 127.0.0.1:0 \
    --forward "127.0.0.1:$port=reviews:9080" --no-access-log > "$RUN/meshctl-$name.stdout" 2> "$log" &
  pid=$!; PIDS+=("$pid"); MPID[$name]=$pid
  for _ in $(seq 1200); do
    grep -q '^meshctl proxy: ready' "$log" && break
    kill -0 "$pid" 2>/dev/null || { echo "bench/route.sh: meshctl ($name) exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  grep -q '^meshctl proxy: ready' "$log" || { echo "bench/route.sh: meshctl ($name) not ready after 60 s:" >&2; cat "$log" >&2; exit 1; }
  t1=$(now)
  MADMIN[$name]=$(sed -n 's|^meshctl proxy: admin on http://\([^ ]*\).*|\1|p' "$log" | head -n1)
  sleep 0.5
  printf 'start\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" \
    "$(rss_kb "$pid")" "$(grep -m1 -E '^meshctl proxy: [0-9]+ service' "$log" | sed 's/^meshctl proxy: //')" "$n" >> "$INFO"
}
start_meshctl meshctl "${COUNTS[0]}" 25421 25420
RULE_TARGETS="meshctl"
if has rules; then
  for i in $(seq 1 $((${#COUNTS[@]} - 1))); do
    start_meshctl "rules-${COUNTS[$i]}" "${COUNTS[$i]}" "${RULE_PORTS[$i]}"
    RULE_TARGETS="$RULE_TARGETS rules-${COUNTS[$i]}"
  done
fi

for p in $PORTS; do wait_port "$p"; done

# sanity: the pages through every path (origin-form on the forwards and nginx, absolute-form on the
# meshctl proxy port), 50 requests on one keep-alive connection each; both versions must answer
# through the proxies
SANITY="25401:direct 25402:direct 25411:split 25420:abs"
for i in $(seq 0 $((NCONF - 1))); do SANITY="$SANITY ${RULE_PORTS[$i]}:split"; done
for s in $SANITY; do
  out=$(timeout 20 python3 - "${s%%:*}" "${s#*:}" <<'PY'
import socket, sys
port, kind = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rb")
seen = {}
for i in range(50):
    if kind == "abs":
        s.sendall(b"GET http://reviews:9080/ HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
    else:
        s.sendall(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
    status = f.readline().decode().strip()
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""): break
        k, _, v = h.decode().partition(":")
        if k.strip().lower() == "content-length": length = int(v)
    body = f.read(length).decode()
    if not status.endswith(" 200 OK") or not body.startswith("hello from reviews v"):
        print("request %d: %s %r" % (i + 1, status, body)); sys.exit(1)
    v = body[len("hello from reviews "):][:2]
    seen[v] = seen.get(v, 0) + 1
if kind in ("split", "abs") and len(seen) < 2:
    print("only %s answered in 50 requests" % seen); sys.exit(1)
print(" ".join("%s=%d" % kv for kv in sorted(seen.items())))
PY
) || { echo "bench/route.sh: sanity check failed on port ${s%%:*}: ${out:-no answer}" >&2; exit 1; }
  echo "  sanity :${s%%:*} (${s#*:}): $out" >&2
done

# ---------- helpers ----------
pid_of() {  # target -> PID of the proxy process ("" for direct)
  case $1 in nginx) echo "$NGINX_PID";; direct) echo "";; *) echo "${MPID[$1]}";; esac
}
cpu_of() { local p; p=$(pid_of "$1"); if [ -n "$p" ]; then proc_cpu "$p"; else echo 0; fi; }
port_of() {
  case $1 in
    direct) echo 25401;; nginx) echo 25411;; meshctl) echo 25421;;
    rules-*) local i; for i in $(seq 1 $((${#COUNTS[@]} - 1))); do [ "rules-${COUNTS[$i]}" = "$1" ] && echo "${RULE_PORTS[$i]}"; done ;;
  esac
}
log_lines() { wc -l < "$RUN/origin/logs/$1.log" 2>/dev/null || echo 0; }
settle_logs() {  # the origin flushes its buffered access logs every 200 ms: wait until they stop growing
  local a b
  for _ in $(seq 20); do
    a="$(log_lines v1) $(log_lines v2)"; sleep 0.3; b="$(log_lines v1) $(log_lines v2)"
    [ "$a" = "$b" ] && return 0
  done
}

parse_wrk() {  # file -> "rps p50_us p99_us requests errors"
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m: return "-"
    v, u = float(m.group(1)), m.group(2)
    return "%.0f" % (v * {"us": 1, "ms": 1e3, "s": 1e6}[u])
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M)
p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
n = re.search(r"^\s*(\d+) requests in", t, re.M)
err = re.search(r"Socket errors: (.*)", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
e = []
if err: e.append(err.group(1).replace(" ", ""))
if non2xx: e.append("non2xx=" + non2xx.group(1))
print(rps.group(1) if rps else "ERR", us(p50.group(1)) if p50 else "-", us(p99.group(1)) if p99 else "-",
      n.group(1) if n else "0", ";".join(e) if e else "-")
PY
}

record() {  # test target rep rps p50 p99 cpu_ticks errors requests v1 v2 rss_kb
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
    "$(awk -v t="$7" -v hz="$HZ" 'BEGIN{printf "%.2f", t/hz}')" "$8" "$9" "${10}" "${11}" "${12}" >> "$RES"
}

run_wrk() {  # test target rep dur
  local test=$1 target=$2 rep=$3 dur=$4 port pid out c0 c1 a1 a2 b1 b2 rps p50 p99 n err rss=0 sampler=""
  port=$(port_of "$target"); pid=$(pid_of "$target")
  out=$RUN/wrk-$test-$target-$rep.txt
  settle_logs
  a1=$(log_lines v1); a2=$(log_lines v2)
  if [ -n "$pid" ]; then   # the proxy's resident size near the end of the run, under load
    ( sleep "$(awk -v d="$dur" 'BEGIN{print d * 0.9}')"; rss_kb "$pid" > "$RUN/rss-$test-$target-$rep" ) &
    sampler=$!; PIDS+=("$sampler")
  fi
  c0=$(cpu_of "$target")
  timeout $((dur + 20)) wrk -t"$WRK_T" -c"$WRK_C" -d"${dur}s" --latency "http://127.0.0.1:$port/" > "$out" 2>&1 || true
  c1=$(cpu_of "$target")
  if [ -n "$sampler" ]; then
    wait "$sampler" 2>/dev/null || true
    forget_pid "$sampler"   # reaped: its PID may be reused, so cleanup must not signal it
    rss=$(cat "$RUN/rss-$test-$target-$rep" 2>/dev/null || echo 0)
  fi
  settle_logs
  b1=$(log_lines v1); b2=$(log_lines v2)
  read -r rps p50 p99 n err < <(parse_wrk "$out")
  record "$test" "$target" "$rep" "$rps" "$p50" "$p99" $((c1 - c0)) "${err/-/}" "$n" $((b1 - a1)) $((b2 - a2)) "$rss"
}

rotate() {  # rep list...: the list rotated left by rep
  local r=$1; shift
  local a=("$@") n=$#
  local i
  for i in $(seq 0 $((n - 1))); do echo -n "${a[$(((i + r) % n))]} "; done
}

measure() {  # test target rep dur
  run_wrk "$1" "$2" "$3" "$4"
  echo "  rep $3 $1 $2: $(tail -n1 "$RES" | cut -f4- | tr '\t' ' ') (req/s p50µs p99µs cpu_s errors requests v1 v2 rss_kB)" >&2
  sleep 1
}

# ---------- measure ----------
{
  echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "started: origin-nginx=$ORIGIN_PID proxy-nginx=$NGINX_PID meshctl=${MPID[*]}"
  echo "REPS=$REPS DUR=${DUR}s WORKERS=$WORKERS ONLY='$ONLY' RULE_COUNTS='$RULE_COUNTS' WRK_T=$WRK_T WRK_C=$WRK_C"
  sed 's/^/  check: /' "$RUN/check-reviews.txt"
} >&2

# idle: every proxy left alone for IDLE_S seconds
IDLE_TARGETS="nginx $RULE_TARGETS"
declare -A IC0=()
for t in $IDLE_TARGETS; do IC0[$t]=$(cpu_of "$t"); done
t0=$(now); sleep "$IDLE_S"; t1=$(now)
for t in $IDLE_TARGETS; do
  printf 'idle\t%s\t%s\t%s\n' "$t" $(( $(cpu_of "$t") - ${IC0[$t]} )) "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" >> "$INFO"
done

RPS_TARGETS="direct nginx meshctl"
# Round 0 is the warm-up (1 s per target; not counted).
for rep in $(seq 0 "$REPS"); do
  if [ "$rep" = 0 ]; then d=1; else d=$DUR; fi
  if has rps || has cost; then
    # shellcheck disable=SC2086
    for target in $(rotate "$rep" $RPS_TARGETS); do measure rps "$target" "$rep" "$d"; done
  fi
  if has rules; then
    # shellcheck disable=SC2086
    for target in $(rotate "$rep" $RULE_TARGETS); do measure rrps "$target" "$rep" "$d"; done
  fi
done

# meshctl's own view of the split (its counters include the warm-up and sanity requests)
for name in $RULE_TARGETS; do
  timeout 10 python3 - "${MADMIN[$name]:-}" "$name" >> "$INFO" <<'PY' || true
import sys, urllib.request
addr, name = sys.argv[1], sys.argv[2]
if not addr: sys.exit(0)
t = urllib.request.urlopen("http://%s/metrics" % addr, timeout=5).read().decode()
for line in t.splitlines():
    if line.startswith(("meshctl_proxy_mesh_requests_total{", "meshctl_proxy_route_rules ", "meshctl_proxy_services ")):
        if line.startswith("meshctl_proxy_mesh_requests_total") and 'service="reviews.' not in line: continue
        print("metric\t%s\t%s" % (name, line))
PY
done

# ---------- report ----------
python3 - "$RES" "$INFO" "$REPS" "$DUR" "$WORKERS" "$WRK_T" "$WRK_C" "$ONLY" "${COUNTS[0]}" <<'PY'
import sys, statistics, subprocess, platform, os, datetime
res, info, reps, dur, workers, wrk_t, wrk_c, only, few = sys.argv[1:10]
only = only.split()
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
rows = [r for r in rows if r[2] != "0"]          # round 0 is the warm-up
inf = [l.rstrip("\n").split("\t") for l in open(info) if l.strip()]
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().splitlines()[0]
    except Exception: return "?"
def num(x):
    try: return float(x)
    except ValueError: return None
def med(vals):
    v = [x for x in (num(x) if isinstance(x, str) else x for x in vals) if x is not None]
    return statistics.median(v) if v else None
def fmt(x, nd=2):
    return "-" if x is None else f"{x:,.{nd}f}"
def sel(test, target): return [r for r in rows if r[0] == test and r[1] == target]
def col(test, target, c): return [num(r[c]) for r in sel(test, target)]
def per_round(test, a, b, f):  # median over rounds of f(row a, row b)
    ra = {r[2]: r for r in sel(test, a)}
    rb = {r[2]: r for r in sel(test, b)}
    v = []
    for k in ra:
        if k in rb:
            try: v.append(f(ra[k], rb[k]))
            except (TypeError, ZeroDivisionError): pass
    return statistics.median(v) if v else None
def ratio(a, b):
    return None if a is None or not b else a / b
def cpu_per_req(r):  # CPU µs per request
    n, c = num(r[8]), num(r[6])
    return c / n * 1e6 if n and c is not None else None
def size(b):
    b = int(b)
    return f"{b / 1e3:.0f} kB" if b < 1e6 else f"{b / 1e6:.1f} MB"
def share(r):  # share of v1 among the requests the origin logged
    a, b = num(r[9]), num(r[10])
    return a / (a + b) if a is not None and b is not None and a + b else None
model = ver("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
print()
print(f"# {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; kernel {platform.release()}, {os.cpu_count()} CPUs ({model}); "
      f"{reps} rounds of {dur} s (+1 warm-up of 1 s); proxy workers={workers}; wrk -t{wrk_t} -c{wrk_c} keep-alive")
print(f"# {ver('nginx -v 2>&1')} | {ver('wrk -v 2>&1')}")
names = {"direct": "direct (origin v1)", "nginx": "nginx upstream 4:1", "meshctl": "meshctl RouteRule 80/20"}

if "rps" in only or "cost" in only:
    print()
    print("| target | req/s median | rounds | vs direct | p50 µs | p99 µs | p99 added µs | v1 share | proxy CPU s | CPU µs/req | errors |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    base = med(col("rps", "direct", 3))
    p99d = med(col("rps", "direct", 5))
    for t in ["direct", "nginx", "meshctl"]:
        s = sel("rps", t)
        if not s: continue
        m = med(col("rps", t, 3))
        rel = "-" if t == "direct" or not base or m is None else f"{100 * m / base:.0f}%"
        p99 = med(col("rps", t, 5))
        added = "-" if t == "direct" or p99 is None or p99d is None else fmt(p99 - p99d, 0)
        sh = med([share(r) for r in s]) if t != "direct" else None
        errs = ",".join(sorted({r[7] for r in s if r[7]}))
        print(f"| {names[t]} | {fmt(m, 0)} | {' / '.join(fmt(num(r[3]), 0) for r in s)} | {rel} | "
              f"{fmt(med(col('rps', t, 4)), 0)} | {fmt(p99, 0)} | {added} | {fmt(100 * sh, 1) + '%' if sh is not None else '-'} | "
              f"{fmt(med(col('rps', t, 6))) if t != 'direct' else '-'} | "
              f"{fmt(med([cpu_per_req(r) for r in s]), 1) if t != 'direct' else '-'} | {errs} |")
    print()
    print("| meshctl / nginx | ratio of medians | median of per-round ratios |")
    print("|---|---:|---:|")
    a, b = med(col("rps", "meshctl", 3)), med(col("rps", "nginx", 3))
    pr = per_round("rps", "meshctl", "nginx", lambda x, y: num(x[3]) / num(y[3]))
    print(f"| requests/s (higher is better) | {fmt(ratio(a, b))}× | {fmt(pr)}× |")
    a, b = med(col("rps", "meshctl", 5)), med(col("rps", "nginx", 5))
    pr = per_round("rps", "meshctl", "nginx", lambda x, y: num(x[5]) / num(y[5]))
    print(f"| p99 latency (lower is better) | {fmt(ratio(a, b))}× | {fmt(pr)}× |")
    a, b = med([cpu_per_req(r) for r in sel("rps", "meshctl")]), med([cpu_per_req(r) for r in sel("rps", "nginx")])
    pr = per_round("rps", "meshctl", "nginx", lambda x, y: cpu_per_req(x) / cpu_per_req(y))
    print(f"| CPU per request (lower is better) | {fmt(ratio(a, b))}× | {fmt(pr)}× |")
    print()
    print("| latency added over direct, µs | p99: of medians | p99: median of per-round differences | p50: of medians | p50: median of per-round differences |")
    print("|---|---:|---:|---:|---:|")
    for t in ["nginx", "meshctl"]:
        cells = []
        for c in (5, 4):
            a, b = med(col("rps", t, c)), med(col("rps", "direct", c))
            pr = per_round("rps", t, "direct", lambda x, y, c=c: num(x[c]) - num(y[c]))
            cells += [fmt(a - b if a is not None and b is not None else None, 0), fmt(pr, 0)]
        print(f"| {names[t]} | {' | '.join(cells)} |")
    print()
    print("| split (origin access logs, all counted rounds) | v1 requests | v2 requests | v1 share | expected |")
    print("|---|---:|---:|---:|---:|")
    for t in ["nginx", "meshctl"]:
        a = sum(int(r[9]) for r in sel("rps", t)); b = sum(int(r[10]) for r in sel("rps", t))
        print(f"| {names[t]} | {a:,} | {b:,} | {fmt(100 * a / (a + b) if a + b else None, 2)}% | 80% |")
    mets = [r for r in inf if r[0] == "metric" and r[1] == "meshctl"]
    if mets:
        print()
        print("meshctl's own counters (admin /metrics, whole run incl. warm-up and sanity requests):")
        for r in mets: print("    " + r[2])

if "cost" in only:
    print()
    print("| proxy | vCPU per 1,000 req/s | rounds | RSS near the end of the run | at req/s |")
    print("|---|---:|---|---:|---:|")
    for t in ["meshctl", "nginx"]:
        s = sel("rps", t)
        v = [cpu_per_req(r) / 1e3 if cpu_per_req(r) is not None else None for r in s]  # CPU s per 1,000 requests
        print(f"| {names[t]} | {fmt(med(v), 3)} | {' / '.join(fmt(x, 3) for x in v)} | "
              f"{fmt(med(col('rps', t, 11)) / 1024 if med(col('rps', t, 11)) else None, 1)} MB | {fmt(med(col('rps', t, 3)), 0)} |")
    print("| Envoy (Istio's published figure) | 0.35 | | 40 MB | 1,000 |")
    print("(vCPU per 1,000 req/s = CPU seconds used by the proxy during the run / requests served × 1,000. RSS: VmRSS of")
    print(" the proxy's processes (nginx: master + worker) sampled at 90% of the run; it does not scale with the rate.)")

if "rules" in only:
    starts = {r[1]: r for r in inf if r[0] == "start"}
    valid = {r[1]: r for r in inf if r[0] == "validate"}
    idle = {r[1]: r for r in inf if r[0] == "idle"}
    targets = [t for t in ["meshctl"] + sorted({r[1] for r in rows if r[0] == "rrps" and r[1] != "meshctl"}, key=lambda t: int(t[6:]))
               if sel("rrps", t)]
    def count(t): return few if t == "meshctl" else t[6:]
    print()
    print(f"| other services + RouteRules | services file | rules | validate s | start to ready s | idle RSS MB | idle CPU ms/s | req/s | vs {few} | "
          f"CPU µs/req | vs {few} | p99 µs | v1 share | RSS under load MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    b_rps, b_cpu = med(col("rrps", "meshctl", 3)), med([cpu_per_req(r) for r in sel("rrps", "meshctl")])
    for t in targets:
        n = count(t)
        s = sel("rrps", t)
        v, st, il = valid.get(n), starts.get(t), idle.get(t)
        m, c = med(col("rrps", t, 3)), med([cpu_per_req(r) for r in s])
        pr_r = per_round("rrps", t, "meshctl", lambda x, y: num(x[3]) / num(y[3]))
        pr_c = per_round("rrps", t, "meshctl", lambda x, y: cpu_per_req(x) / cpu_per_req(y))
        a = sum(int(r[9]) for r in s); b = sum(int(r[10]) for r in s)
        rss = med(col("rrps", t, 11))
        print(f"| {int(n):,} | {size(v[4])} | {size(v[3])} | {v[2]} | {st[2] if st else '-'} | "
              f"{int(st[3]) / 1024:.1f} | {1000 * int(il[2]) / float(os.sysconf('SC_CLK_TCK')) / float(il[3]):.1f} | "
              f"{fmt(m, 0)} | {fmt(ratio(m, b_rps))}× ({fmt(pr_r)}×) | {fmt(c, 1)} | {fmt(ratio(c, b_cpu))}× ({fmt(pr_c)}×) | "
              f"{fmt(med(col('rrps', t, 5)), 0)} | {fmt(100 * a / (a + b) if a + b else None, 1)}% | {fmt(rss / 1024 if rss else None, 1)} |"
              if v and st and il else f"| {n} | (missing) |")
    print("(ratios to the first instance: of medians and, in brackets, the median of per-round ratios; target: within 10%)")
    mets = [r for r in inf if r[0] == "metric" and r[1] != "meshctl" and not r[2].startswith("meshctl_proxy_mesh")]
    for r in mets: print(f"    {r[1]}: {r[2]}")
idle = [r for r in inf if r[0] == "idle"]
if idle:
    print("# idle CPU over " + idle[0][3] + " s: " + ", ".join(
        f"{r[1]} {1000 * int(r[2]) / float(os.sysconf('SC_CLK_TCK')) / float(r[3]):.1f} ms/s" for r in idle))
for r in [r for r in inf if r[0] == "start" and r[1] == "meshctl"][:1]:
    print(f"# meshctl ({r[5]} other services): ready {r[2]} s after start, idle RSS {int(r[3]) / 1024:.1f} MB; {r[4]}")
PY
