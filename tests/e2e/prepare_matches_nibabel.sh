#!/usr/bin/env bash
# unet_prepare's output is the documented transform of the input voxels, recomputed independently
# with nibabel, numpy and h5py: NIfTI (int16 with scl_slope, from our synthetic writer, and a
# float32 case written by nibabel itself) -> channels first -> depth 155 cropped to [2, 154) ->
# per-channel z-score over brain voxels -> HDF5, the labels 0-3 kept as they are (format 2,
# mask_labels "msd"), and the label names of dataset.json recorded.
set -u
B=${BUILD:-build}/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
$PY -c "import nibabel, h5py" 2>/dev/null || scripts/install_deps.sh >/dev/null
"$B"/unet_prepare --synthetic 3 --output_dir "$T/msd" --synthetic_size 155,36,40 --seed 5 >/dev/null 2>&1 || exit 1
# Add a case written by nibabel (float32, big-endian) to the same dataset.
$PY - "$T/msd" <<'PY' || exit 1
import json, sys, numpy as np, nibabel as nib
d = sys.argv[1]
rng = np.random.default_rng(0)
img = rng.normal(100, 20, size=(40, 36, 155, 4)).astype(">f4")
img[:5] = 0                                   # background
lab = np.zeros((40, 36, 155), dtype=np.uint8)
lab[10:20, 10:20, 50:60] = 2
lab[12:14, 12:14, 52:54] = 3
nib.save(nib.Nifti1Image(img, np.eye(4)), d + "/imagesTr/NIB_001.nii.gz")
nib.save(nib.Nifti1Image(lab, np.eye(4)), d + "/labelsTr/NIB_001.nii")
meta = json.load(open(d + "/dataset.json"))
meta["training"].append({"image": "./imagesTr/NIB_001.nii.gz", "label": "./labelsTr/NIB_001.nii"})
json.dump(meta, open(d + "/dataset.json", "w"))
PY
"$B"/unet_prepare --source_dir "$T/msd" --output "$T/b.h5" --mode 3d --split 0.5,0.25,0.25 >/dev/null 2>&1 || exit 1
$PY - "$T/msd" "$T/b.h5" <<'PY'
import sys, numpy as np, nibabel as nib, h5py
d, h5 = sys.argv[1], sys.argv[2]
f = h5py.File(h5, "r")
# string attributes are fixed-length UTF-8: h5py gives bytes
attrs = {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
assert attrs["format_version"] == 2 and attrs["layout"] == "NCDHW", attrs
assert attrs["mask_labels"] == "msd", attrs
import json
names = json.loads(attrs["labels"])
assert names == json.load(open(d + "/dataset.json"))["labels"], names
seen = set()
checked = 0
for split in ("train", "val", "test"):
    if split not in f:
        continue
    for i, cid in enumerate(f[split]["case_ids"].asstr()[:]):
        img = np.asarray(nib.load(f"{d}/imagesTr/{cid}.nii.gz").get_fdata(), dtype=np.float64)
        lab_path = f"{d}/labelsTr/{cid}.nii.gz" if not cid.startswith("NIB") else f"{d}/labelsTr/{cid}.nii"
        lab = np.asarray(nib.load(lab_path).get_fdata())
        if img.ndim == 3:
            img = img[..., None]
        x = np.transpose(img, (3, 2, 1, 0))[:, 2:-1]           # C, D, H, W; depth [2, 154)
        y = np.transpose(lab, (2, 1, 0))[2:-1]
        brain = (x != 0).any(axis=0)
        exp = np.zeros_like(x)
        for c in range(x.shape[0]):
            v = x[c][brain]
            exp[c][brain] = (v - v.mean()) / v.std()
        ours = f[split]["images"][i]
        mask = f[split]["masks"][i][0]
        err = np.abs(ours - exp).max()
        assert err < 2e-4, (cid, "image", err)
        assert (mask == y).all(), (cid, "mask")
        seen |= set(np.unique(mask).tolist())
        checked += 1
assert checked == 4, checked
assert seen == {0, 1, 2, 3}, seen
print("checked", checked, "cases")
PY
