#!/usr/bin/env bash
# meshctl validate against check-jsonschema (PyPI) using meshctl's own schema, on single-document files.
#
#   bench/schema_compare.sh              # 2,000 files, 3 rounds
#   ROUNDS=5 FILES=2000 bench/schema_compare.sh
#
# Installs check-jsonschema into bench/.venv (once), builds release, writes FILES one-document rule
# files and the schema (`meshctl schema`), makes sure both tools accept every file, then times both in
# one run, interleaved. check-jsonschema runs on one core, so meshctl is timed with -j 1 as well.
# Target (issue 2): meshctl at least 50x faster.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
FILES=${FILES:-2000}
SEED=${SEED:-2}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
venv=bench/.venv

if [ ! -x "$venv/bin/check-jsonschema" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema
fi
check_jsonschema=$venv/bin/check-jsonschema

cargo build --release --examples --bins
meshctl=$TARGET_DIR/release/meshctl

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=$work/corpus
"$TARGET_DIR/release/examples/gen_corpus" "$corpus" --files "$FILES" --docs-per-file 1 --seed "$SEED"
"$meshctl" schema > "$work/schema.json"

# Both must accept every file, or the comparison is of two different jobs.
"$meshctl" validate -f "$corpus" -q --strict
files=("$corpus"/*.yaml)
"$check_jsonschema" --schemafile "$work/schema.json" "${files[@]}"

echo
echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); corpus: $FILES files x 1 document, seed $SEED"
echo "check-jsonschema $("$check_jsonschema" --version | awk '{print $NF}'), $(python3 --version)"
echo
# check-jsonschema takes files, not a directory, so every file is named on its command line.
python3 bench/timing.py --rounds "$ROUNDS" --display-replace "$work=\$WORK" --display-replace "$TARGET_DIR/release/=" --title "meshctl validate vs check-jsonschema" \
    --cmd "check-jsonschema=$check_jsonschema --schemafile $work/schema.json ${files[*]}" \
    --cmd "meshctl=$meshctl validate -f $corpus -q" \
    --cmd "meshctl -j1=$meshctl validate -f $corpus -q -j 1" \
    --ratio "check-jsonschema/meshctl" \
    --ratio "check-jsonschema/meshctl -j1"
