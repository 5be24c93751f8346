#!/usr/bin/env bash
# scripts/slurm/*.sbatch without a Slurm cluster (tests/e2e/slurm_real.sh runs them on a real
# one-node Slurm when it is installed): the batch scripts run with the SLURM_* variables sbatch sets,
# and stubs of srun (runs the step as one process, recording its flags and environment), scancel
# (passes the signal to that process) and scontrol (records the requeue) on PATH. Checks that
# srun gets --cpus-per-task and the ranks OMP_NUM_THREADS from SLURM_CPUS_PER_TASK; that SIGTERM
# before the time limit ends in a checkpoint, exit 0 and a requeue; that the requeued job resumes
# from that checkpoint; and that the tuning variant runs a search.
set -u
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.out "$tmp"/calls; do [ -f "$f" ] && { echo "== $f"; tail -8 "$f"; }; done; exit 1; }

mkdir -p "$tmp/bin"
cat > "$tmp/bin/srun" <<'STUB'
#!/usr/bin/env bash
echo "srun $* OMP_NUM_THREADS=$OMP_NUM_THREADS" >> "$STUB_DIR/calls"
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done   # srun's own options
echo $$ > "$STUB_DIR/step.pid"
exec "$@"
STUB
cat > "$tmp/bin/scancel" <<'STUB'
#!/usr/bin/env bash
echo "scancel $*" >> "$STUB_DIR/calls"
[ "$1" = "--signal=TERM" ] && kill -TERM "$(cat "$STUB_DIR/step.pid")"
STUB
cat > "$tmp/bin/scontrol" <<'STUB'
#!/usr/bin/env bash
echo "scontrol $*" >> "$STUB_DIR/calls"
STUB
chmod +x "$tmp/bin"/*
export PATH="$tmp/bin:$PATH" STUB_DIR=$tmp SLURM_SUBMIT_DIR=$PWD SLURM_CPUS_PER_TASK=2 SLURM_NTASKS=1
unset OMP_NUM_THREADS
small=(--input_size 32,32 --filters 4 --depth 2 --batch_size 4 --toy_samples 16 --print_every 1 --seed 3)

# 1. a job that ends by itself
SLURM_JOB_ID=101 UNET_LOGDIR=$tmp/run101 UNET_SETTINGS=settings/quick.ini \
  bash scripts/slurm/unet_train.sbatch "${small[@]}" --epochs 1 > "$tmp/101.out" 2>&1 || fail "job 101 exit $?"
grep -q -- "^srun --cpus-per-task=2 .*OMP_NUM_THREADS=2$" "$tmp/calls" || fail "srun not given --cpus-per-task=2 / OMP_NUM_THREADS=2"
[ -f "$tmp/run101/checkpoint_latest.h5" ] || fail "job 101: no checkpoint"
grep -q "done:" "$tmp/run101/training.log" || fail "job 101 did not finish"
grep -q "scontrol" "$tmp/calls" && fail "job 101 was requeued"

# 2. a job that reaches its time limit: SIGTERM to the batch script (as --signal=B:TERM@300 does)
SLURM_JOB_ID=102 UNET_LOGDIR=$tmp/run102 UNET_SETTINGS=settings/quick.ini \
  bash scripts/slurm/unet_train.sbatch "${small[@]}" --epochs 500 > "$tmp/102.out" 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "^.*step 3 " "$tmp/run102/training.log" 2>/dev/null && break; sleep 0.2; done
grep -q "step 3 " "$tmp/run102/training.log" 2>/dev/null || fail "job 102 did not start training"
kill -TERM $job
rc=0; wait $job || rc=$?
[ "$rc" -eq 0 ] || fail "job 102 exit $rc after SIGTERM"
grep -q "^scancel --signal=TERM 102$" "$tmp/calls" || fail "SIGTERM not passed to the step"
grep -q "^scontrol requeue 102$" "$tmp/calls" || fail "job 102 not requeued"
grep -q "stopped by signal" "$tmp/run102/training.log" || fail "job 102 did not stop at a step boundary"
[ -f "$tmp/run102/checkpoint_latest.h5" ] || fail "job 102: no checkpoint"
stopped=$(sed -n 's/.*stopped by signal [0-9]* at step \([0-9]*\).*/\1/p' "$tmp/run102/training.log")

# 3. the requeued job (same id and run directory) continues from that checkpoint
SLURM_JOB_ID=102 SLURM_RESTART_COUNT=1 UNET_LOGDIR=$tmp/run102 UNET_SETTINGS=settings/quick.ini \
  bash scripts/slurm/unet_train.sbatch "${small[@]}" --epochs 500 --steps $((stopped + 2)) > "$tmp/102b.out" 2>&1 || fail "requeued job exit $?"
grep -q "resumed from .*checkpoint_latest.h5 at step $stopped " "$tmp/run102/training.log" || fail "requeued job did not resume at step $stopped"
grep -q "done: $((stopped + 2)) steps" "$tmp/run102/training.log" || fail "requeued job did not end at step $((stopped + 2))"

# 4. the tuning variant passes --tune (unet_train's side of it is tested with --tune itself)
# 4. the tuning variant runs a search (2 short trials, one after another in the stub's one process)
SLURM_JOB_ID=103 SLURM_JOB_NAME=unet_tune UNET_LOGDIR=$tmp/run103 \
  bash scripts/slurm/unet_tune.sbatch --trials 2 --epochs 1 --input_size 32,32 --toy_samples 16 \
  > "$tmp/103.out" 2>&1 || fail "tuning job exit $?"
grep -q -- "--tune=settings/tune_quick.ini" "$tmp/calls" || fail "unet_tune.sbatch does not pass --tune"
[ -f "$tmp/run103/tune/ranking.md" ] || fail "tuning job: no ranking"
for f in scripts/slurm/*.sbatch scripts/slurm/train_step.sh; do bash -n "$f" || fail "$f: syntax"; done
for f in scripts/slurm/*.sbatch; do
  for d in --nodes --ntasks-per-node --cpus-per-task --time --signal=B:TERM@ --requeue; do
    grep -q "^#SBATCH $d" "$f" || fail "$f: no #SBATCH $d"
  done
done
echo "srun flags, OMP_NUM_THREADS, SIGTERM -> checkpoint + requeue at step $stopped, resume: ok"
