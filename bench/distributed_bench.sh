#!/usr/bin/env bash
# make bench, part 2: the distributed step on this machine's cores, side by side in one run.
# Every setup uses the same cores (ranks x threads = nproc): one process; all-reduce over nproc
# ranks and a parameter server plus nproc workers, both with gradient buckets overlapped with backward, and
# the same with one bucket (no overlap); PyTorch in one process and PyTorch DDP (gloo) over nproc
# processes. Prints a Markdown table and writes it to $BUILD/bench_distributed.md.
#   bench/distributed_bench.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
CORES=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
SHAPE="--dims 2 --input_size 128,128 --in_channels 4 --filters 32 --depth 4 --batch_size 8 --steps 6 --bench_warmup 2 --loss dice"
out="$BUILD/bench_distributed.md"

json_field() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2], 0))' "$1" "$2"; }
row() {  # name, ranks x threads, json
  local sps comm
  sps=$(json_field "$3" samples_per_s); comm=$(json_field "$3" comm_fraction)
  /usr/bin/python3 -c 'import sys; n,l,s,c,b=sys.argv[1:]; s,c,b=float(s),float(c),float(b)
print(f"| {n} | {l} | {s:.2f} | {100*c:.0f}% | {s/b:.2f}x |")' "$1" "$2" "$sps" "$comm" "$base" | tee -a "$out"
}

ours1=$(OMP_NUM_THREADS=$CORES "$BUILD"/bin/unet_train --benchmark $SHAPE 2>/dev/null | tail -1)
base=$(json_field "$ours1" samples_per_s)
{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $CORES cores; 2D UNet 128x128, 32 filters, depth 4, global batch 8"
  echo
  echo "| setup | ranks x threads | samples/s | comm wait | vs ours, 1 process |"
  echo "|---|---|---|---|---|"
} | tee "$out"
row "ours, one process" "1 x $CORES" "$ours1"
row "ours, --sync allreduce, 1 MiB buckets (overlap)" "$CORES x 1" "$("${MPI[@]}" -np "$CORES" "$BUILD"/bin/unet_train --benchmark --sync allreduce $SHAPE 2>/dev/null | tail -1)"
row "ours, --sync ps, 1 MiB buckets (overlap)" "1 + $CORES x 1" "$("${MPI[@]}" -np $((CORES + 1)) "$BUILD"/bin/unet_train --benchmark $SHAPE 2>/dev/null | tail -1)"
row "ours, --sync ps, one bucket (no overlap)" "1 + $CORES x 1" "$("${MPI[@]}" -np $((CORES + 1)) "$BUILD"/bin/unet_train --benchmark --bucket_mb 1000 $SHAPE 2>/dev/null | tail -1)"
row "PyTorch, one process" "1 x $CORES" "$(/usr/bin/python3 bench/torch_unet_bench.py --num_threads "$CORES" $SHAPE 2>/dev/null | tail -1)"
row "PyTorch DDP, gloo" "$CORES x 1" "$(cd bench && /usr/bin/python3 torch_ddp_bench.py --world "$CORES" --num_threads 1 $SHAPE 2>/dev/null | tail -1)"
echo "(written to $out)"
