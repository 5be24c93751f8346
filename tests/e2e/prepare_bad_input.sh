#!/usr/bin/env bash
# unet_prepare on broken inputs: one line naming the file and what was expected, exit 1, and no
# output file left behind. Also Intel's npy import end to end.
set -u
B=${BUILD:-build}/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }
$PY -c "import nibabel" 2>/dev/null || scripts/install_deps.sh >/dev/null

fresh() {  # a small valid MSD folder in $T/$1
  rm -rf "$T/$1"
  "$B"/unet_prepare --synthetic 2 --output_dir "$T/$1" --synthetic_size 16,32,32 >/dev/null 2>&1 || fail "synthetic"
}
expect_fail() {  # expect_fail DIR "text"
  local msg rc
  msg=$("$B"/unet_prepare --source_dir "$T/$1" --output "$T/out.h5" 2>&1); rc=$?
  [ "$rc" -eq 1 ] || fail "$1: exit $rc (want 1): $msg"
  # Progress lines may come first (stderr is not a terminal here); the error is one line.
  [ "$(echo "$msg" | grep -c '^unet_prepare:')" -eq 1 ] || fail "$1: want one error line: $msg"
  echo "$msg" | grep '^unet_prepare:' | grep -q -- "$2" || fail "$1: message lacks '$2': $msg"
  [ ! -e "$T/out.h5" ] && [ ! -e "$T/out.h5.tmp" ] || fail "$1: output left behind"
}

fresh missing; rm "$T/missing/labelsTr/BRATS_002.nii.gz"
expect_fail missing "BRATS_002.nii.gz"

fresh badlabel
$PY - "$T/badlabel/labelsTr/BRATS_001.nii.gz" <<'PY'
import sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1]); d = np.asarray(img.dataobj).copy(); d[0, 0, 0] = 5
nib.save(nib.Nifti1Image(d.astype(np.uint8), img.affine), sys.argv[1])
PY
expect_fail badlabel "outside 0-3"

fresh shape
$PY - "$T/shape/labelsTr/BRATS_001.nii.gz" <<'PY'
import sys, numpy as np, nibabel as nib
nib.save(nib.Nifti1Image(np.zeros((32, 30, 16), np.uint8), np.eye(4)), sys.argv[1])
PY
expect_fail shape "differs from image shape"

fresh channels
$PY - "$T/channels/imagesTr/BRATS_002.nii.gz" <<'PY'
import sys, numpy as np, nibabel as nib
nib.save(nib.Nifti1Image(np.ones((32, 32, 16, 3), np.float32), np.eye(4)), sys.argv[1])
PY
expect_fail channels "expected 4 channels"

fresh notnifti; echo "hello" | gzip > "$T/notnifti/imagesTr/BRATS_001.nii.gz"
expect_fail notnifti "BRATS_001.nii.gz"

# Intel's npy files: N x H x W x C, masks N x H x W x 1.
mkdir -p "$T/npy"
$PY - "$T/npy" <<'PY'
import sys, numpy as np
d = sys.argv[1]; rng = np.random.default_rng(1)
for name, n in (("train", 6), ("test", 4)):
    np.save(f"{d}/imgs_{name}.npy", rng.normal(size=(n, 32, 32, 4)).astype(np.float32))
    np.save(f"{d}/msks_{name}.npy", (rng.random((n, 32, 32, 1)) > 0.8).astype(np.float32))
PY
out=$("$B"/unet_prepare --from_npy "$T/npy" --output "$T/npy.h5" --slice_size 32 2>/dev/null) || fail "npy import: $out"
echo "$out" | grep -q "6 train, 2 val, 2 test" || fail "npy summary: $out"
echo "$out" | grep -q "masks: binary (Intel's .npy files join the labels): the whole tumour only, --labels wt" \
  || fail "npy import does not say its masks are binary: $out"
# Intel's masks tell the whole tumour only: a region run stops with one line before training.
msg=$("$B"/unet_train --data "$T/npy.h5" --labels regions --epochs 1 --logdir "$T/npyrun" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "--labels regions on npy data exited $rc (want 2): $msg"
[ "$(echo "$msg" | grep -c .)" -eq 1 ] || fail "--labels regions on npy data: want one line: $msg"
echo "$msg" | grep -q -- "--labels wt,tc,et: $T/npy.h5 has binary tumour masks" || fail "npy region refusal: $msg"
$PY - "$T/npy" "$T/npy.h5" <<'PY' || fail "npy values"
import sys, numpy as np, h5py
d, h5 = sys.argv[1], sys.argv[2]
f = h5py.File(h5, "r")
x = np.load(f"{d}/imgs_train.npy"); y = np.load(f"{d}/msks_train.npy")
assert np.allclose(f["train/images"][:], np.transpose(x, (0, 3, 1, 2)), atol=1e-6)
assert (f["train/masks"][:] == np.transpose(y > 0.5, (0, 3, 1, 2))).all()
xt = np.load(f"{d}/imgs_test.npy")
assert np.allclose(f["test/images"][:], np.transpose(xt[2:], (0, 3, 1, 2)), atol=1e-6)
PY
rm "$T/npy/msks_test.npy"
msg=$("$B"/unet_prepare --from_npy "$T/npy" --output "$T/npy2.h5" 2>&1) && fail "missing npy accepted"
echo "$msg" | grep -q "msks_test.npy" || fail "missing npy message: $msg"
echo ok
