#!/usr/bin/env bash
# BraTS regions end to end in training (issue 13): a synthetic MSD dataset prepared with its labels
# 0-3, a 2D model trained for WT, TC and ET (--labels regions) whose per-region validation Dice
# passes floors, per-region numbers in training.log and in TensorBoard (read by TensorBoard's own
# loader, with the region colours in the overlay picture and the labels in the HParams session),
# a 3D region run with whole-volume HD95 per region, --objective, and the bad-input lines.
set -u
BUILD=${BUILD:-build}
B=$BUILD/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=2
PY=$(scripts/tensorboard_venv.sh "$BUILD") || fail "cannot install TensorBoard (scripts/tensorboard_venv.sh)"

"$B"/unet_prepare --synthetic 12 --output_dir "$T/msd" --synthetic_size 40,64,64 --seed 4 >/dev/null 2>&1 || fail "synthetic"
"$B"/unet_prepare --source_dir "$T/msd" --output "$T/d2.h5" --mode 2d --slice_size 32 >/dev/null 2>&1 || fail "prepare 2d"
"$B"/unet_prepare --source_dir "$T/msd" --output "$T/d3.h5" --mode 3d --split 0.6,0.2,0.2 >/dev/null 2>&1 || fail "prepare 3d"

# 2D, three regions. The floors are below what this run reaches (measured after 6 epochs: WT 0.83,
# TC 0.96, ET 0.93; the slices' mean Dice, empty slices counting 1 when left empty); a region the
# model does not learn stays far below (0.03-0.3 in the first epochs).
"$B"/unet_train --data "$T/d2.h5" --labels regions --dims 2 --filters 16 --depth 3 --norm batch --batch_size 16 \
  --epochs 8 --learningrate 0.003 --const_learningrate --loss dice_bce --print_every 1000 --image_every 20 \
  --logdir "$T/r2" >"$T/r2.out" 2>&1 || { tail -5 "$T/r2.out"; fail "2D region training"; }
last=$(grep "epoch 8/8  train" "$T/r2/training.log" | tail -1)
echo "$last" | grep -Eq "train loss [0-9.]+ dice [0-9.]+ \(WT [0-9.]+, TC [0-9.]+, ET [0-9.]+\)" || fail "train regions: $last"
read -r wt tc et < <(echo "$last" | sed -E 's/.*val loss [0-9.]+ dice [0-9.]+ \(WT ([0-9.]+), TC ([0-9.]+), ET ([0-9.]+)\).*/\1 \2 \3/')
echo "2D region validation Dice: WT $wt TC $tc ET $et"
awk -v w="$wt" -v t="$tc" -v e="$et" 'BEGIN { exit !(w >= 0.75 && t >= 0.75 && e >= 0.70) }' \
  || fail "per-region validation Dice below the floors (WT 0.75, TC 0.75, ET 0.70): $last"

"$PY" - "$T/r2" <<'PY' || fail "TensorBoard's view of the region run"
import glob, io, sys
import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hp_meta
run = sys.argv[1]
def load(sub):
    acc = ea.EventAccumulator(f"{run}/{sub}", size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc
val, train = load("validation"), load("train")
tags = set(val.Tags()["scalars"])
for t in ["val/dice", "val/dice_wt", "val/dice_tc", "val/dice_et"]:
    assert t in tags, (t, sorted(tags))
assert {"train/epoch_dice_wt", "train/epoch_dice_tc", "train/epoch_dice_et"} <= set(train.Tags()["scalars"])
# val/dice is the mean of the three regions
last = {t: val.Scalars(t)[-1].value for t in ["val/dice", "val/dice_wt", "val/dice_tc", "val/dice_et"]}
assert abs(last["val/dice"] - (last["val/dice_wt"] + last["val/dice_tc"] + last["val/dice_et"]) / 3) < 1e-5, last
# the overlay shows the region colours: WT green, TC red, ET yellow (at least two of them)
img = np.asarray(Image.open(io.BytesIO(val.Images("images/ground_truth")[-1].encoded_image_string)).convert("RGB"))
colours = {tuple(c) for c in img.reshape(-1, 3).tolist()}
found = {name for name, c in {"WT": (40, 200, 40), "TC": (230, 40, 40), "ET": (255, 220, 0)}.items() if c in colours}
assert len(found) >= 2, ("ground truth picture colours", found)
# the HParams session lists the labels
acc = ea.EventAccumulator(glob.glob(f"{run}/events.out.tfevents.*")[0], size_guidance={ea.TENSORS: 0})
acc.Reload()
info = hp_meta.parse_session_start_info_plugin_data(acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
assert info.hparams["labels"].string_value == "wt,tc,et", info.hparams["labels"]
print("TensorBoard: per-region scalars, region colours", sorted(found), "and labels wt,tc,et")
PY

# 3D: whole-volume validation scores each region (Dice and HD95) in the log.
"$B"/unet_train --data "$T/d3.h5" --labels wt,et --objective et --dims 3 --patch 32,32,32 --filters 8 --depth 2 \
  --batch_size 2 --epochs 1 --print_every 1000 --logdir "$T/r3" >"$T/r3.out" 2>&1 || { tail -5 "$T/r3.out"; fail "3D region run"; }
grep -Eq "val whole volumes dice [0-9.]+ hd95 [0-9.]+ mm .*\(WT dice [0-9.]+ hd95 [0-9.]+ mm, ET dice [0-9.]+ hd95 [0-9.]+ mm\)" \
  "$T/r3/training.log" || fail "3D whole-volume regions: $(grep 'whole volumes' "$T/r3/training.log")"
# --objective et: the run's validation Dice is ET's
et3=$(sed -nE 's/.*ET dice ([0-9.]+) hd95.*/\1/p' "$T/r3/training.log" | tail -1)
grep -q "validation Dice $et3 " "$T/r3.out" || fail "--objective et: final validation Dice is not ET's ($et3): $(tail -3 "$T/r3.out")"

# Tuning compares the --objective region's Dice (here TC) of each trial.
cat >"$T/tune.ini" <<INI
[search]
learningrate = choice(0.002, 0.004)
[fixed]
data = $T/d2.h5
labels = regions
objective = tc
filters = 8
depth = 2
batch_size = 16
epochs = 1
steps = 6
print_every = 1000
image_every = 0
INI
"$B"/unet_train --tune "$T/tune.ini" --logdir "$T/tune" >"$T/tune.out" 2>&1 || { tail -5 "$T/tune.out"; fail "region tuning"; }
best=$(sed -nE 's/^best: trial ([0-9]+), validation Dice ([0-9.]+) .*/\1 \2/p' "$T/tune.out")
[ -n "$best" ] || fail "no best trial line: $(tail -3 "$T/tune.out")"
read -r trial dice <<<"$best"
tc_trial=$(sed -nE 's/.*val loss [0-9.]+ dice [0-9.]+ \(WT [0-9.]+, TC ([0-9.]+), ET [0-9.]+\).*/\1/p' "$T/tune/tune/trial_$trial/training.log" | tail -1)
[ "$tc_trial" = "$dice" ] || fail "the tuner's Dice $dice of trial $trial is not its TC Dice $tc_trial"

# Bad input: one line each, exit 2.
expect_usage() {  # expect_usage "text" args...
  local want=$1; shift
  local out rc
  out=$("$B"/unet_train "$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "unet_train $* exited $rc (want 2): $out"
  [ "$(echo "$out" | grep -c .)" -eq 1 ] || fail "unet_train $*: want one line: $out"
  echo "$out" | grep -qF -- "$want" || fail "unet_train $*: lacks '$want': $out"
}
expect_usage "--labels: unknown region 'ncr'" --data "$T/d2.h5" --labels wt,ncr --logdir "$T/bad1"
expect_usage "--labels: region 'tc' is listed twice" --data "$T/d2.h5" --labels tc,wt,tc --logdir "$T/bad2"
expect_usage "--objective: expected mean or one of the trained regions (wt), got 'et'" --data "$T/d2.h5" --objective et --logdir "$T/bad3"
expect_usage "--labels wt,tc,et: needs --data" --labels regions --logdir "$T/bad4"
expect_usage "is a 2D UNet, filters 16, depth 3, labels wt,tc,et" --resume "$T/r2/checkpoint_latest.h5" --labels wt --epochs 7
[ ! -e "$T/bad1" ] && [ ! -e "$T/bad2" ] || fail "a refused run left a run directory"
echo "region training ok"
