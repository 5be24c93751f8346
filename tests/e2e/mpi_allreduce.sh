#!/usr/bin/env bash
# Data-parallel training under real MPI ranks (mpirun -np 2 / 3, every rank a worker,
# gradients and loss sums all-reduced): 2 workers with global batch B end where 1 worker with
# batch B ends (up to float rounding), runs repeat bit for bit, SIGTERM stops every rank with a
# checkpoint and exit 0, and a rank that fails ends the whole job with one line.
set -u
BIN=${BUILD:-build}/bin/unet_train
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
fail() { echo "FAIL: $*"; exit 1; }
ARGS=(--dims 2 --input_size 32,32 --filters 8 --depth 2 --batch_size 6 --epochs 1000 --toy_samples 24
      --learningrate 0.002 --loss dice_bce --print_every 1000)

OMP_NUM_THREADS=1 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/one" >/dev/null 2>&1 || fail "1 rank"
"${MPI[@]}" -np 2 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/two" >/dev/null 2>&1 || fail "2 ranks"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/three" >/dev/null 2>&1 || fail "3 ranks"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/three_again" >/dev/null 2>&1 || fail "3 ranks again"
/usr/bin/python3 - "$T" <<'PY' || fail "parameters"
import sys, h5py, numpy as np
t = sys.argv[1]
def params(run):
    f = h5py.File(f"{t}/{run}/checkpoint_latest.h5", "r")
    assert f["integers"].attrs["step"] == 8
    return f["arrays"]["params"][:]
one, two, three, again = params("one"), params("two"), params("three"), params("three_again")
assert three.tobytes() == again.tobytes(), "3-rank runs differ"
scale = np.abs(one).max()
for name, p in (("2 ranks", two), ("3 ranks", three)):
    err = np.abs(p - one).max()
    assert err < 1e-4 * scale, f"{name} vs 1 rank: max |diff| {err} (scale {scale})"
    print(f"{name} vs 1 rank: max |diff| {err:.2e}, scale {scale:.2f}")
PY

# SIGTERM to every rank (as Slurm's scancel sends it): they agree on the step, rank 0 checkpoints,
# all exit 0. (A SIGTERM to mpirun itself is forwarded the same way, but Open MPI 4.1.4's mpirun
# then reports exit 1 whatever its ranks return.)
"${MPI[@]}" -np 2 "$BIN" "${ARGS[@]}" --steps 1000000 --logdir "$T/sig" >/dev/null 2>&1 &
pid=$!
sleep 4
pkill -TERM -f "^[^ ]*unet_train .*--logdir $T/sig"; wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q "stopped by signal" "$T/sig/training.log" && [ -f "$T/sig/checkpoint_latest.h5" ] || fail "no checkpoint after SIGTERM"

# A rank that cannot start (here: no --logdir under mpirun) ends the job with one clear line.
msg=$(timeout 60 "${MPI[@]}" -np 2 "$BIN" --dims 2 --input_size 32,32 --filters 8 --depth 2 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "bad run: exit $rc"
echo "$msg" | grep -q "unet_train: --logdir" || fail "no clear message: $msg"
echo ok
