#!/usr/bin/env bash
# Dice and HD95 of unet::score_case (through tests/e2e/metrics_score.cpp) against MONAI 1.3.2's
# compute_dice and compute_hausdorff_distance(percentile=95, spacing=...) on 160 generated cases
# (random voxels, blobs, ellipsoids, single voxels, full arrays, empty masks under both empty
# rules, MSD label maps for WT/TC/ET; five shapes, four spacings, three anisotropic):
# HD95 within 1e-3 mm, Dice within 1e-6 (tests/reference/metrics_vs_monai.py). Then times a
# full-size 155 x 240 x 240 case (printed; not a pass/fail criterion).
# MONAI comes from PyPI into $BUILD/refvenv (scripts/reference_venv.sh); when that environment
# cannot be built (offline, no python3-torch) the script prints "SKIPPED: <reason>" and exits 77 (counted as skipped),
# as tests/e2e/slurm_real.sh does.
# To see it fail: build/refvenv/bin/python tests/reference/metrics_vs_monai.py build/metrics_score
# /tmp/x --swap_spacing (MONAI gets the spacing reversed: ~230 mismatches).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
fail() { echo "FAIL: $*"; exit 1; }

if ! PY=$(scripts/reference_venv.sh "$BUILD" 2>"${TMPDIR:-/tmp}/reference_venv.$$.log"); then
  reason=$(tail -1 "${TMPDIR:-/tmp}/reference_venv.$$.log")
  rm -f "${TMPDIR:-/tmp}/reference_venv.$$.log"
  echo "SKIPPED: no MONAI reference environment ($reason)"
  exit 77
fi
rm -f "${TMPDIR:-/tmp}/reference_venv.$$.log"

[ -f "$BUILD/libunet.a" ] || make -j2 BUILD="$BUILD" "$BUILD/libunet.a" >/dev/null
TOOL="$BUILD/metrics_score"
SRC=tests/e2e/metrics_score.cpp
if [ ! -x "$TOOL" ] || [ "$TOOL" -ot "$BUILD/libunet.a" ] || [ "$TOOL" -ot "$SRC" ]; then
  g++ -std=c++17 -O2 -march=native -fopenmp -Iinclude "$SRC" "$BUILD/libunet.a" -o "$TOOL" -fopenmp -lpthread ||
    fail "cannot build $TOOL"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/metrics_vs_monai.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$PY" tests/reference/metrics_vs_monai.py "$TOOL" "$TMP" || fail "our scores differ from MONAI's (above)"
"$TOOL" --bench 3 || fail "metrics_score --bench failed"
