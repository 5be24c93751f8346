#!/usr/bin/env python3
"""Compares our sliding-window inference (tests/reference/sliding_window_dump.cpp) with MONAI's
sliding_window_inference on the PyTorch mirror of our UNet (tests/reference/torch_unet.py) loaded
with the same weights.

  python sliding_window_vs_monai.py DUMP_DIR [--tol 1e-4]

For every case in DUMP_DIR/cases.txt: MONAI with the same roi, overlap, blend mode (sigma_scale
0.125) and sw_batch_size; --mirror cases wrap the predictor so that every window is also run
flipped along each combination of spatial axes and the flipped-back outputs are averaged (what
our --mirror does per window). Also: a window covering the whole volume equals one plain forward.
Prints one line per comparison; exit 0 when all are within tol, 1 otherwise, 2 when nothing was
compared.
"""
import argparse
import itertools
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    cfg = dict(line.split() for line in open(os.path.join(a.dir, "config.txt")))
    model = torch_unet.build_model(cfg).double().eval()
    tensors = {}
    for f in os.listdir(a.dir):
        for prefix in ("param.", "buffer."):
            if f.startswith(prefix):
                tensors[f[len(prefix):-4]] = torch.from_numpy(np.load(os.path.join(a.dir, f)).astype(np.float64))
    torch_unet.load_unet_state(model, tensors)
    x = torch.from_numpy(np.load(os.path.join(a.dir, "input.npy")).astype(np.float64))
    dims = int(cfg["dims"])

    def plain(w):
        with torch.no_grad():
            return model(w)

    def mirrored(w):
        axes = list(range(2, 2 + dims))
        outs = []
        for k in range(len(axes) + 1):
            for flip in itertools.combinations(axes, k):
                f = list(flip)
                y = plain(torch.flip(w, f) if f else w)
                outs.append(torch.flip(y, f) if f else y)
        return sum(outs) / len(outs)

    compared, failed = 0, 0
    outputs = {}
    for line in open(os.path.join(a.dir, "cases.txt")):
        name, roi, overlap, blend, batch, mirror, windows = line.split()
        roi = [int(v) for v in roi.split(",")]
        ref = sliding_window_inference(x, roi, int(batch), mirrored if mirror == "1" else plain,
                                       overlap=float(overlap), mode=blend, sigma_scale=0.125)
        ours = np.load(os.path.join(a.dir, "out.%s.npy" % name)).astype(np.float64)
        outputs[name] = ours
        err = float(np.abs(ours - ref.numpy()).max())
        spread = float(ref.numpy().std())
        ok = err <= a.tol and spread > 1e-3
        compared += 1
        failed += not ok
        print("%-11s roi %s overlap %s %-8s sw_batch %s mirror %s windows %3s: max|ours - monai| = %.2e "
              "(output std %.3f) %s" % (name, roi, overlap, blend, batch, mirror, windows, err, spread,
                                        "ok" if ok else "FAIL"))
    # The blending must matter on this input, or the comparison could not tell the modes apart.
    if "gaussian50" in outputs and "constant50" in outputs:
        d = float(np.abs(outputs["gaussian50"] - outputs["constant50"]).max())
        ok = d > 10 * a.tol
        failed += not ok
        print("gaussian vs constant blending differ by %.2e: %s" % (d, "ok" if ok else "FAIL (test too weak)"))
    fwd = os.path.join(a.dir, "forward.npy")
    if os.path.exists(fwd):
        ours = np.load(os.path.join(a.dir, "out.whole.npy"))
        err = float(np.abs(ours - np.load(fwd)).max())
        ref = plain(x).numpy()
        err_ref = float(np.abs(ours - ref).max())
        ok = err <= 1e-6 and err_ref <= a.tol
        compared += 1
        failed += not ok
        print("whole-volume window vs one forward: max diff %.2e (ours), %.2e (torch) %s"
              % (err, err_ref, "ok" if ok else "FAIL"))
    if compared == 0:
        print("nothing compared")
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
