#!/usr/bin/python3
"""PyTorch DistributedDataParallel (gloo) baseline for `mpirun -np N unet_train --benchmark
--sync allreduce`: the same UNet and steps as bench/torch_unet_bench.py, with --world processes
on this machine, each training on its share of the global --batch_size with --num_threads threads.
Gradients are all-reduced by DDP's buckets during backward (its default 25 MB). Prints one JSON
line (global samples/s) from rank 0:

  /usr/bin/python3 bench/torch_ddp_bench.py --world 2 --num_threads 1 --dims 2 --batch_size 8 ...
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_unet_bench as tb


def run(rank, a, size, init_file, out):
    tb.set_threads(a.num_threads)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=a.world)
    torch.manual_seed(a.seed)
    model = torch.nn.parallel.DistributedDataParallel(tb.torch_unet.build_model(tb.model_config(a)))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.learningrate)
    local = a.batch_size // a.world + (1 if rank < a.batch_size % a.world else 0)
    torch.manual_seed(a.seed + 1 + rank)
    x = torch.randn(local, a.in_channels, *size)
    y = (torch.rand(local, a.out_channels, *size) < 0.2).float()
    dist.barrier()
    secs = tb.timed_steps(a, model, opt, x, y)  # DDP's all-reduce keeps the ranks in step
    if rank == 0:
        out.put(tb.result_json(a, size, a.num_threads, secs, program="pytorch-ddp-gloo", ranks=a.world))
    dist.destroy_process_group()


def main():
    ap = tb.make_parser(__doc__.split("\n")[0])
    ap.add_argument("--world", type=int, default=2, help="processes (DDP ranks)")
    a = ap.parse_args()
    size = tb.checked_size(a)
    if a.world < 1 or a.batch_size < a.world:
        raise SystemExit("--world: expected 1..batch_size processes")
    a.num_threads = a.num_threads or 1
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as d:
        init_file = os.path.join(d, "rendezvous")
        mp.spawn(run, args=(a, size, init_file, out), nprocs=a.world, join=True)
    print(out.get())
    return 0


if __name__ == "__main__":
    sys.exit(main())
