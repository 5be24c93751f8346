#!/usr/bin/env python3
"""The baseline of bench/predict_bench.sh: the same case through PyTorch (the mirror of our UNet in
tests/reference/torch_unet.py, loaded with the checkpoint's weights) and MONAI's
sliding_window_inference with the same roi, overlap, gaussian blending and window batch, the same
preprocessing (crop 155 -> 152, per-channel z-score over the brain) and a NIfTI mask written with
nibabel. Prints one JSON line: seconds for the case (read to write), peak RSS in MiB.

  python torch_predict_bench.py CHECKPOINT IMAGE OUT.nii.gz --dims 3 --filters F --depth L
       --roi D,H,W [--overlap 0.5] [--sw_batch 1] [--mirror] [--num_threads N] [--more IMAGE...]

--more: further cases after the first, in the same process (as a test split is run; their masks
are written beside OUT as OUT's name with _2, _3, ...); "seconds" is then per case, in order.
"""
import argparse
import itertools
import json
import os
import resource
import sys
import time

import h5py
import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import torch_unet  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402


def load_weights(model, path):
    f = h5py.File(path, "r")
    flat = f["arrays/params"][()]
    layout = f["strings"].attrs["param_layout"]
    layout = layout.decode() if isinstance(layout, bytes) else layout
    state = model.state_dict()
    tensors = {}
    for line in layout.strip().splitlines():
        name, offset, count = line.split()
        offset, count = int(offset), int(count)
        tensors[name] = torch.from_numpy(flat[offset:offset + count].reshape(state[name].shape).copy())
    torch_unet.load_unet_state(model, {**{k: v for k, v in state.items() if k not in tensors}, **tensors})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("image")
    ap.add_argument("out")
    ap.add_argument("--dims", type=int, default=3)
    ap.add_argument("--filters", type=int, required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--roi", required=True)
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--sw_batch", type=int, default=1)
    ap.add_argument("--mirror", action="store_true")
    ap.add_argument("--num_threads", type=int, default=os.cpu_count())
    ap.add_argument("--more", nargs="*", default=[])
    a = ap.parse_args()
    torch.set_num_threads(a.num_threads)
    model = torch_unet.build_model({"dims": a.dims, "in_channels": 4, "base_filters": a.filters, "depth": a.depth})
    load_weights(model, a.checkpoint)
    model.eval()
    roi = [int(v) for v in a.roi.split(",")]

    def predictor(w):
        if not a.mirror:
            return model(w)
        axes, outs = list(range(2, 2 + a.dims)), []
        for k in range(len(axes) + 1):
            for flip in itertools.combinations(axes, k):
                f = list(flip)
                outs.append(torch.flip(model(torch.flip(w, f)), f) if f else model(w))
        return sum(outs) / len(outs)

    def predict_case(image, out):
        t0 = time.perf_counter()
        img = nib.load(image)
        x = np.asarray(img.dataobj, dtype=np.float32)          # x, y, z, c
        x = np.transpose(x, (3, 2, 1, 0))                       # c, z, y, x
        depth = x.shape[1]
        if depth == 155:
            x = x[:, 2:154]
        brain = (x != 0).any(axis=0)
        for c in range(x.shape[0]):
            v = x[c][brain]
            if v.size:
                x[c][brain] = (v - v.mean()) / max(v.std(), 1e-8)
        with torch.no_grad():
            p = sliding_window_inference(torch.from_numpy(x)[None], roi, a.sw_batch, predictor,
                                         overlap=a.overlap, mode="gaussian", sigma_scale=0.125)[0, 0].numpy()
        mask = np.zeros((depth,) + p.shape[1:], np.uint8)
        if depth == 155:
            mask[2:154] = p >= 0.5
        else:
            mask[:] = p >= 0.5
        nib.Nifti1Image(np.transpose(mask, (2, 1, 0)), img.affine, img.header).to_filename(out)
        return time.perf_counter() - t0

    seconds = [predict_case(a.image, a.out)]
    stem = a.out[:-len(".nii.gz")] if a.out.endswith(".nii.gz") else a.out
    for k, image in enumerate(a.more, start=2):
        seconds.append(predict_case(image, f"{stem}_{k}.nii.gz"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    s = round(seconds[0], 2) if len(seconds) == 1 else [round(v, 2) for v in seconds]
    print(json.dumps({"seconds": s, "peak_rss_mib": round(rss)}))


if __name__ == "__main__":
    main()
