#!/usr/bin/env bash
# The synthetic MSD data must be learnable: a small 2D UNet (batch norm) trained on its axial slices for a few
# epochs reaches a validation Dice well above 0.8 (an all-empty prediction scores about 0.65 here,
# the share of validation slices without tumour), and finds most tumour voxels.
set -u
B=${BUILD:-build}/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2
"$B"/unet_prepare --synthetic 16 --output_dir "$T/msd" --synthetic_size 64,96,96 >/dev/null 2>&1 || exit 1
"$B"/unet_prepare --source_dir "$T/msd" --output "$T/b2.h5" --mode 2d --slice_size 64 >/dev/null 2>&1 || exit 1
out=$("$B"/unet_train --logdir "$T/run" --data "$T/b2.h5" --dims 2 --filters 16 --depth 3 --norm batch --batch_size 16 --epochs 4 --loss log_dice \
      --learningrate 0.002 --const_learningrate --print_every 1000 2>&1) || { echo "$out"; exit 1; }
last=$(echo "$out" | grep '^epoch' | tail -1)
dice=$(echo "$last" | sed -n 's/.*val loss [0-9.]* dice \([0-9.]*\) sensitivity \([0-9.]*\).*/\1/p')
sens=$(echo "$last" | sed -n 's/.*val loss [0-9.]* dice \([0-9.]*\) sensitivity \([0-9.]*\).*/\2/p')
echo "$last"
awk -v d="$dice" -v s="$sens" 'BEGIN { exit !(d > 0.85 && s > 0.8) }' || { echo "$out"; echo "not learned: dice $dice sensitivity $sens"; exit 1; }
