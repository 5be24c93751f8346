#!/usr/bin/env bash
# make bench, tuning part: a 16-trial search of settings/tune_quick.ini on this machine's cores,
# spent three ways (one process, trials in parallel groups, one trial at a time over all ranks),
# and ASHA against fifo (time until the best validation Dice was first reported, and that Dice).
# Prints Markdown tables and writes them to $BUILD/tune_bench.md. TUNE_BENCH_TRIALS changes 16.
#   bench/tune_bench.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/bin/unet_train
TRIALS=${TUNE_BENCH_TRIALS:-16}
CORES=$(nproc)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY)
SPACE=(--tune=settings/tune_quick.ini --trials "$TRIALS")
out="$BUILD/tune_bench.md"

# summary NAME LOGDIR WALL: one table row from the ledger (search clock, trials, best Dice and when).
summary() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
name, logdir, wall = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = json.load(open(f"{logdir}/tune/state.json"))
t = s["trials"]
best = max(t, key=lambda r: max(r["dice"] or [0]))
epochs = sum(len(r["dice"]) for r in t)
n = {k: sum(r["status"] == k for r in t) for k in ("completed", "stopped", "failed")}
print(f"| {name} | {wall:.1f} | {epochs} | {n['completed']}/{n['stopped']}/{n['failed']} | "
      f"{max(best['dice']):.4f} | {best['best_at']:.1f} |")
PY
}
run() {  # run NAME LOGDIR command...
  local name=$1 dir=$2; shift 2
  local t0=$(date +%s.%N)
  "$@" --logdir "$dir" >"$dir.out" 2>&1 || { tail -20 "$dir.out"; exit 1; }
  summary "$name" "$dir" "$(echo "$(date +%s.%N) - $t0" | bc)" | tee -a "$out"
}

{
  echo "$TRIALS-trial random search of settings/tune_quick.ini (2D UNet 64x64, 6 epochs, generated data), $CORES cores, $(date -u +%F)"
  echo
  echo "| layout | wall s | epochs trained | completed/stopped/failed | best val Dice | best Dice reached at s |"
  echo "|---|---|---|---|---|---|"
} | tee "$out"
TR=$((CORES))  # training ranks: one per core; world rank 0 only coordinates (it sleeps between messages)
run "fifo, 1 process, $CORES threads (trials one after another)" "$W/seq" \
  env OMP_NUM_THREADS=$CORES "$BIN" "${SPACE[@]}" --scheduler fifo
run "fifo, G=1: $TR groups of 1 rank (experiment parallelism)" "$W/g1" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size 1
run "fifo, G=$TR, --sync allreduce: one trial at a time over all ranks (data parallelism)" "$W/dp" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size $TR --sync allreduce
run "fifo, G=2, --sync ps: parameter server + 1 worker per trial, $((TR / 2)) group(s)" "$W/g2ps" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size 2
run "asha (grace 1, factor 3), G=1: $TR groups of 1 rank" "$W/asha" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler asha --group_size 1
run "median rule (grace 1), G=1: $TR groups of 1 rank" "$W/median" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler median --group_size 1
echo "(written to $out)"
