#!/usr/bin/env bash
# unet_predict end to end, as a user runs it:
#   1. train a small 3D and a 2D UNet on a synthetic MSD dataset (unet_prepare, unet_train);
#   2. --source_dir and --dataset --split test agree case by case, and the test split's
#      whole-volume Dice is above a floor (0.5; the model reaches about 0.8 here);
#   2b. whole-volume validation during training (--val_whole_every 10) is unet_predict's score of
#      the validation split: the same mean Dice and HD95; checkpoint_best.h5 is written only on
#      the epochs that scored the volumes and when they improved; TensorBoard (read back by
#      TensorBoard itself) has val/dice and val/hd95 from the volumes, the patches as val_patch/;
#      a 3D --tune search ranks its trials by that whole-volume Dice;
#   2c. the checkpoint records the preprocessing: a scan is segmented the same with the dataset
#      file moved away;
#   3. the same cases under mpirun -np 2 give the same metrics.csv as one process;
#   4. geometry: nibabel's own test files (big-endian int16 given an scl_slope, oblique affines,
#      NIfTI-2, anisotropic voxels, sform-only) and 155-slice anisotropic MSD-like cases come back
#      as masks of the source's exact shape with the source's header (affine, qform/sform and their
#      codes, pixdim, units, byte order, NIfTI version), read back by nibabel; the cropped slices
#      are background; the 2D model's masks too;
#   5. bad input: each ends with one line naming the flag or file, exit 2 (damaged data found only
#      while reading: exit 1), and no file under a final name for a case that failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BIN=$(pwd)/$BUILD/bin
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fail() { echo "FAIL: $*"; exit 1; }
"$PY" -c 'import nibabel, numpy' 2>/dev/null || scripts/install_deps.sh >/dev/null
TBPY=$(scripts/tensorboard_venv.sh "$BUILD" | tail -1) || fail "cannot install TensorBoard (scripts/tensorboard_venv.sh)"
for b in unet_prepare unet_train unet_predict; do [ -x "$BIN/$b" ] || fail "$BIN/$b missing (make)"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/predict.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"

# ---- 1. data and models
"$BIN/unet_prepare" --synthetic 10 --output_dir syn --synthetic_size 48,64,64 >/dev/null 2>&1
"$BIN/unet_prepare" --source_dir syn --output syn3d.h5 --mode 3d >/dev/null 2>&1
"$BIN/unet_prepare" --source_dir syn --output syn2d.h5 --mode 2d --slice_size 32 >/dev/null 2>&1
"$BIN/unet_train" --dims 3 --data syn3d.h5 --patch 32,32,32 --input_size 32,32,32 --filters 8 --depth 2 \
    --batch_size 2 --epochs 40 --norm batch --learningrate 0.003 --val_whole_every 10 --logdir run3d >train3d.log 2>&1 || { tail train3d.log; fail "3D training"; }
"$BIN/unet_train" --dims 2 --data syn2d.h5 --input_size 32,32 --filters 8 --depth 2 --batch_size 8 --epochs 4 \
    --norm batch --learningrate 0.003 --logdir run2d >train2d.log 2>&1 || { tail train2d.log; fail "2D training"; }
CK=run3d/checkpoint_best.h5

# ---- 2. --source_dir vs --dataset, and the Dice floor
"$BIN/unet_predict" --checkpoint $CK --source_dir syn --list imagesTr --output_dir p_src >p_src.log 2>&1 || { cat p_src.log; fail "--source_dir"; }
"$BIN/unet_predict" --checkpoint $CK --dataset syn3d.h5 --split test --output_dir p_ds --probabilities >p_ds.log 2>&1 || { cat p_ds.log; fail "--dataset"; }
grep -q "^WT: Dice mean" p_src.log || fail "no summary line in: $(cat p_src.log)"
"$PY" - <<'EOF' || fail "source_dir and dataset predictions disagree"
import csv, math
src = {r["case"]: r for r in csv.DictReader(open("p_src/metrics.csv"))}
ds = list(csv.DictReader(open("p_ds/metrics.csv")))
assert len(src) == 10, "expected 10 scored cases, got %d" % len(src)
assert ds, "no test cases scored"
for r in ds:
    s = src[r["case"]]
    for k in ("dice", "hd95_mm", "sensitivity", "specificity", "predicted_ml", "true_ml"):
        assert abs(float(s[k]) - float(r[k])) <= 1e-4 * max(1, abs(float(r[k]))), (r["case"], k, s[k], r[k])
    print("case %s: Dice %s HD95 %s mm both ways" % (r["case"], r["dice"], r["hd95_mm"]))
mean = sum(float(r["dice"]) for r in ds) / len(ds)
assert mean > 0.5, "test-split whole-volume Dice %.3f below the floor 0.5" % mean
print("test split whole-volume Dice %.3f (floor 0.5)" % mean)
EOF
[ -f p_ds/$(sed -n 2p p_ds/metrics.csv | cut -d, -f1)_prob.nii.gz ] || fail "--probabilities wrote no _prob file"

# ---- 2b. whole-volume validation in training
"$BIN/unet_predict" --checkpoint run3d/checkpoint_latest.h5 --dataset syn3d.h5 --split val --output_dir p_val \
    >p_val.log 2>&1 || { cat p_val.log; fail "--split val"; }
"$TBPY" - <<'EOF' || fail "whole-volume validation in training"
import csv, re, statistics
log = open("run3d/training.log").read().splitlines()
whole = [(int(m.group(1)), float(m.group(2)), float(m.group(3))) for m in
         (re.search(r"epoch (\d+)/40  val whole volumes dice ([\d.]+) hd95 ([\d.]+) mm", l) for l in log) if m]
assert [e for e, _, _ in whole] == [10, 20, 30, 40], "whole-volume validation epochs: %s" % whole
assert any("val patches loss" in l for l in log), "the patch validation is not named as such"
# checkpoint_best only right after a whole-volume line that improved on the best so far
best, expect, seen = -1.0, [], []
for i, l in enumerate(log):
    m = re.search(r"val whole volumes dice ([\d.]+)", l)
    if m and float(m.group(1)) > best:
        best = float(m.group(1))
        expect.append(i + 1)
    if "checkpoint_best.h5" in l:
        seen.append(i)
assert seen == expect, "checkpoint_best written at log lines %s, expected %s" % (seen, expect)
rows = list(csv.DictReader(open("p_val/metrics.csv")))
assert rows, "unet_predict scored no validation case"
dice = statistics.mean(float(r["dice"]) for r in rows)
hd95 = statistics.mean(float(r["hd95_mm"]) for r in rows)
_, tdice, thd95 = whole[-1]
assert abs(dice - tdice) <= 1e-4 and abs(hd95 - thd95) <= 0.01, ("training", tdice, thd95, "unet_predict", dice, hd95)
print("last whole-volume validation: Dice %.4f HD95 %.2f mm; unet_predict --split val: %.4f %.2f mm" % (tdice, thd95, dice, hd95))
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator("run3d/validation")
acc.Reload()
tags = acc.Tags()["scalars"]
for t in ("val/dice", "val/hd95", "val_patch/dice", "val_patch/loss"):
    assert t in tags, "no %s in %s" % (t, tags)
steps = [e.step for e in acc.Scalars("val/hd95")]
assert len(steps) == 4 and len(acc.Scalars("val_patch/dice")) == 40, (steps, len(acc.Scalars("val_patch/dice")))
assert abs(acc.Scalars("val/dice")[-1].value - tdice) <= 1e-4, (acc.Scalars("val/dice")[-1].value, tdice)
assert "val/loss" not in tags, "val/loss would be the patches' loss: expected it as val_patch/loss"
print("TensorBoard: val/dice and val/hd95 at steps %s, val_patch/* every epoch" % steps)
EOF

# the tuner's objective is the trials' whole-volume Dice (every epoch under --tune)
cat > tune3d.ini <<'INI'
[search]
learningrate = choice(0.003, 0.0001)
[fixed]
dims = 3
patch = 32,32,32
filters = 4
depth = 2
batch_size = 2
epochs = 2
print_every = 1000
image_every = 0
INI
"$BIN/unet_train" --tune tune3d.ini --data syn3d.h5 --logdir tune3d >tune3d.log 2>&1 || { tail tune3d.log; fail "3D tuning"; }
"$PY" - <<'EOF' || fail "the tuner's objective is not the whole-volume Dice"
import json, re
state = json.load(open("tune3d/tune/state.json"))
assert len(state["trials"]) == 2, state
for t in state["trials"]:
    log = open("tune3d/tune/trial_%d/training.log" % t["id"]).read()
    whole = [float(x) for x in re.findall(r"val whole volumes dice ([\d.]+)", log)]
    assert len(whole) == 2 and len(t["dice"]) == 2, (whole, t["dice"])
    assert all(abs(a - b) <= 5e-5 for a, b in zip(whole, t["dice"])), (whole, t["dice"])
print("tuner: trials ranked by their whole-volume Dice %s" % [t["dice"] for t in state["trials"]])
EOF

# ---- 2c. the checkpoint alone: its preprocessing record segments a scan with the dataset gone
mv syn3d.h5 syn3d.away.h5
"$BIN/unet_predict" --checkpoint $CK --input syn/imagesTr/BRATS_001.nii.gz --output_dir p_alone >p_alone.log 2>&1 ||
  { mv syn3d.away.h5 syn3d.h5; cat p_alone.log; fail "--input with the dataset file moved away"; }
mv syn3d.away.h5 syn3d.h5
grep -q "^preprocessing: 3D volumes on 48x64x64" p_alone.log || fail "preprocessing line: $(grep preprocessing p_alone.log)"
cmp p_alone/BRATS_001.nii.gz p_src/BRATS_001.nii.gz || fail "the checkpoint's record gives another mask than the dataset's attributes"

# ---- 3. under mpirun: the same rows
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$BIN/unet_predict" --checkpoint $CK \
    --source_dir syn --list imagesTr --output_dir p_mpi >p_mpi.log 2>&1 || { cat p_mpi.log; fail "mpirun -np 2"; }
cmp p_src/metrics.csv p_mpi/metrics.csv || fail "mpirun -np 2 metrics differ from one process"
grep -q "rank 1 " p_mpi.log || fail "rank 1 did no case: $(cat p_mpi.log)"
for f in p_src/*.nii.gz; do cmp "$f" "p_mpi/$(basename "$f")" || fail "mask $(basename "$f") differs under mpirun"; done

# ---- 4. geometry
"$BIN/unet_prepare" --synthetic 2 --output_dir syn155 --synthetic_size 155,56,64 >/dev/null 2>&1
mkdir -p geo
"$PY" - <<'EOF' || fail "could not build the geometry inputs"
import glob, os
import nibabel as nib, numpy as np
data = "/usr/lib/python3/dist-packages/nibabel/tests/data"
made = []
for name in ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "functional.nii",
             "reoriented_anat_moved.nii", "standard.nii.gz"]:
    img = nib.load(os.path.join(data, name))
    vol = np.asarray(img.dataobj)
    vol = vol[..., 0] if vol.ndim == 4 else vol
    hdr = img.header.copy()
    # Four channels of the scan (the model's modalities); values turned into floats that need an
    # scl_slope / scl_inter when the stored type is an integer, so the reader's scaling is used.
    four = np.stack([vol * (0.37 + 0.1 * c) + 5.0 for c in range(4)], axis=-1).astype(np.float32)
    hdr.set_data_shape(four.shape)
    out = type(img)(four, None, hdr)
    out.to_filename("geo/" + name.replace(".nii.gz", ".nii").replace(".nii", "_4ch.nii.gz"))
    made.append(name)
# 155-slice MSD-like cases with anisotropic voxels and an oblique affine, units in microns for one.
for i, f in enumerate(sorted(glob.glob("syn155/imagesTr/*.nii.gz"))):
    for kind in ("imagesTr", "labelsTr"):
        p = f.replace("imagesTr", kind)
        img = nib.load(p)
        a = np.diag([0.9, 1.2, 2.5, 1.0])
        c, s = np.cos(0.2), np.sin(0.2)
        a[:3, :3] = a[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        a[:3, 3] = [-40.0, 12.5, -70.0]
        out = nib.Nifti1Image(np.asarray(img.dataobj), a, img.header)
        out.set_qform(a, code=1)
        out.set_sform(a, code=4)
        if i == 1:
            out.header.set_xyzt_units("micron", "sec")
            out.header.set_zooms(tuple(z * 1000 for z in out.header.get_zooms()))
            q = a.copy(); q[:3, :3] *= 1000; q[:3, 3] *= 1000
            out.set_qform(q, code=1); out.set_sform(q, code=4)
        out.to_filename(p)
print("geometry inputs:", made)
EOF
args=()
for f in geo/*_4ch.nii.gz; do args+=(--input "$f"); done
"$BIN/unet_predict" --checkpoint $CK "${args[@]}" --output_dir p_geo --probabilities >p_geo.log 2>&1 || { cat p_geo.log; fail "geometry inputs"; }
"$BIN/unet_predict" --checkpoint $CK --source_dir syn155 --list imagesTr --output_dir p_155 >p_155.log 2>&1 || { cat p_155.log; fail "155-slice cases"; }
"$BIN/unet_predict" --checkpoint run2d/checkpoint_best.h5 --source_dir syn155 --list imagesTr --output_dir p_2d --sw_batch 16 >p_2d.log 2>&1 || { cat p_2d.log; fail "2D model on 155-slice cases"; }
"$PY" - <<'EOF' || fail "geometry"
import glob, os
import nibabel as nib, numpy as np
pairs = [(f, "p_geo/" + os.path.basename(f)) for f in sorted(glob.glob("geo/*_4ch.nii.gz"))]
pairs += [(f, d + "/" + os.path.basename(f)) for d in ("p_155", "p_2d") for f in sorted(glob.glob("syn155/imagesTr/*.nii.gz"))]
pairs += [(f, "p_geo/" + os.path.basename(f).replace(".nii.gz", "_prob.nii.gz")) for f in sorted(glob.glob("geo/*_4ch.nii.gz"))]
assert len(pairs) >= 16, pairs
keys = ["qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z",
        "srow_x", "srow_y", "srow_z", "xyzt_units", "descrip"]
for src, out in pairs:
    a, b = nib.load(src), nib.load(out)
    ha, hb = a.header, b.header
    assert type(a) is type(b), (out, type(a), type(b))
    assert b.shape == a.shape[:3], (out, b.shape, a.shape)
    assert np.array_equal(a.affine, b.affine), (out, a.affine, b.affine)
    for k in keys:
        assert np.array_equal(ha[k], hb[k]), (out, k, ha[k], hb[k])
    assert np.array_equal(ha["pixdim"][:4], hb["pixdim"][:4]), (out, ha["pixdim"], hb["pixdim"])
    assert ha.endianness == hb.endianness, (out, ha.endianness, hb.endianness)
    want = np.float32 if out.endswith("_prob.nii.gz") else np.uint8
    assert hb.get_data_dtype().newbyteorder("=") == np.dtype(want), (out, hb.get_data_dtype())
    m = np.asarray(b.dataobj)
    if "syn155" in src:
        assert m[:, :, [0, 1, 154]].max() == 0, (out, "cropped slices are not background")
        assert m.max() == 1, (out, "empty mask on a tumour case")
    print("%-40s %s %s %s ok" % (out, b.shape, hb.get_data_dtype(), ha.endianness))
EOF
"$PY" - <<'EOF' || fail "anisotropic metrics"
import csv
rows = list(csv.DictReader(open("p_155/metrics.csv")))
assert len(rows) == 2, rows
for r in rows:
    # volumes in ml from the header's voxel size (0.9 x 1.2 x 2.5 mm; the second case in microns)
    assert float(r["true_ml"]) > 0 and float(r["hd95_mm"]) >= 0, r
v = [float(r["true_ml"]) for r in rows]
print("155-slice cases: true volumes %s ml, Dice %s" % (v, [r["dice"] for r in rows]))
EOF

# ---- 5. bad input: exit code, one line naming the flag or file, nothing left under a final name
expect() {  # expect CODE PATTERN -- command...
  local code=$1 pat=$2; shift 3
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [ "$rc" -eq "$code" ] || fail "expected exit $code, got $rc: $* -> $out"
  echo "$out" | grep -q -- "$pat" || fail "expected '$pat' in: $out"
  [ "$(echo "$out" | grep -c '^unet_predict.*\(error: \|see --help\)')" -eq 1 ] || fail "expected one error line, got: $out"
  echo "exit $rc: $(echo "$out" | grep '^unet_predict.*\(error: \|see --help\)')"
}
mkdir -p bad && : > afile
expect 2 "no such readable file" -- "$BIN/unet_predict" --checkpoint nothing.h5 --input geo/anatomical_4ch.nii.gz --output_dir bad
expect 2 "\-\-checkpoint: .*afile" -- "$BIN/unet_predict" --checkpoint afile --input geo/anatomical_4ch.nii.gz --output_dir bad
expect 2 "2D samples with 4 channels; the checkpoint is a 3D model" -- "$BIN/unet_predict" --checkpoint $CK --dataset syn2d.h5 --output_dir bad
expect 2 "has 2 channels; the model expects 4" -- "$BIN/unet_predict" --checkpoint $CK --input /usr/lib/python3/dist-packages/nibabel/tests/data/example4d.nii.gz --output_dir bad
expect 2 "missing.nii.gz: file not found" -- "$BIN/unet_predict" --checkpoint $CK --input missing.nii.gz --output_dir bad
expect 2 "\-\-output_dir" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --output_dir afile/sub
expect 2 "\-\-roi: every size must be a positive multiple of 2^depth = 4" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --roi 30,32,32 --output_dir bad
expect 2 "\-\-roi: expected 3 sizes" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --roi 32,32 --output_dir bad
expect 2 "\-\-overlap" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --overlap 1 --output_dir bad
expect 2 "\-\-blend" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --blend box --output_dir bad
expect 2 "\-\-empty" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --empty skip --output_dir bad
expect 2 "give exactly one of them" -- "$BIN/unet_predict" --checkpoint $CK --input geo/anatomical_4ch.nii.gz --source_dir syn --output_dir bad
expect 2 "\-\-split: syn3d.h5 has no 'nope' split" -- "$BIN/unet_predict" --checkpoint $CK --dataset syn3d.h5 --split nope --output_dir bad
# a case whose data is cut short: found while reading (exit 1), after a good case; the damaged case
# leaves no mask and the run no metrics.csv
cp syn/imagesTr/BRATS_001.nii.gz bad_in_a.nii.gz
head -c 200000 syn/imagesTr/BRATS_002.nii.gz > bad_in_b.nii.gz
expect 1 "bad_in_b.nii.gz: truncated" -- "$BIN/unet_predict" --checkpoint $CK --input bad_in_a.nii.gz --input bad_in_b.nii.gz --output_dir bad
[ -f bad/bad_in_a.nii.gz ] || fail "the good case before the damaged one has no mask"
[ ! -e bad/bad_in_b.nii.gz ] && [ ! -e bad/metrics.csv ] || fail "output left for the damaged case: $(ls bad)"
ls bad | grep -q '\.tmp$' && fail "temporary files left: $(ls bad)"

# ---- a test split costs the memory of its largest case: 4 cases (one whole-volume window each)
# peak within 4% of one (glibc's heap kept the freed plan and volumes of earlier cases: 9% more)
"$BIN/unet_prepare" --synthetic 4 --output_dir big --synthetic_size 96,128,128 >/dev/null 2>&1
peak() { "$BIN/unet_predict" --checkpoint $CK "$@" --roi 96,128,128 --output_dir "peak$#" | sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p'; }
one=$(peak --input big/imagesTr/BRATS_001.nii.gz)
four=$(peak $(for f in big/imagesTr/*.nii.gz; do echo --input "$f"; done))
[ -n "$one" ] && [ -n "$four" ] || fail "no peak RSS line"
[ $((four * 100)) -le $((one * 104)) ] || fail "4 cases peaked at $four MiB, one at $one MiB"
echo "peak RSS: one case $one MiB, four cases $four MiB"
echo "predict: all checks passed"
