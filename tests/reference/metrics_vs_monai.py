"""Our case scores (tests/e2e/metrics_score.cpp over unet::score_case) against MONAI 1.3.2.

    python metrics_vs_monai.py METRICS_SCORE WORKDIR [--swap_spacing]

Generates masks (random voxels, smooth blobs, shifted ellipsoids, single voxels, masks touching the
array's edge, empty masks, MSD label maps for the WT/TC/ET regions) in several shapes and
anisotropic spacings, scores each under both empty rules with our program, and compares:
- HD95 with monai.metrics.compute_hausdorff_distance(percentile=95, spacing=..., directed=False)
  within 1e-3 mm; where a mask is empty MONAI gives NaN, which is our value under --empty ignore;
  under --empty brats the expected value is the BraTS convention (0 both empty, 374 one empty).
- Dice with monai.metrics.compute_dice(ignore_empty=True for ignore, False for brats) within 1e-6.
- Sensitivity, specificity and volumes with numpy counts (1e-9).
Ends with one summary line; exit 1 on any mismatch or when fewer cases than generated were compared.
--swap_spacing hands MONAI the spacing in x, y, z order instead: the check must then fail (it is how
the test shows it can).
"""
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import scipy.ndimage as ndi
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

HD_TOL, DICE_TOL, COUNT_TOL = 1e-3, 1e-6, 1e-9
BRATS_EMPTY_HD95 = 374.0
REGIONS = {"wt": [("WT", [1, 2, 3])], "brats": [("WT", [1, 2, 3]), ("TC", [2, 3]), ("ET", [3])]}

metrics_score, work = sys.argv[1], sys.argv[2]
swap = "--swap_spacing" in sys.argv[3:]
rng = np.random.default_rng(20261202)


def blob(shape, threshold, sigma):
    """Smoothed noise above a threshold: irregular, multi-component masks with interiors."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return (f > threshold * f.std()).astype(np.uint8)


def ellipsoid(shape, centre, radii):
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    q = sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), centre, radii))
    return (q <= 1).astype(np.uint8)


def single(shape):
    m = np.zeros(shape, np.uint8)
    m[tuple(int(rng.integers(n)) for n in shape)] = 1
    return m


def label_map(shape):
    """MSD numbering: oedema 1 around non-enhancing 2 around enhancing 3 (nested blobs)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    f /= f.std()
    m = np.zeros(shape, np.uint8)
    m[f > 0.3] = 1
    m[f > 1.0] = 2
    m[f > 1.6] = 3
    return m


shapes = [(16, 20, 24), (9, 31, 17), (24, 24, 24), (1, 40, 36), (5, 12, 50)]
spacings = [(1.0, 1.0, 1.0), (2.2, 0.5, 1.0), (1.0, 0.5, 2.2), (0.8, 1.3, 3.0)]
cases = []  # (name, pred, truth, spacing, regions)
for si, shape in enumerate(shapes):
    for pi, sp in enumerate(spacings):
        tag = f"s{si}p{pi}"
        cases.append((f"{tag}_random", (rng.random(shape) < 0.2).astype(np.uint8),
                      (rng.random(shape) < 0.3).astype(np.uint8), sp, "wt"))
        cases.append((f"{tag}_blobs", blob(shape, 0.5, 1.5), blob(shape, 0.3, 2.0), sp, "wt"))
        c = [n / 2 for n in shape]
        r = [max(n / 3, 1.0) for n in shape]
        cases.append((f"{tag}_ellipsoids", ellipsoid(shape, c, r),
                      ellipsoid(shape, [v + 1.3 for v in c], [v * 0.8 for v in r]), sp, "wt"))
        cases.append((f"{tag}_voxels", single(shape), single(shape), sp, "wt"))
        cases.append((f"{tag}_voxel_vs_blob", single(shape), blob(shape, 0.4, 1.5), sp, "wt"))
        full = np.ones(shape, np.uint8)  # touches every edge: the array's border is surface
        cases.append((f"{tag}_full_vs_blob", full, blob(shape, 0.0, 1.0), sp, "wt"))
        cases.append((f"{tag}_labels", label_map(shape), label_map(shape), sp, "brats"))
        if pi == 0:
            z = np.zeros(shape, np.uint8)
            cases.append((f"{tag}_both_empty", z, z.copy(), sp, "wt"))
            cases.append((f"{tag}_empty_pred", z, blob(shape, 0.5, 1.5), sp, "wt"))
            cases.append((f"{tag}_empty_truth", blob(shape, 0.5, 1.5), z, sp, "wt"))
            et_only_truth = label_map(shape)
            et_only_truth[et_only_truth == 3] = 2  # ET empty in truth, present in prediction
            cases.append((f"{tag}_labels_no_et", label_map(shape), et_only_truth, sp, "brats"))

os.makedirs(work, exist_ok=True)
lines = []
for name, pred, truth, sp, regions in cases:
    assert pred.shape == truth.shape
    pp, tp = os.path.join(work, name + ".pred.raw"), os.path.join(work, name + ".truth.raw")
    np.ascontiguousarray(pred, np.uint8).tofile(pp)
    np.ascontiguousarray(truth, np.uint8).tofile(tp)
    for rule in ("brats", "ignore"):
        lines.append(f"{name}:{rule} {pred.shape[0]} {pred.shape[1]} {pred.shape[2]} {sp[0]!r} {sp[1]!r} {sp[2]!r} "
                     f"{regions} {rule} {pp} {tp}\n")
manifest = os.path.join(work, "manifest.txt")
with open(manifest, "w") as f:
    f.writelines(lines)
run = subprocess.run([metrics_score, manifest], capture_output=True, text=True)
if run.returncode != 0:
    print(f"metrics_score exited {run.returncode}: {run.stderr.strip()}")
    sys.exit(1)
ours = {}
for line in run.stdout.splitlines():
    f = line.split()
    ours[(f[0], f[1])] = [float(v) for v in f[2:8]] + [int(f[8]), int(f[9])]


def same(a, b, tol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


failures, compared, hd_compared = [], 0, 0
max_dd = max_dh = max_dc = 0.0
for name, pred, truth, sp, regions in cases:
    monai_sp = list(sp[::-1]) if swap else list(sp)
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000.0
    for region, labels in REGIONS[regions]:
        p, t = np.isin(pred, labels), np.isin(truth, labels)
        yp = torch.from_numpy(p[None, None].astype(np.float32))
        yt = torch.from_numpy(t[None, None].astype(np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI warns about every empty mask
            hd_monai = float(compute_hausdorff_distance(yp, yt, include_background=True, percentile=95,
                                                        spacing=monai_sp)[0, 0])
            dice_ignore = float(compute_dice(yp, yt, include_background=True, ignore_empty=True)[0, 0])
            dice_brats = float(compute_dice(yp, yt, include_background=True, ignore_empty=False)[0, 0])
        tp_, fp_ = int((p & t).sum()), int((p & ~t).sum())
        fn_, tn_ = int((~p & t).sum()), int((~p & ~t).sum())
        sens = tp_ / (tp_ + fn_) if tp_ + fn_ else 1.0
        spec = tn_ / (tn_ + fp_) if tn_ + fp_ else 1.0
        for rule in ("brats", "ignore"):
            key = (f"{name}:{rule}", region)
            if key not in ours:
                failures.append(f"{key}: no output from metrics_score")
                continue
            dice, hd, o_sens, o_spec, pml, tml, t_empty, p_empty = ours[key]
            if rule == "brats":
                want_dice = dice_brats
                if not p.any() and not t.any():
                    want_hd = 0.0
                elif not p.any() or not t.any():
                    want_hd = BRATS_EMPTY_HD95
                else:
                    want_hd = hd_monai
            else:
                want_dice, want_hd = dice_ignore, hd_monai
            checks = [("dice", dice, want_dice, DICE_TOL), ("hd95", hd, want_hd, HD_TOL),
                      ("sensitivity", o_sens, sens, COUNT_TOL), ("specificity", o_spec, spec, COUNT_TOL),
                      ("predicted_ml", pml, (tp_ + fp_) * voxel_ml, COUNT_TOL),
                      ("true_ml", tml, (tp_ + fn_) * voxel_ml, COUNT_TOL),
                      ("truth_empty", t_empty, int(not t.any()), 0), ("prediction_empty", p_empty, int(not p.any()), 0)]
            for what, got, want, tol in checks:
                if not same(float(got), float(want), tol):
                    failures.append(f"{key} {what}: ours {got!r}, reference {want!r}")
            compared += 1
            if p.any() and t.any():
                hd_compared += 1
                max_dh = max(max_dh, abs(hd - want_hd))
            if not math.isnan(want_dice):
                max_dd = max(max_dd, abs(dice - want_dice))
            max_dc = max(max_dc, abs(o_sens - sens), abs(o_spec - spec))

expected = sum(len(REGIONS[r]) for *_, r in cases) * 2
for msg in failures[:20]:
    print("MISMATCH " + msg)
print(f"metrics_vs_monai: {len(cases)} cases, {compared}/{expected} region scores compared "
      f"({hd_compared} with a MONAI HD95 of two non-empty masks), {len(failures)} mismatches; "
      f"max |dDice| {max_dd:.3g}, max |dHD95| {max_dh:.3g} mm, max |d sens/spec| {max_dc:.3g}")
if failures or compared != expected or hd_compared == 0:
    sys.exit(1)
