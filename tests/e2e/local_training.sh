#!/usr/bin/env bash
# unet_train without mpirun trains on the generated data and the validation Dice rises well
# above chance.
set -u
BIN=${BUILD:-build}/bin/unet_train
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
out=$(OMP_NUM_THREADS=2 "$BIN" --logdir "$T/run" --dims 2 --input_size 32,32 --filters 8 --depth 2 --batch_size 4 --epochs 6 \
      --toy_samples 32 --learningrate 0.003 --const_learningrate --loss dice 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -q "parameters" || { echo "no parameter count printed"; exit 1; }
echo "$out" | grep -q "^memory estimate per worker: network .* = [0-9]* MiB$" || { echo "$out"; echo "no memory estimate printed"; exit 1; }
# the last line of training.log: the measured peak against the estimate (a tiny model: only sanity)
peak=$(sed -n 's/.*peak RSS \([0-9]*\) MiB on the busiest worker (estimated \([0-9]*\) MiB)$/\1 \2/p' "$T/run/training.log")
[ -n "$peak" ] || { tail -3 "$T/run/training.log"; echo "no peak RSS line in training.log"; exit 1; }
awk -v p="$peak" 'BEGIN { split(p, v, " "); exit !(v[1] > 0 && v[2] > 0 && v[2] < 4 * v[1] && v[1] < 4 * v[2]) }' \
  || { echo "peak RSS and estimate (MiB): $peak"; exit 1; }
dice=$(echo "$out" | sed -n 's/^done:.*validation Dice \([0-9.]*\).*/\1/p')
[ -n "$dice" ] || { echo "$out"; echo "no final Dice"; exit 1; }
awk -v d="$dice" 'BEGIN { exit !(d > 0.8) }' || { echo "$out"; echo "validation Dice $dice <= 0.8"; exit 1; }
[ -s "$T/run/training.log" ] && [ -f "$T/run/checkpoint_latest.h5" ] && [ -f "$T/run/checkpoint_best.h5" ] \
  || { ls -la "$T/run"; echo "run directory incomplete"; exit 1; }
grep -q "^[0-9-]* [0-9:]* epoch 6/6" "$T/run/training.log" || { cat "$T/run/training.log"; echo "no epoch line in training.log"; exit 1; }
echo "validation Dice $dice"
