#!/usr/bin/env bash
# meshctl validate against its floor: parsing the same files with the same YAML crate and nothing else.
#
#   bench/validate.sh            # 1,000 files x 10 documents, 11 rounds
#   ROUNDS=21 bench/validate.sh  # FILES, DOCS, SEED and ROUNDS can be set in the environment
#
# Builds release, writes the corpus into a temporary directory, checks that it is clean, then times,
# in one run with the candidates interleaved in every round:
#   (a) `meshctl validate -f DIR -R -q` vs `parse_only DIR`, both on all cores;
#   (b) the same two with `-j 1`.
# Target (issue 2): validate within 1.3x of parse-only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-11}
FILES=${FILES:-1000}
DOCS=${DOCS:-10}
SEED=${SEED:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release --examples --bins
meshctl=$TARGET_DIR/release/meshctl
parse_only=$TARGET_DIR/release/examples/parse_only

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=$work/corpus
"$TARGET_DIR/release/examples/gen_corpus" "$corpus" --files "$FILES" --docs-per-file "$DOCS" --seed "$SEED"
# --strict turns warnings into errors: exit 0 means no errors and no warnings.
"$meshctl" validate -f "$corpus" -R -q --strict
"$parse_only" "$corpus"

echo
echo "meshctl $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); corpus: $FILES files x $DOCS documents ($(du -sh "$corpus" | cut -f1)), seed $SEED"
echo
python3 bench/timing.py --rounds "$ROUNDS" --display-replace "$work=\$WORK" --display-replace "$TARGET_DIR/release/=" --title "meshctl validate vs parse-only" \
    --cmd "validate=$meshctl validate -f $corpus -R -q" \
    --cmd "parse-only=$parse_only $corpus" \
    --cmd "validate -j1=$meshctl validate -f $corpus -R -q -j 1" \
    --cmd "parse-only -j1=$parse_only $corpus -j 1" \
    --ratio "validate/parse-only" \
    --ratio "validate -j1/parse-only -j1"
