#!/usr/bin/env bash
# Our sliding-window inference against MONAI 1.3.2's sliding_window_inference on the PyTorch
# mirror of the UNet with the same weights: gaussian and constant blending, overlaps 0, 0.25, 0.5,
# several window batches, --mirror, a volume smaller than the window on one axis (padding), 2D and
# 3D, batch norm with non-trivial running statistics. Probabilities must agree within 1e-4, and a
# window covering the whole volume must equal one plain forward.
#
#   BUILD=build bash tests/reference/sliding_window_crosscheck.sh
# MONAI comes from PyPI into $BUILD/refvenv (scripts/reference_venv.sh); without it: SKIPPED, exit 77.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
if ! scripts/reference_venv.sh "$BUILD" >/dev/null 2>&1; then
  echo "SKIPPED: could not build $BUILD/refvenv with MONAI from PyPI (scripts/reference_venv.sh)"
  exit 77
fi
PY=$BUILD/refvenv/bin/python
LIB=$BUILD/libunet.a
TOOL=$BUILD/sliding_window_dump
SRC=tests/reference/sliding_window_dump.cpp
[ -f "$LIB" ] || { echo "sliding_window_crosscheck: $LIB missing (run make first)" >&2; exit 1; }
if [ ! -x "$TOOL" ] || [ "$TOOL" -ot "$SRC" ] || [ "$TOOL" -ot "$LIB" ]; then
  g++ -std=c++17 -O2 -march=native -fopenmp -Iinclude "$SRC" "$LIB" -o "$TOOL" -ldnnl -lboost_program_options \
      $(pkg-config --libs hdf5-serial) -lniftiio -lznz -lz -fopenmp -lpthread \
      || { echo "sliding_window_crosscheck: build of $TOOL failed" >&2; exit 1; }
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sliding_window.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# dims size roi filters depth norm
CASES=(
  "3 20,40,36 16,16,16 4 2 batch"
  "3 12,40,36 16,16,16 4 2 none"
  "3 32,32,32 16,16,16 8 2 group"
  "2 50,44 32,32 8 2 batch"
  "2 64,64 32,32 4 3 none"
)
fails=0
for c in "${CASES[@]}"; do
  d="$WORK/$(echo "$c" | tr ' ,' '_x')"
  mkdir -p "$d"
  echo "== case: dims size roi filters depth norm = $c"
  # shellcheck disable=SC2086
  "$TOOL" "$d" $c || { fails=$((fails + 1)); continue; }
  "$PY" tests/reference/sliding_window_vs_monai.py "$d" || fails=$((fails + 1))
done
echo "sliding_window_crosscheck: ${#CASES[@]} cases, $fails failed"
[ "$fails" -eq 0 ]
