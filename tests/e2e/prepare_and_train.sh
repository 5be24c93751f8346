#!/usr/bin/env bash
# The data path end to end: a synthetic MSD dataset -> unet_prepare (3d and 2d) -> unet_train
# --data, plus unet_prepare's and the loader's bad-input messages.
set -u
B=${BUILD:-build}/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=2

"$B"/unet_prepare --synthetic 6 --output_dir "$T/msd" --synthetic_size 40,64,64 --seed 3 >/dev/null 2>&1 \
  || fail "synthetic dataset"
[ -f "$T/msd/dataset.json" ] || fail "no dataset.json"
out=$("$B"/unet_prepare --source_dir "$T/msd" --output "$T/b3.h5" --mode 3d --split 0.5,0.25,0.25 2>/dev/null) \
  || fail "prepare 3d: $out"
echo "$out" | grep -q "3 train, 2 val, 1 test" || fail "prepare 3d summary: $out"
[ -f "$T/b3.h5" ] && [ ! -e "$T/b3.h5.tmp" ] || fail "3d output missing or temporary file left"
out=$("$B"/unet_prepare --source_dir "$T/msd" --output "$T/b2.h5" --mode 2d --slice_size 32 2>/dev/null) \
  || fail "prepare 2d: $out"

out=$("$B"/unet_train --logdir "$T/run1" --data "$T/b2.h5" --dims 2 --filters 8 --depth 2 --batch_size 16 --epochs 2 --print_every 1000 2>&1) \
  || fail "train 2d: $out"
echo "$out" | grep -q "data wait" || fail "no data-wait share reported: $out"
out=$("$B"/unet_train --logdir "$T/run2" --data "$T/b3.h5" --dims 3 --patch 32,32,32 --filters 4 --depth 2 --batch_size 2 --epochs 1 \
      --augment 2>&1) || fail "train 3d: $out"

# unet_visualize: an animated GIF through the slices and one PNG slice.
"$B"/unet_visualize --dataset "$T/b3.h5" --sample 0 --out "$T/s.gif" >/dev/null || fail "visualize gif"
[ "$(head -c 6 "$T/s.gif")" = "GIF89a" ] || fail "not a GIF89a file"
frames=$(/usr/bin/python3 -c "import sys; d=open(sys.argv[1],'rb').read(); print(d.count(b'\x21\xf9\x04'))" "$T/s.gif")
[ "$frames" -eq 40 ] || fail "GIF has $frames frames, want 40 (one per axial slice)"
"$B"/unet_visualize --dataset "$T/b3.h5" --split val --sample 1 --slice 20 --out "$T/s.png" >/dev/null || fail "visualize png"
/usr/bin/python3 - "$T/s.png" <<'PY' || fail "PNG check"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", d[16:24])
assert (w, h) == (64 * 5, 64), (w, h)   # 4 channels + the overlay panel
PY
# With a checkpoint: a sixth panel with the model's prediction.
"$B"/unet_visualize --dataset "$T/b3.h5" --sample 0 --slice 20 --checkpoint "$T/run2/checkpoint_latest.h5" \
  --out "$T/p.png" >/dev/null || fail "visualize with checkpoint"
/usr/bin/python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(); assert struct.unpack('>II', d[16:24]) == (64 * 6, 64)" \
  "$T/p.png" || fail "prediction panel missing"

expect_error() {  # expect_error CODE "text" command...
  local code=$1 want=$2; shift 2
  local msg rc
  msg=$("$@" 2>&1); rc=$?
  [ "$rc" -eq "$code" ] || fail "$* exited $rc (want $code): $msg"
  [ "$(echo "$msg" | wc -l)" -eq 1 ] || fail "$*: more than one line: $msg"
  echo "$msg" | grep -q -- "$want" || fail "$*: message lacks '$want': $msg"
}
mkdir -p "$T/empty"
expect_error 1 "dataset.json" "$B"/unet_prepare --source_dir "$T/empty" --output "$T/x.h5"
expect_error 2 "--split" "$B"/unet_prepare --source_dir "$T/msd" --output "$T/x.h5" --split 0.5,0.5,0.5
expect_error 2 "--reshape" "$B"/unet_prepare --source_dir "$T/msd" --output "$T/x.h5" --reshape 64,64
expect_error 2 "--mode" "$B"/unet_prepare --source_dir "$T/msd" --output "$T/x.h5" --mode 4d
echo "not hdf5" > "$T/bogus.h5"
expect_error 1 "bogus.h5" "$B"/unet_train --logdir "$T/run3" --data "$T/bogus.h5" --dims 2
expect_error 2 "--patch" "$B"/unet_train --logdir "$T/run4" --data "$T/b3.h5" --dims 3 --patch 128,32,32 --filters 4 --depth 2
expect_error 2 "--dims" "$B"/unet_train --logdir "$T/run5" --data "$T/b3.h5" --dims 2 --filters 4 --depth 2
# flags that could not take effect are refused, not ignored
expect_error 2 "--input_size 64,64 cannot take effect: $T/b2.h5 gives samples of H x W = 32 x 32" "$B"/unet_train --logdir "$T/run6" --data "$T/b2.h5" --dims 2 --input_size 64,64 --filters 4 --depth 2
expect_error 2 "--patch: 3D only" "$B"/unet_train --logdir "$T/run7" --dims 2 --patch 32,32 --filters 4 --depth 2
# settings that do not fit the data leave no run directory behind
for d in run3 run4 run5 run6 run7; do [ ! -e "$T/$d" ] || fail "a refused run left $T/$d: $(ls -la "$T/$d")"; done
# a run that fails while training says why in its training.log too
"$B"/unet_train --logdir "$T/nan" --dims 2 --input_size 32,32 --filters 8 --depth 2 --learningrate 1e30 \
  --print_every 1000 >/dev/null 2>&1 && fail "a diverging run exited 0"
tail -1 "$T/nan/training.log" | grep -q "failed: loss is NaN at step" || fail "training.log does not end with the failure: $(tail -2 "$T/nan/training.log")"
[ ! -e "$T/x.h5" ] || fail "a failed conversion left $T/x.h5"
expect_error 2 "--checkpoint" "$B"/unet_visualize --dataset "$T/b3.h5" --checkpoint "$T/run1/checkpoint_latest.h5" --out "$T/z.gif"
expect_error 2 "--sample" "$B"/unet_visualize --dataset "$T/b3.h5" --sample 99 --out "$T/y.gif"
# the extension says the format: a .png is one --slice, a .gif every slice
expect_error 2 "--out: a .png holds one slice" "$B"/unet_visualize --dataset "$T/b3.h5" --out "$T/all.png"
expect_error 2 "--out: --slice writes one PNG" "$B"/unet_visualize --dataset "$T/b3.h5" --slice 3 --out "$T/one.gif"
expect_error 2 "--out: expected a file name ending in .gif" "$B"/unet_visualize --dataset "$T/b3.h5" --out "$T/x.jpg"
[ ! -e "$T/all.png" ] && [ ! -e "$T/one.gif" ] || fail "a refused --out left a file"
# One size order everywhere, D,H,W (issue 18): --synthetic_size and --reshape as unet_train's
# --patch and --input_size; NIfTI stores them as W,H,D (nibabel's shape), the prepared file as D,H,W.
out=$("$B"/unet_prepare --synthetic 2 --output_dir "$T/order" --synthetic_size 24,40,32 --seed 1 2>/dev/null) || fail "order: $out"
echo "$out" | grep -qF "wrote 2 synthetic cases (D x H x W = 24 x 40 x 32)" || fail "synthetic shape line: $out"
out=$("$B"/unet_prepare --source_dir "$T/order" --output "$T/order.h5" --mode 3d --reshape 16,32,24 --split 0.5,0.5,0 2>/dev/null) \
  || fail "order prepare: $out"
echo "$out" | grep -qF "samples of D x H x W = 16 x 32 x 24" || fail "prepared shape line: $out"
/usr/bin/python3 - "$T/order" "$T/order.h5" <<'PY' || fail "size order"
import sys, nibabel as nib, h5py
assert nib.load(sys.argv[1] + "/imagesTr/BRATS_001.nii.gz").shape == (32, 40, 24, 4)   # x, y, z, channel
assert h5py.File(sys.argv[2], "r")["train/images"].shape[2:] == (16, 32, 24)
PY
out=$("$B"/unet_train --data "$T/order.h5" --dims 3 --input_size 16,32,24 --filters 4 --depth 2 --batch_size 1 --steps 1 \
      --logdir "$T/order_run" 2>&1) || fail "--input_size D,H,W of the data refused: $out"
grep -qF "samples of D x H x W = 16 x 32 x 24" "$T/order_run/training.log" || fail "training.log shape: $(grep data: "$T/order_run/training.log")"
# GIFs and PNGs get the same permissions (giflib's own open would make the GIF 0600)
[ "$(stat -c %a "$T/s.gif")" = "$(stat -c %a "$T/s.png")" ] || fail "GIF mode $(stat -c %a "$T/s.gif"), PNG $(stat -c %a "$T/s.png")"
echo ok
