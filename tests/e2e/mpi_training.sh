#!/usr/bin/env bash
# Training under real MPI ranks, --sync ps (rank 0 parameter server, ranks 1..N-1 workers) and
# --sync allreduce (every rank a worker): N workers with global batch B end where one process with
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
"${MPI[@]}" -np 2 "$BIN" "${ARGS[@]}" --sync allreduce --steps 8 --logdir "$T/ar2" >/dev/null 2>&1 || fail "allreduce 2"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --sync allreduce --steps 8 --logdir "$T/ar3" >/dev/null 2>&1 || fail "allreduce 3"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --sync allreduce --steps 8 --logdir "$T/ar3b" >/dev/null 2>&1 || fail "allreduce 3 again"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --sync allreduce --bucket_mb 0.01 --steps 8 --logdir "$T/ar3m" >/dev/null 2>&1 \
  || fail "allreduce 3, small buckets"
"${MPI[@]}" -np 2 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/ps2" >/dev/null 2>&1 || fail "ps + 1 worker"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/ps3" >/dev/null 2>&1 || fail "ps + 2 workers"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --logdir "$T/ps3b" >/dev/null 2>&1 || fail "ps + 2 workers again"
grep -q "rank 0 parameter server" "$T/ps3/training.log" || fail "ps mode not logged"
# Gradients in many small buckets (overlapped with backward) and parameters sharded over two
# servers: the same sums in the same order, so the same bits as one bucket and one server.
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --bucket_mb 0.01 --steps 8 --logdir "$T/ps3m" >/dev/null 2>&1 || fail "small buckets"
"${MPI[@]}" -np 4 "$BIN" "${ARGS[@]}" --num_ps 2 --bucket_mb 0.01 --steps 8 --logdir "$T/ps4s" >"$T/ps4s.out" 2>&1 \
  || fail "2 servers + 2 workers"
grep -q "ranks 0-1 parameter servers" "$T/ps4s/training.log" || fail "sharded ps not logged"
grep -q "warning: --num_ps" "$T/ps4s.out" && fail "idle-server warning with enough buckets"
# This model fits one 1 MiB bucket: two of three servers would hold nothing, and the run says so once.
"${MPI[@]}" -np 4 "$BIN" "${ARGS[@]}" --num_ps 3 --steps 2 --logdir "$T/ps4i" >"$T/ps4i.out" 2>&1 || fail "3 servers + 1 worker"
[ "$(grep -c 'warning: --num_ps 3: the model.s [0-9]* parameters make 1 bucket of --bucket_mb, so 2 servers hold nothing' \
  "$T/ps4i.out")" -eq 1 ] || fail "idle-server warning: $(cat "$T/ps4i.out")"
msg=$(timeout 60 "${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --num_ps 3 --steps 8 --logdir "$T/ps3x" 2>&1); rc=$?
[ "$rc" -eq 2 ] || [ "$rc" -eq 1 ] || fail "--num_ps 3 of 3: exit $rc"
[ "$(echo "$msg" | grep -c 'unet_train: --num_ps: 3 server ranks leave no worker')" -eq 1 ] || fail "num_ps message: $msg"
/usr/bin/python3 - "$T" <<'PY' || fail "parameters"
import sys, h5py, numpy as np
t = sys.argv[1]
def params(run):
    f = h5py.File(f"{t}/{run}/checkpoint_latest.h5", "r")
    assert f["integers"].attrs["step"] == 8
    return f["arrays"]["params"][:]
one = params("one")
for a, b in (("ar3", "ar3b"), ("ps3", "ps3b"), ("ps3", "ps3m"), ("ps3", "ps4s")):
    assert params(a).tobytes() == params(b).tobytes(), f"{a} and {b} differ"
scale = np.abs(one).max()
for name in ("ar2", "ar3", "ar3m", "ps2", "ps3"):
    p = params(name)
    err = np.abs(p - one).max()
    assert err < 1e-4 * scale, f"{name} vs 1 rank: max |diff| {err} (scale {scale})"
    print(f"{name} vs 1 rank: max |diff| {err:.2e}, scale {scale:.2f}")
PY

# SIGTERM to every rank (as Slurm's scancel sends it): they agree on the step, rank 0 checkpoints,
# all exit 0. (A SIGTERM to mpirun itself is forwarded the same way, but Open MPI 4.1.4's mpirun
# then reports exit 1 whatever its ranks return.)
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 1000000 --logdir "$T/sig" >/dev/null 2>&1 &
pid=$!
sleep 4
pkill -TERM -f "^[^ ]*unet_train .*--logdir $T/sig"; wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q "stopped by signal" "$T/sig/training.log" && [ -f "$T/sig/checkpoint_latest.h5" ] || fail "no checkpoint after SIGTERM"
# Plain mpirun's graceful stop: SIGUSR1 to mpirun, which forwards it to every rank and, unlike a
# SIGTERM to it, does not kill them a second later; every rank checkpoints, mpirun exits 0.
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 1000000 --logdir "$T/usr1" >"$T/usr1.out" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "^data: " "$T/usr1.out" 2>/dev/null && break; sleep 0.2; done
sleep 2
kill -USR1 "$pid"; wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "SIGUSR1 to mpirun: exit $rc"
grep -q "stopped by signal 10 at step" "$T/usr1/training.log" && [ -f "$T/usr1/checkpoint_latest.h5" ] ||
  fail "no checkpoint after SIGUSR1 to mpirun: $(tail -2 "$T/usr1/training.log")"

# No --logdir under mpirun: rank 0 names the run directory (runs/<date-time>) and every rank uses
# it, so the job writes one run directory, as one process does (it used to stop with a line that
# Open MPI's MPI_ABORT banner buried).
mkdir "$T/nolog"; ABS_BIN=$(realpath "$BIN")
(cd "$T/nolog" && timeout 120 "${MPI[@]}" -np 3 "$ABS_BIN" "${ARGS[@]}" --steps 2 >out.txt 2>&1) \
  || { cat "$T/nolog/out.txt"; fail "mpirun without --logdir"; }
runs=("$T"/nolog/runs/*)
[ "${#runs[@]}" -eq 1 ] && [ -f "${runs[0]}/checkpoint_latest.h5" ] || fail "mpirun without --logdir: run directories ${runs[*]}"
grep -q "checkpoint runs/[0-9-]*/checkpoint_latest.h5 at step 2" "$T/nolog/out.txt" || fail "no checkpoint line naming runs/<date-time>"
# Ranks started with different settings: one line from rank 0, non-zero exit, no hang.
msg=$(timeout 60 "${MPI[@]}" -np 1 "$BIN" --dims 2 --input_size 32,32 --filters 8 --depth 2 --logdir "$T/mm" : \
      -np 1 "$BIN" --dims 2 --input_size 32,32 --filters 16 --depth 2 --logdir "$T/mm" 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "mismatched ranks: exit $rc"
[ "$(echo "$msg" | grep -c 'unet_train: the ranks were started with different settings')" -eq 1 ] || fail "mismatch message: $msg"

# Resume under MPI: 2 workers interrupted after 4 steps and resumed end where 8 straight steps end.
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 4 --logdir "$T/psr" >/dev/null 2>&1 || fail "ps first half"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --resume auto --logdir "$T/psr" >/dev/null 2>&1 || fail "ps resumed"
/usr/bin/python3 - "$T/ps3/checkpoint_latest.h5" "$T/psr/checkpoint_latest.h5" <<'PY' || fail "ps resume differs"
import sys, h5py
a, b = (h5py.File(p, "r")["arrays"] for p in sys.argv[1:])
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
for n in names:
    assert a[n][:].tobytes() == b[n][:].tobytes(), n
PY
# A stalled worker (test hook UNET_TEST_STALL=rank:step) stops the job within --step_timeout with
# one line naming the rank and the step; the last checkpoint stays intact and resumes exactly.
start=$(date +%s)
msg=$(timeout 120 "${MPI[@]}" -np 3 -x UNET_TEST_STALL=2:5 "$BIN" "${ARGS[@]}" --steps 50 --checkpoint_every 2 \
      --step_timeout 3 --logdir "$T/stall" 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ $(( $(date +%s) - start )) -lt 60 ] || fail "stall: exit $rc"
echo "$msg" | grep -q "worker rank 2 sent nothing for step 5 within --step_timeout 3" || fail "stall message: $msg"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 8 --resume "$T/stall/checkpoint_latest.h5" --logdir "$T/stall" \
  >/dev/null 2>&1 || fail "resume after stall"
grep -q "resumed from .* at step 4" "$T/stall/training.log" || fail "stall checkpoint not at step 4"
/usr/bin/python3 - "$T/ps3/checkpoint_latest.h5" "$T/stall/checkpoint_latest.h5" <<'PY' || fail "resume after stall differs"
import sys, h5py
a, b = (h5py.File(p, "r")["arrays"]["params"][:] for p in sys.argv[1:])
assert a.tobytes() == b.tobytes()
PY

# The same stall under --sync allreduce: rank 0 (a worker too) notices it the same way.
msg=$(timeout 120 "${MPI[@]}" -np 3 -x UNET_TEST_STALL=2:3 "$BIN" "${ARGS[@]}" --sync allreduce --steps 50 \
      --step_timeout 3 --logdir "$T/stall_ar" 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "allreduce stall: exit $rc"
echo "$msg" | grep -q "worker rank 2 sent nothing for step 3 within --step_timeout 3" || fail "allreduce stall message: $msg"

# A worker stalled (or cut off) in validation: the others wait in no collective for ever; rank 0
# names it within --step_timeout of its last word (workers send a heartbeat during validation),
# under ps and all-reduce, and with a single worker (nobody else finishes to start a clock).
for run in "ps 3 2" "allreduce 3 2" "ps 2 1"; do
  set -- $run
  start=$(date +%s)
  msg=$(timeout 120 "${MPI[@]}" -np $2 -x UNET_TEST_STALL=$3:val "$BIN" "${ARGS[@]}" --sync $1 --steps 50 \
        --step_timeout 3 --logdir "$T/stall_val_$1_$2" 2>&1); rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ $(( $(date +%s) - start )) -lt 60 ] || fail "$run validation stall: exit $rc"
  echo "$msg" | grep -q "worker rank $3 sent nothing for the validation after epoch 1 within --step_timeout 3 s (no heartbeat either)" ||
    fail "$run validation stall message: $msg"
done
# A validation far longer than --step_timeout (every batch of rank 1 a second slower, 2 s
# timeout) is alive all along: it ends normally, under ps and all-reduce.
SLOW=("${ARGS[@]/#24/96}"); SLOW=("${SLOW[@]/#6/2}")  # more validation batches: 96 samples, batch 2
for run in "ps 3" "allreduce 2"; do  # 2 workers each
  set -- $run; sync=$1
  "${MPI[@]}" -np $2 -x UNET_TEST_STALL=1:slowval "$BIN" "${SLOW[@]}" --sync $sync --steps 4 \
    --step_timeout 2 --logdir "$T/slow_val_$sync" > "$T/slow_val_$sync.out" 2>&1 ||
    fail "$sync: a slow but live validation was stopped: $(tail -3 "$T/slow_val_$sync.out")"
  slowed=$(grep -c "validation batch slowed" "$T/slow_val_$sync.out")
  [ "$slowed" -ge 4 ] || fail "$sync: only $slowed slowed validation batches (want a validation of 4 s or more)"
  echo "$sync: a validation of $slowed s or more under --step_timeout 2 went on"
done

# A worker killed with SIGKILL: Open MPI ends the whole job; the checkpoint is intact and resumes.
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps 1000000 --checkpoint_every 50 --logdir "$T/kill" >/dev/null 2>&1 &
pid=$!
sleep 4
victim=$(pgrep -f "^[^ ]*unet_train .*--logdir $T/kill" | tail -1)
kill -KILL "$victim"
for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && fail "job still running 60 s after a worker was killed"
wait "$pid"; [ $? -ne 0 ] || fail "killed job exited 0"
step=$(/usr/bin/python3 -c "import h5py,sys; print(int(h5py.File(sys.argv[1],'r')['integers'].attrs['step']))" \
       "$T/kill/checkpoint_latest.h5") || fail "checkpoint unreadable after SIGKILL"
"${MPI[@]}" -np 3 "$BIN" "${ARGS[@]}" --steps $((step + 2)) --resume auto --logdir "$T/kill" >/dev/null 2>&1 \
  || fail "resume after SIGKILL"
echo ok
