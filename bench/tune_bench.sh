#!/usr/bin/env bash
# make bench, tuning part: a 16-trial search of settings/tune_quick.ini on this machine's cores,
# spent three ways (one process, trials in parallel groups, one trial at a time over all ranks),
# and ASHA against fifo (time until the best validation Dice was first reported, and that Dice).
# Prints a Markdown table and writes it to $BUILD/tune_bench.md. TUNE_BENCH_TRIALS changes 16;
# the load average at the start and end of each row says how much else the machine was doing.
#   bench/tune_bench.sh [BUILD] [row...]     rows: seq2 seq1 g1 dp ps asha median (default: all)
# Row `reach` (not in the default set; about 15 searches, 15-25 minutes on 2 shared cores): random,
# TPE, random + ASHA, TPE + ASHA and PBT over the same space, each for every seed of
# TUNE_REACH_SEEDS (default "42 1 2"), all -np 3 --group_size 1; bench/tune_reach.py stamps every
# report with wall and CPU time and prints how soon each search first reaches the best Dice of the
# full random search of its seed. Records in $BUILD/tune_reach/ (TUNE_REACH_METHODS picks methods).
set -euo pipefail
BUILD=${1:-build}; shift || true
ROWS=("$@"); [ ${#ROWS[@]} -gt 0 ] || ROWS=(seq2 seq1 g1 dp ps asha median)
want() { [[ " ${ROWS[*]} " == *" $1 "* ]]; }
load() { cut -d' ' -f1 /proc/loadavg; }
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
print(f"| {name} | {wall:.1f} | {sys.argv[4]} | {epochs} | {n['completed']}/{n['stopped']}/{n['failed']} | "
      f"{max(best['dice']):.4f} | {best['best_at']:.1f} |")
PY
}
run() {  # run NAME LOGDIR command...
  local name=$1 dir=$2; shift 2
  local t0=$(date +%s.%N) l0=$(load)
  "$@" --logdir "$dir" >"$dir.out" 2>&1 || { tail -20 "$dir.out"; exit 1; }
  summary "$name" "$dir" "$(echo "$(date +%s.%N) - $t0" | bc)" "$l0 / $(load)" | tee -a "$out"
}

layouts=0; for r in seq2 seq1 g1 dp ps asha median; do want $r && layouts=1; done
[ $layouts = 0 ] || {
  echo "$TRIALS-trial random search of settings/tune_quick.ini (2D UNet 64x64, 6 epochs, generated data), $CORES cores, $(date -u +%F)"
  echo
  echo "| layout | wall s | load avg start / end | epochs trained | completed/stopped/failed | best val Dice | best Dice reached at s |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$out"
[ $layouts = 1 ] || : >"$out"
TR=$((CORES))  # training ranks: one per core; world rank 0 only coordinates (it sleeps between messages)
want seq2 && run "fifo, 1 process, $CORES threads (trials one after another)" "$W/seq2" \
  env OMP_NUM_THREADS=$CORES "$BIN" "${SPACE[@]}" --scheduler fifo
want seq1 && run "fifo, 1 process, 1 thread (trials one after another)" "$W/seq1" \
  env OMP_NUM_THREADS=1 "$BIN" "${SPACE[@]}" --scheduler fifo
want g1 && run "fifo, G=1: $TR groups of 1 rank (experiment parallelism)" "$W/g1" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size 1
want dp && run "fifo, G=$TR, --sync allreduce: one trial at a time over all ranks (data parallelism)" "$W/dp" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size $TR --sync allreduce
want ps && run "fifo, G=2, --sync ps: parameter server + 1 worker per trial, $((TR / 2)) group(s)" "$W/g2ps" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler fifo --group_size 2
want asha && run "asha (grace 1, factor 3), G=1: $TR groups of 1 rank" "$W/asha" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler asha --group_size 1
if want reach; then
  R=$BUILD/tune_reach; mkdir -p "$R"
  # pbt copies checkpoints between members, so the settings that change the model (filters, norm)
  # cannot be searched: its space is the quick space with those two fixed (TUNE_REACH_PBT_FIXED).
  sed -e '/^filters = choice/d' -e '/^norm = choice/d' settings/tune_quick.ini >"$R/pbt.ini"
  sed -i "s/^\[fixed\]\$/[fixed]\n${TUNE_REACH_PBT_FIXED:-filters = 8\nnorm = group}/" "$R/pbt.ini"
  for seed in ${TUNE_REACH_SEEDS:-42 1 2}; do
    for m in ${TUNE_REACH_METHODS:-random tpe asha tpe_asha pbt}; do
      case $m in
        random) a=(--tune=settings/tune_quick.ini --search random --scheduler fifo) ;;
        tpe) a=(--tune=settings/tune_quick.ini --search tpe --scheduler fifo) ;;
        # not in the default set: TPE learning from trial 5 on (Optuna's default waits for 10)
        tpe4) a=(--tune=settings/tune_quick.ini --search tpe --startup_trials 4 --scheduler fifo) ;;
        asha) a=(--tune=settings/tune_quick.ini --search random --scheduler asha) ;;
        tpe_asha) a=(--tune=settings/tune_quick.ini --search tpe --scheduler asha) ;;
        pbt) a=(--tune="$R/pbt.ini" --search random --scheduler pbt) ;;
      esac
      rm -rf "$W/reach"
      echo "reach: $m seed $seed (load $(load))"
      nice /usr/bin/python3 bench/tune_reach.py run "$R/${m}_$seed.json" "$W/reach" -- "${MPI[@]}" -np $((TR + 1)) \
        "$BIN" "${a[@]}" --trials "$TRIALS" --seed "$seed" --group_size 1 --logdir "$W/reach" || exit 1
    done
  done
  /usr/bin/python3 bench/tune_reach.py table "$R" | tee -a "$out"
fi
want median && run "median rule (grace 1), G=1: $TR groups of 1 rank" "$W/median" \
  "${MPI[@]}" -np $((TR + 1)) "$BIN" "${SPACE[@]}" --scheduler median --group_size 1
echo "(written to $out)"
