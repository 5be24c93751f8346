#!/usr/bin/python3
"""PyTorch baseline for `unet_train --benchmark`: the same UNet (tests/reference/torch_unet.py),
trained with Adam and the soft Dice loss on random data, timed over --steps after --bench_warmup
untimed steps. Prints one JSON line with the same keys as unet_train:

  /usr/bin/python3 bench/torch_unet_bench.py --dims 2 --input_size 128,128 --in_channels 4 \
      --filters 32 --depth 4 --batch_size 8 --steps 5 [--upsampling transposed] [--norm none] \
      [--num_threads 2] [--bench_warmup 1] [--loss dice] [--learningrate 0.0005] [--seed 42]

gflop_per_sample is the nominal count of UNet::train_flops_per_sample (every convolution
2*OC*IC*k^d*output voxels forward, transposed convolutions 2*IC*OC*2^d*input voxels, x3 for
training except the first convolution x2), so gflops is comparable with unet_train's.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import torch_unet  # noqa: E402


def parse_size(text, dims):
    vals = [int(v) for v in text.split(",") if v.strip()]
    if len(vals) == 1:
        vals = vals * dims
    if len(vals) != dims:
        raise SystemExit("--input_size: expected 1 or %d values, got %r" % (dims, text))
    return vals


def sig(v, digits=6):
    return float("%.*g" % (digits, v))


def make_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--dims", type=int, default=2, choices=(2, 3))
    ap.add_argument("--input_size", default=None, help="e.g. 128,128 (default 128,128 / 64,64,64)")
    ap.add_argument("--in_channels", type=int, default=4)
    ap.add_argument("--out_channels", type=int, default=1)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bench_warmup", type=int, default=1)
    ap.add_argument("--upsampling", default="transposed", choices=torch_unet.UPSAMPLINGS)
    ap.add_argument("--norm", default="none", choices=torch_unet.NORMS)
    ap.add_argument("--norm_groups", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--loss", default="dice", choices=torch_unet.LOSSES)
    ap.add_argument("--learningrate", type=float, default=0.0005)
    ap.add_argument("--num_threads", type=int, default=0, help="0: OMP_NUM_THREADS or all cores")
    ap.add_argument("--seed", type=int, default=42)
    return ap


def checked_size(a):
    if a.input_size is None:
        a.input_size = "128,128" if a.dims == 2 else "64,64,64"
    size = parse_size(a.input_size, a.dims)
    if any(s % (1 << a.depth) for s in size):
        raise SystemExit("--input_size: every size must be divisible by 2^depth = %d" % (1 << a.depth))
    if a.steps < 1:
        raise SystemExit("--steps: expected at least 1")
    return size


def set_threads(threads):
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def model_config(a):
    return dict(dims=a.dims, in_channels=a.in_channels, out_channels=a.out_channels,
                base_filters=a.filters, depth=a.depth, upsampling=a.upsampling, norm=a.norm,
                norm_groups=a.norm_groups, dropout=a.dropout)


def timed_steps(a, model, opt, x, y):
    """Runs --bench_warmup then --steps training steps; returns the seconds of the timed ones."""
    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch_unet.batch_loss(a.loss, model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.bench_warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    float(loss)  # everything has run
    return time.perf_counter() - t0


def result_json(a, size, threads, secs, **extra):
    samples_per_s = a.batch_size * a.steps / secs
    gflop_per_sample = torch_unet.train_flops_per_sample(model_config(a), size) / 1e9
    result = {
        "program": "pytorch",
        "torch": torch.__version__,
        "dims": a.dims,
        "input_size": size,
        "in_channels": a.in_channels,
        "filters": a.filters,
        "depth": a.depth,
        "upsampling": a.upsampling,
        "norm": a.norm,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "threads": threads,
        "step_ms": sig(1000.0 * secs / a.steps),
        "samples_per_s": sig(samples_per_s),
        "gflop_per_sample": sig(gflop_per_sample),
        "gflops": sig(samples_per_s * gflop_per_sample),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    result.update(extra)
    return json.dumps(result, separators=(",", ":"))


def main():
    a = make_parser(__doc__.split("\n")[0]).parse_args()
    size = checked_size(a)
    threads = a.num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    set_threads(threads)
    torch.manual_seed(a.seed)
    model = torch_unet.build_model(model_config(a))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.learningrate)
    x = torch.randn(a.batch_size, a.in_channels, *size)
    y = (torch.rand(a.batch_size, a.out_channels, *size) < 0.2).float()
    print(result_json(a, size, threads, timed_steps(a, model, opt, x, y)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
