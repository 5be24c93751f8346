#!/usr/bin/env bash
# make bench: the memory estimate unet_train prints before training against the peak RSS it reports
# at the end ("peak RSS N MiB on the busiest worker (estimated M MiB)"), on real training runs
# from prepared files of full-size synthetic cases (4 x 240 x 240 x 155): `2d` (128 x 128 slices,
# filters 32, depth 4, batch 8), `3d` (64^3 patches, filters 32, depth 3, batch 2, whole-volume
# validation by sliding windows) and `seed3d` (whole 152 x 240 x 240 volumes, filters 8, depth 3,
# batch 1). Prints a Markdown table, also to $BUILD/memory_bench.md. Goal: within 20%.
#   bench/memory_bench.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/bin
W=$BUILD/memory_bench
mkdir -p "$W"
[ -d "$W/msd" ] || "$BIN/unet_prepare" --synthetic 2 --output_dir "$W/msd" --synthetic_size 155,240,240 >/dev/null 2>&1
[ -f "$W/msd3d.h5" ] || "$BIN/unet_prepare" --source_dir "$W/msd" --output "$W/msd3d.h5" --mode 3d --split 0.5,0.5,0 >/dev/null 2>&1
[ -f "$W/msd2d.h5" ] || "$BIN/unet_prepare" --source_dir "$W/msd" --output "$W/msd2d.h5" --mode 2d --slice_size 128 \
    --split 0.5,0.5,0 >/dev/null 2>&1
declare -A RUN=(
  [2d]="--dims 2 --data $W/msd2d.h5 --input_size 128,128 --filters 32 --depth 4 --batch_size 8 --steps 8"
  [3d]="--dims 3 --data $W/msd3d.h5 --patch 64,64,64 --filters 32 --depth 3 --batch_size 2 --steps 2 --val_whole_every 1"
  [seed3d]="--dims 3 --data $W/msd3d.h5 --filters 8 --depth 3 --batch_size 1 --epochs 2 --val_whole_every 1"
)
out="$BUILD/memory_bench.md"
{
  echo "| run | estimate MiB | peak RSS MiB | estimate / peak | the estimate's parts |"
  echo "|---|---|---|---|---|"
} | tee "$out"
for run in 2d 3d seed3d; do
  # shellcheck disable=SC2086
  log=$("$BIN/unet_train" ${RUN[$run]} --logdir "$W/run_$run" --print_every 1000 2>&1)
  parts=$(echo "$log" | sed -n 's/^memory estimate per worker: \(.*\) = [0-9]* MiB$/\1/p')
  read -r peak est < <(echo "$log" | sed -n 's/.*peak RSS \([0-9]*\) MiB on the busiest worker (estimated \([0-9]*\) MiB).*/\1 \2/p')
  [ -n "${peak:-}" ] || { echo "$log" | tail -5; echo "memory_bench: no peak RSS line for $run"; exit 1; }
  awk -v r="$run" -v e="$est" -v p="$peak" -v parts="$parts" \
      'BEGIN { printf "| %s | %d | %d | %.2f | %s |\n", r, e, p, e / p, parts }' | tee -a "$out"
done
echo "(written to $out)"
