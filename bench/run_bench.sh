#!/usr/bin/env bash
# make bench: the standard shapes of DESIGN.md, ours (unet_train --benchmark) and the same
# network in PyTorch (bench/torch_unet_bench.py), side by side in one run, plus the machine's
# f32 FMA peak. Prints a Markdown table and writes it to $BUILD/bench_results.md.
#   bench/run_bench.sh [BUILD] [shape...]      shapes: 2d 3d seed3d (default: all)
set -euo pipefail
BUILD=${1:-build}; shift || true
SHAPES=("$@"); [ ${#SHAPES[@]} -gt 0 ] || SHAPES=(2d 3d seed3d)
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
/usr/bin/python3 -c "import torch" 2>/dev/null || scripts/install_deps.sh

declare -A ARGS=(
  [2d]="--dims 2 --input_size 128,128 --in_channels 4 --filters 32 --depth 4 --batch_size 8 --steps 5 --loss dice"
  [3d]="--dims 3 --input_size 64,64,64 --in_channels 4 --filters 32 --depth 3 --batch_size 2 --steps 3 --loss dice"
  [seed3d]="--dims 3 --input_size 152,240,240 --in_channels 4 --filters 8 --depth 3 --batch_size 1 --steps 2 --loss dice"
)

peak=$("$BUILD"/bin/fma_peak | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
out="$BUILD/bench_results.md"
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads, f32 FMA peak $peak GFLOP/s (bench/fma_peak)"
  echo
  echo "| shape | ours samples/s | PyTorch samples/s | ratio | ours GFLOP/s | % of peak | PyTorch % of peak | ours peak RSS MiB | PyTorch peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|---|"
} | tee "$out"
for shape in "${SHAPES[@]}"; do
  args=${ARGS[$shape]:?unknown shape $shape}
  ours=$("$BUILD"/bin/unet_train --benchmark --num_threads "$THREADS" $args 2>/dev/null | tail -1)
  theirs=$(/usr/bin/python3 bench/torch_unet_bench.py --num_threads "$THREADS" $args 2>/dev/null | tail -1)
  /usr/bin/python3 - "$shape" "$peak" "$ours" "$theirs" <<'PY' | tee -a "$out"
import json, sys
shape, peak, ours, theirs = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {shape} | {ours['samples_per_s']:.3f} | {theirs['samples_per_s']:.3f} | "
      f"{ours['samples_per_s'] / theirs['samples_per_s']:.2f}x | {ours['gflops']:.0f} | "
      f"{100 * ours['gflops'] / peak:.0f}% | {100 * theirs['gflops'] / peak:.0f}% | "
      f"{ours['peak_rss_mib']:.0f} | {theirs['peak_rss_mib']:.0f} |")
PY
done
echo "(written to $out)"
