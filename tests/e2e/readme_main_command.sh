#!/usr/bin/env bash
# The README's main command works as written: ./run_distributed_training.sh creates the synthetic
# dataset if needed, trains settings/quick.ini on it and reports a validation Dice well above 0.8.
set -u
out=$(OMP_NUM_THREADS=2 ./run_distributed_training.sh 2>&1) || { echo "$out" | tail -20; exit 1; }
run=$(echo "$out" | sed -n 's/^results: \(runs\/[0-9-]*\).*/\1/p')
[ -n "$run" ] && [ -s "$run/training.log" ] && [ -f "$run/checkpoint_best.h5" ] || { echo "$out" | tail -5; echo "no run directory"; exit 1; }
dice=$(echo "$out" | sed -n 's/^done:.*validation Dice \([0-9.]*\).*/\1/p')
awk -v d="$dice" 'BEGIN { exit !(d > 0.8) }' || { echo "$out" | tail -8; echo "validation Dice $dice"; exit 1; }
rm -rf "$run"
echo "validation Dice $dice"
