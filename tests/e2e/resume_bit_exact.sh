#!/usr/bin/env bash
# A run interrupted (by --steps, or by SIGTERM) and resumed from its checkpoint ends bit-identical
# to an uninterrupted run with the same seed: parameters, batch-norm buffers, Adam moments. The
# stop line's "continue with --resume FILE" works as printed (the model, data and run directory
# come from the checkpoint), and asking another model of a checkpoint names both.
set -u
BIN=${BUILD:-build}/bin/unet_train
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2
fail() { echo "FAIL: $*"; exit 1; }
ARGS=(--dims 2 --input_size 32,32 --filters 8 --depth 2 --norm batch --dropout 0.2 --batch_size 4 --epochs 1000
      --toy_samples 16 --learningrate 0.002 --print_every 1000)

same() {  # same A.h5 B.h5: every array of two checkpoints bit-identical, same step
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a["arrays"].visit(lambda n: names.append(n) if isinstance(a["arrays"][n], h5py.Dataset) else None)
assert names, "no arrays"
for n in names:
    x, y = a["arrays"][n][:], b["arrays"][n][:]
    assert x.tobytes() == y.tobytes(), f"{n} differs: max |diff| {np.abs(x - y).max()}"
sa, sb = a["integers"].attrs["step"], b["integers"].attrs["step"]
assert sa == sb, (sa, sb)
print(f"{len(names)} arrays bit-identical at step {sa}")
PY
}

"$BIN" "${ARGS[@]}" --logdir "$T/full" --steps 10 >/dev/null 2>&1 || fail "uninterrupted run"
"$BIN" "${ARGS[@]}" --logdir "$T/part" --steps 6 >/dev/null 2>&1 || fail "first half"
"$BIN" "${ARGS[@]}" --logdir "$T/part" --steps 10 --resume auto >/dev/null 2>&1 || fail "resumed half"
grep -q "resumed from .* at step 6" "$T/part/training.log" || fail "no resume line in training.log"
same "$T/full/checkpoint_latest.h5" "$T/part/checkpoint_latest.h5" || fail "resume after --steps differs"
# the epoch the resume fell into (epoch 2: steps 5-8, resumed after step 6) reports the
# uninterrupted epoch's train loss and Dice (its first steps' sums come with the checkpoint)
e_full=$(grep -o "epoch 2/1000  train loss [0-9.]* dice [0-9.]*" "$T/full/training.log")
e_part=$(grep -o "epoch 2/1000  train loss [0-9.]* dice [0-9.]*" "$T/part/training.log" | tail -1)  # the first session also ended inside epoch 2
[ -n "$e_full" ] && [ "$e_full" = "$e_part" ] || fail "resumed epoch: '$e_part', uninterrupted: '$e_full'"

# SIGTERM in the middle: a checkpoint, exit 0, and the resumed run matches an uninterrupted one.
"$BIN" "${ARGS[@]}" --logdir "$T/sig" --steps 100000 >/dev/null 2>&1 &
pid=$!
sleep 3
kill -TERM "$pid"
wait "$pid"; rc=$?
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc, want 0"
grep -q "stopped by signal 15" "$T/sig/training.log" || fail "no stop line in training.log"
step=$(/usr/bin/python3 -c "import h5py,sys; print(int(h5py.File(sys.argv[1],'r')['integers'].attrs['step']))" "$T/sig/checkpoint_latest.h5")
[ "$step" -gt 0 ] || fail "SIGTERM checkpoint at step $step"
target=$((step + 3))
# The hint in the log is a command that works as printed: no model flags, no --logdir (only
# --steps here, to stop where the reference run stops).
hint=$(sed -n 's/.*stopped by signal 15 at step [0-9]*; continue with --resume \(.*\)$/\1/p' "$T/sig/training.log")
[ "$hint" = "$T/sig/checkpoint_latest.h5" ] || fail "the stop line's hint: '$hint'"
"$BIN" --resume "$hint" --steps "$target" >"$T/resumed.out" 2>&1 || { tail -3 "$T/resumed.out"; fail "resume as the hint says"; }
grep -q "resumed from $hint" "$T/sig/training.log" || fail "the resumed run did not continue in $T/sig"
"$BIN" "${ARGS[@]}" --logdir "$T/ref" --steps "$target" >/dev/null 2>&1 || fail "reference run"
same "$T/ref/checkpoint_latest.h5" "$T/sig/checkpoint_latest.h5" || fail "resume after SIGTERM differs"

# Asking another model of a checkpoint is refused with one line naming both sides, exit 2.
msg=$("$BIN" --dims 2 --input_size 32,32 --filters 16 --depth 2 --logdir "$T/other" --resume "$T/ref/checkpoint_latest.h5" 2>&1)
[ $? -eq 2 ] && [ "$(echo "$msg" | wc -l)" -eq 1 ] &&
  echo "$msg" | grep -q "is a 2D UNet, filters 8, depth 2, labels wt, norm batch, .*; this run asks a 2D UNet, filters 16," ||
  fail "mismatched resume: $msg"
# An unwritable log directory stops the job before training.
msg=$("$BIN" --dims 2 --input_size 32,32 --filters 8 --depth 2 --logdir /proc/nope/run 2>&1)
[ $? -eq 1 ] && echo "$msg" | grep -q "/proc/nope/run" || fail "unwritable logdir: $msg"
echo ok
