#!/usr/bin/env bash
# Cross-checks one training step of the C++ UNet against PyTorch (float64) over a matrix of
# configurations: 2D and 3D x norm {none, batch} x upsampling {transposed, nearest, linear},
# plus group norm, amsgrad, every loss kind and base filters >= 16 (blocked layouts), and BraTS
# region training (--labels): one sigmoid output channel per region, truth masks from a random
# label map, the loss the mean of the channels' own batch losses.
# Each case: unet_reference_dump writes .npy files, check_against_torch.py compares output, loss,
# gradients, running statistics, two Adam steps and an eval forward.
#
#   BUILD=build bash tests/reference/torch_crosscheck.sh [--verbose]
# Exit 0 if every case passes. Needs $BUILD/libunet.a (make) and /usr/bin/python3 with torch.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VERBOSE=${1:-}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if ! $PY -c 'import torch, numpy' 2>/dev/null; then
  scripts/install_deps.sh >&2 || true
  if ! $PY -c 'import torch, numpy' 2>/dev/null; then
    echo "torch_crosscheck: /usr/bin/python3 cannot import torch/numpy (python3-torch, python3-numpy)" >&2
    exit 1
  fi
fi

LIB=$BUILD/libunet.a
TOOL=$BUILD/unet_reference_dump
SRC=tests/reference/unet_reference_dump.cpp
[ -f "$LIB" ] || { echo "torch_crosscheck: $LIB missing (run make first)" >&2; exit 1; }
if [ ! -x "$TOOL" ] || [ "$TOOL" -ot "$SRC" ] || [ "$TOOL" -ot "$LIB" ]; then
  g++ -std=c++17 -O2 -march=native -fopenmp -Iinclude "$SRC" "$LIB" -o "$TOOL" \
      -ldnnl -lboost_program_options -fopenmp -lpthread || { echo "torch_crosscheck: build of $TOOL failed" >&2; exit 1; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/torch_crosscheck.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# dims size in_channels base_filters depth upsampling norm loss amsgrad norm_groups out_channels labels
# (non-square sizes catch D/H/W mix-ups; filters >= 16 get oneDNN's blocked layouts; labels "-":
# half-space truth per channel, else the regions of the output channels, in order, with the truth
# derived from a label map 0..3: wt {1,2,3}, tc {2,3}, et {3})
CASES=(
  "2 32,32    2 4  2 transposed none  dice     0 8 1 -"
  "2 32,24    2 4  2 nearest    none  log_dice 0 8 1 -"
  "2 32,32    3 16 2 linear     none  bce      0 8 1 -"
  "2 32,32    2 8  2 transposed batch dice_bce 0 8 1 -"
  "2 24,32    1 16 2 nearest    batch dice     1 8 1 -"
  "2 32,32    2 4  2 linear     batch log_dice 0 8 1 -"
  "2 32,32    2 12 2 transposed group dice     0 8 1 -"
  "2 16,24    2 4  3 transposed none  dice_bce 0 8 2 -"
  "3 16,16,16 2 4  2 transposed none  dice     0 8 1 -"
  "3 16,12,8  1 4  2 nearest    none  bce      0 8 1 -"
  "3 16,16,16 2 4  2 linear     none  dice     1 8 1 -"
  "3 16,8,16  2 16 2 transposed batch dice     0 8 1 -"
  "3 8,16,12  2 4  2 nearest    batch log_dice 0 8 1 -"
  "3 16,16,16 1 4  2 linear     batch dice_bce 0 8 1 -"
  "3 16,12,16 2 8  2 nearest    group dice     1 4 1 -"
  "2 32,24    2 4  2 transposed none  log_dice 0 8 3 wt,tc,et"
  "2 32,32    2 16 2 nearest    batch dice_bce 0 8 3 wt,tc,et"
  "2 24,32    2 4  2 linear     none  bce      0 8 2 et,wt"
  "3 16,12,16 2 4  2 transposed none  dice     0 8 3 wt,tc,et"
  "3 16,16,8  1 4  2 linear     group dice_bce 0 4 3 wt,tc,et"
  "3 8,16,16  2 8  2 nearest    batch log_dice 0 8 3 wt,tc,et"
)

# dump CASE_INDEX SEED: writes $WORK/case<i>; prints nothing on success.
dump() {
  local idx=$1 seed=$2
  read -r dims size cin bf depth up norm loss ams groups outc labels <<<"${CASES[$idx]}"
  local region_args=()
  [ "$labels" != - ] && region_args=(--labels "$labels")
  # amsgrad only differs from adam once v shrinks, which beta2 = 0.999 barely allows in 2 steps.
  local betas=""
  [ "$ams" = 1 ] && betas="--beta1 0.8 --beta2 0.9"
  rm -rf "$WORK/case$idx"
  if ! "$TOOL" --out "$WORK/case$idx" --dims "$dims" --size "$size" --in_channels "$cin" \
       --base_filters "$bf" --depth "$depth" --upsampling "$up" --norm "$norm" --norm_groups "$groups" \
       --out_channels "$outc" "${region_args[@]+"${region_args[@]}"}" \
       --loss "$loss" --batch 2 --seed "$seed" --lr 1e-3 --amsgrad "$ams" $betas \
       >"$WORK/dump$idx.log" 2>&1; then
    echo "case $idx (${CASES[$idx]}): unet_reference_dump failed:"; tail -5 "$WORK/dump$idx.log"
    return 1
  fi
}

QUIET=--quiet
[ "$VERBOSE" = "--verbose" ] && QUIET=
fails=0
todo=()
for idx in "${!CASES[@]}"; do
  if dump "$idx" $((idx + 1)); then todo+=("$idx"); else fails=$((fails + 1)); fi
done
# Near-ties (float32 vs float64 deciding a ReLU or max-pool differently) make a case
# INCONCLUSIVE; it is re-run with another seed, twice at most.
for attempt in 0 1 2; do
  [ ${#todo[@]} -eq 0 ] && break
  dirs=()
  for idx in "${todo[@]}"; do dirs+=("$WORK/case$idx"); done
  $PY tests/reference/check_against_torch.py $QUIET "${dirs[@]}" >"$WORK/check.log" 2>&1
  grep -v '^RESULT ' "$WORK/check.log"
  retry=()
  for idx in "${todo[@]}"; do
    st=$(sed -n "s|^RESULT $WORK/case$idx \(.*\)\$|\1|p" "$WORK/check.log")
    case "$st" in
      ok) ;;
      INCONCLUSIVE)
        if [ "$attempt" -lt 2 ]; then
          echo "case $idx (${CASES[$idx]}): inconclusive, retrying with another seed"
          if dump "$idx" $((idx + 1 + 100 * (attempt + 1))); then retry+=("$idx"); else fails=$((fails + 1)); fi
        else
          echo "case $idx (${CASES[$idx]}): inconclusive with 3 seeds: a real gradient mismatch, FAILED"
          fails=$((fails + 1))
        fi ;;
      *) fails=$((fails + 1)) ;;
    esac
  done
  todo=("${retry[@]+"${retry[@]}"}")
done

n=${#CASES[@]}
echo "torch_crosscheck: $((n - fails))/$n cases passed"
[ "$fails" -eq 0 ]
