#!/usr/bin/python3
"""Compares dumped training steps of our C++ UNet (tests/reference/unet_reference_dump.cpp)
with the PyTorch mirror (tests/reference/torch_unet.py), computed in float64.

  /usr/bin/python3 tests/reference/check_against_torch.py DUMP_DIR [DUMP_DIR ...]
                   [--tol 1e-4] [--rel_tol 1e-3] [--show 8] [--quiet]

Compared tensors: forward output (train mode), loss (and each output channel's own loss: with
several output channels, one per BraTS region, the loss is the mean of the channels' batch
losses), d loss / d output, every parameter gradient,
batch-norm running statistics after the training forward, parameters after one and two Adam
steps (torch.optim.Adam with the same lr / betas / eps / amsgrad, fed with OUR gradients so the
optimizer is checked on its own; our gradients are checked separately), and the eval-mode
output with the step-2 parameters and updated running statistics. Region dumps (--labels) also
have their truth masks checked against the label map (labels.npy) with our own region table.

A tensor passes if
  max|ours - torch| <= tol * max(1, max|torch|)                              (absolute test)
and, for tensors whose scale is below 1 (gradients), also
  max|ours - torch| <= rel_tol * max(max|torch|, 1e-2 * largest scale of its group)
so that a gradient of scale 1e-3 cannot be off by 10% unnoticed. (The floor keeps gradients that
are zero in exact arithmetic, such as a conv bias followed by batch norm, from being judged
by their float32 cancellation noise.) For Adam steps the update
(step - initial) is judged against its own scale (plus two float32 ulps of the parameter), since
the parameters themselves are ~1e3 times larger than one update.

Near-ties: a ReLU pre-activation within 1e-4 (relative) of 0, or a max-pool window whose two
largest inputs are that close, may be decided differently by our float32 forward than by the
float64 reference; the gradient then legitimately differs by that element's gradient. When only
gradients fail and the reference forward has such near-ties, the verdict is INCONCLUSIVE (the
data, not the code, is ill-conditioned; tests/reference/torch_crosscheck.sh retries with
another seed).

Each dump prints a summary line (and the worst tensors unless --quiet, or if it failed) and a
line "RESULT <dir> ok|FAIL|INCONCLUSIVE|BROKEN". Exit status: 0 all ok, else the worst of
1 = mismatch, 2 = broken dump, 3 = inconclusive.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402

TIE_TOL = 1e-4


def load(d, name):
    return np.load(os.path.join(d, name + ".npy"))


def count_near_ties(taps, dims):
    """Near-zero ReLU pre-activations and near-tied max-pool windows in a float64 forward."""
    relu = pool = 0
    for kind, t in taps:
        scale = float(t.abs().max())
        if scale == 0.0:
            continue
        eps = TIE_TOL * scale
        if kind == "relu":
            relu += int((t.abs() < eps).sum())
        else:
            n, c = t.shape[:2]
            if dims == 2:
                h, w = t.shape[2:]
                win = t.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, 4)
            else:
                dd, h, w = t.shape[2:]
                win = (t.reshape(n, c, dd // 2, 2, h // 2, 2, w // 2, 2)
                       .permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(-1, 8))
            top2 = torch.topk(win, 2, dim=1).values
            pool += int(((top2[:, 0] - top2[:, 1] < eps) & (top2[:, 0] > eps)).sum())
    return relu, pool


def check(d, args):
    """Returns (status, text): status 'ok' | 'FAIL' | 'INCONCLUSIVE' | 'BROKEN'."""
    lines = []
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    order = [l.strip() for l in open(os.path.join(d, "order.txt")) if l.strip()]
    param_names = [l for l in order if not l.startswith("buffer ")]
    buffer_names = [l.split(" ", 1)[1] for l in order if l.startswith("buffer ")]

    model = torch_unet.build_model(cfg).double()
    torch_params = dict(model.named_parameters())
    torch_buffers = {k: v for k, v in model.named_buffers() if not k.endswith("num_batches_tracked")}
    problems = []
    if sorted(param_names) != sorted(torch_params):
        problems.append("parameter names differ: ours-only %s, torch-only %s" % (
            sorted(set(param_names) - set(torch_params)), sorted(set(torch_params) - set(param_names))))
    if sorted(buffer_names) != sorted(torch_buffers):
        problems.append("buffer names differ: ours-only %s, torch-only %s" % (
            sorted(set(buffer_names) - set(torch_buffers)), sorted(set(torch_buffers) - set(buffer_names))))
    for n in param_names:
        if n in torch_params:
            shape = tuple(load(d, "param." + n).shape)
            if shape != tuple(torch_params[n].shape):
                problems.append("%s: our shape %s, torch %s" % (n, shape, tuple(torch_params[n].shape)))
    if problems:
        return "BROKEN", "\n".join("BROKEN %s: %s" % (d, p) for p in problems)

    init = {n: torch.from_numpy(load(d, "param." + n).astype(np.float64)) for n in param_names}
    state = dict(init)
    state.update({n: torch.from_numpy(load(d, "buffer." + n).astype(np.float64)) for n in buffer_names})
    torch_unet.load_unet_state(model, state)

    x = torch.from_numpy(load(d, "input").astype(np.float64))
    truth = torch.from_numpy(load(d, "truth").astype(np.float64))
    region_names = [r for r in cfg.get("labels", "").split(",") if r]
    if region_names and len(region_names) != int(cfg["out_channels"]):
        return "BROKEN", "BROKEN %s: labels %s for %s output channels" % (d, cfg["labels"], cfg["out_channels"])
    model.train()
    model.enable_taps()
    out = model(x)
    near_relu, near_pool = count_near_ties(model.taps, int(cfg["dims"]))
    model.taps.clear()
    out.retain_grad()
    loss = torch_unet.batch_loss(cfg["loss"], out, truth)
    loss.backward()
    with torch.no_grad():
        chan_loss = torch_unet.channel_losses(cfg["loss"], out, truth)

    rows = []  # (group, name, ours, torch, slack)

    def add(group, name, ours, ref, slack=0.0):
        rows.append((group, name, np.asarray(ours, dtype=np.float64),
                     ref.detach().clone().numpy() if torch.is_tensor(ref) else np.asarray(ref, dtype=np.float64),
                     slack))

    add("output", "output", load(d, "output"), out)
    if region_names:  # our region_masks (the dump's truth) against the label map, exactly
        add("truth", "truth from labels", load(d, "truth"),
            torch_unet.region_masks(torch.from_numpy(load(d, "labels").astype(np.int64)), region_names))
    add("loss", "loss", load(d, "loss"), loss)
    ours_chan = load(d, "channel_loss")
    if ours_chan.shape != tuple(chan_loss.shape):  # one row, failed on its shape
        add("loss", "channel losses", ours_chan, chan_loss)
    else:
        for c in range(ours_chan.shape[0]):
            add("loss", "loss[%s]" % (region_names[c] if region_names else c), ours_chan[c], chan_loss[c])
    add("loss_grad", "d loss/d output", load(d, "loss_diff"), out.grad)
    for n in param_names:
        add("grad", n, load(d, "grad." + n), torch_params[n].grad)
    for n in buffer_names:
        add("running", n, load(d, "buffer_after." + n), torch_buffers[n])

    # Adam, fed with our gradients (float32 -> float64).
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                           eps=cfg["epsilon"], amsgrad=bool(cfg["amsgrad"]))
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(init[n])
    ours_g = {n: load(d, "grad." + n) for n in param_names}
    for step, tag in ((1, "step1"), (2, "step2")):
        for n, p in model.named_parameters():
            g = ours_g[n]
            if step == 2:  # the dump tool's synthetic second gradient, in float32 like ours
                flat = g.reshape(-1).copy()
                flat[0::2] *= np.float32(-0.5)
                flat[1::2] *= np.float32(0.01)
                g = flat.reshape(g.shape)
            p.grad = torch.from_numpy(g.astype(np.float64))
        opt.step()
        for n, p in model.named_parameters():
            ours = load(d, tag + "." + n).astype(np.float64)
            add(tag, n, ours, p)
            # Our parameters are float32: allow two float32 ulps of the parameter on top.
            ulps = 2.0 * 2.0 ** -23 * max(float(np.max(np.abs(ours))), float(init[n].abs().max()))
            add(tag + "_delta", n, ours - init[n].numpy(), p.detach() - init[n], ulps)

    # Eval forward with our step-2 parameters and running statistics.
    em = torch_unet.build_model(cfg).double()
    est = {n: torch.from_numpy(load(d, "step2." + n).astype(np.float64)) for n in param_names}
    est.update({n: torch.from_numpy(load(d, "buffer_after." + n).astype(np.float64)) for n in buffer_names})
    torch_unet.load_unet_state(em, est)
    em.eval()
    with torch.no_grad():
        add("eval_output", "eval_output", load(d, "eval_output"), em(x))

    # Scores (> 1 fails).
    group_scale = {}
    for g, n, o, r, _ in rows:
        group_scale[g] = max(group_scale.get(g, 0.0), float(np.max(np.abs(r))) if r.size else 0.0)
    results = []
    for g, n, o, r, slack in rows:
        if o.shape != r.shape:
            results.append((float("inf"), g, n, o.shape, 0.0, float("inf"), float("inf"),
                            "shape %s vs %s" % (o.shape, r.shape)))
            continue
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        err = float(np.max(np.abs(o - r))) if r.size else 0.0
        if not np.all(np.isfinite(o)):
            err = float("inf")
        floor = max(1e-2 * group_scale[g], 1e-30)
        if g.endswith("_delta"):
            checks = [err / (args.rel_tol * max(scale, floor) + slack)]
        else:
            checks = [err / (args.tol * max(1.0, scale))]
            if scale < 1.0:
                checks.append(err / (args.rel_tol * max(scale, floor)))
        results.append((max(checks), g, n, r.shape, scale, err, err / max(scale, 1e-30), ""))

    results.sort(key=lambda t: -t[0])
    failed = [t for t in results if not t[0] <= 1.0]
    loss_sum_ok = cfg.get("loss_sum_matches", True)

    def worst_rel(adam):
        return max((t[6] for t in results if t[1].startswith("step") == adam
                    and t[4] > 1e-2 * group_scale[t[1]]), default=0.0)

    if failed and all(t[1] == "grad" for t in failed) and near_relu + near_pool > 0 and loss_sum_ok:
        status = "INCONCLUSIVE"
    elif failed or not loss_sum_ok:
        status = "FAIL"
    else:
        status = "ok"
    name = "dims=%d size=%s norm=%s up=%s f=%d loss=%s amsgrad=%s out=%d%s seed=%s" % (
        cfg["dims"], "x".join(map(str, cfg["size"])), cfg["norm"], cfg["upsampling"],
        cfg["base_filters"], cfg["loss"], cfg["amsgrad"], int(cfg["out_channels"]),
        "(%s)" % cfg["labels"] if region_names else "", cfg.get("seed"))
    if not args.quiet or status != "ok":
        lines.append("%-12s %-28s %-18s %10s %10s %10s %8s" % (
            "group", "tensor", "shape", "max|torch|", "max err", "err/scale", "score"))
        for t in results[:max(args.show, min(len(failed), 40))]:
            badness, g, n, shape, scale, err, rel, note = t
            lines.append("%-12s %-28s %-18s %10.3e %10.3e %10.3e %8.3f%s%s" % (
                g, n[:28], "x".join(map(str, shape)) or "()", scale, err, rel, badness,
                "  FAIL" if not badness <= 1.0 else "", "  " + note if note else ""))
    lines.append("%s %s: %d tensors, worst score %.3f (1 = tolerance), max err/scale: model %.2e"
                 " adam %.2e, loss ours %.9g torch %.9g, near-ties relu %d pool %d%s" % (
                     status, name, len(results), results[0][0], worst_rel(False), worst_rel(True),
                     float(load(d, "loss")), float(loss), near_relu, near_pool,
                     "" if loss_sum_ok else " (loss_sum() disagrees with loss_sum_and_grad())"))
    if status == "INCONCLUSIVE":
        lines.append("  only gradients differ and the float64 forward has near-ties: float32 may "
                     "legitimately pick the other side; retry with another seed")
    return status, "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump_dirs", nargs="+")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--rel_tol", type=float, default=1e-3)
    ap.add_argument("--show", type=int, default=8)
    ap.add_argument("--quiet", action="store_true", help="only the summary line (and failures)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    torch.manual_seed(0)
    code = {"ok": 0, "FAIL": 1, "BROKEN": 2, "INCONCLUSIVE": 3}
    worst = 0
    for d in args.dump_dirs:
        try:
            status, text = check(d, args)
        except Exception as e:  # a dump that cannot be read is a failure, not a crash of the rest
            status, text = "BROKEN", "BROKEN %s: %s: %s" % (d, type(e).__name__, e)
        print(text)
        print("RESULT %s %s" % (d, status), flush=True)
        c = code[status]
        if c == 1 or worst == 1:
            worst = 1
        else:
            worst = max(worst, c)
    return worst


if __name__ == "__main__":
    sys.exit(main())
