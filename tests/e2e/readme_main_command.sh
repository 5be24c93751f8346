#!/usr/bin/env bash
# The README's main command works as written: ./run_distributed_training.sh creates the synthetic
# dataset if needed, trains settings/quick.ini on it under mpirun (a parameter server and two
# workers), says where the results are and how to open TensorBoard, and ends with a validation
# Dice well above 0.8.
set -u
# As a user runs it: without the test harness's OMP_NUM_THREADS, so the launcher picks the threads.
out=$(env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY ./run_distributed_training.sh 2>&1) || { echo "$out" | tail -20; exit 1; }
run=$(echo "$out" | sed -n 's/^results: \(runs\/[0-9-]*\).*/\1/p')
[ -n "$run" ] && [ -s "$run/training.log" ] && [ -f "$run/checkpoint_best.h5" ] || { echo "$out" | tail -5; echo "no run directory"; exit 1; }
trap 'rm -rf "$run"' EXIT
grep -q "3 ranks (rank 0 parameter server)" "$run/training.log" || { echo "not a parameter server and two workers"; exit 1; }
for d in train validation; do
  ls "$run/$d"/events.out.tfevents.* >/dev/null 2>&1 || { echo "no TensorBoard event file in $run/$d"; exit 1; }
done
echo "$out" | grep -q "^TensorBoard: scripts/tensorboard_venv.sh && build/tbvenv/bin/tensorboard --logdir runs/" || { echo "no TensorBoard hint"; exit 1; }
# the first run creates the dataset under a temporary folder name: the user is told the final one
if echo "$out" | grep -q "^creating the synthetic MSD dataset"; then
  echo "$out" | grep -q "^wrote 24 synthetic cases .* to data/synthetic$" || { echo "$out" | head -8; echo "no line naming data/synthetic"; exit 1; }
fi
echo "$out" | grep -q "synthetic\.partial" && { echo "$out" | grep "synthetic\.partial"; echo "the temporary folder's name was shown"; exit 1; }
dice=$(echo "$out" | tail -1 | sed -n 's/^validation Dice \([0-9.]*\) (best [0-9.]*)$/\1/p')
[ -n "$dice" ] || { echo "$out" | tail -3; echo "does not end with the validation Dice"; exit 1; }
awk -v d="$dice" 'BEGIN { exit !(d > 0.8) }' || { echo "$out" | tail -8; echo "validation Dice $dice"; exit 1; }
echo "validation Dice $dice"
