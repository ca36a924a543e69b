#!/usr/bin/env bash
# meshctl get on the embedded store against its floor: the sqlite3 command-line tool selecting the same
# rows from the same file.
#
#   bench/get.sh               # 10,000 EgressRules, 11 rounds
#   ROUNDS=21 bench/get.sh     # RULES and ROUNDS can be set in the environment
#
# Builds release, fills a temporary store with `examples/fill_store` (through SqliteStore::create, as
# `meshctl create` writes), then times, in one run with the candidates interleaved in every round:
#   get     `meshctl --store sqlite:F get egressrules -A` (the table; stdout to /dev/null)
#   sqlite3 `sqlite3 F "SELECT namespace, name, kind, created, body FROM objects
#            WHERE kind = 'EgressRule' ORDER BY namespace, name"`: every column the table shows (NAMESPACE,
#            NAME, KIND, AGE from created) and the body, which meshctl reads and decodes for each row
#   and, for information, the table decoded on one thread (RAYON_NUM_THREADS=1), and `get -o yaml` and
#   `get -o json` of the same rules.
# Target (issue 3): get within 2x of sqlite3.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-11}
RULES=${RULES:-10000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "bench/get.sh needs the sqlite3 command-line tool (the floor it compares with)." >&2
    echo "Install it, e.g. on Debian or Ubuntu: sudo apt-get install -y sqlite3" >&2
    exit 2
fi

cargo build --release --examples --bins
meshctl=$TARGET_DIR/release/meshctl

work=$(mktemp -d)
fill=
trap 'rm -rf "$work" ${fill:+"$fill"}' EXIT
store=$work/store.db
# Every create is a durable (fsynced) transaction: 10,000 of them take a minute on a disk and under a
# second in memory. So the store is filled in /dev/shm when there is one, then moved next to the
# other temporary files (the timed commands read it from the page cache either way).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    fill=$(mktemp -d /dev/shm/meshctl-bench.XXXXXX)
    "$TARGET_DIR/release/examples/fill_store" "$fill/store.db" --rules "$RULES"
    mv "$fill"/store.db* "$work/"
else
    "$TARGET_DIR/release/examples/fill_store" "$store" --rules "$RULES"
fi

query="SELECT namespace, name, kind, created, body FROM objects WHERE kind = 'EgressRule' ORDER BY namespace, name"
# Both must see every rule before anything is timed.
rows=$(sqlite3 -batch -init /dev/null "$store" "$query" 2>/dev/null | wc -l)
lines=$("$meshctl" --store "sqlite:$store" get egressrules -A | wc -l)
if [ "$rows" -ne "$RULES" ] || [ "$lines" -ne $((RULES + 1)) ]; then
    echo "bench/get.sh: expected $RULES rules, sqlite3 printed $rows rows and meshctl $lines lines" >&2
    exit 1
fi

echo
echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown); $(sqlite3 --version | cut -d' ' -f1-2 | sed 's/^/sqlite3 /')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); store: $RULES EgressRules in 10 namespaces ($(du -sh "$store" | cut -f1))"
echo
python3 bench/timing.py --rounds "$ROUNDS" --display-replace "$work=\$WORK" --display-replace "$TARGET_DIR/release/=" \
    --title "meshctl get egressrules -A vs sqlite3" \
    --cmd "get=$meshctl --store sqlite:$store get egressrules -A" \
    --cmd "sqlite3=sqlite3 -batch -init /dev/null $store \"$query\"" \
    --cmd "get 1 thread=env RAYON_NUM_THREADS=1 $meshctl --store sqlite:$store get egressrules -A" \
    --cmd "get -o yaml=$meshctl --store sqlite:$store get egressrules -A -o yaml" \
    --cmd "get -o json=$meshctl --store sqlite:$store get egressrules -A -o json" \
    --ratio "get/sqlite3" \
    --ratio "get 1 thread/sqlite3" \
    --ratio "get -o yaml/sqlite3" \
    --ratio "get -o json/sqlite3"
